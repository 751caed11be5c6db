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
//!
//! Every kernel takes its matrices as [`Matrix`] views (data, rows, columns, row stride), and has
//! its textbook loop in `reference`, which the tests hold it to.

use crate::Float;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

/// The columns one pass of the product kernels keeps in registers per output row: 16 `f32` fill one
/// AVX-512 register or four SSE ones; 16 `f64` fill two AVX-512 or eight SSE registers.
pub(crate) const TILE: usize = 16;

/// A row-major matrix inside a slice: `rows` rows of `columns` elements, row `r` starting at
/// element `r * stride`. A stride above `columns` describes a block of columns of a wider matrix,
/// or rows padded to whole tiles (see [`padded`]).
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a, F> {
    pub data: &'a [F],
    pub rows: usize,
    pub columns: usize,
    pub stride: usize,
}

impl<'a, F> Matrix<'a, F> {
    /// The `[rows, columns]` matrix at the start of `data`, its rows side by side.
    pub fn new(data: &'a [F], rows: usize, columns: usize) -> Self {
        Matrix {
            data,
            rows,
            columns,
            stride: columns,
        }
    }

    /// The same matrix with its rows starting every `stride` elements.
    pub fn with_stride(self, stride: usize) -> Self {
        Matrix { stride, ..self }
    }

    /// Row `r`, exactly `columns` long.
    fn row(&self, r: usize) -> &'a [F] {
        &self.data[r * self.stride..][..self.columns]
    }

    /// The rows in order, each `columns` long.
    fn rows(&self) -> impl Iterator<Item = &'a [F]> + use<'a, F> {
        let columns = self.columns;
        let rows = self.data.chunks(self.stride.max(1)).take(self.rows);
        rows.map(move |row| &row[..columns])
    }

    /// Rows `first..first + count`.
    fn rows_from(self, first: usize, count: usize) -> Self {
        Matrix {
            data: &self.data[first * self.stride..],
            rows: count,
            ..self
        }
    }
}

/// A [`Matrix`] to write to.
pub(crate) struct MatrixMut<'a, F> {
    pub data: &'a mut [F],
    pub rows: usize,
    pub columns: usize,
    pub stride: usize,
}

impl<'a, F> MatrixMut<'a, F> {
    /// The `[rows, columns]` matrix at the start of `data`, its rows side by side.
    pub fn new(data: &'a mut [F], rows: usize, columns: usize) -> Self {
        MatrixMut {
            data,
            rows,
            columns,
            stride: columns,
        }
    }

    /// The same matrix with its rows starting every `stride` elements.
    pub fn with_stride(self, stride: usize) -> Self {
        MatrixMut { stride, ..self }
    }

    /// Row `r`, exactly `columns` long.
    fn row(&mut self, r: usize) -> &mut [F] {
        &mut self.data[r * self.stride..][..self.columns]
    }

    /// The rows in order, each `columns` long.
    fn rows_mut(&mut self) -> impl Iterator<Item = &mut [F]> {
        let columns = self.columns;
        let rows = self.data.chunks_mut(self.stride.max(1)).take(self.rows);
        rows.map(move |row| &mut row[..columns])
    }

    /// Rows `first..first + count`.
    fn rows_from(&mut self, first: usize, count: usize) -> MatrixMut<'_, F> {
        MatrixMut {
            data: &mut self.data[first * self.stride..],
            rows: count,
            columns: self.columns,
            stride: self.stride,
        }
    }
}

/// Whether a kernel adds its result to `out` or writes it over `out`'s old contents, which it then
/// never reads (the first contribution to a gradient, a product's output: no zeroing beforehand).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Add,
    Set,
}

impl Write {
    /// How a contribution to a gradient goes in: written over the buffer when it is the first
    /// ([`GradSink::first`](crate::gradients::GradSink::first)), added to it otherwise.
    pub(crate) fn contribution(first: bool) -> Self {
        if first { Write::Set } else { Write::Add }
    }
}

/// `out += a m` for `a [rows, inner]`, `m [inner, width]` and `out [rows, width]`. The rows are
/// built a block of [`Float::PRODUCT_ROWS`] at a time (see [`product_block`]).
pub(crate) fn add_product<F: Float>(a: Matrix<'_, F>, m: Matrix<'_, F>, out: MatrixMut<'_, F>) {
    product(a, m, out, Write::Add);
}

/// `out = a m` (see [`add_product`]), bit for bit `out` zeroed and then [`add_product`].
pub(crate) fn set_product<F: Float>(a: Matrix<'_, F>, m: Matrix<'_, F>, out: MatrixMut<'_, F>) {
    product(a, m, out, Write::Set);
}

/// [`add_product`] or [`set_product`], as `write` says.
pub(crate) fn product<F: Float>(
    a: Matrix<'_, F>,
    m: Matrix<'_, F>,
    mut out: MatrixMut<'_, F>,
    write: Write,
) {
    debug_assert!(a.columns == m.rows && a.rows == out.rows && m.columns == out.columns);
    if m.rows == 0 || m.columns == 0 {
        return empty_sums(&mut out, write);
    }
    // One bounds check here lets the compiler drop those of the loops below.
    let m = Matrix {
        data: &m.data[..m.rows * m.stride],
        ..m
    };
    let mut row = 0;
    while row < out.rows {
        let count = (out.rows - row).min(F::PRODUCT_ROWS);
        let (a, out) = (a.rows_from(row, count), out.rows_from(row, count));
        match count {
            1 => product_block::<F, 1>(a, m, out, write),
            2..=4 => product_block::<F, 4>(a, m, out, write),
            _ => product_block::<F, 8>(a, m, out, write),
        }
        row += count;
    }
}

/// A product whose every sum is empty: nothing to add, or zeros to write.
fn empty_sums<F: Float>(out: &mut MatrixMut<'_, F>, write: Write) {
    if write == Write::Set {
        out.rows_mut().for_each(|row| row.fill(F::zero()));
    }
}

/// The rows of `a` (at most `ROWS`) times `m`, added to `out` (or written over it, for
/// [`Write::Set`]), built together. (A single row runs
/// alone: repeated four times it costs more instructions than it saves waiting.)
///
/// Each tile of [`TILE`] columns is summed over the inner index in `ROWS` local arrays (the
/// registers), which all read the same tile of `m`, and added to `out` once. A block of fewer rows
/// still sums `ROWS` of them, repeating its last row, and writes back only its own: the chains run
/// side by side, so the spare ones cost little, and the block takes no slower path for the last
/// rows of a matrix. When `m`'s rows are padded to whole tiles (see [`padded`]) every tile runs at
/// full width and only the valid columns are written back; otherwise the last tile is a narrower
/// loop, which adds each term to `out` in turn (zeroed first for [`Write::Set`]).
fn product_block<F: Float, const ROWS: usize>(
    a: Matrix<'_, F>,
    m: Matrix<'_, F>,
    mut out: MatrixMut<'_, F>,
    write: Write,
) {
    let (count, inner, width) = (a.rows, m.rows, m.columns);
    // Sliced to exactly `inner`, the rows need no bounds check per inner step below.
    let a_rows: [&[F]; ROWS] = std::array::from_fn(|r| &a.row(r.min(count - 1))[..inner]);
    // Made once for every tile: counting the rows is a division.
    let m_rows = m.data.chunks_exact(m.stride);
    for start in (0..width).step_by(TILE) {
        let valid = (width - start).min(TILE);
        if start + TILE <= m.stride {
            let mut sums = [[F::zero(); TILE]; ROWS];
            for (k, m_row) in (0..inner).zip(m_rows.clone()) {
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
            for (sum, out_row) in sums.into_iter().zip(out.rows_mut()) {
                write_tile(&mut out_row[start..start + valid], sum, write);
            }
        } else {
            for (a_row, out_row) in a_rows.iter().zip(out.rows_mut()) {
                let out_tile = &mut out_row[start..start + valid];
                if write == Write::Set {
                    out_tile.fill(F::zero());
                }
                for (&weight, m_row) in a_row.iter().zip(m_rows.clone()) {
                    for (out, &x) in out_tile.iter_mut().zip(&m_row[start..start + valid]) {
                        *out += weight * x;
                    }
                }
            }
        }
    }
}

/// `out += sum[..out.len()]`, or for [`Write::Set`] `out = 0 + sum[..out.len()]` (what adding to
/// zeros gives: a sum of -0 becomes +0). Seen as a whole tile (a fixed-size array) the additions
/// become a few vector adds. A shorter `out` reads the sum through a reference, from memory: were
/// the lanes of the value picked out one by one, the compiler would split the sum into pieces of
/// several widths for the whole of the loop that builds it.
#[inline(always)]
fn write_tile<F: Float>(out: &mut [F], sum: [F; TILE], write: Write) {
    match <&mut [F; TILE]>::try_from(&mut *out) {
        Ok(tile) => write_elementwise(tile, sum, write),
        Err(_) => write_narrow_tile(out, &sum, write),
    }
}

/// The last, narrower tile of a row, apart so that the loop building the sum keeps it whole.
#[inline(never)]
fn write_narrow_tile<F: Float>(out: &mut [F], sum: &[F; TILE], write: Write) {
    let start = |out: &F| if write == Write::Add { *out } else { F::zero() };
    for (out, &sum) in out.iter_mut().zip(sum) {
        *out = start(out) + sum;
    }
}

#[inline(always)]
fn write_elementwise<F: Float>(out: &mut [F; TILE], sum: [F; TILE], write: Write) {
    match write {
        Write::Add => out.iter_mut().zip(sum).for_each(|(out, sum)| *out += sum),
        Write::Set => *out = sum.map(|sum| F::zero() + sum),
    }
}

/// `out += a^T b` for `a [rows, a_columns]`, `b [rows, width]` and `out [a_columns, width]`: the
/// outer products of matching rows, summed (the weight gradient of a linear layer). Row `i` of
/// `out` gains `a[r, i] b[r]` for each `r` in turn, each term added to `out` as it comes.
///
/// Updated in place, one outer product after another, each row of `out` would be read and written
/// once per row of `b` (from L2, once `out` outgrows L1). So blocks of `out` are built in registers
/// (see [`add_outer_products_blocked`]): rows of at least [`GROUP`] columns a group of tiles of one
/// row at a time, narrower ones a tile of several rows at a time, and the last rows short of such
/// a block a tile of one row at a time. What is left (the last columns short of a tile or group)
/// is updated in place.
pub(crate) fn add_transposed_product<F: Float>(
    a: Matrix<'_, F>,
    b: Matrix<'_, F>,
    out: MatrixMut<'_, F>,
) {
    transposed_product(a, b, out, Write::Add);
}

/// [`add_transposed_product`], or for [`Write::Set`] `out = a^T b`, bit for bit `out` zeroed and
/// then [`add_transposed_product`].
pub(crate) fn transposed_product<F: Float>(
    a: Matrix<'_, F>,
    b: Matrix<'_, F>,
    mut out: MatrixMut<'_, F>,
    write: Write,
) {
    debug_assert!(a.rows == b.rows && a.columns == out.rows && b.columns == out.columns);
    // No rows add nothing (and the blocks below would slice past the end of an empty `a`).
    if a.rows == 0 || a.columns == 0 || b.columns == 0 {
        return empty_sums(&mut out, write);
    }
    let (width, all) = (b.columns, 0..a.columns);
    let columns = if width >= GROUP {
        let grouped = width / GROUP * GROUP;
        add_outer_products_blocked::<F, 1, GROUP>(a, b, &mut out, all, grouped, write);
        grouped
    } else {
        let tiled = width / TILE * TILE;
        if tiled > 0 {
            let blocked = match F::PRODUCT_ROWS {
                8 => add_outer_products_blocked::<F, 8, TILE>(a, b, &mut out, all, tiled, write),
                _ => add_outer_products_blocked::<F, 4, TILE>(a, b, &mut out, all, tiled, write),
            };
            let rest = blocked..a.columns;
            add_outer_products_blocked::<F, 1, TILE>(a, b, &mut out, rest, tiled, write);
        }
        tiled
    };
    if columns < width {
        if write == Write::Set {
            out.rows_mut()
                .for_each(|row| row[columns..].fill(F::zero()));
        }
        add_outer_products_in_place(a, b, &mut out, 0..a.columns, columns);
    }
}

/// The columns of one row of `out` that [`add_outer_products_blocked`] keeps in registers for wide
/// rows: 8 AVX-512 registers of `f32`, 16 of `f64`, each its own chain of adds, so they overlap.
const GROUP: usize = 8 * TILE;

/// Columns `0..columns` (a multiple of `WIDTH`) of the first `ROWS * (out_rows.len() / ROWS)` rows
/// of `out_rows` in [`add_transposed_product`]; returns where those rows end. A block of `ROWS`
/// rows of `WIDTH` columns of `out` is loaded into local arrays (the registers), gains every outer
/// product there, each row its own chains of adds, and is stored once. The rows of a block are
/// `spacing = out_rows.len() / ROWS` apart, and so are their weights in a row of `a`: side by
/// side, the compiler would vectorise across the weights instead, with gathers and scatters (10x
/// slower). Each sum starts from `out` and adds the rows of `b` in order, as the in-place update
/// does, so the results are the same to the last bit ([`Write::Set`] starts from zeros instead).
fn add_outer_products_blocked<F: Float, const ROWS: usize, const WIDTH: usize>(
    a: Matrix<'_, F>,
    b: Matrix<'_, F>,
    out: &mut MatrixMut<'_, F>,
    out_rows: std::ops::Range<usize>,
    columns: usize,
    write: Write,
) -> usize {
    let spacing = out_rows.len() / ROWS;
    for first in out_rows.start..out_rows.start + spacing {
        let out_rows: [usize; ROWS] = std::array::from_fn(|j| first + j * spacing);
        for start in (0..columns).step_by(WIDTH) {
            let mut sums: [[F; WIDTH]; ROWS] = match write {
                Write::Add => std::array::from_fn(|j| *block(&out.row(out_rows[j])[start..])),
                Write::Set => [[F::zero(); WIDTH]; ROWS],
            };
            for (a_row, b_row) in a.data.chunks(a.stride).zip(b.rows()) {
                let b_block: &[F; WIDTH] = block(&b_row[start..]);
                for (sum, &row) in sums.iter_mut().zip(&out_rows) {
                    let weight = a_row[row];
                    for (sum, &x) in sum.iter_mut().zip(b_block) {
                        *sum += weight * x;
                    }
                }
            }
            for (sum, &row) in sums.iter().zip(&out_rows) {
                out.row(row)[start..start + WIDTH].copy_from_slice(sum);
            }
        }
    }
    out_rows.start + ROWS * spacing
}

/// The first `WIDTH` elements of `row`, as an array (whose length the compiler knows).
#[inline(always)]
fn block<F, const WIDTH: usize>(row: &[F]) -> &[F; WIDTH] {
    row[..WIDTH]
        .try_into()
        .expect("the row holds a whole block")
}

/// Rows `out_rows` and columns `first..` of [`add_transposed_product`], updated in place by one
/// outer product after another.
fn add_outer_products_in_place<F: Float>(
    a: Matrix<'_, F>,
    b: Matrix<'_, F>,
    out: &mut MatrixMut<'_, F>,
    out_rows: std::ops::Range<usize>,
    first: usize,
) {
    for (a_row, b_row) in a.rows().zip(b.rows()) {
        let b_row = &b_row[first..];
        for i in out_rows.clone() {
            let weight = a_row[i];
            let out_row = &mut out.row(i)[first..];
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

/// The source rows [`transpose_into`] moves together: each column of a block of this many rows
/// becomes one contiguous run of the output, which the compiler can store as a vector.
const TRANSPOSE_BLOCK: usize = 8;

/// Writes the transpose of `m [rows, columns]` (its rows side by side) into `out [columns, rows]`.
pub(crate) fn transpose_into<F: Float>(m: Matrix<'_, F>, mut out: MatrixMut<'_, F>) {
    debug_assert!(m.rows == out.columns && m.columns == out.rows && m.stride == m.columns);
    let columns = m.columns;
    if columns == 0 {
        return;
    }
    let mut blocks = m.data[..m.rows * columns].chunks_exact(TRANSPOSE_BLOCK * columns);
    for (block_index, block) in (&mut blocks).enumerate() {
        let start = block_index * TRANSPOSE_BLOCK;
        let block: [&[F]; TRANSPOSE_BLOCK] =
            std::array::from_fn(|i| &block[i * columns..][..columns]);
        for (c, out_row) in out.rows_mut().enumerate() {
            let out_run = &mut out_row[start..start + TRANSPOSE_BLOCK];
            for (out, row) in out_run.iter_mut().zip(&block) {
                *out = row[c];
            }
        }
    }
    let done = m.rows - blocks.remainder().len() / columns;
    for (r, row) in (done..m.rows).zip(blocks.remainder().chunks_exact(columns)) {
        for (&x, out_row) in row.iter().zip(out.rows_mut()) {
            out_row[r] = x;
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

/// `out += a b^T` for `a [rows, inner]`, `b [columns, inner]` and `out [rows, columns]`: each
/// output element is a [`dot`] product of two rows (only the rarely used `matmul` backward needs
/// it).
pub(crate) fn add_a_times_b_transposed<F: Float>(
    a: Matrix<'_, F>,
    b: Matrix<'_, F>,
    mut out: MatrixMut<'_, F>,
) {
    debug_assert!(a.columns == b.columns && a.rows == out.rows && b.rows == out.columns);
    if a.columns == 0 {
        return;
    }
    for r in 0..a.rows {
        let (a_row, out_row) = (a.row(r), out.row(r));
        for (c, out) in out_row.iter_mut().enumerate() {
            *out += dot(a_row, b.row(c));
        }
    }
}
