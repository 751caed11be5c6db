//! A warm tape records a step, runs backward and updates its parameters without touching the heap.
//!
//! The oracle is a counting global allocator: it counts the allocations of the current thread, so
//! the test harness's other threads cannot disturb the count.

#[path = "common/counting_allocator.rs"]
mod counting_allocator;

use counting_allocator::allocations;

use ndarray::{ArrayD, IxDyn, arr2};
use tape::optim::{Adam, AdamConfig, AdamW, Optimizer, Sgd, SgdConfig};
use tape::{Gradients, Tape};

/// Runs `step` once to warm the buffers, then again counting allocations; returns both results
/// after checking that the warm run allocated nothing.
fn warm_run<T>(mut step: impl FnMut() -> T) -> (T, T) {
    let first = step();
    let before = allocations();
    let second = step();
    let during = allocations() - before;
    assert_eq!(during, 0, "a warm step allocated {during} times");
    (first, second)
}

#[test]
fn a_warm_step_allocates_nothing() {
    let mut tape = Tape::<f64>::new();
    let table = tape.parameter(ArrayD::from_elem(vec![5, 4], 0.1));
    let w = tape.parameter(arr2(&[[0.1, 0.2, 0.3, 0.4], [0.5, -0.6, 0.7, -0.8]]).into_dyn());
    let mut gradients = Gradients::new();
    let data = [0.5, 1.0, -1.0, 2.0];

    let step = |tape: &mut Tape<f64>, gradients: &mut Gradients<f64>| {
        tape.clear();
        let rows = tape.gather(table, &[1, 3, 1]).unwrap();
        let x = tape.constant_from_slice(&[4], &data).unwrap();
        let row = tape.row(table, 2).unwrap();
        let sum = tape.add(row, x).unwrap();
        let normed = tape.rms_norm(rows, None, 1e-5).unwrap();
        let heads = [
            tape.slice(normed, 0..2).unwrap(),
            tape.slice(normed, 2..4).unwrap(),
        ];
        let joined = tape.concat(&heads).unwrap();
        let hidden = tape.linear(joined, w).unwrap();
        let relu = tape.relu(hidden).unwrap();
        let probabilities = tape.softmax(relu).unwrap();
        let logits = tape.matvec(w, sum).unwrap();
        let single = tape.softmax_cross_entropy(logits, &[1]).unwrap();
        let batch = tape
            .softmax_cross_entropy(probabilities, &[0, 1, 1])
            .unwrap();
        let loss = tape.add(single, batch).unwrap();
        tape.backward_into(loss, gradients).unwrap();
        tape.scalar(loss)
    };

    let (first, second) = warm_run(|| step(&mut tape, &mut gradients));
    assert_eq!(first, second);
}

/// A warm optimizer (past its first step, which allocates its buffers) updates without touching
/// the heap: Adam, AdamW and SGD with Nesterov momentum, over a backward pass's gradients.
#[test]
fn a_warm_optimizer_step_allocates_nothing() {
    let mut tape = Tape::<f32>::new();
    let w = tape.parameter(arr2(&[[0.1f32, 0.2, 0.3], [0.4, -0.5, 0.6]]).into_dyn());
    let b = tape.parameter(ArrayD::from_elem(vec![2], 0.5f32));
    let mut gradients = Gradients::new();
    let data = [1.0f32, -2.0, 0.5];
    let mut optimizers: Vec<Box<dyn Optimizer<f32>>> = vec![
        Box::new(Adam::new(AdamConfig::default())),
        Box::new(AdamW::new(AdamConfig::adamw())),
        Box::new(Sgd::new(SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
            ..SgdConfig::default()
        })),
    ];
    for optimizer in &mut optimizers {
        let mut step = |tape: &mut Tape<f32>, gradients: &mut Gradients<f32>| {
            tape.clear();
            let x = tape.constant_from_slice(&[3], &data).unwrap();
            let y = tape.matvec(w, x).unwrap();
            let y = tape.add(y, b).unwrap();
            let loss = tape.dot(y, y).unwrap();
            tape.backward_into(loss, gradients).unwrap();
            optimizer.step(tape, &*gradients, 0.01).unwrap();
        };
        warm_run(|| step(&mut tape, &mut gradients));
    }
}

/// A warm tape records every op of this family, on five and six axes too, and runs backward
/// without touching the heap (a per-op allocation would show as a count above zero).
#[test]
fn a_warm_step_of_shape_ops_allocates_nothing() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| {
        (i[0] + 2 * i[1] + 3 * i[2]) as f64 * 0.1
    }));
    let table = tape.parameter(ArrayD::from_elem(IxDyn(&[5, 4]), 0.5));
    let ids = arr2(&[[1, 4, 1], [0, 2, 3]]);
    let mut gradients = Gradients::new();
    let step = |tape: &mut Tape<f64>, gradients: &mut Gradients<f64>| {
        tape.clear();
        let embedded = tape.embedding(table, &ids).unwrap(); // [2, 3, 4]
        let moved = tape.permute(x, &[2, 0, 1]).unwrap(); // [4, 2, 3]
        let back = tape.transpose(moved, 0, 2).unwrap(); // [3, 2, 4]
        let back = tape.transpose(back, 0, 1).unwrap(); // [2, 3, 4]
        let sum = tape.mul(back, embedded).unwrap();
        let deep = tape.reshape(sum, &[1, 2, 1, 3, 4, 1]).unwrap();
        let deep = tape.permute(deep, &[5, 4, 3, 2, 1, 0]).unwrap();
        let deep = tape.squeeze(deep, 5).unwrap();
        let flat = tape.flatten(deep, 0).unwrap(); // [24]
        let sliced = tape.slice_axis(x, 1, 1..3).unwrap(); // [2, 2, 4]
        let joined = tape.concat_axis(&[sliced, x], 1).unwrap(); // [2, 5, 4]
        let stacked = tape.stack(&[joined, joined], 3).unwrap(); // [2, 5, 4, 2]
        let causal = tape.causal_mask(4);
        let square = tape.reshape(flat, &[6, 4]).unwrap();
        let rows = tape.slice_axis(square, 0, 0..4).unwrap();
        let masked = tape.masked_fill(rows, causal, -1.0).unwrap();
        let wide = tape.broadcast_to(masked, &[3, 4, 4]).unwrap();
        let first = tape.sum(stacked).unwrap();
        let second = tape.dot(wide, wide).unwrap();
        let loss = tape.add(first, second).unwrap();
        tape.backward_into(loss, gradients).unwrap();
        tape.scalar(loss)
    };
    let (first, second) = warm_run(|| step(&mut tape, &mut gradients));
    assert_eq!(first, second);
}

/// The other families on a warm tape: broadcasting arithmetic, activations, axis reductions,
/// softmax along an axis, layer norm, batched products, the cross-entropy with an ignore index and
/// dropout. A per-op allocation would show as a count above zero.
#[test]
fn a_warm_step_of_the_general_ops_allocates_nothing() {
    use rand::SeedableRng;
    let mut tape = Tape::<f32>::new();
    let x = tape.parameter(ArrayD::from_shape_fn(vec![2, 3, 4], |i| {
        (i[0] as f32 - 2.0 * i[1] as f32 + 0.5 * i[2] as f32) * 0.1
    }));
    let bias = tape.parameter(ArrayD::from_elem(vec![4], 0.25f32));
    let w = tape.parameter(ArrayD::from_shape_fn(vec![5, 4], |i| {
        (i[0] + i[1]) as f32 * 0.1
    }));
    let keys = tape.parameter(ArrayD::from_elem(vec![2, 4, 3], 0.2f32));
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
    let mut gradients = Gradients::new();
    let mut step = |tape: &mut Tape<f32>, gradients: &mut Gradients<f32>| {
        tape.clear();
        let shifted = tape.add(x, bias).unwrap(); // [2, 3, 4] + [4]
        let scaled = tape.div(shifted, bias).unwrap();
        let h = tape.tanh(scaled).unwrap();
        let h = tape.gelu(h).unwrap();
        let h = tape.sigmoid(h).unwrap();
        let h = tape.silu(h).unwrap();
        let h = tape.square(h).unwrap();
        let h = tape.sqrt(h).unwrap();
        let h = tape.layer_norm(h, Some(bias), Some(bias), 1e-5).unwrap();
        let h = tape.rms_norm(h, Some(bias), 1e-5).unwrap();
        let scores = tape.matmul(h, keys).unwrap(); // [2, 3, 4] @ [2, 4, 3] = [2, 3, 3]
        let weights = tape.softmax_axis(scores, 1).unwrap();
        let logs = tape.log_softmax(weights, 2).unwrap();
        let summed = tape.sum_axis(logs, 0, true).unwrap();
        let peaks = tape.max_axis(summed, 2, false).unwrap();
        let means = tape.mean_axis(peaks, 1, false).unwrap();
        let dropped = tape.dropout(h, 0.25, &mut rng).unwrap();
        let logits = tape.linear(dropped, w).unwrap(); // [2, 3, 5]
        let loss = tape
            .cross_entropy(logits, &[0, -1, 4, 2, -1, 1], Some(-1))
            .unwrap();
        let extra = tape.sum(means).unwrap();
        let loss = tape.add(loss, extra).unwrap();
        tape.backward_into(loss, gradients).unwrap();
        tape.scalar(loss)
    };
    warm_run(|| step(&mut tape, &mut gradients));
}

/// The parameters-only backward pass takes the nodes' gradient buffers from a pool: warm, the pool
/// holds every buffer the walk needs, so it allocates nothing either. Its parameter gradients are
/// those of the full pass (itself checked against finite differences elsewhere), and it keeps no
/// node's gradient.
#[test]
fn a_warm_parameters_only_backward_allocates_nothing() {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(arr2(&[[0.1, 0.2, 0.3], [0.5, -0.6, 0.7]]).into_dyn());
    let table = tape.parameter(ArrayD::from_elem(vec![4, 3], 0.2));
    let mut pooled = Gradients::new();
    let mut full = Gradients::new();
    let data = [0.5, 1.0, -1.0];
    let step = |tape: &mut Tape<f64>, pooled: &mut Gradients<f64>| {
        tape.clear();
        let x = tape.constant_from_slice(&[3], &data).unwrap();
        let rows = tape.gather(table, &[0, 2, 2]).unwrap();
        let hidden = tape.linear(rows, w).unwrap();
        let relu = tape.relu(hidden).unwrap();
        let logits = tape.matvec(w, x).unwrap();
        let joined = tape.add(relu, logits).unwrap();
        let loss = tape.softmax_cross_entropy(joined, &[1, 0, 1]).unwrap();
        tape.backward_parameters_into(loss, pooled).unwrap();
        (loss, relu)
    };
    warm_run(|| step(&mut tape, &mut pooled));
    let (loss, relu) = step(&mut tape, &mut pooled);
    tape.backward_into(loss, &mut full).unwrap();
    for var in [w, table] {
        assert_eq!(pooled.parameter(var), full.parameter(var));
    }
    assert!(full.get(relu).is_some());
    assert!(pooled.get(relu).is_none(), "no node's gradient is kept");
}
