//! The elementwise family: the broadcasting binary ops (add, sub, mul, div, maximum, minimum) and
//! the unary ones (neg, square, sqrt, powf, abs, clamp, tanh, sigmoid, gelu, silu).
//!
//! Oracles: central finite differences for every backward (`common::check`), ndarray's own
//! broadcasting arithmetic for the broadcast forward values, the C library's functions (through
//! Rust's `f64` methods) for the unary forward values, and hand-worked numbers where noted.

mod common;

use common::{array, check};
use ndarray::{ArrayD, IxDyn, Zip, arr0, arr1};
use proptest::collection::vec;
use proptest::prelude::*;
use tape::{Tape, TapeError, Var};

type BinaryOp<F> = fn(&mut Tape<F>, Var, Var) -> Result<Var, TapeError>;
type UnaryOp<F> = fn(&mut Tape<F>, Var) -> Result<Var, TapeError>;

/// The six broadcasting ops, by name.
fn binary_ops<F: tape::Float>() -> [(&'static str, BinaryOp<F>); 6] {
    [
        ("add", Tape::add),
        ("sub", Tape::sub),
        ("mul", Tape::mul),
        ("div", Tape::div),
        ("maximum", Tape::maximum),
        ("minimum", Tape::minimum),
    ]
}

/// The shape `a op b` has, by ndarray's broadcasting (independent of the tape's).
fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    (&ArrayD::<f64>::zeros(IxDyn(a)) + &ArrayD::<f64>::zeros(IxDyn(b)))
        .shape()
        .to_vec()
}

/// `v` moved to `±[0.5, 2.5]`, away from 0, so that a divisor's finite differences stay tame.
fn away_from_zero(v: f64) -> f64 {
    if v >= 0.0 { v + 0.5 } else { v - 0.5 }
}

/// `v` moved onto the grid `0.1 k + offset`: with offsets 0.03 and 0.07 for the two operands, every
/// pair differs by at least 0.04, so maximum and minimum have no tie for a finite-difference step
/// to cross.
fn on_grid(v: f64, offset: f64) -> f64 {
    (v * 10.0).round() / 10.0 + offset
}

// ---------------------------------------------------------------------------------------------
// Broadcasting binary ops: gradients.

/// The broadcasting cases the issue names, with random lengths `B, T, C`: a `[C]` bias on
/// `[B, T, C]` (and the other way round), `[B, 1, C]` against `[B, T, 1]` (each operand repeated
/// along a different axis), and a 0-d scalar against a matrix (either side).
fn broadcast_case() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>)> {
    (1usize..4, 1usize..4, 1usize..5, 0usize..5)
        .prop_map(|(b, t, c, case)| match case {
            0 => (vec![b, t, c], vec![c]),
            1 => (vec![c], vec![b, t, c]),
            2 => (vec![b, 1, c], vec![b, t, 1]),
            3 => (vec![], vec![t, c]),
            _ => (vec![t, c], vec![]),
        })
        .prop_flat_map(|(a, b)| {
            let output = broadcast_shape(&a, &b);
            (
                array(a, -2.0..2.0),
                array(b, -2.0..2.0),
                array(output, -1.0..1.0),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each input's gradient must be the output's gradient times its partial, summed over every
    /// position that repeated it: a backward that forgot the sum, summed over the wrong axis or
    /// wrote only the last repeat fails here.
    #[test]
    fn broadcasting_ops_sum_each_gradient_back_to_its_operand((a, b, weights) in broadcast_case()) {
        for (name, op) in binary_ops::<f64>() {
            let (a, b) = match name {
                "div" => (a.clone(), b.mapv(away_from_zero)),
                "maximum" | "minimum" => (a.mapv(|v| on_grid(v, 0.03)), b.mapv(|v| on_grid(v, 0.07))),
                _ => (a.clone(), b.clone()),
            };
            check(&[a, b], &weights, |tape, v| op(tape, v[0], v[1]))?;
        }
    }

    /// The same value as both operands: its gradient is the sum of both uses, so `sub(x, x)` and
    /// `div(x, x)` have gradient 0 (the two partials cancel) and `maximum(x, x)` gradient 1 (half
    /// of it through each side of the tie). A backward that overwrote instead of adding, or that
    /// gave a tie's whole gradient to both sides, fails.
    #[test]
    fn an_operand_used_twice_gets_both_gradients(
        (x, weights) in vec(1usize..4, 0..=3).prop_flat_map(|shape| {
            (array(shape.clone(), -2.0..2.0), array(shape, -1.0..1.0))
        })
    ) {
        for (name, op) in binary_ops::<f64>() {
            let x = if name == "div" { x.mapv(away_from_zero) } else { x.clone() };
            check(&[x], &weights, |tape, v| op(tape, v[0], v[0]))?;
        }
    }
}

/// Ties of maximum and minimum send half the gradient to each side (as PyTorch). Worked by hand
/// for `sum(maximum(a, b))` with `a = [1, 2, 3]`, `b = [1, 5, 0]`: the first pair ties.
#[test]
fn ties_split_the_gradient_evenly() {
    let mut tape = Tape::<f64>::new();
    let a = tape.parameter(arr1(&[1.0, 2.0, 3.0]));
    let b = tape.parameter(arr1(&[1.0, 5.0, 0.0]));
    let scalar = tape.parameter(arr0(2.0));
    let pairs = [
        (
            Tape::maximum as BinaryOp<f64>,
            [0.5, 0.0, 1.0],
            [0.5, 1.0, 0.0],
        ),
        (Tape::minimum, [0.5, 1.0, 0.0], [0.5, 0.0, 1.0]),
    ];
    for (op, expected_a, expected_b) in pairs {
        let out = op(&mut tape, a, b).unwrap();
        let loss = tape.sum(out).unwrap();
        let gradients = tape.backward(loss).unwrap();
        assert_eq!(gradients.parameter(a).as_slice(), &expected_a);
        assert_eq!(gradients.parameter(b).as_slice(), &expected_b);
    }
    // A broadcast scalar tying with two of three elements: maximum([1, 2, 3], 2) = [2, 2, 3]; the
    // scalar wins the first (1), ties the second (1/2) and loses the third (0).
    let out = tape.maximum(a, scalar).unwrap();
    let loss = tape.sum(out).unwrap();
    let gradients = tape.backward(loss).unwrap();
    assert_eq!(gradients.parameter(a).as_slice(), &[0.0, 0.5, 1.0]);
    assert_eq!(gradients.parameter(scalar).as_slice(), &[1.5]);
}

// ---------------------------------------------------------------------------------------------
// Broadcasting binary ops: forward values and shape errors.

/// Two shapes that broadcast: a random output shape of up to four axes (now and then of length
/// 0), and for each operand a random trailing part of it with random axes set to 1.
fn broadcastable_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    vec(prop_oneof![1 => Just(0usize), 8 => 1usize..5], 0..=4)
        .prop_flat_map(|output| {
            let rank = output.len();
            (
                Just(output),
                (0..=rank, vec(any::<bool>(), rank)),
                (0..=rank, vec(any::<bool>(), rank)),
            )
        })
        .prop_map(|(output, a, b)| {
            let operand = |(axes, ones): (usize, Vec<bool>)| {
                let skip = output.len() - axes;
                let lengths = output[skip..].iter().zip(&ones[skip..]);
                lengths
                    .map(|(&length, &one)| if one { 1 } else { length })
                    .collect::<Vec<usize>>()
            };
            (operand(a), operand(b))
        })
}

/// `a op b` by ndarray: its arithmetic operators between references broadcast both sides, and
/// maximum and minimum zip the two operands' broadcast views.
fn ndarray_oracle<F: tape::Float>(name: &str, a: &ArrayD<F>, b: &ArrayD<F>) -> ArrayD<F> {
    let shape = broadcast_shape(a.shape(), b.shape());
    let zip =
        || Zip::from(a.broadcast(IxDyn(&shape)).unwrap()).and(b.broadcast(IxDyn(&shape)).unwrap());
    match name {
        "add" => a + b,
        "sub" => a - b,
        "mul" => a * b,
        "div" => a / b,
        "maximum" => zip().map_collect(|&x, &y| x.max(y)),
        "minimum" => zip().map_collect(|&x, &y| x.min(y)),
        _ => unreachable!("{name}"),
    }
}

/// Every op on `a` and `b` on a fresh tape, against ndarray, to the bit (one IEEE operation per
/// element either way). A wrong stride or odometer step reads the wrong element and fails.
fn assert_forward_matches_ndarray<F: tape::Float>(a: &ArrayD<F>, b: &ArrayD<F>) {
    for (name, op) in binary_ops::<F>() {
        let mut tape = Tape::<F>::new();
        let (x, y) = (tape.constant(a.clone()), tape.constant(b.clone()));
        let out = op(&mut tape, x, y).unwrap();
        let expected = ndarray_oracle(name, a, b);
        assert_eq!(
            tape.value(out),
            &expected,
            "{name} of {:?} and {:?}",
            a.shape(),
            b.shape()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn broadcast_values_are_ndarray_s(
        (a, b) in broadcastable_shapes().prop_flat_map(|(a, b)| {
            // Divisors away from 0, so that no quotient is NaN (which never compares equal).
            (array(a, -2.0..2.0), array(b, -2.0..2.0).prop_map(|b| b.mapv(away_from_zero)))
        })
    ) {
        assert_forward_matches_ndarray(&a, &b);
        assert_forward_matches_ndarray(&b, &a);
        assert_forward_matches_ndarray(&a.mapv(|v| v as f32), &b.mapv(|v| v as f32));
    }

    /// An axis whose two lengths differ and are both other than 1 is an error that names the op
    /// and both shapes, and records nothing; a panic or a vague message fails.
    #[test]
    fn shapes_that_do_not_broadcast_are_an_error_naming_the_op_and_both_shapes(
        (a, b) in (vec(1usize..4, 1..=4), any::<prop::sample::Index>(), 2usize..5, 1usize..4, any::<bool>())
            .prop_flat_map(|(a, axis, length, offset, swap)| {
                let axis = axis.index(a.len());
                (Just(a), Just(axis), Just(length), Just(offset), 0..=axis, Just(swap))
            })
            .prop_map(|(mut a, axis, length, offset, dropped, swap)| {
                // Along `axis`, a has `length` >= 2 and b `length + offset` >= 3: they clash.
                a[axis] = length;
                let mut b = a[dropped..].to_vec();
                b[axis - dropped] = length + offset;
                if swap { (b, a) } else { (a, b) }
            })
    ) {
        for (name, op) in binary_ops::<f64>() {
            let mut tape = Tape::<f64>::new();
            let x = tape.constant(ArrayD::zeros(IxDyn(&a)));
            let y = tape.constant(ArrayD::zeros(IxDyn(&b)));
            let error = op(&mut tape, x, y).unwrap_err();
            let message = error.to_string();
            prop_assert!(matches!(error, TapeError::Shape { op, .. } if op == name), "{message}");
            prop_assert!(message.starts_with(&format!("{name}: shape mismatch: {a:?} and {b:?}")), "{message}");
            prop_assert!(message.contains("do not broadcast"), "{message}");
            prop_assert_eq!(tape.len(), 2, "a failed op records nothing");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Unary ops: gradients.

/// An input of a random shape of up to three axes (0-d included) with values in `range`, and
/// projection weights of the same shape.
fn input(range: std::ops::Range<f64>) -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    vec(1usize..4, 0..=3)
        .prop_flat_map(move |shape| (array(shape.clone(), range.clone()), array(shape, -1.0..1.0)))
}

/// Checks `op` alone and in `op(x) * x`, where `x` reaches the output along two paths: a backward
/// that overwrites its input's gradient instead of adding to it fails the second.
fn check_alone_and_used_twice(
    x: &ArrayD<f64>,
    weights: &ArrayD<f64>,
    op: impl Fn(&mut Tape<f64>, Var) -> Result<Var, TapeError>,
) -> Result<(), TestCaseError> {
    let inputs = std::slice::from_ref(x);
    check(inputs, weights, |tape, v| op(tape, v[0]))?;
    check(inputs, weights, |tape, v| {
        let y = op(tape, v[0])?;
        tape.mul(y, v[0])
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn neg_and_square((x, weights) in input(-2.0..2.0)) {
        check_alone_and_used_twice(&x, &weights, Tape::neg)?;
        check_alone_and_used_twice(&x, &weights, Tape::square)?;
    }

    /// sqrt's slope grows without bound at 0: inputs stay at 0.2 or more.
    #[test]
    fn sqrt_of_positive_values((x, weights) in input(0.2..3.0)) {
        check_alone_and_used_twice(&x, &weights, Tape::sqrt)?;
    }

    /// Any real exponent on positive bases; whole exponents (and 0, whose gradient is 0) on bases
    /// of either sign.
    #[test]
    fn powf_by_a_constant(
        (x, weights) in input(0.2..3.0),
        exponent in -2.5..3.0f64,
        whole in prop_oneof![Just(0.0), Just(1.0), Just(2.0), Just(3.0), Just(-1.0)],
        signs in vec(any::<bool>(), 27),
    ) {
        check_alone_and_used_twice(&x, &weights, |tape, a| tape.powf(a, exponent))?;
        let mut signed = x;
        for (v, &negative) in signed.iter_mut().zip(&signs) {
            if negative { *v = -*v; }
        }
        check_alone_and_used_twice(&signed, &weights, |tape, a| tape.powf(a, whole))?;
    }

    /// abs has a kink at 0: |x| stays at 0.2 or more, with random signs.
    #[test]
    fn abs_away_from_zero((x, weights) in input(0.2..2.0), signs in vec(any::<bool>(), 27)) {
        let mut x = x;
        for (v, &negative) in x.iter_mut().zip(&signs) {
            if negative { *v = -*v; }
        }
        check_alone_and_used_twice(&x, &weights, Tape::abs)?;
    }

    /// clamp has kinks at its bounds: inputs within 0.01 of one move 0.05 away (the bounds are at
    /// least 0.4 apart, so that never lands near the other), and about half fall outside.
    #[test]
    fn clamp_away_from_its_bounds((x, weights) in input(-2.0..2.0), min in -1.0..-0.2f64, max in 0.2..1.0f64) {
        let x = x.mapv(|v| {
            if (v - min).abs() < 0.01 || (v - max).abs() < 0.01 { v + 0.05 } else { v }
        });
        check_alone_and_used_twice(&x, &weights, |tape, a| tape.clamp(a, min, max))?;
    }

    #[test]
    fn tanh_sigmoid_gelu_silu((x, weights) in input(-4.0..4.0)) {
        check_alone_and_used_twice(&x, &weights, Tape::tanh)?;
        check_alone_and_used_twice(&x, &weights, Tape::sigmoid)?;
        check_alone_and_used_twice(&x, &weights, Tape::gelu)?;
        check_alone_and_used_twice(&x, &weights, Tape::silu)?;
    }

    /// Activations of activations, where every backward reads another op's output.
    #[test]
    fn activations_compose((x, weights) in input(-3.0..3.0)) {
        check(&[x], &weights, |tape, v| {
            let hidden = tape.gelu(v[0])?;
            let gate = tape.sigmoid(hidden)?;
            let squashed = tape.tanh(v[0])?;
            let product = tape.mul(gate, squashed)?;
            tape.silu(product)
        })?;
    }
}

// ---------------------------------------------------------------------------------------------
// Unary ops: forward values.

/// `op` of the values `x` on an `f64` tape.
fn forward(op: impl Fn(&mut Tape<f64>, Var) -> Result<Var, TapeError>, x: &[f64]) -> Vec<f64> {
    forward_in(op, x)
}

/// `op` of the values `x` on a tape of `F`.
fn forward_in<F: tape::Float>(
    op: impl Fn(&mut Tape<F>, Var) -> Result<Var, TapeError>,
    x: &[F],
) -> Vec<F> {
    let mut tape = Tape::<F>::new();
    let x = tape.constant(arr1(x));
    let y = op(&mut tape, x).unwrap();
    tape.value(y).as_slice().to_vec()
}

/// Inputs for the forward checks: a grid over [-30, 30], and tiny, huge and infinite values.
fn forward_inputs() -> Vec<f64> {
    let mut x: Vec<f64> = (0..=6000).map(|i| -30.0 + 0.01 * f64::from(i)).collect();
    for magnitude in [
        0.0,
        1e-300,
        1e-8,
        0.5,
        20.0,
        100.0,
        700.0,
        1e30,
        f64::MAX,
        f64::INFINITY,
    ] {
        x.extend([magnitude, -magnitude]);
    }
    x
}

/// The logistic sigmoid by the textbook formula `1 / (1 + e^-x)` for `x >= 0`, and for `x < 0`
/// that formula with numerator and denominator multiplied by `e^x` (so `e^-x` cannot overflow).
fn sigmoid_formula(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

/// GELU's tanh approximation as GPT-2 and PyTorch write it.
fn gelu_tanh_formula(x: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    0.5 * x * (1.0 + u.tanh())
}

/// The same function as `x sigmoid(2u)` (as `1 + tanh(u) = 2 sigmoid(2u)`), which keeps its
/// relative accuracy where `1 + tanh(u)` cancels; the limit 0 at `-inf`.
fn gelu_sigmoid_formula(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return 0.0;
    }
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    x * sigmoid_formula(2.0 * u)
}

/// `x sigmoid(x)`, with the limit at `-inf`: 0, approached from below (so -0, as `x * 0` is for
/// any finite negative `x`).
fn silu_formula(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        -0.0
    } else {
        x * sigmoid_formula(x)
    }
}

/// The plain math ops are the `f64` methods (the C library's `sqrt` and `pow`), to the bit.
#[test]
fn f64_math_ops_are_the_c_library_s_to_the_bit() {
    let x = forward_inputs();
    let positive: Vec<f64> = x.iter().map(|v| v.abs()).collect();
    let same = |actual: Vec<f64>, expected: &dyn Fn(f64) -> f64, x: &[f64], name: &str| {
        for (&actual, &x) in actual.iter().zip(x) {
            let expected = expected(x);
            assert!(
                actual.to_bits() == expected.to_bits(),
                "{name}({x}) = {actual}, not {expected}"
            );
        }
    };
    same(forward(Tape::neg, &x), &|x| -x, &x, "neg");
    same(forward(Tape::square, &x), &|x| x * x, &x, "square");
    same(forward(Tape::abs, &x), &f64::abs, &x, "abs");
    same(
        forward(Tape::sqrt, &positive),
        &f64::sqrt,
        &positive,
        "sqrt",
    );
    for exponent in [-1.5, 0.0, 0.5, 2.0, 3.0] {
        let out = forward(|tape, a| tape.powf(a, exponent), &positive);
        same(out, &|x| x.powf(exponent), &positive, "powf");
    }
    same(forward(Tape::tanh, &x), &f64::tanh, &x, "tanh");
    same(forward(Tape::sigmoid, &x), &sigmoid_formula, &x, "sigmoid");
    same(forward(Tape::silu, &x), &silu_formula, &x, "silu");
}

/// clamp as PyTorch documents it, by hand: values outside `[-1, 1]` take the bound, NaN stays
/// NaN, and with `min > max` every element is `max`.
#[test]
fn clamp_takes_the_bounds_and_keeps_nan() {
    let x = [
        -2.0,
        -1.0,
        -0.5,
        0.0,
        0.5,
        1.0,
        2.0,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    let y = forward(|tape, a| tape.clamp(a, -1.0, 1.0), &x);
    assert_eq!(y[..8], [-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0, -1.0]);
    assert!(y[8].is_nan());
    let inverted = forward(|tape, a| tape.clamp(a, 2.0, 1.0), &[0.0, 1.5, 5.0]);
    assert_eq!(inverted, [1.0, 1.0, 1.0]);
    // The gradient passes inside and on the bounds, and nowhere else.
    let mut tape = Tape::<f64>::new();
    let a = tape.parameter(arr1(&[-2.0, -1.0, 0.5, 1.0, 2.0]));
    let clamped = tape.clamp(a, -1.0, 1.0).unwrap();
    let loss = tape.sum(clamped).unwrap();
    let gradient = tape.backward(loss).unwrap().parameter(a).clone();
    assert_eq!(gradient.as_slice(), &[0.0, 1.0, 1.0, 1.0, 0.0]);
}

/// GELU in f64 against the formula PyTorch and GPT-2 write, `0.5 x (1 + tanh(u))`, with the C
/// library's tanh. That formula's own result carries tanh's rounding (half an ulp of 1, `2^-53`)
/// through `1 + tanh(u)`, which for negative `x` is a cancellation: so the bound is 8 epsilons
/// of the value, relative, plus `|x| 2^-52`. Values by hand (the same formula in Python's math module): gelu(1)
/// = 0.8411919906082768, gelu(-1) = -0.15880800939172324, gelu(2) = 1.954597694087775.
#[test]
fn f64_gelu_is_gpt2_s_formula() {
    let x: Vec<f64> = forward_inputs()
        .into_iter()
        .filter(|x| x.abs() <= 1e30)
        .collect();
    let y = forward(Tape::gelu, &x);
    for (&x, &y) in x.iter().zip(&y) {
        let expected = gelu_tanh_formula(x);
        let bound = 8.0 * f64::EPSILON * expected.abs() + x.abs() * f64::EPSILON;
        assert!(
            (y - expected).abs() <= bound,
            "gelu({x}) = {y}, not {expected}"
        );
    }
    let worked = forward(Tape::gelu, &[1.0, -1.0, 2.0]);
    for (y, expected) in
        worked
            .iter()
            .zip([0.8411919906082768, -0.15880800939172324, 1.954597694087775])
    {
        assert!((y - expected).abs() <= 4.0 * f64::EPSILON * expected.abs());
    }
    // Where the tanh formula's exp overflows or it multiplies infinity by 0, the limits.
    let extremes = forward(
        Tape::gelu,
        &[f64::INFINITY, f64::NEG_INFINITY, f64::MAX, -f64::MAX],
    );
    assert_eq!(extremes, [f64::INFINITY, 0.0, f64::MAX, 0.0]);
}

/// The `f32` activations (vectorised on the `f32` exponential) against the `f64` formulas, to a
/// small relative error, including where naive `f32` formulas overflow to NaN (`±20`, `±100`,
/// `±inf`, huge values). Where the `f64` gate (the sigmoid inside sigmoid, SiLU and GELU) is
/// below `f32::MIN_POSITIVE`, the `f32` result may be flushed to 0.
///
/// The bounds, in units of `f32::EPSILON` relative (the kernels' tests in `exp.rs` bound them
/// in ulps): tanh and sigmoid 2, SiLU 2.5 (one more rounding). GELU's gate argument `v = 2u` is
/// itself rounded in `f32` (a few ulps of `v`), and the gate's relative sensitivity to `v` is
/// `v (1 - sigmoid(v))`, so its bound is `3 + 2 |v| (1 - sigmoid(v))`: a few ulps for positive
/// `x`, growing towards `x = -10`, where the gate reaches `f32::MIN_POSITIVE`.
#[test]
fn f32_activations_are_within_a_few_ulps_of_the_f64_formulas() {
    let mut x: Vec<f32> = forward_inputs().into_iter().map(|x| x as f32).collect();
    x.extend([f32::MAX, -f32::MAX, 88.0, -88.0, -87.0, -10.0]);
    let epsilon = f64::from(f32::EPSILON);
    fn identity(x: f64) -> f64 {
        x
    }
    fn gelu_gate(x: f64) -> f64 {
        2.0 * (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)
    }
    type Formula = fn(f64) -> f64;
    // (name, op, f64 formula, the argument of its sigmoid gate if it has one)
    let cases: [(&str, UnaryOp<f32>, Formula, Option<Formula>); 4] = [
        ("tanh", Tape::tanh, f64::tanh, None),
        ("sigmoid", Tape::sigmoid, sigmoid_formula, Some(identity)),
        ("silu", Tape::silu, silu_formula, Some(identity)),
        ("gelu", Tape::gelu, gelu_sigmoid_formula, Some(gelu_gate)),
    ];
    for (name, op, formula, gate) in cases {
        let y = forward_in(op, &x);
        let mut worst = 0.0f64;
        for (&x, &y) in x.iter().zip(&y) {
            let wide = f64::from(x);
            let exact = formula(wide);
            assert!(!y.is_nan(), "{name}({x}) is NaN");
            let v = gate.map(|gate| gate(wide));
            if v.is_some_and(|v| sigmoid_formula(v) < f64::from(f32::MIN_POSITIVE)) {
                assert!(
                    y == 0.0 || (f64::from(y) - exact).abs() <= 1e-37,
                    "{name}({x}) = {y}"
                );
                continue;
            }
            if (exact as f32).is_infinite() {
                assert_eq!(y, exact as f32, "{name}({x})");
                continue;
            }
            let bound = match (name, v) {
                ("gelu", Some(v)) => 3.0 + 2.0 * v.abs() * (1.0 - sigmoid_formula(v)),
                ("silu", _) => 2.5,
                _ => 2.0,
            };
            let error =
                (f64::from(y) - exact).abs() / (epsilon * exact.abs()).max(f64::MIN_POSITIVE);
            assert!(
                error <= bound,
                "{name}({x}) = {y}, not {exact}: {error} epsilons, bound {bound}"
            );
            worst = worst.max(error / bound);
        }
        eprintln!("f32 {name}: worst error {worst:.3} of its bound");
    }
}

/// At the extremes the gradients are their limits, never NaN: a backward that multiplied an
/// infinite input by a zero slope (gelu and silu at `±inf`) would give NaN here.
#[test]
fn activation_gradients_at_extreme_inputs_are_their_limits() {
    fn gradient<F: tape::Float>(op: UnaryOp<F>, x: F) -> f64 {
        let mut tape = Tape::<F>::new();
        let a = tape.parameter(arr1(&[x]));
        let y = op(&mut tape, a).unwrap();
        let loss = tape.sum(y).unwrap();
        tape.backward(loss).unwrap().parameter(a).as_slice()[0].to_f64()
    }
    let ops: [(&str, UnaryOp<f64>, UnaryOp<f32>); 4] = [
        ("tanh", Tape::tanh, Tape::tanh),
        ("sigmoid", Tape::sigmoid, Tape::sigmoid),
        ("gelu", Tape::gelu, Tape::gelu),
        ("silu", Tape::silu, Tape::silu),
    ];
    // The limit of each op's derivative at x, in the order of `ops`.
    let limits = [
        (f64::INFINITY, [0.0, 0.0, 1.0, 1.0]),
        (1e30, [0.0, 0.0, 1.0, 1.0]),
        (100.0, [0.0, 0.0, 1.0, 1.0]),
        (-100.0, [0.0; 4]),
        (-1e30, [0.0; 4]),
        (f64::NEG_INFINITY, [0.0; 4]),
    ];
    for (x, expected) in limits {
        for (&(name, in_f64, in_f32), expected) in ops.iter().zip(expected) {
            let (wide, narrow) = (gradient(in_f64, x), gradient(in_f32, x as f32));
            assert!(
                (wide - expected).abs() <= 1e-30,
                "f64 {name}'({x}) = {wide}"
            );
            assert!(
                (narrow - expected).abs() <= 1e-30,
                "f32 {name}'({x}) = {narrow}"
            );
        }
    }
}
