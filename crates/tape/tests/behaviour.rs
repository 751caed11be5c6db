//! The tape's contract beyond single ops: reuse, repeated backward, clearing, no-grad mode, errors.
//! Expected values are worked out by hand in the comments.

use ndarray::{Array2, ArrayD, arr0, arr1, arr2, s};
use tape::{Tape, TapeError, Tensor};

fn vector(values: &[f64]) -> ArrayD<f64> {
    arr1(values).into_dyn()
}

/// Equal up to the round-off of a different summation order.
fn assert_close(actual: &Tensor<f64>, expected: &ArrayD<f64>) {
    assert_eq!(actual.shape(), expected.shape());
    for (a, e) in actual.as_slice().iter().zip(expected) {
        assert!(
            (a - e).abs() <= 1e-14 * (1.0 + e.abs()),
            "{actual} != {expected}"
        );
    }
}

#[test]
fn a_value_used_several_times_sums_its_gradients() {
    // loss = sum(x * x + x): d loss / dx = 2x + 1 = [3, -1, 7] for x = [1, -1, 3].
    let mut tape = Tape::new();
    let x = tape.parameter(vector(&[1.0, -1.0, 3.0]));
    let square = tape.mul(x, x).unwrap();
    let both = tape.add(square, x).unwrap();
    let loss = tape.sum(both).unwrap();
    assert_eq!(tape.scalar(loss), 2.0 + 0.0 + 12.0);
    let gradients = tape.backward(loss).unwrap();
    assert_eq!(gradients.parameter(x), &vector(&[3.0, -1.0, 7.0]));
}

#[test]
fn a_second_backward_gives_the_same_gradients_not_double() {
    let mut tape = Tape::new();
    let x = tape.parameter(vector(&[0.5, 2.0]));
    let e = tape.exp(x).unwrap();
    let loss = tape.sum(e).unwrap();
    let first = tape.backward(loss).unwrap().parameter(x).clone();
    let mut reused = tape.backward(loss).unwrap();
    tape.backward_into(loss, &mut reused).unwrap();
    // d/dx sum(exp(x)) = exp(x)
    assert_eq!(first, vector(&[0.5f64.exp(), 2.0f64.exp()]));
    assert_eq!(reused.parameter(x), &first);
}

#[test]
fn a_reused_container_holds_nothing_of_the_step_before() {
    // Gradient buffers are written by their first contribution, not zeroed in advance: a weight
    // used twice must still add both uses, and what the loss no longer depends on must read zero.
    let mut tape = Tape::new();
    let w = tape.parameter(arr2(&[[1.0, 2.0], [3.0, 4.0]]));
    let b = tape.parameter(vector(&[1.0, 1.0]));
    let x = tape.constant(vector(&[1.0, 2.0]));
    // Step 1: loss = sum(W x + b): dW = [1, 1]^T x^T = [[1, 2], [1, 2]], db = [1, 1].
    let y = tape.linear(x, w).unwrap();
    let y = tape.add(y, b).unwrap();
    let loss = tape.sum(y).unwrap();
    let mut gradients = tape.backward(loss).unwrap();
    assert_eq!(
        gradients.parameter(w),
        &arr2(&[[1.0, 2.0], [1.0, 2.0]]).into_dyn()
    );
    assert_eq!(gradients.parameter(b), &vector(&[1.0, 1.0]));
    // Step 2: loss = sum(W x) + sum(W x2) with x2 = [3, -1], b unused, and a product z the loss
    // does not read: dW = [[1 + 3, 2 - 1], [1 + 3, 2 - 1]], db = 0, dz = 0.
    tape.clear();
    let x = tape.constant(vector(&[1.0, 2.0]));
    let x2 = tape.constant(vector(&[3.0, -1.0]));
    let z = tape.linear(x2, w).unwrap();
    let y1 = tape.linear(x, w).unwrap();
    let y2 = tape.linear(x2, w).unwrap();
    let (s1, s2) = (tape.sum(y1).unwrap(), tape.sum(y2).unwrap());
    let loss = tape.add(s1, s2).unwrap();
    tape.backward_into(loss, &mut gradients).unwrap();
    assert_eq!(
        gradients.parameter(w),
        &arr2(&[[4.0, 1.0], [4.0, 1.0]]).into_dyn()
    );
    assert_eq!(gradients.parameter(b), &vector(&[0.0, 0.0]));
    assert_eq!(gradients.get(z).unwrap(), &vector(&[0.0, 0.0]));
    assert_eq!(gradients.get(y1).unwrap(), &vector(&[1.0, 1.0]));
}

#[test]
fn gradients_of_intermediate_values_are_available() {
    // y = 3x, loss = sum(y * y): d loss / dy = 2y = 6x.
    let mut tape = Tape::new();
    let x = tape.parameter(vector(&[1.0, 2.0]));
    let y = tape.scale(x, 3.0).unwrap();
    let square = tape.mul(y, y).unwrap();
    let loss = tape.sum(square).unwrap();
    let gradients = tape.backward(loss).unwrap();
    assert_eq!(gradients.get(y).unwrap(), &vector(&[6.0, 12.0]));
    assert_eq!(gradients.parameter(x), &vector(&[18.0, 36.0]));
}

#[test]
fn clearing_keeps_parameters_and_rejects_stale_values() {
    let mut tape = Tape::new();
    let w = tape.parameter(vector(&[1.0, 2.0]));
    let old = tape.scale(w, 2.0).unwrap();
    tape.clear();
    assert!(tape.is_empty());
    assert_eq!(tape.try_value(old), Err(TapeError::StaleVar(old)));
    assert!(matches!(tape.exp(old), Err(TapeError::StaleVar(_))));
    // The parameter survives, and the next step computes from it as the first did.
    let new = tape.scale(w, 2.0).unwrap();
    assert_eq!(tape.value(new), &vector(&[2.0, 4.0]));
    let loss = tape.sum(new).unwrap();
    assert_eq!(
        tape.backward(loss).unwrap().parameter(w),
        &vector(&[2.0, 2.0])
    );
}

#[test]
fn handles_from_another_tape_are_refused() {
    // Two tapes with the same layout: index 0 is a parameter on both, so only the tape's identity
    // in the handle can tell them apart.
    let mut first = Tape::new();
    let mut second = Tape::new();
    let w = first.parameter(vector(&[1.0, 2.0]));
    let other = second.parameter(vector(&[5.0, 6.0]));
    let on_first = first.scale(w, 2.0).unwrap();
    assert_eq!(second.try_value(w), Err(TapeError::ForeignVar(w)));
    assert_eq!(
        second.try_value(on_first),
        Err(TapeError::ForeignVar(on_first))
    );
    assert_eq!(second.exp(w), Err(TapeError::ForeignVar(w)));
    assert_eq!(second.add(other, w), Err(TapeError::ForeignVar(w)));
    assert!(second.backward(on_first).is_err());
    let message = second.exp(w).unwrap_err().to_string();
    assert!(message.contains("belongs to another tape"), "{message}");
    // Gradients of one tape do not answer for another tape's handles.
    let loss = first.sum(on_first).unwrap();
    let gradients = first.backward(loss).unwrap();
    assert!(gradients.get(other).is_none());
    assert_eq!(gradients.get(w).unwrap(), &vector(&[2.0, 2.0]));
}

#[test]
#[should_panic(expected = "is not a parameter of this tape")]
fn a_parameter_of_another_tape_cannot_be_modified() {
    let mut first = Tape::<f64>::new();
    let mut second = Tape::<f64>::new();
    let w = first.parameter(vector(&[1.0]));
    second.parameter(vector(&[2.0]));
    second.parameter_mut(w);
}

#[test]
fn a_step_after_clear_matches_a_fresh_tape() {
    // Buffers reused from a step with other shapes must not leak into the values of the next.
    let run = |tape: &mut Tape<f64>, w| {
        let x = tape.constant(arr2(&[[1.0, -2.0], [0.5, 3.0], [2.0, 1.0]]).into_dyn());
        let y = tape.linear(x, w).unwrap();
        let s = tape.softmax(y).unwrap();
        let loss = tape.softmax_cross_entropy(s, &[0, 1, 1]).unwrap();
        (
            tape.scalar(loss),
            tape.backward(loss).unwrap().parameter(w).clone(),
        )
    };
    let weights = arr2(&[[0.1, 0.2], [-0.3, 0.4]]).into_dyn();
    let mut fresh = Tape::new();
    let w = fresh.parameter(weights.clone());
    let expected = run(&mut fresh, w);

    let mut reused = Tape::new();
    let w = reused.parameter(weights);
    let big = reused.constant(ArrayD::from_elem(vec![7, 9], 5.0));
    reused.relu(big).unwrap();
    reused.clear();
    assert_eq!(run(&mut reused, w), expected);
}

#[test]
fn without_grad_records_values_but_no_links() {
    let mut tape = Tape::new();
    let w = tape.parameter(vector(&[1.0, 2.0]));
    let loss = tape.without_grad(|tape| {
        assert!(!tape.is_recording());
        let e = tape.exp(w).unwrap();
        tape.sum(e).unwrap()
    });
    assert!(tape.is_recording());
    assert_eq!(tape.scalar(loss), 1f64.exp() + 2f64.exp());
    // Nothing links the loss to w, so its gradient is zero.
    assert_eq!(
        tape.backward(loss).unwrap().parameter(w),
        &vector(&[0.0, 0.0])
    );
}

#[test]
fn backward_needs_a_single_element() {
    let mut tape = Tape::new();
    let x = tape.parameter(vector(&[1.0, 2.0]));
    let y = tape.exp(x).unwrap();
    let error = tape.backward(y).err().unwrap();
    assert_eq!(error, TapeError::NotScalar { shape: vec![2] });
    assert!(error.to_string().contains("reduce it with sum or mean"));
    // A 0-d and a one-element vector are both fine.
    let one = tape.constant(vector(&[4.0]));
    assert!(tape.backward(one).is_ok());
    let zero_d = tape.constant(arr0(4.0).into_dyn());
    assert!(tape.backward(zero_d).is_ok());
}

#[test]
fn shape_errors_name_the_op_and_the_shapes() {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(ArrayD::zeros(vec![3, 4]));
    let x5 = tape.constant(ArrayD::zeros(vec![5]));
    let x3 = tape.constant(ArrayD::zeros(vec![3]));
    let m = tape.constant(ArrayD::zeros(vec![2, 3]));
    let message = |result: Result<tape::Var, TapeError>| result.unwrap_err().to_string();

    assert_eq!(
        message(tape.add(x5, x3)),
        "add: shape mismatch: [5] and [3] do not broadcast: aligned at the last axis, each pair \
         of lengths must be equal or one of them 1"
    );
    assert!(
        message(tape.matvec(w, x5)).contains("linear: shape mismatch: x is [5] but W is [3, 4]")
    );
    assert!(message(tape.matvec(w, m)).starts_with("matvec: shape mismatch: x must be a vector"));
    assert!(message(tape.matmul(m, m)).contains("a is [2, 3] but b is [2, 3]"));
    assert!(message(tape.row(x5, 0)).contains("table must be a matrix, got [5]"));
    assert_eq!(
        tape.gather(w, &[0, 3]).unwrap_err(),
        TapeError::Index {
            op: "gather",
            index: 3,
            len: 3
        }
    );
    // The last-axis slice and concat are slice_axis and concat_axis, and say so.
    assert_eq!(
        message(tape.slice(m, 2..4)),
        "slice_axis: shape mismatch: range 2..4 does not fit in axis 1 of [2, 3], of length 3"
    );
    assert!(message(tape.concat(&[x5, m])).contains("parts [5] and [2, 3] differ"));
    assert!(message(tape.concat(&[])).contains("needs at least one part"));
    assert!(
        message(tape.softmax_cross_entropy(m, &[0])).contains("need one target per row, got 1")
    );
    assert_eq!(
        tape.softmax_cross_entropy(x3, &[3])
            .unwrap_err()
            .to_string(),
        "softmax_cross_entropy: index 3 is out of range for length 3"
    );
    let empty = tape.constant(ArrayD::zeros(vec![0]));
    assert!(message(tape.mean(empty)).contains("mean of an empty array"));
    assert!(message(tape.softmax(empty)).contains("needs a non-empty vector or matrix"));
    // A failed op records nothing.
    let before = tape.len();
    let _ = tape.add(x5, x3);
    assert_eq!(tape.len(), before);
}

#[test]
fn f32_tapes_compute_the_same_math() {
    // softmax([0, ln 3]) = [1/4, 3/4]
    let mut tape = Tape::<f32>::new();
    let x = tape.parameter(arr1(&[0.0f32, 3f32.ln()]).into_dyn());
    let p = tape.softmax(x).unwrap();
    let values = tape.value(p).as_slice();
    assert!((values[0] - 0.25).abs() < 1e-6 && (values[1] - 0.75).abs() < 1e-6);
    // d p[1] / dx = p1 * (onehot(1) - p) = [-3/16, 3/16]
    let pick = tape.constant(arr1(&[0.0f32, 1.0]).into_dyn());
    let loss = tape.dot(p, pick).unwrap();
    let gradient = tape
        .backward(loss)
        .unwrap()
        .parameter(x)
        .as_slice()
        .to_vec();
    assert!((gradient[0] + 0.1875).abs() < 1e-6 && (gradient[1] - 0.1875).abs() < 1e-6);
}

#[test]
fn forward_values_match_independent_formulas() {
    // Oracles: ndarray's own `dot` for the products, the textbook formulas for the rest.
    let x = arr2(&[[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]]);
    let w = arr2(&[
        [0.2, -0.1, 0.4],
        [1.0, 0.0, -2.0],
        [0.3, 0.3, 0.3],
        [-1.0, 2.0, 0.5],
    ]);
    let b = arr2(&[[1.0, -1.0], [2.0, 0.5], [0.0, 3.0]]);
    let mut tape = Tape::new();
    let (xv, wv, bv) = (
        tape.constant(x.clone().into_dyn()),
        tape.constant(w.clone().into_dyn()),
        tape.constant(b.clone().into_dyn()),
    );
    let linear = tape.linear(xv, wv).unwrap();
    assert_close(tape.value(linear), &x.dot(&w.t()).into_dyn());
    // Stacked weights give the single products side by side (wider than a tile, to cross one).
    let tall = ndarray::Array2::from_shape_fn((20, 3), |(i, j)| (i as f64 - 2.0 * j as f64) * 0.1);
    let tall_v = tape.constant(tall.clone().into_dyn());
    let stacked = tape.linear_stacked(xv, &[wv, tall_v]).unwrap();
    let expected = ndarray::concatenate![ndarray::Axis(1), x.dot(&w.t()), x.dot(&tall.t())];
    assert_close(tape.value(stacked), &expected.into_dyn());
    let product = tape.matmul(xv, bv).unwrap();
    assert_close(tape.value(product), &x.dot(&b).into_dyn());
    let row = tape.slice(xv, 0..3).unwrap();
    let first = tape.gather(xv, &[0]).unwrap();
    assert_eq!(tape.value(row), &x.clone().into_dyn());
    let first_row = tape.constant(x.row(0).to_owned().into_dyn());
    let matvec = tape.matvec(wv, first_row).unwrap();
    assert_close(tape.value(matvec), &w.dot(&x.row(0)).into_dyn());
    let vecmat = tape.vecmat(first_row, bv).unwrap();
    assert_close(tape.value(vecmat), &x.row(0).dot(&b).into_dyn());
    assert_eq!(
        tape.value(first),
        &x.slice(ndarray::s![0..1, ..]).to_owned().into_dyn()
    );

    // rmsnorm([3, 4]) with eps 0: mean square 12.5, so [3, 4] / sqrt(12.5)
    let v = tape.constant(vector(&[3.0, 4.0]));
    let normed = tape.rms_norm(v, None, 0.0).unwrap();
    let expected = vector(&[3.0 / 12.5f64.sqrt(), 4.0 / 12.5f64.sqrt()]);
    assert!(
        (&tape.value(normed).view() - &expected)
            .iter()
            .all(|d| d.abs() < 1e-15)
    );
    // cross-entropy of logits [0, ln 3] with target 1: -ln(3/4)
    let logits = tape.constant(vector(&[0.0, 3f64.ln()]));
    let loss = tape.softmax_cross_entropy(logits, &[1]).unwrap();
    assert!((tape.scalar(loss) + 0.75f64.ln()).abs() < 1e-15);
}

/// `linear` transposes either the weights or the input and the result, whichever is cheaper for
/// the shapes; both sum in the same order, so a row's outputs do not depend on how many rows came
/// with it.
#[test]
fn linear_gives_a_row_the_same_bits_whatever_the_number_of_rows() {
    let (rows, inner, outputs) = (20, 64, 128);
    let weights = Array2::from_shape_fn((outputs, inner), |(o, i)| {
        ((o * 31 + i * 7) as f32 * 0.37).sin()
    });
    let inputs = Array2::from_shape_fn((rows, inner), |(r, i)| {
        ((r * 13 + i * 5) as f32 * 0.11).cos()
    });
    let mut tape = Tape::new();
    let w = tape.parameter(weights.into_dyn());
    // At these shapes 20 rows transpose the weights, and 16 or fewer the input (see linear_forward).
    let all = tape.constant(inputs.clone().into_dyn());
    let all = tape.linear(all, w).unwrap();
    for count in [1, 7, 16] {
        let first = tape.constant(inputs.slice(s![..count, ..]).to_owned().into_dyn());
        let first = tape.linear(first, w).unwrap();
        let expected = &tape.value(all).as_slice()[..count * outputs];
        assert_eq!(tape.value(first).as_slice(), expected, "{count} rows");
    }
}

/// Evaluation sums the per-row losses its own way; they must be the very numbers the training loss
/// averages, so a per-row sum matches the mean over rows to the bit.
#[test]
fn row_losses_are_the_numbers_the_mean_cross_entropy_averages() {
    let logits = Array2::from_shape_fn((5, 7), |(r, c)| ((r * 7 + c) as f32 * 0.71).sin() * 3.0);
    let targets = [3, 0, 6, 6, 1];
    let mut tape = Tape::<f32>::new();
    let logits = tape.constant(logits);
    let mean = tape.softmax_cross_entropy(logits, &targets).unwrap();
    let rows = tape.row_cross_entropy(logits, &targets).unwrap();
    let losses = tape.value(rows).as_slice();
    assert_eq!(losses.len(), 5);
    let total = losses.iter().fold(0.0f32, |sum, &loss| sum + loss);
    assert_eq!((total / 5.0).to_bits(), tape.scalar(mean).to_bits());
    // The oracle for each row: ln(sum(exp(row))) - row[target], in f64.
    let values = tape.value(logits).as_slice().to_vec();
    for ((row, &target), &loss) in values.chunks(7).zip(&targets).zip(losses) {
        let log_sum: f64 = row.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
        let expected = log_sum - f64::from(row[target]);
        assert!(
            (f64::from(loss) - expected).abs() < 1e-5,
            "{loss} vs {expected}"
        );
    }
}
