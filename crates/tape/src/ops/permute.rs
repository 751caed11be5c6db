//! Reordering axes: `permute` and `transpose` of two axes. The result is written row-major, so the
//! ops after it read a plain buffer whatever the order of the axes they came from.
//!
//! The copy is the broadcasting odometer ([`broadcast::for_each_pair`]) walking the output in order
//! and reading the input with its strides permuted. ndarray's `permuted_axes` view copied into the
//! node is the same copy, but took two to five times as long on attention-sized values (a few
//! hundred elements), where the per-op cost matters most; the tests use it as the oracle.

use super::shape::NO_STRIDES;
use super::{Backward, Op, shape_of};
use crate::broadcast;
use crate::tensor::MAX_AXES;
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// `a` with its axes reordered: output axis `k` is input axis `axes[k]`, so `axes` must list
    /// each of `a`'s axes once (PyTorch's `permute`, ndarray's `permuted_axes`). Splitting attention
    /// heads turns `[B, T, H, D]` into `[B, H, T, D]` with `axes = [0, 2, 1, 3]`. The result is
    /// stored row-major; its gradient is the output's permuted back.
    ///
    /// ```
    /// use ndarray::{Array3, IxDyn};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (100 * i + 10 * j + k) as f64);
    /// let heads = tape.constant(x.clone());
    /// let moved = tape.permute(heads, &[1, 2, 0])?;
    /// assert_eq!(tape.value(moved).shape(), &[3, 4, 2]);
    /// assert_eq!(tape.value(moved).view()[[2, 1, 1]], 121.0);
    /// assert_eq!(*tape.value(moved), x.permuted_axes([1, 2, 0]));
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn permute(&mut self, a: Var, axes: &[usize]) -> Result<Var, TapeError> {
        // Only a valid permutation (checked below, before the op is kept) is ever read back, and
        // its axes are below MAX_AXES, so a byte holds each.
        let mut stored = [0; MAX_AXES];
        for (stored, &axis) in stored.iter_mut().zip(axes) {
            *stored = axis as u8;
        }
        self.record(
            Op::Permute {
                input: a,
                axes: stored,
            },
            |tape, node| {
                let input = tape.try_value(a)?;
                check_permutation(input.shape(), axes)?;
                let (shape, strides) = permuted(input.shape(), &stored);
                let shape = &shape[..input.ndim()];
                let input = input.as_slice();
                let out = node.value.resize(shape);
                broadcast::for_each_pair(shape, &strides, &NO_STRIDES, |o, i, _| out[o] = input[i]);
                Ok(())
            },
        )
    }

    /// `a` with axes `axis0` and `axis1` swapped (PyTorch's `transpose`): the transpose of a
    /// matrix with `(0, 1)`, or `K^T` of a `[B, H, T, D]` key with `(2, 3)`. A [`Tape::permute`].
    pub fn transpose(&mut self, a: Var, axis0: usize, axis1: usize) -> Result<Var, TapeError> {
        let input = self.try_value(a)?;
        let rank = input.ndim();
        if axis0 >= rank || axis1 >= rank {
            let detail = format!(
                "axes {axis0} and {axis1} must both be below the {rank} axes of {}",
                shape_of(input)
            );
            return Err(TapeError::shape("transpose", detail));
        }
        let mut axes = [0, 1, 2, 3, 4, 5];
        axes.swap(axis0, axis1);
        self.permute(a, &axes[..rank])
    }
}

/// A shape error unless `axes` lists each axis of `shape` exactly once.
fn check_permutation(shape: &[usize], axes: &[usize]) -> Result<(), TapeError> {
    let mut seen = [false; MAX_AXES];
    let valid = axes.len() == shape.len()
        && axes
            .iter()
            .all(|&axis| axis < shape.len() && !std::mem::replace(&mut seen[axis], true));
    if valid {
        return Ok(());
    }
    let detail = format!(
        "axes {axes:?} are not a permutation of the {} axes of {shape:?}: each of 0..{} must appear \
         once",
        shape.len(),
        shape.len()
    );
    Err(TapeError::shape("permute", detail))
}

/// The output shape of permuting `shape` by `axes`, and the input's strides in the output's order.
fn permuted(shape: &[usize], axes: &[u8; MAX_AXES]) -> ([usize; MAX_AXES], [usize; MAX_AXES]) {
    // Row-major strides (0 along axes of length 1, where the index is always 0).
    let row_major = broadcast::strides(shape, shape);
    let (mut lengths, mut strides) = ([0; MAX_AXES], [0; MAX_AXES]);
    for (output_axis, &input_axis) in axes[..shape.len()].iter().enumerate() {
        lengths[output_axis] = shape[input_axis as usize];
        strides[output_axis] = row_major[input_axis as usize];
    }
    (lengths, strides)
}

/// Each output element's gradient goes back to the input element it was copied from (the walk of
/// the forward copy, adding instead of reading: the inverse permutation).
pub(super) fn permute_backward<F: Float>(
    context: &mut Backward<'_, F>,
    input: Var,
    axes: [u8; MAX_AXES],
) {
    let (_, strides) = permuted(context.value(input).shape(), &axes);
    let (shape, grad) = (context.grad.shape(), context.grad.as_slice());
    let target = context.sink.of(input).as_mut_slice();
    broadcast::for_each_pair(shape, &strides, &NO_STRIDES, |o, i, _| target[i] += grad[o]);
}
