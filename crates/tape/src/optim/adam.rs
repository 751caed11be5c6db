//! Adam (Kingma & Ba, 2015) with bias correction, and AdamW's decoupled weight decay
//! (Loshchilov & Hutter, 2019).

use super::{Optimizer, ParameterGradients, check_learning_rate, check_range, prepare};
use crate::{Float, Tape, TapeError, Tensor};

/// Adam's hyperparameters; the learning rate is given to each step instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// The decay of the first moment, in `[0, 1)`.
    pub beta1: f64,
    /// The decay of the second moment, in `[0, 1)`.
    pub beta2: f64,
    /// Added to the root of the bias-corrected second moment, for stability; at least 0.
    pub eps: f64,
    /// Decoupled weight decay (AdamW): before each step every weight is multiplied by
    /// `1 - lr * weight_decay`, apart from the gradient's moments. 0 is plain Adam.
    pub weight_decay: f64,
}

/// `torch.optim.Adam`'s defaults: betas 0.9 and 0.999, eps 1e-8, no weight decay.
impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// `torch.optim.AdamW`'s defaults: Adam's, with a decoupled weight decay of 0.01.
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::default()
        }
    }

    fn check(&self) -> Result<(), TapeError> {
        check_range("Adam", "beta1", self.beta1, 0.0, 1.0)?;
        check_range("Adam", "beta2", self.beta2, 0.0, 1.0)?;
        check_range("Adam", "eps", self.eps, 0.0, f64::INFINITY)?;
        check_range(
            "Adam",
            "weight_decay",
            self.weight_decay,
            0.0,
            f64::INFINITY,
        )
    }
}

/// Adam's moments and step count: what a checkpoint keeps for a run to resume exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdamState<F: Float> {
    /// The first moment of each parameter, in the tape's parameter order, shaped like it.
    pub m: Vec<Tensor<F>>,
    /// The second moment of each parameter, in the same order.
    pub v: Vec<Tensor<F>>,
    /// Updates applied so far (the next is step `step`, counting from 0).
    pub step: usize,
}

/// Adam over a tape's parameters, with optional decoupled weight decay ([`AdamW`]).
///
/// Per element, at step `t` (from 0) with learning rate `lr` and gradient `g`:
///
/// ```text
/// w  = w * (1 - lr * weight_decay)            (only when weight_decay > 0)
/// m  = beta1 * m + (1 - beta1) * g
/// v  = beta2 * v + (1 - beta2) * g * g
/// m^ = m * (1 / (1 - beta1^(t+1)))
/// v^ = v * (1 / (1 - beta2^(t+1)))
/// w -= lr * m^ / (sqrt(v^) + eps)
/// ```
///
/// The bias corrections are the same for every weight, so each moment is multiplied by their
/// reciprocal, computed once a step: one division per weight instead of three. Those products may
/// differ from `m / (1 - beta1^(t+1))` in the last bit; the update is otherwise Kingma & Ba's
/// Algorithm 1, and with [`AdamConfig::weight_decay`] `torch.optim.AdamW`'s.
///
/// AdamW in a training loop, with a learning rate warmed up and then decayed by the caller:
///
/// ```
/// use ndarray::{arr1, arr2};
/// use tape::optim::{AdamConfig, AdamW, Optimizer};
/// use tape::{Gradients, Tape};
///
/// // Fit y = W x + b to four points of y = 3 x0 - x1.
/// let mut tape = Tape::<f32>::new();
/// let w = tape.parameter(arr2(&[[0.1f32, -0.2]]));
/// let b = tape.parameter(arr1(&[0.0f32]));
/// let x = arr2(&[[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]]);
/// let y = arr2(&[[3.0f32], [-1.0], [2.0], [7.0]]);
/// let mut optimizer = AdamW::new(AdamConfig { weight_decay: 1e-4, ..AdamConfig::adamw() });
/// let mut gradients = Gradients::new();
/// let (steps, peak) = (500, 0.3);
/// let mut losses = Vec::new();
/// for step in 0..steps {
///     tape.clear();
///     let x = tape.constant(x.clone());
///     let y = tape.constant(y.clone());
///     let predicted = tape.linear(x, w)?;
///     let predicted = tape.add(predicted, b)?;
///     let error = tape.sub(predicted, y)?;
///     let squared = tape.square(error)?;
///     let loss = tape.mean(squared)?;
///     losses.push(tape.scalar(loss));
///     tape.backward_into(loss, &mut gradients)?;
///     let warmup = (step as f64 / 20.0).min(1.0);
///     let lr = peak * warmup * (1.0 - step as f64 / steps as f64);
///     optimizer.step(&mut tape, &gradients, lr)?;
/// }
/// assert!(losses[steps - 1] < 1e-4 * losses[0], "{losses:?}");
/// let fitted = tape.value(w).as_slice();
/// assert!((fitted[0] - 3.0).abs() < 0.05 && (fitted[1] + 1.0).abs() < 0.05, "{fitted:?}");
/// assert_eq!(optimizer.steps(), steps);
/// # Ok::<(), tape::TapeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Adam<F: Float> {
    /// The hyperparameters, read at every step.
    pub config: AdamConfig,
    state: AdamState<F>,
}

/// Adam with decoupled weight decay, as `torch.optim.AdamW`: the same type as [`Adam`], built
/// with a nonzero [`AdamConfig::weight_decay`] (see [`AdamConfig::adamw`]).
pub type AdamW<F> = Adam<F>;

impl<F: Float> Adam<F> {
    /// An optimizer at step 0; its moments are allocated, zeroed, at the first step.
    pub fn new(config: AdamConfig) -> Self {
        Adam {
            config,
            state: AdamState::default(),
        }
    }

    /// The moments and step count, to save.
    pub fn state(&self) -> &AdamState<F> {
        &self.state
    }

    /// Replaces the moments and step count with saved ones; the run continues exactly where the
    /// saved one stopped. The next [`Optimizer::step`] checks them against the tape's parameters.
    pub fn set_state(&mut self, state: AdamState<F>) {
        self.state = state;
    }
}

impl<F: Float> Optimizer<F> for Adam<F> {
    fn step(
        &mut self,
        tape: &mut Tape<F>,
        gradients: &dyn ParameterGradients<F>,
        learning_rate: f64,
    ) -> Result<(), TapeError> {
        self.config.check()?;
        check_learning_rate("Adam", learning_rate)?;
        let AdamState { m, v, step } = &mut self.state;
        prepare("Adam", tape, gradients, &mut [m, v])?;
        let rule = UpdateRule::new(&self.config, *step, learning_rate);
        for (index, (var, weights)) in tape.parameters_mut().enumerate() {
            let gradient = gradients
                .gradient(index, var)
                .expect("prepare checked every gradient");
            rule.apply(
                weights.as_mut_slice(),
                gradient.as_slice(),
                m[index].as_mut_slice(),
                v[index].as_mut_slice(),
            );
        }
        *step += 1;
        Ok(())
    }

    fn steps(&self) -> usize {
        self.state.step
    }
}

/// Everything an update needs besides the tensors: the settings and the step's constants in the
/// weights' precision.
#[derive(Clone, Copy)]
struct UpdateRule<F> {
    beta1: F,
    beta2: F,
    keep1: F,
    keep2: F,
    inverse_first_correction: F,
    inverse_second_correction: F,
    eps: F,
    lr: F,
    /// `1 - lr * weight_decay`, or `None` without weight decay (then weights are not touched
    /// before the Adam step, not even multiplied by 1).
    decay: Option<F>,
}

impl<F: Float> UpdateRule<F> {
    fn new(config: &AdamConfig, step: usize, learning_rate: f64) -> Self {
        // Powers through C's pow, as Python's `beta ** (step + 1)`, so the corrections match
        // Python's bit for bit.
        let exponent = (step + 1) as f64;
        let inverse = |beta: f64| F::one() / F::from_f64(1.0 - beta.powf(exponent));
        let (beta1, beta2) = (F::from_f64(config.beta1), F::from_f64(config.beta2));
        let decay = (config.weight_decay != 0.0)
            .then(|| F::from_f64(1.0 - learning_rate * config.weight_decay));
        UpdateRule {
            beta1,
            beta2,
            keep1: F::one() - beta1,
            keep2: F::one() - beta2,
            inverse_first_correction: inverse(config.beta1),
            inverse_second_correction: inverse(config.beta2),
            eps: F::from_f64(config.eps),
            lr: F::from_f64(learning_rate),
            decay,
        }
    }

    /// Updates one tensor and its moments.
    fn apply(&self, weights: &mut [F], gradient: &[F], m: &mut [F], v: &mut [F]) {
        if let Some(decay) = self.decay {
            for w in weights.iter_mut() {
                *w *= decay;
            }
        }
        // Plain loops over equal-length slices: the compiler vectorises them, the division and
        // square root included (both are exactly rounded, so lanes change nothing).
        let len = weights.len();
        let (gradient, m, v) = (&gradient[..len], &mut m[..len], &mut v[..len]);
        for i in 0..len {
            let g = gradient[i];
            m[i] = self.beta1 * m[i] + self.keep1 * g;
            v[i] = self.beta2 * v[i] + self.keep2 * (g * g);
            let m_hat = m[i] * self.inverse_first_correction;
            let v_hat = v[i] * self.inverse_second_correction;
            weights[i] -= self.lr * m_hat / (v_hat.sqrt() + self.eps);
        }
    }
}
