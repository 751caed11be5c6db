//! microgpt.py's Adam update, with the same constants and the same order of floating-point operations.

/// Adam with bias correction and linear learning-rate decay, exactly as microgpt.py's training loop:
///
/// ```text
/// lr_t  = lr * (1 - step / num_steps)
/// m     = beta1 * m + (1 - beta1) * g
/// v     = beta2 * v + (1 - beta2) * g ** 2
/// m_hat = m / (1 - beta1 ** (step + 1))
/// v_hat = v / (1 - beta2 ** (step + 1))
/// p    -= lr_t * m_hat / (v_hat ** 0.5 + eps)
/// g     = 0
/// ```
///
/// Every `**` is `f64::powf`, because Python's `float ** number` is C `pow` (`powi` multiplies
/// repeatedly and can differ in the last bit for `beta ** (step + 1)`). The compiler may lower
/// `powf(2.0)` to `g * g` and `powf(0.5)` to `sqrt`; both are correctly rounded, as C `pow` is to
/// within its 0.52-ulp bound, so a last-bit difference from CPython is possible only in rare cases.
///
/// ```
/// let mut adam = scalar::Adam::new(1);
/// let (mut params, mut grads) = ([1.0], [0.5]);
/// adam.update(&mut params, &mut grads, 0, 10, 0.01);
/// // First step: m_hat = g and v_hat = g^2, so the step is lr / (1 + eps / |g|) ~ 0.01.
/// assert!((params[0] - (1.0 - 0.01 * 0.5 / (0.5 + 1e-8))).abs() < 1e-15);
/// assert_eq!(grads[0], 0.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Decay of the first moment (0.85 in microgpt.py).
    pub beta1: f64,
    /// Decay of the second moment (0.99 in microgpt.py).
    pub beta2: f64,
    /// Added to `sqrt(v_hat)` before dividing (1e-8 in microgpt.py).
    pub eps: f64,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    /// microgpt.py's `beta1`.
    pub const BETA1: f64 = 0.85;
    /// microgpt.py's `beta2`.
    pub const BETA2: f64 = 0.99;
    /// microgpt.py's `eps_adam`.
    pub const EPS: f64 = 1e-8;
    /// microgpt.py's `learning_rate`.
    pub const LEARNING_RATE: f64 = 0.01;

    /// Adam for `num_params` parameters, with microgpt.py's constants and both moments at zero.
    ///
    /// ```
    /// let adam = scalar::Adam::new(3);
    /// assert_eq!((adam.beta1, adam.beta2, adam.eps), (0.85, 0.99, 1e-8));
    /// assert_eq!(adam.first_moment(), [0.0; 3]);
    /// ```
    pub fn new(num_params: usize) -> Self {
        Self {
            beta1: Self::BETA1,
            beta2: Self::BETA2,
            eps: Self::EPS,
            m: vec![0.0; num_params],
            v: vec![0.0; num_params],
        }
    }

    /// One update at 0-based `step` of `num_steps`, with base learning rate `lr`: moves `params`
    /// against `grads` and then sets every gradient to 0, as microgpt.py does after its update.
    ///
    /// # Panics
    /// If `params` or `grads` does not have one entry per parameter, or `num_steps` is 0.
    ///
    /// ```
    /// let mut adam = scalar::Adam::new(2);
    /// let (mut params, mut grads) = ([0.0, 0.0], [1.0, 0.0]);
    /// adam.update(&mut params, &mut grads, 5, 10, 0.01);
    /// assert!(params[0] < 0.0 && params[1] == 0.0); // a zero gradient leaves a fresh parameter alone
    /// ```
    pub fn update(
        &mut self,
        params: &mut [f64],
        grads: &mut [f64],
        step: usize,
        num_steps: usize,
        lr: f64,
    ) {
        assert!(num_steps > 0, "adam: num_steps must be at least 1");
        assert!(
            params.len() == self.m.len() && grads.len() == self.m.len(),
            "adam: {} params and {} gradients for an optimizer of {}",
            params.len(),
            grads.len(),
            self.m.len()
        );
        let (beta1, beta2, eps) = (self.beta1, self.beta2, self.eps);
        let lr_t = lr * (1.0 - step as f64 / num_steps as f64);
        // Python recomputes these per parameter; they are the same numbers every time.
        let exponent = (step + 1) as f64;
        let (correction1, correction2) = (1.0 - beta1.powf(exponent), 1.0 - beta2.powf(exponent));
        let moments = self.m.iter_mut().zip(self.v.iter_mut());
        for ((param, grad), (m, v)) in params.iter_mut().zip(grads.iter_mut()).zip(moments) {
            *m = beta1 * *m + (1.0 - beta1) * *grad;
            *v = beta2 * *v + (1.0 - beta2) * grad.powf(2.0);
            let m_hat = *m / correction1;
            let v_hat = *v / correction2;
            *param -= lr_t * m_hat / (v_hat.powf(0.5) + eps);
            *grad = 0.0;
        }
    }

    /// The first-moment estimates `m`, one per parameter.
    ///
    /// ```
    /// let mut adam = scalar::Adam::new(1);
    /// adam.update(&mut [0.0], &mut [2.0], 0, 1, 0.01);
    /// assert!((adam.first_moment()[0] - 0.3).abs() < 1e-15); // (1 - 0.85) * 2
    /// ```
    pub fn first_moment(&self) -> &[f64] {
        &self.m
    }

    /// The second-moment estimates `v`, one per parameter.
    ///
    /// ```
    /// let mut adam = scalar::Adam::new(1);
    /// adam.update(&mut [0.0], &mut [2.0], 0, 1, 0.01);
    /// assert!((adam.second_moment()[0] - 0.04).abs() < 1e-15); // (1 - 0.99) * 2^2
    /// ```
    pub fn second_moment(&self) -> &[f64] {
        &self.v
    }
}
