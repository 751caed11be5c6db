//! NumPy's broadcasting rules: two shapes are aligned at their last axis, and along each axis the
//! lengths must be equal or one of them 1 (a missing axis counts as 1). The smaller operand is then
//! read as if repeated along those axes, which is a stride of 0; its gradient is the sum of the
//! output's gradient over the repeats, which the same strides give by adding instead of reading.

use crate::tensor::MAX_AXES;

/// A shape kept inline (no allocation), as the result of broadcasting two shapes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Shape {
    dims: [usize; MAX_AXES],
    axes: usize,
}

impl Shape {
    /// The lengths of the axes.
    pub(crate) fn as_slice(&self) -> &[usize] {
        &self.dims[..self.axes]
    }
}

/// The shape both `a` and `b` broadcast to, or `None` if an axis has two lengths that differ and
/// are both other than 1.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let axes = a.len().max(b.len());
    let mut dims = [0; MAX_AXES];
    for (axis, dim) in dims[..axes].iter_mut().enumerate() {
        let length_of = |shape: &[usize]| {
            let missing = axes - shape.len();
            if axis < missing {
                1
            } else {
                shape[axis - missing]
            }
        };
        *dim = match (length_of(a), length_of(b)) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(Shape { dims, axes })
}

/// The strides (in elements) with which a row-major tensor of shape `input` is read as if it had
/// the broadcast shape `output`: its own row-major strides, and 0 along axes it repeats.
pub(crate) fn strides(input: &[usize], output: &[usize]) -> [usize; MAX_AXES] {
    let missing = output.len() - input.len();
    let mut strides = [0; MAX_AXES];
    let mut stride = 1;
    for (axis, &length) in input.iter().enumerate().rev() {
        if length != 1 {
            strides[missing + axis] = stride;
        }
        stride *= length;
    }
    strides
}

/// Calls `visit(output_offset, a_offset, b_offset)` for every element of a row-major `output`, in
/// order, with the offsets of the elements of `a` and `b` it is made from (read with the strides
/// from [`strides`]).
pub(crate) fn for_each_pair(
    output: &[usize],
    a: &[usize; MAX_AXES],
    b: &[usize; MAX_AXES],
    mut visit: impl FnMut(usize, usize, usize),
) {
    if output.contains(&0) {
        return;
    }
    let Some(last) = output.len().checked_sub(1) else {
        visit(0, 0, 0);
        return;
    };
    let (width, a_step, b_step) = (output[last], a[last], b[last]);
    let mut index = [0; MAX_AXES];
    let (mut a_base, mut b_base, mut out) = (0, 0, 0);
    loop {
        for column in 0..width {
            visit(
                out + column,
                a_base + column * a_step,
                b_base + column * b_step,
            );
        }
        out += width;
        // The odometer over the outer axes: advance the innermost one, carrying into the next.
        let mut axis = last;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            a_base += a[axis];
            b_base += b[axis];
            if index[axis] < output[axis] {
                break;
            }
            index[axis] = 0;
            a_base -= a[axis] * output[axis];
            b_base -= b[axis] * output[axis];
        }
    }
}

/// The innermost runs of a broadcast: stretches of `width` consecutive output elements along which
/// both operands also advance one element at a time, so that a loop over a run is a plain zip of
/// three slices, which the compiler vectorises. Axes of length 1 are dropped and the innermost axes
/// merged while all three tensors are laid out contiguously across them, so equal shapes make one
/// run of the whole tensor and a bias `[C]` added to `[N, C]` makes `N` runs of `C`.
pub(crate) struct Runs {
    outer: Shape,
    a: [usize; MAX_AXES],
    b: [usize; MAX_AXES],
    width: usize,
}

impl Runs {
    /// The runs of `output` read with strides `a` and `b` (from [`strides`]), or `None` if an
    /// operand repeats along the innermost axis (its stride there is 0), which has no runs.
    pub(crate) fn new(
        output: &[usize],
        a: &[usize; MAX_AXES],
        b: &[usize; MAX_AXES],
    ) -> Option<Runs> {
        let mut outer = Shape {
            dims: [0; MAX_AXES],
            axes: 0,
        };
        let (mut outer_a, mut outer_b) = ([0; MAX_AXES], [0; MAX_AXES]);
        if output.contains(&0) {
            // An empty output is one run of no elements.
            return Some(Runs {
                outer,
                a: outer_a,
                b: outer_b,
                width: 0,
            });
        }
        for axis in (0..output.len()).filter(|&axis| output[axis] != 1) {
            outer.dims[outer.axes] = output[axis];
            outer_a[outer.axes] = a[axis];
            outer_b[outer.axes] = b[axis];
            outer.axes += 1;
        }
        let mut width = 1;
        while let Some(axis) = outer.axes.checked_sub(1) {
            if outer_a[axis] != width || outer_b[axis] != width {
                break;
            }
            width *= outer.dims[axis];
            outer.axes = axis;
        }
        // Every axis left is longer than 1, so a width of 1 means the innermost one did not merge.
        (width > 1 || outer.axes == 0).then_some(Runs {
            outer,
            a: outer_a,
            b: outer_b,
            width,
        })
    }

    /// The number of elements in each run.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Calls `visit(output_offset, a_offset, b_offset)` with the first element of every run, in
    /// order.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(usize, usize, usize)) {
        let width = self.width;
        for_each_pair(self.outer.as_slice(), &self.a, &self.b, |run, a, b| {
            visit(run * width, a, b)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_by_numpys_rules() {
        let shape =
            |a: &[usize], b: &[usize]| broadcast_shapes(a, b).map(|s| s.as_slice().to_vec());
        assert_eq!(shape(&[32, 200], &[200]), Some(vec![32, 200]));
        assert_eq!(shape(&[2, 1, 4], &[2, 3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(shape(&[], &[3, 2]), Some(vec![3, 2]));
        assert_eq!(shape(&[3, 0], &[1]), Some(vec![3, 0]));
        assert_eq!(shape(&[3, 2], &[3]), None, "trailing axes 2 and 3 differ");
        assert_eq!(shape(&[4, 2], &[3, 2]), None);
    }

    #[test]
    fn offsets_repeat_the_broadcast_operand() {
        // a [2, 1, 3] against b [2, 1] gives [2, 2, 3]: a repeats along axis 1, b along axes 0 and 2.
        let output = [2, 2, 3];
        let (a, b) = (strides(&[2, 1, 3], &output), strides(&[2, 1], &output));
        let mut seen = Vec::new();
        for_each_pair(&output, &a, &b, |out, x, y| seen.push((out, x, y)));
        // By hand: a[i, 0, k] is at 3i + k, b[j, 0] at j.
        let expected: Vec<_> = (0..12)
            .map(|out| {
                let (i, j, k) = (out / 6, (out / 3) % 2, out % 3);
                (out, 3 * i + k, j)
            })
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_scalar_output_is_one_element_and_an_empty_one_none() {
        let mut count = 0;
        for_each_pair(&[], &[0; MAX_AXES], &[0; MAX_AXES], |_, _, _| count += 1);
        assert_eq!(count, 1);
        for_each_pair(&[2, 0], &[0; MAX_AXES], &[0; MAX_AXES], |_, _, _| {
            count += 1
        });
        assert_eq!(count, 1);
    }

    /// The offsets of the output, `a` and `b` where a run starts.
    type Starts = Vec<(usize, usize, usize)>;

    /// The runs `Runs` finds for `a` against `b`, as their width and starts.
    fn runs_of(a: &[usize], b: &[usize]) -> Option<(usize, Starts)> {
        let output = broadcast_shapes(a, b).unwrap();
        let output = output.as_slice();
        let runs = Runs::new(output, &strides(a, output), &strides(b, output))?;
        let mut starts = Vec::new();
        runs.for_each(|o, i, j| starts.push((o, i, j)));
        Some((runs.width(), starts))
    }

    #[test]
    fn equal_shapes_are_one_run_of_the_whole_tensor() {
        assert_eq!(runs_of(&[2, 3, 4], &[2, 3, 4]), Some((24, vec![(0, 0, 0)])));
        // Axes of length 1 do not split the run, even the innermost.
        assert_eq!(runs_of(&[5, 1], &[5, 1]), Some((5, vec![(0, 0, 0)])));
    }

    #[test]
    fn a_bias_makes_one_run_per_row_reading_the_bias_from_its_start() {
        let starts = vec![(0, 0, 0), (3, 3, 0)];
        assert_eq!(runs_of(&[2, 3], &[3]), Some((3, starts)));
        // [2, 1, 3] against [4, 3]: a repeats along the middle axis, b along the first.
        let starts = (0..8).map(|run| (3 * run, 3 * (run / 4), 3 * (run % 4)));
        assert_eq!(runs_of(&[2, 1, 3], &[4, 3]), Some((3, starts.collect())));
    }

    #[test]
    fn an_operand_repeated_along_the_innermost_axis_has_no_runs() {
        assert_eq!(runs_of(&[4, 3], &[4, 1]), None);
        assert_eq!(runs_of(&[3], &[]), None, "a scalar against a vector");
    }

    #[test]
    fn scalars_are_one_run_of_one_and_empty_tensors_one_run_of_none() {
        assert_eq!(runs_of(&[], &[]), Some((1, vec![(0, 0, 0)])));
        assert_eq!(runs_of(&[1, 1], &[1]), Some((1, vec![(0, 0, 0)])));
        assert_eq!(runs_of(&[3, 0], &[3, 1]), Some((0, vec![(0, 0, 0)])));
    }
}
