//! LayerNorm over the last axis as one fused op: each row centred on its mean, divided by its
//! standard deviation (the biased one, as PyTorch), then scaled by a gain and shifted by a bias.
//! Fused because the composition records eight nodes a row-sized buffer each, and its backward is
//! three short passes; the tests prove it equal to that composition.

use super::normalize::require_gain;
use super::{Backward, Op};
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// LayerNorm over the last axis of `x` (a vector, or the rows of a matrix or of a stack of
    /// them): `(x - mean) / sqrt(var + epsilon) * gain + bias` per row, where `var` is the biased
    /// variance `mean((x - mean)^2)` (as `torch.nn.LayerNorm`). `gain` and `bias`, if given, are
    /// vectors of the last axis's length; without them it is `gain = 1`, `bias = 0`. The shape is
    /// unchanged.
    ///
    /// ```
    /// use ndarray::{arr1, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.constant(arr2(&[[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 6.0]]));
    /// let gain = tape.parameter(arr1(&[1.0, 1.0, 2.0, 2.0]));
    /// let bias = tape.parameter(arr1(&[0.0, 0.0, 0.0, 10.0]));
    /// let y = tape.layer_norm(x, Some(gain), Some(bias), 0.0)?;
    /// // Row 0: mean 2.5, variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
    /// let expected = (4.0 - 2.5) / 1.25f64.sqrt() * 2.0 + 10.0;
    /// assert!((tape.value(y).as_slice()[3] - expected).abs() < 1e-12);
    /// // Row 1: mean 3, variance (1 + 1 + 1 + 9) / 4 = 3, so its first element is -1 / sqrt(3).
    /// assert!((tape.value(y).as_slice()[4] + 3f64.sqrt().recip()).abs() < 1e-12);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn layer_norm(
        &mut self,
        x: Var,
        gain: Option<Var>,
        bias: Option<Var>,
        epsilon: F,
    ) -> Result<Var, TapeError> {
        let op = Op::LayerNorm {
            input: x,
            gain,
            bias,
        };
        self.record(op, |tape, node| {
            let input = tape.try_value(x)?;
            if input.ndim() == 0 || input.row_len() == 0 {
                let detail = format!(
                    "needs a non-empty last axis to normalise over, got {:?}",
                    input.shape()
                );
                return Err(TapeError::shape("layer_norm", detail));
            }
            let vector = |var: Option<Var>, name| match var {
                Some(var) => {
                    require_gain("layer_norm", name, tape.try_value(var)?, input).map(Some)
                }
                None => Ok(None),
            };
            let (gain, bias) = (vector(gain, "gain")?, vector(bias, "bias")?);
            let width = input.row_len();
            let size = F::from_f64(width as f64);
            let out = node.value.resize(input.shape());
            // Each row's mean and inverse standard deviation, for the backward pass.
            let saved = node.saved.resize(&[input.len() / width, 2]);
            let rows = input.as_slice().chunks_exact(width);
            for ((out, row), statistics) in out
                .chunks_exact_mut(width)
                .zip(rows)
                .zip(saved.chunks_exact_mut(2))
            {
                let mean = row.iter().fold(F::zero(), |sum, &x| sum + x) / size;
                let variance = row
                    .iter()
                    .fold(F::zero(), |sum, &x| sum + (x - mean) * (x - mean))
                    / size;
                let inverse_std = (variance + epsilon).sqrt().recip();
                for (y, &x) in out.iter_mut().zip(row) {
                    *y = (x - mean) * inverse_std;
                }
                if let Some(gain) = gain {
                    out.iter_mut().zip(gain).for_each(|(y, &g)| *y *= g);
                }
                if let Some(bias) = bias {
                    out.iter_mut().zip(bias).for_each(|(y, &b)| *y += b);
                }
                statistics.copy_from_slice(&[mean, inverse_std]);
            }
            Ok(())
        })
    }
}

/// With x̂ = (x - mean) s, s = (var + eps)^(-1/2), y = g x̂ + b and u = g dy, per row:
/// dx = s (u - mean(u) - x̂ mean(u x̂)), dg = sum over rows of dy x̂, db = sum over rows of dy.
/// (The two means are what the row's mean and variance pass back to each element.)
pub(super) fn layer_norm_backward<F: Float>(
    context: &mut Backward<'_, F>,
    x: Var,
    gain: Option<Var>,
    bias: Option<Var>,
) {
    let input = context.tape.value(x);
    let width = input.row_len();
    let size = F::from_f64(width as f64);
    let gains = gain.map(|gain| context.tape.value(gain).as_slice());
    let (input, grad) = (input.as_slice(), context.grad.as_slice());
    let saved = context.node.saved.as_slice();
    let rows = || {
        grad.chunks_exact(width)
            .zip(input.chunks_exact(width))
            .zip(saved.chunks_exact(2))
            .map(|((grad, row), statistics)| (grad, row, statistics[0], statistics[1]))
    };
    let gain_of = |column: usize| gains.map_or(F::one(), |gains| gains[column]);
    // One input at a time, so that one vector may be the input, the gain and the bias.
    let target = context.sink.of(x).as_mut_slice();
    for (sums, (grad, row, mean, inverse_std)) in target.chunks_exact_mut(width).zip(rows()) {
        let (mut mean_u, mut mean_u_normed) = (F::zero(), F::zero());
        for (column, (&dy, &x)) in grad.iter().zip(row).enumerate() {
            let u = gain_of(column) * dy;
            mean_u += u;
            mean_u_normed += u * ((x - mean) * inverse_std);
        }
        let (mean_u, mean_u_normed) = (mean_u / size, mean_u_normed / size);
        for (column, ((sum, &dy), &x)) in sums.iter_mut().zip(grad).zip(row).enumerate() {
            let normed = (x - mean) * inverse_std;
            *sum += inverse_std * (gain_of(column) * dy - mean_u - normed * mean_u_normed);
        }
    }
    if let Some(gain) = gain {
        let target = context.sink.of(gain).as_mut_slice();
        for (grad, row, mean, inverse_std) in rows() {
            for ((sum, &dy), &x) in target.iter_mut().zip(grad).zip(row) {
                *sum += dy * ((x - mean) * inverse_std);
            }
        }
    }
    if let Some(bias) = bias {
        let target = context.sink.of(bias).as_mut_slice();
        for (grad, ..) in rows() {
            for (sum, &dy) in target.iter_mut().zip(grad) {
                *sum += dy;
            }
        }
    }
}
