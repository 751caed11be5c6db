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
        output: &mut ArrayD<f64>,
        _saved: &mut ArrayD<f64>,
    ) -> Result<(), TapeError> {
        let (x, indices) = (inputs.get(0), inputs.indices());
        if let Some(&index) = indices.iter().find(|&&index| index >= x.len()) {
            let detail = format!("index {index} is outside an input of {}", x.len());
            return Err(TapeError::shape(self.name(), detail));
        }
        resize(output, &[indices.len()]);
        for (out, &index) in output.iter_mut().zip(indices) {
            *out = x[[index]];
        }
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
        let grad = grads.get_mut(0);
        for (&g, &index) in output_grad.iter().zip(inputs.indices()) {
            grad[[index]] += g;
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
