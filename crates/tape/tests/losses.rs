//! Cross-entropy with an ignore index: its backward against finite differences on logits of one to
//! three axes, its values against a per-row loop written out here, its equality to the fused
//! cross-entropies it generalises; and every fused cross-entropy against its composition from
//! `log_softmax`, a one-hot `mul` and `sum_axis`/`mean`, values and gradients, to 1e-12 relative.

mod common;
mod composition;

use common::check;
use composition::{close, same_as_composition};
use ndarray::{Array2, ArrayD, IxDyn, arr0, arr1, arr2};
use proptest::collection::vec;
use proptest::prelude::*;
use tape::{Tape, TapeError, Var};

/// Logits `[.., classes]` with zero to two leading axes, and one target per row in `-1..classes`
/// (at least one of them a class, so the mean is over some rows).
fn logits_and_targets() -> impl Strategy<Value = (ArrayD<f64>, Vec<i64>)> {
    (vec(1usize..=3, 0..=2), 1usize..=5).prop_flat_map(|(mut shape, classes)| {
        let rows: usize = shape.iter().product();
        shape.push(classes);
        let targets = vec(-1..classes as i64, rows).prop_map(move |mut targets| {
            if targets.iter().all(|&t| t == -1) {
                targets[0] = classes as i64 - 1;
            }
            targets
        });
        (common::array(shape, -3.0..3.0), targets)
    })
}

/// The oracle: the mean over the rows not ignored of `ln(sum(exp(row))) - row[target]`, each
/// log-sum-exp shifted by the row's maximum as a careful hand computation would be.
fn cross_entropy_by_rows(logits: &ArrayD<f64>, targets: &[i64], ignore: i64) -> f64 {
    let classes = *logits.shape().last().unwrap();
    let rows = logits.as_slice().unwrap().chunks(classes).zip(targets);
    let (mut total, mut kept) = (0.0, 0);
    for (row, &target) in rows.filter(|&(_, &target)| target != ignore) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        let log_sum_exp = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        total += log_sum_exp - row[target as usize];
        kept += 1;
    }
    total / kept as f64
}

/// The one-hot rows of `targets` over `classes`, zero for the rows whose target is `ignore`.
fn one_hot(targets: &[i64], classes: usize, ignore: Option<i64>) -> Array2<f64> {
    let mut hot = Array2::zeros((targets.len(), classes));
    for (row, &target) in targets.iter().enumerate() {
        if Some(target) != ignore {
            hot[[row, target as usize]] = 1.0;
        }
    }
    hot
}

/// Each row's `-sum(log_softmax(row) * onehot(target))` over the last axis, from primitives: a
/// vector of rows (a scalar for vector logits).
fn composed_row_losses(
    tape: &mut Tape<f64>,
    logits: Var,
    hot: &Array2<f64>,
) -> Result<Var, TapeError> {
    let shape = tape.value(logits).shape().to_vec();
    let last = shape.len() - 1;
    let hot = hot.clone().into_shape_with_order(IxDyn(&shape)).unwrap();
    let log_p = tape.log_softmax(logits, last)?;
    let hot = tape.constant(hot);
    let picked = tape.mul(log_p, hot)?;
    let likelihoods = tape.sum_axis(picked, last, false)?;
    tape.scale(likelihoods, -1.0)
}

fn as_classes(targets: &[usize]) -> Vec<i64> {
    targets.iter().map(|&t| t as i64).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cross_entropy_backward((logits, targets) in logits_and_targets(), weight in -2.0..2.0f64) {
        let weight = arr0(weight).into_dyn();
        check(std::slice::from_ref(&logits), &weight, |tape, v| tape.cross_entropy(v[0], &targets, Some(-1)))?;
        // The logits used twice: in the loss and in a dot with themselves.
        check(&[logits], &weight, |tape, v| {
            let loss = tape.cross_entropy(v[0], &targets, Some(-1))?;
            let square = tape.dot(v[0], v[0])?;
            let scaled = tape.scale(square, 0.1)?;
            tape.add(loss, scaled)
        })?;
    }

    #[test]
    fn cross_entropy_equals_a_per_row_loop((logits, targets) in logits_and_targets()) {
        let mut tape = Tape::new();
        let v = tape.constant(logits.clone());
        let loss = tape.cross_entropy(v, &targets, Some(-1)).unwrap();
        let expected = cross_entropy_by_rows(&logits, &targets, -1);
        close(&[tape.scalar(loss)], &[expected], 1e-14).map_err(TestCaseError::fail)?;
    }

    /// Ignoring rows is dropping them: the loss and the kept rows' gradients have the same bits as
    /// the cross-entropy of the kept rows alone, and the ignored rows' gradients are exactly 0.
    #[test]
    fn ignored_rows_are_as_if_absent((logits, targets) in logits_and_targets()) {
        let classes = *logits.shape().last().unwrap();
        let rows = logits.as_slice().unwrap().chunks(classes).zip(&targets);
        let (kept_rows, kept_targets): (Vec<&[f64]>, Vec<i64>) =
            rows.filter(|&(_, &t)| t != -1).map(|(row, &t)| (row, t)).unzip();
        let kept = ArrayD::from_shape_vec(IxDyn(&[kept_rows.len(), classes]), kept_rows.concat()).unwrap();
        let mut tape = Tape::new();
        let (all, some) = (tape.parameter(logits.clone()), tape.parameter(kept));
        let with_ignored = tape.cross_entropy(all, &targets, Some(-1)).unwrap();
        let without = tape.cross_entropy(some, &kept_targets, None).unwrap();
        prop_assert_eq!(tape.scalar(with_ignored).to_bits(), tape.scalar(without).to_bits());
        let (all_gradient, some_gradient) = (tape.backward(with_ignored).unwrap(), tape.backward(without).unwrap());
        let mut some_rows = some_gradient.parameter(some).as_slice().chunks(classes);
        for (row, &target) in all_gradient.parameter(all).as_slice().chunks(classes).zip(&targets) {
            if target == -1 {
                prop_assert!(row.iter().all(|&g| g == 0.0), "an ignored row's gradient {:?}", row);
            } else {
                prop_assert_eq!(row, some_rows.next().unwrap());
            }
        }
    }

    /// With nothing ignored, cross_entropy is softmax_cross_entropy to the bit, value and gradient.
    #[test]
    fn cross_entropy_without_ignored_rows_is_softmax_cross_entropy(
        (logits, targets) in (1usize..6, 1usize..6).prop_flat_map(|(rows, classes)| {
            (common::array(vec![rows, classes], -3.0..3.0), vec(0..classes, rows))
        })
    ) {
        let mut tape = Tape::new();
        let v = tape.parameter(logits);
        let general = tape.cross_entropy(v, &as_classes(&targets), Some(-1)).unwrap();
        let fused = tape.softmax_cross_entropy(v, &targets).unwrap();
        prop_assert_eq!(tape.scalar(general).to_bits(), tape.scalar(fused).to_bits());
        let (general, fused) = (tape.backward(general).unwrap(), tape.backward(fused).unwrap());
        prop_assert_eq!(general.parameter(v), fused.parameter(v));
    }

    // Fused cross-entropies against compositions from primitives.

    #[test]
    fn softmax_and_row_cross_entropy_equal_log_softmax_picked_by_a_one_hot(
        (logits, targets, row_weights, weight) in common::vector_or_matrix().prop_flat_map(|shape| {
            let classes = *shape.last().unwrap();
            let rows = if shape.len() == 2 { shape[0] } else { 1 };
            (common::array(shape, -3.0..3.0), vec(0..classes, rows), common::array(vec![rows], -2.0..2.0), -2.0..2.0f64)
        })
    ) {
        let classes = *logits.shape().last().unwrap();
        let hot = one_hot(&as_classes(&targets), classes, None);
        let weight = arr0(weight).into_dyn();
        let inputs = std::slice::from_ref(&logits);
        same_as_composition(inputs, &weight, &|t, v| t.softmax_cross_entropy(v[0], &targets), &|t, v| {
            let losses = composed_row_losses(t, v[0], &hot)?;
            t.mean(losses)
        })?;
        if logits.ndim() == 2 {
            same_as_composition(inputs, &row_weights, &|t, v| t.row_cross_entropy(v[0], &targets), &|t, v| {
                composed_row_losses(t, v[0], &hot)
            })?;
        }
    }

    /// Each row weighs 1 / (segments * its segment's length): a dot of the row losses with those
    /// weights.
    #[test]
    fn segmented_cross_entropy_equals_weighted_row_losses(
        (logits, targets, lengths, weight) in (vec(1usize..4, 1..4), 1usize..6).prop_flat_map(|(lengths, classes)| {
            let rows = lengths.iter().sum();
            (common::array(vec![rows, classes], -3.0..3.0), vec(0..classes, rows), Just(lengths), -2.0..2.0f64)
        })
    ) {
        let classes = logits.shape()[1];
        let hot = one_hot(&as_classes(&targets), classes, None);
        let segments = lengths.len() as f64;
        let row_weights: Vec<f64> = lengths.iter().flat_map(|&length| {
            std::iter::repeat_n(1.0 / (segments * length as f64), length)
        }).collect();
        let weight = arr0(weight).into_dyn();
        same_as_composition(&[logits], &weight, &|t, v| t.segmented_cross_entropy(v[0], &targets, &lengths), &|t, v| {
            let losses = composed_row_losses(t, v[0], &hot)?;
            let row_weights = t.constant(arr1(&row_weights));
            t.dot(losses, row_weights)
        })?;
    }

    /// -sum(log_softmax * masked one-hot) / kept rows, on logits of any leading axes.
    #[test]
    fn cross_entropy_equals_a_masked_one_hot_mean((logits, targets) in logits_and_targets(), weight in -2.0..2.0f64) {
        let classes = *logits.shape().last().unwrap();
        let hot = one_hot(&targets, classes, Some(-1));
        let kept = targets.iter().filter(|&&t| t != -1).count() as f64;
        let weight = arr0(weight).into_dyn();
        same_as_composition(&[logits], &weight, &|t, v| t.cross_entropy(v[0], &targets, Some(-1)), &|t, v| {
            let losses = composed_row_losses(t, v[0], &hot)?;
            let total = t.sum(losses)?;
            t.scale(total, 1.0 / kept)
        })?;
    }
}

#[test]
fn an_ignore_index_may_be_a_class() {
    // Targets [0, 1] with class 0 ignored: only row 1 counts, ln(1 + e^2) - 0 for logits [2, 0].
    let mut tape = Tape::<f64>::new();
    let logits = tape.constant(arr2(&[[5.0, 1.0], [2.0, 0.0]]));
    let loss = tape.cross_entropy(logits, &[0, 1], Some(0)).unwrap();
    let expected = (1.0 + 2f64.exp()).ln();
    assert!((tape.scalar(loss) - expected).abs() < 1e-15);
}

#[test]
fn cross_entropy_errors_name_the_op_the_rows_and_the_rule() {
    let mut tape = Tape::<f64>::new();
    let logits = tape.constant(ArrayD::<f64>::zeros(vec![2, 2, 3]));
    let message = |result: Result<Var, TapeError>| result.unwrap_err().to_string();
    assert_eq!(
        tape.cross_entropy(logits, &[0, 1, 3, -1], Some(-1))
            .unwrap_err(),
        TapeError::Index {
            op: "cross_entropy",
            index: 3,
            len: 3
        }
    );
    assert_eq!(
        message(tape.cross_entropy(logits, &[0, -2, 1, 1], Some(-1))),
        "cross_entropy: target -2 of row 1 is negative, and only the ignore index \
         (Some(-1)) may be"
    );
    assert!(
        message(tape.cross_entropy(logits, &[0, -1, 1, 1], None)).contains("target -1 of row 1")
    );
    assert_eq!(
        message(tape.cross_entropy(logits, &[-1; 4], Some(-1))),
        "cross_entropy: every one of the 4 rows has the ignore index Some(-1): the \
         mean over no rows is undefined"
    );
    assert!(
        message(tape.cross_entropy(logits, &[0, 1], None)).contains(
            "logits [2, 2, 3] need a non-empty last axis of classes and one target per row"
        )
    );
    let no_rows = tape.constant(ArrayD::<f64>::zeros(vec![0, 3]));
    assert!(message(tape.cross_entropy(no_rows, &[], None)).contains("there are no rows"));
    let before = tape.len();
    let _ = tape.cross_entropy(logits, &[9; 4], None);
    assert_eq!(tape.len(), before, "a refused loss records nothing");
}
