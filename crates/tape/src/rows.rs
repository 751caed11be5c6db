//! The ops' arithmetic on plain row-major slices, for code that computes without a tape (an
//! inference decoder that feeds one position at a time, say) and must round exactly as the ops do.
//!
//! [`Tape::linear`](crate::Tape::linear) and [`Tape::rms_norm`](crate::Tape::rms_norm) run these
//! very functions, so a forward pass written with them gives the tape's numbers to the bit.

use crate::Float;
use crate::kernels::{self, Matrix, MatrixMut};

/// A weight `W [outputs, inputs]` stored once for products `x W^T`: transposed, its rows padded
/// to whole register tiles, the layout the linear op builds from its weights on every call.
///
/// ```
/// use tape::rows::Linear;
///
/// let mut linear = Linear::new(2, 3);
/// linear.pack(&[1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0]); // [[1, 0, 0], [1, 1, 1]]
/// let mut out = [10.0, 20.0];
/// linear.add_product(&[3.0, 4.0, 5.0], &mut out);
/// assert_eq!(out, [10.0 + 3.0, 20.0 + 12.0]);
/// ```
#[derive(Clone, Debug)]
pub struct Linear<F> {
    inputs: usize,
    outputs: usize,
    /// `W^T`: `inputs` rows of `kernels::padded(outputs)` elements.
    transposed: Vec<F>,
}

impl<F: Float> Linear<F> {
    /// Room for a weight of `outputs` rows of `inputs` columns, all zero; [`Linear::pack`] fills
    /// it.
    pub fn new(outputs: usize, inputs: usize) -> Self {
        Linear {
            inputs,
            outputs,
            transposed: vec![F::zero(); inputs * kernels::padded(outputs)],
        }
    }

    /// The number of inputs (the weight's columns).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The number of outputs (the weight's rows).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Copies the row-major `weight [outputs, inputs]` in. Allocates nothing.
    ///
    /// # Panics
    /// If `weight` does not hold `outputs * inputs` elements.
    pub fn pack(&mut self, weight: &[F]) {
        self.pack_stacked(&[weight]);
    }

    /// Copies the row-major weights `[W_1; W_2; ..]`, stacked along their rows, in: the layout
    /// [`Tape::linear_stacked`](crate::Tape::linear_stacked) builds, so a product gives the
    /// outputs of each weight side by side. Allocates nothing.
    ///
    /// # Panics
    /// If the weights do not have `inputs` columns and `outputs` rows together.
    pub fn pack_stacked(&mut self, weights: &[&[F]]) {
        let total: usize = weights.iter().map(|weight| weight.len()).sum();
        assert_eq!(
            total,
            self.outputs * self.inputs,
            "weights of {} rows of {} inputs",
            self.outputs,
            self.inputs
        );
        let stride = kernels::padded(self.outputs);
        let mut offset = 0;
        for weight in weights {
            assert!(
                weight.len().is_multiple_of(self.inputs.max(1)),
                "a weight of {} inputs",
                self.inputs
            );
            let weight_rows = weight.len() / self.inputs.max(1);
            let out = MatrixMut::new(&mut self.transposed[offset..], self.inputs, weight_rows);
            let weight = Matrix::new(weight, weight_rows, self.inputs);
            kernels::transpose_into(weight, out.with_stride(stride));
            offset += weight_rows;
        }
    }

    /// `out[r] += x[r] W^T` for every row `r` of the row-major `x [rows, inputs]` and
    /// `out [rows, outputs]`. Each product is summed over the inputs in order, from zero, then
    /// added to `out`: with `out` zero this is [`Tape::linear`](crate::Tape::linear)'s value, and
    /// with `out` a residual it is `tape.add(tape.linear(x, w), residual)`'s.
    ///
    /// # Panics
    /// If `x` and `out` do not hold the same number of rows.
    pub fn add_product(&self, x: &[F], out: &mut [F]) {
        self.apply(x, out, kernels::add_product);
    }

    /// `out[r] = x[r] W^T`: what [`Linear::add_product`] adds, written over `out` (the very
    /// kernel [`Tape::linear`](crate::Tape::linear) writes its output with).
    ///
    /// # Panics
    /// As [`Linear::add_product`].
    pub fn product(&self, x: &[F], out: &mut [F]) {
        self.apply(x, out, kernels::set_product);
    }

    /// `kernel(x, W^T, out)` after checking that `x` and `out` are rows of the same count.
    fn apply(
        &self,
        x: &[F],
        out: &mut [F],
        kernel: fn(Matrix<'_, F>, Matrix<'_, F>, MatrixMut<'_, F>),
    ) {
        let rows = x.len() / self.inputs.max(1);
        assert!(
            x.len() == rows * self.inputs && out.len() == rows * self.outputs,
            "x of {} and out of {} elements are not rows of {} inputs and {} outputs",
            x.len(),
            out.len(),
            self.inputs,
            self.outputs
        );
        let transposed = Matrix::new(&self.transposed, self.inputs, self.outputs);
        kernel(
            Matrix::new(x, rows, self.inputs),
            transposed.with_stride(kernels::padded(self.outputs)),
            MatrixMut::new(out, rows, self.outputs),
        );
    }
}

/// `out = row / sqrt(mean(row^2) + epsilon)`, as [`Tape::rms_norm`](crate::Tape::rms_norm)
/// without a gain computes each row; returns the inverse RMS it multiplied by.
///
/// ```
/// let mut out = [0.0f64; 2];
/// tape::rows::rms_norm(&[3.0, 4.0], &mut out, 0.0);
/// assert!((out[0] - 3.0 / 12.5f64.sqrt()).abs() < 1e-15);
/// ```
pub fn rms_norm<F: Float>(row: &[F], out: &mut [F], epsilon: F) -> F {
    let size = F::from_f64(row.len() as f64);
    let mean_square = row.iter().fold(F::zero(), |sum, &x| sum + x * x) / size;
    let inverse_rms = (mean_square + epsilon).sqrt().recip();
    for (y, &x) in out.iter_mut().zip(row) {
        *y = x * inverse_rms;
    }
    inverse_rms
}

/// `max(x, 0)` of every element, in place, as [`Tape::relu`](crate::Tape::relu) computes it.
pub fn relu_in_place<F: Float>(values: &mut [F]) {
    for x in values {
        *x = relu(*x);
    }
}

/// One element of [`relu_in_place`], [`Tape::relu`](crate::Tape::relu)'s forward.
#[inline]
pub(crate) fn relu<F: Float>(x: F) -> F {
    if x > F::zero() { x } else { F::zero() }
}
