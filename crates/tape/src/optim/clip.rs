//! Gradient clipping by the global L2 norm, as `torch.nn.utils.clip_grad_norm_`.

use super::ParameterGradients;
use crate::{Float, Tape, TapeError, Tensor};

/// Added to the norm before dividing, as torch does, so that a zero norm divides safely.
pub const CLIP_EPSILON: f64 = 1e-6;

/// Squares accumulated side by side per tensor: enough independent sums for the compiler to
/// vectorise, in a fixed order (element `i` goes to lane `i % LANES`), so the norm is the same bits
/// however the gradients were computed.
const LANES: usize = 8;

/// The L2 norm of all of `tape`'s parameters' gradients taken together, as if laid end to end:
/// `sqrt(sum of g^2)`. The squares are summed in `f64`, tensor by tensor in parameter order, in
/// [`LANES`] fixed lanes within each tensor, so the result depends on the gradients alone.
///
/// torch takes the norm of the per-tensor norms in the gradients' own precision: the same number up
/// to rounding.
pub fn gradient_norm<F: Float>(
    tape: &Tape<F>,
    gradients: &dyn ParameterGradients<F>,
) -> Result<f64, TapeError> {
    let mut total = 0.0;
    for (index, var) in tape.parameters().enumerate() {
        let gradient = gradients.gradient(index, var).ok_or_else(|| {
            TapeError::argument("clip", format!("parameter {index} has no gradient"))
        })?;
        let values = gradient.as_slice();
        let mut lanes = [0.0f64; LANES];
        let mut chunks = values.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (lane, &g) in lanes.iter_mut().zip(chunk) {
                let g = g.to_f64();
                *lane += g * g;
            }
        }
        for (lane, &g) in lanes.iter_mut().zip(chunks.remainder()) {
            let g = g.to_f64();
            *lane += g * g;
        }
        total += lanes.iter().sum::<f64>();
    }
    Ok(total.sqrt())
}

/// torch's factor for a gradient of norm `norm` clipped to `max_norm`:
/// `min(1, max_norm / (norm + 1e-6))`. A norm that is not finite gives 1 (gradients left as they
/// are, where torch would make them NaN): the loss shows such a step anyway.
pub fn clip_coefficient(norm: f64, max_norm: f64) -> f64 {
    if norm.is_finite() {
        (max_norm / (norm + CLIP_EPSILON)).min(1.0)
    } else {
        1.0
    }
}

/// Clips gradients to a global L2 norm before an optimizer steps with them, as
/// `torch.nn.utils.clip_grad_norm_(parameters, max_norm)` does: when their norm
/// ([`gradient_norm`]) exceeds `max_norm`, every gradient is multiplied by
/// [`clip_coefficient`]. The scaled copies live in a buffer kept from step to step; gradients
/// within the norm are handed on untouched, uncopied.
///
/// ```
/// use ndarray::arr1;
/// use tape::optim::{GradientClip, Optimizer, Sgd, SgdConfig};
/// use tape::{Tape, Tensor};
///
/// let mut tape = Tape::<f64>::new();
/// let w = tape.parameter(arr1(&[0.0, 0.0]));
/// // A gradient of norm 5, clipped to norm 1: [3, 4] becomes about [0.6, 0.8].
/// let gradients = vec![Tensor::from(arr1(&[3.0, 4.0]))];
/// let mut clip = GradientClip::new();
/// let clipped = clip.clip(&tape, &gradients, 1.0)?;
/// assert_eq!(clipped.norm, 5.0);
/// let mut sgd = Sgd::new(SgdConfig::default());
/// sgd.step(&mut tape, clipped.gradients, 1.0)?;
/// let moved = tape.value(w).as_slice();
/// assert!((moved[0] + 0.6).abs() < 1e-6 && (moved[1] + 0.8).abs() < 1e-6, "{moved:?}");
/// # Ok::<(), tape::TapeError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct GradientClip<F: Float> {
    /// The scaled gradients of the last clipped step, in parameter order.
    scaled: Vec<Tensor<F>>,
}

/// The outcome of [`GradientClip::clip`].
pub struct Clipped<'a, F: Float> {
    /// The gradients' norm before clipping.
    pub norm: f64,
    /// The factor applied (1: the gradients are the ones given).
    pub coefficient: f64,
    /// The gradients to step with.
    pub gradients: &'a dyn ParameterGradients<F>,
}

impl<F: Float> GradientClip<F> {
    /// A clipper with no buffer yet; the first clipped step allocates it.
    pub fn new() -> Self {
        GradientClip { scaled: Vec::new() }
    }

    /// `gradients` (of `tape`'s parameters) clipped to norm `max_norm`, a finite number above 0.
    pub fn clip<'a>(
        &'a mut self,
        tape: &Tape<F>,
        gradients: &'a dyn ParameterGradients<F>,
        max_norm: f64,
    ) -> Result<Clipped<'a, F>, TapeError> {
        if !(max_norm.is_finite() && max_norm > 0.0) {
            let detail = format!("max_norm must be finite and above 0, got {max_norm}");
            return Err(TapeError::argument("clip", detail));
        }
        let norm = gradient_norm(tape, gradients)?;
        let coefficient = clip_coefficient(norm, max_norm);
        if coefficient == 1.0 {
            return Ok(Clipped {
                norm,
                coefficient,
                gradients,
            });
        }
        let factor = F::from_f64(coefficient);
        let count = tape.parameters().len();
        self.scaled.resize_with(count, Tensor::empty);
        for ((index, var), scaled) in tape.parameters().enumerate().zip(&mut self.scaled) {
            let gradient = gradients
                .gradient(index, var)
                .expect("gradient_norm found every gradient");
            let target = scaled.resize(gradient.shape());
            for (target, &g) in target.iter_mut().zip(gradient.as_slice()) {
                *target = g * factor;
            }
        }
        Ok(Clipped {
            norm,
            coefficient,
            gradients: &self.scaled,
        })
    }
}
