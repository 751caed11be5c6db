//! Axis reductions, softmax and log-softmax along any axis, LayerNorm, RMSNorm with a gain and
//! dropout: their backwards against finite differences on shapes of one to four axes (every axis,
//! keepdim both ways, an input used twice); their values against independent oracles (ndarray's
//! own axis reductions, per-row loops written out here, hand-worked numbers); and every fused op
//! against its composition from primitive ops, values and gradients, to 1e-12 relative.

mod common;
mod composition;

use common::{array, check};
use composition::{close, same_as_composition};
use ndarray::{Array, ArrayD, Axis, IxDyn, arr0, arr1, arr2};
use proptest::collection::vec;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use tape::{Tape, TapeError, Var};

/// A shape of one to four axes (each of length 1 to 4, or 1 to 3 with four axes) and one of its
/// axes.
fn shape_and_axis() -> impl Strategy<Value = (Vec<usize>, usize)> {
    (1usize..=4).prop_flat_map(|axes| {
        let longest: usize = if axes == 4 { 3 } else { 4 };
        (vec(1..=longest, axes), 0..axes)
    })
}

/// `shape` reduced along `axis`: without it, or with length 1 if `keepdim`.
fn reduced(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut shape = shape.to_vec();
    if keepdim {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    shape
}

/// An input of a random shape, one of its axes, and projection weights for the input's shape and
/// for its reduction along the axis.
fn input_axis_weights(
    range: std::ops::Range<f64>,
    keepdim: bool,
) -> impl Strategy<Value = (ArrayD<f64>, usize, ArrayD<f64>, ArrayD<f64>)> {
    shape_and_axis().prop_flat_map(move |(shape, axis)| {
        (
            array(shape.clone(), range.clone()),
            Just(axis),
            array(shape.clone(), -1.0..1.0),
            array(reduced(&shape, axis, keepdim), -1.0..1.0),
        )
    })
}

/// `exp(-log(v) / 2) = 1 / sqrt(v)`, from primitives only.
fn inverse_sqrt(tape: &mut Tape<f64>, v: Var) -> Result<Var, TapeError> {
    let log = tape.log(v)?;
    let half = tape.scale(log, -0.5)?;
    tape.exp(half)
}

/// `v + epsilon`, the epsilon a broadcast scalar constant.
fn plus_constant(tape: &mut Tape<f64>, v: Var, epsilon: f64) -> Result<Var, TapeError> {
    let epsilon = tape.constant(arr0(epsilon));
    tape.add(v, epsilon)
}

/// `x - max(x)` along `axis`, from primitives.
fn shifted(tape: &mut Tape<f64>, x: Var, axis: usize) -> Result<Var, TapeError> {
    let max = tape.max_axis(x, axis, true)?;
    tape.sub(x, max)
}

/// `exp(x - max) / sum(exp(x - max))` along `axis`, from primitives.
fn composed_softmax(tape: &mut Tape<f64>, x: Var, axis: usize) -> Result<Var, TapeError> {
    let shifted = shifted(tape, x, axis)?;
    let exp = tape.exp(shifted)?;
    let total = tape.sum_axis(exp, axis, true)?;
    tape.div(exp, total)
}

/// `x - max - ln(sum(exp(x - max)))` along `axis`, from primitives.
fn composed_log_softmax(tape: &mut Tape<f64>, x: Var, axis: usize) -> Result<Var, TapeError> {
    let shifted = shifted(tape, x, axis)?;
    let exp = tape.exp(shifted)?;
    let total = tape.sum_axis(exp, axis, true)?;
    let log_total = tape.log(total)?;
    tape.sub(shifted, log_total)
}

/// Rows whose (biased) variance plus epsilon is at least 0.01, so that LayerNorm's curvature stays
/// small enough for central differences with a step of 1e-5.
fn rows_spread_out(x: &ArrayD<f64>, epsilon: f64) -> bool {
    let width = *x.shape().last().unwrap();
    x.as_slice().unwrap().chunks(width).all(|row| {
        let mean = row.iter().sum::<f64>() / width as f64;
        let variance = row.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / width as f64;
        width == 1 || variance + epsilon >= 0.01
    })
}

fn epsilons() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1e-5), 0.01..1.0f64]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sum_and_mean_axis_backward(
        keepdim in any::<bool>(),
        (x, axis, weights, reduced_weights) in input_axis_weights(-2.0..2.0, true),
    ) {
        // The reduced weights were drawn with the axis kept; without it they have the same elements.
        let reduced_weights = reduced_weights
            .into_shape_with_order(IxDyn(&reduced(x.shape(), axis, keepdim)))
            .unwrap();
        let input = std::slice::from_ref(&x);
        check(input, &reduced_weights, |tape, v| tape.sum_axis(v[0], axis, keepdim))?;
        check(input, &reduced_weights, |tape, v| tape.mean_axis(v[0], axis, keepdim))?;
        // x used twice: in the kept sum that broadcasts back, and as the other factor.
        check(input, &weights, |tape, v| {
            let mean = tape.mean_axis(v[0], axis, true)?;
            tape.mul(mean, v[0])
        })?;
    }

    /// Distinct values at least 0.3 apart, so no step of the finite differences moves the arg-max.
    #[test]
    fn max_axis_backward_away_from_ties(
        keepdim in any::<bool>(),
        (x, axis, weights) in shape_and_axis().prop_flat_map(|(shape, axis)| {
            let len: usize = shape.iter().product();
            let order = Just((0..len).collect::<Vec<_>>()).prop_shuffle();
            (Just(shape.clone()), order, Just(axis), array(shape, -1.0..1.0))
        }).prop_map(|(shape, order, axis, weights)| {
            let values = order.iter().map(|&rank| 0.3 * rank as f64 - 5.0).collect();
            (ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap(), axis, weights)
        }),
        reduced_weight in -1.0..1.0f64,
    ) {
        let reduced_weights = ArrayD::from_elem(reduced(x.shape(), axis, keepdim), reduced_weight);
        let input = std::slice::from_ref(&x);
        check(input, &reduced_weights, |tape, v| tape.max_axis(v[0], axis, keepdim))?;
        check(input, &weights, |tape, v| {
            let max = tape.max_axis(v[0], axis, true)?;
            tape.mul(max, v[0])
        })?;
    }

    #[test]
    fn softmax_and_log_softmax_axis_backward((x, axis, weights, _) in input_axis_weights(-3.0..3.0, true)) {
        let input = std::slice::from_ref(&x);
        check(input, &weights, |tape, v| tape.softmax_axis(v[0], axis))?;
        check(input, &weights, |tape, v| tape.log_softmax(v[0], axis))?;
        // The input used twice: in the softmax and as the other factor.
        check(input, &weights, |tape, v| {
            let p = tape.softmax_axis(v[0], axis)?;
            tape.mul(p, v[0])
        })?;
        check(input, &weights, |tape, v| {
            let p = tape.log_softmax(v[0], axis)?;
            tape.mul(p, v[0])
        })?;
    }

    #[test]
    fn softmax_and_rms_norm_of_stacks_backward((x, _, weights, _) in input_axis_weights(-2.0..2.0, true)) {
        let input = std::slice::from_ref(&x);
        check(input, &weights, |tape, v| tape.softmax(v[0]))?;
        check(input, &weights, |tape, v| tape.rms_norm(v[0], None, 1e-5))?;
    }

    #[test]
    fn rms_norm_with_a_gain_backward(
        (x, gain, weights) in shape_and_axis().prop_flat_map(|(shape, _)| {
            let width = *shape.last().unwrap();
            (array(shape.clone(), -2.0..2.0), array(vec![width], -2.0..2.0), array(shape, -1.0..1.0))
        }),
        epsilon in epsilons(),
    ) {
        check(&[x.clone(), gain.clone()], &weights, |tape, v| tape.rms_norm(v[0], Some(v[1]), epsilon))?;
        // A vector that is its own gain: both uses add up.
        let vector = gain.clone();
        let vector_weights = array_like(&gain, 0.5);
        check(&[vector], &vector_weights, |tape, v| tape.rms_norm(v[0], Some(v[0]), epsilon))?;
    }

    #[test]
    fn layer_norm_backward(
        (x, gain, bias, weights) in shape_and_axis().prop_flat_map(|(shape, _)| {
            let width = *shape.last().unwrap();
            (
                array(shape.clone(), -2.0..2.0),
                array(vec![width], -2.0..2.0),
                array(vec![width], -2.0..2.0),
                array(shape, -1.0..1.0),
            )
        }),
        epsilon in epsilons(),
        (with_gain, with_bias) in (any::<bool>(), any::<bool>()),
    ) {
        prop_assume!(rows_spread_out(&x, epsilon));
        check(&[x.clone(), gain.clone(), bias.clone()], &weights, |tape, v| {
            let gain = with_gain.then_some(v[1]);
            let bias = with_bias.then_some(v[2]);
            tape.layer_norm(v[0], gain, bias, epsilon)
        })?;
        // x used twice (normalised and added back), and one vector as both gain and bias.
        check(&[x.clone(), gain], &weights, |tape, v| {
            let normed = tape.layer_norm(v[0], Some(v[1]), Some(v[1]), epsilon)?;
            tape.add(normed, v[0])
        })?;
    }

    /// The mask is drawn from a generator seeded afresh in every evaluation, so each finite
    /// difference sees the same mask.
    #[test]
    fn dropout_backward(
        (x, _, weights, _) in input_axis_weights(-2.0..2.0, true),
        p in prop_oneof![Just(0.0), 0.1..0.9f64],
        seed in any::<u64>(),
    ) {
        check(&[x], &weights, |tape, v| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let dropped = tape.dropout(v[0], p, &mut rng)?;
            tape.mul(dropped, v[0])
        })?;
    }

    /// ndarray's `sum_axis`, `mean_axis` and `fold_axis` are the oracle for the values.
    #[test]
    fn axis_reductions_equal_ndarrays((x, axis, _, _) in input_axis_weights(-2.0..2.0, true), keepdim in any::<bool>()) {
        let mut tape = Tape::new();
        let v = tape.constant(x.clone());
        let keep = |array: ArrayD<f64>| if keepdim { array.insert_axis(Axis(axis)) } else { array };
        let sum = tape.sum_axis(v, axis, keepdim).unwrap();
        let expected = keep(x.sum_axis(Axis(axis)));
        prop_assert_eq!(tape.value(sum).shape(), expected.shape());
        close(tape.value(sum).as_slice(), expected.as_slice().unwrap(), 1e-14).map_err(TestCaseError::fail)?;
        let mean = tape.mean_axis(v, axis, keepdim).unwrap();
        let expected = keep(x.mean_axis(Axis(axis)).unwrap());
        close(tape.value(mean).as_slice(), expected.as_slice().unwrap(), 1e-14).map_err(TestCaseError::fail)?;
        let max = tape.max_axis(v, axis, keepdim).unwrap();
        let expected = keep(x.fold_axis(Axis(axis), f64::NEG_INFINITY, |&m, &x| m.max(x)));
        prop_assert_eq!(tape.value(max), &expected, "a maximum is exact");
    }

    /// Along any axis, softmax and log-softmax give the same bits as the last-axis softmax of the
    /// array with that axis moved last (ndarray's `permuted_axes` does the move): the strided path
    /// does the same arithmetic in the same order as the row path.
    #[test]
    fn softmax_along_an_axis_is_the_row_softmax_of_the_permuted_array((x, axis, _, _) in input_axis_weights(-30.0..30.0, true)) {
        let last = x.ndim() - 1;
        let mut order: Vec<usize> = (0..x.ndim()).collect();
        order.swap(axis, last);
        let moved = x.clone().permuted_axes(IxDyn(&order)).as_standard_layout().into_owned();
        for precision in [Precision::F64, Precision::F32] {
            let (along, of_moved) = precision.softmaxes(&x, &moved, axis);
            for ((along, of_moved), name) in along.into_iter().zip(of_moved).zip(["softmax", "log_softmax"]) {
                let back = of_moved.permuted_axes(IxDyn(&order));
                prop_assert_eq!(&along, &back, "{} along axis {} in {:?}", name, axis, precision);
            }
        }
    }

    // Fused ops against their compositions from primitives.

    #[test]
    fn softmax_equals_exp_of_shifted_over_sum((x, axis, weights, _) in input_axis_weights(-3.0..3.0, true)) {
        let last = x.ndim() - 1;
        let input = std::slice::from_ref(&x);
        same_as_composition(input, &weights, &|t, v| t.softmax(v[0]), &|t, v| composed_softmax(t, v[0], last))?;
        same_as_composition(input, &weights, &|t, v| t.softmax_axis(v[0], axis), &|t, v| composed_softmax(t, v[0], axis))?;
        same_as_composition(input, &weights, &|t, v| t.log_softmax(v[0], axis), &|t, v| composed_log_softmax(t, v[0], axis))?;
    }

    #[test]
    fn rms_norm_equals_its_composition(
        (x, gain, weights) in shape_and_axis().prop_flat_map(|(shape, _)| {
            let width = *shape.last().unwrap();
            (array(shape.clone(), -2.0..2.0), array(vec![width], -2.0..2.0), array(shape, -1.0..1.0))
        }),
        epsilon in epsilons(),
    ) {
        let last = x.ndim() - 1;
        // x * (mean(x^2) + eps)^(-1/2) [* gain]
        let composed = move |t: &mut Tape<f64>, v: &[Var], gain: Option<Var>| {
            let square = t.mul(v[0], v[0])?;
            let mean_square = t.mean_axis(square, last, true)?;
            let shifted = plus_constant(t, mean_square, epsilon)?;
            let scale = inverse_sqrt(t, shifted)?;
            let normed = t.mul(v[0], scale)?;
            match gain { Some(gain) => t.mul(normed, gain), None => Ok(normed) }
        };
        let inputs = [x, gain];
        same_as_composition(&inputs, &weights, &|t, v| t.rms_norm(v[0], None, epsilon), &|t, v| composed(t, v, None))?;
        same_as_composition(&inputs, &weights, &|t, v| t.rms_norm(v[0], Some(v[1]), epsilon), &|t, v| composed(t, v, Some(v[1])))?;
    }

    #[test]
    fn layer_norm_equals_its_composition(
        (x, gain, bias, weights) in shape_and_axis().prop_flat_map(|(shape, _)| {
            let width = *shape.last().unwrap();
            (
                array(shape.clone(), -2.0..2.0),
                array(vec![width], -2.0..2.0),
                array(vec![width], -2.0..2.0),
                array(shape, -1.0..1.0),
            )
        }),
        epsilon in epsilons(),
    ) {
        let last = x.ndim() - 1;
        // (x - mean) * (mean((x - mean)^2) + eps)^(-1/2) * gain + bias
        let composed = move |t: &mut Tape<f64>, v: &[Var]| {
            let mean = t.mean_axis(v[0], last, true)?;
            let centred = t.sub(v[0], mean)?;
            let square = t.mul(centred, centred)?;
            let variance = t.mean_axis(square, last, true)?;
            let shifted = plus_constant(t, variance, epsilon)?;
            let scale = inverse_sqrt(t, shifted)?;
            let normed = t.mul(centred, scale)?;
            let scaled = t.mul(normed, v[1])?;
            t.add(scaled, v[2])
        };
        same_as_composition(&[x, gain, bias], &weights, &|t, v| t.layer_norm(v[0], Some(v[1]), Some(v[2]), epsilon), &composed)?;
    }

    /// dot is sum(mul) to the bit: the same products added in the same order.
    #[test]
    fn dot_equals_the_sum_of_the_product((a, b, _) in common::two_of_a_shape(-2.0..2.0)) {
        let mut tape = Tape::new();
        let (x, y) = (tape.parameter(a), tape.parameter(b));
        let dot = tape.dot(x, y).unwrap();
        let product = tape.mul(x, y).unwrap();
        let sum = tape.sum(product).unwrap();
        prop_assert_eq!(tape.scalar(dot).to_bits(), tape.scalar(sum).to_bits());
        let (fused, composed) = (tape.backward(dot).unwrap(), tape.backward(sum).unwrap());
        for var in [x, y] {
            prop_assert_eq!(fused.parameter(var), composed.parameter(var));
        }
    }
}

/// An array of `like`'s shape filled with `value`.
fn array_like(like: &ArrayD<f64>, value: f64) -> ArrayD<f64> {
    ArrayD::from_elem(like.shape(), value)
}

#[derive(Clone, Copy, Debug)]
enum Precision {
    F64,
    F32,
}

impl Precision {
    /// `[softmax_axis(x, axis), log_softmax(x, axis)]` and `[softmax(moved), log_softmax(moved,
    /// last)]`, computed in this precision and widened to f64 exactly.
    fn softmaxes(
        self,
        x: &ArrayD<f64>,
        moved: &ArrayD<f64>,
        axis: usize,
    ) -> (Vec<ArrayD<f64>>, Vec<ArrayD<f64>>) {
        match self {
            Precision::F64 => softmaxes_in(x.clone(), moved.clone(), axis, |x| x),
            Precision::F32 => softmaxes_in(
                x.mapv(|x| x as f32),
                moved.mapv(|x| x as f32),
                axis,
                f64::from,
            ),
        }
    }
}

fn softmaxes_in<F: tape::Float>(
    x: ArrayD<F>,
    moved: ArrayD<F>,
    axis: usize,
    widen: impl Fn(F) -> f64 + Copy,
) -> (Vec<ArrayD<f64>>, Vec<ArrayD<f64>>) {
    let mut tape = Tape::<F>::new();
    let last = x.ndim() - 1;
    let (x, moved) = (tape.constant(x), tape.constant(moved));
    let along = [tape.softmax_axis(x, axis), tape.log_softmax(x, axis)];
    let of_moved = [tape.softmax(moved), tape.log_softmax(moved, last)];
    let widened = |results: [Result<Var, TapeError>; 2]| {
        results
            .into_iter()
            .map(|var| tape.value(var.unwrap()).to_array().mapv(widen))
            .collect()
    };
    (widened(along), widened(of_moved))
}

#[test]
fn softmax_and_log_softmax_along_the_first_axis_by_hand() {
    // Columns [0, ln 3] and [ln 3, 0]: softmax [1/4, 3/4] and [3/4, 1/4].
    let mut tape = Tape::<f64>::new();
    let ln3 = 3f64.ln();
    let x = tape.constant(arr2(&[[0.0, ln3], [ln3, 0.0]]));
    let p = tape.softmax_axis(x, 0).unwrap();
    let expected = [0.25, 0.75, 0.75, 0.25];
    close(tape.value(p).as_slice(), &expected, 1e-15).unwrap();
    let log_p = tape.log_softmax(x, 0).unwrap();
    let expected = expected.map(f64::ln);
    close(tape.value(log_p).as_slice(), &expected, 1e-15).unwrap();
}

#[test]
fn log_softmax_stays_finite_where_the_log_of_softmax_is_not() {
    // [1000, 0]: the max is 1000, ln(1 + e^-1000) rounds to 0, so [0, -1000] exactly, where
    // ln(softmax) gives ln(0) = -inf for the second element.
    let mut tape = Tape::<f64>::new();
    let x = tape.constant(arr1(&[1000.0, 0.0]));
    let log_p = tape.log_softmax(x, 0).unwrap();
    assert_eq!(tape.value(log_p).as_slice(), &[0.0, -1000.0]);
    let p = tape.softmax(x).unwrap();
    let log_of_p = tape.log(p).unwrap();
    assert_eq!(tape.value(log_of_p).as_slice()[1], f64::NEG_INFINITY);
}

#[test]
fn max_axis_sends_a_tied_gradient_to_the_first_maximum() {
    // Column 0 is [2, 2, 1]: a tie between rows 0 and 1; the gradient goes to row 0 only.
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(arr2(&[[2.0, -1.0], [2.0, 5.0], [1.0, 5.0]]));
    let max = tape.max_axis(x, 0, false).unwrap();
    assert_eq!(tape.value(max).as_slice(), &[2.0, 5.0]);
    let loss = tape.sum(max).unwrap();
    let gradients = tape.backward(loss).unwrap();
    let expected = arr2(&[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]);
    assert_eq!(gradients.parameter(x), &expected);
}

#[test]
fn max_axis_propagates_nan() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(arr2(&[[1.0, f64::NAN, 3.0], [1.0, 2.0, 3.0]]));
    let max = tape.max_axis(x, 1, false).unwrap();
    let values = tape.value(max).as_slice();
    assert!(values[0].is_nan() && values[1] == 3.0, "{values:?}");
    let loss = tape.dot(max, max).unwrap();
    let gradients = tape.backward(loss).unwrap();
    // The NaN row's gradient lands on the NaN; the other row's on its maximum, 2 * 3.
    assert_eq!(gradients.parameter(x).as_slice()[5], 6.0);
    assert_eq!(gradients.parameter(x).as_slice()[3], 0.0);
}

/// A per-row loop written out here, in the order PyTorch documents: the oracle for LayerNorm's
/// values.
fn layer_norm_by_rows(x: &ArrayD<f64>, gain: &[f64], bias: &[f64], epsilon: f64) -> Vec<f64> {
    let width = *x.shape().last().unwrap();
    let mut out = Vec::new();
    for row in x.as_slice().unwrap().chunks(width) {
        let mean = row.iter().sum::<f64>() / width as f64;
        let variance = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / width as f64;
        for (column, x) in row.iter().enumerate() {
            out.push((x - mean) / (variance + epsilon).sqrt() * gain[column] + bias[column]);
        }
    }
    out
}

#[test]
fn layer_norm_values_equal_a_per_row_loop() {
    let x = Array::from_shape_fn(IxDyn(&[2, 3, 5]), |index| {
        let (i, j, k) = (index[0] as f64, index[1] as f64, index[2] as f64);
        (i * 1.7 - j * 0.3 + k * k * 0.2).sin() * 3.0
    });
    let (gain, bias) = ([0.5, 1.0, -2.0, 3.0, 0.25], [0.0, 1.0, 2.0, -1.0, 0.5]);
    let mut tape = Tape::<f64>::new();
    let v = tape.constant(x.clone());
    let (g, b) = (tape.constant(arr1(&gain)), tape.constant(arr1(&bias)));
    for epsilon in [0.0, 1e-5, 0.5] {
        let y = tape.layer_norm(v, Some(g), Some(b), epsilon).unwrap();
        let expected = layer_norm_by_rows(&x, &gain, &bias, epsilon);
        close(tape.value(y).as_slice(), &expected, 1e-14).unwrap();
        let plain = tape.layer_norm(v, None, None, epsilon).unwrap();
        let expected = layer_norm_by_rows(&x, &[1.0; 5], &[0.0; 5], epsilon);
        close(tape.value(plain).as_slice(), &expected, 1e-14).unwrap();
    }
}

#[test]
fn rms_norm_without_a_gain_keeps_its_arithmetic_to_the_bit() {
    // What rms_norm computed before it took a gain, written out: x * (1 / sqrt(mean(x^2) + eps)),
    // the squares summed in order from zero.
    let x = Array::from_shape_fn(IxDyn(&[3, 7]), |index| {
        ((index[0] * 7 + index[1]) as f64).cos()
    });
    let mut tape = Tape::<f64>::new();
    let v = tape.constant(x.clone());
    let gain: Vec<f64> = (0..7).map(|k| 0.5 + k as f64 * 0.25).collect();
    let g = tape.constant(arr1(&gain));
    let plain = tape.rms_norm(v, None, 1e-5).unwrap();
    let gained = tape.rms_norm(v, Some(g), 1e-5).unwrap();
    for (row, (plain, gained)) in x.as_slice().unwrap().chunks(7).zip(
        tape.value(plain)
            .as_slice()
            .chunks(7)
            .zip(tape.value(gained).as_slice().chunks(7)),
    ) {
        let mean_square = row.iter().fold(0.0, |sum, &x| sum + x * x) / 7.0;
        let inverse_rms = (mean_square + 1e-5f64).sqrt().recip();
        for (column, &x) in row.iter().enumerate() {
            assert_eq!(plain[column].to_bits(), (x * inverse_rms).to_bits());
            assert_eq!(
                gained[column].to_bits(),
                (x * inverse_rms * gain[column]).to_bits()
            );
        }
    }
}

#[test]
fn dropout_keeps_a_binomial_fraction_and_preserves_the_mean() {
    // 100 000 elements kept with probability 0.7: the count kept is Binomial(n, 0.7), whose standard
    // deviation is sqrt(n 0.7 0.3) = 145; allow five of them (725). Each kept one is 1 / 0.7, so the
    // mean of the output is kept / (0.7 n), within 725 / 70 000 of 1.
    let n = 100_000;
    let mut tape = Tape::<f64>::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(20);
    let x = tape.parameter(ArrayD::from_elem(vec![100, 1000], 1.0));
    let y = tape.dropout(x, 0.3, &mut rng).unwrap();
    let values = tape.value(y).as_slice().to_vec();
    let kept = values.iter().filter(|&&y| y != 0.0).count();
    assert!(kept.abs_diff(70_000) <= 725, "kept {kept} of {n}");
    let mean = values.iter().sum::<f64>() / n as f64;
    assert!((mean - 1.0).abs() <= 725.0 / 70_000.0, "mean {mean}");
    // The gradient of sum(y) is the mask: 1 / (1 - p) where an element was kept, 0 where dropped.
    let loss = tape.sum(y).unwrap();
    let gradients = tape.backward(loss).unwrap();
    for (&gradient, &y) in gradients.parameter(x).as_slice().iter().zip(&values) {
        let expected = if y == 0.0 { 0.0 } else { 0.7f64.recip() };
        assert_eq!(gradient, expected);
        assert_eq!(y, expected, "a kept 1 is scaled by 1 / (1 - p)");
    }
}

#[test]
fn dropout_with_p_zero_is_the_identity_and_draws_nothing() {
    let mut tape = Tape::<f32>::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let untouched = rng.clone();
    let x = tape.parameter(arr1(&[1.5f32, -2.0, 0.25]));
    let y = tape.dropout(x, 0.0, &mut rng).unwrap();
    assert_eq!(tape.value(y), tape.value(x));
    assert_eq!(rng, untouched, "no draw for p = 0");
}

#[test]
fn errors_name_the_op_the_shapes_and_the_rule() {
    let mut tape = Tape::<f64>::new();
    let m = tape.constant(arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]));
    let message = |result: Result<Var, TapeError>| result.unwrap_err().to_string();
    assert_eq!(
        message(tape.sum_axis(m, 2, false)),
        "sum_axis: shape mismatch: axis 2 is out of range for [2, 3], which has 2 axes"
    );
    assert!(message(tape.softmax_axis(m, 5)).starts_with("softmax_axis: shape mismatch: axis 5"));
    assert!(message(tape.log_softmax(m, 2)).starts_with("log_softmax: shape mismatch: axis 2"));
    let empty = tape.constant(ArrayD::<f64>::zeros(vec![2, 0]));
    assert_eq!(
        message(tape.mean_axis(empty, 1, false)),
        "mean_axis: shape mismatch: axis 1 of [2, 0] is empty; its mean is undefined"
    );
    assert!(message(tape.max_axis(empty, 1, true)).contains("its maximum is undefined"));
    let zeros = tape.sum_axis(empty, 1, false).unwrap();
    assert_eq!(
        tape.value(zeros).as_slice(),
        &[0.0, 0.0],
        "an empty sum is 0"
    );
    let wrong = tape.constant(arr1(&[1.0, 2.0]));
    assert_eq!(
        message(tape.layer_norm(m, Some(wrong), None, 1e-5)),
        "layer_norm: shape mismatch: gain [2] must be [3], the length of the last axis of the input [2, 3]"
    );
    assert!(message(tape.layer_norm(m, None, Some(wrong), 1e-5)).contains("bias [2] must be [3]"));
    assert!(
        message(tape.rms_norm(m, Some(wrong), 1e-5))
            .starts_with("rms_norm: shape mismatch: gain [2]")
    );
    let scalar = tape.constant(arr0(1.0));
    assert!(
        message(tape.layer_norm(scalar, None, None, 1e-5)).contains("needs a non-empty last axis")
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    for p in [1.0, -0.1, f64::NAN] {
        assert!(message(tape.dropout(m, p, &mut rng)).contains("is outside [0, 1)"));
    }
}
