//! The fused softmax cross-entropy: the mean over rows of `-log softmax(logits_row)[target_row]`,
//! computed through log-sum-exp so it never takes the log of an underflowed probability.

use std::ops::Range;

use super::{Backward, Op, shape_of};
use crate::tape::resize;
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// The mean negative log-likelihood of `targets` under `softmax(logits)`: `logits` is a vector
    /// with one target, or a matrix `[rows, classes]` with one target per row.
    pub fn softmax_cross_entropy(
        &mut self,
        logits: Var,
        targets: &[usize],
    ) -> Result<Var, TapeError> {
        let range = self.push_indices(targets);
        let op = Op::CrossEntropy {
            logits,
            targets: range.clone(),
        };
        self.record(op, |tape, node| {
            let scores = tape.try_value(logits)?;
            let targets = &tape.indices[range];
            let rows = match scores.ndim() {
                1 => 1,
                2 => scores.shape()[0],
                _ => 0,
            };
            if rows == 0 || rows != targets.len() {
                let detail = format!(
                    "logits {} need one target per row, got {} targets",
                    shape_of(scores),
                    targets.len()
                );
                return Err(TapeError::shape("softmax_cross_entropy", detail));
            }
            let classes = scores.len() / rows;
            if let Some(&index) = targets.iter().find(|&&target| target >= classes) {
                let (op, len) = ("softmax_cross_entropy", classes);
                return Err(TapeError::Index { op, index, len });
            }
            // One exponential per logit: the unnormalised probabilities go straight into the saved
            // buffer (the backward pass needs the probabilities), and their sum gives the loss.
            let recording = tape.is_recording();
            if recording {
                resize(&mut node.saved, scores.shape());
            }
            let scores = scores.as_slice().expect("tape values are contiguous");
            let mut total = F::zero();
            for (index, (row, &target)) in scores.chunks_exact(classes).zip(targets).enumerate() {
                let max = row.iter().fold(F::neg_infinity(), |max, &x| max.max(x));
                let sum = if recording {
                    let saved = &mut node
                        .saved
                        .as_slice_mut()
                        .expect("resized buffers are contiguous")[index * classes..][..classes];
                    let mut sum = F::zero();
                    for (p, &x) in saved.iter_mut().zip(row) {
                        *p = (x - max).exp();
                        sum += *p;
                    }
                    saved.iter_mut().for_each(|p| *p /= sum);
                    sum
                } else {
                    row.iter().fold(F::zero(), |sum, &x| sum + (x - max).exp())
                };
                total += sum.ln() + max - row[target];
            }
            resize(&mut node.value, &[]);
            node.value.fill(total / F::from_f64(rows as f64));
            Ok(())
        })
    }
}

/// d loss / d logits_row = (softmax(logits_row) - onehot(target)) / rows.
pub(super) fn cross_entropy_backward<F: Float>(
    context: &mut Backward<'_, F>,
    logits: Var,
    targets: Range<usize>,
) {
    let targets = &context.tape.indices[targets];
    let probabilities = context
        .node
        .saved
        .as_slice()
        .expect("saved buffers are contiguous");
    let classes = probabilities.len() / targets.len().max(1);
    let share = context.grad.iter().copied().next().unwrap_or_else(F::zero)
        / F::from_f64(targets.len() as f64);
    let gradient = context.sink.of(logits);
    let gradient = gradient.as_slice_mut().expect("gradients are contiguous");
    for ((sum, row), &target) in gradient
        .chunks_exact_mut(classes)
        .zip(probabilities.chunks_exact(classes))
        .zip(targets)
    {
        for (sum, &p) in sum.iter_mut().zip(row) {
            *sum += share * p;
        }
        sum[target] -= share;
    }
}
