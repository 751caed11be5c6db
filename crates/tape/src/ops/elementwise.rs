//! Elementwise arithmetic: add, sub, mul (all on equal shapes) and scale by a constant.

use super::{Backward, Op, shape_of};
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// `a + b`, elementwise; the shapes must be equal.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary("add", Op::Add(a, b), a, b, |x, y| x + y)
    }

    /// `a - b`, elementwise; the shapes must be equal.
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary("sub", Op::Sub(a, b), a, b, |x, y| x - y)
    }

    /// `a * b`, elementwise (the Hadamard product); the shapes must be equal.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary("mul", Op::Mul(a, b), a, b, |x, y| x * y)
    }

    /// `factor * a` for a constant `factor`.
    pub fn scale(&mut self, a: Var, factor: F) -> Result<Var, TapeError> {
        self.map(Op::Scale(a, factor), a, |x| factor * x)
    }

    fn binary(
        &mut self,
        name: &'static str,
        op: Op<F>,
        a: Var,
        b: Var,
        combine: impl Fn(F, F) -> F,
    ) -> Result<Var, TapeError> {
        self.record(op, |tape, node| {
            let (x, y) = (tape.try_value(a)?, tape.try_value(b)?);
            if x.shape() != y.shape() {
                let detail = format!("{} and {} differ", shape_of(x), shape_of(y));
                return Err(TapeError::shape(name, detail));
            }
            let out = node.value.resize(x.shape());
            for ((out, &x), &y) in out.iter_mut().zip(x.as_slice()).zip(y.as_slice()) {
                *out = combine(x, y);
            }
            Ok(())
        })
    }

    /// Records an elementwise function of one input (used by scale and the activations).
    pub(crate) fn map(
        &mut self,
        op: Op<F>,
        a: Var,
        function: impl Fn(F) -> F,
    ) -> Result<Var, TapeError> {
        self.record(op, |tape, node| {
            let x = tape.try_value(a)?;
            let out = node.value.resize(x.shape());
            for (out, &x) in out.iter_mut().zip(x.as_slice()) {
                *out = function(x);
            }
            Ok(())
        })
    }
}

/// d(a + b) = da + db.
pub(super) fn add_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, b: Var) {
    context.accumulate_scaled(a, F::one());
    context.accumulate_scaled(b, F::one());
}

/// d(a - b) = da - db.
pub(super) fn sub_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, b: Var) {
    context.accumulate_scaled(a, F::one());
    context.accumulate_scaled(b, -F::one());
}

/// d(a * b) = b da + a db.
pub(super) fn mul_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, b: Var) {
    for (target, other) in [(a, b), (b, a)] {
        let other = context.tape.value(other).as_slice();
        let target = context.sink.of(target).as_mut_slice();
        for ((sum, &grad), &other) in target.iter_mut().zip(context.grad.as_slice()).zip(other) {
            *sum += grad * other;
        }
    }
}
