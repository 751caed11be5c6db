//! A finite-difference gradient checker, for the built-in ops and for users' own, in `f32` or `f64`.

use ndarray::ArrayD;

use crate::{CustomOp, CustomOpId, Float, Tape, TapeError, Var};

/// How closely analytic and numeric gradients must agree, and the finite-difference step.
///
/// An element passes when `|analytic - numeric| <= absolute + relative * max(|analytic|, |numeric|)`,
/// where `numeric` is the central difference `(f(x + h) - f(x - h)) / ((x + h) - (x - h))` (the
/// denominator is the step actually taken, after `x ± h` is rounded to the float type).
///
/// Two errors separate `numeric` from the true derivative, and the tolerance must exceed both
/// while staying below what a wrong backward is off by:
/// - truncation, `h² |f'''| / 6`, which grows with the step;
/// - rounding, about `k u |f| / h`, which shrinks with it: `f(x ± h)` is computed with a relative
///   error of a few (`k`) units `u` of the type's precision (`u = 2^-24 ≈ 6e-8` for `f32`,
///   `2^-53 ≈ 1.1e-16` for `f64`), and dividing by `2h` magnifies it.
///
/// Their sum is smallest near `h = (3 k u |f| / |f'''|)^(1/3)`: about `1e-2` for `f32` and `1e-5`
/// for `f64` when `f`, its derivatives and `k` are of order one to ten, with a total error near
/// `(k u)^(2/3)`: `1e-4` for `f32`, `1e-10` for `f64`. Hence the defaults per type
/// ([`Tolerance::of`]):
///
/// | type | step | absolute | relative | a backward scaled by 1.01 fails on any element with |
/// | --- | --- | --- | --- | --- |
/// | `f32` ([`Tolerance::F32`]) | `1e-2` | `1e-3` | `3e-3` | `\|gradient\| > 0.15` |
/// | `f64` ([`Tolerance::F64`]) | `1e-5` | `1e-7` | `1e-5` | `\|gradient\| > 2e-5` |
///
/// Both assume a loss and inputs of order one (project an op's output onto weights in `[-1, 1]`)
/// and stay further than `step` from kinks (relu at 0, abs at 0), where finite differences are
/// meaningless. `f32`'s check is necessarily coarser: a backward off by a factor of `1.001` passes
/// it. Check in `f64` when an op supports both; check in `f32` an op or a kernel that exists only
/// for `f32`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// The finite-difference step `h` in `(f(x + h) - f(x - h)) / 2h`.
    pub step: f64,
    /// The absolute part of the allowed error.
    pub absolute: f64,
    /// The relative part of the allowed error.
    pub relative: f64,
}

impl Tolerance {
    /// The defaults for `f32`: see the table above.
    pub const F32: Tolerance = Tolerance {
        step: 1e-2,
        absolute: 1e-3,
        relative: 3e-3,
    };

    /// The defaults for `f64`: see the table above.
    pub const F64: Tolerance = Tolerance {
        step: 1e-5,
        absolute: 1e-7,
        relative: 1e-5,
    };

    /// The defaults for the float type `F`: [`Tolerance::F32`] for `f32`, [`Tolerance::F64`]
    /// otherwise.
    ///
    /// ```
    /// use tape::Tolerance;
    /// assert_eq!(Tolerance::of::<f32>(), Tolerance::F32);
    /// assert_eq!(Tolerance::of::<f64>(), Tolerance::F64);
    /// ```
    pub fn of<F: Float>() -> Tolerance {
        if size_of::<F>() == size_of::<f32>() {
            Tolerance::F32
        } else {
            Tolerance::F64
        }
    }

    /// The error allowed between `analytic` and `numeric`.
    fn allowed(&self, analytic: f64, numeric: f64) -> f64 {
        self.absolute + self.relative * analytic.abs().max(numeric.abs())
    }
}

/// The largest disagreement a successful check saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradientReport {
    /// The number of elements compared.
    pub elements: usize,
    /// The largest `|analytic - numeric|` over all elements.
    pub max_abs_error: f64,
    /// The largest `|analytic - numeric|` as a fraction of the error the tolerance allows for that
    /// element: below 1 in a successful check, and how close to failing it came.
    pub max_error_ratio: f64,
}

/// Why a gradient check failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GradientCheckError {
    /// The function could not be recorded or differentiated.
    #[error(transparent)]
    Tape(#[from] TapeError),
    /// An element's analytic gradient disagrees with the finite difference.
    #[error(
        "input {input} element {element}: backward gives {analytic:e}, finite differences {numeric:e}"
    )]
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

/// Checks the gradients of `function` at `inputs` against central finite differences, with the
/// default [`Tolerance`] of the float type: the short form of [`GradientCheck::run`].
///
/// `function` receives a tape and one parameter per input and returns a one-element loss. It runs
/// once to record and differentiate, then twice per input element (every element is perturbed in
/// turn, so keep inputs small). To check a [`CustomOp`], register it once on a [`GradientCheck`]
/// and use that instead.
///
/// A backward that overwrites (`=`) an input's gradient instead of adding to it (`+=`) passes any
/// check in which the input is used once, since its gradient starts at zero: use each input twice
/// as well (`mul(x, x)`, `op(x) + x`, or the op applied twice to the same input) to catch it.
///
/// ```
/// use ndarray::arr1;
/// use tape::check_gradients;
///
/// // d/dx sum(exp(x)) = exp(x), in f64 and in f32.
/// let report = check_gradients(&[arr1(&[0.5, -1.0]).into_dyn()], |tape, x| {
///     let e = tape.exp(x[0])?;
///     tape.sum(e)
/// })
/// .unwrap();
/// assert_eq!(report.elements, 2);
/// check_gradients(&[arr1(&[0.5f32, -1.0]).into_dyn()], |tape, x| {
///     let e = tape.exp(x[0])?;
///     tape.sum(e)
/// })
/// .unwrap();
/// ```
pub fn check_gradients<F: Float>(
    inputs: &[ArrayD<F>],
    function: impl FnMut(&mut Tape<F>, &[Var]) -> Result<Var, TapeError>,
) -> Result<GradientReport, GradientCheckError> {
    GradientCheck::new().run(inputs, function)
}

/// A gradient check with a tape of its own, on which custom ops are registered once, before the
/// function that uses them runs (once with gradients and twice per input element).
///
/// ```
/// use ndarray::arr1;
/// use tape::{CustomOp, GradientCheck, InputGrads, Inputs, TapeError, Tensor, Tolerance};
///
/// /// `x^3` elementwise.
/// struct Cube;
///
/// impl CustomOp<f32> for Cube {
///     fn name(&self) -> &'static str {
///         "cube"
///     }
///     fn forward(&self, inputs: &Inputs<'_, f32>, output: &mut Tensor<f32>, _: &mut Tensor<f32>) -> Result<(), TapeError> {
///         let x = inputs.get(0);
///         let out = output.resize(x.shape());
///         for (out, &x) in out.iter_mut().zip(x.as_slice()) {
///             *out = x * x * x;
///         }
///         Ok(())
///     }
///     fn backward(&self, inputs: &Inputs<'_, f32>, _: &Tensor<f32>, _: &Tensor<f32>, grad: &Tensor<f32>, grads: &mut InputGrads<'_, '_, f32>) {
///         let x = inputs.get(0).as_slice();
///         for ((sum, &g), &x) in grads.get_mut(0).as_mut_slice().iter_mut().zip(grad.as_slice()).zip(x) {
///             *sum += 3.0 * x * x * g; // add, never overwrite
///         }
///     }
/// }
///
/// let mut check = GradientCheck::<f32>::new();
/// let cube = check.register(Cube);
/// // cube(x) + x uses x twice, so a backward that overwrote its gradient would fail.
/// let report = check.run(&[arr1(&[0.5, -1.2, 0.9]).into_dyn()], |tape, x| {
///     let y = tape.custom(cube, &[x[0]])?;
///     let y = tape.add(y, x[0])?;
///     tape.sum(y)
/// })?;
/// assert!(report.max_error_ratio < 1.0);
///
/// // A tighter tolerance for a well-conditioned function.
/// let tight = Tolerance { relative: 1e-3, ..Tolerance::F32 };
/// let mut check = GradientCheck::<f32>::new().with_tolerance(tight);
/// check.run(&[arr1(&[0.5, -1.2]).into_dyn()], |tape, x| tape.sum(x[0]))?;
/// # Ok::<(), tape::GradientCheckError>(())
/// ```
pub struct GradientCheck<F: Float> {
    tape: Tape<F>,
    tolerance: Tolerance,
}

impl<F: Float> Default for GradientCheck<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Float> GradientCheck<F> {
    /// A check with an empty tape and the type's default tolerance ([`Tolerance::of`]).
    pub fn new() -> Self {
        GradientCheck {
            tape: Tape::new(),
            tolerance: Tolerance::of::<F>(),
        }
    }

    /// The same check with another tolerance.
    pub fn with_tolerance(mut self, tolerance: Tolerance) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The tolerance the check applies.
    pub fn tolerance(&self) -> Tolerance {
        self.tolerance
    }

    /// Registers a custom op on the check's tape, once; the function of [`GradientCheck::run`]
    /// records it with the returned id.
    pub fn register(&mut self, op: impl CustomOp<F> + 'static) -> CustomOpId {
        self.tape.register(op)
    }

    /// The check's tape, for any other setup done once (parameters that are not checked, say).
    pub fn tape(&mut self) -> &mut Tape<F> {
        &mut self.tape
    }

    /// Checks the gradients of `function` at `inputs` against central finite differences.
    ///
    /// `function` receives the check's tape and one parameter per input (added to the tape for
    /// this run) and returns a one-element loss. It runs once to record and differentiate, then,
    /// with recording off, twice per element of every input, after the tape is cleared; whatever
    /// it registers or adds as parameters there would be added each time, so do that beforehand
    /// ([`GradientCheck::register`], [`GradientCheck::tape`]).
    pub fn run(
        &mut self,
        inputs: &[ArrayD<F>],
        mut function: impl FnMut(&mut Tape<F>, &[Var]) -> Result<Var, TapeError>,
    ) -> Result<GradientReport, GradientCheckError> {
        let tape = &mut self.tape;
        tape.clear();
        let vars: Vec<Var> = inputs
            .iter()
            .map(|input| tape.parameter(input.clone()))
            .collect();
        let loss = function(tape, &vars)?;
        let gradients = tape.backward(loss)?;

        let mut report = GradientReport {
            elements: 0,
            max_abs_error: 0.0,
            max_error_ratio: 0.0,
        };
        for (input, &var) in vars.iter().enumerate() {
            let analytic_gradient = gradients.parameter(var);
            for (element, &analytic) in analytic_gradient.as_slice().iter().enumerate() {
                let analytic = Float::to_f64(analytic);
                let numeric =
                    central_difference(tape, &vars, var, element, self.tolerance, &mut function)?;
                let error = (analytic - numeric).abs();
                let allowed = self.tolerance.allowed(analytic, numeric);
                // A NaN on either side makes the error NaN, which fails too.
                if error.is_nan() || error > allowed {
                    return Err(GradientCheckError::Mismatch {
                        input,
                        element,
                        analytic,
                        numeric,
                    });
                }
                report.elements += 1;
                report.max_abs_error = report.max_abs_error.max(error);
                if error > 0.0 {
                    report.max_error_ratio = report.max_error_ratio.max(error / allowed);
                }
            }
        }
        Ok(report)
    }
}

/// `(f(x + h e) - f(x - h e)) / ((x + h) - (x - h))` for the unit vector `e` of one element of
/// one parameter, with `x ± h` rounded to `F` and the difference taken in `f64`.
fn central_difference<F: Float>(
    tape: &mut Tape<F>,
    vars: &[Var],
    var: Var,
    element: usize,
    tolerance: Tolerance,
    function: &mut impl FnMut(&mut Tape<F>, &[Var]) -> Result<Var, TapeError>,
) -> Result<f64, TapeError> {
    let original = *element_mut(tape, var, element);
    let plus = F::from_f64(Float::to_f64(original) + tolerance.step);
    let minus = F::from_f64(Float::to_f64(original) - tolerance.step);
    let mut evaluate = |tape: &mut Tape<F>, value: F| {
        *element_mut(tape, var, element) = value;
        tape.clear();
        let loss = tape.without_grad(|tape| function(tape, vars))?;
        let loss = tape.try_value(loss)?;
        match loss.as_slice() {
            [value] => Ok(Float::to_f64(*value)),
            _ => Err(TapeError::NotScalar {
                shape: loss.shape().to_vec(),
            }),
        }
    };
    let at_plus = evaluate(tape, plus);
    let at_minus = evaluate(tape, minus);
    *element_mut(tape, var, element) = original;
    Ok((at_plus? - at_minus?) / (Float::to_f64(plus) - Float::to_f64(minus)))
}

fn element_mut<F: Float>(tape: &mut Tape<F>, var: Var, element: usize) -> &mut F {
    &mut tape.parameter_mut(var).as_mut_slice()[element]
}
