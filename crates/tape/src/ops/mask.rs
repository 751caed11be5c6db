//! Masking: `masked_fill` replaces the elements a mask selects by a constant, and `causal_mask`
//! builds the mask of attention's future positions, so that causal attention is
//! `softmax(masked_fill(scores, causal_mask(T), -inf))` written from primitives.

use super::shape::NO_STRIDES;
use super::{Backward, Op, shape_of};
use crate::broadcast::{self, broadcast_shapes};
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// `a` with `value` wherever `mask` is nonzero (PyTorch's `masked_fill`). The mask broadcasts
    /// against `a` by NumPy's rules (a `[T, T]` mask over `[B, H, T, T]` scores) and the result has
    /// `a`'s shape. The gradient of `a` is the output's where the mask is zero and 0 where it
    /// filled; the mask is a selector and gets no gradient.
    ///
    /// Causal attention scores, with the future masked out before the softmax:
    ///
    /// ```
    /// use ndarray::{Array2, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// // Equal scores, so each position attends evenly to itself and the positions before it.
    /// let scores = tape.constant(Array2::<f64>::zeros((3, 3)));
    /// let causal = tape.causal_mask(3);
    /// let masked = tape.masked_fill(scores, causal, f64::NEG_INFINITY)?;
    /// let attention = tape.softmax(masked)?;
    /// let third = 1.0 / 3.0;
    /// assert_eq!(
    ///     *tape.value(attention),
    ///     arr2(&[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [third, third, third]])
    /// );
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn masked_fill(&mut self, a: Var, mask: Var, value: F) -> Result<Var, TapeError> {
        self.record(Op::MaskedFill { input: a, mask }, |tape, node| {
            let (input, selector) = (tape.try_value(a)?, tape.try_value(mask)?);
            let shape = input.shape();
            let fill = |x: F, m: F| if m != F::zero() { value } else { x };
            if selector.shape() == shape {
                let out = node.value.resize(shape);
                let pairs = out
                    .iter_mut()
                    .zip(input.as_slice())
                    .zip(selector.as_slice());
                pairs.for_each(|((out, &x), &m)| *out = fill(x, m));
                return Ok(());
            }
            if broadcast_shapes(selector.shape(), shape).is_none_or(|s| s.as_slice() != shape) {
                let detail = format!(
                    "mask {} does not broadcast to the input's {}: aligned at the last axis, each \
                     length of the mask must equal the input's or be 1",
                    shape_of(selector),
                    shape_of(input)
                );
                return Err(TapeError::shape("masked_fill", detail));
            }
            let strides = broadcast::strides(selector.shape(), shape);
            let (input, selector) = (input.as_slice(), selector.as_slice());
            let out = node.value.resize(shape);
            broadcast::for_each_pair(shape, &NO_STRIDES, &strides, |o, _, j| {
                out[o] = fill(input[o], selector[j]);
            });
            Ok(())
        })
    }

    /// The causal mask of a sequence of `size` positions, recorded as a constant: a `[size, size]`
    /// matrix with 1 above the diagonal (where the column, the attended position, is later than the
    /// row) and 0 on and below it. For [`Tape::masked_fill`]; see its example.
    pub fn causal_mask(&mut self, size: usize) -> Var {
        self.record(Op::Leaf, |_, node| {
            let out = node.value.resize(&[size, size]);
            for (row, values) in out.chunks_exact_mut(size.max(1)).enumerate() {
                for (column, value) in values.iter_mut().enumerate() {
                    *value = if column > row { F::one() } else { F::zero() };
                }
            }
            Ok(())
        })
        .expect("recording a constant cannot fail")
    }
}

/// The output's gradient passes to `a` where the mask kept `a`'s element, and nothing where it
/// filled; the mask gets none.
pub(super) fn masked_fill_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, mask: Var) {
    let selector = context.value(mask);
    let (shape, grad) = (context.grad.shape(), context.grad.as_slice());
    let strides = broadcast::strides(selector.shape(), shape);
    let selector = selector.as_slice();
    let target = context.sink.of(a).as_mut_slice();
    broadcast::for_each_pair(shape, &NO_STRIDES, &strides, |o, _, j| {
        if selector[j] == F::zero() {
            target[o] += grad[o];
        }
    });
}
