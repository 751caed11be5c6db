//! microgpt.py's optimizer: the tape's Adam with microgpt's constants, a linearly decaying learning
//! rate, and its state in the form a checkpoint stores; optional decoupled weight decay (AdamW) and
//! gradient clipping for larger runs.

use ndarray::{Array2, Ix2};
use tape::optim::{self, AdamConfig, GradientClip, Optimizer, ParameterGradients};
use tape::{Float, Tape, TapeError};

use crate::Params;

/// Adam's hyperparameters. The defaults are microgpt.py's: plain Adam, no weight decay, no
/// clipping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamSettings {
    /// The initial learning rate, decayed linearly to 0 over the run.
    pub lr: f64,
    /// The decay of the first moment.
    pub beta1: f64,
    /// The decay of the second moment.
    pub beta2: f64,
    /// Added to the root of the second moment, for stability.
    pub eps: f64,
    /// Decoupled weight decay, as `torch.optim.AdamW`: every weight is multiplied by
    /// `1 - lr * weight_decay` before each step. It applies to every tensor: all of the model's
    /// weights are matrices (it has no biases and no norm gains, which nanoGPT exempts), so
    /// makemore's rule (decay everything) and nanoGPT's (decay the 2-D tensors) agree here.
    pub weight_decay: f64,
    /// Clip the gradients to this global L2 norm before each step, as
    /// `torch.nn.utils.clip_grad_norm_` ([`tape::optim::GradientClip`]); `None` leaves them as
    /// they are.
    pub max_grad_norm: Option<f64>,
}

impl AdamSettings {
    /// microgpt.py's: lr 0.01, betas 0.85 and 0.99, eps 1e-8, no weight decay, no clipping. The
    /// CLI's defaults are read from it.
    pub const MICROGPT: AdamSettings = AdamSettings {
        lr: 0.01,
        beta1: 0.85,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
        max_grad_norm: None,
    };
}

impl Default for AdamSettings {
    /// [`AdamSettings::MICROGPT`].
    fn default() -> Self {
        AdamSettings::MICROGPT
    }
}

impl AdamSettings {
    /// `lr * (1 - step / num_steps)`: the learning rate of step `step` (0-based) of `num_steps`.
    pub fn learning_rate(&self, step: usize, num_steps: usize) -> f64 {
        crate::Schedule::linear(self.lr).learning_rate(step, num_steps)
    }

    /// The tape optimizer's settings: these betas, eps and weight decay.
    fn config(&self) -> AdamConfig {
        AdamConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }
}

/// Adam's moments and step count as a checkpoint stores them (`adam.m.<name>`, `adam.v.<name>`,
/// `adam_step`): one matrix per weight in DESIGN.md's order.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState<F> {
    /// First moments, one per tensor in DESIGN.md's order.
    pub m: Vec<Array2<F>>,
    /// Second moments, in the same order.
    pub v: Vec<Array2<F>>,
    /// Updates applied so far (the next update is step `step`, 0-based).
    pub step: usize,
}

impl<F: Float> AdamState<F> {
    /// The same state in another precision.
    pub fn cast<G: Float>(&self) -> AdamState<G> {
        let cast = |tensors: &[Array2<F>]| {
            tensors
                .iter()
                .map(|t| t.mapv(|x| G::from_f64(x.to_f64())))
                .collect()
        };
        AdamState {
            m: cast(&self.m),
            v: cast(&self.v),
            step: self.step,
        }
    }

    /// Zero moments shaped like `params`, at step 0.
    pub fn zeros(params: &Params<F>) -> Self {
        let zeros: Vec<Array2<F>> = params
            .tensors()
            .iter()
            .map(|tensor| Array2::zeros(tensor.raw_dim()))
            .collect();
        AdamState {
            m: zeros.clone(),
            v: zeros,
            step: 0,
        }
    }
}

/// The optimizer: microgpt's settings over the tape's [`tape::optim::Adam`], which holds the
/// moments. [`Step::apply`](crate::Step::apply) applies it.
///
/// ```
/// use gpt::{Adam, AdamSettings, Config, Model, Params};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
/// let config = Config { vocab_size: 5, ..Config::default() };
/// let params = Params::<f64>::init(config, &mut rng).unwrap();
/// let mut adam = Adam::new(AdamSettings::default(), &params);
/// let mut model = Model::new(params.clone());
/// model.loss(&[4, 0, 1, 4])?.apply(&mut adam, 10);
/// assert_eq!(adam.step(), 1);
/// // The first bias-corrected step moves every weight with a gradient by about lr.
/// let moved = (params.lm_head()[[0, 0]] - model.params().lm_head()[[0, 0]]).abs();
/// assert!((moved - 0.01).abs() < 1e-6, "{moved}");
/// // The state a checkpoint keeps, and an optimizer resumed from it.
/// let resumed = Adam::from_state(adam.settings, adam.state());
/// assert_eq!(resumed.state(), adam.state());
/// # Ok::<(), gpt::ModelError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Adam<F: Float> {
    /// The hyperparameters.
    pub settings: AdamSettings,
    optimizer: optim::Adam<F>,
    /// The clipped gradients' buffer, used with [`AdamSettings::max_grad_norm`].
    clip: GradientClip<F>,
}

impl<F: Float> Adam<F> {
    /// A fresh optimizer for `params`, its moments allocated and zeroed now.
    pub fn new(settings: AdamSettings, params: &Params<F>) -> Self {
        Adam::from_state(settings, AdamState::zeros(params))
    }

    /// An optimizer that continues from `state` (a checkpoint's), whose moments must be shaped
    /// like the model's weights in DESIGN.md's order.
    pub fn from_state(settings: AdamSettings, state: AdamState<F>) -> Self {
        let tensors = |moments: Vec<Array2<F>>| moments.into_iter().map(Into::into).collect();
        let mut optimizer = optim::Adam::new(settings.config());
        optimizer.set_state(optim::AdamState {
            m: tensors(state.m),
            v: tensors(state.v),
            step: state.step,
        });
        Adam {
            settings,
            optimizer,
            clip: GradientClip::new(),
        }
    }

    /// Updates applied so far (the next update is step `step()`, 0-based).
    pub fn step(&self) -> usize {
        self.optimizer.steps()
    }

    /// A copy of the moments and step count, as a checkpoint stores them.
    pub fn state(&self) -> AdamState<F> {
        let state = self.optimizer.state();
        let matrices = |moments: &[tape::Tensor<F>]| {
            moments
                .iter()
                .map(|moment| {
                    moment
                        .to_array()
                        .into_dimensionality::<Ix2>()
                        .expect("gpt's weights are matrices")
                })
                .collect()
        };
        AdamState {
            m: matrices(&state.m),
            v: matrices(&state.v),
            step: state.step,
        }
    }

    /// Copies the moments and step count into `state` without allocating: a run keeps its last
    /// healthy state this way every step.
    ///
    /// # Panics
    /// If `state`'s moments are not as many as this optimizer's, each of its shape.
    pub fn copy_state_into(&self, state: &mut AdamState<F>) {
        let current = self.optimizer.state();
        assert!(
            state.m.len() == current.m.len() && state.v.len() == current.v.len(),
            "a state of {} and {} moments cannot hold {} and {}",
            state.m.len(),
            state.v.len(),
            current.m.len(),
            current.v.len()
        );
        let pairs = (state.m.iter_mut().zip(&current.m)).chain(state.v.iter_mut().zip(&current.v));
        for (kept, moment) in pairs {
            kept.as_slice_mut()
                .expect("moments are contiguous")
                .copy_from_slice(moment.as_slice());
        }
        state.step = current.step;
    }

    /// One update of `tape`'s parameters with `gradients` at `learning_rate`, with the settings
    /// as they are now (they may have been changed since the optimizer was made): the gradients
    /// clipped first if [`AdamSettings::max_grad_norm`] asks for it.
    pub(crate) fn update(
        &mut self,
        tape: &mut Tape<F>,
        gradients: &dyn ParameterGradients<F>,
        learning_rate: f64,
    ) -> Result<(), TapeError> {
        self.optimizer.config = self.settings.config();
        match self.settings.max_grad_norm {
            None => self.optimizer.step(tape, gradients, learning_rate),
            Some(max_norm) => {
                let clipped = self.clip.clip(tape, gradients, max_norm)?;
                self.optimizer.step(tape, clipped.gradients, learning_rate)
            }
        }
    }
}
