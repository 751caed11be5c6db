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
    /// every row of a matrix ([`Tape::slice_axis`] slices any axis of any value).
    pub fn slice(&mut self, a: Var, range: Range<usize>) -> Result<Var, TapeError> {
        let start = range.start;
        self.record(Op::Slice { input: a, start }, |tape, node| {
            let input = tape.try_value(a)?;
            let Some(last) = input.ndim().checked_sub(1).filter(|&last| last < 2) else {
                let detail = format!("needs a vector or a matrix, got {}", shape_of(input));
                return Err(TapeError::shape("slice", detail));
            };
            let len = input.shape()[last];
            if range.start > range.end || range.end > len {
                let detail = format!("range {range:?} does not fit in {}", shape_of(input));
                return Err(TapeError::shape("slice", detail));
            }
            let mut shape = [0; 2];
            shape[..input.ndim()].copy_from_slice(input.shape());
            shape[last] = range.len();
            let out = node.value.resize(&shape[..input.ndim()]);
            let rows = input.as_slice().chunks_exact(len.max(1));
            for (out, row) in out.chunks_exact_mut(range.len().max(1)).zip(rows) {
                out.copy_from_slice(&row[range.clone()]);
            }
            Ok(())
        })
    }

    /// `parts` joined along their last axis (all parts must agree on the other axes), for vectors
    /// and matrices ([`Tape::concat_axis`] joins along any axis of any value).
    pub fn concat(&mut self, parts: &[Var]) -> Result<Var, TapeError> {
        let range = self.push_operands(parts);
        self.record(
            Op::Concat {
                parts: range.clone(),
            },
            |tape, node| {
                let parts = &tape.operands[range];
                let Some(&first) = parts.first() else {
                    return Err(TapeError::shape("concat", "needs at least one part"));
                };
                let first = tape.try_value(first)?;
                if first.ndim() == 0 || first.ndim() > 2 {
                    let detail =
                        format!("parts must be vectors or matrices, got {}", shape_of(first));
                    return Err(TapeError::shape("concat", detail));
                }
                let last = first.ndim() - 1;
                let mut total = 0;
                for &part in parts {
                    let value = tape.try_value(part)?;
                    if value.ndim() != first.ndim()
                        || value.shape()[..last] != first.shape()[..last]
                    {
                        let detail = format!(
                            "parts {} and {} do not line up",
                            shape_of(first),
                            shape_of(value)
                        );
                        return Err(TapeError::shape("concat", detail));
                    }
                    total += value.shape()[last];
                }
                let mut shape = [0; 2];
                shape[..first.ndim()].copy_from_slice(first.shape());
                shape[last] = total;
                let out = node.value.resize(&shape[..first.ndim()]);
                let mut offset = 0;
                for &part in parts {
                    let value = tape.value(part);
                    let width = value.row_len();
                    let rows = value.as_slice().chunks_exact(width.max(1));
                    for (out, row) in out.chunks_exact_mut(total.max(1)).zip(rows) {
                        out[offset..offset + width].copy_from_slice(row);
                    }
                    offset += width;
                }
                Ok(())
            },
        )
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

/// The slice's gradient lands in the sliced columns of the input's gradient.
pub(super) fn slice_backward<F: Float>(context: &mut Backward<'_, F>, input: Var, start: usize) {
    let grad = context.grad;
    let width = grad.row_len();
    let target = context.sink.of(input);
    let input_width = target.row_len();
    let rows = grad.as_slice().chunks_exact(width.max(1));
    for (sums, row) in target
        .as_mut_slice()
        .chunks_exact_mut(input_width.max(1))
        .zip(rows)
    {
        for (sum, &grad) in sums[start..start + width].iter_mut().zip(row) {
            *sum += grad;
        }
    }
}

/// Each part gets the columns of the gradient it filled.
pub(super) fn concat_backward<F: Float>(context: &mut Backward<'_, F>, parts: Range<usize>) {
    let grad = context.grad;
    let total = grad.row_len();
    let mut offset = 0;
    for &part in &context.tape.operands[parts] {
        let width = context.tape.value(part).row_len();
        let rows = grad.as_slice().chunks_exact(total.max(1));
        let target = context.sink.of(part).as_mut_slice();
        for (sums, row) in target.chunks_exact_mut(width.max(1)).zip(rows) {
            for (sum, &grad) in sums.iter_mut().zip(&row[offset..offset + width]) {
                *sum += grad;
            }
        }
        offset += width;
    }
}
