//! The fused softmax cross-entropy: the mean over rows of `-log softmax(logits_row)[target_row]`,
//! computed through log-sum-exp so it never takes the log of an underflowed probability. Rows may be
//! grouped into segments (documents laid end to end) that each weigh the same in the mean, or kept
//! apart, one loss per row (for an evaluation that sums them its own way).

use std::ops::Range;

use super::{Backward, Op, shape_of};
use crate::{Float, Tape, TapeError, Tensor, Var};

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
        self.record(op, |tape, node| {
            let scores = tape.try_value(logits)?;
            let (targets, lengths) = (&tape.indices[targets], &tape.indices[lengths]);
            let classes = check_shapes(scores, targets, lengths)?;
            let probabilities = node.saved.resize(scores.shape());
            let mut losses = row_losses(scores.as_slice(), classes, targets, probabilities);
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
        self.record(op, |tape, node| {
            let scores = tape.try_value(logits)?;
            let targets = &tape.indices[targets];
            let classes = check_shapes(scores, targets, &[targets.len()])?;
            let probabilities = node.saved.resize(scores.shape());
            let losses = row_losses(scores.as_slice(), classes, targets, probabilities);
            let out = node.value.resize(&[targets.len()]);
            for (out, loss) in out.iter_mut().zip(losses) {
                *out = loss;
            }
            Ok(())
        })
    }
}

/// Writes `softmax(row)` of every row of `scores` into `probabilities` (what backward needs) and
/// returns each row's `-log softmax(row)[target]`, in order. The exponentials of the whole matrix
/// are computed in one call, and the loss comes from their unnormalised sum (log-sum-exp). A row's
/// probabilities are normalised as its loss is taken, so callers take every row's.
fn row_losses<'a, F: Float>(
    scores: &'a [F],
    classes: usize,
    targets: &'a [usize],
    probabilities: &'a mut [F],
) -> impl Iterator<Item = F> + 'a {
    for (shifted, row) in probabilities
        .chunks_exact_mut(classes)
        .zip(scores.chunks_exact(classes))
    {
        let max = maximum(row);
        for (shifted, &x) in shifted.iter_mut().zip(row) {
            *shifted = x - max;
        }
    }
    F::exp_in_place(probabilities);
    probabilities
        .chunks_exact_mut(classes)
        .zip(scores.chunks_exact(classes))
        .zip(targets)
        .map(|((probabilities, row), &target)| {
            let sum = probabilities.iter().fold(F::zero(), |sum, &p| sum + p);
            probabilities.iter_mut().for_each(|p| *p /= sum);
            sum.ln() + maximum(row) - row[target]
        })
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

fn maximum<F: Float>(row: &[F]) -> F {
    row.iter().fold(F::neg_infinity(), |max, &x| max.max(x))
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
