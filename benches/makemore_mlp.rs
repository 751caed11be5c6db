//! Tape example 02, the makemore MLP (context 3, embedding 10, 200 tanh units, f32), two ways:
//! one training step at batch 32 (embedding of a [32, 3] id array, reshape, two linear layers with
//! broadcast biases, tanh, cross-entropy, backward and the AdamW update, on a warm tape; compare it
//! with the per-op overhead of `tape_ops`, group `tape_op_16_f64`: this step records 10 ops), and
//! the no-grad forward over all the training rows of `data/names.txt` (about 205k rows: the large
//! products, `[N, 30] x [30, 200]` and `[N, 200] x [200, 27]`). BENCHMARKS.md compares both with
//! PyTorch on one thread.
//!
//! Run with `cargo bench -p microgpt-rs --bench makemore_mlp`.

#[allow(dead_code)] // the example's `main` and training driver are not used here
#[path = "../crates/tape/examples/02_makemore_mlp.rs"]
mod example;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use example::{Batch, Examples, Mlp, optimizer_config};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use tape::optim::AdamW;
use tape::{Gradients, Tape};

/// names.txt is lower-case ASCII: token 0 is the boundary `.`, then `a` to `z`.
fn token(c: char) -> usize {
    1 + (c as usize - 'a' as usize)
}

fn makemore_mlp_step(c: &mut Criterion) {
    // The benchmarks' 50 names: the step's cost does not depend on which names they are.
    let examples = Examples::new(&support::NAMES, token);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut tape = Tape::<f32>::new();
    let model = Mlp::new(&mut tape, 27, &mut rng);
    let mut gradients = Gradients::new();
    let mut optimizer = AdamW::new(optimizer_config());
    let mut batch = Batch::new();
    c.bench_function("makemore_mlp_step_f32_batch32", |bencher| {
        bencher.iter(|| {
            let loss = model
                .train_step(
                    &mut tape,
                    &mut gradients,
                    &mut optimizer,
                    &examples,
                    &mut rng,
                    0.002,
                    &mut batch,
                )
                .expect("the shapes are fixed");
            black_box(loss)
        })
    });
}

/// The example's evaluation of the training loss, forward only, on a warm tape, over the names of
/// names.txt less the last tenth (the example holds out a shuffled tenth; in file order the rows
/// are the same as the PyTorch script's of BENCHMARKS.md, and as many as the example's to 0.1%).
fn makemore_mlp_forward_all_rows(c: &mut Criterion) {
    let Some(path) = support::names_txt("makemore_mlp_forward_all_rows") else {
        return;
    };
    let text = std::fs::read_to_string(path).expect("names.txt is readable");
    let names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    let train = &names[..names.len() - names.len() / 10];
    let examples = Examples::new(train, token);
    let mut tape = Tape::<f32>::new();
    let model = Mlp::new(&mut tape, 27, &mut rng);
    let mut group = c.benchmark_group("makemore_mlp_forward");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    let name = format!("all_{}_training_rows_f32_no_grad", examples.targets.len());
    group.bench_function(name, |bencher| {
        bencher.iter(|| black_box(model.evaluate(&mut tape, &examples).expect("fixed shapes")))
    });
    group.finish();
}

criterion_group!(benches, makemore_mlp_step, makemore_mlp_forward_all_rows);
criterion_main!(benches);
