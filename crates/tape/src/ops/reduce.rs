//! Reductions to a scalar (a 0-dimensional value): dot, sum, mean.

use ndarray::Zip;

use super::{Backward, Op, shape_of};
use crate::tape::resize;
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// `sum(a * b)`: the dot product of two vectors (or of two equal-shaped arrays, elementwise).
    pub fn dot(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.record(Op::Dot(a, b), |tape, node| {
            let (x, y) = (tape.try_value(a)?, tape.try_value(b)?);
            if x.shape() != y.shape() {
                let detail = format!("{} and {} differ", shape_of(x), shape_of(y));
                return Err(TapeError::shape("dot", detail));
            }
            let mut sum = F::zero();
            Zip::from(x).and(y).for_each(|&x, &y| sum += x * y);
            write_scalar(node, sum);
            Ok(())
        })
    }

    /// The sum of all elements of `a`.
    pub fn sum(&mut self, a: Var) -> Result<Var, TapeError> {
        self.record(Op::Sum(a), |tape, node| {
            let sum = tape.try_value(a)?.sum();
            write_scalar(node, sum);
            Ok(())
        })
    }

    /// The mean of all elements of `a` (which must not be empty).
    pub fn mean(&mut self, a: Var) -> Result<Var, TapeError> {
        self.record(Op::Mean(a), |tape, node| {
            let input = tape.try_value(a)?;
            if input.is_empty() {
                return Err(TapeError::shape(
                    "mean",
                    "the mean of an empty array is undefined",
                ));
            }
            let mean = input.sum() / F::from_f64(input.len() as f64);
            write_scalar(node, mean);
            Ok(())
        })
    }
}

fn write_scalar<F: Float>(node: &mut crate::tape::Node<F>, value: F) {
    resize(&mut node.value, &[]);
    node.value.fill(value);
}

/// The single element of a scalar's gradient.
fn upstream<F: Float>(context: &Backward<'_, F>) -> F {
    context.grad.iter().copied().next().unwrap_or_else(F::zero)
}

/// d(a . b) = b da + a db.
pub(super) fn dot_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, b: Var) {
    let grad = upstream(context);
    for (target, other) in [(a, b), (b, a)] {
        let other = context.tape.value(other);
        context.sink.of(target).scaled_add(grad, other);
    }
}

/// Every element contributed once to the sum.
pub(super) fn sum_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let grad = upstream(context);
    context.sink.of(a).mapv_inplace(|sum| sum + grad);
}

/// Every element contributed `1 / len` to the mean.
pub(super) fn mean_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let share = upstream(context) / F::from_f64(context.tape.value(a).len() as f64);
    context.sink.of(a).mapv_inplace(|sum| sum + share);
}
