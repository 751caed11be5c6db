//! How the next token is drawn from the logits, checked once when the options are made.

use std::fmt;

/// How the next token is drawn from the logits: a temperature, and optionally top-k and top-p.
///
/// Valid by construction ([`SamplingOptions::new`] checks every field), so nothing that takes
/// them checks them again.
///
/// ```
/// use gpt::{OptionsError, SamplingOptions};
///
/// let options = SamplingOptions::new(0.8, Some(5), Some(0.9))?;
/// assert_eq!((options.temperature(), options.top_k(), options.top_p()), (0.8, Some(5), Some(0.9)));
/// assert_eq!(SamplingOptions::new(0.0, None, None), Err(OptionsError::Temperature(0.0)));
/// assert_eq!(SamplingOptions::new(0.5, Some(0), None), Err(OptionsError::TopK(0)));
/// # Ok::<(), OptionsError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingOptions {
    temperature: f64,
    /// `temperature ** -1`, what each logit is multiplied by (Python's `l / temperature` on a
    /// `Value` multiplies by the inverse).
    inverse_temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
}

impl Default for SamplingOptions {
    /// Temperature 0.5, no top-k, no top-p: microgpt.py's sampling.
    fn default() -> Self {
        SamplingOptions::new(0.5, None, None).expect("microgpt.py's options are valid")
    }
}

impl SamplingOptions {
    /// Options that divide the logits by `temperature` before the softmax (below 1 sharpens the
    /// distribution, above 1 flattens it), then keep only the `top_k` most probable tokens if
    /// given, then only the smallest set of most probable tokens whose probability reaches
    /// `top_p` of the mass kept, if given.
    ///
    /// # Errors
    /// A temperature that is not finite and positive with a finite inverse (a subnormal one would
    /// turn every logit into ±inf), a `top_k` of 0, or a `top_p` outside `(0, 1]`.
    pub fn new(
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
    ) -> Result<Self, OptionsError> {
        let inverse_temperature = temperature.powf(-1.0);
        if !(temperature.is_finite() && temperature > 0.0 && inverse_temperature.is_finite()) {
            return Err(OptionsError::Temperature(temperature));
        }
        if top_k == Some(0) {
            return Err(OptionsError::TopK(0));
        }
        if let Some(p) = top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(OptionsError::TopP(p));
        }
        Ok(SamplingOptions {
            temperature,
            inverse_temperature,
            top_k,
            top_p,
        })
    }

    /// What the logits are divided by before the softmax.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// `temperature ** -1`, computed as Python computes it.
    pub(crate) fn inverse_temperature(&self) -> f64 {
        self.inverse_temperature
    }

    /// How many of the most probable tokens are kept, if not all.
    pub fn top_k(&self) -> Option<usize> {
        self.top_k
    }

    /// The probability mass the most probable tokens kept must reach, if not all.
    pub fn top_p(&self) -> Option<f64> {
        self.top_p
    }

    /// Whether top-k or top-p drop tokens.
    pub(crate) fn filters(&self) -> bool {
        self.top_k.is_some() || self.top_p.is_some()
    }
}

/// Why [`SamplingOptions::new`] refused a field, with the value given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptionsError {
    /// The temperature is not a finite positive number (or is so small its inverse overflows).
    Temperature(f64),
    /// `top_k` is 0.
    TopK(usize),
    /// `top_p` is not in `(0, 1]`.
    TopP(f64),
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::Temperature(t) => {
                write!(f, "temperature must be a finite number above 0, not {t}")
            }
            OptionsError::TopK(k) => write!(f, "top-k must be at least 1, not {k}"),
            OptionsError::TopP(p) => write!(f, "top-p must be in (0, 1], not {p}"),
        }
    }
}

impl std::error::Error for OptionsError {}
