//! What the gradient-check suites share: random arrays, and a check that projects an op's output
//! onto random weights before comparing its backward with finite differences.
//!
//! Each op's output is reduced to a scalar by a dot product with random weights rather than a plain
//! sum: a sum would hide wrong backwards whose errors cancel (the sum of a softmax is always 1, so
//! any softmax backward passes a sum test).

#![allow(dead_code)] // each suite uses its own subset

pub mod square;

use ndarray::{ArrayD, IxDyn};
use proptest::collection::vec;
use proptest::prelude::*;
use tape::{Tape, TapeError, Var, check_gradients};

/// An array of the given shape with elements drawn from `range`.
pub fn array(shape: Vec<usize>, range: std::ops::Range<f64>) -> impl Strategy<Value = ArrayD<f64>> {
    let len: usize = shape.iter().product();
    vec(range, len).prop_map(move |data| ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap())
}

/// A vector (`[n]`) or a matrix (`[rows, n]`) shape.
pub fn vector_or_matrix() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (1usize..7).prop_map(|n| vec![n]),
        (1usize..5, 1usize..7).prop_map(|(r, n)| vec![r, n])
    ]
}

/// `sum(output * weights)` for weights that are random but fixed for the whole check.
pub fn project(tape: &mut Tape<f64>, output: Var, weights: &ArrayD<f64>) -> Result<Var, TapeError> {
    let weights = tape.constant(weights.clone());
    tape.dot(output, weights)
}

/// Checks `op` on `inputs`, projecting its output with `weights`.
pub fn check(
    inputs: &[ArrayD<f64>],
    weights: &ArrayD<f64>,
    op: impl Fn(&mut Tape<f64>, &[Var]) -> Result<Var, TapeError>,
) -> Result<(), TestCaseError> {
    let result = check_gradients(inputs, |tape, vars| {
        let output = op(tape, vars)?;
        project(tape, output, weights)
    });
    prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    Ok(())
}

/// Two inputs and projection weights of one random shape.
pub fn two_of_a_shape(
    range: std::ops::Range<f64>,
) -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>)> {
    vector_or_matrix().prop_flat_map(move |shape| {
        (
            array(shape.clone(), range.clone()),
            array(shape.clone(), range.clone()),
            array(shape, -1.0..1.0),
        )
    })
}
