//! The two loops every matrix product here reduces to, on row-major slices.
//!
//! ndarray's `general_mat_mul` (through matrixmultiply) allocates packing buffers on every call and
//! is tuned for large matrices; the products of a small model are a few dozen rows of a few dozen
//! columns, where contiguous dot products and row updates (`axpy`) are both faster and allocation-free.

use crate::Float;

/// `sum(a[i] * b[i])`, with eight independent partial sums so the compiler can use SIMD lanes
/// (a single running sum is a dependency chain it may not reorder).
pub(crate) fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [F::zero(); 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: F = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .fold(F::zero(), |sum, (&x, &y)| sum + x * y);
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lanes;
    ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) + tail
}

/// `y += alpha * x`.
pub(crate) fn axpy<F: Float>(alpha: F, x: &[F], y: &mut [F]) {
    debug_assert_eq!(x.len(), y.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// `out = a b^T` for `a` of shape `[rows, inner]` and `b` of shape `[columns, inner]`: each output
/// element is a dot product of two contiguous rows.
pub(crate) fn a_times_b_transposed<F: Float>(a: &[F], b: &[F], inner: usize, out: &mut [F]) {
    if inner == 0 {
        out.fill(F::zero());
        return;
    }
    let columns = b.len() / inner;
    for (a_row, out_row) in a
        .chunks_exact(inner)
        .zip(out.chunks_exact_mut(columns.max(1)))
    {
        for (out, b_row) in out_row.iter_mut().zip(b.chunks_exact(inner)) {
            *out = dot(a_row, b_row);
        }
    }
}

/// `out += a b^T`, as [`a_times_b_transposed`] but accumulating.
pub(crate) fn add_a_times_b_transposed<F: Float>(a: &[F], b: &[F], inner: usize, out: &mut [F]) {
    if inner == 0 {
        return;
    }
    let columns = b.len() / inner;
    for (a_row, out_row) in a
        .chunks_exact(inner)
        .zip(out.chunks_exact_mut(columns.max(1)))
    {
        for (out, b_row) in out_row.iter_mut().zip(b.chunks_exact(inner)) {
            *out += dot(a_row, b_row);
        }
    }
}

/// `out += a b` for `a` of shape `[rows, inner]` and `b` of shape `[inner, columns]`: each output
/// row gathers the rows of `b` weighted by a row of `a`.
pub(crate) fn add_a_times_b<F: Float>(a: &[F], b: &[F], inner: usize, out: &mut [F]) {
    if inner == 0 {
        return;
    }
    let columns = b.len() / inner;
    if columns == 0 {
        return;
    }
    for (a_row, out_row) in a.chunks_exact(inner).zip(out.chunks_exact_mut(columns)) {
        for (&weight, b_row) in a_row.iter().zip(b.chunks_exact(columns)) {
            axpy(weight, b_row, out_row);
        }
    }
}

/// `out += a^T b` for `a` of shape `[rows, a_columns]` and `b` of shape `[rows, b_columns]`: the
/// outer products of matching rows, summed (the weight gradient of a linear layer).
pub(crate) fn add_a_transposed_times_b<F: Float>(a: &[F], b: &[F], rows: usize, out: &mut [F]) {
    if rows == 0 {
        return;
    }
    let (a_columns, b_columns) = (a.len() / rows, b.len() / rows);
    if a_columns == 0 || b_columns == 0 {
        return;
    }
    for (a_row, b_row) in a.chunks_exact(a_columns).zip(b.chunks_exact(b_columns)) {
        for (&weight, out_row) in a_row.iter().zip(out.chunks_exact_mut(b_columns)) {
            axpy(weight, b_row, out_row);
        }
    }
}
