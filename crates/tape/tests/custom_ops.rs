//! The extension point: a user-written op with its own backward, checked by the public checker;
//! and proof that the checker rejects a wrong backward.

mod common;

use common::square::Square;
use ndarray::arr1;
use tape::{CustomOp, GradientCheck, InputGrads, Inputs, Tape, TapeError, Tensor};

/// `a * b + a` elementwise, with a backward that is right or, for the checker's sake, off by 1%.
struct MulAdd {
    wrong_by: f64,
}

impl CustomOp<f64> for MulAdd {
    fn name(&self) -> &'static str {
        "mul_add"
    }

    fn forward(
        &self,
        inputs: &Inputs<'_, f64>,
        output: &mut Tensor<f64>,
        _saved: &mut Tensor<f64>,
    ) -> Result<(), TapeError> {
        let (a, b) = (inputs.get(0), inputs.get(1));
        if a.shape() != b.shape() {
            return Err(TapeError::shape(
                self.name(),
                format!("{:?} and {:?} differ", a.shape(), b.shape()),
            ));
        }
        let out = output.resize(a.shape());
        for ((out, &a), &b) in out.iter_mut().zip(a.as_slice()).zip(b.as_slice()) {
            *out = a * b + a;
        }
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, f64>,
        _output: &Tensor<f64>,
        _saved: &Tensor<f64>,
        output_grad: &Tensor<f64>,
        grads: &mut InputGrads<'_, '_, f64>,
    ) {
        let (a, b) = (inputs.get(0).as_slice(), inputs.get(1).as_slice());
        let grad = output_grad.as_slice();
        // d/da = b + 1, d/db = a
        let grad_a = grads.get_mut(0).as_mut_slice();
        for ((sum, &g), &b) in grad_a.iter_mut().zip(grad).zip(b) {
            *sum += g * (b + 1.0 + self.wrong_by);
        }
        let grad_b = grads.get_mut(1).as_mut_slice();
        for ((sum, &g), &a) in grad_b.iter_mut().zip(grad).zip(a) {
            *sum += g * a;
        }
    }
}

fn check_mul_add(wrong_by: f64) -> Result<tape::GradientReport, tape::GradientCheckError> {
    let inputs = [
        arr1(&[0.3, -1.2, 2.0]).into_dyn(),
        arr1(&[1.5, 0.7, -0.4]).into_dyn(),
    ];
    let weights = arr1(&[0.9, -0.2, 0.5]).into_dyn();
    let mut check = GradientCheck::new();
    let op = check.register(MulAdd { wrong_by });
    check.run(&inputs, |tape, vars| {
        let out = tape.custom(op, vars)?;
        let weights = tape.constant(weights.clone());
        tape.dot(out, weights)
    })
}

#[test]
fn a_correct_custom_op_passes_the_checker() {
    let report = check_mul_add(0.0).unwrap();
    assert_eq!(report.elements, 6);
}

#[test]
fn a_backward_off_by_one_percent_fails_the_checker() {
    let error = check_mul_add(0.01).unwrap_err();
    assert!(
        matches!(
            error,
            tape::GradientCheckError::Mismatch {
                input: 0,
                element: 0,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn custom_op_shape_errors_come_back_from_forward() {
    let mut tape = Tape::new();
    let op = tape.register(MulAdd { wrong_by: 0.0 });
    let a = tape.parameter(arr1(&[1.0, 2.0]).into_dyn());
    let b = tape.parameter(arr1(&[1.0]).into_dyn());
    let error = tape.custom(op, &[a, b]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "mul_add: shape mismatch: [2] and [1] differ"
    );
}

/// `out[j] = x[indices[j]]`: an op whose integer operands choose what it reads, to check that the
/// operands reach both forward and backward as they were recorded.
struct Pick;

impl CustomOp<f64> for Pick {
    fn name(&self) -> &'static str {
        "pick"
    }

    fn forward(
        &self,
        inputs: &Inputs<'_, f64>,
        output: &mut Tensor<f64>,
        _saved: &mut Tensor<f64>,
    ) -> Result<(), TapeError> {
        let (x, indices) = (inputs.get(0), inputs.indices());
        if let Some(&index) = indices.iter().find(|&&index| index >= x.len()) {
            let detail = format!("index {index} is outside an input of {}", x.len());
            return Err(TapeError::shape(self.name(), detail));
        }
        let out = output.resize(&[indices.len()]);
        for (out, &index) in out.iter_mut().zip(indices) {
            *out = x.as_slice()[index];
        }
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, f64>,
        _output: &Tensor<f64>,
        _saved: &Tensor<f64>,
        output_grad: &Tensor<f64>,
        grads: &mut InputGrads<'_, '_, f64>,
    ) {
        let grad = grads.get_mut(0).as_mut_slice();
        for (&g, &index) in output_grad.as_slice().iter().zip(inputs.indices()) {
            grad[index] += g;
        }
    }
}

#[test]
fn integer_operands_reach_forward_and_backward() {
    let mut tape = Tape::new();
    let op = tape.register(Pick);
    let x = tape.parameter(arr1(&[10.0, 20.0, 30.0]).into_dyn());
    let picked = tape.custom_with_indices(op, &[x], &[2, 0, 2]).unwrap();
    assert_eq!(tape.value(picked), &arr1(&[30.0, 10.0, 30.0]).into_dyn());
    let weights = tape.constant(arr1(&[1.0, 2.0, 4.0]).into_dyn());
    let loss = tape.dot(picked, weights).unwrap();
    // x[0] is picked once with weight 2, x[2] twice with weights 1 and 4, x[1] never.
    let gradients = tape.backward(loss).unwrap();
    assert_eq!(gradients.parameter(x), &arr1(&[2.0, 0.0, 5.0]).into_dyn());
    let error = tape.custom_with_indices(op, &[x], &[3]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "pick: shape mismatch: index 3 is outside an input of 3"
    );
}

/// `dot(f(x), w)` for `x = [0.3, -1.2, 2.0]`, checked against finite differences.
fn check_square(
    overwrites: bool,
    f: impl Fn(&mut Tape<f64>, tape::CustomOpId, tape::Var) -> Result<tape::Var, TapeError>,
) -> Result<tape::GradientReport, tape::GradientCheckError> {
    let weights = arr1(&[0.9, -0.2, 0.5]).into_dyn();
    let inputs = [arr1(&[0.3, -1.2, 2.0]).into_dyn()];
    let mut check = GradientCheck::new();
    let op = check.register(Square { overwrites });
    check.run(&inputs, |tape, vars| {
        let out = f(tape, op, vars[0])?;
        let weights = tape.constant(weights.clone());
        tape.dot(out, weights)
    })
}

/// A backward that overwrites its input's gradient instead of adding to it passes any check in
/// which the input is used once (its gradient starts at zero), so the checker must see it used
/// twice: `square(x) + x`, and `square(x) + square(x)`. If the overwriting op passed either, the
/// checker (or the tape's order of accumulation) would let the commonest custom-op bug through.
#[test]
fn an_overwriting_backward_is_caught_when_its_input_is_used_twice() {
    let plus_x = |tape: &mut Tape<f64>, op, x| {
        let squared = tape.custom(op, &[x])?;
        tape.add(squared, x)
    };
    let applied_twice = |tape: &mut Tape<f64>, op, x| {
        let first = tape.custom(op, &[x])?;
        let second = tape.custom(op, &[x])?;
        tape.add(first, second)
    };
    let once = |tape: &mut Tape<f64>, op, x| tape.custom(op, &[x]);

    assert!(check_square(false, plus_x).is_ok());
    assert!(check_square(false, applied_twice).is_ok());
    assert!(
        check_square(true, once).is_ok(),
        "used once, the bug is invisible"
    );
    for (name, result) in [
        ("square(x) + x", check_square(true, plus_x)),
        ("square(x) + square(x)", check_square(true, applied_twice)),
    ] {
        assert!(
            matches!(
                result,
                Err(tape::GradientCheckError::Mismatch { input: 0, .. })
            ),
            "{name}: {result:?}"
        );
    }
}
