//! Reductions to a scalar (a 0-dimensional value): dot, sum, mean.

use super::{Backward, Op, shape_of};
use crate::{Float, Tape, TapeError, Tensor, Var};

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
            for (&x, &y) in x.as_slice().iter().zip(y.as_slice()) {
                sum += x * y;
            }
            write_scalar(node, sum);
            Ok(())
        })
    }

    /// The sum of all elements of `a`.
    pub fn sum(&mut self, a: Var) -> Result<Var, TapeError> {
        self.record(Op::Sum(a), |tape, node| {
            let sum = total(tape.try_value(a)?);
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
            let mean = total(input) / F::from_f64(input.len() as f64);
            write_scalar(node, mean);
            Ok(())
        })
    }
}

/// The sum of the elements in row-major order.
fn total<F: Float>(value: &Tensor<F>) -> F {
    value.as_slice().iter().fold(F::zero(), |sum, &x| sum + x)
}

fn write_scalar<F: Float>(node: &mut crate::tape::Node<F>, value: F) {
    node.value.resize(&[])[0] = value;
}

/// The single element of a scalar's gradient.
fn upstream<F: Float>(context: &Backward<'_, F>) -> F {
    context.grad.as_slice()[0]
}

/// d(a . b) = b da + a db.
pub(super) fn dot_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, b: Var) {
    let grad = upstream(context);
    for (target, other) in [(a, b), (b, a)] {
        let other = context.tape.value(other).as_slice();
        for (sum, &other) in context.sink.of(target).as_mut_slice().iter_mut().zip(other) {
            *sum += grad * other;
        }
    }
}

/// Every element contributed once to the sum.
pub(super) fn sum_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let grad = upstream(context);
    context
        .sink
        .of(a)
        .as_mut_slice()
        .iter_mut()
        .for_each(|sum| *sum += grad);
}

/// Every element contributed `1 / len` to the mean.
pub(super) fn mean_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let share = upstream(context) / F::from_f64(context.tape.value(a).len() as f64);
    context
        .sink
        .of(a)
        .as_mut_slice()
        .iter_mut()
        .for_each(|sum| *sum += share);
}
