//! Reductions: to a scalar (a 0-dimensional value: dot, sum, mean) and along one axis (sum, mean
//! and max, with or without keeping the reduced axis).

use super::axis_split::{AxisSplit, Reduced};
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

/// A reduction along one axis.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reduction {
    Sum,
    Mean,
    Max,
}

impl Reduction {
    fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum_axis",
            Reduction::Mean => "mean_axis",
            Reduction::Max => "max_axis",
        }
    }
}

impl<F: Float> Tape<F> {
    /// The sum of `a` along `axis`: the axis is removed from the shape, or kept with length 1 if
    /// `keepdim` (so that the result broadcasts against `a`, as PyTorch's `keepdim=True`). Each
    /// sum runs along the axis in order, from zero; an axis of length 0 sums to zeros.
    ///
    /// ```
    /// use ndarray::arr2;
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.constant(arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]));
    /// let columns = tape.sum_axis(x, 0, false)?; // [2, 3] -> [3]
    /// assert_eq!(tape.value(columns).as_slice(), &[5.0, 7.0, 9.0]);
    /// let rows = tape.sum_axis(x, 1, true)?; // [2, 3] -> [2, 1]
    /// assert_eq!(tape.value(rows).shape(), &[2, 1]);
    /// assert_eq!(tape.value(rows).as_slice(), &[6.0, 15.0]);
    /// // Kept as [2, 1], the row sums broadcast back against x: each row's share of its sum.
    /// let shares = tape.div(x, rows)?;
    /// assert_eq!(tape.value(shares).shape(), &[2, 3]);
    /// assert_eq!(tape.value(shares).as_slice()[2], 0.5);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn sum_axis(&mut self, a: Var, axis: usize, keepdim: bool) -> Result<Var, TapeError> {
        self.reduce_axis(Reduction::Sum, a, axis, keepdim)
    }

    /// The mean of `a` along `axis` (its sum divided by the axis length), the axis removed or kept
    /// with length 1 as in [`Tape::sum_axis`]. The axis must not be empty.
    pub fn mean_axis(&mut self, a: Var, axis: usize, keepdim: bool) -> Result<Var, TapeError> {
        self.reduce_axis(Reduction::Mean, a, axis, keepdim)
    }

    /// The maximum of `a` along `axis`, the axis removed or kept with length 1 as in
    /// [`Tape::sum_axis`]. The axis must not be empty. A NaN is the maximum of any lane it is in
    /// (as in PyTorch).
    ///
    /// The gradient goes to the arg-max alone; when several elements tie for the maximum, to the
    /// first of them along the axis (PyTorch's `amax` would split it evenly; `max(dim)` picks one).
    pub fn max_axis(&mut self, a: Var, axis: usize, keepdim: bool) -> Result<Var, TapeError> {
        self.reduce_axis(Reduction::Max, a, axis, keepdim)
    }

    fn reduce_axis(
        &mut self,
        kind: Reduction,
        a: Var,
        axis: usize,
        keepdim: bool,
    ) -> Result<Var, TapeError> {
        let op = Op::AxisReduction {
            kind,
            input: a,
            axis,
        };
        self.record(op, |tape, node| {
            let input = tape.try_value(a)?;
            let split = AxisSplit::new(kind.name(), input.shape(), axis)?;
            if split.len == 0 && kind != Reduction::Sum {
                let detail = format!(
                    "axis {axis} of {} is empty; its {} is undefined",
                    shape_of(input),
                    if kind == Reduction::Mean {
                        "mean"
                    } else {
                        "maximum"
                    }
                );
                return Err(TapeError::shape(kind.name(), detail));
            }
            let out = node
                .value
                .resize(Reduced::new(input.shape(), axis, keepdim).as_slice());
            let x = input.as_slice();
            match kind {
                Reduction::Sum => sum_lanes(x, split, out),
                Reduction::Mean => {
                    sum_lanes(x, split, out);
                    let len = F::from_f64(split.len as f64);
                    out.iter_mut().for_each(|y| *y /= len);
                }
                Reduction::Max => max_lanes(x, split, out),
            }
            Ok(())
        })
    }
}

/// Writes the sum of every lane of `x` along the split axis into `out`, each in order from zero.
fn sum_lanes<F: Float>(x: &[F], split: AxisSplit, out: &mut [F]) {
    out.fill(F::zero());
    let AxisSplit { len, inner, .. } = split;
    if out.is_empty() || len == 0 {
        return;
    }
    if inner == 1 {
        for (out, row) in out.iter_mut().zip(x.chunks_exact(len)) {
            *out = row.iter().fold(F::zero(), |sum, &x| sum + x);
        }
        return;
    }
    for (sums, block) in out.chunks_exact_mut(inner).zip(x.chunks_exact(len * inner)) {
        for row in block.chunks_exact(inner) {
            for (sum, &x) in sums.iter_mut().zip(row) {
                *sum += x;
            }
        }
    }
}

/// Whether `x` replaces `best` as a lane's maximum: larger, or the lane's first NaN. Equal values
/// do not, so the first of a tie stays the arg-max.
fn beats<F: Float>(x: F, best: F) -> bool {
    x > best || (x.is_nan() && !best.is_nan())
}

/// Writes the maximum of every (non-empty) lane of `x` along the split axis into `out`.
fn max_lanes<F: Float>(x: &[F], split: AxisSplit, out: &mut [F]) {
    let AxisSplit { len, inner, .. } = split;
    if out.is_empty() {
        return;
    }
    if inner == 1 {
        for (out, row) in out.iter_mut().zip(x.chunks_exact(len)) {
            *out = row[1..]
                .iter()
                .fold(row[0], |best, &x| if beats(x, best) { x } else { best });
        }
        return;
    }
    for (bests, block) in out.chunks_exact_mut(inner).zip(x.chunks_exact(len * inner)) {
        bests.copy_from_slice(&block[..inner]);
        for row in block[inner..].chunks_exact(inner) {
            for (best, &x) in bests.iter_mut().zip(row) {
                if beats(x, *best) {
                    *best = x;
                }
            }
        }
    }
}

/// Sum: every element of a lane gets the lane's gradient; mean: `1 / len` of it; max: the first
/// element equal to the lane's maximum (the one the forward pass kept) gets all of it.
pub(super) fn axis_reduction_backward<F: Float>(
    context: &mut Backward<'_, F>,
    kind: Reduction,
    a: Var,
    axis: usize,
) {
    let input = context.tape.value(a);
    let split = AxisSplit::new(kind.name(), input.shape(), axis)
        .expect("the axis was checked when the op was recorded");
    let (grad, output) = (context.grad.as_slice(), context.node.value.as_slice());
    let target = context.sink.of(a).as_mut_slice();
    if target.is_empty() {
        return;
    }
    if kind == Reduction::Max {
        let x = input.as_slice();
        for (lane, (&grad, &best)) in grad.iter().zip(output).enumerate() {
            let same =
                |offset: &usize| x[*offset] == best || (best.is_nan() && x[*offset].is_nan());
            let arg_max = split
                .lane(lane)
                .find(same)
                .expect("the maximum is in its lane");
            target[arg_max] += grad;
        }
        return;
    }
    let len = F::from_f64(split.len as f64);
    let share = |grad: F| {
        if kind == Reduction::Mean {
            grad / len
        } else {
            grad
        }
    };
    let inner = split.inner;
    for (grads, block) in grad
        .chunks_exact(inner)
        .zip(target.chunks_exact_mut(split.len * inner))
    {
        for row in block.chunks_exact_mut(inner) {
            for (sum, &grad) in row.iter_mut().zip(grads) {
                *sum += share(grad);
            }
        }
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
