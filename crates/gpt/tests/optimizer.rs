//! gpt's optimizer settings beyond microgpt.py's Adam: decoupled weight decay and gradient
//! clipping, each against updates worked from the published rules with the model's own raw
//! gradients (what the backward pass gives is under test elsewhere, in the parity tests).

use gpt::{Adam, AdamSettings, Config, Model, Params, Step};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

const DOCUMENT: [usize; 6] = [4, 0, 1, 2, 3, 4];

fn model() -> (Params<f64>, Model<f64>) {
    let config = Config {
        n_layer: 1,
        n_embd: 8,
        n_head: 2,
        block_size: 6,
        vocab_size: 5,
    };
    let params = Params::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(3)).unwrap();
    (params.clone(), Model::new(params))
}

/// Every weight of the model, in DESIGN.md's order, end to end.
fn weights(params: &Params<f64>) -> Vec<f64> {
    params.tensors().iter().flatten().copied().collect()
}

/// The gradient of `step`'s loss, laid out as [`weights`].
fn gradient(step: &Step<'_, f64>, params: &Params<f64>) -> Vec<f64> {
    (0..params.tensors().len())
        .flat_map(|index| step.gradient(index).as_slice().to_vec())
        .collect()
}

fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len());
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-13 * e.abs().max(1e-3),
            "{what}, weight {index}: got {a}, expected {e}"
        );
    }
}

/// torch.optim.AdamW's published algorithm: `w = w - lr lambda w`, then Adam's step. At the first
/// step the bias-corrected moments are `g` and `g^2`, so with lr 0.01 and lambda 0.1 every weight
/// becomes `0.999 w - 0.01 g / (|g| + 1e-8)`, embeddings and every matrix alike. Decay folded into
/// the gradient (L2) would be normalised away by the second moment, and decay skipped for some
/// tensor would leave it at `w - 0.01 g / (|g| + eps)`.
#[test]
fn weight_decay_is_decoupled_as_torchs_adamw_and_applies_to_every_weight() {
    let (start, mut model) = model();
    let settings = AdamSettings {
        weight_decay: 0.1,
        ..AdamSettings::default()
    };
    let mut adam = Adam::new(settings, &start);
    let computed = model.loss(&DOCUMENT).unwrap();
    let g = gradient(&computed, &start);
    computed.apply_at(&mut adam, 0.01);
    let expected: Vec<f64> = weights(&start)
        .iter()
        .zip(&g)
        .map(|(w, g)| w * (1.0 - 0.01 * 0.1) - 0.01 * g / (g.abs() + 1e-8))
        .collect();
    assert_close(&weights(&model.params()), &expected, "after one AdamW step");
}

/// torch.nn.utils.clip_grad_norm_ then Adam, two steps at lr 0.01 with microgpt's betas (0.85,
/// 0.99): each step's raw gradient `g` is multiplied by `min(1, 0.05 / (|g| + 1e-6))`, `|g|` the
/// L2 norm over all weights together, before it enters the moments. The first step alone would not
/// show it (Adam's first step is `lr g / |g|` element by element, whatever the scale), the second
/// does: its moments mix the two steps' clipped gradients.
#[test]
fn clipping_scales_each_steps_gradient_to_the_global_norm_before_adam() {
    let (start, mut model) = model();
    let max_norm = 0.05;
    let settings = AdamSettings {
        max_grad_norm: Some(max_norm),
        ..AdamSettings::default()
    };
    let mut adam = Adam::new(settings, &start);
    let (beta1, beta2, eps, lr) = (0.85, 0.99, 1e-8, 0.01);
    let mut w = weights(&start);
    let mut m = vec![0.0; w.len()];
    let mut v = vec![0.0; w.len()];
    let mut factors = Vec::new();
    for step in 1..=2 {
        let computed = model.loss(&DOCUMENT).unwrap();
        let raw = gradient(&computed, &start);
        let norm = raw.iter().map(|g| g * g).sum::<f64>().sqrt();
        let factor = (max_norm / (norm + 1e-6)).min(1.0);
        factors.push(factor);
        computed.apply_at(&mut adam, lr);
        for i in 0..w.len() {
            let g = raw[i] * factor;
            m[i] = beta1 * m[i] + (1.0 - beta1) * g;
            v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
            let m_hat = m[i] / (1.0 - f64::powi(beta1, step));
            let v_hat = v[i] / (1.0 - f64::powi(beta2, step));
            w[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        assert_close(&weights(&model.params()), &w, &format!("after step {step}"));
    }
    assert!(
        factors.iter().all(|&factor| factor < 1.0),
        "both steps clipped: {factors:?}"
    );
}
