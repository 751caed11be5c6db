//! Adam against microgpt.py's update written out by hand on one parameter.

use scalar::Adam;

/// microgpt.py's loop body for one parameter, transcribed independently of the crate's code.
fn reference_update(
    p: &mut f64,
    m: &mut f64,
    v: &mut f64,
    grad: f64,
    step: usize,
    num_steps: usize,
) {
    let (learning_rate, beta1, beta2, eps_adam) = (0.01, 0.85, 0.99, 1e-8);
    let lr_t = learning_rate * (1.0 - step as f64 / num_steps as f64);
    *m = beta1 * *m + (1.0 - beta1) * grad;
    *v = beta2 * *v + (1.0 - beta2) * grad.powf(2.0);
    let m_hat = *m / (1.0 - f64::powf(beta1, (step + 1) as f64));
    let v_hat = *v / (1.0 - f64::powf(beta2, (step + 1) as f64));
    *p -= lr_t * m_hat / (v_hat.powf(0.5) + eps_adam);
}

/// Step 0 by hand, g = 0.5, p = 1: m = 0.15 * 0.5 = 0.075, v = 0.01 * 0.25 = 0.0025,
/// m_hat = 0.075 / 0.15 = 0.5, v_hat = 0.0025 / 0.01 = 0.25, so
/// p = 1 - 0.01 * 0.5 / (0.5 + 1e-8) = 1 - 0.01 * (1 - 2e-8 + ..) = 0.9900000002 (to 13 digits).
#[test]
fn first_step_by_hand() {
    let mut adam = Adam::new(1);
    let (mut params, mut grads) = ([1.0], [0.5]);
    adam.update(&mut params, &mut grads, 0, 100, 0.01);
    assert!(
        (params[0] - 0.990_000_000_2).abs() < 1e-13,
        "p = {}",
        params[0]
    );
    // 1 - 0.85 and 1 - 0.99 are not exact in f64 (0.15000000000000002, 0.010000000000000009),
    // so the moments are off the decimal values in the 17th digit.
    assert!((adam.first_moment()[0] - 0.075).abs() < 1e-16);
    assert!((adam.second_moment()[0] - 0.0025).abs() < 1e-17);
    assert_eq!(grads[0], 0.0, "gradients are consumed");
}

/// Ten steps with changing gradients follow the transcribed formula bit for bit, including the
/// linear decay of the learning rate and the bias corrections.
#[test]
fn many_steps_match_the_formula_exactly() {
    let num_steps = 10;
    let mut adam = Adam::new(1);
    let mut params = [0.3];
    let (mut p, mut m, mut v) = (0.3, 0.0, 0.0);
    for step in 0..num_steps {
        let grad = (step as f64 * 0.7).sin() - 0.2;
        adam.update(&mut params, &mut [grad], step, num_steps, 0.01);
        reference_update(&mut p, &mut m, &mut v, grad, step, num_steps);
        assert_eq!(params[0], p, "step {step}");
        assert_eq!(adam.first_moment()[0], m, "m at step {step}");
        assert_eq!(adam.second_moment()[0], v, "v at step {step}");
    }
}

/// lr_t = lr * (1 - step / num_steps). With beta1 = beta2 = 0 and eps = 0 an update moves a
/// parameter by exactly lr_t * sign(g), which isolates the decay: 0.01 * (1 - s / 10) at step s.
#[test]
fn learning_rate_decays_linearly() {
    for (step, expected) in [(0, 0.01), (5, 0.005), (9, 0.01 * (1.0 - 0.9))] {
        let mut adam = Adam::new(1);
        (adam.beta1, adam.beta2, adam.eps) = (0.0, 0.0, 0.0);
        let mut params = [0.0];
        adam.update(&mut params, &mut [3.0], step, 10, 0.01);
        assert_eq!(-params[0], expected, "step {step}");
    }
}

/// The public hyperparameters are the ones used: eps = 1 visibly shrinks the first step from
/// lr * g / |g| to lr * g / (|g| + 1) (m_hat = g, v_hat = g^2 at step 0 for any betas).
#[test]
fn hyperparameters_are_honoured() {
    let mut adam = Adam::new(1);
    adam.eps = 1.0;
    let mut params = [0.0];
    adam.update(&mut params, &mut [-4.0], 0, 1, 0.5);
    assert!(
        (params[0] - 0.5 * 4.0 / 5.0).abs() < 1e-15,
        "p = {}",
        params[0]
    );
}

#[test]
#[should_panic(expected = "gradients")]
fn mismatched_lengths_panic() {
    Adam::new(2).update(&mut [0.0], &mut [0.0], 0, 1, 0.01);
}
