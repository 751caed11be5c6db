//! The loops every matrix product here reduces to, on row-major slices.
//!
//! ndarray's `general_mat_mul` (through matrixmultiply) allocates packing buffers on every call and
//! is tuned for large matrices; a small model's products are a few dozen rows of a few dozen columns.
//! For those, the fastest portable form is the row update: an output row is a sum of rows of the
//! right-hand matrix, each scaled by one number (`out_row += a[r, k] * m_row_k`). Done [`TILE`]
//! columns at a time into a fixed-size array, the partial row stays in vector registers for the whole
//! sum and the compiler turns each update into a few SIMD multiply-adds, at any SIMD width (SSE2 by
//! default, AVX-512 with `-C target-cpu=native`). There is no horizontal reduction, which is what
//! makes short dot products slow.

use crate::Float;

/// The columns one pass of [`add_product`] keeps in registers: 16 `f32` fill one AVX-512 register or
/// four SSE ones; 16 `f64` fill two AVX-512 or eight SSE registers, still leaving room to work.
pub(crate) const TILE: usize = 16;

/// `out += a m`: `a` has rows of `inner` elements starting every `a_stride` elements (a row-major
/// `[rows, inner]` matrix, or a block of columns of a wider one), `m` is row-major with `inner` rows
/// of `m_stride` elements of which the first `width` are used, and `out` is row-major
/// `[rows, width]`.
///
/// Each output row is built [`TILE`] columns at a time in a local array (the registers) and added
/// to `out` once. When `m_stride` is padded to whole tiles (see [`padded`]) every tile runs at full
/// width and only the valid columns are written back; otherwise the last tile is a narrower loop.
pub(crate) fn add_product<F: Float>(
    a: &[F],
    a_stride: usize,
    inner: usize,
    m: &[F],
    m_stride: usize,
    out: &mut [F],
    width: usize,
) {
    if inner == 0 || width == 0 {
        return;
    }
    // One bounds check here lets the compiler drop those of the loops below.
    let m = &m[..inner * m_stride];
    for (a_row, out_row) in a.chunks(a_stride).zip(out.chunks_exact_mut(width)) {
        let a_row = &a_row[..inner];
        for start in (0..width).step_by(TILE) {
            let valid = (width - start).min(TILE);
            let out_tile = &mut out_row[start..start + valid];
            if start + TILE <= m_stride {
                let mut sum = [F::zero(); TILE];
                for (&weight, m_row) in a_row.iter().zip(m.chunks_exact(m_stride)) {
                    let m_tile: &[F; TILE] = m_row[start..start + TILE]
                        .try_into()
                        .expect("a tile is TILE long");
                    for (sum, &x) in sum.iter_mut().zip(m_tile) {
                        *sum += weight * x;
                    }
                }
                for (out, sum) in out_tile.iter_mut().zip(sum) {
                    *out += sum;
                }
            } else {
                for (&weight, m_row) in a_row.iter().zip(m.chunks_exact(m_stride)) {
                    for (out, &x) in out_tile.iter_mut().zip(&m_row[start..start + valid]) {
                        *out += weight * x;
                    }
                }
            }
        }
    }
}

/// `out += a^T b` for `a` of shape `[rows, a_columns]` (rows starting every `a_stride` elements,
/// as in [`add_product`]) and `b` of shape `[rows, width]`: the outer products of matching rows,
/// summed (the weight gradient of a linear layer). Each outer product updates the rows of `out` a
/// tile at a time.
pub(crate) fn add_transposed_product<F: Float>(
    a: &[F],
    a_stride: usize,
    a_columns: usize,
    b: &[F],
    width: usize,
    out: &mut [F],
) {
    if a_columns == 0 || width == 0 {
        return;
    }
    for (a_row, b_row) in a.chunks(a_stride).zip(b.chunks_exact(width)) {
        for (&weight, out_row) in a_row[..a_columns].iter().zip(out.chunks_exact_mut(width)) {
            let mut out_tiles = out_row.chunks_exact_mut(TILE);
            let mut b_tiles = b_row.chunks_exact(TILE);
            for (out_tile, b_tile) in (&mut out_tiles).zip(&mut b_tiles) {
                let out_tile: &mut [F; TILE] = out_tile.try_into().expect("a tile is TILE long");
                let b_tile: &[F; TILE] = b_tile.try_into().expect("a tile is TILE long");
                for (out, &x) in out_tile.iter_mut().zip(b_tile) {
                    *out += weight * x;
                }
            }
            let rest = out_tiles.into_remainder().iter_mut();
            for (out, &x) in rest.zip(b_tiles.remainder()) {
                *out += weight * x;
            }
        }
    }
}

/// Writes the transpose of the row-major `[rows, columns]` matrix `m` into columns
/// `offset..offset + rows` of the row-major `[columns, out_stride]` matrix `out`; the other columns
/// are left alone.
pub(crate) fn transpose_into<F: Float>(
    m: &[F],
    columns: usize,
    out: &mut [F],
    out_stride: usize,
    offset: usize,
) {
    if columns == 0 {
        return;
    }
    let rows = m.len() / columns;
    for (c, out_row) in out.chunks_exact_mut(out_stride).take(columns).enumerate() {
        let mut index = c;
        for out in &mut out_row[offset..offset + rows] {
            *out = m[index];
            index += columns;
        }
    }
}

/// The smallest multiple of [`TILE`] that holds `width`.
pub(crate) fn padded(width: usize) -> usize {
    width.div_ceil(TILE) * TILE
}

/// `sum(a[i] * b[i])`, with eight independent partial sums so the compiler can use SIMD lanes
/// (a single running sum is a dependency chain it may not reorder).
pub(crate) fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [F::zero(); 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: F = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .fold(F::zero(), |sum, (&x, &y)| sum + x * y);
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lanes;
    ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) + tail
}

/// `out += a b^T` for `a` of shape `[rows, inner]` and `b` of shape `[columns, inner]`: each output
/// element is a dot product of two contiguous rows (only the rarely used `matmul` backward needs it).
pub(crate) fn add_a_times_b_transposed<F: Float>(a: &[F], b: &[F], inner: usize, out: &mut [F]) {
    if inner == 0 {
        return;
    }
    let columns = b.len() / inner;
    for (a_row, out_row) in a
        .chunks_exact(inner)
        .zip(out.chunks_exact_mut(columns.max(1)))
    {
        for (out, b_row) in out_row.iter_mut().zip(b.chunks_exact(inner)) {
            *out += dot(a_row, b_row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop, the oracle for the tiled kernels.
    fn naive(a: &[f64], rows: usize, inner: usize, m: &[f64], width: usize) -> Vec<f64> {
        let mut out = vec![0.0; rows * width];
        for r in 0..rows {
            for c in 0..width {
                for k in 0..inner {
                    out[r * width + c] += a[r * inner + k] * m[k * width + c];
                }
            }
        }
        out
    }

    fn transpose(m: &[f64], rows: usize, columns: usize) -> Vec<f64> {
        let mut out = vec![0.0; m.len()];
        for r in 0..rows {
            for c in 0..columns {
                out[c * rows + r] = m[r * columns + c];
            }
        }
        out
    }

    fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
        for (x, y) in actual.iter().zip(expected) {
            assert!((x - y).abs() < 1e-12, "{what}: {x} vs {y}");
        }
    }

    #[test]
    fn the_tiled_kernels_match_the_triple_loop_at_every_width() {
        // Widths below, at, between and above the tile exercise the full and the narrow paths.
        for (rows, inner, width) in [(3, 5, 1), (2, 4, 16), (4, 3, 27), (1, 7, 33), (5, 16, 64)] {
            let what = format!("{rows}x{inner}x{width}");
            let a: Vec<f64> = (0..rows * inner).map(|i| (i as f64 * 0.37).sin()).collect();
            let m: Vec<f64> = (0..inner * width)
                .map(|i| (i as f64 * 0.11).cos())
                .collect();
            let expected = naive(&a, rows, inner, &m, width);

            let mut out = vec![0.0; rows * width];
            add_product(&a, inner, inner, &m, width, &mut out, width);
            assert_close(&out, &expected, &what);

            // Through a padded copy of m, built from its transpose as the linear op does.
            let stride = padded(width);
            let mut m_padded = vec![0.0; inner * stride];
            transpose_into(
                &transpose(&m, inner, width),
                inner,
                &mut m_padded,
                stride,
                0,
            );
            let mut out = vec![0.0; rows * width];
            add_product(&a, inner, inner, &m_padded, stride, &mut out, width);
            assert_close(&out, &expected, &format!("padded {what}"));

            // As a sum of outer products of the rows of a^T and m.
            let mut out = vec![0.0; rows * width];
            let a_transposed = transpose(&a, rows, inner);
            add_transposed_product(&a_transposed, rows, rows, &m, width, &mut out);
            assert_close(&out, &expected, &format!("outer products {what}"));
        }
    }
}
