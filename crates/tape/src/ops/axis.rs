//! Slicing and joining along any axis: `slice_axis` (PyTorch's `narrow`), `concat_axis` and
//! `stack`.
//!
//! In row-major order, the elements of a value from axis `axis` on form contiguous blocks, one for
//! each index of the axes before it. A slice along `axis` copies one run out of each block; a
//! concatenation lays the parts' blocks side by side in each output block, and so does a stack,
//! whose parts' blocks are their elements from the new axis on. Every op here is block copies.

use std::ops::Range;

use super::shape::check_rank;
use super::{Backward, Op, shape_of};
use crate::tape::Recorded;
use crate::tensor::MAX_AXES;
use crate::{Float, Tape, TapeError, Tensor, Var};

impl<F: Float> Tape<F> {
    /// Indices `range` of axis `axis` of `a`, every other axis whole (PyTorch's `narrow`,
    /// ndarray's `slice_axis`): the time steps `2..5` of a `[B, T, C]` value are
    /// `slice_axis(x, 1, 2..5)`, of shape `[B, 3, C]`.
    ///
    /// ```
    /// use ndarray::arr2;
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.constant(arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]));
    /// let rows = tape.slice_axis(x, 0, 1..3)?;
    /// assert_eq!(*tape.value(rows), arr2(&[[3.0, 4.0], [5.0, 6.0]]));
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn slice_axis(
        &mut self,
        a: Var,
        axis: usize,
        range: Range<usize>,
    ) -> Result<Var, TapeError> {
        let op = Op::SliceAxis {
            input: a,
            axis,
            start: range.start,
        };
        self.record(op, |tape, node| {
            let input = tape.try_value(a)?;
            check_axis("slice_axis", input.shape(), axis, input.ndim())?;
            let length = input.shape()[axis];
            if range.start > range.end || range.end > length {
                let detail = format!(
                    "range {range:?} does not fit in axis {axis} of {}, of length {length}",
                    shape_of(input)
                );
                return Err(TapeError::shape("slice_axis", detail));
            }
            let mut shape = [0; MAX_AXES];
            shape[..input.ndim()].copy_from_slice(input.shape());
            shape[axis] = range.len();
            let inner = block_len(input.shape(), axis + 1);
            let (block, run) = (length * inner, range.len() * inner);
            let out = node.value.resize(&shape[..input.ndim()]);
            if run > 0 {
                let blocks = input.as_slice().chunks_exact(block);
                for (out, block) in out.chunks_exact_mut(run).zip(blocks) {
                    out.copy_from_slice(&block[range.start * inner..][..run]);
                }
            }
            Ok(())
        })
    }

    /// `parts` joined along axis `axis` (PyTorch's `cat`, ndarray's `concatenate`): they must have
    /// the same number of axes and agree on every axis but `axis`, whose lengths add up.
    ///
    /// ```
    /// use ndarray::arr2;
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let top = tape.constant(arr2(&[[1.0, 2.0]]));
    /// let bottom = tape.constant(arr2(&[[3.0, 4.0], [5.0, 6.0]]));
    /// let joined = tape.concat_axis(&[top, bottom], 0)?;
    /// assert_eq!(*tape.value(joined), arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]));
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn concat_axis(&mut self, parts: &[Var], axis: usize) -> Result<Var, TapeError> {
        let range = self.push_operands(parts);
        let op = Op::Join {
            parts: range.clone(),
            axis,
        };
        self.record(op, |tape, node| {
            let parts = &tape.operands[range];
            let first = first_part("concat_axis", tape, parts)?;
            check_axis("concat_axis", first.shape(), axis, first.ndim())?;
            let mut total = 0;
            for &part in parts {
                let value = tape.try_value(part)?;
                let (a, b) = (first.shape(), value.shape());
                let lines_up = a.len() == b.len()
                    && (0..a.len()).all(|other| other == axis || a[other] == b[other]);
                if !lines_up {
                    let detail = format!(
                        "parts {} and {} differ on an axis other than {axis}",
                        shape_of(first),
                        shape_of(value)
                    );
                    return Err(TapeError::shape("concat_axis", detail));
                }
                total += b[axis];
            }
            let mut shape = [0; MAX_AXES];
            shape[..first.ndim()].copy_from_slice(first.shape());
            shape[axis] = total;
            let out = node.value.resize(&shape[..first.ndim()]);
            join(tape, parts, axis, out);
            Ok(())
        })
    }

    /// `parts`, which must all have the same shape, stacked along a new axis inserted before axis
    /// `axis` (PyTorch's and ndarray's `stack`): `n` parts of shape `[T, C]` stacked at axis 0 are
    /// `[n, T, C]`, at axis 2 `[T, C, n]`.
    ///
    /// ```
    /// use ndarray::{arr1, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.constant(arr1(&[1.0, 2.0]));
    /// let b = tape.constant(arr1(&[3.0, 4.0]));
    /// let columns = tape.stack(&[a, b], 1)?;
    /// assert_eq!(*tape.value(columns), arr2(&[[1.0, 3.0], [2.0, 4.0]]));
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn stack(&mut self, parts: &[Var], axis: usize) -> Result<Var, TapeError> {
        let range = self.push_operands(parts);
        let op = Op::Join {
            parts: range.clone(),
            axis,
        };
        self.record(op, |tape, node| {
            let parts = &tape.operands[range];
            let first = first_part("stack", tape, parts)?;
            let rank = first.ndim();
            check_axis("stack", first.shape(), axis, rank + 1)?;
            for &part in parts {
                let value = tape.try_value(part)?;
                if value.shape() != first.shape() {
                    let detail = format!(
                        "parts {} and {} differ; stacked parts must have one shape",
                        shape_of(first),
                        shape_of(value)
                    );
                    return Err(TapeError::shape("stack", detail));
                }
            }
            let mut shape = [0; MAX_AXES + 1];
            shape[..axis].copy_from_slice(&first.shape()[..axis]);
            shape[axis] = parts.len();
            shape[axis + 1..=rank].copy_from_slice(&first.shape()[axis..]);
            check_rank("stack", &shape[..=rank])?;
            let out = node.value.resize(&shape[..=rank]);
            join(tape, parts, axis, out);
            Ok(())
        })
    }
}

/// The value of the first part, or a shape error naming `op` if there are no parts.
fn first_part<'a, F: Float>(
    op: &'static str,
    tape: &Recorded<'a, F>,
    parts: &[Var],
) -> Result<&'a Tensor<F>, TapeError> {
    match parts.first() {
        Some(&first) => tape.try_value(first),
        None => Err(TapeError::shape(op, "needs at least one part")),
    }
}

/// A shape error naming `op` unless `axis < limit` (the number of axes it may name).
fn check_axis(
    op: &'static str,
    shape: &[usize],
    axis: usize,
    limit: usize,
) -> Result<(), TapeError> {
    if axis < limit {
        return Ok(());
    }
    let detail = format!("axis {axis} is out of range for {shape:?}: it must be below {limit}");
    Err(TapeError::shape(op, detail))
}

/// The number of elements of one block of axes `axis..` of `shape`.
fn block_len(shape: &[usize], axis: usize) -> usize {
    shape[axis.min(shape.len())..].iter().product()
}

/// Lays each part's blocks from `axis` on side by side in the output's (all parts have as many
/// blocks: the product of the axes before `axis`).
fn join<F: Float>(tape: &Recorded<'_, F>, parts: &[Var], axis: usize, out: &mut [F]) {
    let width: usize = parts
        .iter()
        .map(|&part| block_len(tape.value(part).shape(), axis))
        .sum();
    let mut offset = 0;
    for &part in parts {
        let value = tape.value(part);
        let block = block_len(value.shape(), axis);
        if block == 0 {
            continue;
        }
        let blocks = value.as_slice().chunks_exact(block);
        for (out, block) in out.chunks_exact_mut(width).zip(blocks) {
            out[offset..][..block.len()].copy_from_slice(block);
        }
        offset += block;
    }
}

/// The slice's gradient lands in the run of each block it was copied from.
pub(super) fn slice_axis_backward<F: Float>(
    context: &mut Backward<'_, F>,
    input: Var,
    axis: usize,
    start: usize,
) {
    let shape = context.value(input).shape();
    let inner = block_len(shape, axis + 1);
    let (block, run) = (shape[axis] * inner, context.grad.shape()[axis] * inner);
    if run == 0 {
        return;
    }
    let grad = context.grad.as_slice().chunks_exact(run);
    let target = context.sink.of(input).as_mut_slice();
    for (block, grad) in target.chunks_exact_mut(block).zip(grad) {
        for (sum, &grad) in block[start * inner..][..run].iter_mut().zip(grad) {
            *sum += grad;
        }
    }
}

/// Each part gets the run of every output block it filled (one part at a time, so a part that
/// appears twice adds both shares).
pub(super) fn join_backward<F: Float>(
    context: &mut Backward<'_, F>,
    parts: Range<usize>,
    axis: usize,
) {
    let parts = &context.tape.operands[parts];
    let width: usize = parts
        .iter()
        .map(|&part| block_len(context.value(part).shape(), axis))
        .sum();
    let grad = context.grad.as_slice();
    let mut offset = 0;
    for &part in parts {
        let block = block_len(context.value(part).shape(), axis);
        if block == 0 {
            continue;
        }
        let target = context.sink.of(part).as_mut_slice();
        for (sums, grad) in target.chunks_exact_mut(block).zip(grad.chunks_exact(width)) {
            for (sum, &grad) in sums.iter_mut().zip(&grad[offset..offset + block]) {
                *sum += grad;
            }
        }
        offset += block;
    }
}
