//! Each optimised kernel against its textbook loop in [`reference`], over random shapes weighted
//! towards the awkward ones: empty and single rows and columns, one short of and one past a tile
//! and a block of rows, odd inner lengths, blocks of columns of wider matrices, padded rows.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{Matrix, MatrixMut, TILE, Write, padded, reference};
use crate::Float;

/// Lengths for any axis: the edges of a tile (`TILE - 1`, `TILE`, `TILE + 1`, two tiles and one)
/// and of the blocks of 4 and 8 rows, small odd ones, and any length up to past four tiles.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => prop::sample::select(vec![0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 27, 33]),
        1 => 0usize..70,
    ]
}

/// `count` numbers in [-1, 1) from `seed` (xorshift: reproducible from the printed seed, and no
/// structure the kernels could share with the reference).
fn numbers<F: Float>(count: usize, seed: u64) -> Vec<F> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            F::from_f64((state >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        })
        .collect()
}

/// `x` as an `f64` (`Float`'s conversion, not `ToPrimitive`'s fallible one).
fn wide<F: Float>(x: F) -> f64 {
    Float::to_f64(x)
}

/// Both slices hold the same bits: the kernel summed every element in the reference's order.
fn assert_same_bits<F: Float>(actual: &[F], expected: &[F]) -> Result<(), TestCaseError> {
    for (i, (x, y)) in actual.iter().zip(expected).enumerate() {
        prop_assert!(
            wide(*x).to_bits() == wide(*y).to_bits(),
            "element {i}: {x} vs {y}"
        );
    }
    prop_assert_eq!(actual.len(), expected.len());
    Ok(())
}

/// Both slices agree within the bound of summing the same terms in another order. Each element
/// adds `terms` numbers (its start and the products, which both sides round alike); recursive
/// summation in any order is within `γ = terms ε/2 / (1 - terms ε/2)` of the exact sum times the
/// sum of the numbers' magnitudes, so two orders differ by at most twice that, which
/// `(terms + 1) ε` covers. `magnitudes[i]` is that sum of magnitudes for element `i`.
fn assert_close<F: Float>(
    actual: &[F],
    expected: &[F],
    magnitudes: &[f64],
    terms: usize,
) -> Result<(), TestCaseError> {
    let epsilon = wide(F::epsilon());
    for (i, ((x, y), magnitude)) in actual.iter().zip(expected).zip(magnitudes).enumerate() {
        let bound = (terms + 1) as f64 * epsilon * magnitude;
        let difference = (wide(*x) - wide(*y)).abs();
        prop_assert!(
            difference <= bound,
            "element {i}: {x} vs {y} (bound {bound})"
        );
    }
    prop_assert_eq!(actual.len(), expected.len());
    Ok(())
}

/// `add_product` of `a [rows, inner]` (a block of columns of a wider matrix) and `m [inner,
/// width]` (its rows padded to whole tiles, the padding NaN, or not padded), into `out` zero or not.
fn check_product<F: Float>(
    (rows, inner, width): (usize, usize, usize),
    padded_m: bool,
    zero_start: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (a_stride, a_first) = (inner + 3, 2);
    let a_data = numbers::<F>(rows * a_stride + a_first, seed);
    let a = Matrix::new(&a_data[a_first..], rows, inner).with_stride(a_stride);
    let m_stride = if padded_m { padded(width) } else { width };
    let mut m_data = numbers::<F>(inner * m_stride, seed + 1);
    for (i, x) in m_data.iter_mut().enumerate() {
        if i % m_stride.max(1) >= width {
            *x = F::nan();
        }
    }
    let m = Matrix::new(&m_data, inner, width).with_stride(m_stride);
    let start = if zero_start {
        vec![F::zero(); rows * width]
    } else {
        numbers::<F>(rows * width, seed + 2)
    };
    let (mut actual, mut expected) = (start.clone(), start.clone());
    super::add_product(a, m, MatrixMut::new(&mut actual, rows, width));
    reference::add_product(a, m, MatrixMut::new(&mut expected, rows, width));
    if zero_start || padded_m {
        // Whole tiles sum from zero over the inner index in order and add to `out` once, as the
        // reference does (from a zero `out`, so does the narrow last tile).
        assert_same_bits(&actual, &expected)
    } else {
        // The narrow last tile of an unpadded `m` adds each term to `out` in turn instead.
        let mut magnitudes: Vec<f64> = start.iter().map(|&x| wide(x).abs()).collect();
        for r in 0..rows {
            for c in 0..width {
                for k in 0..inner {
                    let term = a_data[a_first + r * a_stride + k] * m_data[k * m_stride + c];
                    magnitudes[r * width + c] += wide(term).abs();
                }
            }
        }
        assert_close(&actual, &expected, &magnitudes, inner + 1)
    }
}

/// `add_transposed_product` of `a [rows, a_columns]` (a block of columns of a wider matrix) and
/// `b [rows, width]`, into an `out` that already holds numbers.
fn check_transposed_product<F: Float>(
    (rows, a_columns, width): (usize, usize, usize),
    seed: u64,
) -> Result<(), TestCaseError> {
    let (a_stride, a_first) = (a_columns + 5, 3);
    let a_data = numbers::<F>(rows * a_stride + a_first, seed);
    let a = Matrix::new(&a_data[a_first..], rows, a_columns).with_stride(a_stride);
    let b_data = numbers::<F>(rows * width, seed + 1);
    let b = Matrix::new(&b_data, rows, width);
    let start = numbers::<F>(a_columns * width, seed + 2);
    let (mut actual, mut expected) = (start.clone(), start);
    super::add_transposed_product(a, b, MatrixMut::new(&mut actual, a_columns, width));
    reference::add_transposed_product(a, b, MatrixMut::new(&mut expected, a_columns, width));
    // Every kernel path adds the outer products to `out` in the order of the rows.
    assert_same_bits(&actual, &expected)
}

/// `set_product` and `transposed_product` with `Write::Set` write over an `out` of NaN (which they must never
/// read) exactly what the triple loops add to zeros.
fn check_set_products<F: Float>(
    (rows, inner, width): (usize, usize, usize),
    seed: u64,
) -> Result<(), TestCaseError> {
    let a_data = numbers::<F>(rows * inner, seed);
    let a = Matrix::new(&a_data, rows, inner);
    let m_data = numbers::<F>(inner * width, seed + 1);
    let m = Matrix::new(&m_data, inner, width);
    let (mut actual, mut expected) = (vec![F::nan(); rows * width], vec![F::zero(); rows * width]);
    super::set_product(a, m, MatrixMut::new(&mut actual, rows, width));
    reference::add_product(a, m, MatrixMut::new(&mut expected, rows, width));
    assert_same_bits(&actual, &expected)?;
    // `a [rows, inner]` and `b [rows, width]` give `out [inner, width]`.
    let b_data = numbers::<F>(rows * width, seed + 2);
    let b = Matrix::new(&b_data, rows, width);
    let (mut actual, mut expected) = (
        vec![F::nan(); inner * width],
        vec![F::zero(); inner * width],
    );
    super::transposed_product(a, b, MatrixMut::new(&mut actual, inner, width), Write::Set);
    reference::add_transposed_product(a, b, MatrixMut::new(&mut expected, inner, width));
    assert_same_bits(&actual, &expected)
}

/// `add_a_times_b_transposed` of `a [rows, inner]` and `b [columns, inner]` into numbers.
fn check_a_times_b_transposed<F: Float>(
    (rows, inner, columns): (usize, usize, usize),
    seed: u64,
) -> Result<(), TestCaseError> {
    let a_data = numbers::<F>(rows * inner, seed);
    let b_data = numbers::<F>(columns * inner, seed + 1);
    let (a, b) = (
        Matrix::new(&a_data, rows, inner),
        Matrix::new(&b_data, columns, inner),
    );
    let start = numbers::<F>(rows * columns, seed + 2);
    let (mut actual, mut expected) = (start.clone(), start.clone());
    super::add_a_times_b_transposed(a, b, MatrixMut::new(&mut actual, rows, columns));
    reference::add_a_times_b_transposed(a, b, MatrixMut::new(&mut expected, rows, columns));
    let mut magnitudes: Vec<f64> = start.iter().map(|&x| wide(x).abs()).collect();
    for r in 0..rows {
        for c in 0..columns {
            let terms = a.row(r).iter().zip(b.row(c));
            magnitudes[r * columns + c] += terms.map(|(&x, &y)| wide(x * y).abs()).sum::<f64>();
        }
    }
    // The dot products sum in eight lanes, not in order.
    assert_close(&actual, &expected, &magnitudes, inner + 1)
}

/// `transpose_into` of `m [rows, columns]` into columns `offset..offset + rows` of a wider
/// matrix of NaN, whose other columns must stay NaN.
fn check_transpose<F: Float>(rows: usize, columns: usize, seed: u64) -> Result<(), TestCaseError> {
    let (stride, offset) = (rows + 7, 4);
    let m_data = numbers::<F>(rows * columns, seed);
    let m = Matrix::new(&m_data, rows, columns);
    let (mut actual, mut expected) = (
        vec![F::nan(); (columns * stride).max(offset)],
        vec![F::nan(); (columns * stride).max(offset)],
    );
    fn block<F>(
        data: &mut [F],
        offset: usize,
        columns: usize,
        rows: usize,
        stride: usize,
    ) -> MatrixMut<'_, F> {
        MatrixMut::new(&mut data[offset..], columns, rows).with_stride(stride)
    }
    super::transpose_into(m, block(&mut actual, offset, columns, rows, stride));
    reference::transpose_into(m, block(&mut expected, offset, columns, rows, stride));
    assert_same_bits(&actual, &expected)
}

/// Widths for the outer products: any [`length`], or rows of one or two groups of
/// `8 * TILE` columns kept in registers and a remainder of tiles and single columns.
fn outer_width() -> impl Strategy<Value = usize> {
    prop_oneof![length(), 120usize..300]
}

fn shape() -> impl Strategy<Value = (usize, usize, usize)> {
    (length(), length(), length())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_product_kernel_matches_the_triple_loop(
        shape in shape(), padded_m: bool, zero_start: bool, seed: u64,
    ) {
        check_product::<f64>(shape, padded_m, zero_start, seed)?;
        check_product::<f32>(shape, padded_m, zero_start, seed)?;
    }

    #[test]
    fn the_outer_product_kernel_matches_the_triple_loop(shape in shape(), seed: u64) {
        check_transposed_product::<f64>(shape, seed)?;
        check_transposed_product::<f32>(shape, seed)?;
    }

    #[test]
    fn the_outer_products_added_and_written_match_the_triple_loops_over_many_rows(
        rows in length(), a_columns in 120usize..140, width in outer_width(), seed: u64,
    ) {
        // Enough rows of `out` for several blocks of spaced rows and a remainder, and rows wide
        // enough for the groups of columns kept in registers and their tiled remainder.
        let shape = (rows, a_columns, width);
        check_transposed_product::<f64>(shape, seed)?;
        check_transposed_product::<f32>(shape, seed)?;
        check_set_products::<f64>(shape, seed)?;
        check_set_products::<f32>(shape, seed)?;
    }

    #[test]
    fn the_writing_products_match_the_triple_loops_from_zero(shape in shape(), seed: u64) {
        check_set_products::<f64>(shape, seed)?;
        check_set_products::<f32>(shape, seed)?;
    }

    #[test]
    fn the_product_with_a_transposed_right_matches_the_triple_loop(shape in shape(), seed: u64) {
        check_a_times_b_transposed::<f64>(shape, seed)?;
        check_a_times_b_transposed::<f32>(shape, seed)?;
    }

    #[test]
    fn the_transpose_fills_only_its_columns(rows in length(), columns in length(), seed: u64) {
        check_transpose::<f64>(rows, columns, seed)?;
        check_transpose::<f32>(rows, columns, seed)?;
    }

    #[test]
    fn the_dot_product_matches_the_sum_in_order(length in length(), seed: u64) {
        let (a, b) = (numbers::<f64>(length, seed), numbers::<f64>(length, seed + 1));
        let magnitude: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        // Eight lanes and a tail, added in a tree: another order of the same terms.
        assert_close(&[super::dot(&a, &b)], &[reference::dot(&a, &b)], &[magnitude], length)?;
    }
}

#[test]
fn a_padded_tile_is_what_the_row_update_reads() {
    // The padded length is the contract between `transpose_into`'s callers and `add_product`'s
    // whole-tile path.
    assert_eq!(
        [padded(0), padded(1), padded(TILE), padded(TILE + 1)],
        [0, TILE, TILE, 2 * TILE]
    );
}
