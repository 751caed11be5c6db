//! Normalisations along one axis: softmax and log-softmax (along any axis), and RMSNorm over the
//! last axis. The last axis is the fast path (contiguous rows); the other axes walk strided lanes.

use super::axis_split::AxisSplit;
use super::{Backward, Op, shape_of};
use crate::{Float, Tape, TapeError, Tensor, Var, rows};

impl<F: Float> Tape<F> {
    /// `softmax` over the last axis: of a vector, or of each row of a matrix or of a stack of them
    /// ([`Tape::softmax_axis`] on the last axis). Stable: the row's maximum is subtracted before
    /// exponentiating.
    pub fn softmax(&mut self, a: Var) -> Result<Var, TapeError> {
        let input = self.try_value(a)?;
        require_rows("softmax", input)?;
        let last = input.ndim() - 1;
        self.softmax_axis(a, last)
    }

    /// `softmax` along `axis`: `exp(x - max) / sum(exp(x - max))` over each lane of that axis
    /// (PyTorch's `softmax(x, dim=axis)`), the shape unchanged. Stable as [`Tape::softmax`], and
    /// along the last axis the same values to the bit.
    pub fn softmax_axis(&mut self, a: Var, axis: usize) -> Result<Var, TapeError> {
        self.record(Op::SoftmaxAxis { input: a, axis }, |tape, node| {
            let input = tape.try_value(a)?;
            let split = AxisSplit::new("softmax_axis", input.shape(), axis)?;
            let out = node.value.resize(input.shape());
            if out.is_empty() {
                return Ok(());
            }
            if split.inner == 1 {
                softmax_rows(input.as_slice(), split.len, out);
            } else {
                shifted_exponentials_strided(input.as_slice(), split, out);
                for lane in 0..split.lanes() {
                    let lane = split.lane(lane);
                    let total = lane.clone().fold(F::zero(), |sum, k| sum + out[k]);
                    lane.for_each(|k| out[k] /= total);
                }
            }
            Ok(())
        })
    }

    /// `log softmax` along `axis`, computed stably as `x - max - ln(sum(exp(x - max)))` over each
    /// lane of that axis (PyTorch's `log_softmax(x, dim=axis)`), the shape unchanged. Unlike the
    /// log of [`Tape::softmax_axis`], it stays finite where a probability underflows to zero.
    pub fn log_softmax(&mut self, a: Var, axis: usize) -> Result<Var, TapeError> {
        self.record(Op::LogSoftmax { input: a, axis }, |tape, node| {
            let input = tape.try_value(a)?;
            let split = AxisSplit::new("log_softmax", input.shape(), axis)?;
            let out = node.value.resize(input.shape());
            // The backward pass needs the probabilities: they are kept in `saved`.
            let probabilities = node.saved.resize(input.shape());
            if out.is_empty() {
                return Ok(());
            }
            let x = input.as_slice();
            if split.inner == 1 {
                let rows = shifted_exponentials(x, split.len, probabilities);
                for (out, row) in out.chunks_exact_mut(split.len).zip(rows) {
                    let probabilities = row.exponentials;
                    let total = probabilities.iter().fold(F::zero(), |sum, &p| sum + p);
                    let (max, log_total) = (row.max, total.ln());
                    for ((y, p), &x) in out.iter_mut().zip(probabilities).zip(row.scores) {
                        *y = x - max - log_total;
                        *p /= total;
                    }
                }
                return Ok(());
            }
            shifted_exponentials_strided(x, split, probabilities);
            for lane in 0..split.lanes() {
                let lane = split.lane(lane);
                let max = lane.clone().fold(F::neg_infinity(), |max, k| max.max(x[k]));
                let total = lane
                    .clone()
                    .fold(F::zero(), |sum, k| sum + probabilities[k]);
                let log_total = total.ln();
                for k in lane {
                    out[k] = x[k] - max - log_total;
                    probabilities[k] /= total;
                }
            }
            Ok(())
        })
    }

    /// RMSNorm over the last axis: `x / sqrt(mean(x^2) + epsilon)` for a vector, or for each row of
    /// a matrix or of a stack of them, times `gain` (of the last axis's length) if one is given.
    pub fn rms_norm(&mut self, a: Var, gain: Option<Var>, epsilon: F) -> Result<Var, TapeError> {
        self.record(Op::RmsNorm { input: a, gain }, |tape, node| {
            let input = tape.try_value(a)?;
            require_rows("rms_norm", input)?;
            let width = input.row_len();
            let gain = match gain {
                Some(gain) => Some(require_gain(
                    "rms_norm",
                    "gain",
                    tape.try_value(gain)?,
                    input,
                )?),
                None => None,
            };
            let out = node.value.resize(input.shape());
            // The backward pass needs each row's inverse RMS; keeping it costs one number a row.
            let saved = node.saved.resize(&input.shape()[..input.ndim() - 1]);
            let input = input.as_slice();
            for ((out, row), inverse_rms) in out
                .chunks_exact_mut(width)
                .zip(input.chunks_exact(width))
                .zip(saved)
            {
                *inverse_rms = rows::rms_norm(row, out, epsilon);
                if let Some(gain) = gain {
                    out.iter_mut().zip(gain).for_each(|(y, &g)| *y *= g);
                }
            }
            Ok(())
        })
    }
}

/// Softmax and RMSNorm work on the last axis, which must exist and not be empty.
fn require_rows<F: Float>(op: &'static str, input: &Tensor<F>) -> Result<(), TapeError> {
    if input.ndim() > 0 && input.row_len() > 0 {
        return Ok(());
    }
    let detail = format!(
        "needs a non-empty vector or matrix (or a stack of them: a non-empty last axis), got {}",
        shape_of(input)
    );
    Err(TapeError::shape(op, detail))
}

/// A gain or bias of a normalisation over the last axis: a vector of that axis's length.
pub(super) fn require_gain<'a, F: Float>(
    op: &'static str,
    name: &str,
    gain: &'a Tensor<F>,
    input: &Tensor<F>,
) -> Result<&'a [F], TapeError> {
    if gain.shape() == [input.row_len()] {
        return Ok(gain.as_slice());
    }
    let detail = format!(
        "{name} {} must be [{}], the length of the last axis of the input {}",
        shape_of(gain),
        input.row_len(),
        shape_of(input)
    );
    Err(TapeError::shape(op, detail))
}

/// The largest element of a row (a NaN is skipped, and then poisons the exponentials anyway).
pub(super) fn maximum<F: Float>(row: &[F]) -> F {
    row.iter().fold(F::neg_infinity(), |max, &x| max.max(x))
}

/// The rows [`shifted_exponentials`] exponentiates in one call: enough for the vectorised `f32`
/// exponential to run at full width, few enough that the block is still in the first-level cache
/// when the caller sums it.
const SHIFT_BLOCK_ROWS: usize = 32;

/// One row of [`shifted_exponentials`]: the scores, their maximum, and `exp(score - max)`.
pub(super) struct ShiftedRow<'a, F> {
    pub(super) scores: &'a [F],
    pub(super) max: F,
    pub(super) exponentials: &'a mut [F],
}

/// Writes `exp(x - max(row))` of every row of width `width` (at least 1) of `scores` into the
/// matching row of `out`, and yields each row with its maximum, in order. Softmax, log-softmax and
/// the fused cross-entropies start from it. The rows are exponentiated [`SHIFT_BLOCK_ROWS`] at a
/// time, in one call of the vectorised exponential in `f32`, so the caller reads each row back
/// from cache; the numbers are those of one row at a time.
pub(super) fn shifted_exponentials<'a, F: Float>(
    scores: &'a [F],
    width: usize,
    out: &'a mut [F],
) -> impl Iterator<Item = ShiftedRow<'a, F>> + 'a {
    let block = SHIFT_BLOCK_ROWS * width;
    out.chunks_mut(block)
        .zip(scores.chunks(block))
        .flat_map(move |(out, scores)| {
            let mut maxima = [F::zero(); SHIFT_BLOCK_ROWS];
            let rows = out.chunks_exact_mut(width).zip(scores.chunks_exact(width));
            for ((shifted, row), max) in rows.zip(&mut maxima) {
                *max = maximum(row);
                for (shifted, &x) in shifted.iter_mut().zip(row) {
                    *shifted = x - *max;
                }
            }
            F::exp_in_place(out);
            let rows = out.chunks_exact_mut(width).zip(scores.chunks_exact(width));
            rows.zip(maxima)
                .map(|((exponentials, scores), max)| ShiftedRow {
                    scores,
                    max,
                    exponentials,
                })
        })
}

/// [`shifted_exponentials`] along the lanes of any axis.
fn shifted_exponentials_strided<F: Float>(x: &[F], split: AxisSplit, out: &mut [F]) {
    for lane in 0..split.lanes() {
        let lane = split.lane(lane);
        let max = lane.clone().fold(F::neg_infinity(), |max, k| max.max(x[k]));
        lane.for_each(|k| out[k] = x[k] - max);
    }
    F::exp_in_place(out);
}

/// `softmax` of every row of width `width` (at least 1) of `scores`, into `out`.
fn softmax_rows<F: Float>(scores: &[F], width: usize, out: &mut [F]) {
    for row in shifted_exponentials(scores, width, out) {
        let total = row.exponentials.iter().fold(F::zero(), |sum, &y| sum + y);
        row.exponentials.iter_mut().for_each(|y| *y /= total);
    }
}

/// y = softmax(x) along `axis`: dx = y * (dy - sum(dy * y)) per lane.
pub(super) fn softmax_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, axis: usize) {
    let split = AxisSplit::new("softmax", context.grad.shape(), axis)
        .expect("the axis was checked when the op was recorded");
    let (grad, output) = (context.grad.as_slice(), context.node.value.as_slice());
    let target = context.sink.of(a).as_mut_slice();
    if target.is_empty() {
        return;
    }
    if split.inner == 1 {
        let width = split.len;
        let rows = grad.chunks_exact(width).zip(output.chunks_exact(width));
        for (sums, (grad, output)) in target.chunks_exact_mut(width).zip(rows) {
            let inner = grad
                .iter()
                .zip(output)
                .fold(F::zero(), |sum, (&g, &y)| sum + g * y);
            for ((sum, &grad), &y) in sums.iter_mut().zip(grad).zip(output) {
                *sum += y * (grad - inner);
            }
        }
        return;
    }
    for lane in 0..split.lanes() {
        let lane = split.lane(lane);
        let inner = lane
            .clone()
            .fold(F::zero(), |sum, k| sum + grad[k] * output[k]);
        lane.for_each(|k| target[k] += output[k] * (grad[k] - inner));
    }
}

/// y = log softmax(x) along `axis`, p = softmax(x): dx = dy - p * sum(dy) per lane.
pub(super) fn log_softmax_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, axis: usize) {
    let split = AxisSplit::new("log_softmax", context.grad.shape(), axis)
        .expect("the axis was checked when the op was recorded");
    let (grad, probabilities) = (context.grad.as_slice(), context.node.saved.as_slice());
    let target = context.sink.of(a).as_mut_slice();
    for lane in 0..split.lanes() {
        let lane = split.lane(lane);
        let total = lane.clone().fold(F::zero(), |sum, k| sum + grad[k]);
        lane.for_each(|k| target[k] += grad[k] - probabilities[k] * total);
    }
}

/// y = g x s with s = (mean(x^2) + eps)^(-1/2) (g = 1 without a gain), per row. With u = g dy:
/// dx = s u - (s^3 / n) (u . x) x, and dg = sum over rows of dy x s.
pub(super) fn rms_norm_backward<F: Float>(
    context: &mut Backward<'_, F>,
    a: Var,
    gain: Option<Var>,
) {
    let input = context.tape.value(a);
    let width = input.row_len();
    let size = F::from_f64(width as f64);
    let (input, grad) = (input.as_slice(), context.grad.as_slice());
    let scales = context.node.saved.as_slice();
    let rows = || {
        grad.chunks_exact(width)
            .zip(input.chunks_exact(width))
            .zip(scales)
    };
    // One input at a time, so that a vector may be its own gain.
    let target = context.sink.of(a).as_mut_slice();
    match gain.map(|gain| context.tape.value(gain).as_slice()) {
        None => {
            for (sum, ((grad, row), &scale)) in target.chunks_exact_mut(width).zip(rows()) {
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
        Some(gains) => {
            for (sum, ((grad, row), &scale)) in target.chunks_exact_mut(width).zip(rows()) {
                let dot = (grad.iter().zip(gains).zip(row))
                    .fold(F::zero(), |sum, ((&dy, &g), &x)| sum + g * dy * x);
                let projection = dot * scale * scale * scale / size;
                for (((sum, &dy), &g), &x) in sum.iter_mut().zip(grad).zip(gains).zip(row) {
                    *sum += scale * (g * dy) - projection * x;
                }
            }
        }
    }
    if let Some(gain) = gain {
        let target = context.sink.of(gain).as_mut_slice();
        for ((grad, row), &scale) in rows() {
            for ((sum, &dy), &x) in target.iter_mut().zip(grad).zip(row) {
                *sum += dy * (x * scale);
            }
        }
    }
}
