//! Adam with bias correction and a linearly decaying learning rate, exactly as microgpt.py.

use ndarray::Array2;
use tape::Float;

use crate::Params;

/// Adam's hyperparameters. The defaults are microgpt.py's.
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
}

impl Default for AdamSettings {
    fn default() -> Self {
        AdamSettings {
            lr: 0.01,
            beta1: 0.85,
            beta2: 0.99,
            eps: 1e-8,
        }
    }
}

impl AdamSettings {
    /// `lr * (1 - step / num_steps)`: the learning rate of step `step` (0-based) of `num_steps`.
    pub fn learning_rate(&self, step: usize, num_steps: usize) -> f64 {
        crate::Schedule::linear(self.lr).learning_rate(step, num_steps)
    }
}

/// Adam's moments and step count: what a checkpoint must keep for a run to resume exactly.
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

/// The optimizer: settings plus state.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<F> {
    /// The hyperparameters.
    pub settings: AdamSettings,
    /// The moments and step count.
    pub state: AdamState<F>,
}

impl<F: Float> Adam<F> {
    /// A fresh optimizer for `params`.
    pub fn new(settings: AdamSettings, params: &Params<F>) -> Self {
        Adam {
            settings,
            state: AdamState::zeros(params),
        }
    }

    /// Applies one update with learning rate `learning_rate` to every tensor, given as
    /// `(weights, gradient)` slices in DESIGN.md's order, and advances the step count.
    ///
    /// Per element: `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
    /// `w -= lr (m / (1 - b1^(t+1))) / (sqrt(v / (1 - b2^(t+1))) + eps)`.
    ///
    /// ```
    /// use gpt::{Adam, AdamSettings, Config, Params};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
    /// let mut params = Params::<f64>::init(Config::default(), &mut rng).unwrap();
    /// let mut adam = Adam::new(AdamSettings::default(), &params);
    /// let gradients: Vec<_> = params.tensors().iter().map(|t| t.mapv(|_| 1.0)).collect();
    /// let before = params.wte()[[0, 0]];
    /// let pairs = params.tensors_mut().iter_mut().zip(&gradients)
    ///     .map(|(w, g)| (w.as_slice_mut().unwrap(), g.as_slice().unwrap()));
    /// adam.update(0.01, pairs);
    /// // The first bias-corrected step moves every weight by about lr against the gradient's sign.
    /// assert!((before - params.wte()[[0, 0]] - 0.01).abs() < 1e-8);
    /// ```
    pub fn update<'a>(
        &mut self,
        learning_rate: f64,
        tensors: impl IntoIterator<Item = (&'a mut [F], &'a [F])>,
    ) where
        F: 'a,
    {
        let rule = UpdateRule::new(&self.settings, self.state.step, learning_rate);
        let moments = self.state.m.iter_mut().zip(self.state.v.iter_mut());
        for ((weights, gradient), (m, v)) in tensors.into_iter().zip(moments) {
            let m = m.as_slice_mut().expect("moments are contiguous");
            let v = v.as_slice_mut().expect("moments are contiguous");
            rule.apply(weights, gradient, m, v);
        }
        self.state.step += 1;
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
}

impl<F: Float> UpdateRule<F> {
    fn new(settings: &AdamSettings, step: usize, learning_rate: f64) -> Self {
        // Powers through C's pow, as Python's `beta ** (step + 1)`, so the corrections match
        // Python's bit for bit.
        let exponent = (step + 1) as f64;
        // The bias corrections are the same for every weight, so each moment is multiplied by
        // their reciprocal: one division per weight instead of three (divisions and square roots
        // are what bound this loop). Each product may differ from Python's quotient in the last
        // bit, far below the 1e-9 to which training must match it.
        let inverse = |beta: f64| F::one() / F::from_f64(1.0 - beta.powf(exponent));
        let (beta1, beta2) = (F::from_f64(settings.beta1), F::from_f64(settings.beta2));
        UpdateRule {
            beta1,
            beta2,
            keep1: F::one() - beta1,
            keep2: F::one() - beta2,
            inverse_first_correction: inverse(settings.beta1),
            inverse_second_correction: inverse(settings.beta2),
            eps: F::from_f64(settings.eps),
            lr: F::from_f64(learning_rate),
        }
    }

    /// Updates one tensor and its moments.
    fn apply(&self, weights: &mut [F], gradient: &[F], m: &mut [F], v: &mut [F]) {
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
