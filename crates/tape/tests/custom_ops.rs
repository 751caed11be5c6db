//! The extension point: a user-written op with its own backward, checked by the public checker;
//! and proof that the checker rejects a wrong backward.

use ndarray::{ArrayD, arr1};
use tape::{CustomOp, InputGrads, Inputs, Tape, TapeError, Tolerance, check_gradients, resize};

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
        output: &mut ArrayD<f64>,
        _saved: &mut ArrayD<f64>,
    ) -> Result<(), TapeError> {
        let (a, b) = (inputs.get(0), inputs.get(1));
        if a.shape() != b.shape() {
            return Err(TapeError::shape(
                self.name(),
                format!("{:?} and {:?} differ", a.shape(), b.shape()),
            ));
        }
        resize(output, a.shape());
        output.assign(&(a * b + a));
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, f64>,
        _output: &ArrayD<f64>,
        _saved: &ArrayD<f64>,
        output_grad: &ArrayD<f64>,
        grads: &mut InputGrads<'_, '_, f64>,
    ) {
        let (a, b) = (inputs.get(0), inputs.get(1));
        // d/da = b + 1, d/db = a
        *grads.get_mut(0) += &(output_grad * &(b + 1.0 + self.wrong_by));
        *grads.get_mut(1) += &(output_grad * a);
    }
}

fn check_mul_add(wrong_by: f64) -> Result<tape::GradientReport, tape::GradientCheckError> {
    let inputs = [
        arr1(&[0.3, -1.2, 2.0]).into_dyn(),
        arr1(&[1.5, 0.7, -0.4]).into_dyn(),
    ];
    let weights = arr1(&[0.9, -0.2, 0.5]).into_dyn();
    check_gradients(&inputs, Tolerance::default(), |tape, vars| {
        let op = tape.register(MulAdd { wrong_by });
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
