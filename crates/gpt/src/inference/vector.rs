//! The small vector kernels of the decode step, on contiguous slices.
//!
//! Sums keep microgpt.py's left-to-right order where that costs nothing (short vectors, the
//! attention-weighted sum of values); long dot products use eight partial sums, as the tape's
//! kernels do, so the compiler can vectorise them.

use tape::Float;

/// `sum(a[i] * b[i])` with eight independent partial sums (one running sum would be a dependency
/// chain the compiler may not reorder). Shorter than eight elements, it is a plain left-to-right sum.
#[inline]
pub(crate) fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    debug_assert_eq!(a.len(), b.len());
    // Arrays of eight, not slices, so that the lane loop has no bounds checks.
    let (a_chunks, a_tail) = a.as_chunks::<8>();
    let (b_chunks, b_tail) = b.as_chunks::<8>();
    let tail = a_tail
        .iter()
        .zip(b_tail)
        .fold(F::zero(), |sum, (&x, &y)| sum + x * y);
    if a_chunks.is_empty() {
        return tail;
    }
    let mut lanes = [F::zero(); 8];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
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

/// `out = matrix x` for a row-major `matrix [out.len(), x.len()]`.
#[inline]
pub(crate) fn matvec<F: Float>(matrix: &[F], x: &[F], out: &mut [F]) {
    debug_assert_eq!(matrix.len(), x.len() * out.len());
    for (out, row) in out.iter_mut().zip(matrix.chunks_exact(x.len())) {
        *out = dot(row, x);
    }
}

/// `out += matrix x` (a linear layer followed by a residual connection).
#[inline]
pub(crate) fn matvec_add<F: Float>(matrix: &[F], x: &[F], out: &mut [F]) {
    debug_assert_eq!(matrix.len(), x.len() * out.len());
    for (out, row) in out.iter_mut().zip(matrix.chunks_exact(x.len())) {
        *out += dot(row, x);
    }
}

/// `out = x / sqrt(mean(x * x) + 1e-5)`, computed as microgpt.py does: the mean is a multiplication
/// by `len ** -1` and the scale is `(ms + 1e-5) ** -0.5`.
pub(crate) fn rmsnorm<F: Float>(x: &[F], out: &mut [F]) {
    let scale = rms_scale(x);
    for (out, &x) in out.iter_mut().zip(x) {
        *out = x * scale;
    }
}

/// [`rmsnorm`] in place.
pub(crate) fn rmsnorm_in_place<F: Float>(x: &mut [F]) {
    let scale = rms_scale(x);
    for x in x.iter_mut() {
        *x *= scale;
    }
}

fn rms_scale<F: Float>(x: &[F]) -> F {
    let inverse_len = F::from_f64((x.len() as f64).powf(-1.0));
    let mean_square = x.iter().fold(F::zero(), |sum, &x| sum + x * x) * inverse_len;
    (mean_square + F::from_f64(1e-5)).powf(F::from_f64(-0.5))
}

/// `x = softmax(x)`: the maximum subtracted, exponentials summed left to right, each multiplied by
/// the inverse of the sum (microgpt.py's `e / total` is `e * total ** -1`).
pub(crate) fn softmax_in_place<F: Float>(x: &mut [F]) {
    let Some((&first, rest)) = x.split_first() else {
        return;
    };
    // Python's `max` keeps the first of equal values; for a maximum that makes no difference.
    let max = rest
        .iter()
        .fold(first, |max, &value| if value > max { value } else { max });
    let mut total = F::zero();
    for value in x.iter_mut() {
        *value = (*value - max).exp();
        total += *value;
    }
    let inverse_total = total.powf(-F::one());
    for value in x.iter_mut() {
        *value *= inverse_total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_a_plain_sum_on_every_length() {
        for len in 0..20 {
            let a: Vec<f64> = (0..len).map(|i| f64::from(i) * 0.5 - 3.0).collect();
            let b: Vec<f64> = (0..len).map(|i| 1.0 + f64::from(i % 3)).collect();
            let expected: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - expected).abs() < 1e-12, "length {len}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = [1.0f64, 3.0, 2.0];
        softmax_in_place(&mut x);
        assert!((x.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!(x[1] > x[2] && x[2] > x[0]);
    }

    #[test]
    fn rmsnorm_gives_unit_mean_square() {
        let mut x = [3.0f64, 4.0];
        rmsnorm_in_place(&mut x);
        let mean_square = (x[0] * x[0] + x[1] * x[1]) / 2.0;
        assert!((mean_square - 12.5 / (12.5 + 1e-5)).abs() < 1e-12);
    }
}
