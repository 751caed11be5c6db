//! Row lookups in a matrix: the embedding tables' `wte[token]` and `wpe[position]`.

use std::ops::Range;

use ndarray::{Axis, Ix2, Zip};

use super::{Backward, Op, shape_of};
use crate::tape::resize;
use crate::{Float, Tape, TapeError, Var};

impl<F: Float> Tape<F> {
    /// Row `row` of the matrix `table`, as a vector of shape `[columns]`.
    pub fn row(&mut self, table: Var, row: usize) -> Result<Var, TapeError> {
        self.record(Op::Row { table, row }, |tape, node| {
            let matrix = tape.try_value(table)?;
            let matrix = matrix.view().into_dimensionality::<Ix2>().map_err(|_| {
                TapeError::shape(
                    "row",
                    format!("table must be a matrix, got {}", shape_of(matrix)),
                )
            })?;
            check_row("row", row, matrix.nrows())?;
            resize(&mut node.value, &[matrix.ncols()]);
            node.value.assign(&matrix.row(row));
            Ok(())
        })
    }

    /// The rows `rows` of the matrix `table`, stacked into a matrix of shape `[rows.len(), columns]`
    /// (an embedding lookup of a whole sequence).
    pub fn gather(&mut self, table: Var, rows: &[usize]) -> Result<Var, TapeError> {
        let range = self.push_indices(rows);
        self.record(
            Op::Gather {
                table,
                rows: range.clone(),
            },
            |tape, node| {
                let matrix = tape.try_value(table)?;
                let matrix = matrix.view().into_dimensionality::<Ix2>().map_err(|_| {
                    let detail = format!("table must be a matrix, got {}", shape_of(matrix));
                    TapeError::shape("gather", detail)
                })?;
                let rows = &tape.indices[range];
                if let Some(&bad) = rows.iter().find(|&&row| row >= matrix.nrows()) {
                    check_row("gather", bad, matrix.nrows())?;
                }
                let columns = matrix.ncols();
                resize(&mut node.value, &[rows.len(), columns]);
                let table = tape
                    .value(table)
                    .as_slice()
                    .expect("tape values are contiguous");
                let out = node
                    .value
                    .as_slice_mut()
                    .expect("resized buffers are contiguous");
                for (out, &row) in out.chunks_exact_mut(columns.max(1)).zip(rows) {
                    out.copy_from_slice(&table[row * columns..][..columns]);
                }
                Ok(())
            },
        )
    }
}

fn check_row(op: &'static str, row: usize, len: usize) -> Result<(), TapeError> {
    if row < len {
        Ok(())
    } else {
        Err(TapeError::Index {
            op,
            index: row,
            len,
        })
    }
}

/// The gradient of a looked-up row is added back into that row of the table.
pub(super) fn row_backward<F: Float>(context: &mut Backward<'_, F>, table: Var, row: usize) {
    let grad = context.grad;
    let mut target = context.sink.of(table).index_axis_mut(Axis(0), row);
    Zip::from(&mut target)
        .and(grad)
        .for_each(|sum, &grad| *sum += grad);
}

/// Each output row's gradient goes to the table row it came from (repeated rows add up).
pub(super) fn gather_backward<F: Float>(
    context: &mut Backward<'_, F>,
    table: Var,
    rows: Range<usize>,
) {
    let rows = &context.tape.indices[rows];
    let grad = context.grad.as_slice().expect("gradients are contiguous");
    let columns = grad.len() / rows.len().max(1);
    let table_grad = context.sink.of(table);
    let table_grad = table_grad.as_slice_mut().expect("gradients are contiguous");
    if columns == 0 {
        return;
    }
    for (grad_row, &row) in grad.chunks_exact(columns).zip(rows) {
        let target = &mut table_grad[row * columns..][..columns];
        for (sum, &grad) in target.iter_mut().zip(grad_row) {
            *sum += grad;
        }
    }
}
