//! Matrix products over batch axes (`matmul`, `linear` and `linear_stacked` on inputs of any rank)
//! against two oracles: the textbook triple loop written out below (as llm.c keeps its naive matmul
//! beside the fast one), and central finite differences (the helpers are in `common`).
//!
//! The kernels sum every output element over the inner index in order, from zero, as the triple
//! loop does, so forward values must equal it to the last bit at every shape; gradients are summed
//! in other orders (dot products in eight lanes), so they are held to 1e-12 relative.

mod common;

use common::{array, check};
use ndarray::{ArrayD, Axis, Dimension, IxDyn};
use proptest::prelude::*;
use tape::{Float, Tape, TapeError, Var};

/// The lengths both batch shapes broadcast to (aligned at the last axis, a missing axis is 1).
fn broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let axes = a.len().max(b.len());
    let length = |shape: &[usize], axis: usize| {
        let missing = axes - shape.len();
        if axis < missing {
            1
        } else {
            shape[axis - missing]
        }
    };
    (0..axes)
        .map(|axis| {
            let (x, y) = (length(a, axis), length(b, axis));
            assert!(
                x == y || x == 1 || y == 1,
                "{a:?} and {b:?} do not broadcast"
            );
            if x == 1 { y } else { x }
        })
        .collect()
}

/// The index into an operand of batch shape `shape` that output batch position `index` reads:
/// aligned at the last axis, 0 along the axes the operand has length 1.
fn operand_index(index: &[usize], shape: &[usize]) -> Vec<usize> {
    let missing = index.len() - shape.len();
    shape
        .iter()
        .zip(&index[missing..])
        .map(|(&length, &i)| if length == 1 { 0 } else { i })
        .collect()
}

/// Both operands as batched matrices (a vector is a row on the left, a column on the right), the
/// batch shape of the result, and the sizes `(m, k, n)`.
type Promoted<F> = (ArrayD<F>, ArrayD<F>, Vec<usize>, (usize, usize, usize));

fn promote<F: Float>(a: &ArrayD<F>, b: &ArrayD<F>) -> Promoted<F> {
    let a = if a.ndim() == 1 {
        a.clone().insert_axis(Axis(0))
    } else {
        a.clone()
    };
    let b = if b.ndim() == 1 {
        b.clone().insert_axis(Axis(1))
    } else {
        b.clone()
    };
    let (a_axes, b_axes) = (a.ndim(), b.ndim());
    let (m, k, n) = (
        a.shape()[a_axes - 2],
        a.shape()[a_axes - 1],
        b.shape()[b_axes - 1],
    );
    assert_eq!(k, b.shape()[b_axes - 2], "inner axes");
    let batch = broadcast(&a.shape()[..a_axes - 2], &b.shape()[..b_axes - 2]);
    (a, b, batch, (m, k, n))
}

/// `[batch.., i, j]` as an index of an operand whose batch axes are `shape`'s leading axes.
fn at(batch: &[usize], shape: &[usize], i: usize, j: usize) -> Vec<usize> {
    let mut index = operand_index(batch, &shape[..shape.len() - 2]);
    index.extend([i, j]);
    index
}

/// `torch.matmul(a, b)` by the triple loop: each element a sum over the inner index in order, from
/// zero, for every batch position of the broadcast batch shape.
fn naive_matmul<F: Float>(a: &ArrayD<F>, b: &ArrayD<F>) -> ArrayD<F> {
    let (a_vector, b_vector) = (a.ndim() == 1, b.ndim() == 1);
    let (a, b, batch, (m, k, n)) = promote(a, b);
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let mut out = ArrayD::zeros(IxDyn(&shape));
    for position in ndarray::indices(IxDyn(&batch)) {
        let position = position.slice();
        for r in 0..m {
            for c in 0..n {
                let mut sum = F::zero();
                for j in 0..k {
                    sum += a[&at(position, a.shape(), r, j)[..]]
                        * b[&at(position, b.shape(), j, c)[..]];
                }
                let mut index = position.to_vec();
                index.extend([r, c]);
                out[&index[..]] = sum;
            }
        }
    }
    if b_vector {
        let last = out.ndim() - 1;
        out = out.remove_axis(Axis(last));
    }
    if a_vector {
        out = out.remove_axis(Axis(batch.len()));
    }
    out
}

/// The gradients of `sum(matmul(a, b) * g)` by the same loops: every product `a[.., r, j] b[.., j, c]`
/// sends `g[.., r, c] b[.., j, c]` to the `a` element and `g[.., r, c] a[.., r, j]` to the `b` one,
/// wherever broadcasting repeated them.
fn naive_gradients(
    a: &ArrayD<f64>,
    b: &ArrayD<f64>,
    g: &ArrayD<f64>,
) -> (ArrayD<f64>, ArrayD<f64>) {
    let (a_shape, b_shape) = (a.shape().to_vec(), b.shape().to_vec());
    let (a, b, batch, (m, k, n)) = promote(a, b);
    let mut g_shape = batch.clone();
    g_shape.extend([m, n]);
    let g = g.to_shape(IxDyn(&g_shape)).unwrap();
    let (mut da, mut db) = (ArrayD::zeros(a.raw_dim()), ArrayD::zeros(b.raw_dim()));
    for position in ndarray::indices(IxDyn(&batch)) {
        let position = position.slice();
        for r in 0..m {
            for c in 0..n {
                let mut index = position.to_vec();
                index.extend([r, c]);
                let grad = g[&index[..]];
                for j in 0..k {
                    let (ai, bi) = (at(position, a.shape(), r, j), at(position, b.shape(), j, c));
                    da[&ai[..]] += grad * b[&bi[..]];
                    db[&bi[..]] += grad * a[&ai[..]];
                }
            }
        }
    }
    let da = da.into_shape_with_order(IxDyn(&a_shape)).unwrap();
    let db = db.into_shape_with_order(IxDyn(&b_shape)).unwrap();
    (da, db)
}

/// Deterministic values in (-1, 1) of both signs.
fn numbers<F: Float>(shape: &[usize], step: f64) -> ArrayD<F> {
    let len = shape.iter().product();
    let data = (0..len)
        .map(|i| F::from_f64((i as f64 * step + 0.3).sin()))
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

fn assert_bits<F: Float>(actual: &ArrayD<F>, expected: &ArrayD<F>, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shapes");
    for (i, (x, y)) in actual.iter().zip(expected).enumerate() {
        assert!(
            Float::to_f64(*x).to_bits() == Float::to_f64(*y).to_bits(),
            "{what}, element {i}: {x} vs {y}"
        );
    }
}

fn assert_close(actual: &ArrayD<f64>, expected: &ArrayD<f64>, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shapes");
    for (i, (x, y)) in actual.iter().zip(expected).enumerate() {
        let allowed = 1e-12 * x.abs().max(y.abs()).max(1.0);
        assert!((x - y).abs() <= allowed, "{what}, element {i}: {x} vs {y}");
    }
}

/// Every way an operand pair can meet: plain matrices, batches of each rank, batch axes broadcast
/// from length 1 or from a missing axis (on either side, or both), vectors on either side or both,
/// and sizes with tails (rows short of a block of 4 or 8, columns short of a tile of 16, the
/// padded and the narrow kernel paths), down to single elements and empty axes.
const SHAPES: [(&[usize], &[usize]); 25] = [
    (&[5, 7], &[7, 17]),
    (&[9, 16], &[16, 33]),
    (&[1, 1], &[1, 1]),
    (&[8, 3], &[3, 16]),
    (&[3, 5, 7], &[7, 17]),
    (&[2, 9, 4], &[2, 4, 20]),
    (&[2, 3, 9, 4], &[2, 3, 4, 9]),
    (&[2, 1, 5, 4], &[3, 4, 6]),
    (&[1, 5, 4], &[3, 4, 2]),
    (&[5, 4], &[3, 4, 6]),
    (&[3, 1, 6, 5], &[1, 2, 5, 18]),
    (&[2, 2, 2, 3, 2], &[2, 1, 2, 3]),
    (&[1, 1, 4, 3], &[3, 5]),
    (&[7], &[7, 17]),
    (&[7], &[3, 7, 5]),
    (&[2, 5, 7], &[7]),
    (&[6, 7], &[7]),
    (&[7], &[7]),
    (&[4], &[2, 1, 4, 3]),
    (&[4, 0, 3], &[3, 5]),
    (&[2, 4, 0], &[2, 0, 5]),
    (&[0, 4, 3], &[1, 3, 5]),
    (&[4, 3], &[2, 0, 3, 5]),
    (&[17, 33], &[33, 31]),
    (&[2, 13, 9], &[9, 40]),
];

fn tape_matmul<F: Float>(a: &ArrayD<F>, b: &ArrayD<F>) -> ArrayD<F> {
    let mut tape = Tape::<F>::new();
    let (a, b) = (tape.constant(a.clone()), tape.constant(b.clone()));
    let product = tape.matmul(a, b).unwrap();
    tape.value(product).to_array()
}

#[test]
fn every_product_equals_the_triple_loop_to_the_bit() {
    for (a_shape, b_shape) in SHAPES {
        let what = format!("{a_shape:?} @ {b_shape:?}");
        let (a, b) = (numbers::<f64>(a_shape, 0.37), numbers::<f64>(b_shape, 0.11));
        assert_bits(&tape_matmul(&a, &b), &naive_matmul(&a, &b), &what);
        // f32 builds blocks of 8 rows, not 4: other tails.
        let (a, b) = (numbers::<f32>(a_shape, 0.37), numbers::<f32>(b_shape, 0.11));
        assert_bits(
            &tape_matmul(&a, &b),
            &naive_matmul(&a, &b),
            &format!("f32 {what}"),
        );
    }
}

#[test]
fn every_products_gradients_equal_the_triple_loops() {
    for (a_shape, b_shape) in SHAPES {
        let what = format!("{a_shape:?} @ {b_shape:?}");
        let (a, b) = (numbers::<f64>(a_shape, 0.37), numbers::<f64>(b_shape, 0.11));
        let out_shape = naive_matmul(&a, &b).shape().to_vec();
        let g = numbers::<f64>(&out_shape, 0.29);
        let mut tape = Tape::new();
        let (av, bv) = (tape.parameter(a.clone()), tape.parameter(b.clone()));
        let product = tape.matmul(av, bv).unwrap();
        let weights = tape.constant(g.clone());
        let loss = tape.dot(product, weights).unwrap();
        let gradients = tape.backward(loss).unwrap();
        let (da, db) = naive_gradients(&a, &b, &g);
        assert_close(
            &gradients.parameter(av).to_array(),
            &da,
            &format!("d a, {what}"),
        );
        assert_close(
            &gradients.parameter(bv).to_array(),
            &db,
            &format!("d b, {what}"),
        );
    }
}

/// `linear(x, w)` is `x W^T` on the last axis, checked through the triple loop with `W^T`. The
/// shapes take both of `linear`'s ways of computing (transposing the weights, for many rows, or the
/// input and the result, for few rows and large weights) at every rank.
#[test]
fn linear_on_inputs_of_any_rank_equals_the_triple_loop_to_the_bit() {
    let shapes: [(&[usize], [usize; 2]); 9] = [
        (&[5], [17, 5]),
        (&[3, 5], [17, 5]),
        (&[2, 3, 5], [17, 5]),
        (&[2, 2, 3, 5], [3, 5]),
        (&[4, 8, 16], [48, 16]),
        (&[1, 2, 64], [128, 64]),
        (&[2, 1, 3, 64], [130, 64]),
        (&[3, 0, 4], [6, 4]),
        (&[2, 3, 7], [0, 7]),
    ];
    for (x_shape, w_shape) in shapes {
        let what = format!("linear {x_shape:?} by {w_shape:?}");
        let (x, w) = (
            numbers::<f64>(x_shape, 0.37),
            numbers::<f64>(&w_shape, 0.11),
        );
        let expected = naive_matmul(&x, &w.t().to_owned().into_dyn());
        let mut tape = Tape::new();
        let (xv, wv) = (tape.constant(x.clone()), tape.constant(w.clone()));
        let y = tape.linear(xv, wv).unwrap();
        assert_bits(&tape.value(y).to_array(), &expected, &what);
        let stacked = tape.linear_stacked(xv, &[wv, wv]).unwrap();
        let both = ndarray::concatenate(Axis(x.ndim() - 1), &[expected.view(), expected.view()]);
        assert_bits(
            &tape.value(stacked).to_array(),
            &both.unwrap(),
            &format!("stacked {what}"),
        );
    }
}

/// The value, and the gradients of `x` and `W`, of `sum(f(x, W) * g)`.
fn value_and_gradients(
    x: &ArrayD<f64>,
    w: &ArrayD<f64>,
    g: &ArrayD<f64>,
    f: impl Fn(&mut Tape<f64>, Var, Var) -> Result<Var, TapeError>,
) -> [ArrayD<f64>; 3] {
    let mut tape = Tape::new();
    let (xv, wv) = (tape.parameter(x.clone()), tape.parameter(w.clone()));
    let y = f(&mut tape, xv, wv).unwrap();
    let weights = tape.constant(g.clone());
    let loss = tape.dot(y, weights).unwrap();
    let gradients = tape.backward(loss).unwrap();
    [
        tape.value(y).to_array(),
        gradients.parameter(xv).to_array(),
        gradients.parameter(wv).to_array(),
    ]
}

/// The leading axes of a linear layer's input are only rows: `[B, T, in]` gives the bits that the
/// same numbers as a `[B * T, in]` matrix give, in the value and in both gradients. (If it failed,
/// a batched input would take another path than the matrix one that `gpt` is checked on.)
#[test]
fn linear_on_a_batch_gives_the_bits_of_linear_on_its_rows() {
    for (batch, rows, inner, outputs) in [
        (4, 8, 16, 48),
        (3, 5, 7, 9),
        (2, 1, 64, 130),
        (1, 3, 16, 16),
    ] {
        let what = format!("[{batch}, {rows}, {inner}] by [{outputs}, {inner}]");
        let x = numbers::<f64>(&[batch, rows, inner], 0.37);
        let w = numbers::<f64>(&[outputs, inner], 0.11);
        let g = numbers::<f64>(&[batch, rows, outputs], 0.29);
        let flat = |a: &ArrayD<f64>, shape: &[usize]| a.to_shape(IxDyn(shape)).unwrap().to_owned();
        let linear = |tape: &mut Tape<f64>, x, w| tape.linear(x, w);
        let batched = value_and_gradients(&x, &w, &g, linear);
        let matrix = value_and_gradients(
            &flat(&x, &[batch * rows, inner]),
            &w,
            &flat(&g, &[batch * rows, outputs]),
            linear,
        );
        assert_bits(
            &batched[0],
            &flat(&matrix[0], &[batch, rows, outputs]),
            &format!("y, {what}"),
        );
        assert_bits(
            &batched[1],
            &flat(&matrix[1], &[batch, rows, inner]),
            &format!("dx, {what}"),
        );
        assert_bits(&batched[2], &matrix[2], &format!("dW, {what}"));
    }
}

/// `linear_stacked(x, [w1, w2])` is the fused form of `concat([linear(x, w1), linear(x, w2)])`; if
/// this failed, `gpt`'s attention projections would compute something other than the primitives.
/// Values and weight gradients are the same sums in the same order, so equal to the bit. So is the
/// input's gradient when its width is a whole number of kernel tiles (16, as `gpt`'s widths are);
/// otherwise the last partial tile is accumulated in place, weight by weight, and the composition's
/// backward visits the second weight first, so the sums are associated differently: 1e-12 relative.
#[test]
fn linear_stacked_equals_the_concatenation_of_linears() {
    let shapes = [
        (5, 16, 16, 32),
        (8, 32, 48, 16),
        (3, 16, 1, 20),
        (1, 16, 7, 9),
        (4, 7, 5, 19),
        (9, 20, 33, 2),
    ];
    for (rows, inner, first, second) in shapes {
        for x_shape in [vec![inner], vec![rows, inner]] {
            let what = format!("x {x_shape:?}, W [{first} + {second}, {inner}]");
            let x = numbers::<f64>(&x_shape, 0.37);
            let (w1, w2) = (
                numbers::<f64>(&[first, inner], 0.11),
                numbers::<f64>(&[second, inner], 0.23),
            );
            let mut out_shape = x_shape.clone();
            *out_shape.last_mut().unwrap() = first + second;
            let g = numbers::<f64>(&out_shape, 0.29);
            let run = |stacked: bool| {
                let mut tape = Tape::new();
                let vars = [x.clone(), w1.clone(), w2.clone()].map(|value| tape.parameter(value));
                let [xv, w1v, w2v] = vars;
                let y = if stacked {
                    tape.linear_stacked(xv, &[w1v, w2v]).unwrap()
                } else {
                    let y1 = tape.linear(xv, w1v).unwrap();
                    let y2 = tape.linear(xv, w2v).unwrap();
                    tape.concat(&[y1, y2]).unwrap()
                };
                let weights = tape.constant(g.clone());
                let loss = tape.dot(y, weights).unwrap();
                let gradients = tape.backward(loss).unwrap();
                let mut all = vec![tape.value(y).to_array()];
                all.extend(vars.map(|var| gradients.parameter(var).to_array()));
                all
            };
            let (fused, composed) = (run(true), run(false));
            assert_bits(&fused[0], &composed[0], &format!("value, {what}"));
            if inner % 16 == 0 {
                assert_bits(&fused[1], &composed[1], &format!("dx, {what}"));
            } else {
                assert_close(&fused[1], &composed[1], &format!("dx, {what}"));
            }
            assert_bits(&fused[2], &composed[2], &format!("dW1, {what}"));
            assert_bits(&fused[3], &composed[3], &format!("dW2, {what}"));
        }
    }
}

#[test]
fn shape_errors_name_the_op_the_shapes_and_the_rule() {
    let mut tape = Tape::<f64>::new();
    let mut var = |shape: &[usize]| tape.parameter(ArrayD::<f64>::zeros(IxDyn(shape)));
    let (a, b, c, d, v, s, w3) = (
        var(&[2, 3, 4]),
        var(&[5, 6]),
        var(&[2, 4, 6]),
        var(&[3, 4, 6]),
        var(&[5]),
        var(&[]),
        var(&[2, 3, 4]),
    );
    let message = |result: Result<Var, TapeError>| result.unwrap_err().to_string();
    assert_eq!(
        message(tape.matmul(a, b)),
        "matmul: shape mismatch: a is [2, 3, 4] but b is [5, 6]; inner axes differ: a's last axis \
         (4) must equal b's rows (second-to-last axis) (5)"
    );
    assert_eq!(
        message(tape.matmul(a, v)),
        "matmul: shape mismatch: a is [2, 3, 4] but b is [5]; inner axes differ: a's last axis (4) \
         must equal b's length (5)"
    );
    assert_eq!(
        message(tape.matmul(a, d)),
        "matmul: shape mismatch: a is [2, 3, 4] but b is [3, 4, 6]; batch axes [2] and [3] do not \
         broadcast: aligned at the last axis, each pair of lengths must be equal or one of them 1"
    );
    assert!(
        tape.matmul(a, c).is_ok(),
        "[2, 3, 4] @ [2, 4, 6] is a batch of two"
    );
    assert_eq!(
        message(tape.matmul(s, b)),
        "matmul: shape mismatch: a is [] but b is [5, 6]; a scalar has no axis to multiply along"
    );
    assert_eq!(
        message(tape.linear(a, w3)),
        "linear: shape mismatch: W must be a matrix, got [2, 3, 4]"
    );
    assert_eq!(
        message(tape.linear(s, b)),
        "linear: shape mismatch: x must have at least one axis, got []"
    );
    assert_eq!(
        message(tape.linear(a, b)),
        "linear: shape mismatch: x is [2, 3, 4] but W is [5, 6]; x's last axis must equal W's columns"
    );
}

/// A batch shape of up to two axes, and each operand's own batch shape broadcast into it: some
/// leading axes missing, some others of length 1.
fn batch_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (
        proptest::collection::vec(1usize..4, 0..3),
        0usize..3,
        0usize..3,
        proptest::collection::vec(any::<(bool, bool)>(), 2),
    )
        .prop_map(|(batch, a_missing, b_missing, ones)| {
            let own = |missing: usize, pick: fn(&(bool, bool)) -> bool| -> Vec<usize> {
                let missing = missing.min(batch.len());
                let kept = batch.iter().zip(&ones).skip(missing);
                kept.map(|(&length, one)| if pick(one) { 1 } else { length })
                    .collect()
            };
            (own(a_missing, |o| o.0), own(b_missing, |o| o.1))
        })
}

fn with(mut batch: Vec<usize>, matrix: &[usize]) -> Vec<usize> {
    batch.extend_from_slice(matrix);
    batch
}

/// Operands of 2 to 4 axes with random broadcast batch axes, or a vector on one side, and weights
/// for the result.
fn operands() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>)> {
    (batch_shapes(), 1usize..5, 1usize..5, 1usize..5, 0usize..3).prop_flat_map(
        |((a_batch, b_batch), m, k, n, vectors)| {
            let (a_shape, b_shape) = match vectors {
                1 => (vec![k], with(b_batch, &[k, n])),
                2 => (with(a_batch, &[m, k]), vec![k]),
                _ => (with(a_batch, &[m, k]), with(b_batch, &[k, n])),
            };
            let out_shape = naive_matmul(
                &ArrayD::<f64>::zeros(IxDyn(&a_shape)),
                &ArrayD::<f64>::zeros(IxDyn(&b_shape)),
            )
            .shape()
            .to_vec();
            (
                array(a_shape, -2.0..2.0),
                array(b_shape, -2.0..2.0),
                array(out_shape, -1.0..1.0),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each operand's gradient, summed over the batch positions broadcasting repeated it, against
    /// finite differences; the forward value against the triple loop.
    #[test]
    fn batched_matmul_against_finite_differences((a, b, weights) in operands()) {
        let mut tape = Tape::new();
        let (av, bv) = (tape.constant(a.clone()), tape.constant(b.clone()));
        let product = tape.matmul(av, bv).unwrap();
        prop_assert_eq!(tape.value(product).to_array(), naive_matmul(&a, &b));
        check(&[a, b], &weights, |tape, v| tape.matmul(v[0], v[1]))?;
    }

    /// `x x` for square (batches of) `x`: one value on both sides, whose gradient is the sum of
    /// both uses, `g x^T + x^T g`; and `linear(x, x)`, `x x^T`, for a square matrix.
    #[test]
    fn an_operand_on_both_sides(
        (x, weights) in (proptest::collection::vec(1usize..4, 0..3), 1usize..5).prop_flat_map(|(batch, n)| {
            (array(with(batch.clone(), &[n, n]), -2.0..2.0), array(with(batch, &[n, n]), -1.0..1.0))
        })
    ) {
        check(std::slice::from_ref(&x), &weights, |tape, v| tape.matmul(v[0], v[0]))?;
        if x.ndim() == 2 {
            check(&[x], &weights, |tape, v| tape.linear(v[0], v[0]))?;
        }
    }

    /// `linear` and `linear_stacked` on `[B, T, in]` inputs, with weights of a few widths (and one
    /// weight stacked twice, whose gradient gains both blocks).
    #[test]
    fn linear_on_three_axes(
        (x, w1, w2, weights, stacked_weights) in (1usize..4, 1usize..4, 1usize..6, 1usize..6, 1usize..6).prop_flat_map(|(batch, rows, inner, first, second)| {
            (
                array(vec![batch, rows, inner], -2.0..2.0),
                array(vec![first, inner], -2.0..2.0),
                array(vec![second, inner], -2.0..2.0),
                array(vec![batch, rows, first], -1.0..1.0),
                array(vec![batch, rows, first + second], -1.0..1.0),
            )
        })
    ) {
        check(&[x.clone(), w1.clone()], &weights, |tape, v| tape.linear(v[0], v[1]))?;
        check(&[x.clone(), w1.clone(), w2], &stacked_weights, |tape, v| tape.linear_stacked(v[0], &[v[1], v[2]]))?;
        let twice = ndarray::concatenate(Axis(2), &[weights.view(), weights.view()]).unwrap();
        check(&[x, w1], &twice, |tape, v| tape.linear_stacked(v[0], &[v[1], v[1]]))?;
    }
}

/// A batch of no rows has a weight gradient of zeros. The weight-gradient kernel builds several
/// rows of it at a time from the rows of the batch, and sliced past the end of an empty one.
#[test]
fn a_linear_layer_over_no_rows_has_a_zero_weight_gradient() {
    fn check<F: Float>() {
        let mut tape = Tape::<F>::new();
        let x = tape.parameter(ArrayD::<F>::zeros(vec![0, 16]));
        let w = tape.parameter(ArrayD::from_elem(vec![8, 16], F::one()));
        let y = tape.linear(x, w).unwrap();
        let loss = tape.sum(y).unwrap();
        let gradients = tape.backward(loss).unwrap();
        let gradient = gradients.parameter(w);
        assert_eq!(gradient.shape(), &[8, 16]);
        assert!(gradient.as_slice().iter().all(|&g| g == F::zero()));
    }
    check::<f32>();
    check::<f64>();
}
