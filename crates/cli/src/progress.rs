//! Training progress on stderr: a live bar on a terminal, periodic plain lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::stream::note;

/// The least time between two updates of the bar: formatting its message every step costs a few
/// percent of a small model's step, and no one reads faster than this.
const BAR_INTERVAL: Duration = Duration::from_millis(100);

/// Reports steps as they finish.
pub struct Progress {
    bar: Option<ProgressBar>,
    first_step: usize,
    /// The step this invocation stops at (`--stop-after`, or the run's end).
    last_step: usize,
    /// The run's total, which the counter shows whether or not this invocation reaches it.
    total: usize,
    log_every: usize,
    clock: TrainingClock,
    last_update: Option<Instant>,
    tokens: usize,
}

impl Progress {
    /// Progress of steps `first_step..last_step` of a run of `total` steps.
    pub fn new(first_step: usize, last_step: usize, total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_position(first_step as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} step {pos}/{len} | {msg} | ETA {eta}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            first_step,
            last_step,
            total,
            log_every: (last_step.saturating_sub(first_step) / 10).max(1),
            clock: TrainingClock::new(Instant::now()),
            last_update: None,
            tokens: 0,
        }
    }

    /// Step `step` (1-based) finished with this loss, learning rate and number of predicted tokens.
    pub fn step(&mut self, step: usize, loss: f64, lr: f64, tokens: usize) {
        self.tokens += tokens;
        let now = Instant::now();
        let due = match &self.bar {
            Some(_) => bar_due(step, self.last_step, self.last_update, now),
            None => {
                (step - self.first_step).is_multiple_of(self.log_every) || step == self.last_step
            }
        };
        if !due {
            return;
        }
        self.last_update = Some(now);
        let rate = tokens_per_second(self.tokens, self.clock.training_time(now));
        let message = format!("loss {loss:.4} | lr {lr:.5} | {} tok/s", human(rate));
        match &self.bar {
            Some(bar) => {
                bar.set_position(step as u64);
                bar.set_message(message);
            }
            None => {
                let elapsed = (now - self.clock.started).as_secs_f64();
                let done = (step - self.first_step) as f64;
                let eta = elapsed / done.max(1.0) * (self.last_step - step) as f64;
                note!("step {step}/{} | {message} | eta {eta:.1}s", self.total);
            }
        }
    }

    /// Leaves `duration` (an evaluation, samples) out of the throughput.
    pub fn exclude(&mut self, duration: Duration) {
        self.clock.exclude(duration);
    }

    /// The time spent in training steps so far and the tokens predicted per second of it, from
    /// one reading of the clock, so that the rate is the tokens over the time printed beside it.
    pub fn throughput(&self) -> (Duration, f64) {
        let training = self.clock.training_time(Instant::now());
        (training, tokens_per_second(self.tokens, training))
    }

    /// A line that must not be garbled by the bar (a validation loss, a note).
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => note!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The time a run spends in its training steps: the time since it started less the time left out
/// (evaluations, samples), so that the throughput measures the steps alone.
struct TrainingClock {
    started: Instant,
    /// The time spent outside training steps so far.
    excluded: Duration,
}

impl TrainingClock {
    fn new(started: Instant) -> Self {
        TrainingClock {
            started,
            excluded: Duration::ZERO,
        }
    }

    fn exclude(&mut self, duration: Duration) {
        self.excluded += duration;
    }

    /// The training time up to `now`.
    fn training_time(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
            .saturating_sub(self.excluded)
    }
}

/// `tokens` over `training` time, finite even before any time has passed.
fn tokens_per_second(tokens: usize, training: Duration) -> f64 {
    tokens as f64 / training.as_secs_f64().max(1e-9)
}

/// Whether the bar shows step `step` finishing at `now`: the last step always, any other once
/// [`BAR_INTERVAL`] has passed since the bar last changed, whatever the number of steps between.
fn bar_due(step: usize, last_step: usize, last_update: Option<Instant>, now: Instant) -> bool {
    step == last_step || last_update.is_none_or(|last| now - last >= BAR_INTERVAL)
}

/// `123456.0` as `123.5k`.
fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.1}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_is_redrawn_by_time_not_by_step() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // The first step is shown; so is the last, however soon after.
        assert!(bar_due(1, 1000, None, at(0)));
        assert!(bar_due(1000, 1000, Some(at(0)), at(1)));
        // In between, a step 99 ms after the last redraw is not, one 100 ms after is, whatever
        // the steps: thousands of fast steps draw the bar about ten times a second.
        assert!(!bar_due(2, 1000, Some(at(0)), at(99)));
        assert!(!bar_due(900, 1000, Some(at(0)), at(99)));
        assert!(bar_due(3, 1000, Some(at(0)), at(100)));
        assert!(bar_due(3, 1000, Some(at(50)), at(400)));
    }

    /// If this failed, evaluations and samples would count as training: the tokens/s readout
    /// and the "trained steps a..b in Xs" line would drop with every evaluation.
    #[test]
    fn training_time_leaves_out_the_excluded_durations() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut clock = TrainingClock::new(start);
        assert_eq!(clock.training_time(at(700)), Duration::from_millis(700));
        // A 300 ms evaluation and 200 ms of samples within 2 s leave 1.5 s of training.
        clock.exclude(Duration::from_millis(300));
        clock.exclude(Duration::from_millis(200));
        assert_eq!(clock.training_time(at(2000)), Duration::from_millis(1500));
        // 3,000 tokens in those 1.5 s: 2,000 a second (by hand), not 3000 / 2 = 1,500.
        let training = clock.training_time(at(2000));
        assert_eq!(tokens_per_second(3000, training), 2000.0);
        // More left out than has elapsed (400 ms against 500) is no time at all, not a panic,
        // and the rate stays finite.
        assert_eq!(clock.training_time(at(400)), Duration::ZERO);
        assert!(tokens_per_second(3000, Duration::ZERO).is_finite());
        assert_eq!(tokens_per_second(0, Duration::ZERO), 0.0);
    }

    #[test]
    fn rates_read_with_their_unit() {
        assert_eq!(human(950.0), "950");
        assert_eq!(human(123_456.0), "123.5k");
        assert_eq!(human(2_500_000.0), "2.5M");
    }
}
