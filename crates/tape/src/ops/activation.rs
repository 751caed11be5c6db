//! Elementwise nonlinearities: relu, exp, log.

use super::{Backward, Op};
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// `max(a, 0)`, elementwise.
    pub fn relu(&mut self, a: Var) -> Result<Var, TapeError> {
        self.map(
            Op::Relu(a),
            a,
            |x| if x > F::zero() { x } else { F::zero() },
        )
    }

    /// `e^a`, elementwise.
    pub fn exp(&mut self, a: Var) -> Result<Var, TapeError> {
        self.map(Op::Exp(a), a, F::exp)
    }

    /// The natural logarithm of `a`, elementwise.
    pub fn log(&mut self, a: Var) -> Result<Var, TapeError> {
        self.map(Op::Log(a), a, F::ln)
    }
}

/// relu'(x) = 1 for x > 0, else 0 (including at 0, as microgpt.py's `float(x > 0)`).
pub(super) fn relu_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    context.accumulate_with(a, |x, _| if x > F::zero() { F::one() } else { F::zero() });
}

/// exp'(x) = exp(x), which is the output.
pub(super) fn exp_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    context.accumulate_with(a, |_, output| output);
}

/// log'(x) = 1 / x.
pub(super) fn log_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    context.accumulate_with(a, |x, _| x.recip());
}
