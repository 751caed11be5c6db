//! Row-wise normalisations over the last axis: softmax and RMSNorm.

use super::{Backward, Op, shape_of};
use crate::{Float, Tape, TapeError, Tensor, Var};

impl<F: Float> Tape<F> {
    /// `softmax` over the last axis: of a vector, or of each row of a matrix. Stable: the row's
    /// maximum is subtracted before exponentiating.
    pub fn softmax(&mut self, a: Var) -> Result<Var, TapeError> {
        self.record(Op::Softmax(a), |tape, node| {
            let input = tape.try_value(a)?;
            require_rows("softmax", input)?;
            let width = input.row_len();
            let out = node.value.resize(input.shape());
            for (out, row) in out
                .chunks_exact_mut(width)
                .zip(input.as_slice().chunks_exact(width))
            {
                let max = row.iter().fold(F::neg_infinity(), |max, &x| max.max(x));
                for (y, &x) in out.iter_mut().zip(row) {
                    *y = x - max;
                }
                F::exp_in_place(out);
                let total = out.iter().fold(F::zero(), |sum, &y| sum + y);
                out.iter_mut().for_each(|y| *y /= total);
            }
            Ok(())
        })
    }

    /// RMSNorm over the last axis without a learned gain: `x / sqrt(mean(x^2) + epsilon)` for a
    /// vector, or for each row of a matrix.
    pub fn rms_norm(&mut self, a: Var, epsilon: F) -> Result<Var, TapeError> {
        self.record(Op::RmsNorm(a), |tape, node| {
            let input = tape.try_value(a)?;
            require_rows("rms_norm", input)?;
            let width = input.row_len();
            let out = node.value.resize(input.shape());
            // The backward pass needs each row's inverse RMS; keeping it costs one number a row.
            let saved = node.saved.resize(&input.shape()[..input.ndim() - 1]);
            let input = input.as_slice();
            let size = F::from_f64(width as f64);
            for ((out, row), inverse_rms) in out
                .chunks_exact_mut(width)
                .zip(input.chunks_exact(width))
                .zip(saved)
            {
                let mean_square = row.iter().fold(F::zero(), |sum, &x| sum + x * x) / size;
                *inverse_rms = (mean_square + epsilon).sqrt().recip();
                for (y, &x) in out.iter_mut().zip(row) {
                    *y = x * *inverse_rms;
                }
            }
            Ok(())
        })
    }
}

/// Softmax and RMSNorm work on the last axis of a vector or a matrix.
fn require_rows<F: Float>(op: &'static str, input: &Tensor<F>) -> Result<(), TapeError> {
    match input.ndim() {
        1 | 2 if input.shape()[input.ndim() - 1] > 0 => Ok(()),
        _ => Err(TapeError::shape(
            op,
            format!(
                "needs a non-empty vector or matrix, got {}",
                shape_of(input)
            ),
        )),
    }
}

/// y = softmax(x): dx = y * (dy - sum(dy * y)) per row.
pub(super) fn softmax_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let width = context.grad.row_len();
    let grads = context.grad.as_slice().chunks_exact(width);
    let outputs = context.node.value.as_slice().chunks_exact(width);
    let target = context.sink.of(a).as_mut_slice();
    for ((sums, grad), output) in target.chunks_exact_mut(width).zip(grads).zip(outputs) {
        let inner = grad
            .iter()
            .zip(output)
            .fold(F::zero(), |sum, (&g, &y)| sum + g * y);
        for ((sum, &grad), &y) in sums.iter_mut().zip(grad).zip(output) {
            *sum += y * (grad - inner);
        }
    }
}

/// y = x s with s = (mean(x^2) + eps)^(-1/2): dx = s dy - (s^3 / n) (dy . x) x per row.
pub(super) fn rms_norm_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let input = context.tape.value(a);
    let width = input.row_len();
    let size = F::from_f64(width as f64);
    let (input, grad) = (input.as_slice(), context.grad.as_slice());
    let scales = context.node.saved.as_slice();
    let target = context.sink.of(a).as_mut_slice();
    for (((sum, grad), row), &scale) in target
        .chunks_exact_mut(width)
        .zip(grad.chunks_exact(width))
        .zip(input.chunks_exact(width))
        .zip(scales)
    {
        let dot = grad
            .iter()
            .zip(row)
            .fold(F::zero(), |sum, (&g, &x)| sum + g * x);
        let projection = dot * scale * scale * scale / size;
        for ((sum, &grad), &x) in sum.iter_mut().zip(grad).zip(row) {
            *sum += scale * grad - projection * x;
        }
    }
}
