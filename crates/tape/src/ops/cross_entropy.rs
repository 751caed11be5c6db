//! The fused softmax cross-entropy: the mean over rows of `-log softmax(logits_row)[target_row]`,
//! computed through log-sum-exp so it never takes the log of an underflowed probability.

use std::ops::Range;

use ndarray::{Axis, Zip};

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
            let last = Axis(scores.ndim() - 1);
            let mut total = F::zero();
            for (row, &target) in scores.lanes(last).into_iter().zip(targets) {
                let max = row.fold(F::neg_infinity(), |max, &x| max.max(x));
                let sum = row.fold(F::zero(), |sum, &x| sum + (x - max).exp());
                total += sum.ln() + max - row[target];
            }
            if tape.is_recording() {
                // The probabilities are all the backward pass needs: keep them.
                resize(&mut node.saved, scores.shape());
                node.saved.assign(scores);
                for mut row in node.saved.lanes_mut(last) {
                    let max = row.fold(F::neg_infinity(), |max, &x| max.max(x));
                    row.mapv_inplace(|x| (x - max).exp());
                    let sum = row.sum();
                    row.mapv_inplace(|x| x / sum);
                }
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
    let probabilities = &context.node.saved;
    let last = Axis(probabilities.ndim() - 1);
    let share = context.grad.iter().copied().next().unwrap_or_else(F::zero)
        / F::from_f64(targets.len() as f64);
    let gradient = context.sink.of(logits);
    for ((mut sum, row), &target) in gradient
        .lanes_mut(last)
        .into_iter()
        .zip(probabilities.lanes(last))
        .zip(targets)
    {
        Zip::from(&mut sum)
            .and(&row)
            .for_each(|sum, &p| *sum += share * p);
        sum[target] -= share;
    }
}
