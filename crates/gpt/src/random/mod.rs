//! Where every random draw of the model comes from: initialisation, shuffling and sampling.
//!
//! The model never calls a generator directly; it asks a [`Randomness`] for the few draws it needs.
//! Any generator of the `rand` crate is one (through the blanket implementation below), and so is
//! [`PythonRandom`], a re-implementation of CPython's `random` module that lets a run reproduce
//! microgpt.py draw for draw.

mod python;

pub use python::PythonRandom;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

/// The random draws the model needs, in the vocabulary of CPython's `random` module.
pub trait Randomness {
    /// A float drawn uniformly from `[0, 1)`.
    fn uniform(&mut self) -> f64;

    /// A float drawn from the normal distribution with this mean and standard deviation.
    fn normal(&mut self, mean: f64, std_dev: f64) -> f64;

    /// Puts `items` in a uniformly random order, in place.
    fn shuffle<T>(&mut self, items: &mut [T]);

    /// An index `i` drawn with probability `weights[i] / sum(weights)`.
    ///
    /// The weights must be finite, non-negative and not all zero, and `weights` must not be empty.
    fn weighted_index(&mut self, weights: &[f64]) -> usize;
}

impl<R: Rng + ?Sized> Randomness for R {
    fn uniform(&mut self) -> f64 {
        self.random::<f64>()
    }

    fn normal(&mut self, mean: f64, std_dev: f64) -> f64 {
        let standard: f64 = StandardNormal.sample(self);
        mean + std_dev * standard
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        // Fisher-Yates from the back, the same walk as CPython's `random.shuffle`.
        for i in (1..items.len()).rev() {
            let j = self.random_range(0..=i);
            items.swap(i, j);
        }
    }

    fn weighted_index(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let target = self.uniform() * total;
        first_cumulative_above(weights, target)
    }
}

/// The first index whose running sum of `weights` exceeds `target` (the last index if none does).
///
/// This is `bisect_right` over the cumulative weights, as CPython's `random.choices` does it, so two
/// generators that draw the same `target` pick the same index. The weights are not negative, so
/// the running sums never fall and that index is the number of sums at or below `target`: counted
/// without a branch, the walk has no exit to mispredict, once a token.
pub(crate) fn first_cumulative_above(weights: &[f64], target: f64) -> usize {
    let mut cumulative = 0.0;
    let mut at_or_below = 0;
    for weight in weights {
        cumulative += weight;
        at_or_below += usize::from(cumulative <= target);
    }
    at_or_below.min(weights.len().saturating_sub(1))
}
