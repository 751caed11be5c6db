//! Large matrix products through a packed GEMM: matrixmultiply's `sgemm`/`dgemm`, reached through
//! ndarray's `general_mat_mul` (which hands any strides straight to it, so a transposed operand
//! costs nothing). The small products of a model like `gpt` stay on the row-update kernels of
//! [`kernels`](crate::kernels); [`worth_it`] draws the line.
//!
//! Why a GEMM wins once matrices are large: it copies blocks of both operands into packed panels
//! that stay in cache while a register-blocked micro-kernel (a block of rows times a block of
//! columns, fused multiply-adds, AVX-512 where the CPU has it) sweeps them, so each loaded number
//! takes part in many more products than in a row update, and the output is written once instead
//! of being zeroed and then added to. Those copies are allocated on every call and cost time in
//! proportion to the operands, which is why small products do better without them.
//!
//! The order of summation is fixed by the shape alone (matrixmultiply blocks the inner index the
//! same way on every call, and its threading feature is off, so it uses one thread): results are
//! the same for any number of threads and from run to run. They are not the row-update kernels'
//! bits (fused multiply-adds round once per term, and the inner index is cut into blocks), which is
//! why the models whose results are pinned to the bit never reach this path.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use crate::Float;

/// The number of multiply-adds (`rows * inner * columns`) from which a product goes through the
/// GEMM: 2^24, about 16.8 million.
///
/// Measured on this crate's `linear` (forward, then backward), f32 and f64, on a 2-core Xeon with
/// AVX-512: matrixmultiply is already faster from a few hundred thousand multiply-adds up (32 rows
/// of the makemore MLP's 30 -> 200 layer: 6 µs against 9 µs for the forward), and 2-2.5x faster on
/// the MLP's full-data products (205k rows). The line is nevertheless drawn well above that, above
/// every product of `gpt` (the largest is a chunk of 8 documents of 16 tokens, 128 rows, through
/// n_embd 128 -> 512: 8.4 million), for two reasons that outweigh microseconds there: `gpt`'s f64
/// results are checked against the scalar oracle to the bit, which only the row-update kernels'
/// order of summation gives, and a warm training step allocates nothing, while matrixmultiply
/// allocates its packing buffers on every call.
pub(crate) const GEMM_MIN_MULTIPLIES: usize = 1 << 24;

/// Whether the product of a `[rows, inner]` and an `[inner, columns]` matrix goes through the GEMM.
/// One decision covers an op's forward and both backward products (they do the same number of
/// multiply-adds), so an op takes one route.
pub(crate) fn worth_it(rows: usize, inner: usize, columns: usize) -> bool {
    rows.saturating_mul(inner).saturating_mul(columns) >= GEMM_MIN_MULTIPLIES
}

/// A strided matrix inside a slice: element `(r, c)` is `data[r * row_stride + c * column_stride]`.
/// A row-major matrix has strides `(columns, 1)`, its transpose `(1, columns)`, and a block of
/// columns of a wider matrix `(wider columns, 1)` from the block's first element.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a, F> {
    pub data: &'a [F],
    pub rows: usize,
    pub columns: usize,
    pub row_stride: usize,
    pub column_stride: usize,
}

impl<'a, F: Float> Strided<'a, F> {
    /// The row-major `[rows, columns]` matrix at the start of `data`.
    pub fn row_major(data: &'a [F], rows: usize, columns: usize) -> Self {
        Strided {
            data,
            rows,
            columns,
            row_stride: columns,
            column_stride: 1,
        }
    }

    /// The transpose, without moving an element.
    pub fn transposed(self) -> Self {
        Strided {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }

    fn view(&self) -> ArrayView2<'a, F> {
        let shape = (self.rows, self.columns).strides((self.row_stride, self.column_stride));
        ArrayView2::from_shape(shape, &self.data[..span(self)]).expect("the slice holds the matrix")
    }
}

/// The elements from a strided matrix's first to its last, inclusive.
fn span<F>(m: &Strided<'_, F>) -> usize {
    if m.rows == 0 || m.columns == 0 {
        0
    } else {
        (m.rows - 1) * m.row_stride + (m.columns - 1) * m.column_stride + 1
    }
}

/// `out = a b` (or `out += a b` when `accumulate`), for `out` a `[a.rows, b.columns]` matrix whose
/// rows start every `out_stride` elements (a block of columns of a wider matrix when `out_stride`
/// is larger). Without `accumulate` the old contents of `out` are not read.
pub(crate) fn product<F: Float>(
    a: Strided<'_, F>,
    b: Strided<'_, F>,
    out: &mut [F],
    out_stride: usize,
    accumulate: bool,
) {
    debug_assert_eq!(a.columns, b.rows, "inner lengths");
    let (rows, columns) = (a.rows, b.columns);
    if rows == 0 || columns == 0 {
        return;
    }
    let out_span = (rows - 1) * out_stride + columns;
    if a.columns == 0 {
        // An empty sum: nothing to add, or zeros.
        if !accumulate {
            for row in out[..out_span].chunks_mut(out_stride) {
                row[..columns].fill(F::zero());
            }
        }
        return;
    }
    let shape = (rows, columns).strides((out_stride, 1));
    let mut out =
        ArrayViewMut2::from_shape(shape, &mut out[..out_span]).expect("the slice holds the output");
    let beta = if accumulate { F::one() } else { F::zero() };
    general_mat_mul(F::one(), &a.view(), &b.view(), beta, &mut out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop on strided operands, in f64: the oracle of [`product`].
    fn naive<F: Float>(a: Strided<'_, F>, b: Strided<'_, F>) -> Vec<f64> {
        let at = |m: &Strided<'_, F>, r: usize, c: usize| {
            m.data[r * m.row_stride + c * m.column_stride].to_f64()
        };
        let mut out = vec![0.0; a.rows * b.columns];
        for r in 0..a.rows {
            for c in 0..b.columns {
                for k in 0..a.columns {
                    out[r * b.columns + c] += at(&a, r, k) * at(&b, k, c);
                }
            }
        }
        out
    }

    fn numbers<F: Float>(count: usize, step: f64) -> Vec<F> {
        (0..count)
            .map(|i| F::from_f64((i as f64 * step).sin()))
            .collect()
    }

    /// Every layout the ops hand over (either operand transposed, the output a block of columns of
    /// a wider matrix, added to or overwritten) on shapes with tails: single rows and columns, odd
    /// sizes around matrixmultiply's register blocks (8 to 32 wide), an empty inner index.
    fn layouts_match_the_triple_loop<F: Float>(tolerance: f64) {
        let shapes = [
            (1, 1, 1),
            (1, 37, 1),
            (1, 5, 33),
            (33, 5, 1),
            (7, 0, 9),
            (9, 13, 17),
            (31, 30, 200),
            (65, 200, 27),
        ];
        for (rows, inner, columns) in shapes {
            let a_data = numbers::<F>(rows * inner, 0.37);
            let b_data = numbers::<F>(inner * columns, 0.11);
            let (a_t, b_t) = (
                numbers::<F>(rows * inner, 0.37),
                numbers::<F>(inner * columns, 0.11),
            );
            for (transpose_a, transpose_b, accumulate) in [
                (false, false, false),
                (true, false, true),
                (false, true, false),
                (true, true, true),
            ] {
                let what =
                    format!("{rows}x{inner}x{columns} {transpose_a} {transpose_b} {accumulate}");
                // A transposed operand is stored as its transpose, so the product is the same.
                let a = if transpose_a {
                    Strided::row_major(&a_t, inner, rows).transposed()
                } else {
                    Strided::row_major(&a_data, rows, inner)
                };
                let b = if transpose_b {
                    Strided::row_major(&b_t, columns, inner).transposed()
                } else {
                    Strided::row_major(&b_data, inner, columns)
                };
                let expected = naive(a, b);
                let out_stride = columns + 3;
                let start: Vec<F> = numbers(rows * out_stride, 0.5);
                let mut out = start.clone();
                product(a, b, &mut out, out_stride, accumulate);
                for r in 0..rows {
                    for c in 0..out_stride {
                        let (got, old) = (
                            out[r * out_stride + c].to_f64(),
                            start[r * out_stride + c].to_f64(),
                        );
                        if c >= columns {
                            assert_eq!(
                                got, old,
                                "{what}: column {c} outside the block was written"
                            );
                            continue;
                        }
                        let want = expected[r * columns + c] + if accumulate { old } else { 0.0 };
                        assert!(
                            (got - want).abs() <= tolerance * (inner as f64 + 1.0),
                            "{what} [{r}, {c}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_layout_matches_the_triple_loop_in_f64() {
        layouts_match_the_triple_loop::<f64>(1e-14);
    }

    #[test]
    fn every_layout_matches_the_triple_loop_in_f32() {
        layouts_match_the_triple_loop::<f32>(1e-6);
    }

    #[test]
    fn the_line_lies_above_every_product_of_gpt() {
        // A chunk of 8 documents of 16 tokens through n_embd 128 -> 512 keeps the bit-exact kernels.
        assert!(!worth_it(128, 128, 512));
        assert!(worth_it(205_000, 30, 200) && worth_it(205_000, 200, 27));
    }
}
