//! Gradient clipping against `torch.nn.utils.clip_grad_norm_`'s published rule: the global L2
//! norm of all gradients, then every gradient times `min(1, max_norm / (norm + 1e-6))`.

use ndarray::{arr1, arr2};
use tape::optim::{GradientClip, Optimizer, Sgd, SgdConfig, clip_coefficient, gradient_norm};
use tape::{Tape, TapeError, Tensor};

/// A tape with two parameters, a `[2]` vector and a `[1, 1]` matrix, both zero.
fn two_parameters() -> Tape<f64> {
    let mut tape = Tape::new();
    tape.parameter(arr1(&[0.0, 0.0]));
    tape.parameter(arr2(&[[0.0]]));
    tape
}

/// Gradients `[3, 4]` and `[[12]]`: together of norm sqrt(9 + 16 + 144) = 13.
fn gradients_of_norm_13() -> Vec<Tensor<f64>> {
    vec![
        Tensor::from(arr1(&[3.0, 4.0])),
        Tensor::from(arr2(&[[12.0]])),
    ]
}

/// Clipped to 6.5, the gradients are multiplied by 6.5 / (13 + 1e-6), torch's factor; a plain SGD
/// step of lr 1 from zero then lands on minus the clipped gradients. A per-tensor norm (5 and 12)
/// or a factor without the 1e-6 would give other values.
#[test]
fn gradients_above_the_norm_are_scaled_by_torchs_factor() {
    let mut tape = two_parameters();
    let gradients = gradients_of_norm_13();
    let mut clip = GradientClip::new();
    let clipped = clip.clip(&tape, &gradients, 6.5).unwrap();
    assert_eq!(clipped.norm, 13.0);
    let factor = 6.5 / (13.0 + 1e-6);
    assert_eq!(clipped.coefficient, factor);
    Sgd::new(SgdConfig::default())
        .step(&mut tape, clipped.gradients, 1.0)
        .unwrap();
    let values: Vec<Vec<f64>> = tape
        .parameters()
        .map(|var| tape.value(var).as_slice().to_vec())
        .collect();
    assert_eq!(
        values,
        [vec![-3.0 * factor, -4.0 * factor], vec![-12.0 * factor]]
    );
}

/// Within the norm nothing changes (the gradients handed on are the very ones given); at exactly
/// the norm torch's factor 13 / (13 + 1e-6) is already below 1, and applies.
#[test]
fn gradients_within_the_norm_are_untouched() {
    let tape = two_parameters();
    let gradients = gradients_of_norm_13();
    let mut clip = GradientClip::new();
    let clipped = clip.clip(&tape, &gradients, 13.5).unwrap();
    assert_eq!(clipped.coefficient, 1.0);
    let first = tape.parameters().next().unwrap();
    assert!(std::ptr::eq(
        clipped.gradients.gradient(0, first).unwrap(),
        &gradients[0]
    ));
    let at_the_norm = clip.clip(&tape, &gradients, 13.0).unwrap();
    assert_eq!(at_the_norm.coefficient, 13.0 / (13.0 + 1e-6));
    assert!(at_the_norm.coefficient < 1.0);
}

/// The norm of many f32 gradients is summed in f64: it matches a plain f64 sum of their squares
/// to f64 rounding.
#[test]
fn the_norm_of_f32_gradients_is_summed_in_f64() {
    let mut tape = Tape::<f32>::new();
    let values: Vec<f32> = (0..100_003)
        .map(|i| ((i % 97) as f32 - 48.0) / 7.0)
        .collect();
    tape.parameter(arr1(&values));
    let gradients = vec![Tensor::from(arr1(&values))];
    let expected = values
        .iter()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt();
    let norm = gradient_norm(&tape, &gradients).unwrap();
    assert!(
        (norm - expected).abs() <= 1e-12 * expected,
        "{norm} vs {expected}"
    );
}

/// The factor on its own: torch's `min(1, max_norm / (norm + 1e-6))`; a norm that is not finite
/// leaves the gradients alone.
#[test]
fn the_coefficient_is_torchs() {
    assert_eq!(clip_coefficient(0.0, 1.0), 1.0);
    assert_eq!(clip_coefficient(4.0, 1.0), 1.0 / (4.0 + 1e-6));
    assert_eq!(clip_coefficient(f64::INFINITY, 1.0), 1.0);
    assert_eq!(clip_coefficient(f64::NAN, 1.0), 1.0);
}

/// A bad maximum or a missing gradient is an argument error naming the problem.
#[test]
fn bad_inputs_are_refused() {
    let tape = two_parameters();
    let gradients = gradients_of_norm_13();
    let mut clip = GradientClip::new();
    for max_norm in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let error = clip.clip(&tape, &gradients, max_norm).err().unwrap();
        assert!(
            matches!(error, TapeError::Argument { op: "clip", .. }),
            "{error}"
        );
        assert!(error.to_string().contains("max_norm"), "{error}");
    }
    let missing = vec![Tensor::from(arr1(&[3.0, 4.0]))];
    let error = clip.clip(&tape, &missing, 1.0).err().unwrap();
    assert!(
        error.to_string().contains("parameter 1 has no gradient"),
        "{error}"
    );
}
