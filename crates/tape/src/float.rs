//! The element types a tape can hold.

use ndarray::NdFloat;

use crate::exp;

/// A floating-point element type: `f32` or `f64`.
///
/// [`NdFloat`] brings the arithmetic and the math functions (`exp`, `ln`, `sqrt`, ...); this trait adds
/// the two conversions the engine needs to move constants such as an epsilon in and out of the type,
/// and the exponential, tanh and sigmoid of whole slices. Those three are methods here, not calls
/// per element, because the best way to compute them differs by type: `f32` has polynomials that
/// the compiler vectorises over a slice (a C library call per element costs several times more),
/// while `f64` keeps the C library's results, to the bit, for exactness.
pub trait Float: NdFloat + Default {
    /// What [`Float::exp_in_place`] wants a slice's length to be a multiple of to take no
    /// scalar path: [`EXP_LANES`](crate::EXP_LANES) for `f32`; 1 for `f64`, whose exponential is
    /// one C library call per element, so that padding would only add calls.
    const EXP_BLOCK: usize;
    /// The output rows the product kernels build side by side, each its own chain of adds: 8 of
    /// `f32` or 4 of `f64`, 8 AVX-512 registers of sums either way. That is enough independent
    /// chains to keep both adders busy (4 chains of `f32` are bound by the latency of an add) and
    /// leaves registers for the operands (8 rows of `f64` make the compiler spill).
    const PRODUCT_ROWS: usize;
    /// The nearest value of this type to `value`.
    fn from_f64(value: f64) -> Self;
    /// This value widened (or kept) as an `f64`.
    fn to_f64(self) -> f64;
    /// `exp` of every element, in place: for `f64` the C library's `exp` one element at a time
    /// (what Python's `math.exp` returns, to the bit); for `f32` a polynomial the compiler
    /// vectorises, [`EXP_LANES`](crate::EXP_LANES) at a time, within 2 units in the last place.
    fn exp_in_place(values: &mut [Self]);
    /// `tanh` of every element, in place: for `f64` the C library's `tanh` one element at a time;
    /// for `f32` a vectorised form built on the `f32` exponential, within 3 units in the last
    /// place, exactly `±1` for `±inf`.
    ///
    /// ```
    /// use tape::Float;
    ///
    /// let mut values = [0.5f32, -20.0, f32::INFINITY];
    /// f32::tanh_in_place(&mut values);
    /// assert!((values[0] - 0.5f32.tanh()).abs() <= 2.0 * f32::EPSILON * values[0]);
    /// assert_eq!(values[1..], [-1.0, 1.0]);
    /// ```
    fn tanh_in_place(values: &mut [Self]);
    /// `tanh` of every element of `values` into `out` (of the same length), the same numbers as
    /// [`Float::tanh_in_place`] gives, in one pass over memory rather than a copy and a second pass.
    ///
    /// # Panics
    /// If `values` and `out` differ in length.
    fn tanh_into(values: &[Self], out: &mut [Self]) {
        out.copy_from_slice(values);
        Self::tanh_in_place(out);
    }
    /// The logistic sigmoid `1 / (1 + exp(-x))` of every element, in place, computed as
    /// `1 / (1 + e)` for `x >= 0` and `e / (1 + e)` for `x < 0` with `e = exp(-|x|)`, so that no
    /// exponential overflows: for `f64` with the C library's `exp`; for `f32` vectorised, within 4
    /// units in the last place, flushed to zero below `f32::MIN_POSITIVE` (`x < -87.3`) as
    /// [`Float::exp_in_place`] is.
    fn sigmoid_in_place(values: &mut [Self]);
}

impl Float for f32 {
    const EXP_BLOCK: usize = crate::EXP_LANES;
    const PRODUCT_ROWS: usize = 8;
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn exp_in_place(values: &mut [Self]) {
        exp::exp_in_place_f32(values);
    }
    #[inline]
    fn tanh_in_place(values: &mut [Self]) {
        exp::tanh_in_place_f32(values);
    }
    #[inline]
    fn tanh_into(values: &[Self], out: &mut [Self]) {
        exp::tanh_into_f32(values, out);
    }
    #[inline]
    fn sigmoid_in_place(values: &mut [Self]) {
        exp::sigmoid_in_place_f32(values);
    }
}

impl Float for f64 {
    const EXP_BLOCK: usize = 1;
    const PRODUCT_ROWS: usize = 4;
    fn from_f64(value: f64) -> Self {
        value
    }
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn exp_in_place(values: &mut [Self]) {
        for value in values {
            *value = value.exp();
        }
    }
    #[inline]
    fn tanh_in_place(values: &mut [Self]) {
        for value in values {
            *value = value.tanh();
        }
    }
    #[inline]
    fn tanh_into(values: &[Self], out: &mut [Self]) {
        assert_eq!(
            values.len(),
            out.len(),
            "tanh_into needs slices of one length"
        );
        for (out, value) in out.iter_mut().zip(values) {
            *out = value.tanh();
        }
    }
    #[inline]
    fn sigmoid_in_place(values: &mut [Self]) {
        for value in values {
            let x = *value;
            let e = (-x.abs()).exp();
            *value = if x >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
        }
    }
}
