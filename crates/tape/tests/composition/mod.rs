//! What the suites that prove fused ops equal to their compositions share: a closeness test
//! relative to the scale of the terms, and a comparison of two recorded functions' values and
//! gradients.

#![allow(dead_code)] // each suite uses its own subset

use ndarray::ArrayD;
use proptest::prelude::*;
use tape::{Tape, TapeError, Var};

use crate::common::project;

/// Whether `actual` equals `expected` to `relative` times the largest of the element, the largest
/// element of `expected` and 1. The inputs and weights of these tests are of order one, and so are
/// the terms a value or gradient is summed from: an element that cancels to 1e-6 is held to
/// `relative` of those terms, not to digits the cancellation never left it.
pub fn close(actual: &[f64], expected: &[f64], relative: f64) -> Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "{} elements, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    let largest = expected.iter().fold(1f64, |max, x| max.max(x.abs()));
    for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let allowed = relative * a.abs().max(e.abs()).max(largest);
        // A NaN on either side fails too.
        if (a - e).abs() > allowed || (a - e).is_nan() {
            return Err(format!("element {index}: {a:e}, expected {e:e}"));
        }
    }
    Ok(())
}

/// A recorded function of some parameters, for comparing a fused op with its composition.
pub type Function<'a> = dyn Fn(&mut Tape<f64>, &[Var]) -> Result<Var, TapeError> + 'a;

/// Records `fused` and `composed` on the same inputs, projects both outputs onto `weights` and
/// requires equal values and equal gradients with respect to every input, to 1e-12 relative.
pub fn same_as_composition(
    inputs: &[ArrayD<f64>],
    weights: &ArrayD<f64>,
    fused: &Function<'_>,
    composed: &Function<'_>,
) -> Result<(), TestCaseError> {
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|x| tape.parameter(x.clone())).collect();
    let mut results = Vec::new();
    for function in [fused, composed] {
        let output = function(&mut tape, &vars).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let value = tape.value(output).clone();
        let loss = project(&mut tape, output, weights).unwrap();
        let gradients = tape.backward(loss).unwrap();
        let grads: Vec<_> = vars
            .iter()
            .map(|&v| gradients.parameter(v).clone())
            .collect();
        results.push((value, grads));
    }
    let ((fused_value, fused_grads), (value, grads)) = (&results[0], &results[1]);
    prop_assert_eq!(fused_value.shape(), value.shape());
    close(fused_value.as_slice(), value.as_slice(), 1e-12)
        .map_err(|e| TestCaseError::fail(format!("values: {e}")))?;
    for (input, (fused, composed)) in fused_grads.iter().zip(grads).enumerate() {
        close(fused.as_slice(), composed.as_slice(), 1e-12)
            .map_err(|e| TestCaseError::fail(format!("gradient of input {input}: {e}")))?;
    }
    Ok(())
}
