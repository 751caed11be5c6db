//! Elementwise arithmetic of two values with NumPy broadcasting (add, sub, mul, div, maximum,
//! minimum), and scaling by a constant.

use super::{Backward, Op, shape_of};
use crate::broadcast::{self, Runs, broadcast_shapes};
use crate::{Float, Tape, TapeError, Var};

/// A binary elementwise op: its value and its two partial derivatives, in one place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
}

impl Binary {
    fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Maximum => "maximum",
            Binary::Minimum => "minimum",
        }
    }

    #[inline]
    fn apply<F: Float>(self, x: F, y: F) -> F {
        match self {
            Binary::Add => x + y,
            Binary::Sub => x - y,
            Binary::Mul => x * y,
            Binary::Div => x / y,
            Binary::Maximum => x.max(y),
            Binary::Minimum => x.min(y),
        }
    }

    /// `(d out / d x, d out / d y)` at `(x, y)`. A tie of maximum or minimum splits the gradient
    /// evenly, as PyTorch does, so that `maximum(x, x)` has gradient 1.
    #[inline]
    fn partials<F: Float>(self, x: F, y: F) -> (F, F) {
        let (one, zero, half) = (F::one(), F::zero(), F::from_f64(0.5));
        let pick = |x_wins: bool| match (x_wins, x == y) {
            (_, true) => (half, half),
            (true, false) => (one, zero),
            (false, false) => (zero, one),
        };
        match self {
            Binary::Add => (one, one),
            Binary::Sub => (one, -one),
            Binary::Mul => (y, x),
            Binary::Div => (y.recip(), -x / (y * y)),
            Binary::Maximum => pick(x > y),
            Binary::Minimum => pick(x < y),
        }
    }
}

impl<F: Float> Tape<F> {
    /// `a + b`, elementwise, broadcasting by NumPy's rules (a bias `[C]` onto `[B, T, C]`, say):
    /// the shapes are aligned at their last axis, and along each axis the lengths must be equal
    /// or one of them 1 (or missing); the output has the larger length of each axis. Each input's
    /// gradient is summed back to its own shape. Shapes that do not broadcast are a
    /// [`TapeError::Shape`] naming the op and both shapes.
    ///
    /// A bias added to every row of a batch, and its gradient, summed over the rows:
    ///
    /// ```
    /// use ndarray::{arr1, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let bias = tape.parameter(arr1(&[10.0, 20.0, 30.0]));
    /// let batch = tape.constant(arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])); // [2, 3]
    /// let out = tape.add(batch, bias)?; // [2, 3] + [3]
    /// assert_eq!(tape.value(out), &arr2(&[[11.0, 22.0, 33.0], [14.0, 25.0, 36.0]]).into_dyn());
    /// let loss = tape.sum(out)?;
    /// let gradients = tape.backward(loss)?;
    /// assert_eq!(gradients.parameter(bias).as_slice(), &[2.0, 2.0, 2.0]);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary(Binary::Add, a, b)
    }

    /// `a - b`, elementwise, broadcasting by NumPy's rules.
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary(Binary::Sub, a, b)
    }

    /// `a * b`, elementwise (the Hadamard product), broadcasting by NumPy's rules.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary(Binary::Mul, a, b)
    }

    /// `a / b`, elementwise, broadcasting by NumPy's rules.
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary(Binary::Div, a, b)
    }

    /// The larger of `a` and `b`, elementwise, broadcasting by NumPy's rules; a tie sends half of
    /// the gradient to each.
    pub fn maximum(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary(Binary::Maximum, a, b)
    }

    /// The smaller of `a` and `b`, elementwise, broadcasting by NumPy's rules; a tie sends half of
    /// the gradient to each.
    pub fn minimum(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.binary(Binary::Minimum, a, b)
    }

    /// `factor * a` for a constant `factor`.
    pub fn scale(&mut self, a: Var, factor: F) -> Result<Var, TapeError> {
        self.map(Op::Scale(a, factor), a, |x| factor * x)
    }

    fn binary(&mut self, kind: Binary, a: Var, b: Var) -> Result<Var, TapeError> {
        self.record(Op::Binary(kind, a, b), |tape, node| {
            let (x, y) = (tape.try_value(a)?, tape.try_value(b)?);
            let Some(shape) = broadcast_shapes(x.shape(), y.shape()) else {
                let detail = format!(
                    "{} and {} do not broadcast: aligned at the last axis, each pair of lengths \
                     must be equal or one of them 1",
                    shape_of(x),
                    shape_of(y)
                );
                return Err(TapeError::shape(kind.name(), detail));
            };
            let shape = shape.as_slice();
            let (x_strides, y_strides) = (
                broadcast::strides(x.shape(), shape),
                broadcast::strides(y.shape(), shape),
            );
            let (x, y) = (x.as_slice(), y.as_slice());
            let out = node.value.resize(shape);
            match Runs::new(shape, &x_strides, &y_strides) {
                Some(runs) => {
                    let width = runs.width();
                    runs.for_each(|o, i, j| {
                        let (out, x, y) =
                            (&mut out[o..o + width], &x[i..i + width], &y[j..j + width]);
                        apply_run(kind, out, x, y);
                    });
                }
                None => broadcast::for_each_pair(shape, &x_strides, &y_strides, |o, i, j| {
                    out[o] = kind.apply(x[i], y[j]);
                }),
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

/// `out = kind(x, y)` along one run, in a loop specialised to `kind`, so that it vectorises.
fn apply_run<F: Float>(kind: Binary, out: &mut [F], x: &[F], y: &[F]) {
    fn zip<F: Float>(out: &mut [F], x: &[F], y: &[F], value: impl Fn(F, F) -> F) {
        for ((out, &x), &y) in out.iter_mut().zip(x).zip(y) {
            *out = value(x, y);
        }
    }
    match kind {
        Binary::Add => zip(out, x, y, |x, y| Binary::Add.apply(x, y)),
        Binary::Sub => zip(out, x, y, |x, y| Binary::Sub.apply(x, y)),
        Binary::Mul => zip(out, x, y, |x, y| Binary::Mul.apply(x, y)),
        Binary::Div => zip(out, x, y, |x, y| Binary::Div.apply(x, y)),
        Binary::Maximum => zip(out, x, y, |x, y| Binary::Maximum.apply(x, y)),
        Binary::Minimum => zip(out, x, y, |x, y| Binary::Minimum.apply(x, y)),
    }
}

/// `d out = (d out / d a) da + (d out / d b) db`: each input gets the output's gradient times its
/// partial, summed over the positions where broadcasting repeated it.
pub(super) fn binary_backward<F: Float>(
    context: &mut Backward<'_, F>,
    kind: Binary,
    a: Var,
    b: Var,
) {
    let (x, y) = (context.value(a), context.value(b));
    let shape = context.grad.shape();
    let (x_strides, y_strides) = (
        broadcast::strides(x.shape(), shape),
        broadcast::strides(y.shape(), shape),
    );
    let (x, y, grad) = (x.as_slice(), y.as_slice(), context.grad.as_slice());
    // One input at a time, so that `a` and `b` may be the same value (each use adds its share).
    let Some(runs) = Runs::new(shape, &x_strides, &y_strides) else {
        let target = context.sink.of(a).as_mut_slice();
        broadcast::for_each_pair(shape, &x_strides, &y_strides, |o, i, j| {
            target[i] += grad[o] * kind.partials(x[i], y[j]).0;
        });
        let target = context.sink.of(b).as_mut_slice();
        broadcast::for_each_pair(shape, &x_strides, &y_strides, |o, i, j| {
            target[j] += grad[o] * kind.partials(x[i], y[j]).1;
        });
        return;
    };
    let width = runs.width();
    for (var, side) in [(a, Side::A), (b, Side::B)] {
        let target = context.sink.of(var).as_mut_slice();
        runs.for_each(|o, i, j| {
            let own = match side {
                Side::A => i,
                Side::B => j,
            };
            let run = Run {
                target: &mut target[own..own + width],
                grad: &grad[o..o + width],
                x: &x[i..i + width],
                y: &y[j..j + width],
            };
            run.add_partials(kind, side);
        });
    }
}

/// Which input of a binary op a gradient is for.
#[derive(Clone, Copy)]
enum Side {
    A,
    B,
}

/// One run of a binary op's backward: the gradient of one input there, the output's gradient and
/// both inputs' values.
struct Run<'a, F> {
    target: &'a mut [F],
    grad: &'a [F],
    x: &'a [F],
    y: &'a [F],
}

impl<F: Float> Run<'_, F> {
    /// `target += grad * partial(x, y)`, the partial for `side`, in a loop specialised to `kind`
    /// and `side`, so that it vectorises.
    fn add_partials(self, kind: Binary, side: Side) {
        match (kind, side) {
            (Binary::Add, Side::A) => self.add(|x, y| Binary::Add.partials(x, y).0),
            (Binary::Add, Side::B) => self.add(|x, y| Binary::Add.partials(x, y).1),
            (Binary::Sub, Side::A) => self.add(|x, y| Binary::Sub.partials(x, y).0),
            (Binary::Sub, Side::B) => self.add(|x, y| Binary::Sub.partials(x, y).1),
            (Binary::Mul, Side::A) => self.add(|x, y| Binary::Mul.partials(x, y).0),
            (Binary::Mul, Side::B) => self.add(|x, y| Binary::Mul.partials(x, y).1),
            (Binary::Div, Side::A) => self.add(|x, y| Binary::Div.partials(x, y).0),
            (Binary::Div, Side::B) => self.add(|x, y| Binary::Div.partials(x, y).1),
            (Binary::Maximum, Side::A) => self.add(|x, y| Binary::Maximum.partials(x, y).0),
            (Binary::Maximum, Side::B) => self.add(|x, y| Binary::Maximum.partials(x, y).1),
            (Binary::Minimum, Side::A) => self.add(|x, y| Binary::Minimum.partials(x, y).0),
            (Binary::Minimum, Side::B) => self.add(|x, y| Binary::Minimum.partials(x, y).1),
        }
    }

    fn add(self, partial: impl Fn(F, F) -> F) {
        let Run { target, grad, x, y } = self;
        for (((sum, &grad), &x), &y) in target.iter_mut().zip(grad).zip(x).zip(y) {
            *sum += grad * partial(x, y);
        }
    }
}
