//! Row lookups in a matrix: the embedding tables' `wte[token]` and `wpe[position]`.

use std::ops::Range;

use super::{Backward, Op, shape_of};
use crate::{Float, Tape, TapeError, Tensor, Var};

impl<F: Float> Tape<F> {
    /// Row `row` of the matrix `table`, as a vector of shape `[columns]`.
    pub fn row(&mut self, table: Var, row: usize) -> Result<Var, TapeError> {
        self.record(Op::Row { table, row }, |tape, node| {
            let matrix = tape.try_value(table)?;
            let (rows, columns) = table_shape("row", matrix)?;
            check_row("row", row, rows)?;
            let elements = &matrix.as_slice()[row * columns..][..columns];
            node.value.resize(&[columns]).copy_from_slice(elements);
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
                let (table_rows, columns) = table_shape("gather", matrix)?;
                let rows = &tape.indices[range];
                if let Some(&bad) = rows.iter().find(|&&row| row >= table_rows) {
                    check_row("gather", bad, table_rows)?;
                }
                let table = matrix.as_slice();
                let out = node.value.resize(&[rows.len(), columns]);
                for (out, &row) in out.chunks_exact_mut(columns.max(1)).zip(rows) {
                    out.copy_from_slice(&table[row * columns..][..columns]);
                }
                Ok(())
            },
        )
    }
}

/// The rows and columns of a lookup table, which must be a matrix.
fn table_shape<F: Float>(op: &'static str, table: &Tensor<F>) -> Result<(usize, usize), TapeError> {
    match *table.shape() {
        [rows, columns] => Ok((rows, columns)),
        _ => {
            let detail = format!("table must be a matrix, got {}", shape_of(table));
            Err(TapeError::shape(op, detail))
        }
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
    let grad = context.grad.as_slice();
    let columns = grad.len();
    let target = &mut context.sink.of(table).as_mut_slice()[row * columns..][..columns];
    for (sum, &grad) in target.iter_mut().zip(grad) {
        *sum += grad;
    }
}

/// Each output row's gradient goes to the table row it came from (repeated rows add up).
pub(super) fn gather_backward<F: Float>(
    context: &mut Backward<'_, F>,
    table: Var,
    rows: Range<usize>,
) {
    let rows = &context.tape.indices[rows];
    let grad = context.grad.as_slice();
    let columns = grad.len() / rows.len().max(1);
    let table_grad = context.sink.of(table).as_mut_slice();
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
