//! A finite-difference gradient checker, for the built-in ops and for users' own.

use std::fmt;

use ndarray::ArrayD;

use crate::{Tape, TapeError, Var};

/// How closely analytic and numeric gradients must agree, and the finite-difference step.
///
/// An element passes when `|analytic - numeric| <= absolute + relative * max(|analytic|, |numeric|)`.
/// The defaults suit smooth functions of values of order one in `f64`: the central difference's
/// truncation error is about `step^2` and its rounding error about `1e-16 / step`, both far below
/// the tolerance, while a wrong backward is off by far more.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// The finite-difference step `h` in `(f(x + h) - f(x - h)) / 2h`.
    pub step: f64,
    /// The absolute part of the allowed error.
    pub absolute: f64,
    /// The relative part of the allowed error.
    pub relative: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            step: 1e-5,
            absolute: 1e-7,
            relative: 1e-5,
        }
    }
}

/// The largest disagreement a successful check saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradientReport {
    /// The number of elements compared.
    pub elements: usize,
    /// The largest `|analytic - numeric|` over all elements.
    pub max_abs_error: f64,
}

/// Why a gradient check failed.
#[derive(Clone, Debug, PartialEq)]
pub enum GradientCheckError {
    /// The function could not be recorded or differentiated.
    Tape(TapeError),
    /// An element's analytic gradient disagrees with the finite difference.
    Mismatch {
        /// Which input.
        input: usize,
        /// Which element of it, in row-major order.
        element: usize,
        /// The gradient backward computed.
        analytic: f64,
        /// The central finite difference.
        numeric: f64,
    },
}

impl fmt::Display for GradientCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradientCheckError::Tape(error) => write!(f, "{error}"),
            GradientCheckError::Mismatch {
                input,
                element,
                analytic,
                numeric,
            } => write!(
                f,
                "input {input} element {element}: backward gives {analytic:e}, finite differences {numeric:e}"
            ),
        }
    }
}

impl std::error::Error for GradientCheckError {}

impl From<TapeError> for GradientCheckError {
    fn from(error: TapeError) -> Self {
        GradientCheckError::Tape(error)
    }
}

/// Checks the gradients of `function` at `inputs` against central finite differences.
///
/// `function` receives a tape and one parameter per input and returns a one-element loss. Every
/// element of every input is perturbed in turn, so keep inputs small. Kinks (relu at 0) make finite
/// differences meaningless: keep inputs away from them.
///
/// ```
/// use ndarray::arr1;
/// use tape::{Tolerance, check_gradients};
///
/// // d/dx sum(exp(x)) = exp(x)
/// let report = check_gradients(&[arr1(&[0.5, -1.0]).into_dyn()], Tolerance::default(), |tape, x| {
///     let e = tape.exp(x[0])?;
///     tape.sum(e)
/// })
/// .unwrap();
/// assert_eq!(report.elements, 2);
/// ```
pub fn check_gradients(
    inputs: &[ArrayD<f64>],
    tolerance: Tolerance,
    function: impl Fn(&mut Tape<f64>, &[Var]) -> Result<Var, TapeError>,
) -> Result<GradientReport, GradientCheckError> {
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|input| tape.parameter(input.clone()))
        .collect();
    let loss = function(&mut tape, &vars)?;
    let gradients = tape.backward(loss)?;

    let mut report = GradientReport {
        elements: 0,
        max_abs_error: 0.0,
    };
    for (input, &var) in vars.iter().enumerate() {
        let analytic_gradient = gradients.parameter(var).clone();
        for (element, &analytic) in analytic_gradient.as_slice().iter().enumerate() {
            let numeric =
                central_difference(&mut tape, &vars, var, element, tolerance.step, &function)?;
            let error = (analytic - numeric).abs();
            let allowed =
                tolerance.absolute + tolerance.relative * analytic.abs().max(numeric.abs());
            if error > allowed || error.is_nan() {
                return Err(GradientCheckError::Mismatch {
                    input,
                    element,
                    analytic,
                    numeric,
                });
            }
            report.elements += 1;
            report.max_abs_error = report.max_abs_error.max(error);
        }
    }
    Ok(report)
}

/// `(f(x + h e) - f(x - h e)) / 2h` for the unit vector `e` of one element of one parameter.
fn central_difference(
    tape: &mut Tape<f64>,
    vars: &[Var],
    var: Var,
    element: usize,
    step: f64,
    function: &impl Fn(&mut Tape<f64>, &[Var]) -> Result<Var, TapeError>,
) -> Result<f64, TapeError> {
    let original = *element_mut(tape, var, element);
    let evaluate = |tape: &mut Tape<f64>, value: f64| {
        *element_mut(tape, var, element) = value;
        tape.clear();
        let loss = tape.without_grad(|tape| function(tape, vars))?;
        Ok::<f64, TapeError>(tape.scalar(loss))
    };
    let plus = evaluate(tape, original + step)?;
    let minus = evaluate(tape, original - step)?;
    *element_mut(tape, var, element) = original;
    Ok((plus - minus) / (2.0 * step))
}

fn element_mut(tape: &mut Tape<f64>, var: Var, element: usize) -> &mut f64 {
    &mut tape.parameter_mut(var).as_mut_slice()[element]
}
