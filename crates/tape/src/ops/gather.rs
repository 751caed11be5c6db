//! Row lookups in a matrix: the embedding tables' `wte[token]` and `wpe[position]`, one row, a
//! sequence of rows, or an array of ids of any shape.

use std::ops::Range;

use ndarray::{ArrayBase, Data, Dimension};

use super::{Backward, Op, shape_of};
use crate::tensor::MAX_AXES;
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
    /// (an embedding lookup of a whole sequence; [`Tape::embedding`] looks up an array of ids of any
    /// shape).
    pub fn gather(&mut self, table: Var, rows: &[usize]) -> Result<Var, TapeError> {
        let range = self.push_indices(rows);
        self.record(
            Op::Gather {
                table,
                rows: range.clone(),
            },
            |tape, node| {
                let matrix = tape.try_value(table)?;
                let rows = &tape.indices[range];
                look_up("gather", matrix, rows, &[rows.len()], &mut node.value)
            },
        )
    }

    /// An embedding lookup: row `ids[i, j, ...]` of the `[V, C]` matrix `table` for every id, in an
    /// array of shape `[..ids.shape(), C]` (PyTorch's `embedding`). A `[B, T]` array of token ids
    /// gives the `[B, T, C]` embeddings of a batch. An id of `V` or more is a
    /// [`TapeError::Index`]. The gradient of a row is the sum over every place its id appears.
    ///
    /// The ids are an ndarray array or view of any dimension and layout (read in logical order),
    /// rather than a slice and a shape, because their shape is part of the result's: an
    /// `Array2<usize>` batch goes in as it is, and its shape cannot disagree with its length.
    ///
    /// ```
    /// use ndarray::{Array2, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// // Five tokens with 2-wide embeddings: token v is [v, 10 v].
    /// let table = tape.parameter(Array2::from_shape_fn((5, 2), |(v, c)| (v * 10usize.pow(c as u32)) as f64));
    /// // A batch of two sequences of three tokens.
    /// let ids = arr2(&[[1, 4, 1], [0, 2, 3]]);
    /// let embedded = tape.embedding(table, &ids)?;
    /// assert_eq!(tape.value(embedded).shape(), &[2, 3, 2]);
    /// assert_eq!(tape.value(embedded).view()[[0, 1, 1]], 40.0); // token 4, column 1
    ///
    /// // Token 1 appears twice and token 0 once, so the gradient of their rows is twice and once
    /// // the output's (all ones here).
    /// let loss = tape.sum(embedded)?;
    /// let gradient = tape.backward(loss)?;
    /// let expected = arr2(&[[1.0, 1.0], [2.0, 2.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]);
    /// assert_eq!(*gradient.parameter(table), expected);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn embedding<S, D>(&mut self, table: Var, ids: &ArrayBase<S, D>) -> Result<Var, TapeError>
    where
        S: Data<Elem = usize>,
        D: Dimension,
    {
        // Its backward is a gather's: the output is the same rows, under the ids' shape.
        let start = self.indices.len();
        match ids.as_slice() {
            Some(ids) => self.indices.extend_from_slice(ids),
            None => self.indices.extend(ids.iter().copied()),
        }
        let range = start..self.indices.len();
        self.record(
            Op::Gather {
                table,
                rows: range.clone(),
            },
            |tape, node| {
                let matrix = tape.try_value(table)?;
                let rows = &tape.indices[range];
                look_up("embedding", matrix, rows, ids.shape(), &mut node.value)
            },
        )
    }
}

/// Fills `value` with the rows `rows` of the matrix `table`, under the shape `[..leading, columns]`
/// (`leading` holds `rows.len()` elements).
fn look_up<F: Float>(
    op: &'static str,
    table: &Tensor<F>,
    rows: &[usize],
    leading: &[usize],
    value: &mut Tensor<F>,
) -> Result<(), TapeError> {
    let (table_rows, columns) = table_shape(op, table)?;
    if leading.len() >= MAX_AXES {
        let detail = format!(
            "ids of shape {leading:?} give a result of {} axes, more than {MAX_AXES}",
            leading.len() + 1
        );
        return Err(TapeError::shape(op, detail));
    }
    if let Some(&bad) = rows.iter().find(|&&row| row >= table_rows) {
        check_row(op, bad, table_rows)?;
    }
    let mut shape = [0; MAX_AXES];
    shape[..leading.len()].copy_from_slice(leading);
    shape[leading.len()] = columns;
    let table = table.as_slice();
    let out = value.resize(&shape[..=leading.len()]);
    for (out, &row) in out.chunks_exact_mut(columns.max(1)).zip(rows) {
        out.copy_from_slice(&table[row * columns..][..columns]);
    }
    Ok(())
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

/// Each output row's gradient goes to the table row it came from (repeated rows add up). Also the
/// backward of [`Tape::embedding`], whose output is the same rows under the ids' shape.
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
