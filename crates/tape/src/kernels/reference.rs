//! The textbook loops of each kernel in [`kernels`](super), one element at a time, with no
//! blocking, tiling or lanes: the oracle the optimised kernels are tested against (as llm.c keeps
//! its naive matmul beside the fast one). Each states the order in which it sums, so a test can
//! say whether the optimised kernel must match it to the bit.

use super::{Matrix, MatrixMut};
use crate::Float;

impl<F: Float> Matrix<'_, F> {
    /// The element in row `r`, column `c`.
    fn at(&self, r: usize, c: usize) -> F {
        self.data[r * self.stride + c]
    }
}

/// `out[r, c] += sum_k a[r, k] m[k, c]`, the sum formed from zero in the order of `k` and then
/// added to `out`.
pub(super) fn add_product<F: Float>(a: Matrix<'_, F>, m: Matrix<'_, F>, out: MatrixMut<'_, F>) {
    add_sums(a.columns, out, |r, c, k| a.at(r, k) * m.at(k, c));
}

/// `out[i, c] += a[r, i] b[r, c]` for each `r` in turn: `out += a^T b`, each term added to `out`
/// as it comes.
pub(super) fn add_transposed_product<F: Float>(
    a: Matrix<'_, F>,
    b: Matrix<'_, F>,
    out: MatrixMut<'_, F>,
) {
    for r in 0..a.rows {
        for i in 0..a.columns {
            for c in 0..b.columns {
                out.data[i * out.stride + c] += a.at(r, i) * b.at(r, c);
            }
        }
    }
}

/// `out[r, c] += sum_k a[r, k] b[c, k]`: `out += a b^T`, each sum formed from zero in the order of
/// `k`.
pub(super) fn add_a_times_b_transposed<F: Float>(
    a: Matrix<'_, F>,
    b: Matrix<'_, F>,
    out: MatrixMut<'_, F>,
) {
    add_sums(a.columns, out, |r, c, k| a.at(r, k) * b.at(c, k));
}

/// `out[r, c] += sum_k term(r, c, k)` over `k < inner`, each sum formed from zero in the order of
/// `k` and then added to `out`.
fn add_sums<F: Float>(
    inner: usize,
    out: MatrixMut<'_, F>,
    term: impl Fn(usize, usize, usize) -> F,
) {
    for r in 0..out.rows {
        for c in 0..out.columns {
            let sum = (0..inner).fold(F::zero(), |sum, k| sum + term(r, c, k));
            out.data[r * out.stride + c] += sum;
        }
    }
}

/// `out[c, r] = m[r, c]`.
pub(super) fn transpose_into<F: Float>(m: Matrix<'_, F>, out: MatrixMut<'_, F>) {
    for r in 0..m.rows {
        for c in 0..m.columns {
            out.data[c * out.stride + r] = m.at(r, c);
        }
    }
}

/// `sum_i a[i] b[i]`, formed from zero in the order of `i`.
pub(super) fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    a.iter().zip(b).fold(F::zero(), |sum, (&x, &y)| sum + x * y)
}
