//! Elementwise nonlinearities: relu, exp, log, and tanh, sigmoid, GELU, SiLU, which compute whole
//! buffers at once with [`Float::tanh_in_place`] and [`Float::sigmoid_in_place`] (vectorised in
//! `f32`, the C library's in `f64`).

use super::{Backward, Op};
use crate::{Float, Tape, TapeError, Var};

/// A nonlinearity computed over the whole buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Activation {
    Tanh,
    Sigmoid,
    Gelu,
    Silu,
}

/// `sqrt(8 / pi)`: GELU's `2 sqrt(2 / pi)`, as its sigmoid takes twice tanh's argument.
const GELU_SCALE: f64 = 1.595_769_121_605_730_8;
/// The cubic coefficient of GELU's tanh approximation.
const GELU_CUBIC: f64 = 0.044_715;

impl<F: Float> Tape<F> {
    /// `max(a, 0)`, elementwise.
    pub fn relu(&mut self, a: Var) -> Result<Var, TapeError> {
        self.map(Op::Relu(a), a, crate::rows::relu)
    }

    /// `e^a`, elementwise.
    pub fn exp(&mut self, a: Var) -> Result<Var, TapeError> {
        self.map(Op::Exp(a), a, F::exp)
    }

    /// The natural logarithm of `a`, elementwise.
    pub fn log(&mut self, a: Var) -> Result<Var, TapeError> {
        self.map(Op::Log(a), a, F::ln)
    }

    /// `tanh(a)`, elementwise; the output has `a`'s shape. In `f32` it is vectorised (within 3
    /// units in the last place, exactly `±1` for `±inf`), in `f64` the C library's `tanh`.
    ///
    /// A hidden layer of an MLP, `tanh(x W^T)`:
    ///
    /// ```
    /// use ndarray::{arr1, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let w = tape.parameter(arr2(&[[1.0, 0.0], [0.5, -2.0]]).into_dyn());
    /// let x = tape.constant(arr1(&[1.0, 0.25]));
    /// let pre = tape.linear(x, w)?; // [1.0, 0.0]
    /// let hidden = tape.tanh(pre)?;
    /// assert_eq!(tape.value(hidden).as_slice(), &[1f64.tanh(), 0.0]);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn tanh(&mut self, a: Var) -> Result<Var, TapeError> {
        self.activation(Activation::Tanh, a)
    }

    /// The logistic sigmoid `1 / (1 + e^-a)`, elementwise, computed without overflow for any `a`
    /// (see [`Float::sigmoid_in_place`]); the output has `a`'s shape.
    pub fn sigmoid(&mut self, a: Var) -> Result<Var, TapeError> {
        self.activation(Activation::Sigmoid, a)
    }

    /// GELU in the tanh approximation of GPT-2 and PyTorch's `gelu(approximate='tanh')`,
    /// `0.5 a (1 + tanh(sqrt(2 / pi) (a + 0.044715 a^3)))`, elementwise; the output has `a`'s
    /// shape.
    ///
    /// It is computed as `a * sigmoid(2 sqrt(2 / pi) (a + 0.044715 a^3))`, which is the same
    /// function (`1 + tanh(u) = 2 sigmoid(2u)`) but keeps its relative accuracy for negative `a`,
    /// where `1 + tanh(u)` cancels, and gives 0, not NaN, at `-inf`.
    pub fn gelu(&mut self, a: Var) -> Result<Var, TapeError> {
        self.activation(Activation::Gelu, a)
    }

    /// SiLU (also called swish), `a * sigmoid(a)`, elementwise; the output has `a`'s shape, and
    /// `-inf` gives 0, not NaN.
    pub fn silu(&mut self, a: Var) -> Result<Var, TapeError> {
        self.activation(Activation::Silu, a)
    }

    /// Records `kind` of `a`: the whole buffer goes through one call of the vectorised tanh or
    /// sigmoid. GELU and SiLU keep that sigmoid in `saved` for their backward.
    fn activation(&mut self, kind: Activation, a: Var) -> Result<Var, TapeError> {
        self.record(Op::Activation(kind, a), |tape, node| {
            let x = tape.try_value(a)?;
            let out = node.value.resize(x.shape());
            let x = x.as_slice();
            match kind {
                Activation::Tanh => F::tanh_into(x, out),
                Activation::Sigmoid => {
                    out.copy_from_slice(x);
                    F::sigmoid_in_place(out);
                }
                Activation::Gelu | Activation::Silu => {
                    let gate = node.saved.resize(&[x.len()]);
                    if kind == Activation::Gelu {
                        let (scale, cubic) = (F::from_f64(GELU_SCALE), F::from_f64(GELU_CUBIC));
                        for (gate, &x) in gate.iter_mut().zip(x) {
                            *gate = scale * (x + cubic * x * x * x);
                        }
                    } else {
                        gate.copy_from_slice(x);
                    }
                    F::sigmoid_in_place(gate);
                    for ((y, &gate), &x) in out.iter_mut().zip(&*gate).zip(x) {
                        // A gate of exactly 0 (x = -inf, or far below 0) gives 0 rather than
                        // -inf * 0 = NaN; for finite x, x * 0 is that same -0.
                        *y = if gate == F::zero() {
                            -F::zero()
                        } else {
                            x * gate
                        };
                    }
                }
            }
            Ok(())
        })
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

/// The derivative of each activation: from its output where that is enough, from the input and
/// the saved gate otherwise.
pub(super) fn activation_backward<F: Float>(
    context: &mut Backward<'_, F>,
    kind: Activation,
    a: Var,
) {
    let one = F::one();
    match kind {
        // tanh'(x) = 1 - tanh(x)^2
        Activation::Tanh => context.accumulate_with(a, |_, y| one - y * y),
        // sigmoid'(x) = sigmoid(x) (1 - sigmoid(x))
        Activation::Sigmoid => context.accumulate_with(a, |_, y| y * (one - y)),
        // y = x s(v) with v = sqrt(8/pi) (x + 0.044715 x^3): y' = s + x s (1 - s) v'
        Activation::Gelu => {
            let (scale, cubic) = (F::from_f64(GELU_SCALE), F::from_f64(GELU_CUBIC));
            let three_cubic = F::from_f64(3.0) * cubic;
            accumulate_gated(context, a, |x| scale * (one + three_cubic * x * x));
        }
        // y = x s(x): y' = s + x s (1 - s)
        Activation::Silu => accumulate_gated(context, a, |_| one),
    }
}

/// Adds `grad * (s + x s (1 - s) v'(x))` into the gradient of `a`: the derivative of
/// `x * sigmoid(v(x))`, with the gate `s = sigmoid(v(x))` saved by the forward pass.
fn accumulate_gated<F: Float>(context: &mut Backward<'_, F>, a: Var, slope: impl Fn(F) -> F) {
    let input = context.tape.value(a).as_slice();
    let (grad, gates) = (context.grad.as_slice(), context.node.saved.as_slice());
    let target = context.sink.of(a).as_mut_slice();
    for (((sum, &grad), &x), &gate) in target.iter_mut().zip(grad).zip(input).zip(gates) {
        let spread = gate * (F::one() - gate);
        // Where the gate is saturated at exactly 0 or 1, the second term is 0 even if x or v'(x)
        // is infinite (which would make it NaN).
        let second = if spread == F::zero() {
            F::zero()
        } else {
            x * spread * slope(x)
        };
        *sum += grad * (gate + second);
    }
}
