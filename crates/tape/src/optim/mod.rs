//! Optimizers: what turns a backward pass's gradients into new parameter values.
//!
//! [`Sgd`] (momentum, Nesterov, weight decay, as `torch.optim.SGD`) and [`Adam`] (Kingma & Ba,
//! with decoupled weight decay it is [`AdamW`], as `torch.optim.AdamW`) update every parameter of a
//! [`Tape`] with its gradient; [`GradientClip`] clips the gradients to a global norm before
//! either steps, as `torch.nn.utils.clip_grad_norm_`. The learning rate is an argument of each [`Optimizer::step`], so a
//! schedule is ordinary code in the training loop. Each keeps its per-parameter buffers (momentum,
//! moments) in the tape's parameter order, allocated at the first step and reused after it, and
//! exposes them with the step count for checkpointing (`state`, `set_state`).
//!
//! ```
//! use ndarray::arr1;
//! use tape::optim::{Optimizer, Sgd, SgdConfig};
//! use tape::Tape;
//!
//! // Minimise (w - 3)^2 from w = 0 with momentum.
//! let mut tape = Tape::<f64>::new();
//! let w = tape.parameter(arr1(&[0.0]));
//! let mut sgd = Sgd::new(SgdConfig { momentum: 0.9, ..SgdConfig::default() });
//! for _ in 0..300 {
//!     tape.clear();
//!     let three = tape.constant(arr1(&[3.0]));
//!     let error = tape.sub(w, three)?;
//!     let loss = tape.dot(error, error)?;
//!     let gradients = tape.backward(loss)?;
//!     sgd.step(&mut tape, &gradients, 0.1)?;
//! }
//! assert!((tape.value(w).as_slice()[0] - 3.0).abs() < 1e-5);
//! # Ok::<(), tape::TapeError>(())
//! ```

mod adam;
mod clip;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamState, AdamW};
pub use clip::{CLIP_EPSILON, Clipped, GradientClip, clip_coefficient, gradient_norm};
pub use sgd::{Sgd, SgdConfig, SgdState};

use crate::{Float, Gradients, Tape, TapeError, Tensor, Var};

/// An update rule over a tape's parameters.
pub trait Optimizer<F: Float> {
    /// Applies one update to every parameter of `tape`, each with its gradient in `gradients`, at
    /// learning rate `learning_rate`, and advances the step count.
    ///
    /// Everything is checked before anything changes: a parameter without a gradient, a gradient
    /// or a restored state buffer of another shape than its parameter, a negative or non-finite
    /// learning rate or a setting out of range returns an error and leaves the parameters and the
    /// state as they were.
    fn step(
        &mut self,
        tape: &mut Tape<F>,
        gradients: &dyn ParameterGradients<F>,
        learning_rate: f64,
    ) -> Result<(), TapeError>;

    /// The number of updates applied so far (the next is step `steps()`, counting from 0).
    fn steps(&self) -> usize;
}

/// Where an optimizer finds each parameter's gradient: a backward pass's [`Gradients`], or
/// gradients computed elsewhere (summed over several tapes, say) as one [`Tensor`] per parameter
/// in the tape's parameter order.
pub trait ParameterGradients<F: Float> {
    /// The gradient of parameter `var`, the `index`-th parameter of its tape, if there is one.
    fn gradient(&self, index: usize, var: Var) -> Option<&Tensor<F>>;
}

impl<F: Float> ParameterGradients<F> for Gradients<F> {
    fn gradient(&self, _index: usize, var: Var) -> Option<&Tensor<F>> {
        self.get(var)
    }
}

/// One gradient per parameter, indexed by the tape's parameter order.
impl<F: Float> ParameterGradients<F> for Vec<Tensor<F>> {
    fn gradient(&self, index: usize, _var: Var) -> Option<&Tensor<F>> {
        self.get(index)
    }
}

/// Checks that every parameter of `tape` has a gradient of its shape and that each restored
/// buffer in `buffers` (per-parameter state, in parameter order) has its parameter's shape, then
/// gives parameters that have no buffer yet zeroed ones: the only allocation an optimizer makes,
/// on its first step.
pub(crate) fn prepare<F: Float>(
    optimizer: &'static str,
    tape: &Tape<F>,
    gradients: &dyn ParameterGradients<F>,
    buffers: &mut [&mut Vec<Tensor<F>>],
) -> Result<(), TapeError> {
    let parameters = &tape.parameters;
    for (index, var) in tape.parameters().enumerate() {
        let shape = parameters[index].shape();
        let gradient = gradients.gradient(index, var).ok_or_else(|| {
            let detail = format!("parameter {index} {shape:?} has no gradient");
            TapeError::argument(optimizer, detail)
        })?;
        if gradient.shape() != shape {
            let detail = format!(
                "parameter {index} is {shape:?} but its gradient is {:?}",
                gradient.shape()
            );
            return Err(TapeError::shape(optimizer, detail));
        }
    }
    for buffer in buffers.iter() {
        if buffer.len() > parameters.len() {
            let detail = format!(
                "the state has {} buffers for {} parameters: it belongs to another tape",
                buffer.len(),
                parameters.len()
            );
            return Err(TapeError::shape(optimizer, detail));
        }
        for (index, (kept, parameter)) in buffer.iter().zip(parameters).enumerate() {
            if kept.shape() != parameter.shape() {
                let detail = format!(
                    "parameter {index} is {:?} but its state buffer is {:?}",
                    parameter.shape(),
                    kept.shape()
                );
                return Err(TapeError::shape(optimizer, detail));
            }
        }
    }
    for buffer in buffers.iter_mut() {
        for parameter in &parameters[buffer.len()..] {
            buffer.push(Tensor::zeros(parameter.shape()));
        }
    }
    Ok(())
}

/// Refuses a learning rate no update rule accepts.
pub(crate) fn check_learning_rate(
    optimizer: &'static str,
    learning_rate: f64,
) -> Result<(), TapeError> {
    if learning_rate >= 0.0 && learning_rate.is_finite() {
        Ok(())
    } else {
        let detail = format!("the learning rate must be finite and >= 0, got {learning_rate}");
        Err(TapeError::argument(optimizer, detail))
    }
}

/// Refuses a setting outside `[low, high)`.
pub(crate) fn check_range(
    optimizer: &'static str,
    name: &str,
    value: f64,
    low: f64,
    high: f64,
) -> Result<(), TapeError> {
    if value >= low && value < high {
        Ok(())
    } else {
        let detail = format!("{name} must be in [{low}, {high}), got {value}");
        Err(TapeError::argument(optimizer, detail))
    }
}
