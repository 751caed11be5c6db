//! Slicing and concatenation along the last axis: splitting a vector (or each row of a matrix) into
//! attention heads and joining the heads back.

use std::ops::Range;

use super::{Backward, Op, shape_of};
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// Elements `range` of the last axis of `a`: a sub-vector of a vector, or the same columns of
    /// every row of a matrix.
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
