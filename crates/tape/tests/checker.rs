//! The gradient checker itself: in `f32`, with its default tolerance, it passes the built-in ops
//! on random shapes and values, and fails a backward scaled by 1.01 and a backward that overwrites
//! its input's gradient when that input is used twice; a custom op is registered once per check.
//!
//! The oracle for what passes is the set of built-in ops, whose backwards the `f64` suites
//! (`gradient_checks.rs` and the family suites) verify to `1e-5`; the oracle for what fails is a
//! backward wrong by construction.

mod common;

use common::square::Square;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{ArrayD, IxDyn, arr1};
use proptest::collection::vec;
use proptest::prelude::*;
use tape::{
    CustomOp, Float, GradientCheck, GradientCheckError, InputGrads, Inputs, Tape, TapeError,
    Tensor, Tolerance, Var, check_gradients,
};

/// An `f32` array of `shape` with elements drawn from `range`.
fn array(shape: Vec<usize>, range: std::ops::Range<f32>) -> impl Strategy<Value = ArrayD<f32>> {
    let len: usize = shape.iter().product();
    vec(range, len).prop_map(move |data| ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap())
}

/// A shape `[rows, columns]` or `[columns]`, small enough for finite differences.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (1usize..7).prop_map(|n| vec![n]),
        (1usize..4, 1usize..6).prop_map(|(rows, n)| vec![rows, n])
    ]
}

/// An input and projection weights of one random shape.
fn input_and_weights(
    range: std::ops::Range<f32>,
) -> impl Strategy<Value = (ArrayD<f32>, ArrayD<f32>)> {
    shape()
        .prop_flat_map(move |shape| (array(shape.clone(), range.clone()), array(shape, -1.0..1.0)))
}

/// Checks `op` in `f32` with the default tolerance, projecting its output onto `weights` (a plain
/// sum would hide errors that cancel).
fn check(
    inputs: &[ArrayD<f32>],
    weights: &ArrayD<f32>,
    op: impl Fn(&mut Tape<f32>, &[Var]) -> Result<Var, TapeError>,
) -> Result<(), TestCaseError> {
    let result = check_gradients(inputs, |tape, vars| {
        let output = op(tape, vars)?;
        let weights = tape.constant(weights.clone());
        tape.dot(output, weights)
    });
    match result {
        Ok(report) => {
            if std::env::var_os("CHECKER_RATIOS").is_some() {
                eprintln!(
                    "ratio {:.3} {:?}",
                    report.max_error_ratio,
                    inputs[0].shape()
                );
            }
            Ok(())
        }
        Err(error) => Err(TestCaseError::fail(error.to_string())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// If any of these failed, the f32 tolerance would be too tight for correct ops: users would
    /// see false alarms.
    #[test]
    fn correct_elementwise_ops_pass_in_f32((a, weights) in input_and_weights(-2.0..2.0), (b, _) in input_and_weights(0.5..2.0)) {
        let b = if b.shape() == a.shape() { b } else { a.mapv(|x| 1.0 + x.abs()) };
        let inputs = [a.clone(), b];
        check(&inputs, &weights, |tape, v| tape.add(v[0], v[1]))?;
        check(&inputs, &weights, |tape, v| tape.mul(v[0], v[1]))?;
        check(&inputs, &weights, |tape, v| tape.div(v[0], v[1]))?;
        check(&inputs[..1], &weights, |tape, v| tape.mul(v[0], v[0]))?;
        check(&inputs[..1], &weights, |tape, v| tape.exp(v[0]))?;
        check(&inputs[..1], &weights, |tape, v| tape.tanh(v[0]))?;
        check(&inputs[..1], &weights, |tape, v| tape.sigmoid(v[0]))?;
        check(&inputs[..1], &weights, |tape, v| tape.gelu(v[0]))?;
        check(&inputs[..1], &weights, |tape, v| tape.silu(v[0]))?;
        check(&inputs[1..], &weights, |tape, v| tape.log(v[0]))?;
        check(&inputs[1..], &weights, |tape, v| tape.sqrt(v[0]))?;
        check(&inputs[1..], &weights, |tape, v| tape.powf(v[0], 1.5))?;
    }

    #[test]
    fn correct_row_ops_pass_in_f32((a, weights) in input_and_weights(-2.0..2.0)) {
        let inputs = [a];
        check(&inputs, &weights, |tape, v| tape.softmax(v[0]))?;
        let last = inputs[0].ndim() - 1;
        check(&inputs, &weights, |tape, v| tape.log_softmax(v[0], last))?;
        // Normalisation is as sharp as a row's spread is small (rms_norm of a row near zero is
        // within sqrt(epsilon) of a sign function): a step of 1e-2 needs rows spread far wider,
        // so a ramp of 5 per column (more than the values' range) is added, and rms_norm's rows are kept away from zero.
        let ramp = [ndarray::Array::from_shape_fn(inputs[0].raw_dim(), |index| {
            inputs[0][&index] + 5.0 * index[last] as f32
        })];
        if inputs[0].shape()[last] > 1 {
            check(&ramp, &weights, |tape, v| tape.layer_norm(v[0], None, None, 1e-5))?;
        }
        let away = [inputs[0].mapv(|x| x.signum() * (0.5 + x.abs()))];
        check(&away, &weights, |tape, v| tape.rms_norm(v[0], None, 1e-5))?;
    }

    #[test]
    fn correct_products_and_losses_pass_in_f32(
        (x, w, weights, targets) in (1usize..4, 1usize..6, 2usize..6).prop_flat_map(|(rows, inner, outer)| {
            (array(vec![rows, inner], -1.5..1.5), array(vec![outer, inner], -1.5..1.5), array(vec![rows, outer], -1.0..1.0), vec(0..outer, rows))
        })
    ) {
        check(&[x.clone(), w.clone()], &weights, |tape, v| tape.linear(v[0], v[1]))?;
        let one = ArrayD::from_elem(IxDyn(&[]), 1.0f32);
        let logits_of = |tape: &mut Tape<f32>, v: &[Var]| tape.linear(v[0], v[1]);
        check(&[x, w], &one, |tape, v| {
            let logits = logits_of(tape, v)?;
            tape.softmax_cross_entropy(logits, &targets)
        })?;
    }
}

/// `a * b + a` elementwise, with a backward that is right, or off by a factor `1 + wrong_by` in
/// `d/da`; it counts how often it is constructed and how often its forward runs.
struct MulAdd {
    wrong_by: f32,
    forwards: Arc<AtomicUsize>,
}

impl CustomOp<f32> for MulAdd {
    fn name(&self) -> &'static str {
        "mul_add"
    }

    fn forward(
        &self,
        inputs: &Inputs<'_, f32>,
        output: &mut Tensor<f32>,
        _saved: &mut Tensor<f32>,
    ) -> Result<(), TapeError> {
        self.forwards.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (inputs.get(0), inputs.get(1));
        let out = output.resize(a.shape());
        for ((out, &a), &b) in out.iter_mut().zip(a.as_slice()).zip(b.as_slice()) {
            *out = a * b + a;
        }
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, f32>,
        _output: &Tensor<f32>,
        _saved: &Tensor<f32>,
        output_grad: &Tensor<f32>,
        grads: &mut InputGrads<'_, '_, f32>,
    ) {
        let (a, b) = (inputs.get(0).as_slice(), inputs.get(1).as_slice());
        let grad = output_grad.as_slice();
        // d/da = b + 1, d/db = a
        let grad_a = grads.get_mut(0).as_mut_slice();
        for ((sum, &g), &b) in grad_a.iter_mut().zip(grad).zip(b) {
            *sum += g * (b + 1.0) * (1.0 + self.wrong_by);
        }
        let grad_b = grads.get_mut(1).as_mut_slice();
        for ((sum, &g), &a) in grad_b.iter_mut().zip(grad).zip(a) {
            *sum += g * a;
        }
    }
}

fn check_mul_add(
    wrong_by: f32,
    forwards: &Arc<AtomicUsize>,
) -> Result<tape::GradientReport, GradientCheckError> {
    let inputs = [
        arr1(&[0.3f32, -1.2, 2.0]).into_dyn(),
        arr1(&[1.5f32, 0.7, -0.4]).into_dyn(),
    ];
    let weights = arr1(&[0.9f32, -0.2, 0.5]).into_dyn();
    let mut check = GradientCheck::<f32>::new();
    let op = check.register(MulAdd {
        wrong_by,
        forwards: Arc::clone(forwards),
    });
    check.run(&inputs, |tape, vars| {
        let out = tape.custom(op, vars)?;
        let weights = tape.constant(weights.clone());
        tape.dot(out, weights)
    })
}

#[test]
fn a_correct_custom_op_passes_in_f32_and_one_scaled_by_1_01_fails() {
    let forwards = Arc::new(AtomicUsize::new(0));
    let report = check_mul_add(0.0, &forwards).unwrap();
    assert_eq!(report.elements, 6);
    // If this failed, the default f32 tolerance would let a gradient 1% off through.
    let error = check_mul_add(0.01, &forwards).unwrap_err();
    assert!(
        matches!(error, GradientCheckError::Mismatch { input: 0, .. }),
        "{error}"
    );
    // And 1% too small, too.
    let error = check_mul_add(-0.01, &forwards).unwrap_err();
    assert!(
        matches!(error, GradientCheckError::Mismatch { input: 0, .. }),
        "{error}"
    );
}

/// The op is registered once, before the function runs: the function records it 1 + 2n times (once
/// with gradients, twice per input element) on a tape that holds one registration. If the check
/// registered inside the function, as the old checker made its users do, the op registered after
/// the check would not get the id that follows the first one.
#[test]
fn a_custom_op_is_registered_once_per_check() {
    let forwards = Arc::new(AtomicUsize::new(0));
    let mut check = GradientCheck::<f32>::new();
    let first = check.register(MulAdd {
        wrong_by: 0.0,
        forwards: Arc::clone(&forwards),
    });
    let inputs = [
        arr1(&[0.3f32, -1.2]).into_dyn(),
        arr1(&[1.5f32, 0.7]).into_dyn(),
    ];
    check
        .run(&inputs, |tape, vars| {
            let out = tape.custom(first, vars)?;
            tape.sum(out)
        })
        .unwrap();
    assert_eq!(forwards.load(Ordering::Relaxed), 1 + 2 * 4);
    let next = check.register(MulAdd {
        wrong_by: 0.0,
        forwards: Arc::clone(&forwards),
    });
    assert_eq!(format!("{first:?} {next:?}"), "CustomOpId(0) CustomOpId(1)");
}

/// `dot(square(x) + x, w)`, or with `twice` false `dot(square(x), w)`, checked in `F`.
fn check_square<F: Float>(
    overwrites: bool,
    twice: bool,
) -> Result<tape::GradientReport, GradientCheckError> {
    let inputs = [arr1(&[0.3, -1.2, 2.0]).mapv(F::from_f64).into_dyn()];
    let weights = arr1(&[0.9, -0.2, 0.5]).mapv(F::from_f64).into_dyn();
    let mut check = GradientCheck::<F>::new();
    let square = check.register(Square { overwrites });
    check.run(&inputs, |tape, x| {
        let mut out = tape.custom(square, &[x[0]])?;
        if twice {
            out = tape.add(out, x[0])?;
        }
        let weights = tape.constant(weights.clone());
        tape.dot(out, weights)
    })
}

/// If this failed, the checker (in either type) would let the commonest custom-op bug through when
/// the test uses the input twice, which is what its docs tell users to do.
#[test]
fn an_overwriting_backward_fails_when_its_input_is_used_twice() {
    assert!(check_square::<f32>(false, true).is_ok());
    assert!(
        check_square::<f32>(true, false).is_ok(),
        "used once, the bug is invisible"
    );
    let error = check_square::<f32>(true, true).unwrap_err();
    assert!(
        matches!(error, GradientCheckError::Mismatch { input: 0, .. }),
        "{error}"
    );
    assert!(check_square::<f64>(false, true).is_ok());
    assert!(check_square::<f64>(true, true).is_err());
}

/// The table in `Tolerance`'s docs: a backward scaled by 1.01 fails on an element whose gradient
/// exceeds 0.15 in f32 (2e-5 in f64), because 1% of it exceeds the allowed error there.
#[test]
fn the_documented_thresholds_follow_from_the_tolerances() {
    for (tolerance, threshold) in [(Tolerance::F32, 0.15), (Tolerance::F64, 2e-5)] {
        let allowed = tolerance.absolute + tolerance.relative * 1.01 * threshold;
        assert!(0.01 * threshold > allowed, "{tolerance:?} at {threshold}");
    }
}

#[test]
fn a_function_that_returns_no_scalar_is_an_error_not_a_panic() {
    let inputs = [arr1(&[0.25f32, 1.5]).into_dyn()];
    let error = check_gradients(&inputs, |_, x| Ok(x[0])).unwrap_err();
    assert!(
        matches!(error, GradientCheckError::Tape(TapeError::NotScalar { .. })),
        "{error}"
    );
}
