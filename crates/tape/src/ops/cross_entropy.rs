//! The fused softmax cross-entropy: the mean over rows of `-log softmax(logits_row)[target_row]`,
//! computed through log-sum-exp so it never takes the log of an underflowed probability. Rows may be
//! grouped into segments (documents laid end to end) that each weigh the same in the mean, or kept
//! apart, one loss per row (for an evaluation that sums them its own way), or taken over rows of
//! any number of leading axes with some rows ignored (padding).

use std::ops::Range;

use super::normalize::shifted_exponentials;
use super::{Backward, Op, shape_of};
use crate::{Float, Tape, TapeError, Tensor, Var};

/// How an ignored row's target is stored among the tape's integer operands.
const IGNORED: usize = usize::MAX;

impl<F: Float> Tape<F> {
    /// The mean negative log-likelihood of `targets` under `softmax(logits)`: `logits` is a vector
    /// with one target, or a matrix `[rows, classes]` with one target per row.
    pub fn softmax_cross_entropy(
        &mut self,
        logits: Var,
        targets: &[usize],
    ) -> Result<Var, TapeError> {
        self.segmented_cross_entropy(logits, targets, &[targets.len()])
    }

    /// The mean over segments of each segment's mean negative log-likelihood: the rows of `logits`
    /// (`[rows, classes]`, one target per row) are split into consecutive segments of `lengths`
    /// rows. A batch of documents recorded as one sequence of rows gets the mean of its documents'
    /// losses this way, so a short document weighs as much as a long one.
    ///
    /// ```
    /// use ndarray::arr2;
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let logits = tape.constant(arr2(&[[0.0, 0.0], [0.0, 0.0], [0.0, 9.0]]).into_dyn());
    /// // Documents of 2 rows and 1 row: (ln 2 + ln 2) / 2 and about 0; their mean is ln 2 / 2.
    /// let loss = tape.segmented_cross_entropy(logits, &[0, 1, 1], &[2, 1])?;
    /// assert!((tape.scalar(loss) - 2f64.ln() / 2.0).abs() < 1e-4);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn segmented_cross_entropy(
        &mut self,
        logits: Var,
        targets: &[usize],
        lengths: &[usize],
    ) -> Result<Var, TapeError> {
        let targets = self.push_indices(targets);
        let lengths = self.push_indices(lengths);
        let op = Op::CrossEntropy {
            logits,
            targets: targets.clone(),
            lengths: lengths.clone(),
        };
        let recording = self.is_recording();
        self.record(op, |tape, node| {
            let scores = tape.try_value(logits)?;
            let (targets, lengths) = (&tape.indices[targets], &tape.indices[lengths]);
            let classes = check_shapes(scores, targets, lengths)?;
            let probabilities = node.saved.resize(scores.shape());
            let mut losses = row_losses(
                scores.as_slice(),
                classes,
                targets,
                probabilities,
                recording,
            );
            let mut sum_of_means = F::zero();
            for &length in lengths {
                let total = losses
                    .by_ref()
                    .take(length)
                    .fold(F::zero(), |sum, loss| sum + loss);
                sum_of_means += total / F::from_f64(length as f64);
            }
            node.value.resize(&[])[0] = sum_of_means / F::from_f64(lengths.len() as f64);
            Ok(())
        })
    }
}

impl<F: Float> Tape<F> {
    /// Each row's negative log-likelihood `-log softmax(logits_row)[target_row]`, as a vector of
    /// `rows` losses (one for a vector `logits`): the numbers [`Tape::segmented_cross_entropy`]
    /// averages, to the bit.
    ///
    /// ```
    /// use ndarray::arr2;
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let logits = tape.constant(arr2(&[[0.0, 0.0], [0.0, 9.0]]));
    /// let losses = tape.row_cross_entropy(logits, &[1, 0])?;
    /// let losses = tape.value(losses).as_slice();
    /// // ln 2, and ln(1 + e^9) - 0, about 9.
    /// assert!((losses[0] - 2f64.ln()).abs() < 1e-15 && (losses[1] - 9.0).abs() < 1e-3);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn row_cross_entropy(&mut self, logits: Var, targets: &[usize]) -> Result<Var, TapeError> {
        let targets = self.push_indices(targets);
        let op = Op::RowCrossEntropy {
            logits,
            targets: targets.clone(),
        };
        let recording = self.is_recording();
        self.record(op, |tape, node| {
            let scores = tape.try_value(logits)?;
            let targets = &tape.indices[targets];
            let classes = check_shapes(scores, targets, &[targets.len()])?;
            let probabilities = node.saved.resize(scores.shape());
            let losses = row_losses(
                scores.as_slice(),
                classes,
                targets,
                probabilities,
                recording,
            );
            let out = node.value.resize(&[targets.len()]);
            for (out, loss) in out.iter_mut().zip(losses) {
                *out = loss;
            }
            Ok(())
        })
    }
}

impl<F: Float> Tape<F> {
    /// The mean negative log-likelihood of `targets` under `softmax(logits)` over the rows that are
    /// not ignored, as `torch.nn.functional.cross_entropy(logits, targets, ignore_index=i)` with
    /// logits flattened to rows: `logits` is `[.., classes]` (every leading axis counts rows, so a
    /// `[B, T, C]` batch has `B * T` rows) with one target per row, in row-major order.
    ///
    /// A row whose target equals `ignore_index` contributes nothing, to the loss or to the
    /// gradient, and the mean is over the other rows (makemore pads its targets with -1 this way).
    /// If every row is ignored the mean is over no rows: PyTorch returns NaN, which then spreads
    /// silently through training; this returns an error instead. Any other target must be a class
    /// (`0..classes`): a larger one is a [`TapeError::Index`], a negative one a
    /// [`TapeError::Shape`] naming it (an index error cannot hold a negative number).
    ///
    /// ```
    /// use ndarray::arr3;
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// // Two sequences of two positions over three classes: [B, T, C] = [2, 2, 3].
    /// let logits = tape.constant(arr3(&[
    ///     [[0.0, 0.0, 0.0], [9.0, 0.0, 0.0]],
    ///     [[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]],
    /// ]));
    /// // The second sequence ends early: its last position is padding.
    /// let loss = tape.cross_entropy(logits, &[2, 0, 1, -1], Some(-1))?;
    /// // Rows 0 and 2 are uniform (ln 3 each), row 1 about 0: the mean over three rows.
    /// let row_1 = (1.0 + 2.0 * (-9f64).exp()).ln();
    /// assert!((tape.scalar(loss) - (2.0 * 3f64.ln() + row_1) / 3.0).abs() < 1e-12);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn cross_entropy(
        &mut self,
        logits: Var,
        targets: &[i64],
        ignore_index: Option<i64>,
    ) -> Result<Var, TapeError> {
        let op = "cross_entropy";
        let scores = self.try_value(logits)?;
        let classes = scores.row_len();
        if scores.ndim() == 0 || classes == 0 || scores.len() / classes != targets.len() {
            let detail = format!(
                "logits {} need a non-empty last axis of classes and one target per row of the \
                 other axes, got {} targets",
                shape_of(scores),
                targets.len()
            );
            return Err(TapeError::shape(op, detail));
        }
        let mut kept = 0;
        for (row, &target) in targets.iter().enumerate() {
            if Some(target) == ignore_index {
                continue;
            }
            if target < 0 {
                let detail = format!(
                    "target {target} of row {row} is negative, and only the ignore index \
                     ({ignore_index:?}) may be"
                );
                return Err(TapeError::argument(op, detail));
            }
            let index = usize::try_from(target).unwrap_or(usize::MAX);
            if index >= classes {
                return Err(TapeError::Index {
                    op,
                    index,
                    len: classes,
                });
            }
            kept += 1;
        }
        if kept == 0 {
            let rows = match targets.len() {
                0 => "there are no rows".to_string(),
                rows => {
                    format!("every one of the {rows} rows has the ignore index {ignore_index:?}")
                }
            };
            let detail = format!("{rows}: the mean over no rows is undefined");
            return Err(TapeError::argument(op, detail));
        }
        let start = self.indices.len();
        // Every target left is a class, so it converts; an ignored one becomes the marker.
        let stored = targets.iter().map(|&target| {
            if Some(target) == ignore_index {
                IGNORED
            } else {
                target as usize
            }
        });
        self.indices.extend(stored);
        let targets = start..self.indices.len();
        let recorded = Op::CrossEntropyIgnoring {
            logits,
            targets: targets.clone(),
        };
        let recording = self.is_recording();
        self.record(recorded, |tape, node| {
            let scores = tape.try_value(logits)?;
            let probabilities = node.saved.resize(scores.shape());
            let rows = row_log_sum_exps(scores.as_slice(), classes, probabilities, recording);
            let mut total = F::zero();
            for ((log_sum_exp, row), &target) in rows.zip(&tape.indices[targets]) {
                if target != IGNORED {
                    total += log_sum_exp - row[target];
                }
            }
            node.value.resize(&[])[0] = total / F::from_f64(kept as f64);
            Ok(())
        })
    }
}

/// Writes `softmax(row)` of every row of `scores` into `probabilities` (what backward needs) and
/// returns each row's log-sum-exp `ln(sum(exp(row)))` beside the row, in order: the sum of the
/// row's exponentials shifted by its maximum (see [`shifted_exponentials`]), shifted back. A row's
/// probabilities are normalised as its log-sum-exp is taken, so callers take every row's. Without
/// `normalise` (no backward will read them, as in [`Tape::without_grad`]) `probabilities` is left
/// holding the unnormalised exponentials, which saves a division per element; the log-sum-exps are
/// the same either way.
fn row_log_sum_exps<'a, F: Float>(
    scores: &'a [F],
    classes: usize,
    probabilities: &'a mut [F],
    normalise: bool,
) -> impl Iterator<Item = (F, &'a [F])> + 'a {
    shifted_exponentials(scores, classes, probabilities).map(move |row| {
        let sum = row.exponentials.iter().fold(F::zero(), |sum, &p| sum + p);
        if normalise {
            row.exponentials.iter_mut().for_each(|p| *p /= sum);
        }
        (sum.ln() + row.max, row.scores)
    })
}

/// Each row's `-log softmax(row)[target] = log-sum-exp(row) - row[target]`, in order, with the
/// probabilities written as [`row_log_sum_exps`] does.
fn row_losses<'a, F: Float>(
    scores: &'a [F],
    classes: usize,
    targets: &'a [usize],
    probabilities: &'a mut [F],
    normalise: bool,
) -> impl Iterator<Item = F> + 'a {
    row_log_sum_exps(scores, classes, probabilities, normalise)
        .zip(targets)
        .map(|((log_sum_exp, row), &target)| log_sum_exp - row[target])
}

/// Checks that `scores` has one target per row, each a valid class, and that the segments' lengths
/// are positive and cover the rows exactly; returns the number of classes.
fn check_shapes<F: Float>(
    scores: &Tensor<F>,
    targets: &[usize],
    lengths: &[usize],
) -> Result<usize, TapeError> {
    let op = "softmax_cross_entropy";
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
        return Err(TapeError::shape(op, detail));
    }
    if lengths.contains(&0) || lengths.iter().sum::<usize>() != rows {
        let detail = format!("segments of {lengths:?} rows do not split {rows} rows");
        return Err(TapeError::shape(op, detail));
    }
    let classes = scores.len() / rows;
    match targets.iter().find(|&&target| target >= classes) {
        Some(&index) => Err(TapeError::Index {
            op,
            index,
            len: classes,
        }),
        None => Ok(classes),
    }
}

/// d loss / d logits_row = (softmax(logits_row) - onehot(target)) / (segments * segment_length).
pub(super) fn cross_entropy_backward<F: Float>(
    context: &mut Backward<'_, F>,
    logits: Var,
    targets: Range<usize>,
    lengths: Range<usize>,
) {
    let targets = &context.tape.indices[targets];
    let lengths = &context.tape.indices[lengths];
    let probabilities = context.node.saved.as_slice();
    let classes = probabilities.len() / targets.len().max(1);
    let per_segment = context.grad.as_slice()[0] / F::from_f64(lengths.len() as f64);
    let gradient = context.sink.of(logits).as_mut_slice();
    let mut rows = gradient
        .chunks_exact_mut(classes)
        .zip(probabilities.chunks_exact(classes))
        .zip(targets);
    for &length in lengths {
        let share = per_segment / F::from_f64(length as f64);
        for ((sum, row), &target) in rows.by_ref().take(length) {
            add_softmax_gradient(sum, row, target, share);
        }
    }
}

/// d loss_r / d logits_row = softmax(logits_row) - onehot(target), for each row's own loss.
pub(super) fn row_cross_entropy_backward<F: Float>(
    context: &mut Backward<'_, F>,
    logits: Var,
    targets: Range<usize>,
) {
    let targets = &context.tape.indices[targets];
    let probabilities = context.node.saved.as_slice();
    let classes = probabilities.len() / targets.len().max(1);
    let grads = context.grad.as_slice();
    let gradient = context.sink.of(logits).as_mut_slice();
    for (((sum, row), &target), &grad) in gradient
        .chunks_exact_mut(classes)
        .zip(probabilities.chunks_exact(classes))
        .zip(targets)
        .zip(grads)
    {
        add_softmax_gradient(sum, row, target, grad);
    }
}

/// `sum += share * (probabilities - onehot(target))`.
fn add_softmax_gradient<F: Float>(sum: &mut [F], probabilities: &[F], target: usize, share: F) {
    for (sum, &p) in sum.iter_mut().zip(probabilities) {
        *sum += share * p;
    }
    sum[target] -= share;
}

/// d loss / d logits_row = (softmax(logits_row) - onehot(target)) / kept rows, and 0 for an
/// ignored row.
pub(super) fn cross_entropy_ignoring_backward<F: Float>(
    context: &mut Backward<'_, F>,
    logits: Var,
    targets: Range<usize>,
) {
    let targets = &context.tape.indices[targets];
    let probabilities = context.node.saved.as_slice();
    let classes = probabilities.len() / targets.len();
    let kept = targets.iter().filter(|&&target| target != IGNORED).count();
    let share = context.grad.as_slice()[0] / F::from_f64(kept as f64);
    let gradient = context.sink.of(logits).as_mut_slice();
    let rows = gradient
        .chunks_exact_mut(classes)
        .zip(probabilities.chunks_exact(classes));
    for ((sum, row), &target) in rows.zip(targets) {
        if target != IGNORED {
            add_softmax_gradient(sum, row, target, share);
        }
    }
}
