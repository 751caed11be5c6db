//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

use super::{Optimizer, ParameterGradients, check_learning_rate, check_range, prepare};
use crate::{Float, Tape, TapeError, Tensor};

/// SGD's hyperparameters (`torch.optim.SGD`'s, whose defaults are all 0 and no Nesterov); the
/// learning rate is given to each step instead.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SgdConfig {
    /// The momentum factor `mu`, at least 0; 0 is plain SGD and keeps no state.
    pub momentum: f64,
    /// The dampening `tau` of the gradient's contribution to the momentum, in `[0, 1)`.
    pub dampening: f64,
    /// Nesterov momentum: the step follows `g + mu * b` instead of `b`. Needs a momentum and no
    /// dampening.
    pub nesterov: bool,
    /// L2 weight decay `lambda`, at least 0: `lambda * w` is added to the gradient.
    pub weight_decay: f64,
}

impl SgdConfig {
    fn check(&self) -> Result<(), TapeError> {
        check_range("SGD", "momentum", self.momentum, 0.0, f64::INFINITY)?;
        check_range("SGD", "dampening", self.dampening, 0.0, 1.0)?;
        check_range("SGD", "weight_decay", self.weight_decay, 0.0, f64::INFINITY)?;
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            let detail = format!(
                "Nesterov momentum needs a momentum and zero dampening, got momentum {} and dampening {}",
                self.momentum, self.dampening
            );
            return Err(TapeError::argument("SGD", detail));
        }
        Ok(())
    }
}

/// SGD's momentum buffers and step count, for checkpointing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SgdState<F: Float> {
    /// The momentum buffer `b` of each parameter, in the tape's parameter order (empty without
    /// momentum).
    pub momentum: Vec<Tensor<F>>,
    /// Updates applied so far.
    pub step: usize,
}

/// Stochastic gradient descent over a tape's parameters, as `torch.optim.SGD`.
///
/// Per element, with learning rate `lr` and gradient `g` (PyTorch's documented algorithm):
///
/// ```text
/// g = g + weight_decay * w                     (when weight_decay > 0)
/// b = g at the first step, then b = mu * b + (1 - dampening) * g
/// g = g + mu * b with Nesterov, else g = b     (when mu > 0)
/// w = w - lr * g
/// ```
///
/// ```
/// use ndarray::arr1;
/// use tape::optim::{Optimizer, Sgd, SgdConfig};
/// use tape::Tape;
///
/// let mut tape = Tape::<f64>::new();
/// let w = tape.parameter(arr1(&[1.0, -2.0]));
/// let mut sgd = Sgd::new(SgdConfig::default());
/// tape.clear();
/// let loss = tape.sum(w)?; // d loss / d w = [1, 1]
/// let gradients = tape.backward(loss)?;
/// sgd.step(&mut tape, &gradients, 0.5)?;
/// assert_eq!(tape.value(w).as_slice(), &[0.5, -2.5]);
/// # Ok::<(), tape::TapeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sgd<F: Float> {
    /// The hyperparameters, read at every step.
    pub config: SgdConfig,
    state: SgdState<F>,
}

impl<F: Float> Sgd<F> {
    /// An optimizer at step 0; momentum buffers, if any, are allocated at the first step.
    pub fn new(config: SgdConfig) -> Self {
        Sgd {
            config,
            state: SgdState::default(),
        }
    }

    /// The momentum buffers and step count, to save.
    pub fn state(&self) -> &SgdState<F> {
        &self.state
    }

    /// Replaces the momentum buffers and step count with saved ones. The next
    /// [`Optimizer::step`] checks them against the tape's parameters.
    pub fn set_state(&mut self, state: SgdState<F>) {
        self.state = state;
    }
}

impl<F: Float> Optimizer<F> for Sgd<F> {
    fn step(
        &mut self,
        tape: &mut Tape<F>,
        gradients: &dyn ParameterGradients<F>,
        learning_rate: f64,
    ) -> Result<(), TapeError> {
        self.config.check()?;
        check_learning_rate("SGD", learning_rate)?;
        let SgdState { momentum, step } = &mut self.state;
        let with_momentum = self.config.momentum != 0.0;
        if with_momentum {
            prepare("SGD", tape, gradients, &mut [momentum])?;
        } else {
            prepare("SGD", tape, gradients, &mut [])?;
        }
        let rule = SgdRule {
            lr: F::from_f64(learning_rate),
            weight_decay: (self.config.weight_decay != 0.0)
                .then(|| F::from_f64(self.config.weight_decay)),
            momentum: F::from_f64(self.config.momentum),
            keep: F::from_f64(1.0 - self.config.dampening),
            first: *step == 0,
            nesterov: self.config.nesterov,
        };
        for (index, (var, weights)) in tape.parameters_mut().enumerate() {
            let gradient = gradients
                .gradient(index, var)
                .expect("prepare checked every gradient");
            let buffer = with_momentum.then(|| momentum[index].as_mut_slice());
            rule.apply(weights.as_mut_slice(), gradient.as_slice(), buffer);
        }
        *step += 1;
        Ok(())
    }

    fn steps(&self) -> usize {
        self.state.step
    }
}

/// One step's constants in the weights' precision.
struct SgdRule<F> {
    lr: F,
    /// `None` without weight decay, so that the gradient is used exactly as it is.
    weight_decay: Option<F>,
    momentum: F,
    /// `1 - dampening`.
    keep: F,
    /// Whether this is the first step, whose momentum buffer is the gradient itself.
    first: bool,
    nesterov: bool,
}

impl<F: Float> SgdRule<F> {
    /// The gradient of weight `w`, with the weight decay's term.
    #[inline]
    fn decayed(&self, g: F, w: F) -> F {
        match self.weight_decay {
            Some(weight_decay) => g + weight_decay * w,
            None => g,
        }
    }

    fn apply(&self, weights: &mut [F], gradient: &[F], buffer: Option<&mut [F]>) {
        let len = weights.len();
        let gradient = &gradient[..len];
        match buffer {
            None => {
                for i in 0..len {
                    let g = self.decayed(gradient[i], weights[i]);
                    weights[i] -= self.lr * g;
                }
            }
            Some(buffer) => {
                let buffer = &mut buffer[..len];
                for i in 0..len {
                    let g = self.decayed(gradient[i], weights[i]);
                    buffer[i] = if self.first {
                        g
                    } else {
                        self.momentum * buffer[i] + self.keep * g
                    };
                    let direction = if self.nesterov {
                        g + self.momentum * buffer[i]
                    } else {
                        buffer[i]
                    };
                    weights[i] -= self.lr * direction;
                }
            }
        }
    }
}
