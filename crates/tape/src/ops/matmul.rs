//! Matrix products. `linear(x, w)` is `x W^T` along the last axis of `x` (a matrix-vector product
//! `W x` when `x` is a vector, one per row otherwise, every axis before the last counting as rows);
//! `matmul(a, b)` is `a b` over the last two axes, repeated over leading batch axes that broadcast
//! as in `torch.matmul` (a vector on the left is `x^T W`). Every product, batched or not, is a call
//! of the loops of [`kernels`](crate::kernels) on contiguous 2-D slices, writing into the node's
//! reused buffer, except large ones (see [`gemm::worth_it`]), which go through the packed GEMM of
//! [`gemm`](crate::gemm): an op decides once, from its shapes, and its forward and both backward
//! products take the same route.

use super::{Backward, Op, shape_of};
use crate::broadcast::{self, Shape, broadcast_shapes};
use crate::gemm::{self, Strided};
use crate::kernels::{self, Matrix, MatrixMut, Write};
use crate::tape::{Node, Recorded};
use crate::{Float, MAX_AXES, Tape, TapeError, Tensor, Var};

impl<F: Float> Tape<F> {
    /// `x W^T` for a weight `w` of shape `[out, in]`, along the last axis of `x`: `[in]` gives
    /// `[out]` (the matrix-vector product `W x` of a linear layer), `[rows, in]` gives
    /// `[rows, out]`, and any leading axes are rows too, `[B, T, in]` giving `[B, T, out]`.
    ///
    /// ```
    /// use ndarray::{Array, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let w = tape.parameter(arr2(&[[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])); // [out 2, in 3]
    /// let x = tape.constant(Array::from_shape_fn((4, 5, 3), |(b, t, c)| (b + t + c) as f64));
    /// let y = tape.linear(x, w)?;
    /// assert_eq!(tape.value(y).shape(), &[4, 5, 2]);
    /// // x[1, 2] is [3, 4, 5]: its first feature, and the sum of all three.
    /// assert_eq!(tape.value(y).view()[[1, 2, 0]], 3.0);
    /// assert_eq!(tape.value(y).view()[[1, 2, 1]], 12.0);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn linear(&mut self, x: Var, w: Var) -> Result<Var, TapeError> {
        self.record(Op::Linear { x, w }, |tape, node| {
            linear_forward("linear", tape, node, x, &[w])
        })
    }

    /// `x [W_1; W_2; ..]^T`: the outputs of `linear(x, w_i)` side by side along the last axis, as
    /// one product (attention's query, key and value projections of the same input, say). Each
    /// weight is `[out_i, in]`; `x` is `[.., in]` as for [`Tape::linear`], and the result
    /// `[.., sum of out_i]`.
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

    /// `a b`, as `torch.matmul`: the product of the last two axes of each operand,
    /// `[.., m, k] @ [.., k, n] -> [.., m, n]`, over leading batch axes that broadcast by NumPy's
    /// rules (aligned at the last batch axis, each pair of lengths equal or one of them 1, a missing
    /// axis counting as 1). So `[B, T, C] @ [C, D]` is `[B, T, D]`, `[B, H, T, D] @ [B, H, D, T]` is
    /// `[B, H, T, T]` and `[B, 1, T, D] @ [H, D, T]` is `[B, H, T, T]`.
    ///
    /// A vector is a matrix with its extra axis dropped from the result: `[k]` on the left is one row
    /// (`x^T W`, so `[k] @ [k, n]` is `[n]`), on the right one column (`W x`, so `[.., m, k] @ [k]`
    /// is `[.., m]`), and two vectors give their dot product, a scalar. The gradient of an operand
    /// that broadcasting repeats is summed over the repeats.
    ///
    /// ```
    /// use ndarray::{Array, arr2};
    /// use tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// // A batch of two [2, 3] matrices times one shared [3, 2] matrix.
    /// let a = tape.parameter(Array::from_shape_fn((2, 2, 3), |(b, i, j)| (b + i + j) as f64));
    /// let w = tape.parameter(arr2(&[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]));
    /// let y = tape.matmul(a, w)?;
    /// assert_eq!(tape.value(y).shape(), &[2, 2, 2]);
    /// // Batch 1, row 0 is [1, 2, 3]: [1 + 3, 2 + 3].
    /// assert_eq!(tape.value(y).view()[[1, 0, 1]], 5.0);
    /// let loss = tape.sum(y)?;
    /// let gradients = tape.backward(loss)?;
    /// assert_eq!(gradients.parameter(w).shape(), &[3, 2], "summed over the batch");
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var, TapeError> {
        self.record(Op::MatMul(a, b), |tape, node| {
            let (left, right) = (tape.try_value(a)?, tape.try_value(b)?);
            let product = Product::of(left.shape(), right.shape())?;
            let out = node.value.resize(product.output_shape());
            let (a, b) = (left.as_slice(), right.as_slice());
            let (rows, inner, columns) = (product.rows, product.inner, product.columns);
            let out_size = rows * columns;
            if gemm::worth_it(rows, inner, columns) {
                product.for_each_matrix(|out_offset, a_offset, b_offset| {
                    let a = Strided::row_major(&a[a_offset..], rows, inner);
                    let b = Strided::row_major(&b[b_offset..], inner, columns);
                    gemm::product(a, b, &mut out[out_offset..], columns, false);
                });
                return Ok(());
            }
            product.for_each_matrix(|out_offset, a_offset, b_offset| {
                let out = MatrixMut::new(&mut out[out_offset..][..out_size], rows, columns);
                let (a, b) = (&a[a_offset..], &b[b_offset..]);
                kernels::set_product(
                    Matrix::new(a, rows, inner),
                    Matrix::new(b, inner, columns),
                    out,
                );
            });
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
    let (rows, inner) = rows_of(name, input)?;
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
    size_output(node, input, outputs);
    if gemm::worth_it(rows, inner, outputs) {
        forward_by_gemm(tape, node, input, weights, rows, inner, outputs);
        return Ok(());
    }
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
        let weight_rows = weight.len() / inner.max(1);
        let out = MatrixMut::new(&mut transposed[offset..], inner, weight_rows).with_stride(stride);
        kernels::transpose_into(Matrix::new(weight, weight_rows, inner), out);
        offset += weight_rows;
    }
    let out = node.value.as_mut_slice();
    let rows = out.len() / outputs.max(1);
    let transposed = Matrix::new(&node.saved.as_slice()[..inner * stride], inner, outputs);
    kernels::set_product(
        Matrix::new(input.as_slice(), rows, inner),
        transposed.with_stride(stride),
        MatrixMut::new(out, rows, outputs),
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
    kernels::transpose_into(
        Matrix::new(input.as_slice(), rows, inner),
        MatrixMut::new(input_transposed, inner, rows).with_stride(stride),
    );
    let input_transposed = Matrix::new(&*input_transposed, inner, rows).with_stride(stride);
    let mut offset = 0;
    for &w in weights {
        let weight = tape.value(w).as_slice();
        let weight_rows = weight.len() / inner;
        let block = &mut output_transposed[offset * rows..(offset + weight_rows) * rows];
        kernels::set_product(
            Matrix::new(weight, weight_rows, inner),
            input_transposed,
            MatrixMut::new(block, weight_rows, rows),
        );
        offset += weight_rows;
    }
    let out = MatrixMut::new(node.value.as_mut_slice(), rows, outputs);
    kernels::transpose_into(Matrix::new(output_transposed, outputs, rows), out);
}

/// `y = x [W_1; ..]^T` through the GEMM, each weight's block of output columns written in place
/// (the transposed weights are a strided view: nothing is copied, and the saved buffer is unused).
fn forward_by_gemm<F: Float>(
    tape: &Recorded<'_, F>,
    node: &mut Node<F>,
    input: &Tensor<F>,
    weights: &[Var],
    rows: usize,
    inner: usize,
    outputs: usize,
) {
    let x = Strided::row_major(input.as_slice(), rows, inner);
    let out = node.value.as_mut_slice();
    let mut offset = 0;
    for &w in weights {
        let weight = tape.value(w).as_slice();
        let weight_rows = weight.len() / inner;
        let w_transposed = Strided::row_major(weight, weight_rows, inner).transposed();
        gemm::product(x, w_transposed, &mut out[offset..], outputs, false);
        offset += weight_rows;
    }
}

/// Sizes the output of a linear layer: the input's shape with its last axis `columns` long.
fn size_output<F: Float>(node: &mut Node<F>, input: &Tensor<F>, columns: usize) {
    match *input.shape() {
        [_] => node.value.resize(&[columns]),
        [rows, _] => node.value.resize(&[rows, columns]),
        ref shape => {
            let mut output = [0; MAX_AXES];
            output[..shape.len()].copy_from_slice(shape);
            output[shape.len() - 1] = columns;
            node.value.resize(&output[..shape.len()])
        }
    };
}

/// Y = X [W_1; W_2; ..]^T: with dY cut into the column blocks dY_i of each weight,
/// dX += sum_i dY_i W_i and dW_i += dY_i^T X.
pub(super) fn linear_backward<F: Float>(context: &mut Backward<'_, F>, x: Var, weights: &[Var]) {
    let input = context.value(x);
    let inner = input.row_len();
    let grad = context.grad.as_slice();
    let total = context.grad.row_len();
    let rows = grad.len() / total.max(1);
    if gemm::worth_it(rows, inner, total) {
        linear_backward_by_gemm(context, x, weights, rows, inner);
        return;
    }
    let mut offset = 0;
    for &w in weights {
        let weight = context.value(w);
        let outputs = weight.shape()[0];
        let dy = Matrix::new(&grad[offset..], rows, outputs).with_stride(total);
        let weight = Matrix::new(weight.as_slice(), outputs, inner);
        // The first contribution to a gradient writes it whole: no zeroing beforehand.
        let (dx, first) = context.sink.first(x);
        let dx = MatrixMut::new(dx.as_mut_slice(), rows, inner);
        kernels::product(dy, weight, dx, Write::contribution(first));
        let (dw, first) = context.sink.first(w);
        let dw = MatrixMut::new(dw.as_mut_slice(), outputs, inner);
        let input = Matrix::new(input.as_slice(), rows, inner);
        kernels::transposed_product(dy, input, dw, Write::contribution(first));
        offset += outputs;
    }
}

/// [`linear_backward`] through the GEMM, which reads dY_i as a strided block of dY's columns and
/// dY_i^T and X as strided views, so nothing is copied.
fn linear_backward_by_gemm<F: Float>(
    context: &mut Backward<'_, F>,
    x: Var,
    weights: &[Var],
    rows: usize,
    inner: usize,
) {
    let input = context.value(x);
    let grad = context.grad.as_slice();
    let total = context.grad.row_len();
    let mut offset = 0;
    for &w in weights {
        let weight = context.value(w);
        let outputs = weight.shape()[0];
        let dy = Strided {
            data: &grad[offset..],
            rows,
            columns: outputs,
            row_stride: total,
            column_stride: 1,
        };
        let weight = Strided::row_major(weight.as_slice(), outputs, inner);
        // As the small kernels do: the first contribution writes its buffer whole.
        let (dx, first) = context.sink.first(x);
        gemm::product(dy, weight, dx.as_mut_slice(), inner, !first);
        let input = Strided::row_major(input.as_slice(), rows, inner);
        let (dw, first) = context.sink.first(w);
        gemm::product(dy.transposed(), input, dw.as_mut_slice(), inner, !first);
        offset += outputs;
    }
}

/// C = A B: dA += dC B^T, dB += A^T dC, for each matrix of the batch; an operand repeated along a
/// batch axis gains the products of every matrix it took part in.
pub(super) fn matmul_backward<F: Float>(context: &mut Backward<'_, F>, a: Var, b: Var) {
    let (left, right) = (context.value(a), context.value(b));
    let product = Product::of(left.shape(), right.shape()).expect("forward checked the shapes");
    let (rows, inner, columns) = (product.rows, product.inner, product.columns);
    let (a_size, b_size, out_size) = (rows * inner, inner * columns, rows * columns);
    let (left, right, grad) = (left.as_slice(), right.as_slice(), context.grad.as_slice());
    if gemm::worth_it(rows, inner, columns) {
        let da = context.sink.of(a).as_mut_slice();
        product.for_each_matrix(|out_offset, a_offset, b_offset| {
            let grad = Strided::row_major(&grad[out_offset..], rows, columns);
            let right = Strided::row_major(&right[b_offset..], inner, columns);
            gemm::product(grad, right.transposed(), &mut da[a_offset..], inner, true);
        });
        let db = context.sink.of(b).as_mut_slice();
        product.for_each_matrix(|out_offset, a_offset, b_offset| {
            let left = Strided::row_major(&left[a_offset..], rows, inner);
            let grad = Strided::row_major(&grad[out_offset..], rows, columns);
            gemm::product(left.transposed(), grad, &mut db[b_offset..], columns, true);
        });
        return;
    }
    // One input at a time, so that `a` and `b` may be the same value (each use adds its share).
    let da = context.sink.of(a).as_mut_slice();
    product.for_each_matrix(|out_offset, a_offset, b_offset| {
        let (grad, right) = (
            &grad[out_offset..][..out_size],
            &right[b_offset..][..b_size],
        );
        let da = MatrixMut::new(&mut da[a_offset..][..a_size], rows, inner);
        let (grad, right) = (
            Matrix::new(grad, rows, columns),
            Matrix::new(right, inner, columns),
        );
        kernels::add_a_times_b_transposed(grad, right, da);
    });
    let db = context.sink.of(b).as_mut_slice();
    product.for_each_matrix(|out_offset, a_offset, b_offset| {
        let (left, grad) = (&left[a_offset..][..a_size], &grad[out_offset..][..out_size]);
        let db = MatrixMut::new(&mut db[b_offset..][..b_size], inner, columns);
        let (left, grad) = (
            Matrix::new(left, rows, inner),
            Matrix::new(grad, rows, columns),
        );
        kernels::add_transposed_product(left, grad, db);
    });
}

/// The shapes of a product `[.., rows, inner] @ [.., inner, columns]` (see [`Tape::matmul`]): the
/// sizes of its matrices, the batch axes they are repeated over, and where in each operand the
/// matrices of a batch element start.
struct Product {
    rows: usize,
    inner: usize,
    columns: usize,
    /// The batch axes of the result (none for a plain matrix product).
    batch: Shape,
    /// The offsets, in elements, between consecutive matrices of `a` and of `b` along each batch
    /// axis: 0 along an axis the operand is repeated over.
    a_strides: [usize; MAX_AXES],
    b_strides: [usize; MAX_AXES],
    output: [usize; MAX_AXES],
    output_axes: usize,
}

impl Product {
    /// The product of operands of shapes `a` and `b`, or the error that names the rule they break.
    fn of(a: &[usize], b: &[usize]) -> Result<Self, TapeError> {
        let error = |rule: String| {
            let detail = format!("a is {a:?} but b is {b:?}; {rule}");
            TapeError::shape("matmul", detail)
        };
        let no_axes = || error("a scalar has no axis to multiply along".to_string());
        // A vector on the left is one row, on the right one column.
        let (a_batch, rows, inner) = match *a {
            [] => return Err(no_axes()),
            [inner] => (&[][..], 1, inner),
            [ref batch @ .., rows, inner] => (batch, rows, inner),
        };
        let (b_batch, b_inner, columns) = match *b {
            [] => return Err(no_axes()),
            [inner] => (&[][..], inner, 1),
            [ref batch @ .., inner, columns] => (batch, inner, columns),
        };
        if inner != b_inner {
            let b_axis = if b.len() == 1 {
                "length"
            } else {
                "rows (second-to-last axis)"
            };
            let rule = format!(
                "inner axes differ: a's last axis ({inner}) must equal b's {b_axis} ({b_inner})"
            );
            return Err(error(rule));
        }
        let Some(batch) = broadcast_shapes(a_batch, b_batch) else {
            let rule = format!(
                "batch axes {a_batch:?} and {b_batch:?} do not broadcast: aligned at the last \
                 axis, each pair of lengths must be equal or one of them 1"
            );
            return Err(error(rule));
        };
        let mut output = [0; MAX_AXES];
        let mut output_axes = batch.as_slice().len();
        output[..output_axes].copy_from_slice(batch.as_slice());
        for (keep, length) in [(a.len() > 1, rows), (b.len() > 1, columns)] {
            if keep {
                output[output_axes] = length;
                output_axes += 1;
            }
        }
        let mut product = Product {
            rows,
            inner,
            columns,
            batch,
            a_strides: broadcast::strides(a_batch, batch.as_slice()),
            b_strides: broadcast::strides(b_batch, batch.as_slice()),
            output,
            output_axes,
        };
        for stride in &mut product.a_strides {
            *stride *= rows * inner;
        }
        for stride in &mut product.b_strides {
            *stride *= inner * columns;
        }
        if b_batch.iter().product::<usize>() == 1 {
            // One matrix on the right for the whole batch ([B, T, C] @ [C, D], a linear layer):
            // the left matrices are then not repeated and lie one after another, so they are one
            // matrix of all their rows, which the kernels take in one call. Every element is the
            // same sum in the same order as matrix by matrix.
            product.rows *= batch.as_slice().iter().product::<usize>();
            product.batch = broadcast_shapes(&[], &[]).expect("no axes broadcast");
        }
        Ok(product)
    }

    /// The shape of the result.
    fn output_shape(&self) -> &[usize] {
        &self.output[..self.output_axes]
    }

    /// Calls `visit(out_offset, a_offset, b_offset)` for every matrix of the result, in order, with
    /// the offsets at which it and the two matrices it is the product of start.
    fn for_each_matrix(&self, mut visit: impl FnMut(usize, usize, usize)) {
        let out_size = self.rows * self.columns;
        let batch = self.batch.as_slice();
        broadcast::for_each_pair(batch, &self.a_strides, &self.b_strides, |out, a, b| {
            visit(out * out_size, a, b)
        });
    }
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

/// The `(rows, row length)` of the input of a linear layer: its last axis is the features, and each
/// position along the axes before it (none for a vector, which is one row) is a row.
fn rows_of<F: Float>(op: &'static str, value: &Tensor<F>) -> Result<(usize, usize), TapeError> {
    match *value.shape() {
        [inner] => Ok((1, inner)),
        [rows, inner] => Ok((rows, inner)),
        [] => {
            let detail = format!("x must have at least one axis, got {}", shape_of(value));
            Err(TapeError::shape(op, detail))
        }
        [ref leading @ .., inner] => Ok((leading.iter().product(), inner)),
    }
}
