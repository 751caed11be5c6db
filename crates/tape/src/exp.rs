//! The exponential of many values at once, which softmax, cross-entropy and attention need, and
//! the functions built on it for whole buffers of `f32`: tanh and the logistic sigmoid (which
//! GELU and SiLU use), so that no activation costs a C library call per element.

/// How many `f32` exponentials [`Float::exp_in_place`](crate::Float::exp_in_place) computes per vector: one AVX-512 register.
/// A slice whose length is a multiple of it takes no scalar path.
pub const EXP_LANES: usize = 16;

/// `exp(x)` for every element, within 2 units in the last place where the result is at least
/// `f32::MIN_POSITIVE` (below, it is flushed to zero), without branches so that the loop
/// vectorises.
///
/// Cephes' `expf`: `x = k ln2 + r` with `k = round(x / ln2)` (`ln2` split in two so that `k ln2` is
/// exact) and `|r| <= ln2 / 2`, `exp(r) = 1 + r + r^2 P(r)` with its degree-5 minimax `P`, and `2^k`
/// written straight into the exponent bits.
#[inline]
pub(crate) fn exp_in_place_f32(x: &mut [f32]) {
    let (vectors, rest) = x.as_chunks_mut::<EXP_LANES>();
    for vector in vectors {
        for x in vector {
            *x = exp_f32(*x);
        }
    }
    for x in rest {
        *x = exp_f32(*x);
    }
}

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// 355 / 512: `k * LN2_HIGH` is exact.
const LN2_HIGH: f32 = 0.693_359_4;
const LN2_LOW: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds to an integer, which then sits in the low bits.
const ROUND: f32 = 12_582_912.0;
/// Cephes' degree-5 minimax `P` of `exp(r) = 1 + r + r^2 P(r)`.
const EXP_P: [f32; 6] = [
    1.987_569_2e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

/// One lane of [`exp_in_place_f32`].
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // Past 88.75, 2^k overflows to infinity as it should; NaN stays NaN.
    let clamped = x.clamp(-87.5, 88.75);
    let shifted = clamped * LOG2_E + ROUND;
    let k = shifted - ROUND;
    // The bits of `shifted` are those of ROUND plus k. 2^k is applied in two halves, each a normal
    // number (2^128, for exp(88.7), is not), written straight into the exponent field.
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let power_of_two = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let r = (clamped - k * LN2_HIGH) - k * LN2_LOW;
    let polynomial = EXP_P[1..].iter().fold(EXP_P[0], |p, &c| p * r + c);
    let exp_r = 1.0 + r + r * r * polynomial;
    let value = exp_r * power_of_two(k_bits >> 1) * power_of_two(k_bits - (k_bits >> 1));
    // Below ln(f32::MIN_POSITIVE) the result would be subnormal: flush it to zero.
    if x < -87.336_55 { 0.0 } else { value }
}

/// `tanh(x)` for every element, within 3 units in the last place, without branches so that the
/// loop vectorises.
///
/// Cephes' `tanhf`: for `|x| >= 0.625`, `(1 - e) / (1 + e)` with `e = exp(-2|x|)` in `(0, 0.29]`,
/// which neither overflows nor cancels and tends to 1 as `|x|` grows (to exactly 1 for `±inf`);
/// below, where `1 - e` would cancel, its odd polynomial `x + x^3 P(x^2)`.
#[inline]
pub(crate) fn tanh_in_place_f32(x: &mut [f32]) {
    let (vectors, rest) = x.as_chunks_mut::<EXP_LANES>();
    for vector in vectors {
        for x in vector {
            *x = tanh_f32(*x);
        }
    }
    for x in rest {
        *x = tanh_f32(*x);
    }
}

/// [`tanh_in_place_f32`] from `x` into `out`, in one pass.
#[inline]
pub(crate) fn tanh_into_f32(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "tanh_into needs slices of one length");
    let (vectors, rest) = out.as_chunks_mut::<EXP_LANES>();
    let (sources, source_rest) = x.as_chunks::<EXP_LANES>();
    for (vector, source) in vectors.iter_mut().zip(sources) {
        for (y, &x) in vector.iter_mut().zip(source) {
            *y = tanh_f32(x);
        }
    }
    for (y, &x) in rest.iter_mut().zip(source_rest) {
        *y = tanh_f32(x);
    }
}

/// Past this magnitude `tanh` is 1 in `f32` (`1 - 2 exp(-19)` rounds to 1), and `exp(-2 * 9.5)`
/// is far from underflow, so clamping there lets tanh's exponential skip [`exp_f32`]'s clamps, its
/// flush to zero and its two-step scaling, with the same results.
const TANH_SATURATION: f32 = 9.5;

/// One lane of [`tanh_in_place_f32`].
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    const P: [f32; 5] = [
        -5.704_988_7e-3,
        2.063_909e-2,
        -5.373_971_6e-2,
        0.133_314_42,
        -0.333_332_8,
    ];
    let magnitude = x.abs();
    // NaN fails the comparison and stays NaN, through the exponential and `large`.
    let saturated = if magnitude > TANH_SATURATION {
        TANH_SATURATION
    } else {
        magnitude
    };
    let e = exp_of_non_positive_f32(-2.0 * saturated);
    let large = (1.0 - e) / (1.0 + e);
    let square = magnitude * magnitude;
    let polynomial = P[1..].iter().fold(P[0], |p, &c| p * square + c);
    let small = magnitude + magnitude * square * polynomial;
    // Both halves are computed and one is chosen, which vectorises; tanh is odd, and copying the
    // sign keeps tanh(-0) = -0.
    let value = if magnitude < 0.625 { small } else { large };
    value.copysign(x)
}

/// [`exp_f32`] for `x` in `[-2 * TANH_SATURATION, 0]` (or NaN), to the bit: there `2^k` is a
/// normal number and the result never underflows, so one scaling does.
#[inline(always)]
fn exp_of_non_positive_f32(x: f32) -> f32 {
    let shifted = x * LOG2_E + ROUND;
    let k = shifted - ROUND;
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = (x - k * LN2_HIGH) - k * LN2_LOW;
    let polynomial = EXP_P[1..].iter().fold(EXP_P[0], |p, &c| p * r + c);
    let exp_r = 1.0 + r + r * r * polynomial;
    exp_r * f32::from_bits(((k_bits + 127) as u32) << 23)
}

/// The logistic sigmoid `1 / (1 + exp(-x))` of every element, within 4 units in the last place
/// where the result is at least `f32::MIN_POSITIVE` (below, for `x < -87.3`, it is flushed to
/// zero), without branches so that the loop vectorises.
///
/// With `e = exp(-|x|)` in `(0, 1]`, it is `1 / (1 + e)` for `x >= 0` and `e / (1 + e)` below:
/// nothing overflows, however large `|x|` (the textbook formula's `exp(-x)` is infinite past
/// `x = -88.7`), and `±inf` give exactly 1 and 0.
#[inline]
pub(crate) fn sigmoid_in_place_f32(x: &mut [f32]) {
    let (vectors, rest) = x.as_chunks_mut::<EXP_LANES>();
    for vector in vectors {
        for x in vector {
            *x = sigmoid_f32(*x);
        }
    }
    for x in rest {
        *x = sigmoid_f32(*x);
    }
}

/// One lane of [`sigmoid_in_place_f32`].
#[inline(always)]
fn sigmoid_f32(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    let denominator = 1.0 + e;
    // NaN fails the comparison and stays NaN through `e`.
    if x >= 0.0 {
        1.0 / denominator
    } else {
        e / denominator
    }
}

#[cfg(test)]
mod tests {
    use crate::Float;

    #[test]
    fn f32_exp_is_within_two_ulps() {
        let mut worst = 0.0f64;
        let mut x: Vec<f32> = (0..200_000)
            .map(|i| -100.0 + i as f32 * 0.000_944)
            .collect();
        x.extend([
            0.0,
            -0.0,
            -1e-30,
            -87.3,
            -87.0,
            80.0,
            88.5,
            88.72,
            -1000.0,
            f32::NEG_INFINITY,
        ]);
        let mut y = x.clone();
        f32::exp_in_place(&mut y);
        for (&x, &y) in x.iter().zip(&y) {
            let exact = f64::from(x).exp();
            if exact as f32 == f32::INFINITY {
                assert!(y >= f32::MAX, "exp({x}) = {y}, past f32::MAX");
                continue;
            }
            if exact < f64::from(f32::MIN_POSITIVE) {
                assert!(
                    y == 0.0 || (f64::from(y) - exact).abs() < 1e-38,
                    "exp({x}) = {y}"
                );
                continue;
            }
            let ulp = f64::from(f32::EPSILON) * f64::from((exact as f32).abs()) / 2.0;
            let error = (f64::from(y) - exact).abs() / ulp;
            assert!(error <= 2.0, "exp({x}) = {y}, not {exact}: {error} ulps");
            worst = worst.max(error);
        }
        assert!(worst <= 2.0, "worst error {worst} ulps");
        let mut overflowing = [88.73f32, 100.0, f32::INFINITY, f32::NAN];
        f32::exp_in_place(&mut overflowing);
        assert_eq!(overflowing[..3], [f32::INFINITY; 3]);
        assert!(overflowing[3].is_nan());
    }

    #[test]
    fn f64_exp_is_the_c_library_s() {
        let x = [-745.2, -3.5, -1e-300, 0.0, 0.5, 1.0, 709.7];
        let mut y = x;
        f64::exp_in_place(&mut y);
        for (x, y) in x.iter().zip(y) {
            assert_eq!(y.to_bits(), x.exp().to_bits(), "exp({x})");
        }
    }

    /// The error of an `f32` result against an `f64` one, in units in the last place of `f32` at
    /// the exact value (an ulp of a value below `f32::MIN_POSITIVE` counts as that of
    /// `MIN_POSITIVE`, where results may be flushed).
    fn ulps(actual: f32, exact: f64) -> f64 {
        let magnitude = exact.abs().max(f64::from(f32::MIN_POSITIVE));
        let ulp = f64::from(f32::EPSILON) * magnitude / 2.0;
        (f64::from(actual) - exact).abs() / ulp
    }

    /// Every f32 from -100 to 100 in steps a little under 0.001, plus tiny, huge and infinite
    /// values where naive formulas divide infinities.
    fn grid() -> Vec<f32> {
        let mut x: Vec<f32> = (0..200_000)
            .map(|i| -100.0 + i as f32 * 0.000_999_7)
            .collect();
        for magnitude in [
            0.0,
            1e-30,
            f32::MIN_POSITIVE,
            1e-8,
            1e-4,
            0.624_999_9,
            0.625,
            9.0,
            20.0,
            44.0,
            87.0,
            88.0,
            100.0,
            1e30,
            f32::MAX,
            f32::INFINITY,
        ] {
            x.extend([magnitude, -magnitude]);
        }
        x
    }

    #[test]
    fn f32_tanh_into_gives_tanh_in_place_s_numbers_to_the_bit() {
        // If this failed, the one-pass tanh of the activation op would disagree with the
        // in-place one, whose accuracy the test below bounds. 17 elements reach the scalar tail.
        let mut x = grid();
        x.extend([-0.0, 9.5, -9.5, 9.6, 44.0, f32::INFINITY, f32::NAN]);
        for x in [&x[..], &x[..17]] {
            let mut in_place = x.to_vec();
            f32::tanh_in_place(&mut in_place);
            let mut into = vec![0.0; x.len()];
            f32::tanh_into(x, &mut into);
            for ((&x, a), b) in x.iter().zip(in_place).zip(into) {
                assert_eq!(a.to_bits(), b.to_bits(), "tanh({x})");
            }
        }
    }

    #[test]
    fn f32_tanh_is_within_three_ulps_of_the_c_library_s() {
        // Oracle: the f64 C library tanh, whose error is far below an f32 ulp.
        let x = grid();
        let mut y = x.clone();
        f32::tanh_in_place(&mut y);
        let mut worst = 0.0f64;
        for (&x, &y) in x.iter().zip(&y) {
            let exact = f64::from(x).tanh();
            let error = ulps(y, exact);
            assert!(error <= 3.0, "tanh({x}) = {y}, not {exact}: {error} ulps");
            worst = worst.max(error);
        }
        eprintln!("f32 tanh: worst {worst} ulps");
        let mut special = [-0.0f32, f32::NEG_INFINITY, f32::INFINITY, f32::NAN];
        f32::tanh_in_place(&mut special);
        assert!(
            special[0] == 0.0 && special[0].is_sign_negative(),
            "tanh(-0) = -0"
        );
        assert_eq!(special[1..3], [-1.0, 1.0]);
        assert!(special[3].is_nan());
    }

    #[test]
    fn f32_sigmoid_is_within_four_ulps_and_never_nan_for_large_inputs() {
        // Oracle: 1 / (1 + exp(-x)) in f64 with the C library's exp (exp(-x) is finite for
        // |x| <= 100, and the f64 rounding is far below an f32 ulp).
        let x = grid();
        let mut y = x.clone();
        f32::sigmoid_in_place(&mut y);
        let mut worst = 0.0f64;
        for (&x, &y) in x.iter().zip(&y) {
            let exact = if x.abs() <= 100.0 {
                1.0 / (1.0 + (-f64::from(x)).exp())
            } else if x > 0.0 {
                1.0
            } else {
                0.0
            };
            if exact < f64::from(f32::MIN_POSITIVE) {
                assert!(y == 0.0 || ulps(y, exact) <= 4.0, "sigmoid({x}) = {y}");
                continue;
            }
            let error = ulps(y, exact);
            assert!(
                error <= 4.0,
                "sigmoid({x}) = {y}, not {exact}: {error} ulps"
            );
            worst = worst.max(error);
        }
        eprintln!("f32 sigmoid: worst {worst} ulps");
        let mut special = [f32::NEG_INFINITY, -0.0, f32::INFINITY, f32::NAN];
        f32::sigmoid_in_place(&mut special);
        assert_eq!(special[..3], [0.0, 0.5, 1.0]);
        assert!(special[3].is_nan());
    }

    #[test]
    fn f64_tanh_and_sigmoid_are_the_c_library_s() {
        let x = [-800.0, -30.0, -0.7, -1e-300, 0.0, 0.3, 2.5, 40.0, 800.0];
        let mut tanh = x;
        f64::tanh_in_place(&mut tanh);
        let mut sigmoid = x;
        f64::sigmoid_in_place(&mut sigmoid);
        for ((&x, tanh), sigmoid) in x.iter().zip(tanh).zip(sigmoid) {
            assert_eq!(tanh.to_bits(), x.tanh().to_bits(), "tanh({x})");
            // The formula in the doc of Float::sigmoid_in_place, with the C library's exp.
            let e = (-x.abs()).exp();
            let formula = if x >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            assert_eq!(sigmoid.to_bits(), formula.to_bits(), "sigmoid({x})");
        }
    }
}
