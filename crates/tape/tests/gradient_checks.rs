//! Every op's backward against central finite differences (the oracle), on random shapes and values
//! (the helpers, and why outputs are projected onto random weights, are in `common`).

mod common;

use common::{array, check, two_of_a_shape, vector_or_matrix};
use proptest::collection::vec;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn add_sub_mul((a, b, weights) in two_of_a_shape(-2.0..2.0)) {
        let inputs = [a, b];
        check(&inputs, &weights, |tape, v| tape.add(v[0], v[1]))?;
        check(&inputs, &weights, |tape, v| tape.sub(v[0], v[1]))?;
        check(&inputs, &weights, |tape, v| tape.mul(v[0], v[1]))?;
        // The same value on both sides: its gradient is the sum of both uses.
        check(&inputs[..1], &weights, |tape, v| tape.mul(v[0], v[0]))?;
    }

    #[test]
    fn scale_exp((a, _, weights) in two_of_a_shape(-2.0..2.0), factor in -3.0..3.0f64) {
        check(std::slice::from_ref(&a), &weights, |tape, v| tape.scale(v[0], factor))?;
        check(&[a], &weights, |tape, v| tape.exp(v[0]))?;
    }

    #[test]
    fn log_of_positive_values((a, _, weights) in two_of_a_shape(0.2..3.0)) {
        check(&[a], &weights, |tape, v| tape.log(v[0]))?;
    }

    #[test]
    fn relu_away_from_the_kink((a, _, weights) in two_of_a_shape(0.01..2.0), signs in vec(any::<bool>(), 64)) {
        // Finite differences across relu's kink at 0 are meaningless: keep |x| >= 0.01.
        let mut a = a;
        for (x, &negative) in a.iter_mut().zip(&signs) {
            if negative { *x = -*x; }
        }
        check(&[a], &weights, |tape, v| tape.relu(v[0]))?;
    }

    #[test]
    fn linear_and_matvec(
        (x, w, weights) in (1usize..5, 1usize..6, 1usize..6, any::<bool>()).prop_flat_map(|(rows, input, output, batched)| {
            let x_shape = if batched { vec![rows, input] } else { vec![input] };
            let y_shape = if batched { vec![rows, output] } else { vec![output] };
            (array(x_shape, -2.0..2.0), array(vec![output, input], -2.0..2.0), array(y_shape, -1.0..1.0))
        })
    ) {
        let batched = x.ndim() == 2;
        check(&[x.clone(), w.clone()], &weights, |tape, v| tape.linear(v[0], v[1]))?;
        if !batched {
            check(&[w, x], &weights, |tape, v| tape.matvec(v[0], v[1]))?;
        }
    }

    #[test]
    fn linear_stacked(
        (x, w1, w2, weights) in (1usize..5, 1usize..6, 1usize..6, 1usize..20, any::<bool>()).prop_flat_map(|(rows, input, first, second, batched)| {
            let x_shape = if batched { vec![rows, input] } else { vec![input] };
            let y_shape = if batched { vec![rows, first + second] } else { vec![first + second] };
            (array(x_shape, -2.0..2.0), array(vec![first, input], -2.0..2.0), array(vec![second, input], -2.0..2.0), array(y_shape, -1.0..1.0))
        })
    ) {
        check(&[x, w1, w2], &weights, |tape, v| tape.linear_stacked(v[0], &[v[1], v[2]]))?;
    }

    #[test]
    fn matmul_and_vecmat(
        (a, b, weights) in (1usize..5, 1usize..6, 1usize..6, any::<bool>()).prop_flat_map(|(rows, inner, columns, batched)| {
            let a_shape = if batched { vec![rows, inner] } else { vec![inner] };
            let out_shape = if batched { vec![rows, columns] } else { vec![columns] };
            (array(a_shape, -2.0..2.0), array(vec![inner, columns], -2.0..2.0), array(out_shape, -1.0..1.0))
        })
    ) {
        let batched = a.ndim() == 2;
        check(&[a.clone(), b.clone()], &weights, |tape, v| tape.matmul(v[0], v[1]))?;
        if !batched {
            check(&[a, b], &weights, |tape, v| tape.vecmat(v[0], v[1]))?;
        }
    }

    #[test]
    fn row_and_gather(
        (table, rows, weights, row_weights) in (1usize..6, 1usize..5, 1usize..6).prop_flat_map(|(height, width, count)| {
            (
                array(vec![height, width], -2.0..2.0),
                vec(0..height, count),
                array(vec![count, width], -1.0..1.0),
                array(vec![width], -1.0..1.0),
            )
        })
    ) {
        // Repeated rows are likely with these sizes: their gradients must add up.
        check(std::slice::from_ref(&table), &weights, |tape, v| tape.gather(v[0], &rows))?;
        check(&[table], &row_weights, |tape, v| tape.row(v[0], rows[0]))?;
    }

    #[test]
    fn slice_and_concat(
        (a, b, start, len, slice_weights, concat_weights) in (vector_or_matrix(), 1usize..4).prop_flat_map(|(shape, extra)| {
            let width = *shape.last().unwrap();
            let mut other = shape.clone();
            *other.last_mut().unwrap() = extra;
            let mut joined = shape.clone();
            *joined.last_mut().unwrap() = width + extra;
            (0..width).prop_flat_map(move |start| {
                let (shape, other, joined) = (shape.clone(), other.clone(), joined.clone());
                (1..=width - start).prop_flat_map(move |len| {
                    let mut sliced = shape.clone();
                    *sliced.last_mut().unwrap() = len;
                    (
                        array(shape.clone(), -2.0..2.0),
                        array(other.clone(), -2.0..2.0),
                        Just(start),
                        Just(len),
                        array(sliced, -1.0..1.0),
                        array(joined.clone(), -1.0..1.0),
                    )
                })
            })
        })
    ) {
        check(std::slice::from_ref(&a), &slice_weights, |tape, v| tape.slice(v[0], start..start + len))?;
        check(&[a, b], &concat_weights, |tape, v| tape.concat(&[v[0], v[1]]))?;
    }

    #[test]
    fn dot_sum_mean((a, b, _) in two_of_a_shape(-2.0..2.0), weight in -2.0..2.0f64) {
        let weight = ndarray::arr0(weight).into_dyn();
        check(&[a.clone(), b], &weight, |tape, v| tape.dot(v[0], v[1]))?;
        check(std::slice::from_ref(&a), &weight, |tape, v| tape.sum(v[0]))?;
        check(&[a], &weight, |tape, v| tape.mean(v[0]))?;
    }

    #[test]
    fn softmax_rows((a, _, weights) in two_of_a_shape(-3.0..3.0)) {
        check(&[a], &weights, |tape, v| tape.softmax(v[0]))?;
    }

    #[test]
    fn rms_norm_rows((a, _, weights) in two_of_a_shape(-2.0..2.0), epsilon in prop_oneof![Just(1e-5), 0.01..1.0f64]) {
        check(&[a], &weights, |tape, v| tape.rms_norm(v[0], None, epsilon))?;
    }

    #[test]
    fn softmax_cross_entropy(
        (logits, targets, weight) in vector_or_matrix().prop_flat_map(|shape| {
            let classes = *shape.last().unwrap();
            let rows = if shape.len() == 2 { shape[0] } else { 1 };
            (array(shape, -3.0..3.0), vec(0..classes, rows), -2.0..2.0f64)
        })
    ) {
        let weight = ndarray::arr0(weight).into_dyn();
        check(&[logits], &weight, |tape, v| tape.softmax_cross_entropy(v[0], &targets))?;
    }

    /// Each row's loss on its own, weighted differently downstream.
    #[test]
    fn row_cross_entropy(
        (logits, targets, weights) in (1usize..5, 1usize..6).prop_flat_map(|(rows, classes)| {
            (array(vec![rows, classes], -3.0..3.0), vec(0..classes, rows), array(vec![rows], -2.0..2.0))
        })
    ) {
        check(&[logits], &weights, |tape, v| tape.row_cross_entropy(v[0], &targets))?;
    }

    /// Rows split into segments of random lengths, each segment weighing the same.
    #[test]
    fn segmented_cross_entropy(
        (logits, targets, lengths, weight) in (vec(1usize..4, 1..4), 1usize..6).prop_flat_map(|(lengths, classes)| {
            let rows = lengths.iter().sum();
            (array(vec![rows, classes], -3.0..3.0), vec(0..classes, rows), Just(lengths), -2.0..2.0f64)
        })
    ) {
        let weight = ndarray::arr0(weight).into_dyn();
        check(&[logits], &weight, |tape, v| tape.segmented_cross_entropy(v[0], &targets, &lengths))?;
    }
}
