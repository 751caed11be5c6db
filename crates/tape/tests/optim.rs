//! The optimizers against steps worked by hand from their published update rules, their state
//! saved and restored mid-run, and their refusals.
//!
//! Every hand-worked case starts from `w = [1, -2, 0.5]` and takes two steps with the gradients
//! `g1 = [0.5, -1, 2]` and `g2 = [1, 1, -1]`, given directly (one tensor per parameter) so that the
//! arithmetic of the rule alone is under test; one test goes through a backward pass.

use ndarray::{Array1, arr1};
use proptest::prelude::*;
use tape::optim::{Adam, AdamConfig, AdamW, Optimizer, Sgd, SgdConfig};
use tape::{Float, Tape, TapeError, Tensor, Var};

const START: [f64; 3] = [1.0, -2.0, 0.5];
const G1: [f64; 3] = [0.5, -1.0, 2.0];
const G2: [f64; 3] = [1.0, 1.0, -1.0];

/// A tape holding one parameter `START`.
fn start() -> (Tape<f64>, Var) {
    let mut tape = Tape::new();
    let w = tape.parameter(arr1(&START));
    (tape, w)
}

/// One gradient per parameter, as [`tape::optim::ParameterGradients`] takes it.
fn gradient(values: [f64; 3]) -> Vec<Tensor<f64>> {
    vec![Tensor::from(arr1(&values))]
}

/// Two steps of `optimizer` at learning rate `lr`; the weights after each.
fn two_steps(optimizer: &mut impl Optimizer<f64>, lr: f64) -> [Vec<f64>; 2] {
    let (mut tape, w) = start();
    optimizer.step(&mut tape, &gradient(G1), lr).unwrap();
    let first = tape.value(w).as_slice().to_vec();
    optimizer.step(&mut tape, &gradient(G2), lr).unwrap();
    [first, tape.value(w).as_slice().to_vec()]
}

fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() <= 1e-14 * e.abs().max(1.0),
            "{what}: got {actual:?}, expected {expected:?}"
        );
    }
}

/// PyTorch's documented SGD (torch.optim.SGD, "Algorithm"), lr 0.1, momentum mu 0.9, weight
/// decay 0.1: `g += 0.1 w`; `b = g` at the first step, then `b = mu b + g`; `w -= lr b`.
///   step 1: g = [0.6, -1.2, 2.05] = b, w = [0.94, -1.88, 0.295]
///   step 2: g = g2 + 0.1 w = [1.094, 0.812, -0.9705],
///           b = 0.9 [0.6, -1.2, 2.05] + g = [1.634, -0.268, 0.8745],
///           w = [0.94 - 0.1634, -1.88 + 0.0268, 0.295 - 0.08745] = [0.7766, -1.8532, 0.20755]
/// A rule that skipped the first step's `b = g`, or decayed the weights after the step, lands
/// elsewhere.
#[test]
fn sgd_with_momentum_and_weight_decay_follows_pytorchs_algorithm() {
    let config = SgdConfig {
        momentum: 0.9,
        weight_decay: 0.1,
        ..SgdConfig::default()
    };
    let [first, second] = two_steps(&mut Sgd::new(config), 0.1);
    assert_close(&first, &[0.94, -1.88, 0.295], "step 1");
    assert_close(&second, &[0.7766, -1.8532, 0.20755], "step 2");
}

/// The same with Nesterov: the step follows `g + mu b` instead of `b`.
///   step 1: b = g = [0.6, -1.2, 2.05], g + 0.9 b = 1.9 g = [1.14, -2.28, 3.895],
///           w = [0.886, -1.772, 0.1105]
///   step 2: g = g2 + 0.1 w = [1.0886, 0.8228, -0.98895], b = 0.9 b + g = [1.6286, -0.2572, 0.85605],
///           g + 0.9 b = [2.55434, 0.59132, -0.218505], w = [0.630566, -1.831132, 0.1323505]
#[test]
fn sgd_with_nesterov_momentum_follows_pytorchs_algorithm() {
    let config = SgdConfig {
        momentum: 0.9,
        weight_decay: 0.1,
        nesterov: true,
        ..SgdConfig::default()
    };
    let [first, second] = two_steps(&mut Sgd::new(config), 0.1);
    assert_close(&first, &[0.886, -1.772, 0.1105], "step 1");
    assert_close(&second, &[0.630566, -1.831132, 0.1323505], "step 2");
}

/// Dampening 0.5 scales only the later gradients' share of the momentum (b = g at step 1):
///   step 1: b = [0.5, -1, 2], w = [0.95, -1.9, 0.3]
///   step 2: b = 0.9 b + 0.5 g2 = [0.95, -0.4, 1.3], w = [0.855, -1.86, 0.17]
/// Plain SGD (no momentum) is `w -= lr g`: w = [0.95, -1.9, 0.3] then [0.85, -2.0, 0.4].
#[test]
fn sgd_dampening_and_plain_sgd_follow_pytorchs_algorithm() {
    let damped = SgdConfig {
        momentum: 0.9,
        dampening: 0.5,
        ..SgdConfig::default()
    };
    let [first, second] = two_steps(&mut Sgd::new(damped), 0.1);
    assert_close(&first, &[0.95, -1.9, 0.3], "damped step 1");
    assert_close(&second, &[0.855, -1.86, 0.17], "damped step 2");
    let mut plain = Sgd::new(SgdConfig::default());
    let [first, second] = two_steps(&mut plain, 0.1);
    assert_close(&first, &[0.95, -1.9, 0.3], "plain step 1");
    assert_close(&second, &[0.85, -2.0, 0.4], "plain step 2");
    assert!(
        plain.state().momentum.is_empty(),
        "plain SGD keeps no buffers"
    );
    assert_eq!(plain.steps(), 2);
}

/// Kingma & Ba (2015), Algorithm 1, lr 0.1, betas 0.9 and 0.999, eps 1e-8, worked in exact
/// arithmetic (40 digits):
///   step 1: m = 0.1 g1, v = 0.001 g1^2, so m^ = g1, v^ = g1^2 and w -= 0.1 g1 / (|g1| + 1e-8):
///           w = [0.900000002, -1.900000001, 0.4000000005] (to 10 digits)
///   step 2: m = [0.145, 0.01, 0.08], v = [0.00124975, 0.001999, 0.004996],
///           m^ = m / 0.19 = [29/38, 1/19, 8/19], v^ = v / 0.001999 = [4999/7996, 1, 4996/1999],
///           sqrt(v^) = [0.79068805087524780, 1, 1.5809015228066567],
///           w = [0.80348180063850872, -1.9052631588421053, 0.37336629670243136]
/// Without bias correction the first step would move each weight by 0.1 * 0.1 / sqrt(0.001) = 0.32.
#[test]
fn adam_follows_kingma_and_bas_algorithm() {
    let config = AdamConfig::default();
    assert_eq!((config.beta1, config.beta2, config.eps), (0.9, 0.999, 1e-8));
    let mut adam = Adam::new(config);
    let [first, second] = two_steps(&mut adam, 0.1);
    let step1 = [0.900_000_002, -1.900_000_001, 0.400_000_000_5];
    assert_close(&first, &step1, "step 1");
    let step2 = [
        0.803_481_800_638_508_7,
        -1.905_263_158_842_105_3,
        0.373_366_296_702_431_4,
    ];
    assert_close(&second, &step2, "step 2");
    let state = adam.state();
    assert_eq!(state.step, 2);
    assert_close(state.m[0].as_slice(), &[0.145, 0.01, 0.08], "first moment");
    assert_close(
        state.v[0].as_slice(),
        &[0.001_249_75, 0.001_999, 0.004_996],
        "second moment",
    );
}

/// PyTorch's published AdamW rule (torch.optim.AdamW, "Algorithm"): `w = w - lr lambda w` first,
/// then Adam's step on the decayed weights, with lr 0.1, lambda 0.1, betas 0.9 and 0.999, eps 1e-8.
/// Worked in exact arithmetic (40 digits):
///   step 1: w = 0.99 [1, -2, 0.5] = [0.99, -1.98, 0.495];
///           update 0.1 g1 / (|g1| + 1e-8) = [0.099999998, -0.099999999, 0.0999999995],
///           w = [0.890000002, -1.880000001, 0.3950000005]
///   step 2: w = 0.99 w = [0.88110000198, -1.86120000099, 0.391050000495];
///           m^ = [29/38, 1/19, 8/19], v^ = [4999/7996, 1, 4996/1999] (as Adam's),
///           update = 0.1 m^ / (sqrt(v^) + 1e-8) = [0.096518201361491240, 0.0052631578421052637,
///           0.026633703797568640],
///           w = [0.78458180061850872, -1.8664631588321053, 0.36441629669743136]
/// Decay folded into the gradient (Adam's L2 form) would be normalised away by v and give other
/// weights; decay after the step would give `0.99 (w - update)`.
#[test]
fn adamw_follows_pytorchs_published_update_rule() {
    let config = AdamConfig {
        weight_decay: 0.1,
        ..AdamConfig::adamw()
    };
    let [first, second] = two_steps(&mut AdamW::new(config), 0.1);
    let step1 = [0.890_000_002, -1.880_000_001, 0.395_000_000_5];
    assert_close(&first, &step1, "step 1");
    let step2 = [
        0.784_581_800_618_508_7,
        -1.866_463_158_832_105_3,
        0.364_416_296_697_431_36,
    ];
    assert_close(&second, &step2, "step 2");
    assert_eq!(AdamConfig::adamw().weight_decay, 0.01, "torch's default");
}

/// microgpt's update, written out in the operation order `gpt` needs for its bit-exact parity
/// with the scalar oracle and microgpt.py: moments in the weights' precision, bias corrections as
/// reciprocals of `1 - beta^(t+1)` (C's pow), multiplied in. Any reordering changes bits.
fn microgpt_update<F: Float>(
    weights: &mut [F],
    gradients: &[Vec<F>],
    learning_rates: &[f64],
    (beta1, beta2, eps): (f64, f64, f64),
) {
    let (mut m, mut v) = (
        vec![F::zero(); weights.len()],
        vec![F::zero(); weights.len()],
    );
    let (b1, b2) = (F::from_f64(beta1), F::from_f64(beta2));
    for (step, (gradient, &lr)) in gradients.iter().zip(learning_rates).enumerate() {
        let exponent = (step + 1) as f64;
        let first = F::one() / F::from_f64(1.0 - beta1.powf(exponent));
        let second = F::one() / F::from_f64(1.0 - beta2.powf(exponent));
        for i in 0..weights.len() {
            let g = gradient[i];
            m[i] = b1 * m[i] + (F::one() - b1) * g;
            v[i] = b2 * v[i] + (F::one() - b2) * (g * g);
            let m_hat = m[i] * first;
            let v_hat = v[i] * second;
            weights[i] -= F::from_f64(lr) * m_hat / (v_hat.sqrt() + F::from_f64(eps));
        }
    }
}

/// The tape's Adam with microgpt's settings over several parameters and steps, against
/// [`microgpt_update`], in `F`.
fn matches_microgpt_bit_for_bit<F: Float>(
    shapes: &[Vec<usize>],
    seed: &[f64],
) -> Result<(), TestCaseError> {
    let settings = (0.85, 0.99, 1e-8);
    let config = AdamConfig {
        beta1: settings.0,
        beta2: settings.1,
        eps: settings.2,
        weight_decay: 0.0,
    };
    let mut tape = Tape::<F>::new();
    let mut values = seed.iter().cycle().map(|&x| F::from_f64(x));
    let mut starts = Vec::new();
    for shape in shapes {
        let len = shape.iter().product();
        let start: Vec<F> = values.by_ref().take(len).collect();
        let array = ndarray::ArrayD::from_shape_vec(shape.clone(), start.clone()).unwrap();
        tape.parameter(array);
        starts.push(start);
    }
    let steps = 4;
    let learning_rates: Vec<f64> = (0..steps).map(|s| 0.01 * (1.0 - s as f64 / 10.0)).collect();
    let gradients: Vec<Vec<Tensor<F>>> = (0..steps)
        .map(|step| {
            shapes
                .iter()
                .map(|shape| {
                    let mut tensor = Tensor::zeros(shape);
                    for (i, x) in tensor.as_mut_slice().iter_mut().enumerate() {
                        *x = F::from_f64(((i * 7 + step * 3) % 11) as f64 - 5.0)
                            * values.next().unwrap();
                    }
                    tensor
                })
                .collect()
        })
        .collect();
    let mut adam = Adam::new(config);
    for (gradient, &lr) in gradients.iter().zip(&learning_rates) {
        adam.step(&mut tape, gradient, lr).unwrap();
    }
    for (index, (var, start)) in tape.parameters().zip(&starts).enumerate() {
        let mut expected = start.clone();
        let per_step: Vec<Vec<F>> = gradients
            .iter()
            .map(|step| step[index].as_slice().to_vec())
            .collect();
        microgpt_update(&mut expected, &per_step, &learning_rates, settings);
        prop_assert_eq!(
            tape.value(var).as_slice(),
            &expected[..],
            "parameter {}",
            index
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn adam_reproduces_microgpts_arithmetic_bit_for_bit(
        shapes in proptest::collection::vec(proptest::collection::vec(1usize..5, 1..3), 1..4),
        seed in proptest::collection::vec(-1.0f64..1.0, 1..20),
    ) {
        matches_microgpt_bit_for_bit::<f64>(&shapes, &seed)?;
        matches_microgpt_bit_for_bit::<f32>(&shapes, &seed)?;
    }
}

/// Steps `optimizer` on a two-parameter tape with gradients that depend on the step; returns the
/// weights' bits.
fn run(
    optimizer: &mut impl Optimizer<f64>,
    tape: &mut Tape<f64>,
    steps: std::ops::Range<usize>,
) -> Vec<u64> {
    for step in steps {
        let gradients: Vec<Tensor<f64>> = tape
            .parameters()
            .map(|var| {
                let value = tape.value(var);
                let mut gradient = value.clone();
                for (i, g) in gradient.as_mut_slice().iter_mut().enumerate() {
                    *g = (*g * 1.7 + (step * 5 + i) as f64 * 0.31).sin();
                }
                gradient
            })
            .collect();
        let lr = 0.05 / (1.0 + step as f64);
        optimizer.step(tape, &gradients, lr).unwrap();
    }
    tape.parameters()
        .flat_map(|var| tape.value(var).as_slice().to_vec())
        .map(f64::to_bits)
        .collect()
}

fn two_parameter_tape() -> Tape<f64> {
    let mut tape = Tape::new();
    tape.parameter(arr1(&START));
    tape.parameter(ndarray::arr2(&[[0.3, -0.7], [1.1, 0.2]]));
    tape
}

/// A run stopped after 3 steps, its state and weights copied out (as a checkpoint would) and
/// restored into a new optimizer and tape, continues to the same bits as an unbroken run of 7:
/// a moment, a step count (and with it the bias correction) or a momentum buffer not restored
/// would show.
#[test]
fn restored_state_continues_bit_for_bit() {
    let configs = [
        AdamConfig::default(),
        AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::adamw()
        },
    ];
    for config in configs {
        let unbroken = run(&mut Adam::new(config), &mut two_parameter_tape(), 0..7);
        let mut first = Adam::new(config);
        let mut tape = two_parameter_tape();
        run(&mut first, &mut tape, 0..3);
        let mut resumed_tape = two_parameter_tape();
        for ((_, target), source) in resumed_tape.parameters_mut().zip(tape.parameters()) {
            *target = tape.value(source).clone();
        }
        let mut resumed = Adam::new(config);
        resumed.set_state(first.state().clone());
        assert_eq!(resumed.steps(), 3);
        assert_eq!(
            run(&mut resumed, &mut resumed_tape, 3..7),
            unbroken,
            "{config:?}"
        );
    }

    let config = SgdConfig {
        momentum: 0.8,
        nesterov: true,
        weight_decay: 0.01,
        ..SgdConfig::default()
    };
    let unbroken = run(&mut Sgd::new(config), &mut two_parameter_tape(), 0..7);
    let mut first = Sgd::new(config);
    let mut tape = two_parameter_tape();
    run(&mut first, &mut tape, 0..3);
    let mut resumed = Sgd::new(config);
    resumed.set_state(first.state().clone());
    assert_eq!(run(&mut resumed, &mut tape, 3..7), unbroken, "SGD");
}

/// The optimizer reads the gradients of a real backward pass: for `loss = sum(w * c)` the
/// gradient is `c`, so one plain SGD step gives `w - lr c`, and a step at learning rate 0 leaves
/// the weights alone (the rate is the step's, not the optimizer's).
#[test]
fn steps_take_a_backward_passs_gradients_and_the_given_learning_rate() {
    let (mut tape, w) = start();
    let mut sgd = Sgd::new(SgdConfig::default());
    let c = arr1(&[2.0, -4.0, 8.0]);
    let constant = tape.constant(c.clone());
    let product = tape.mul(w, constant).unwrap();
    let loss = tape.sum(product).unwrap();
    let gradients = tape.backward(loss).unwrap();
    sgd.step(&mut tape, &gradients, 0.0).unwrap();
    assert_eq!(tape.value(w).as_slice(), &START);
    sgd.step(&mut tape, &gradients, 0.25).unwrap();
    let expected: Array1<f64> = arr1(&START) - 0.25 * &c;
    assert_eq!(tape.value(w).as_slice(), expected.as_slice().unwrap());
}

/// Refusals name the optimizer and what is wrong, and change nothing: a gradient of another
/// shape, a restored state of another shape, a bad learning rate or setting.
#[test]
fn bad_inputs_are_refused_before_anything_changes() {
    let (mut tape, w) = start();
    let mut adam = Adam::<f64>::new(AdamConfig::default());
    let wrong = vec![Tensor::from(arr1(&[1.0, 2.0]))];
    let error = adam.step(&mut tape, &wrong, 0.1).unwrap_err();
    assert!(
        matches!(error, TapeError::Shape { op: "Adam", .. }),
        "{error}"
    );
    assert!(error.to_string().contains("[3]") && error.to_string().contains("[2]"));
    let error = adam
        .step(&mut tape, &Vec::<Tensor<f64>>::new(), 0.1)
        .unwrap_err();
    assert!(error.to_string().contains("no gradient"), "{error}");
    for lr in [-0.1, f64::NAN, f64::INFINITY] {
        let error = adam.step(&mut tape, &gradient(G1), lr).unwrap_err();
        assert!(error.to_string().contains("learning rate"), "{error}");
    }
    assert_eq!(tape.value(w).as_slice(), &START);
    assert_eq!(adam.steps(), 0);

    let mut restored = adam.state().clone();
    restored.m = vec![Tensor::zeros(&[4])];
    restored.v = vec![Tensor::zeros(&[4])];
    adam.set_state(restored);
    let error = adam.step(&mut tape, &gradient(G1), 0.1).unwrap_err();
    assert!(error.to_string().contains("state buffer is [4]"), "{error}");
    assert_eq!(tape.value(w).as_slice(), &START);

    let mut unstable = Adam::<f64>::new(AdamConfig {
        beta2: 1.0,
        ..AdamConfig::default()
    });
    let error = unstable.step(&mut tape, &gradient(G1), 0.1).unwrap_err();
    assert!(error.to_string().contains("beta2"), "{error}");

    let mut nesterov = Sgd::<f64>::new(SgdConfig {
        nesterov: true,
        ..SgdConfig::default()
    });
    let error = nesterov.step(&mut tape, &gradient(G1), 0.1).unwrap_err();
    assert!(
        matches!(error, TapeError::Argument { op: "SGD", .. }),
        "{error}"
    );
    assert_eq!(tape.value(w).as_slice(), &START);
}

/// AdamW with no weight decay is Adam exactly; with decay it differs.
#[test]
fn adamw_without_decay_is_adam() {
    let adam = run(
        &mut Adam::new(AdamConfig::default()),
        &mut two_parameter_tape(),
        0..4,
    );
    let undecayed = AdamConfig {
        weight_decay: 0.0,
        ..AdamConfig::adamw()
    };
    let adamw = run(&mut AdamW::new(undecayed), &mut two_parameter_tape(), 0..4);
    assert_eq!(adam, adamw);
    let decayed = run(
        &mut AdamW::new(AdamConfig::adamw()),
        &mut two_parameter_tape(),
        0..4,
    );
    assert_ne!(adam, decayed);
}
