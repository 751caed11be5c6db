//! The loss curve's points for the chart, in memory that does not grow with the number of steps.
//!
//! Training pushes a point every step, for as many steps as asked; the chart needs only a few
//! thousand to draw the same curve. So each series (training and validation loss) keeps at most
//! its bound of points: when it is full, adjacent pairs are merged into one point whose loss is
//! their mean and whose step is the later of the two (so steps stay whole numbers and the curve
//! still ends at the last step), and the steps that follow are gathered in buckets twice as wide.
//! Every kept point is then the mean of the same number of consecutive losses, and the chart still
//! spans the whole run. Up to the bound nothing is merged: the log holds exactly the pushed points.

/// The loss at one training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPoint {
    /// The step (0-based).
    pub step: usize,
    /// The training loss of that step.
    pub train_loss: f64,
    /// The validation loss, when it was evaluated at that step.
    pub val_loss: Option<f64>,
}

/// The most training-loss points kept (even, so that merging pairs leaves none alone).
const TRAIN_POINTS: usize = 4096;
/// The most validation-loss points kept; usually a few per hundred steps are evaluated.
const VAL_POINTS: usize = 1024;
const _: () = assert!(TRAIN_POINTS.is_multiple_of(2) && VAL_POINTS.is_multiple_of(2));

/// The training and validation losses of a run, each down-sampled to a bounded number of
/// `(step, loss)` points. Non-finite losses are left out, as the chart cannot draw them and one
/// would spoil every mean it joined.
#[derive(Clone, Debug)]
pub struct LossLog {
    train: Downsampled,
    val: Downsampled,
}

impl Default for LossLog {
    fn default() -> Self {
        Self {
            train: Downsampled::new(TRAIN_POINTS),
            val: Downsampled::new(VAL_POINTS),
        }
    }
}

impl LossLog {
    /// Adds the losses of one step; steps come in increasing order.
    pub fn push(&mut self, point: &LossPoint) {
        if point.train_loss.is_finite() {
            self.train.push(point.step, point.train_loss);
        }
        if let Some(val_loss) = point.val_loss.filter(|loss| loss.is_finite()) {
            self.val.push(point.step, val_loss);
        }
    }

    /// The training loss points, in step order.
    pub fn train(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.train.points()
    }

    /// How many consecutive training losses each full training point is the mean of (1 until the
    /// bound is first reached).
    pub fn train_steps_per_point(&self) -> usize {
        self.train.losses_per_point
    }

    /// The validation loss points, in step order.
    pub fn val(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.val.points()
    }
}

/// One series of `(step, loss)` points, at most `bound` of them.
#[derive(Clone, Debug)]
struct Downsampled {
    bound: usize,
    /// Full points, each the mean of `losses_per_point` consecutive losses.
    full: Vec<(usize, f64)>,
    losses_per_point: usize,
    /// The losses pushed since the last full point.
    bucket: Bucket,
}

/// A running mean of consecutive losses.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    last_step: usize,
    sum: f64,
    count: usize,
}

impl Downsampled {
    fn new(bound: usize) -> Self {
        Self {
            bound,
            full: Vec::new(),
            losses_per_point: 1,
            bucket: Bucket::default(),
        }
    }

    fn push(&mut self, step: usize, loss: f64) {
        // Room is made only when a new point must start, so a series of exactly `bound` points
        // stays unmerged.
        if self.bucket.count == 0 && self.full.len() == self.bound {
            self.merge_pairs();
        }
        self.bucket.last_step = step;
        self.bucket.sum += loss;
        self.bucket.count += 1;
        if self.bucket.count == self.losses_per_point {
            self.full.push(self.bucket.mean());
            self.bucket = Bucket::default();
        }
    }

    /// Halves the full points; both of a pair cover as many losses, so the mean of their means is
    /// the mean of all their losses.
    fn merge_pairs(&mut self) {
        let pairs = self.full.len() / 2;
        for index in 0..pairs {
            let ((_, earlier), (step, later)) = (self.full[2 * index], self.full[2 * index + 1]);
            self.full[index] = (step, (earlier + later) / 2.0);
        }
        self.full.truncate(pairs);
        self.losses_per_point *= 2;
    }

    /// The full points, then the partly filled bucket's mean so far, if any.
    fn points(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        let partial = (self.bucket.count > 0).then(|| self.bucket.mean());
        self.full.iter().copied().chain(partial)
    }
}

impl Bucket {
    fn mean(&self) -> (usize, f64) {
        (self.last_step, self.sum / self.count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Noisy losses like a real run's, without any structure that merging could hide.
    fn loss_at(step: usize) -> f64 {
        2.3 + ((step as f64 * 12.9898).sin() * 43758.5453).fract().abs()
    }

    /// Checks `kept` against the raw `(step, loss)` series it was made from. Each kept point covers
    /// the raw points after the previous kept step up to its own, so its loss must be their mean
    /// (computed here directly), every raw point must be covered, and the last kept step must be
    /// the last raw step. Returns how many raw points each kept point covers.
    fn check_means(kept: &[(usize, f64)], raw: &[(usize, f64)]) -> Vec<usize> {
        let mut covered = Vec::new();
        let mut rest = raw;
        for &(step, loss) in kept {
            let count = rest
                .iter()
                .take_while(|(raw_step, _)| *raw_step <= step)
                .count();
            assert!(count > 0, "the point at step {step} covers no loss");
            assert_eq!(rest[count - 1].0, step, "a kept step that is no raw step");
            let mean = rest[..count].iter().map(|(_, loss)| loss).sum::<f64>() / count as f64;
            // Merged means are means of means: equal to the direct mean up to rounding.
            assert!(
                (loss - mean).abs() <= 1e-12 * mean.abs(),
                "step {step}: kept {loss}, mean of its {count} losses {mean}"
            );
            covered.push(count);
            rest = &rest[count..];
        }
        assert!(
            rest.is_empty(),
            "{} losses after the last point",
            rest.len()
        );
        covered
    }

    /// `(step, loss)` points, as pushed.
    type Series = Vec<(usize, f64)>;

    /// A log of `steps` steps, validated every 4th, and the raw training and validation series.
    fn run(steps: usize) -> (LossLog, Series, Series) {
        let mut log = LossLog::default();
        let (mut raw_train, mut raw_val) = (Vec::new(), Vec::new());
        for step in 1..=steps {
            let val_loss = step.is_multiple_of(4).then(|| loss_at(step) + 0.1);
            log.push(&LossPoint {
                step,
                train_loss: loss_at(step),
                val_loss,
            });
            raw_train.push((step, loss_at(step)));
            raw_val.extend(val_loss.map(|loss| (step, loss)));
        }
        (log, raw_train, raw_val)
    }

    #[test]
    fn ten_times_the_bound_keeps_at_most_the_bound_of_exact_means_over_the_whole_run() {
        let (log, raw_train, raw_val) = run(10 * TRAIN_POINTS);
        // Validation every 4th step: 10 times its own bound as well.
        assert_eq!(raw_val.len(), 10 * VAL_POINTS);
        for (name, kept, raw, bound) in [
            (
                "train",
                log.train().collect::<Vec<_>>(),
                raw_train,
                TRAIN_POINTS,
            ),
            ("val", log.val().collect(), raw_val, VAL_POINTS),
        ] {
            assert!(kept.len() <= bound, "{name}: {} points", kept.len());
            // Merging never goes further than needed: at least half the bound is kept.
            assert!(kept.len() >= bound / 2, "{name}: {} points", kept.len());
            let covered = check_means(&kept, &raw);
            // The chart spans the run: the first point starts at the first loss (checked above,
            // as every loss is covered) and the last one is the last loss.
            assert_eq!(kept.last().unwrap().0, raw.last().unwrap().0, "{name}");
            // Evenly sampled: every point but a partly filled last one covers as many losses.
            let width = covered[0];
            assert!(width > 1, "{name} was not merged");
            assert!(
                covered[..covered.len() - 1]
                    .iter()
                    .all(|&count| count == width)
                    && *covered.last().unwrap() <= width,
                "{name}: {covered:?}"
            );
            if name == "train" {
                assert_eq!(log.train_steps_per_point(), width);
            }
        }
    }

    #[test]
    fn up_to_the_bound_the_log_holds_exactly_the_pushed_points() {
        let (log, raw_train, raw_val) = run(TRAIN_POINTS);
        assert_eq!(raw_val.len(), VAL_POINTS);
        assert_eq!(log.train().collect::<Vec<_>>(), raw_train);
        assert_eq!(log.val().collect::<Vec<_>>(), raw_val);
        assert_eq!(log.train_steps_per_point(), 1);
    }

    #[test]
    fn non_finite_losses_are_left_out_of_their_series_only() {
        let mut log = LossLog::default();
        for (step, train_loss, val_loss) in [
            (1, f64::NAN, Some(3.0)),
            (2, 2.5, Some(f64::INFINITY)),
            (3, f64::NEG_INFINITY, None),
            (4, 2.0, Some(2.75)),
        ] {
            log.push(&LossPoint {
                step,
                train_loss,
                val_loss,
            });
        }
        assert_eq!(log.train().collect::<Vec<_>>(), [(2, 2.5), (4, 2.0)]);
        assert_eq!(log.val().collect::<Vec<_>>(), [(1, 3.0), (4, 2.75)]);
    }
}
