//! The element types a tape can hold.

use ndarray::NdFloat;

use crate::exp;

/// A floating-point element type: `f32` or `f64`.
///
/// [`NdFloat`] brings the arithmetic and the math functions (`exp`, `ln`, `sqrt`, ...); this trait adds
/// the two conversions the engine needs to move constants such as an epsilon in and out of the type,
/// and an exponential of whole slices.
pub trait Float: NdFloat + Default {
    /// The nearest value of this type to `value`.
    fn from_f64(value: f64) -> Self;
    /// This value widened (or kept) as an `f64`.
    fn to_f64(self) -> f64;
    /// `exp` of every element, in place: for `f64` the C library's `exp` one element at a time
    /// (what Python's `math.exp` returns, to the bit); for `f32` a polynomial the compiler
    /// vectorises, [`EXP_LANES`](crate::EXP_LANES) at a time, within 2 units in the last place.
    fn exp_in_place(values: &mut [Self]);
}

impl Float for f32 {
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
}

impl Float for f64 {
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
}
