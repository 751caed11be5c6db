//! Learning-rate schedules: microgpt.py's linear decay (the default), cosine decay and a constant
//! rate, each after an optional linear warmup and down to an optional floor.

use std::fmt;
use std::str::FromStr;

/// The shape of the decay after the warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decay {
    /// `lr * (1 - t / T)`: microgpt.py's, to 0 at the end of the run (or to `min_lr`).
    Linear,
    /// Half a cosine from `lr` to `min_lr` (nanoGPT's).
    Cosine,
    /// `lr` throughout (after the warmup).
    Constant,
}

impl Decay {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Decay::Linear => "linear",
            Decay::Cosine => "cosine",
            Decay::Constant => "constant",
        }
    }
}

impl fmt::Display for Decay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`Decay`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown schedule {0:?}: expected linear, cosine or constant")]
pub struct ParseDecayError(pub String);

impl FromStr for Decay {
    type Err = ParseDecayError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Decay::Linear, Decay::Cosine, Decay::Constant]
            .into_iter()
            .find(|decay| decay.name() == name)
            .ok_or_else(|| ParseDecayError(name.to_string()))
    }
}

/// The learning rate of every step of a run.
///
/// Steps `0..warmup_steps` rise linearly, `lr * (t + 1) / (warmup_steps + 1)`, as nanoGPT's warmup;
/// the rest follow `decay` from `lr` to `min_lr`, with progress
/// `p = (t - warmup_steps) / (num_steps - warmup_steps)`: linear `min_lr + (lr - min_lr) (1 - p)`,
/// cosine `min_lr + (lr - min_lr) (1 + cos(pi p)) / 2`, constant `lr`. With no warmup and no floor,
/// linear is exactly microgpt.py's `lr * (1 - t / num_steps)`.
///
/// ```
/// use gpt::{Decay, Schedule};
/// let cosine = Schedule { decay: Decay::Cosine, warmup_steps: 10, ..Schedule::linear(1e-3) };
/// assert_eq!(cosine.learning_rate(0, 110), 1e-3 / 11.0);
/// assert_eq!(cosine.learning_rate(10, 110), 1e-3);
/// assert!((cosine.learning_rate(60, 110) - 0.5e-3).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// The peak rate, reached at the end of the warmup.
    pub lr: f64,
    /// The shape after the warmup.
    pub decay: Decay,
    /// Steps of linear warmup (0: none).
    pub warmup_steps: usize,
    /// The rate the decay ends at (ignored by [`Decay::Constant`]).
    pub min_lr: f64,
}

impl Schedule {
    /// microgpt.py's schedule: linear decay from `lr` to 0, no warmup.
    pub fn linear(lr: f64) -> Self {
        Schedule {
            lr,
            decay: Decay::Linear,
            warmup_steps: 0,
            min_lr: 0.0,
        }
    }

    /// The learning rate of step `step` (0-based) of a run of `num_steps`.
    pub fn learning_rate(&self, step: usize, num_steps: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        if self.decay == Decay::Constant {
            return self.lr;
        }
        let decaying = num_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = (step - self.warmup_steps) as f64 / decaying as f64;
        match self.decay {
            // Kept as microgpt.py writes it, so that the default run is its to the bit.
            Decay::Linear if self.min_lr == 0.0 => self.lr * (1.0 - progress),
            Decay::Linear => self.min_lr + (self.lr - self.min_lr) * (1.0 - progress),
            _ => {
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.min_lr + (self.lr - self.min_lr) * cosine
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_microgpt_pys_linear_decay_to_the_bit() {
        // microgpt.py: `lr_t = learning_rate * (1 - step / num_steps)`.
        let schedule = Schedule::linear(0.01);
        for (step, num_steps) in [(0, 500), (1, 500), (250, 500), (499, 500), (7, 1000)] {
            let python = 0.01 * (1.0 - step as f64 / num_steps as f64);
            assert_eq!(schedule.learning_rate(step, num_steps), python);
        }
    }

    #[test]
    fn warmup_rises_linearly_to_the_peak() {
        // nanoGPT: `learning_rate * (it + 1) / (warmup_iters + 1)`: 1/5, 2/5, ... of 0.5 for 4 steps.
        let schedule = Schedule {
            warmup_steps: 4,
            decay: Decay::Constant,
            ..Schedule::linear(0.5)
        };
        let rates: Vec<f64> = (0..6).map(|t| schedule.learning_rate(t, 10)).collect();
        assert_eq!(rates, [0.1, 0.2, 0.3, 0.4, 0.5, 0.5]);
    }

    #[test]
    fn linear_with_a_floor_and_warmup_decays_to_the_floor() {
        // 2 warmup steps, then 8 decaying steps from 1.0 to 0.2: step 2 is 1.0, step 6 halfway
        // (0.2 + 0.8 * 0.5 = 0.6), step 9 is 0.2 + 0.8 / 8 = 0.3.
        let schedule = Schedule {
            warmup_steps: 2,
            min_lr: 0.2,
            ..Schedule::linear(1.0)
        };
        assert_eq!(schedule.learning_rate(2, 10), 1.0);
        assert!((schedule.learning_rate(6, 10) - 0.6).abs() < 1e-15);
        assert!((schedule.learning_rate(9, 10) - 0.3).abs() < 1e-15);
    }

    #[test]
    fn cosine_follows_half_a_cosine_to_the_floor() {
        // 100 steps, no warmup, 1.0 to 0.1: p = 1/4 gives 0.1 + 0.9 (1 + cos(pi/4)) / 2
        // = 0.1 + 0.9 * 0.853553390593 = 0.868198051534; p = 1/2 gives 0.55; p = 3/4 gives
        // 0.1 + 0.9 * 0.146446609407 = 0.231801948466.
        let schedule = Schedule {
            decay: Decay::Cosine,
            min_lr: 0.1,
            ..Schedule::linear(1.0)
        };
        assert_eq!(schedule.learning_rate(0, 100), 1.0);
        for (step, expected) in [(25, 0.868198051534), (50, 0.55), (75, 0.231801948466)] {
            let rate = schedule.learning_rate(step, 100);
            assert!((rate - expected).abs() < 1e-12, "step {step}: {rate}");
        }
    }

    #[test]
    fn names_parse_back() {
        for decay in [Decay::Linear, Decay::Cosine, Decay::Constant] {
            assert_eq!(decay.name().parse(), Ok(decay));
        }
        assert!("step".parse::<Decay>().is_err());
    }
}
