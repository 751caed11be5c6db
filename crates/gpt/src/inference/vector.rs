//! The kernels of the decode step, on contiguous slices, for a batch of rows at a time.
//!
//! Every sum that microgpt.py writes as a Python `sum(...)` runs left to right here too (a linear
//! layer's sum over its inputs, rmsnorm's sum of squares, a head's dot product, the attention-weighted
//! sum of values), so in `f64` the decode step computes what microgpt.py computes, operation for
//! operation. The speed comes from the order of the loops, not from reordering sums: a linear layer
//! keeps a tile of outputs of a few rows in registers and walks its inputs once, so each weight is
//! loaded once per few rows and the compiler vectorises across the outputs.
//!
//! In `f32` (a precision microgpt.py does not have) two shortcuts apply: rmsnorm's `(ms + 1e-5) **
//! -0.5` is `1 / sqrt(ms + 1e-5)` rather than a call to `powf`, and attention's exponentials use a
//! polynomial ([`Float::exp_in_place`]) that the compiler vectorises, within 2 units in the last place of
//! the correctly rounded value.

use std::any::TypeId;

use tape::Float;

/// Whether `F` is `f32` (a constant once monomorphised).
pub(crate) fn is_single<F: Float>() -> bool {
    TypeId::of::<F>() == TypeId::of::<f32>()
}

/// How many outputs a linear layer computes at once, per row: a register tile. Sixteen `f32` are
/// four SSE registers or one AVX-512 register; eight `f64` are four SSE registers.
pub(crate) fn tile_width<F: Float>() -> usize {
    if is_single::<F>() { 16 } else { 8 }
}

/// A weight matrix `[outputs, inputs]` stored for [`linear`]: transposed and cut into tiles of
/// [`tile_width`] outputs, `[tile][input][output within the tile]`, the last tile padded with zeros.
#[derive(Clone, Debug, Default)]
pub(crate) struct Packed<F> {
    inputs: usize,
    outputs: usize,
    data: Vec<F>,
}

impl<F: Float> Packed<F> {
    /// Room for a matrix of `outputs` rows of `inputs` columns; [`Packed::pack`] fills it.
    pub(crate) fn new(outputs: usize, inputs: usize) -> Self {
        let tiles = outputs.div_ceil(tile_width::<F>());
        Packed {
            inputs,
            outputs,
            data: vec![F::zero(); tiles * inputs * tile_width::<F>()],
        }
    }

    /// Copies the row-major `matrix [outputs, inputs]` in. Allocates nothing.
    pub(crate) fn pack(&mut self, matrix: &[F]) {
        assert_eq!(matrix.len(), self.outputs * self.inputs);
        let width = tile_width::<F>();
        for (tile, block) in self.data.chunks_exact_mut(self.inputs * width).enumerate() {
            for (input, lanes) in block.chunks_exact_mut(width).enumerate() {
                for (lane, value) in lanes.iter_mut().enumerate() {
                    let output = tile * width + lane;
                    *value = if output < self.outputs {
                        matrix[output * self.inputs + input]
                    } else {
                        F::zero()
                    };
                }
            }
        }
    }
}

/// `destination.copy_from_slice(source)`, as a few vector moves when the rows are 16 wide (the
/// seed's and Karpathy's `n_embd`): a call to `memcpy` for a length known only at run time costs
/// more than copying 16 values, and the decode step copies several rows per token.
#[inline(always)]
pub(crate) fn copy_row<F: Copy>(destination: &mut [F], source: &[F]) {
    const WIDTH: usize = 16;
    if destination.len() == WIDTH && source.len() == WIDTH {
        destination[..WIDTH].copy_from_slice(&source[..WIDTH]);
    } else {
        destination.copy_from_slice(source);
    }
}

/// What [`linear`] does with each product `x W^T` before it lands in `out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// `out = x W^T`.
    Store,
    /// `out = x W^T + out` (a linear layer followed by a residual connection).
    Add,
    /// `out = relu(x W^T)`.
    Relu,
}

/// `out[r] = x[r] W^T` for every row `r` of the row-major `x [rows, inputs]` and
/// `out [rows, outputs]`, then the epilogue. Each output is `sum(w[o][i] * x[r][i])` over `i` left
/// to right, starting from zero, as microgpt.py's `linear` sums.
///
/// Four rows go through a tile together: each output's sum is a chain of dependent additions, and
/// four independent chains per tile keep the vector adder busy where two left it waiting on the
/// previous addition.
pub(crate) fn linear<F: Float>(weights: &Packed<F>, x: &[F], out: &mut [F], epilogue: Epilogue) {
    if is_single::<F>() {
        linear_tiled::<F, 16, 4>(weights, x, out, epilogue);
    } else {
        linear_tiled::<F, 8, 4>(weights, x, out, epilogue);
    }
}

fn linear_tiled<F: Float, const WIDTH: usize, const ROWS: usize>(
    weights: &Packed<F>,
    x: &[F],
    out: &mut [F],
    epilogue: Epilogue,
) {
    let Packed {
        inputs, outputs, ..
    } = *weights;
    debug_assert_eq!(tile_width::<F>(), WIDTH);
    let (tiles, _) = weights.data.as_chunks::<WIDTH>();
    let rows = x.len() / inputs;
    assert!(x.len() == rows * inputs && out.len() == rows * outputs);
    let full = rows / ROWS * ROWS;
    let (x_blocks, x_rest) = x.split_at(full * inputs);
    let (out_blocks, out_rest) = out.split_at_mut(full * outputs);
    for (x, out) in x_blocks
        .chunks_exact(ROWS * inputs)
        .zip(out_blocks.chunks_exact_mut(ROWS * outputs))
    {
        rows_tiled::<F, WIDTH, ROWS>(tiles, inputs, outputs, x, out, epilogue);
    }
    for (x, out) in x_rest
        .chunks_exact(inputs)
        .zip(out_rest.chunks_exact_mut(outputs))
    {
        rows_tiled::<F, WIDTH, 1>(tiles, inputs, outputs, x, out, epilogue);
    }
}

/// [`linear`] for exactly `ROWS` rows.
#[inline(always)]
fn rows_tiled<F: Float, const WIDTH: usize, const ROWS: usize>(
    tiles: &[[F; WIDTH]],
    inputs: usize,
    outputs: usize,
    x: &[F],
    out: &mut [F],
    epilogue: Epilogue,
) {
    for (tile, weights) in tiles.chunks_exact(inputs).enumerate() {
        // Rows cut to the length of `weights`, so that indexing them by input needs no check.
        let x: [&[F]; ROWS] = std::array::from_fn(|row| &x[row * inputs..][..weights.len()]);
        let mut sums = [[F::zero(); WIDTH]; ROWS];
        for (input, weight) in weights.iter().enumerate() {
            for row in 0..ROWS {
                let x = x[row][input];
                for lane in 0..WIDTH {
                    sums[row][lane] += weight[lane] * x;
                }
            }
        }
        let start = tile * WIDTH;
        let valid = WIDTH.min(outputs - start);
        for (row, sums) in sums.iter().enumerate() {
            let out = &mut out[row * outputs + start..][..valid];
            let sums = &sums[..valid];
            match epilogue {
                Epilogue::Store => out.copy_from_slice(sums),
                Epilogue::Add => {
                    for (out, &sum) in out.iter_mut().zip(sums) {
                        *out = sum + *out;
                    }
                }
                Epilogue::Relu => {
                    for (out, &sum) in out.iter_mut().zip(sums) {
                        *out = sum.max(F::zero());
                    }
                }
            }
        }
    }
}

/// `out = x / sqrt(mean(x * x) + 1e-5)` for one row, computed as microgpt.py does: the mean is a
/// multiplication by `len ** -1` and the scale is `(ms + 1e-5) ** -0.5` (in `f32`,
/// `1 / sqrt(ms + 1e-5)`).
pub(crate) fn rmsnorm<F: Float>(x: &[F], out: &mut [F]) {
    let scale = rms_scale(x);
    for (out, &x) in out.iter_mut().zip(x) {
        *out = x * scale;
    }
}

/// [`rmsnorm`] of each row of the row-major `x`, rows of `width`, into the rows of `out`.
pub(crate) fn rmsnorm_rows<F: Float>(x: &[F], out: &mut [F], width: usize) {
    for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        rmsnorm(x, out);
    }
}

/// [`rmsnorm`] in place.
pub(crate) fn rmsnorm_in_place<F: Float>(x: &mut [F]) {
    let scale = rms_scale(x);
    for x in x.iter_mut() {
        *x *= scale;
    }
}

fn rms_scale<F: Float>(x: &[F]) -> F {
    let inverse_len = F::from_f64((x.len() as f64).powf(-1.0));
    let mean_square = x.iter().fold(F::zero(), |sum, &x| sum + x * x) * inverse_len;
    let shifted = mean_square + F::from_f64(1e-5);
    if is_single::<F>() {
        F::one() / shifted.sqrt()
    } else {
        shifted.powf(F::from_f64(-0.5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_is_a_left_to_right_sum_for_every_shape_and_epilogue() {
        for (outputs, inputs, rows) in [(1, 1, 1), (5, 6, 3), (16, 16, 4), (27, 16, 5), (17, 64, 2)]
        {
            let matrix: Vec<f64> = (0..outputs * inputs)
                .map(|i| ((i * 7 % 13) as f64 - 6.0) * 0.37)
                .collect();
            let x: Vec<f64> = (0..rows * inputs)
                .map(|i| ((i * 5 % 11) as f64 - 5.0) * 0.21)
                .collect();
            let mut packed = Packed::new(outputs, inputs);
            packed.pack(&matrix);
            for epilogue in [Epilogue::Store, Epilogue::Add, Epilogue::Relu] {
                let start: Vec<f64> = (0..rows * outputs).map(|i| i as f64 * 0.5).collect();
                let mut out = start.clone();
                linear(&packed, &x, &mut out, epilogue);
                for r in 0..rows {
                    for o in 0..outputs {
                        let sum = (0..inputs).fold(0.0, |sum, i| {
                            sum + matrix[o * inputs + i] * x[r * inputs + i]
                        });
                        let expected = match epilogue {
                            Epilogue::Store => sum,
                            Epilogue::Add => sum + start[r * outputs + o],
                            Epilogue::Relu => sum.max(0.0),
                        };
                        // The same operations in the same order: equal to the bit.
                        assert_eq!(
                            out[r * outputs + o],
                            expected,
                            "{outputs}x{inputs}, row {r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rmsnorm_gives_unit_mean_square() {
        let mut x = [3.0f64, 4.0];
        rmsnorm_in_place(&mut x);
        let mean_square = (x[0] * x[0] + x[1] * x[1]) / 2.0;
        assert!((mean_square - 12.5 / (12.5 + 1e-5)).abs() < 1e-12);
    }
}
