//! The exponential of many values at once, which softmax, cross-entropy and attention need.

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

/// One lane of [`exp_in_place_f32`].
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HIGH: f32 = 0.693_359_4; // 355 / 512: k * LN2_HIGH is exact
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer, which then sits in the low bits.
    const ROUND: f32 = 12_582_912.0;
    const P: [f32; 6] = [
        1.987_569_2e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];
    // Past 88.75, 2^k overflows to infinity as it should; NaN stays NaN.
    let clamped = x.clamp(-87.5, 88.75);
    let shifted = clamped * LOG2_E + ROUND;
    let k = shifted - ROUND;
    // The bits of `shifted` are those of ROUND plus k. 2^k is applied in two halves, each a normal
    // number (2^128, for exp(88.7), is not), written straight into the exponent field.
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let power_of_two = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let r = (clamped - k * LN2_HIGH) - k * LN2_LOW;
    let polynomial = P[1..].iter().fold(P[0], |p, &c| p * r + c);
    let exp_r = 1.0 + r + r * r * polynomial;
    let value = exp_r * power_of_two(k_bits >> 1) * power_of_two(k_bits - (k_bits >> 1));
    // Below ln(f32::MIN_POSITIVE) the result would be subnormal: flush it to zero.
    if x < -87.336_55 { 0.0 } else { value }
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
}
