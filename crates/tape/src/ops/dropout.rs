//! Inverted dropout: during training each element is zeroed with probability `p` and the others
//! scaled by `1 / (1 - p)`, so the expected value of every element is unchanged and evaluation
//! needs no rescaling. The random draws come from a generator the caller passes in, so a seeded
//! run is reproducible.

use rand::distr::{Bernoulli, Distribution};

use super::{Backward, Op};
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// Inverted dropout of `a` with drop probability `p` in `[0, 1)`: each element independently
    /// becomes 0 with probability `p` and is otherwise multiplied by `1 / (1 - p)` (as
    /// `torch.nn.functional.dropout` in training mode). The mask is kept for the backward pass, which
    /// multiplies the gradient by the same factors. One draw from `rng` per element, in row-major
    /// order; `p = 0` is the identity and draws nothing. Apply it only while training: the op does
    /// not know whether it is.
    ///
    /// ```
    /// use ndarray::Array1;
    /// use rand::SeedableRng;
    /// use rand::rngs::Xoshiro256PlusPlus;
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    /// let x = tape.constant(Array1::from_elem(1000, 1.0));
    /// let y = tape.dropout(x, 0.25, &mut rng)?;
    /// // Every element is 0 or 1 / 0.75, and about a quarter are 0.
    /// let y = tape.value(y).as_slice();
    /// assert!(y.iter().all(|&y| y == 0.0 || y == 0.75f64.recip()));
    /// let dropped = y.iter().filter(|&&y| y == 0.0).count();
    /// assert!((200..300).contains(&dropped), "{dropped}");
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn dropout(&mut self, a: Var, p: F, rng: &mut impl rand::Rng) -> Result<Var, TapeError> {
        let probability = p.to_f64();
        let dropped = match Bernoulli::new(probability) {
            Ok(dropped) if probability < 1.0 => dropped,
            _ => {
                let detail = format!(
                    "the drop probability p = {probability} is outside [0, 1) (p = 1 would drop \
                     everything and scale by infinity)"
                );
                return Err(TapeError::argument("dropout", detail));
            }
        };
        let scale = (F::one() - p).recip();
        self.record(Op::Dropout(a), |tape, node| {
            let input = tape.try_value(a)?;
            let out = node.value.resize(input.shape());
            // The mask holds each element's factor, 0 or 1 / (1 - p): the backward pass reuses it.
            let mask = node.saved.resize(input.shape());
            if probability == 0.0 {
                out.copy_from_slice(input.as_slice());
                mask.fill(F::one());
                return Ok(());
            }
            for ((y, factor), &x) in out.iter_mut().zip(mask).zip(input.as_slice()) {
                *factor = if dropped.sample(rng) {
                    F::zero()
                } else {
                    scale
                };
                *y = x * *factor;
            }
            Ok(())
        })
    }
}

/// y = m x elementwise, with the mask m fixed by the forward pass: dx = m dy.
pub(super) fn dropout_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let (grad, mask) = (context.grad.as_slice(), context.node.saved.as_slice());
    let target = context.sink.of(a).as_mut_slice();
    for ((sum, &grad), &factor) in target.iter_mut().zip(grad).zip(mask) {
        *sum += grad * factor;
    }
}
