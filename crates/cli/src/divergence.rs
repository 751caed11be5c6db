//! Telling a diverging run from a training one, and keeping the last state that was still healthy.
//!
//! NaN and infinity are not the only failures: with `--lr 1e6` the loss climbs to 1e21 and stays
//! finite. An untrained model's loss is about ln(vocab_size) (uniform predictions), somewhat more
//! for a wide model whose initial logits are large (9.2 against ln 18 = 2.9 at n_embd 256); a loss
//! three times the larger of the two is far worse than where the run started, which no working run
//! reaches. A non-finite gradient would turn every weight into NaN at the next update.

use gpt::{Adam, AdamState, Model, Params, Step};
use tape::Float;

/// The checks of one step.
pub struct Guard {
    uniform: f64,
    /// Three times the larger of ln(vocab_size) and the run's first finite loss, once seen.
    limit: Option<f64>,
}

impl Guard {
    /// The guard of a model over `vocab_size` tokens.
    pub fn new(vocab_size: usize) -> Self {
        Guard {
            uniform: (vocab_size as f64).ln(),
            limit: None,
        }
    }

    /// Why `step`, whose loss is `loss`, is not healthy, if it is not. `names` are the parameters'
    /// names, in the model's order.
    pub fn problem<F: Float>(
        &mut self,
        loss: f64,
        step: &Step<'_, F>,
        names: &[String],
    ) -> Option<String> {
        if !loss.is_finite() {
            return Some(format!("the loss is {loss}"));
        }
        let limit = *self
            .limit
            .get_or_insert_with(|| 3.0 * self.uniform.max(loss));
        if loss > limit {
            let loss = if loss < 1e6 {
                format!("{loss:.4}")
            } else {
                format!("{loss:.3e}")
            };
            return Some(format!(
                "the loss {loss} is over {limit:.4}, three times the untrained model's (the larger of ln(vocab size) and the first step's)"
            ));
        }
        names.iter().enumerate().find_map(|(index, name)| {
            let finite = all_finite(step.gradient(index).as_slice());
            (!finite).then(|| format!("the gradient of {name} is not finite"))
        })
    }
}

/// Whether every value is finite. Folded without an early exit, which lets the check run in
/// vector registers: it runs over every gradient of every step, which is almost always finite, so
/// stopping at the first bad value would rarely save anything.
fn all_finite<F: Float>(values: &[F]) -> bool {
    values
        .iter()
        .fold(true, |finite, value| finite & value.is_finite())
}

/// The weights and optimizer state before the last update whose step was healthy: what is saved
/// when the next step is found to diverge. Buffers are reused, so keeping it costs a copy a step.
pub struct Healthy<F> {
    pub params: Params<F>,
    pub adam: AdamState<F>,
}

impl<F: Float> Healthy<F> {
    /// Starts from the run's initial state.
    pub fn new(params: Params<F>, adam: AdamState<F>) -> Self {
        Healthy { params, adam }
    }

    /// Remembers the current state (call it before the update of a healthy step).
    pub fn record(&mut self, model: &Model<F>, adam: &Adam<F>) {
        model.copy_params_into(&mut self.params);
        adam.copy_state_into(&mut self.adam);
    }
}

#[cfg(test)]
mod tests {
    use super::all_finite;

    #[test]
    fn one_value_that_is_not_finite_anywhere_makes_the_values_not_finite() {
        let finite = [
            0.0,
            -0.0,
            1.0,
            -3.5,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            1e-310,
        ];
        assert!(all_finite(&finite));
        assert!(all_finite::<f64>(&[]));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            // At each position of a run longer than a vector register, the last included.
            for position in 0..37 {
                let mut values = vec![0.25; 37];
                values[position] = bad;
                assert!(!all_finite(&values), "{bad} at {position}");
                let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                assert!(!all_finite(&values), "{bad} at {position} in f32");
            }
        }
    }
}
