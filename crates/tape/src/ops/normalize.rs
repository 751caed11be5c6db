//! Row-wise normalisations over the last axis: softmax and RMSNorm.

use ndarray::{Axis, Zip};

use super::{Backward, Op, shape_of};
use crate::tape::resize;
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// `softmax` over the last axis: of a vector, or of each row of a matrix. Stable: the row's
    /// maximum is subtracted before exponentiating.
    pub fn softmax(&mut self, a: Var) -> Result<Var, TapeError> {
        self.record(Op::Softmax(a), |tape, node| {
            let input = tape.try_value(a)?;
            require_rows("softmax", input)?;
            resize(&mut node.value, input.shape());
            node.value.assign(input);
            for mut row in node.value.lanes_mut(Axis(input.ndim() - 1)) {
                let max = row.fold(F::neg_infinity(), |max, &x| max.max(x));
                row.mapv_inplace(|x| (x - max).exp());
                let total = row.sum();
                row.mapv_inplace(|x| x / total);
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
            let width = input.shape()[input.ndim() - 1];
            resize(&mut node.value, input.shape());
            // The backward pass needs each row's inverse RMS; keeping it costs one number a row.
            resize(&mut node.saved, &input.shape()[..input.ndim() - 1]);
            let input = input.as_slice().expect("tape values are contiguous");
            let out = node
                .value
                .as_slice_mut()
                .expect("resized buffers are contiguous");
            let saved = node
                .saved
                .as_slice_mut()
                .expect("resized buffers are contiguous");
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
fn require_rows<F: Float>(op: &'static str, input: &ndarray::ArrayD<F>) -> Result<(), TapeError> {
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
    let last = Axis(context.grad.ndim() - 1);
    Zip::from(context.sink.of(a).lanes_mut(last))
        .and(context.grad.lanes(last))
        .and(context.node.value.lanes(last))
        .for_each(|mut sum, grad, output| {
            let inner = grad.dot(&output);
            Zip::from(&mut sum)
                .and(&grad)
                .and(&output)
                .for_each(|sum, &grad, &y| *sum += y * (grad - inner));
        });
}

/// y = x s with s = (mean(x^2) + eps)^(-1/2): dx = s dy - (s^3 / n) (dy . x) x per row.
pub(super) fn rms_norm_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let input = context.tape.value(a);
    let width = input.shape()[input.ndim() - 1];
    let size = F::from_f64(width as f64);
    let input = input.as_slice().expect("tape values are contiguous");
    let grad = context.grad.as_slice().expect("gradients are contiguous");
    let scales = context
        .node
        .saved
        .as_slice()
        .expect("saved buffers are contiguous");
    let target = context.sink.of(a);
    let target = target.as_slice_mut().expect("gradients are contiguous");
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
