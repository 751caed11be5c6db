//! Products large enough to go through the packed GEMM (from 2^24 multiply-adds, see `gemm.rs`):
//! `linear`, `linear_stacked` and `matmul`, forward and both gradients, in f32 and f64, against the
//! textbook triple loop written out below, on random shapes with tails (odd sizes, a single row, a
//! single column) and batches.
//!
//! The GEMM sums in its own order with fused multiply-adds, so it is held to the rounding bound of
//! any order: each element within `4 k eps` of the sum of the absolute values of its `k` terms (the
//! oracle sums in f64). A product with a missing, doubled or misplaced term misses that by orders of
//! magnitude. Just below the line, the same ops must still give the row-update kernels' bits, which
//! are the triple loop's: that is what keeps `gpt`'s results pinned to its oracle.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use tape::{Float, Tape};

/// The multiply-adds from which a product takes the GEMM (`GEMM_MIN_MULTIPLIES` in `gemm.rs`).
const LINE: usize = 1 << 24;

/// Deterministic values in (-1, 1) of both signs.
fn numbers<F: Float>(shape: &[usize], step: f64) -> ArrayD<F> {
    let len = shape.iter().product();
    let data = (0..len)
        .map(|i| F::from_f64((i as f64 * step + 0.3).sin()))
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

/// `a b` for row-major `a` `[m, k]` and `b` `[k, n]`, each element summed in order in f64, with the
/// sum of its terms' magnitudes (the scale of the rounding bound).
fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut out, mut scale) = (vec![0.0; m * n], vec![0.0; m * n]);
    for r in 0..m {
        for j in 0..k {
            let x = a[r * k + j];
            let (b_row, out_row) = (&b[j * n..][..n], &mut out[r * n..][..n]);
            for (o, &y) in out_row.iter_mut().zip(b_row) {
                *o += x * y;
            }
            for (s, &y) in scale[r * n..][..n].iter_mut().zip(b_row) {
                *s += (x * y).abs();
            }
        }
    }
    (out, scale)
}

/// The transpose of a row-major `[rows, columns]` matrix.
fn transpose(m: &[f64], rows: usize, columns: usize) -> Vec<f64> {
    let mut out = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..columns {
            out[c * rows + r] = m[r * columns + c];
        }
    }
    out
}

fn to_f64<F: Float>(a: &ArrayD<F>) -> Vec<f64> {
    a.iter().map(|&x| Float::to_f64(x)).collect()
}

/// Every element of `actual` within `4 k eps` of the oracle's scale (see the module comment).
fn assert_within<F: Float>(
    actual: &[F],
    (expected, scale): &(Vec<f64>, Vec<f64>),
    k: usize,
    what: &str,
) {
    let eps = if std::mem::size_of::<F>() == 4 {
        f32::EPSILON as f64
    } else {
        f64::EPSILON
    };
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, ((&x, &y), &s)) in actual.iter().zip(expected).zip(scale).enumerate() {
        let x = Float::to_f64(x);
        let allowed = 4.0 * (k.max(1) as f64) * eps * s + f64::MIN_POSITIVE;
        assert!(
            (x - y).abs() <= allowed,
            "{what}, element {i}: {x} vs {y} (allowed {allowed:e})"
        );
    }
}

/// `linear(x, [W_1; ..])` on `x` `[rows, inner]` with weights of `outputs` rows each, projected on
/// a random `r`: the value `x W^T` and the gradients `dx = r W`, `dW = r^T x`, against the loops.
fn check_linear<F: Float>(rows: usize, inner: usize, outputs: &[usize]) {
    let total: usize = outputs.iter().sum();
    let what = format!(
        "{} linear {rows}x{inner}x{outputs:?}",
        std::any::type_name::<F>()
    );
    let x = numbers::<F>(&[rows, inner], 0.37);
    let weights: Vec<ArrayD<F>> = outputs
        .iter()
        .enumerate()
        .map(|(i, &o)| numbers::<F>(&[o, inner], 0.11 + 0.01 * i as f64))
        .collect();
    let r = numbers::<F>(&[rows, total], 0.29);
    let mut tape = Tape::<F>::new();
    let x_var = tape.parameter(x.clone());
    let w_vars: Vec<_> = weights.iter().map(|w| tape.parameter(w.clone())).collect();
    let y = if w_vars.len() == 1 {
        tape.linear(x_var, w_vars[0]).unwrap()
    } else {
        tape.linear_stacked(x_var, &w_vars).unwrap()
    };
    let r_var = tape.constant(r.clone());
    let loss = tape.dot(y, r_var).unwrap();
    let gradients = tape.backward(loss).unwrap();

    // The stacked weight [total, inner] and its transpose.
    let w: Vec<f64> = weights.iter().flat_map(to_f64).collect();
    let (x64, r64) = (to_f64(&x), to_f64(&r));
    let expected = naive(&x64, &transpose(&w, total, inner), rows, inner, total);
    assert_within(
        tape.value(y).as_slice(),
        &expected,
        inner,
        &format!("{what}: y"),
    );
    let expected = naive(&r64, &w, rows, total, inner);
    assert_within(
        gradients.parameter(x_var).as_slice(),
        &expected,
        total,
        &format!("{what}: dx"),
    );
    let dw = naive(&transpose(&r64, rows, total), &x64, total, rows, inner);
    let mut start = 0;
    for (&w_var, &o) in w_vars.iter().zip(outputs) {
        let share = (
            dw.0[start * inner..][..o * inner].to_vec(),
            dw.1[start * inner..][..o * inner].to_vec(),
        );
        assert_within(
            gradients.parameter(w_var).as_slice(),
            &share,
            rows,
            &format!("{what}: dW"),
        );
        start += o;
    }
}

/// `matmul(a, b)` for `a` `[batch, m, k]` and `b` `[batch, k, n]` (or `b` `[k, n]`, shared), projected
/// on a random `r`: the value and both gradients, matrix by matrix, against the loops.
fn check_matmul<F: Float>(batch: usize, m: usize, k: usize, n: usize, shared: bool) {
    let what = format!(
        "{} matmul {batch}x({m}x{k}x{n}) shared {shared}",
        std::any::type_name::<F>()
    );
    let a = numbers::<F>(&[batch, m, k], 0.37);
    let b_shape: Vec<usize> = if shared {
        vec![k, n]
    } else {
        vec![batch, k, n]
    };
    let b = numbers::<F>(&b_shape, 0.13);
    let r = numbers::<F>(&[batch, m, n], 0.23);
    let mut tape = Tape::<F>::new();
    let (a_var, b_var) = (tape.parameter(a.clone()), tape.parameter(b.clone()));
    let y = tape.matmul(a_var, b_var).unwrap();
    let r_var = tape.constant(r.clone());
    let loss = tape.dot(y, r_var).unwrap();
    let gradients = tape.backward(loss).unwrap();
    let (a64, b64, r64) = (to_f64(&a), to_f64(&b), to_f64(&r));
    let (y, da, db) = (
        tape.value(y).as_slice(),
        gradients.parameter(a_var).as_slice(),
        gradients.parameter(b_var).as_slice(),
    );
    let mut db_sum = (vec![0.0; k * n], vec![0.0; k * n]);
    for i in 0..batch {
        let a_i = &a64[i * m * k..][..m * k];
        let b_i = if shared {
            &b64[..]
        } else {
            &b64[i * k * n..][..k * n]
        };
        let r_i = &r64[i * m * n..][..m * n];
        let expected = naive(a_i, b_i, m, k, n);
        assert_within(
            &y[i * m * n..][..m * n],
            &expected,
            k,
            &format!("{what}: y[{i}]"),
        );
        let expected = naive(r_i, &transpose(b_i, k, n), m, n, k);
        assert_within(
            &da[i * m * k..][..m * k],
            &expected,
            n,
            &format!("{what}: da[{i}]"),
        );
        let expected = naive(&transpose(a_i, m, k), r_i, k, m, n);
        if shared {
            for (sum, part) in [(&mut db_sum.0, &expected.0), (&mut db_sum.1, &expected.1)] {
                sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
            }
        } else {
            assert_within(
                &db[i * k * n..][..k * n],
                &expected,
                m,
                &format!("{what}: db[{i}]"),
            );
        }
    }
    if shared {
        assert_within(db, &db_sum, m * batch, &format!("{what}: db"));
    }
}

/// `(rows, inner, columns)` with at least `LINE` multiply-adds and odd tails: rows and inner drawn
/// small or odd (down to 1), columns the fewest that cross the line plus up to 2 more.
fn large_shape() -> impl Strategy<Value = (usize, usize, usize)> {
    (
        prop_oneof![Just(1usize), 2usize..9, 100usize..700],
        1usize..90,
        0usize..3,
    )
        .prop_map(|(rows, inner, extra)| {
            let columns = LINE.div_ceil(rows * inner) + extra;
            (rows, inner, columns)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3))]

    #[test]
    fn a_large_linear_layer_matches_the_triple_loop_in_both_precisions(
        (rows, inner, columns) in large_shape()
    ) {
        check_linear::<f32>(rows, inner, &[columns]);
        check_linear::<f64>(rows, inner, &[columns]);
    }

    #[test]
    fn a_large_matrix_product_matches_the_triple_loop_in_both_precisions(
        (rows, inner, columns) in large_shape()
    ) {
        check_matmul::<f32>(1, rows, inner, columns, false);
        check_matmul::<f64>(1, rows, inner, columns, false);
    }
}

#[test]
fn a_single_row_and_a_single_column_take_the_gemm_correctly() {
    // 4097 * 4097 is just above 2^24: one row (a matrix-vector product), then one output column.
    check_linear::<f32>(1, 4097, &[4097]);
    check_linear::<f64>(4097, 4097, &[1]);
    check_matmul::<f32>(1, 4097, 4097, 1, false);
    check_matmul::<f64>(1, 1, 4097, 4097, false);
}

#[test]
fn stacked_weights_each_get_their_block_of_a_large_product() {
    // 4099 rows of 65 through weights of 31 and 33 rows: 17 million multiply-adds, odd blocks.
    check_linear::<f32>(4099, 65, &[31, 33]);
    check_linear::<f64>(4099, 65, &[31, 33]);
}

#[test]
fn a_batch_of_large_products_and_a_shared_right_matrix_sum_their_gradients() {
    // Three products of 257x129x507 (16.8 million each); then a shared [65, 255] weight under
    // four matrices of 1025 rows, which the op folds into one product of 4100 rows.
    check_matmul::<f32>(3, 257, 129, 507, false);
    check_matmul::<f64>(3, 257, 129, 507, false);
    check_matmul::<f32>(4, 1025, 65, 255, true);
    check_matmul::<f64>(4, 1025, 65, 255, true);
}

#[test]
fn the_largest_gpt_product_still_gives_the_triple_loops_bits() {
    // gpt's largest product (a chunk of 128 rows through n_embd 128 -> 512) is below the line: it
    // must keep the row-update kernels, whose f64 sums are the in-order loop's to the last bit.
    let (rows, inner, outputs) = (128, 128, 512);
    assert!(rows * inner * outputs < LINE);
    let x = numbers::<f64>(&[rows, inner], 0.37);
    let w = numbers::<f64>(&[outputs, inner], 0.11);
    let mut tape = Tape::<f64>::new();
    let (x_var, w_var) = (tape.parameter(x.clone()), tape.parameter(w.clone()));
    let y = tape.linear(x_var, w_var).unwrap();
    let w_t = transpose(&to_f64(&w), outputs, inner);
    let (expected, _) = naive(&to_f64(&x), &w_t, rows, inner, outputs);
    for (i, (&got, &want)) in tape.value(y).as_slice().iter().zip(&expected).enumerate() {
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "element {i}: {got} vs {want}"
        );
    }
}
