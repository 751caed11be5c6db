//! The element types a tape can hold.

use ndarray::NdFloat;

/// A floating-point element type: `f32` or `f64`.
///
/// [`NdFloat`] brings the arithmetic and the math functions (`exp`, `ln`, `sqrt`, ...); this trait adds
/// the two conversions the engine needs to move constants such as an epsilon in and out of the type.
pub trait Float: NdFloat + Default {
    /// The nearest value of this type to `value`.
    fn from_f64(value: f64) -> Self;
    /// This value widened (or kept) as an `f64`.
    fn to_f64(self) -> f64;
}

impl Float for f32 {
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Float for f64 {
    fn from_f64(value: f64) -> Self {
        value
    }
    fn to_f64(self) -> f64 {
        self
    }
}
