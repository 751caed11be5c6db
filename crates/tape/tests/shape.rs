//! The shape and selection ops (reshape, permute, slicing and joining along any axis, embedding,
//! masking, broadcast_to): forward values against ndarray's own `permuted_axes`, `slice_axis`,
//! `concatenate`, `stack`, `select` and `broadcast` (the independent oracle), backwards against
//! finite differences on random shapes of one to four axes, and the errors they report.

mod common;

use common::{array, check};
use ndarray::{Array2, ArrayD, Axis, IxDyn, Slice, Zip, arr2};
use proptest::collection::vec;
use proptest::prelude::*;
use tape::{Tape, TapeError, Var};

/// A shape of one to four axes, each of length one to three.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..4, 1..=4)
}

/// A shape that broadcasts to `shape`: some of its axes set to 1 and some leading ones dropped
/// (possibly all of them, a scalar).
fn broadcastable(shape: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
    let axes = shape.len();
    (vec(any::<bool>(), axes), 0..=axes).prop_map(move |(ones, dropped)| {
        let lengths = shape.iter().zip(ones).skip(dropped);
        lengths
            .map(|(&length, one)| if one { 1 } else { length })
            .collect()
    })
}

/// The value `op` gives on constants holding `inputs`.
fn value_of(
    inputs: &[ArrayD<f64>],
    op: impl Fn(&mut Tape<f64>, &[Var]) -> Result<Var, TapeError>,
) -> ArrayD<f64> {
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|x| tape.constant(x.clone())).collect();
    let output = op(&mut tape, &vars).expect("valid arguments");
    tape.value(output).to_array()
}

/// The message of the error `op` gives on constants holding `inputs`.
fn error_of(
    inputs: &[&ArrayD<f64>],
    op: impl Fn(&mut Tape<f64>, &[Var]) -> Result<Var, TapeError>,
) -> String {
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|&x| tape.constant(x.clone())).collect();
    let before = tape.len();
    let error = op(&mut tape, &vars).expect_err("invalid arguments");
    assert_eq!(tape.len(), before, "a refused op records nothing");
    error.to_string()
}

/// A shape with lengths along one axis replaced.
fn with_length(shape: &[usize], axis: usize, length: usize) -> Vec<usize> {
    let mut shape = shape.to_vec();
    shape[axis] = length;
    shape
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Reshape keeps the row-major order (else the reversed-shape oracle, built from the elements
    /// in order, differs) and passes the gradient through unpermuted.
    #[test]
    fn reshape_and_its_one_liners(
        (x, y, weights, axis) in shape().prop_flat_map(|shape| {
            let reversed: Vec<usize> = shape.iter().rev().copied().collect();
            (array(shape.clone(), -2.0..2.0), array(reversed.clone(), -2.0..2.0),
             array(reversed, -1.0..1.0), 0..shape.len())
        })
    ) {
        let reversed: Vec<usize> = x.shape().iter().rev().copied().collect();
        let in_order = ArrayD::from_shape_vec(IxDyn(&reversed), x.iter().copied().collect()).unwrap();
        prop_assert_eq!(value_of(std::slice::from_ref(&x), |t, v| t.reshape(v[0], &reversed)), in_order);
        // Fed into a product with another value, and a value times its own reshape.
        check(&[x.clone(), y], &weights, |t, v| {
            let reshaped = t.reshape(v[0], &reversed)?;
            t.mul(reshaped, v[1])
        })?;

        let flat: usize = x.shape()[axis..].iter().product();
        let mut flattened = x.shape()[..axis].to_vec();
        flattened.push(flat);
        let expected = x.to_shape(IxDyn(&flattened)).unwrap().to_owned();
        prop_assert_eq!(value_of(std::slice::from_ref(&x), |t, v| t.flatten(v[0], axis)), expected);

        let expected = x.clone().insert_axis(Axis(axis));
        prop_assert_eq!(value_of(std::slice::from_ref(&x), |t, v| t.unsqueeze(v[0], axis)), expected.clone());
        prop_assert_eq!(value_of(std::slice::from_ref(&expected), |t, v| t.squeeze(v[0], axis)), x.clone());
        let weights = x.mapv(|x| x.sin());
        check(&[x], &weights, |t, v| {
            let wide = t.unsqueeze(v[0], axis)?;
            let back = t.squeeze(wide, axis)?;
            t.mul(back, v[0])
        })?;
    }

    /// Permute writes `permuted_axes`'s elements in row-major order; its backward is the inverse
    /// permutation (a wrong one sends gradients to the wrong elements, which the random
    /// projection exposes).
    #[test]
    fn permute_matches_permuted_axes(
        (x, axes, y, weights) in shape().prop_flat_map(|shape| {
            let identity: Vec<usize> = (0..shape.len()).collect();
            Just(identity).prop_shuffle().prop_flat_map(move |axes| {
                let permuted: Vec<usize> = axes.iter().map(|&axis| shape[axis]).collect();
                (array(shape.clone(), -2.0..2.0), Just(axes),
                 array(permuted.clone(), -2.0..2.0), array(permuted, -1.0..1.0))
            })
        })
    ) {
        let expected = x.clone().permuted_axes(IxDyn(&axes));
        prop_assert_eq!(value_of(std::slice::from_ref(&x), |t, v| t.permute(v[0], &axes)), expected);
        check(&[x.clone(), y], &weights, |t, v| {
            let moved = t.permute(v[0], &axes)?;
            t.mul(moved, v[1])
        })?;
        // The same input through two permutes and multiplied: both uses add their gradients.
        check(std::slice::from_ref(&x), &weights, |t, v| {
            let (first, second) = (t.permute(v[0], &axes)?, t.permute(v[0], &axes)?);
            t.mul(first, second)
        })?;
        // Permuted and permuted again (a non-contiguous origin feeding a second reordering).
        let twice: Vec<usize> = axes.iter().map(|&axis| axes[axis]).collect();
        let expected = x.clone().permuted_axes(IxDyn(&twice));
        prop_assert_eq!(value_of(std::slice::from_ref(&x), |t, v| {
            let once = t.permute(v[0], &axes)?;
            t.permute(once, &axes)
        }), expected.clone());
        let weights = expected.mapv(|w| w.cos());
        check(&[x], &weights, |t, v| {
            let once = t.permute(v[0], &axes)?;
            let twice = t.permute(once, &axes)?;
            t.mul(twice, twice)
        })?;
    }

    /// transpose swaps exactly the two axes named (ndarray's `swap_axes`), also an axis with itself.
    #[test]
    fn transpose_matches_swap_axes(
        (x, first, second) in shape().prop_flat_map(|shape| {
            let axes = shape.len();
            (array(shape, -2.0..2.0), 0..axes, 0..axes)
        })
    ) {
        let mut expected = x.clone();
        expected.swap_axes(first, second);
        let weights = expected.mapv(|w| w.sin());
        prop_assert_eq!(value_of(std::slice::from_ref(&x), |t, v| t.transpose(v[0], first, second)), expected);
        check(&[x], &weights, |t, v| {
            let (a, b) = (t.transpose(v[0], first, second)?, t.transpose(v[0], first, second)?);
            t.mul(a, b)
        })?;
    }

    /// slice_axis equals ndarray's `slice_axis`; its gradient lands in the sliced run only, and two
    /// overlapping slices of one input add up where they overlap.
    #[test]
    fn slice_axis_matches_ndarray(
        (x, axis, start, len, other) in shape().prop_flat_map(|shape| {
            (0..shape.len()).prop_flat_map(move |axis| {
                let length = shape[axis];
                let shape = shape.clone();
                (0..length).prop_flat_map(move |start| {
                    (array(shape.clone(), -2.0..2.0), Just(axis), Just(start), 1..=length - start,
                     0..=length - 1)
                })
            })
        })
    ) {
        let expected = x.slice_axis(Axis(axis), Slice::from(start..start + len)).to_owned();
        prop_assert_eq!(value_of(std::slice::from_ref(&x), |t, v| t.slice_axis(v[0], axis, start..start + len)), expected.clone());
        let weights = expected.mapv(|w| w.sin());
        check(std::slice::from_ref(&x), &weights, |t, v| t.slice_axis(v[0], axis, start..start + len))?;
        // A second slice of the same length from another start, times the first.
        let other = other.min(x.shape()[axis] - len);
        check(&[x], &weights, |t, v| {
            let first = t.slice_axis(v[0], axis, start..start + len)?;
            let second = t.slice_axis(v[0], axis, other..other + len)?;
            t.mul(first, second)
        })?;
    }

    /// concat_axis equals ndarray's `concatenate`, with a part used twice getting both shares.
    #[test]
    fn concat_axis_matches_concatenate(
        (x, y, axis, weights) in shape().prop_flat_map(|shape| {
            (0..shape.len(), 1usize..4).prop_flat_map(move |(axis, extra)| {
                let joined = with_length(&shape, axis, 2 * shape[axis] + extra);
                (array(shape.clone(), -2.0..2.0), array(with_length(&shape, axis, extra), -2.0..2.0),
                 Just(axis), array(joined, -1.0..1.0))
            })
        })
    ) {
        let expected = ndarray::concatenate(Axis(axis), &[x.view(), y.view(), x.view()]).unwrap();
        prop_assert_eq!(value_of(&[x.clone(), y.clone()], |t, v| t.concat_axis(&[v[0], v[1], v[0]], axis)), expected);
        check(&[x.clone(), y], &weights, |t, v| t.concat_axis(&[v[0], v[1], v[0]], axis))?;
        let doubled = ndarray::concatenate(Axis(axis), &[x.view(), x.view()]).unwrap();
        let weights = doubled.mapv(|w| w.cos());
        check(&[x], &weights, |t, v| t.concat_axis(&[v[0], v[0]], axis))?;
    }

    /// stack equals ndarray's `stack` at every position of the new axis, the last one included.
    #[test]
    fn stack_matches_ndarray_stack(
        (x, y, axis, weights) in shape().prop_flat_map(|shape| {
            (0..=shape.len()).prop_flat_map(move |axis| {
                let mut stacked = shape.clone();
                stacked.insert(axis, 3);
                (array(shape.clone(), -2.0..2.0), array(shape.clone(), -2.0..2.0), Just(axis),
                 array(stacked, -1.0..1.0))
            })
        })
    ) {
        let expected = ndarray::stack(Axis(axis), &[x.view(), y.view(), x.view()]).unwrap();
        prop_assert_eq!(value_of(&[x.clone(), y.clone()], |t, v| t.stack(&[v[0], v[1], v[0]], axis)), expected);
        check(&[x, y], &weights, |t, v| t.stack(&[v[0], v[1], v[0]], axis))?;
    }

    /// embedding equals ndarray's `select` of the table's rows, shaped `[..ids, C]`, for ids in
    /// any layout; repeated ids (likely at these sizes) add their gradients.
    #[test]
    fn embedding_matches_select(
        (table, ids, weights) in (1usize..6, 1usize..5, vec(1usize..4, 1..=3)).prop_flat_map(|(rows, columns, ids_shape)| {
            let count: usize = ids_shape.iter().product();
            let mut out = ids_shape.clone();
            out.push(columns);
            (array(vec![rows, columns], -2.0..2.0),
             vec(0..rows, count).prop_map(move |ids| ArrayD::from_shape_vec(IxDyn(&ids_shape), ids).unwrap()),
             array(out, -1.0..1.0))
        })
    ) {
        let columns = table.shape()[1];
        let expected = |ids: &ArrayD<usize>| {
            let flat: Vec<usize> = ids.iter().copied().collect();
            let rows = table.select(Axis(0), &flat);
            let mut shape = ids.shape().to_vec();
            shape.push(columns);
            ArrayD::from_shape_vec(IxDyn(&shape), rows.iter().copied().collect()).unwrap()
        };
        prop_assert_eq!(value_of(std::slice::from_ref(&table), |t, v| t.embedding(v[0], &ids)), expected(&ids));
        // A transposed (non-standard layout) id array is read in its logical order.
        let reversed = ids.clone().reversed_axes();
        prop_assert_eq!(value_of(std::slice::from_ref(&table), |t, v| t.embedding(v[0], &reversed)), expected(&reversed));
        check(&[table], &weights, |t, v| t.embedding(v[0], &ids))?;
    }

    /// masked_fill puts `value` where the broadcast mask is nonzero (oracle: ndarray's
    /// `broadcast`); the gradient to the input is 0 there, and a wrong one moves the projection.
    #[test]
    fn masked_fill_with_broadcast_masks(
        (x, mask, weights, value) in shape().prop_flat_map(|shape| {
            broadcastable(shape.clone()).prop_flat_map(move |mask_shape| {
                let count: usize = mask_shape.iter().product();
                (array(shape.clone(), -2.0..2.0),
                 vec(prop_oneof![Just(0.0), Just(1.0), Just(-0.5)], count)
                     .prop_map(move |m| ArrayD::from_shape_vec(IxDyn(&mask_shape), m).unwrap()),
                 array(shape.clone(), -1.0..1.0), -3.0..3.0f64)
            })
        })
    ) {
        let expected = Zip::from(&x)
            .and(&mask.broadcast(x.shape()).unwrap())
            .map_collect(|&x, &m| if m != 0.0 { value } else { x });
        prop_assert_eq!(value_of(&[x.clone(), mask.clone()], |t, v| t.masked_fill(v[0], v[1], value)), expected);
        let fill = |t: &mut Tape<f64>, x: Var| {
            let mask = t.constant(mask.clone());
            t.masked_fill(x, mask, value)
        };
        check(std::slice::from_ref(&x), &weights, |t, v| fill(t, v[0]))?;
        // The input used twice: filled, then times itself.
        check(&[x], &weights, |t, v| {
            let filled = fill(t, v[0])?;
            t.mul(filled, v[0])
        })?;
    }

    /// broadcast_to equals ndarray's `broadcast`; the gradient is the sum over the repeats.
    #[test]
    fn broadcast_to_matches_ndarray_broadcast(
        (x, target, weights) in shape().prop_flat_map(|target| {
            broadcastable(target.clone()).prop_flat_map(move |shape| {
                (array(shape, -2.0..2.0), Just(target.clone()), array(target.clone(), -1.0..1.0))
            })
        })
    ) {
        let expected = x.broadcast(IxDyn(&target)).unwrap().to_owned();
        prop_assert_eq!(value_of(std::slice::from_ref(&x), |t, v| t.broadcast_to(v[0], &target)), expected);
        check(std::slice::from_ref(&x), &weights, |t, v| t.broadcast_to(v[0], &target))?;
        check(&[x], &weights, |t, v| {
            let (a, b) = (t.broadcast_to(v[0], &target)?, t.broadcast_to(v[0], &target)?);
            t.mul(a, b)
        })?;
    }

    /// Causal attention from primitives: each row of the masked softmax is the softmax of its
    /// prefix (computed here with libm's `exp`) and zero after it; its backward passes nothing to
    /// the masked scores, which finite differences agree do not matter.
    #[test]
    fn causal_softmax_from_primitives(
        (scores, weights) in (1usize..6).prop_flat_map(|size| {
            (array(vec![size, size], -3.0..3.0), array(vec![size, size], -1.0..1.0))
        })
    ) {
        let size = scores.shape()[0];
        let expected = ArrayD::from_shape_fn(IxDyn(&[size, size]), |index| {
            let (row, column) = (index[0], index[1]);
            let total: f64 = (0..=row).map(|k| scores[[row, k]].exp()).sum();
            if column > row { 0.0 } else { scores[[row, column]].exp() / total }
        });
        let attention = |t: &mut Tape<f64>, scores: Var| {
            let causal = t.causal_mask(size);
            let masked = t.masked_fill(scores, causal, f64::NEG_INFINITY)?;
            t.softmax(masked)
        };
        let got = value_of(std::slice::from_ref(&scores), |t, v| attention(t, v[0]));
        let close = Zip::from(&got).and(&expected).all(|&a, &b| (a - b).abs() <= 1e-14);
        prop_assert!(close, "{got} differs from {expected}");
        check(&[scores], &weights, |t, v| attention(t, v[0]))?;
    }
}

/// The mask is a selector: nothing flows into it, even when it is a parameter (a gradient there
/// would mean backward treats masked_fill as arithmetic on the mask).
#[test]
fn the_mask_gets_no_gradient() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(arr2(&[[1.0, 2.0], [3.0, 4.0]]));
    let mask = tape.parameter(arr2(&[[0.0, 1.0], [1.0, 0.0]]));
    let filled = tape.masked_fill(x, mask, 9.0).unwrap();
    assert_eq!(*tape.value(filled), arr2(&[[1.0, 9.0], [9.0, 4.0]]));
    let loss = tape.sum(filled).unwrap();
    let gradients = tape.backward(loss).unwrap();
    assert_eq!(
        *gradients.parameter(x),
        arr2(&[[1.0, 0.0], [0.0, 1.0]]),
        "the filled elements get no gradient"
    );
    assert_eq!(*gradients.parameter(mask), Array2::<f64>::zeros((2, 2)));
}

/// The causal mask is 1 exactly where the column is later than the row (else a position would see
/// the future, or not itself).
#[test]
fn causal_mask_marks_the_future() {
    let mut tape = Tape::<f32>::new();
    for size in [0, 1, 4] {
        let mask = tape.causal_mask(size);
        let expected = Array2::from_shape_fn(
            (size, size),
            |(row, column)| {
                if column > row { 1.0f32 } else { 0.0 }
            },
        );
        assert_eq!(*tape.value(mask), expected);
    }
}

/// Every refusal names the op, the shapes it saw and the rule they break.
#[test]
fn errors_name_the_op_the_shapes_and_the_rule() {
    let matrix = ArrayD::<f64>::zeros(IxDyn(&[2, 3]));
    let other = ArrayD::<f64>::zeros(IxDyn(&[3, 3]));
    let six = ArrayD::<f64>::zeros(IxDyn(&[1; 6]));
    let cases: Vec<(String, &[&str])> = vec![
        (
            error_of(&[&matrix], |t, v| t.reshape(v[0], &[4])),
            &["reshape", "[2, 3]", "[4]", "element count"],
        ),
        (
            error_of(&[&matrix], |t, v| t.reshape(v[0], &[1; 7])),
            &["reshape", "more than 6 axes"],
        ),
        (
            error_of(&[&matrix], |t, v| t.permute(v[0], &[0, 0])),
            &["permute", "[0, 0]", "[2, 3]", "permutation"],
        ),
        (
            error_of(&[&matrix], |t, v| t.permute(v[0], &[1])),
            &["permute", "[1]", "[2, 3]"],
        ),
        (
            error_of(&[&matrix], |t, v| t.permute(v[0], &[0, 2])),
            &["permute", "[0, 2]"],
        ),
        (
            error_of(&[&matrix], |t, v| t.transpose(v[0], 0, 2)),
            &["transpose", "[2, 3]", "axes 0 and 2"],
        ),
        (
            error_of(&[&matrix], |t, v| t.slice_axis(v[0], 2, 0..1)),
            &["slice_axis", "axis 2", "[2, 3]"],
        ),
        (
            error_of(&[&matrix], |t, v| t.slice_axis(v[0], 1, 2..5)),
            &["slice_axis", "2..5", "axis 1", "[2, 3]", "length 3"],
        ),
        (
            error_of(&[&matrix, &other], |t, v| t.concat_axis(&[v[0], v[1]], 1)),
            &["concat_axis", "[2, 3]", "[3, 3]", "other than 1"],
        ),
        (
            error_of(&[&matrix], |t, v| t.concat_axis(&[v[0]], 2)),
            &["concat_axis", "axis 2", "[2, 3]"],
        ),
        (
            error_of(&[], |t, _| t.concat_axis(&[], 0)),
            &["concat_axis", "at least one part"],
        ),
        (
            error_of(&[&matrix, &other], |t, v| t.stack(&[v[0], v[1]], 0)),
            &["stack", "[2, 3]", "[3, 3]", "one shape"],
        ),
        (
            error_of(&[&matrix], |t, v| t.stack(&[v[0]], 3)),
            &["stack", "axis 3", "[2, 3]", "below 3"],
        ),
        (
            error_of(&[&six], |t, v| t.stack(&[v[0]], 0)),
            &["stack", "more than 6 axes"],
        ),
        (
            error_of(&[&matrix], |t, v| t.squeeze(v[0], 0)),
            &["squeeze", "axis 0", "[2, 3]", "length 1"],
        ),
        (
            error_of(&[&matrix], |t, v| t.unsqueeze(v[0], 3)),
            &["unsqueeze", "axis 3", "[2, 3]"],
        ),
        (
            error_of(&[&six], |t, v| t.unsqueeze(v[0], 0)),
            &["unsqueeze", "at most 6 axes"],
        ),
        (
            error_of(&[&matrix], |t, v| t.flatten(v[0], 2)),
            &["flatten", "axis 2", "[2, 3]"],
        ),
        (
            error_of(&[&matrix, &ArrayD::zeros(IxDyn(&[2]))], |t, v| {
                t.masked_fill(v[0], v[1], 0.0)
            }),
            &["masked_fill", "mask [2]", "[2, 3]", "broadcast"],
        ),
        (
            error_of(&[&matrix, &ArrayD::zeros(IxDyn(&[1, 2, 3]))], |t, v| {
                t.masked_fill(v[0], v[1], 0.0)
            }),
            &["masked_fill", "mask [1, 2, 3]", "[2, 3]"],
        ),
        (
            error_of(&[&matrix], |t, v| t.broadcast_to(v[0], &[2])),
            &["broadcast_to", "[2, 3]", "[2]", "broadcast"],
        ),
        (
            error_of(&[&ArrayD::zeros(IxDyn(&[3]))], |t, v| {
                t.embedding(v[0], &ndarray::arr1(&[0]))
            }),
            &["embedding", "matrix", "[3]"],
        ),
        (
            error_of(&[&matrix], |t, v| {
                t.embedding(v[0], &ArrayD::<usize>::zeros(IxDyn(&[1; 6])))
            }),
            &["embedding", "[1, 1, 1, 1, 1, 1]", "7 axes"],
        ),
    ];
    for (message, parts) in cases {
        for part in parts {
            assert!(
                message.contains(part),
                "{message:?} does not mention {part:?}"
            );
        }
    }
}

/// An id past the table is an index error naming the op, the id and the table's length.
#[test]
fn out_of_range_ids_are_index_errors() {
    let mut tape = Tape::<f64>::new();
    let table = tape.parameter(ArrayD::zeros(IxDyn(&[5, 2])));
    let error = tape.embedding(table, &arr2(&[[0, 4], [5, 1]])).unwrap_err();
    let expected = TapeError::Index {
        op: "embedding",
        index: 5,
        len: 5,
    };
    assert_eq!(error, expected);
    assert!(error.to_string().contains("embedding: index 5"));
}
