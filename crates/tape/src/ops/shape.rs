//! Slicing and concatenation along the last axis: splitting a vector (or each row of a matrix) into
//! attention heads and joining the heads back.

use std::ops::Range;

use ndarray::{Axis, Slice, Zip};

use super::{Backward, Op, shape_of};
use crate::tape::resize;
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// Elements `range` of the last axis of `a`: a sub-vector of a vector, or the same columns of
    /// every row of a matrix.
    pub fn slice(&mut self, a: Var, range: Range<usize>) -> Result<Var, TapeError> {
        let start = range.start;
        self.record(Op::Slice { input: a, start }, |tape, node| {
            let input = tape.try_value(a)?;
            let Some(last) = input.ndim().checked_sub(1) else {
                return Err(TapeError::shape("slice", "a scalar has no axis to slice"));
            };
            let len = input.shape()[last];
            if range.start > range.end || range.end > len {
                let detail = format!("range {range:?} does not fit in {}", shape_of(input));
                return Err(TapeError::shape("slice", detail));
            }
            let part = input.slice_axis(Axis(last), Slice::from(range.clone()));
            let mut shape = [0; 2];
            shape[..input.ndim()].copy_from_slice(input.shape());
            shape[last] = range.len();
            resize(&mut node.value, &shape[..input.ndim()]);
            node.value.assign(&part);
            Ok(())
        })
    }

    /// `parts` joined along their last axis (all parts must agree on the other axes).
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
                resize(&mut node.value, &shape[..first.ndim()]);
                let mut offset = 0;
                for &part in parts {
                    let value = tape.value(part);
                    let width = value.shape()[last];
                    node.value
                        .slice_axis_mut(Axis(last), Slice::from(offset..offset + width))
                        .assign(value);
                    offset += width;
                }
                Ok(())
            },
        )
    }
}

/// The slice's gradient lands in the sliced columns of the input's gradient.
pub(super) fn slice_backward<F: Float>(context: &mut Backward<'_, F>, input: Var, start: usize) {
    let grad = context.grad;
    let last = grad.ndim() - 1;
    let width = grad.shape()[last];
    let target = context.sink.of(input);
    let mut target = target.slice_axis_mut(Axis(last), Slice::from(start..start + width));
    Zip::from(&mut target)
        .and(grad)
        .for_each(|sum, &grad| *sum += grad);
}

/// Each part gets the columns of the gradient it filled.
pub(super) fn concat_backward<F: Float>(context: &mut Backward<'_, F>, parts: Range<usize>) {
    let grad = context.grad;
    let last = grad.ndim() - 1;
    let mut offset = 0;
    for &part in &context.tape.operands[parts] {
        let width = context.tape.value(part).shape()[last];
        let piece = grad.slice_axis(Axis(last), Slice::from(offset..offset + width));
        Zip::from(context.sink.of(part))
            .and(&piece)
            .for_each(|sum, &grad| *sum += grad);
        offset += width;
    }
}
