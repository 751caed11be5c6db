//! Matrix products. `linear(x, w)` is `x W^T` (a matrix-vector product `W x` when `x` is a vector,
//! one per row when `x` is a matrix); `matmul(a, b)` is `a b` (a vector-matrix product `x^T W` when
//! `a` is a vector). Vectors are treated as one-row matrices, so all four share the loops of
//! [`kernels`](crate::kernels), writing into the node's reused buffer.

use super::{Backward, Op, shape_of};
use crate::kernels;
use crate::tape::{Node, Recorded};
use crate::{Float, Tape, TapeError, Tensor, Var};

impl<F: Float> Tape<F> {
    /// `x W^T`: for a weight `w` of shape `[out, in]` and `x` of shape `[in]` (giving `[out]`) or
    /// `[rows, in]` (giving `[rows, out]`). This is the matrix-vector product `W x` of a linear layer.
    pub fn linear(&mut self, x: Var, w: Var) -> Result<Var, TapeError> {
        self.record(Op::Linear { x, w }, |tape, node| {
            linear_forward("linear", tape, node, x, &[w])
        })
    }

    /// `x [W_1; W_2; ..]^T`: the outputs of `linear(x, w_i)` side by side along the last axis, as
    /// one product (attention's query, key and value projections of the same input, say). Each
    /// weight is `[out_i, in]`; the result is `[rows, sum of out_i]` (or a vector for a vector `x`).
    pub fn linear_stacked(&mut self, x: Var, weights: &[Var]) -> Result<Var, TapeError> {
        let range = self.push_operands(weights);
        let op = Op::LinearStacked {
            x,
            weights: range.clone(),
        };
        self.record(op, |tape, node| {
            linear_forward("linear_stacked", tape, node, x, &tape.operands[range])
        })
    }

    /// `W x` for a matrix `w` of shape `[m, n]` and a vector `x` of shape `[n]`: the same op as
    /// [`Tape::linear`] with the arguments in the mathematical order.
    pub fn matvec(&mut self, w: Var, x: Var) -> Result<Var, TapeError> {
        if self.try_value(x)?.ndim() != 1 {
            let detail = format!("x must be a vector, got {}", shape_of(self.try_value(x)?));
            return Err(TapeError::shape("matvec", detail));
        }
        self.linear(x, w)
    }

    /// `a b` for `a` of shape `[m, k]` (or a vector `[k]`, giving `x^T W`) and `b` of shape `[k, n]`.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.record(Op::MatMul(a, b), |tape, node| {
            let (left, right) = (tape.try_value(a)?, tape.try_value(b)?);
            let (inner, columns) = require_matrix("matmul", "b", right)?;
            let (rows, left_columns) = as_matrix("matmul", "a", left)?;
            if left_columns != inner {
                let detail = format!(
                    "a is {} but b is {}; a's last axis must equal b's rows",
                    shape_of(left),
                    shape_of(right)
                );
                return Err(TapeError::shape("matmul", detail));
            }
            let out = size_output(node, left, rows, columns);
            out.fill(F::zero());
            let (a, b) = (left.as_slice(), right.as_slice());
            kernels::add_product(a, inner, inner, b, columns, out, columns);
            Ok(())
        })
    }

    /// `x^T W` for a vector `x` of shape `[m]` and a matrix `w` of shape `[m, n]`: the transposed
    /// product `W^T x`, the same op as [`Tape::matmul`] with a vector on the left.
    pub fn vecmat(&mut self, x: Var, w: Var) -> Result<Var, TapeError> {
        if self.try_value(x)?.ndim() != 1 {
            let detail = format!("x must be a vector, got {}", shape_of(self.try_value(x)?));
            return Err(TapeError::shape("vecmat", detail));
        }
        self.matmul(x, w)
    }
}

/// The forward pass of [`Tape::linear`] and [`Tape::linear_stacked`]: checks the shapes, then
/// computes the product with the row-update kernels (see [`kernels`]) one of two ways.
fn linear_forward<F: Float>(
    name: &'static str,
    tape: &Recorded<'_, F>,
    node: &mut Node<F>,
    x: Var,
    weights: &[Var],
) -> Result<(), TapeError> {
    let input = tape.try_value(x)?;
    let (rows, inner) = as_matrix(name, "x", input)?;
    let mut outputs = 0;
    for &w in weights {
        let weight = tape.try_value(w)?;
        let (weight_rows, weight_columns) = require_matrix(name, "W", weight)?;
        if weight_columns != inner {
            let detail = format!(
                "x is {} but W is {}; x's last axis must equal W's columns",
                shape_of(input),
                shape_of(weight)
            );
            return Err(TapeError::shape(name, detail));
        }
        outputs += weight_rows;
    }
    if weights.is_empty() {
        return Err(TapeError::shape(name, "needs at least one weight"));
    }
    size_output(node, input, rows, outputs);
    // The row-update kernel needs one operand transposed: either the weights, `x [W_1; ..]^T`, or
    // the input and the result, `(W x^T)^T`. Both sum every output element over the inner index in
    // order, so they agree to the bit, and the cheaper one is taken: the count of elements to
    // transpose plus the count of tile updates (each a few vector instructions), since a product
    // whose result rows are narrower than a tile leaves vector lanes idle. Transposing the input
    // wins for large weights and few rows (n_embd 64 or more, one document).
    // The saved buffer is scratch for either way (backward does not read it), sized for both so
    // that its need grows with the number of rows only, and resized only to grow: once the longest
    // input has been seen, no shorter one reallocates or reshapes it.
    let transposed_weights = inner * kernels::padded(outputs);
    let transposed_input = inner * kernels::padded(rows) + outputs * rows;
    let scratch = transposed_weights.max(transposed_input);
    if node.saved.len() < scratch {
        node.saved.resize(&[scratch]);
    }
    let tiles = |width: usize| width.div_ceil(kernels::TILE);
    let cost_by_weights = inner * outputs + rows * inner * tiles(outputs);
    let cost_by_input = rows * (inner + outputs) + outputs * inner * tiles(rows);
    if cost_by_input < cost_by_weights {
        forward_by_transposed_input(tape, node, input, weights, rows, inner, outputs);
    } else {
        forward_by_transposed_weights(tape, node, input, weights, inner, outputs);
    }
    Ok(())
}

/// `y = x [W_1; ..]^T` with the weights' transpose at the start of the saved buffer, its rows
/// padded to whole tiles. Only the valid columns are written back; the padding holds stale numbers whose products
/// land in output columns the kernel never writes.
fn forward_by_transposed_weights<F: Float>(
    tape: &Recorded<'_, F>,
    node: &mut Node<F>,
    input: &Tensor<F>,
    weights: &[Var],
    inner: usize,
    outputs: usize,
) {
    let stride = kernels::padded(outputs);
    let transposed = &mut node.saved.as_mut_slice()[..inner * stride];
    let mut offset = 0;
    for &w in weights {
        let weight = tape.value(w).as_slice();
        kernels::transpose_into(weight, inner, transposed, stride, offset);
        offset += weight.len() / inner.max(1);
    }
    let out = node.value.as_mut_slice();
    out.fill(F::zero());
    let transposed = &node.saved.as_slice()[..inner * stride];
    kernels::add_product(
        input.as_slice(),
        inner,
        inner,
        transposed,
        stride,
        out,
        outputs,
    );
}

/// `y = (W x^T)^T`, one weight at a time: `x^T` (rows padded to whole tiles, as above) and `y^T`
/// live in the saved buffer, and `y^T` is transposed into the output at the end.
fn forward_by_transposed_input<F: Float>(
    tape: &Recorded<'_, F>,
    node: &mut Node<F>,
    input: &Tensor<F>,
    weights: &[Var],
    rows: usize,
    inner: usize,
    outputs: usize,
) {
    let stride = kernels::padded(rows);
    let scratch = &mut node.saved.as_mut_slice()[..inner * stride + outputs * rows];
    let (input_transposed, output_transposed) = scratch.split_at_mut(inner * stride);
    kernels::transpose_into(input.as_slice(), inner, input_transposed, stride, 0);
    output_transposed.fill(F::zero());
    let mut offset = 0;
    for &w in weights {
        let weight = tape.value(w).as_slice();
        let weight_rows = weight.len() / inner;
        let block = &mut output_transposed[offset * rows..(offset + weight_rows) * rows];
        kernels::add_product(weight, inner, inner, input_transposed, stride, block, rows);
        offset += weight_rows;
    }
    let out = node.value.as_mut_slice();
    kernels::transpose_into(output_transposed, rows, out, outputs, 0);
}

/// Sizes the output `[rows, columns]`, or `[columns]` when the left input is a vector.
fn size_output<'a, F: Float>(
    node: &'a mut Node<F>,
    left: &Tensor<F>,
    rows: usize,
    columns: usize,
) -> &'a mut [F] {
    if left.ndim() == 1 {
        node.value.resize(&[columns])
    } else {
        node.value.resize(&[rows, columns])
    }
}

/// Y = X [W_1; W_2; ..]^T: with dY cut into the column blocks dY_i of each weight,
/// dX += sum_i dY_i W_i and dW_i += dY_i^T X.
pub(super) fn linear_backward<F: Float>(context: &mut Backward<'_, F>, x: Var, weights: &[Var]) {
    let input = context.value(x);
    let inner = input.row_len();
    let grad = context.grad.as_slice();
    let total = context.grad.row_len();
    let mut offset = 0;
    for &w in weights {
        let weight = context.value(w);
        let outputs = weight.shape()[0];
        let dy = &grad[offset..];
        let dx = context.sink.of(x).as_mut_slice();
        kernels::add_product(dy, total, outputs, weight.as_slice(), inner, dx, inner);
        let dw = context.sink.of(w).as_mut_slice();
        kernels::add_transposed_product(dy, total, outputs, input.as_slice(), inner, dw);
        offset += outputs;
    }
}

/// C = A B: dA += dC B^T, dB += A^T dC.
pub(super) fn matmul_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, b: Var) {
    let (left, right) = (context.value(a), context.value(b));
    let grad = context.grad.as_slice();
    let (inner, columns) = (right.shape()[0], right.shape()[1]);
    let da = context.sink.of(a).as_mut_slice();
    kernels::add_a_times_b_transposed(grad, right.as_slice(), columns, da);
    let db = context.sink.of(b).as_mut_slice();
    kernels::add_transposed_product(left.as_slice(), inner, inner, grad, columns, db);
}

/// The `(rows, columns)` of a matrix.
fn require_matrix<F: Float>(
    op: &'static str,
    name: &str,
    value: &Tensor<F>,
) -> Result<(usize, usize), TapeError> {
    match *value.shape() {
        [rows, columns] => Ok((rows, columns)),
        _ => {
            let detail = format!("{name} must be a matrix, got {}", shape_of(value));
            Err(TapeError::shape(op, detail))
        }
    }
}

/// The `(rows, columns)` of a vector (one row) or a matrix.
fn as_matrix<F: Float>(
    op: &'static str,
    name: &str,
    value: &Tensor<F>,
) -> Result<(usize, usize), TapeError> {
    match *value.shape() {
        [columns] => Ok((1, columns)),
        [rows, columns] => Ok((rows, columns)),
        _ => {
            let detail = format!(
                "{name} must be a vector or a matrix, got {}",
                shape_of(value)
            );
            Err(TapeError::shape(op, detail))
        }
    }
}
