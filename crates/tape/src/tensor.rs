//! What the tape stores: a row-major buffer and its shape, reshaped in place.

use std::fmt;

use ndarray::{Array, ArrayBase, ArrayD, ArrayViewD, ArrayViewMutD, Data, Dimension, IxDyn};

use crate::Float;

/// The most axes a [`Tensor`] can have: six, enough for attention's `[batch, heads, time, head_dim]`
/// with two to spare. The shape lives inline in the tensor, so a fixed bound keeps reshaping free of
/// allocation.
pub const MAX_AXES: usize = 6;

/// A value on the tape (a parameter, an op's result or a gradient): row-major elements and a shape
/// of at most [`MAX_AXES`] axes.
///
/// Documents change length every step, and with them the shape of most values. An `ndarray::ArrayD`
/// rebuilds its dynamic-rank shape on every such change, which cost about a fifth of a small model's
/// training step; a `Tensor` only overwrites a few integers and resizes its `Vec` within its
/// capacity. The ndarray view of the same memory is one call away ([`Tensor::view`],
/// [`Tensor::view_mut`]) for code that wants ndarray's operations.
///
/// The buffer keeps the elements of the largest shape it has held: a smaller shape uses its first
/// `len` elements, and growing back within them writes nothing, where a `Vec` cut to the smaller
/// length would zero every regrown element before the op overwrites it.
#[derive(Clone)]
pub struct Tensor<F> {
    data: Vec<F>,
    /// The elements of the current shape: `data[..len]`.
    len: usize,
    dims: [usize; MAX_AXES],
    axes: usize,
}

impl<F: Float> Tensor<F> {
    /// A tensor of zeros of shape `shape`.
    ///
    /// # Panics
    /// If `shape` has more than [`MAX_AXES`] axes.
    pub fn zeros(shape: &[usize]) -> Self {
        let mut tensor = Tensor::empty();
        tensor.resize(shape).fill(F::zero());
        tensor
    }

    /// A vector of no elements; creating one allocates nothing.
    pub(crate) fn empty() -> Self {
        Tensor {
            data: Vec::new(),
            len: 0,
            dims: [0; MAX_AXES],
            axes: 1,
        }
    }

    /// Gives the tensor the shape `shape`, reusing its buffer (no allocation when it is big enough),
    /// and returns its elements to be overwritten: their values are unspecified (the old elements,
    /// zero for ones it never held). Custom ops size their output and saved state with it.
    ///
    /// # Panics
    /// If `shape` has more than [`MAX_AXES`] axes.
    pub fn resize(&mut self, shape: &[usize]) -> &mut [F] {
        assert!(
            shape.len() <= MAX_AXES,
            "a tensor has at most {MAX_AXES} axes, got shape {shape:?}"
        );
        // Element by element: a copy of a slice this short would be a call of `memcpy`.
        self.dims = std::array::from_fn(|axis| shape.get(axis).copied().unwrap_or(0));
        self.axes = shape.len();
        let len = shape.iter().product();
        if len > self.data.len() {
            self.data.resize(len, F::zero());
        }
        self.len = len;
        &mut self.data[..len]
    }

    /// The length of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.dims[..self.axes]
    }

    /// The number of axes: 0 for a scalar, 1 for a vector, 2 for a matrix.
    pub fn ndim(&self) -> usize {
        self.axes
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[F] {
        &self.data[..self.len]
    }

    /// The elements in row-major order, to modify in place.
    pub fn as_mut_slice(&mut self) -> &mut [F] {
        &mut self.data[..self.len]
    }

    /// The length of the last axis (1 for a scalar): the width of a row to the row-wise ops.
    pub fn row_len(&self) -> usize {
        self.shape().last().copied().unwrap_or(1)
    }

    /// The tensor as an ndarray view.
    pub fn view(&self) -> ArrayViewD<'_, F> {
        ArrayViewD::from_shape(IxDyn(self.shape()), self.as_slice())
            .expect("the buffer holds exactly the shape's elements")
    }

    /// The tensor as a mutable ndarray view.
    pub fn view_mut(&mut self) -> ArrayViewMutD<'_, F> {
        let shape = IxDyn(&self.dims[..self.axes]);
        ArrayViewMutD::from_shape(shape, &mut self.data[..self.len])
            .expect("the buffer holds exactly the shape's elements")
    }

    /// Makes this tensor a copy of `array` (any layout), reusing the buffer.
    ///
    /// # Panics
    /// If the array has more than [`MAX_AXES`] axes.
    pub fn assign(&mut self, array: &ArrayViewD<'_, F>) {
        self.resize(array.shape());
        match array.as_slice() {
            Some(elements) => self.as_mut_slice().copy_from_slice(elements),
            // ndarray's assign walks a transposed or sliced view in strides, far faster than its
            // element iterator.
            None => self.view_mut().assign(array),
        }
    }

    /// A copy as an owned ndarray array.
    pub fn to_array(&self) -> ArrayD<F> {
        self.view().to_owned()
    }
}

impl<F: Float, D: Dimension> From<Array<F, D>> for Tensor<F> {
    /// The array's elements in row-major order, whatever its memory layout.
    ///
    /// # Panics
    /// If the array has more than [`MAX_AXES`] axes.
    fn from(array: Array<F, D>) -> Self {
        let mut tensor = Tensor::empty();
        tensor.assign(&array.view().into_dyn());
        tensor
    }
}

/// Equal shapes and equal elements (the buffer past `len` holds leftovers of larger shapes, which
/// do not count).
impl<F: Float> PartialEq for Tensor<F> {
    fn eq(&self, other: &Tensor<F>) -> bool {
        self.shape() == other.shape() && self.as_slice() == other.as_slice()
    }
}

/// Equal shapes and equal elements, as ndarray compares two arrays.
impl<F: Float, S: Data<Elem = F>, D: Dimension> PartialEq<ArrayBase<S, D>> for Tensor<F> {
    fn eq(&self, array: &ArrayBase<S, D>) -> bool {
        self.shape() == array.shape() && self.as_slice().iter().eq(array.iter())
    }
}

impl<F: Float> fmt::Debug for Tensor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.view(), f)
    }
}

impl<F: Float> fmt::Display for Tensor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.view(), f)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{arr1, arr2};

    use super::*;

    #[test]
    fn resizing_keeps_the_buffer_and_changes_only_the_shape() {
        let mut tensor = Tensor::<f64>::zeros(&[4, 8]);
        let buffer = tensor.as_slice().as_ptr();
        tensor.resize(&[3]).copy_from_slice(&[1.0, 2.0, 3.0]);
        assert_eq!(tensor.shape(), &[3]);
        tensor.resize(&[2, 16]);
        assert_eq!((tensor.shape(), tensor.len()), (&[2, 16][..], 32));
        assert_eq!(
            tensor.as_slice().as_ptr(),
            buffer,
            "no reallocation within the capacity"
        );
        assert_eq!(tensor.resize(&[]).len(), 1, "a scalar has one element");
    }

    #[test]
    fn a_smaller_shape_is_the_first_elements_and_growing_back_rewrites_nothing() {
        let mut tensor = Tensor::<f64>::zeros(&[4]);
        tensor.as_mut_slice().copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(tensor.resize(&[2, 1]), &[1.0, 2.0]);
        assert_eq!((tensor.len(), tensor.view().shape()), (2, &[2, 1][..]));
        assert_eq!(tensor, Tensor::from(arr2(&[[1.0], [2.0]])));
        // Regrown within the largest shape held, the elements are those left there; beyond it,
        // zeros.
        assert_eq!(tensor.resize(&[5]), &[1.0, 2.0, 3.0, 4.0, 0.0]);
    }

    #[test]
    fn equality_ignores_what_earlier_shapes_left_behind() {
        let mut reshaped = Tensor::<f64>::zeros(&[2, 3]);
        reshaped.resize(&[2]).fill(0.0);
        assert_eq!(reshaped, Tensor::zeros(&[2]));
        assert_ne!(Tensor::<f64>::zeros(&[2, 1]), Tensor::zeros(&[1, 2]));
    }

    #[test]
    fn arrays_of_any_layout_arrive_in_row_major_order() {
        let transposed = arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).reversed_axes();
        let tensor = Tensor::from(transposed.clone());
        assert_eq!(tensor.shape(), &[2, 3]);
        assert_eq!(tensor.as_slice(), &[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        assert_eq!(tensor, transposed);
        assert_eq!(tensor.view(), transposed.into_dyn());
        let mut vector = Tensor::from(arr1(&[1.0f32, 2.0]));
        vector.view_mut()[[1]] = 5.0;
        assert_eq!(vector.to_array(), arr1(&[1.0f32, 5.0]).into_dyn());
        assert_eq!(vector.row_len(), 2);
    }

    #[test]
    #[should_panic(expected = "at most 6 axes")]
    fn more_than_six_axes_are_refused() {
        Tensor::<f32>::zeros(&[1, 1, 1, 1, 1, 1, 1]);
    }
}
