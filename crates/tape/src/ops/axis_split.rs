//! How the ops along one axis (reductions, softmax, log-softmax) see a tensor: its row-major
//! shape split around the axis into `[outer, len, inner]`. The `len` elements of one lane along the
//! axis sit `inner` apart, and consecutive lanes of one outer block sit next to each other, so a
//! reduction over a block is a sum of `len` contiguous rows of `inner` elements (a loop the
//! compiler vectorises) and the last axis (`inner == 1`) is a plain row loop.
//!
//! ndarray's `lanes`/`sum_axis` would do the same walk through a dynamic-rank view, which costs
//! more per call than these three integers and allocates beyond four axes; the tests use ndarray's
//! axis reductions as the independent oracle instead.

use crate::TapeError;
use crate::tensor::MAX_AXES;

/// A shape split around one axis: `outer` blocks of `len` rows of `inner` elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AxisSplit {
    /// The product of the lengths before the axis.
    pub(super) outer: usize,
    /// The length of the axis.
    pub(super) len: usize,
    /// The product of the lengths after the axis (1 for the last axis).
    pub(super) inner: usize,
}

impl AxisSplit {
    /// The split of `shape` around `axis`, or a shape error of `op` if there is no such axis.
    pub(super) fn new(op: &'static str, shape: &[usize], axis: usize) -> Result<Self, TapeError> {
        if axis >= shape.len() {
            let detail = format!(
                "axis {axis} is out of range for {shape:?}, which has {} axes",
                shape.len()
            );
            return Err(TapeError::shape(op, detail));
        }
        Ok(AxisSplit {
            outer: shape[..axis].iter().product(),
            len: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        })
    }

    /// The number of lanes along the axis, which is the number of elements of the reduced tensor.
    pub(super) fn lanes(self) -> usize {
        self.outer * self.inner
    }

    /// The offsets of the elements of lane `lane` (lanes numbered in the row-major order of the
    /// reduced tensor), in order along the axis.
    pub(super) fn lane(self, lane: usize) -> impl Iterator<Item = usize> + Clone {
        let start = lane / self.inner * self.len * self.inner + lane % self.inner;
        (0..self.len).map(move |i| start + i * self.inner)
    }
}

/// A shape kept inline, so that sizing a reduction's output allocates nothing.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reduced {
    dims: [usize; MAX_AXES],
    axes: usize,
}

impl Reduced {
    /// `shape` without `axis`, or with `axis` of length 1 if `keepdim` (which an existing axis
    /// guarantees is within [`MAX_AXES`]).
    pub(super) fn new(shape: &[usize], axis: usize, keepdim: bool) -> Self {
        let mut dims = [0; MAX_AXES];
        dims[..shape.len()].copy_from_slice(shape);
        if keepdim {
            dims[axis] = 1;
            return Reduced {
                dims,
                axes: shape.len(),
            };
        }
        dims.copy_within(axis + 1..shape.len(), axis);
        Reduced {
            dims,
            axes: shape.len() - 1,
        }
    }

    /// The lengths of the axes.
    pub(super) fn as_slice(&self) -> &[usize] {
        &self.dims[..self.axes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_steps_by_the_inner_size() {
        // [2, 3, 4] around axis 1: element (o, i, j) is at 12 o + 4 i + j, and lane o * 4 + j.
        let split = AxisSplit::new("test", &[2, 3, 4], 1).unwrap();
        assert_eq!(
            (split.outer, split.len, split.inner, split.lanes()),
            (2, 3, 4, 8)
        );
        assert_eq!(split.lane(6).collect::<Vec<_>>(), vec![14, 18, 22]);
        let last = AxisSplit::new("test", &[2, 3], 1).unwrap();
        assert_eq!(last.lane(1).collect::<Vec<_>>(), vec![3, 4, 5]);
    }

    #[test]
    fn reduced_shapes_drop_or_keep_the_axis() {
        assert_eq!(Reduced::new(&[2, 3, 4], 1, false).as_slice(), &[2, 4]);
        assert_eq!(Reduced::new(&[2, 3, 4], 1, true).as_slice(), &[2, 1, 4]);
        assert_eq!(Reduced::new(&[5], 0, false).as_slice(), &[] as &[usize]);
        assert!(AxisSplit::new("sum_axis", &[2, 3], 2).is_err());
    }
}
