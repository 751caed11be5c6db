//! The loops every matrix product here reduces to, on row-major slices.
//!
//! These are the small products' loops (a small model's products are a few dozen rows of a few
//! dozen columns): they allocate nothing and sum in the textbook order, so results are the triple
//! loop's to the bit. Large products go through the packed GEMM of [`gemm`](crate::gemm) instead,
//! which is faster there but allocates on every call and sums in its own order; `gemm::worth_it`
//! draws the line, and says why it is where it is. For small products the fastest portable form
//! without packing is the row update: an output row is a sum of rows of the
//! right-hand matrix, each scaled by one number (`out_row += a[r, k] * m_row_k`). Done [`TILE`]
//! columns at a time into a fixed-size array, the partial row stays in vector registers for the whole
//! sum and the compiler turns each update into a few SIMD multiplies and adds, at any SIMD width (SSE2
//! by default, AVX-512 with `-C target-cpu=native`). There is no horizontal reduction, which is what
//! makes short dot products slow.
//!
//! One such sum is a chain of dependent adds: each waits for the previous one (3 cycles on Zen 4),
//! while the core could start two a cycle. So the kernels build a block of several output rows at
//! once (each its own chain, all reading the same tile of the right-hand matrix), and the chains
//! overlap. Each output element is still summed in the order of the inner index, exactly as the
//! textbook triple loop does, so blocking changes the speed and not one bit of the results.

use crate::Float;

/// The columns one pass of the product kernels keeps in registers per output row: 16 `f32` fill one
/// AVX-512 register or four SSE ones; 16 `f64` fill two AVX-512 or eight SSE registers.
pub(crate) const TILE: usize = 16;

/// `out += a m`: `a` has rows of `inner` elements starting every `a_stride` elements (a row-major
/// `[rows, inner]` matrix, or a block of columns of a wider one), `m` is row-major with `inner` rows
/// of `m_stride` elements of which the first `width` are used, and `out` is row-major
/// `[rows, width]`. The rows are built a block at a time (see [`product_block`]).
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
    let rows = out.len() / width;
    let mut row = 0;
    while row < rows {
        let count = (rows - row).min(block_rows::<F>());
        let (a, out) = (&a[row * a_stride..], &mut out[row * width..]);
        match count {
            1 => product_block::<F, 1>(a, a_stride, count, inner, m, m_stride, out, width),
            2..=4 => product_block::<F, 4>(a, a_stride, count, inner, m, m_stride, out, width),
            _ => product_block::<F, 8>(a, a_stride, count, inner, m, m_stride, out, width),
        }
        row += count;
    }
}

/// The output rows one block sums together: 8 of `f32` or 4 of `f64`, 8 AVX-512 registers of sums
/// either way. That is enough independent chains to keep both adders busy (4 chains, or fewer
/// rows, are bound by the latency of an add), and leaves registers for the operands (8 rows of
/// `f64` make the compiler spill).
fn block_rows<F>() -> usize {
    if std::mem::size_of::<F>() <= 4 { 8 } else { 4 }
}

/// The first `count` rows of [`add_product`], for `count <= ROWS`, built together. (A single row
/// runs alone: repeated four times it costs more instructions than it saves waiting.)
///
/// Each tile of [`TILE`] columns is summed over the inner index in `ROWS` local arrays (the
/// registers), which all read the same tile of `m`, and added to `out` once. A block of fewer rows
/// still sums `ROWS` of them, repeating its last row, and writes back only its own: the chains run
/// side by side, so the spare ones cost little, and the block takes no slower path for the last
/// rows of a matrix. When `m_stride` is padded to whole tiles (see [`padded`]) every tile runs at
/// full width and only the valid columns are written back; otherwise the last tile is a narrower
/// loop.
#[allow(clippy::too_many_arguments)]
fn product_block<F: Float, const ROWS: usize>(
    a: &[F],
    a_stride: usize,
    count: usize,
    inner: usize,
    m: &[F],
    m_stride: usize,
    out: &mut [F],
    width: usize,
) {
    let a_rows: [&[F]; ROWS] = std::array::from_fn(|r| &a[r.min(count - 1) * a_stride..][..inner]);
    let out = &mut out[..count * width];
    for start in (0..width).step_by(TILE) {
        let valid = (width - start).min(TILE);
        if start + TILE <= m_stride {
            let mut sums = [[F::zero(); TILE]; ROWS];
            for (k, m_row) in (0..inner).zip(m.chunks_exact(m_stride)) {
                let m_tile: &[F; TILE] = m_row[start..start + TILE]
                    .try_into()
                    .expect("a tile is TILE long");
                for (sum, a_row) in sums.iter_mut().zip(&a_rows) {
                    let weight = a_row[k];
                    for (sum, &x) in sum.iter_mut().zip(m_tile) {
                        *sum += weight * x;
                    }
                }
            }
            for (sum, out_row) in sums.into_iter().zip(out.chunks_exact_mut(width)) {
                add_tile(&mut out_row[start..start + valid], sum);
            }
        } else {
            for (a_row, out_row) in a_rows.iter().zip(out.chunks_exact_mut(width)) {
                let out_tile = &mut out_row[start..start + valid];
                for (&weight, m_row) in a_row.iter().zip(m.chunks_exact(m_stride)) {
                    for (out, &x) in out_tile.iter_mut().zip(&m_row[start..start + valid]) {
                        *out += weight * x;
                    }
                }
            }
        }
    }
}

/// `out += sum[..out.len()]`, as a whole-tile vector add when `out` is a whole tile (the compiler
/// turns a loop of unknown length over `sum` into one scalar add per element).
#[inline(always)]
fn add_tile<F: Float>(out: &mut [F], sum: [F; TILE]) {
    if let Ok(out) = <&mut [F; TILE]>::try_from(&mut *out) {
        for (out, sum) in out.iter_mut().zip(sum) {
            *out += sum;
        }
    } else {
        for (out, sum) in out.iter_mut().zip(sum) {
            *out += sum;
        }
    }
}

/// `out += a^T b` for `a` of shape `[rows, a_columns]` (rows starting every `a_stride` elements,
/// as in [`add_product`]) and `b` of shape `[rows, width]`: the outer products of matching rows,
/// summed (the weight gradient of a linear layer). Row `i` of `out` gains `a[r, i] b[r]` for each
/// `r` in turn.
///
/// Updated in place, one outer product after another, each row of `out` would be read and written
/// once per row of `b` (from L2, once `out` outgrows L1). So rows of at least [`GROUP`] columns are
/// built a group of columns at a time in registers (see [`add_outer_products_grouped`]), and
/// narrower ones several rows at a time (see [`add_outer_products_spaced`]); what is left (the
/// last columns short of a tile, the last rows short of a block) is updated in place.
pub(crate) fn add_transposed_product<F: Float>(
    a: &[F],
    a_stride: usize,
    a_columns: usize,
    b: &[F],
    width: usize,
    out: &mut [F],
) {
    // No rows add nothing (and the blocks below would slice past the end of an empty `a`).
    if a_columns == 0 || width == 0 || b.len() < width {
        return;
    }
    let grouped = width / GROUP * GROUP;
    if grouped > 0 {
        add_outer_products_grouped(a, a_stride, a_columns, b, width, grouped, out);
        if grouped < width {
            add_outer_products_in_place(a, a_stride, a_columns, b, width, grouped, out);
        }
        return;
    }
    let tiled = width / TILE * TILE;
    let done = if tiled == 0 {
        0
    } else if std::mem::size_of::<F>() <= 4 {
        add_outer_products_spaced::<F, 8>(a, a_stride, a_columns, b, width, tiled, out)
    } else {
        add_outer_products_spaced::<F, 4>(a, a_stride, a_columns, b, width, tiled, out)
    };
    if tiled < width {
        add_outer_products_in_place(a, a_stride, done, b, width, tiled, out);
    }
    let (a, out) = (&a[done..], &mut out[done * width..]);
    add_outer_products_in_place(a, a_stride, a_columns - done, b, width, 0, out);
}

/// Columns `0..tiled` (a multiple of [`TILE`]) of the first `ROWS * (a_columns / ROWS)` rows of
/// [`add_transposed_product`]; returns that number of rows. Rows `i, i + spacing, ..` of `out`
/// (`ROWS` of them, `spacing = a_columns / ROWS` apart) are built together, one tile at a time in
/// local arrays, each its own chain of adds, and stored once. Their weights are `spacing` apart in
/// a row of `a`: side by side, the compiler would vectorise across them instead, with gathers and
/// scatters (10x slower). Each sum starts from `out` and adds the rows of `b` in order, as the
/// in-place update does, so the results are the same to the last bit.
fn add_outer_products_spaced<F: Float, const ROWS: usize>(
    a: &[F],
    a_stride: usize,
    a_columns: usize,
    b: &[F],
    width: usize,
    tiled: usize,
    out: &mut [F],
) -> usize {
    let spacing = a_columns / ROWS;
    for first in 0..spacing {
        let out_rows: [usize; ROWS] = std::array::from_fn(|j| first + j * spacing);
        for start in (0..tiled).step_by(TILE) {
            let mut sums: [[F; TILE]; ROWS] = std::array::from_fn(|j| {
                out[out_rows[j] * width + start..][..TILE]
                    .try_into()
                    .expect("a tile is TILE long")
            });
            for (a_row, b_row) in a.chunks(a_stride).zip(b.chunks_exact(width)) {
                let b_tile: &[F; TILE] = b_row[start..start + TILE]
                    .try_into()
                    .expect("a tile is TILE long");
                for (sum, &row) in sums.iter_mut().zip(&out_rows) {
                    let weight = a_row[row];
                    for (sum, &x) in sum.iter_mut().zip(b_tile) {
                        *sum += weight * x;
                    }
                }
            }
            for (sum, &row) in sums.iter().zip(&out_rows) {
                out[row * width + start..][..TILE].copy_from_slice(sum);
            }
        }
    }
    ROWS * spacing
}

/// Columns `first..width` of [`add_transposed_product`], updated in place by one outer product
/// after another.
fn add_outer_products_in_place<F: Float>(
    a: &[F],
    a_stride: usize,
    a_columns: usize,
    b: &[F],
    width: usize,
    first: usize,
    out: &mut [F],
) {
    for (a_row, b_row) in a.chunks(a_stride).zip(b.chunks_exact(width)) {
        let b_row = &b_row[first..];
        for (&weight, out_row) in a_row[..a_columns].iter().zip(out.chunks_exact_mut(width)) {
            let mut out_tiles = out_row[first..].chunks_exact_mut(TILE);
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

/// The columns [`add_outer_products_grouped`] keeps in registers: 8 AVX-512 registers of `f32`,
/// 16 of `f64`, each its own chain of adds, so they overlap.
const GROUP: usize = 8 * TILE;

/// Columns `0..grouped` (a multiple of [`GROUP`]) of [`add_transposed_product`]: each group of
/// [`GROUP`] columns of a row of `out` is loaded into a local array (the registers), gains every
/// row's outer product there in order, and is stored once. The order of the sums is the in-place
/// update's, so the results are the same to the last bit.
fn add_outer_products_grouped<F: Float>(
    a: &[F],
    a_stride: usize,
    a_columns: usize,
    b: &[F],
    width: usize,
    grouped: usize,
    out: &mut [F],
) {
    for (column, out_row) in out.chunks_exact_mut(width).take(a_columns).enumerate() {
        for (start, out_group) in (0..grouped)
            .step_by(GROUP)
            .zip(out_row.chunks_exact_mut(GROUP))
        {
            let out_group: &mut [F; GROUP] = out_group.try_into().expect("a group is GROUP long");
            let mut sums = *out_group;
            for (a_row, b_row) in a.chunks(a_stride).zip(b.chunks_exact(width)) {
                let weight = a_row[column];
                let b_group: &[F; GROUP] = b_row[start..start + GROUP]
                    .try_into()
                    .expect("a group is GROUP long");
                for (sum, &x) in sums.iter_mut().zip(b_group) {
                    *sum += weight * x;
                }
            }
            *out_group = sums;
        }
    }
}

/// The source rows [`transpose_into`] moves together: each column of a block of this many rows
/// becomes one contiguous run of the output, which the compiler can store as a vector.
const TRANSPOSE_BLOCK: usize = 8;

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
    let out = &mut out[..columns * out_stride];
    let mut blocks = m.chunks_exact(TRANSPOSE_BLOCK * columns);
    for (block_index, block) in (&mut blocks).enumerate() {
        let start = offset + block_index * TRANSPOSE_BLOCK;
        let block: [&[F]; TRANSPOSE_BLOCK] =
            std::array::from_fn(|i| &block[i * columns..][..columns]);
        for (c, out_row) in (0..columns).zip(out.chunks_exact_mut(out_stride)) {
            let out_run = &mut out_row[start..start + TRANSPOSE_BLOCK];
            for (out, row) in out_run.iter_mut().zip(&block) {
                *out = row[c];
            }
        }
    }
    let done = rows - blocks.remainder().len() / columns;
    for (r, row) in (done..rows).zip(blocks.remainder().chunks_exact(columns)) {
        for (&x, out_row) in row.iter().zip(out.chunks_exact_mut(out_stride)) {
            out_row[offset + r] = x;
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

    /// The kernels sum every element in the triple loop's order (see the module comment), so on
    /// a zeroed output they must agree with it to the last bit, not just closely.
    fn assert_same(actual: &[f64], expected: &[f64], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: lengths");
        for (i, (x, y)) in actual.iter().zip(expected).enumerate() {
            assert!(
                x.to_bits() == y.to_bits(),
                "{what}, element {i}: {x} vs {y}"
            );
        }
    }

    fn numbers(count: usize, step: f64) -> Vec<f64> {
        (0..count).map(|i| (i as f64 * step).sin()).collect()
    }

    /// Rows 1 to 19 cover full and partial blocks of 8 and 4; widths below, at, between
    /// and above the tile exercise the full and the narrow paths; inner 1 is a single outer product;
    /// widths of 128 and more take the grouped path of `add_transposed_product`.
    const SHAPES: [(usize, usize, usize); 19] = [
        (1, 1, 1),
        (3, 5, 1),
        (2, 4, 16),
        (4, 3, 27),
        (1, 7, 33),
        (5, 16, 64),
        (7, 16, 48),
        (8, 16, 16),
        (9, 64, 16),
        (15, 16, 27),
        (16, 1, 17),
        (17, 13, 31),
        (19, 2, 5),
        (6, 128, 40),
        (11, 27, 16),
        (12, 9, 100),
        (3, 45, 20),
        (5, 7, 130),
        (9, 3, 300),
    ];

    #[test]
    fn the_blocked_kernels_sum_in_the_triple_loops_order_at_every_shape() {
        for (rows, inner, width) in SHAPES {
            let what = format!("{rows}x{inner}x{width}");
            let a = numbers(rows * inner, 0.37);
            let m = numbers(inner * width, 0.11);
            let expected = naive(&a, rows, inner, &m, width);

            let mut out = vec![0.0; rows * width];
            add_product(&a, inner, inner, &m, width, &mut out, width);
            assert_same(&out, &expected, &what);

            // Through a padded copy of m, built from its transpose as the linear op does.
            let stride = padded(width);
            let mut m_padded = vec![f64::NAN; inner * stride];
            transpose_into(
                &transpose(&m, inner, width),
                inner,
                &mut m_padded,
                stride,
                0,
            );
            let mut out = vec![0.0; rows * width];
            add_product(&a, inner, inner, &m_padded, stride, &mut out, width);
            assert_same(&out, &expected, &format!("padded {what}"));

            // As a sum of outer products of the rows of a^T and m.
            let mut out = vec![0.0; rows * width];
            let a_transposed = transpose(&a, rows, inner);
            add_transposed_product(&a_transposed, rows, rows, &m, width, &mut out);
            assert_same(&out, &expected, &format!("outer products {what}"));
        }
    }

    #[test]
    fn a_block_of_columns_of_a_wider_left_matrix_is_multiplied_alone() {
        // The left matrix is [rows, 3 + inner + 2]; only its columns 3..3 + inner take part, as
        // when linear_stacked's backward reads one weight's share of the output gradient.
        for (rows, inner, width) in SHAPES {
            let what = format!("{rows}x{inner}x{width}");
            let stride = inner + 5;
            let wide = numbers(rows * stride, 0.23);
            let a: Vec<f64> = wide
                .chunks_exact(stride)
                .flat_map(|row| row[3..3 + inner].to_vec())
                .collect();
            let m = numbers(inner * width, 0.17);
            let expected = naive(&a, rows, inner, &m, width);

            let mut out = vec![0.0; rows * width];
            add_product(&wide[3..], stride, inner, &m, width, &mut out, width);
            assert_same(&out, &expected, &what);

            let mut out = vec![0.0; inner * width];
            let b = numbers(rows * width, 0.29);
            let expected = naive(&transpose(&a, rows, inner), inner, rows, &b, width);
            add_transposed_product(&wide[3..], stride, inner, &b, width, &mut out);
            assert_same(&out, &expected, &format!("outer products {what}"));
        }
    }

    #[test]
    fn the_products_add_to_what_the_output_holds() {
        for (rows, inner, width) in SHAPES {
            let what = format!("{rows}x{inner}x{width}");
            let a = numbers(rows * inner, 0.31);
            let m = numbers(inner * width, 0.07);
            let start = numbers(rows * width, 0.5);
            let product = naive(&a, rows, inner, &m, width);

            let mut out = start.clone();
            add_product(&a, inner, inner, &m, width, &mut out, width);
            for ((x, p), s) in out.iter().zip(&product).zip(&start) {
                assert!((x - (p + s)).abs() < 1e-12, "{what}: {x} vs {p} + {s}");
            }

            let mut out = start.clone();
            add_transposed_product(&transpose(&a, rows, inner), rows, rows, &m, width, &mut out);
            for ((x, p), s) in out.iter().zip(&product).zip(&start) {
                assert!((x - (p + s)).abs() < 1e-12, "{what}: {x} vs {p} + {s}");
            }
        }
    }

    #[test]
    fn the_transpose_fills_only_its_columns() {
        for (rows, columns) in [
            (1, 1),
            (3, 5),
            (8, 16),
            (9, 3),
            (16, 16),
            (27, 16),
            (17, 64),
        ] {
            let m = numbers(rows * columns, 0.13);
            let (stride, offset) = (rows + 7, 4);
            let mut out = vec![f64::NAN; columns * stride];
            transpose_into(&m, columns, &mut out, stride, offset);
            for c in 0..columns {
                for j in 0..stride {
                    let x = out[c * stride + j];
                    if (offset..offset + rows).contains(&j) {
                        assert_eq!(x, m[(j - offset) * columns + c], "{rows}x{columns}");
                    } else {
                        assert!(x.is_nan(), "{rows}x{columns}: column {j} was written");
                    }
                }
            }
        }
    }
}
