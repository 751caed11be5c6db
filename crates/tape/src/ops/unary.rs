//! Elementwise math of one value: neg, square, sqrt, powf, abs, clamp.

use super::{Backward, Op};
use crate::{Float, Tape, TapeError, Var};

/// A unary elementwise op, with the constants it takes.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Unary<F> {
    Neg,
    Square,
    Sqrt,
    Powf(F),
    Abs,
    Clamp { min: F, max: F },
}

impl<F: Float> Tape<F> {
    /// `-a`, elementwise; the output has `a`'s shape.
    pub fn neg(&mut self, a: Var) -> Result<Var, TapeError> {
        self.unary(Unary::Neg, a)
    }

    /// `a * a`, elementwise; the output has `a`'s shape.
    pub fn square(&mut self, a: Var) -> Result<Var, TapeError> {
        self.unary(Unary::Square, a)
    }

    /// The square root of `a`, elementwise (NaN for negative elements, and an infinite gradient at
    /// 0); the output has `a`'s shape.
    pub fn sqrt(&mut self, a: Var) -> Result<Var, TapeError> {
        self.unary(Unary::Sqrt, a)
    }

    /// `a` raised to the constant power `exponent`, elementwise, by the C library's `pow` (so a
    /// negative base is NaN unless `exponent` is a whole number); the output has `a`'s shape.
    /// Its gradient is `exponent * a^(exponent - 1)`, and 0 for the exponent 0.
    pub fn powf(&mut self, a: Var, exponent: F) -> Result<Var, TapeError> {
        self.unary(Unary::Powf(exponent), a)
    }

    /// `|a|`, elementwise; the output has `a`'s shape. Its gradient is the sign of `a`, and 0 at 0
    /// (as PyTorch's).
    pub fn abs(&mut self, a: Var) -> Result<Var, TapeError> {
        self.unary(Unary::Abs, a)
    }

    /// `a` limited to `[min, max]`, elementwise: `min(max(a, min), max)`, as PyTorch's `clamp`
    /// (so every element is `max` if `min > max`, and NaN stays NaN); the output has `a`'s shape.
    /// The gradient passes where `min <= a <= max` and is 0 where the bound was taken.
    pub fn clamp(&mut self, a: Var, min: F, max: F) -> Result<Var, TapeError> {
        self.unary(Unary::Clamp { min, max }, a)
    }

    /// Records `kind` of `a`. The match is outside the element loop, so each op gets a loop of its
    /// own that the compiler vectorises.
    fn unary(&mut self, kind: Unary<F>, a: Var) -> Result<Var, TapeError> {
        let op = Op::Unary(kind, a);
        match kind {
            Unary::Neg => self.map(op, a, |x| -x),
            Unary::Square => self.map(op, a, |x| x * x),
            Unary::Sqrt => self.map(op, a, F::sqrt),
            Unary::Powf(exponent) => self.map(op, a, |x| x.powf(exponent)),
            Unary::Abs => self.map(op, a, F::abs),
            Unary::Clamp { min, max } => self.map(op, a, |x| {
                // Comparisons, not F::clamp: that panics when min > max, and drops NaN.
                let low = if x < min { min } else { x };
                if low > max { max } else { low }
            }),
        }
    }
}

/// The derivative of each op, from its input `x` or its output `y`, times the output's gradient.
pub(super) fn unary_backward<F: Float>(context: &mut Backward<'_, F>, kind: Unary<F>, a: Var) {
    let (zero, one) = (F::zero(), F::one());
    match kind {
        // d(-x) = -1
        Unary::Neg => context.accumulate_scaled(a, -one),
        // d(x^2) = 2x
        Unary::Square => context.accumulate_with(a, |x, _| x + x),
        // d(sqrt x) = 1 / (2 sqrt x), from the output
        Unary::Sqrt => context.accumulate_with(a, |_, y| (y + y).recip()),
        // d(x^p) = p x^(p - 1); for p = 0 the output is constant (0 x^-1 would be NaN at x = 0)
        Unary::Powf(exponent) if exponent == zero => {}
        Unary::Powf(exponent) => {
            context.accumulate_with(a, |x, _| exponent * x.powf(exponent - one))
        }
        // d|x| = sign(x), 0 at 0 (F::signum(0) would be 1)
        Unary::Abs => context.accumulate_with(a, |x, _| {
            if x > zero {
                one
            } else if x < zero {
                -one
            } else {
                zero
            }
        }),
        // 1 inside the bounds (inclusive, as PyTorch), 0 where a bound was taken
        Unary::Clamp { min, max } => {
            context.accumulate_with(a, |x, _| if x >= min && x <= max { one } else { zero })
        }
    }
}
