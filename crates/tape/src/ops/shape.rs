//! New shapes for the same elements: reshape (and flatten, unsqueeze, squeeze over it), and
//! broadcast_to; slicing and concatenation along the last axis (splitting a vector, or each row of a
//! matrix, into attention heads and joining the heads back).

use std::ops::Range;

use super::{Backward, Op, shape_of};
use crate::broadcast::{self, broadcast_shapes};
use crate::tensor::MAX_AXES;
use crate::{Float, Tape, TapeError, Var};

/// Strides that read nothing: the unused second operand of [`broadcast::for_each_pair`].
pub(super) const NO_STRIDES: [usize; MAX_AXES] = [0; MAX_AXES];

impl<F: Float> Tape<F> {
    /// The elements of `a` in the same row-major order under the shape `shape`, which must hold as
    /// many elements (PyTorch's `reshape`). The value is copied into the node's own buffer, which a
    /// warm tape reuses.
    ///
    /// ```
    /// use ndarray::{arr2, arr3};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.constant(arr3(&[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]));
    /// let y = tape.reshape(x, &[2, 4])?;
    /// assert_eq!(*tape.value(y), arr2(&[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]));
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var, TapeError> {
        self.record(Op::Reshape(a), |tape, node| {
            let input = tape.try_value(a)?;
            check_rank("reshape", shape)?;
            let len: usize = shape.iter().product();
            if len != input.len() {
                let detail = format!(
                    "{} has {} elements but {shape:?} holds {len}; the element count must not change",
                    shape_of(input),
                    input.len()
                );
                return Err(TapeError::shape("reshape", detail));
            }
            node.value.resize(shape).copy_from_slice(input.as_slice());
            Ok(())
        })
    }

    /// `a` with its axes from `axis` on merged into one (PyTorch's `flatten(start_dim)`): a
    /// `[B, T, C]` value flattened from axis 1 is `[B, T * C]`, and from axis 0 a vector. A scalar
    /// flattened from axis 0 is a vector of one element.
    pub fn flatten(&mut self, a: Var, axis: usize) -> Result<Var, TapeError> {
        let input = self.try_value(a)?;
        let rank = input.ndim();
        if axis >= rank.max(1) {
            let detail = format!(
                "axis {axis} is out of range for {}, which has {rank} axes",
                shape_of(input)
            );
            return Err(TapeError::shape("flatten", detail));
        }
        let mut shape = [0; MAX_AXES];
        shape[..axis].copy_from_slice(&input.shape()[..axis]);
        shape[axis] = input.shape()[axis..].iter().product();
        self.reshape(a, &shape[..=axis])
    }

    /// `a` with a new axis of length 1 inserted before axis `axis` (at the end if `axis` is its
    /// number of axes): a `[T, C]` value unsqueezed at 0 is `[1, T, C]`.
    pub fn unsqueeze(&mut self, a: Var, axis: usize) -> Result<Var, TapeError> {
        let input = self.try_value(a)?;
        let rank = input.ndim();
        if axis > rank || rank == MAX_AXES {
            let detail = format!(
                "cannot insert axis {axis} into {}: the axis must be at most {rank}, and the result \
                 at most {MAX_AXES} axes",
                shape_of(input)
            );
            return Err(TapeError::shape("unsqueeze", detail));
        }
        let mut shape = [1; MAX_AXES];
        shape[..axis].copy_from_slice(&input.shape()[..axis]);
        shape[axis + 1..=rank].copy_from_slice(&input.shape()[axis..]);
        self.reshape(a, &shape[..=rank])
    }

    /// `a` without its axis `axis`, which must have length 1: a `[1, T, C]` value squeezed at 0 is
    /// `[T, C]`.
    pub fn squeeze(&mut self, a: Var, axis: usize) -> Result<Var, TapeError> {
        let input = self.try_value(a)?;
        let rank = input.ndim();
        if input.shape().get(axis) != Some(&1) {
            let detail = format!(
                "axis {axis} of {} is not an axis of length 1",
                shape_of(input)
            );
            return Err(TapeError::shape("squeeze", detail));
        }
        let mut shape = [0; MAX_AXES];
        shape[..axis].copy_from_slice(&input.shape()[..axis]);
        shape[axis..rank - 1].copy_from_slice(&input.shape()[axis + 1..]);
        self.reshape(a, &shape[..rank - 1])
    }

    /// `a` repeated to the shape `shape` by NumPy's broadcasting rules (aligned at the last axis,
    /// each length of `a` equal to the target's or 1, missing leading axes added): a bias `[C]`
    /// broadcast to `[B, T, C]`, say. The gradient of `a` is the output's summed over the repeats.
    ///
    /// ```
    /// use ndarray::{arr1, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let bias = tape.parameter(arr1(&[1.0, 2.0]));
    /// let rows = tape.broadcast_to(bias, &[3, 2])?;
    /// assert_eq!(*tape.value(rows), arr2(&[[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]));
    /// let loss = tape.sum(rows)?;
    /// assert_eq!(*tape.backward(loss)?.parameter(bias), arr1(&[3.0, 3.0]));
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn broadcast_to(&mut self, a: Var, shape: &[usize]) -> Result<Var, TapeError> {
        self.record(Op::BroadcastTo(a), |tape, node| {
            let input = tape.try_value(a)?;
            check_rank("broadcast_to", shape)?;
            let fits =
                broadcast_shapes(input.shape(), shape).is_some_and(|s| s.as_slice() == shape);
            if !fits {
                let detail = format!(
                    "{} does not broadcast to {shape:?}: aligned at the last axis, each length of \
                     the input must equal the target's or be 1",
                    shape_of(input)
                );
                return Err(TapeError::shape("broadcast_to", detail));
            }
            let strides = broadcast::strides(input.shape(), shape);
            let input = input.as_slice();
            let out = node.value.resize(shape);
            broadcast::for_each_pair(shape, &strides, &NO_STRIDES, |o, i, _| out[o] = input[i]);
            Ok(())
        })
    }

    /// Elements `range` of the last axis of `a`: a sub-vector of a vector, or the same columns of
    /// every row of a matrix; [`Tape::slice_axis`] on the last axis.
    pub fn slice(&mut self, a: Var, range: Range<usize>) -> Result<Var, TapeError> {
        let last = self.try_value(a)?.ndim().saturating_sub(1);
        self.slice_axis(a, last, range)
    }

    /// `parts` joined along their last axis (all parts must agree on the other axes);
    /// [`Tape::concat_axis`] on the last axis.
    pub fn concat(&mut self, parts: &[Var]) -> Result<Var, TapeError> {
        let last = match parts.first() {
            Some(&first) => self.try_value(first)?.ndim().saturating_sub(1),
            None => 0,
        };
        self.concat_axis(parts, last)
    }
}

/// A shape error unless `shape` has at most [`MAX_AXES`] axes.
pub(super) fn check_rank(op: &'static str, shape: &[usize]) -> Result<(), TapeError> {
    if shape.len() <= MAX_AXES {
        return Ok(());
    }
    let detail = format!("{shape:?} has more than {MAX_AXES} axes");
    Err(TapeError::shape(op, detail))
}

/// Reshaping keeps the row-major order, so the gradient passes through element for element.
pub(super) fn reshape_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    context.accumulate_scaled(a, F::one());
}

/// Each element of `a` gets the sum of the gradients of the output elements that repeated it.
pub(super) fn broadcast_to_backward<F: Float>(context: &mut Backward<'_, F>, a: Var) {
    let grad = context.grad;
    let strides = broadcast::strides(context.value(a).shape(), grad.shape());
    let (shape, grad) = (grad.shape(), grad.as_slice());
    let target = context.sink.of(a).as_mut_slice();
    broadcast::for_each_pair(shape, &strides, &NO_STRIDES, |o, i, _| target[i] += grad[o]);
}
