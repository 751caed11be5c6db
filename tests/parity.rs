//! The tape against the scalar engine (the oracle: a faithful port of microgpt.py's `Value`).
//!
//! Same weights, same documents, f64: the tape's loss must equal the scalar model's to 1e-12
//! relative, every parameter gradient to 1e-10, and the weights after 20 Adam steps to 1e-10. The
//! two engines sum in different orders, so they agree to round-off, not bit for bit.

use gpt::{Adam, AdamSettings, Config, Model, Params};
use ndarray::{ArrayD, arr1};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use scalar::Graph;
use tape::Tape;

fn assert_relative(actual: f64, expected: f64, tolerance: f64, what: &str) {
    let error = (actual - expected).abs();
    assert!(
        error <= tolerance * expected.abs().max(1e-3),
        "{what}: tape {actual:e}, scalar {expected:e}, error {error:e}"
    );
}

/// Documents of a 5-token vocabulary (BOS = 4) longer and shorter than block_size 8.
fn documents(vocab_size: usize) -> Vec<Vec<usize>> {
    let bos = vocab_size - 1;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    [1, 3, 8, 12, 5, 2, 15]
        .iter()
        .map(|&length| {
            let mut tokens = vec![bos];
            tokens.extend((0..length).map(|_| rand::RngExt::random_range(&mut rng, 0..bos)));
            tokens.push(bos);
            tokens
        })
        .collect()
}

fn check_model_parity(config: Config, seed: u64) {
    let params = Params::<f64>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
    let mut scalar_model = support::scalar_model(&params);
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);
    let documents = documents(config.vocab_size);
    let num_steps = 20;
    for step in 0..num_steps {
        let tokens = &documents[step % documents.len()];
        let computed = model.loss(tokens).unwrap();
        let expected = scalar_model.loss(tokens);
        assert_relative(
            computed.loss(),
            expected,
            1e-12,
            &format!("loss at step {step}"),
        );
        for (index, gradient) in scalar_model.gradients().iter().enumerate() {
            for (element, (&actual, &expected)) in computed
                .gradient(index)
                .as_slice()
                .iter()
                .zip(&gradient.data)
                .enumerate()
            {
                let error = (actual - expected).abs();
                assert!(
                    error <= 1e-10,
                    "step {step}, d loss / d {}[{element}]: tape {actual:e}, scalar {expected:e}",
                    gradient.name
                );
            }
        }
        computed.apply(&mut adam, num_steps);
        scalar_model.adam_step(step, num_steps, AdamSettings::default().lr);
    }
    for (tensor, (name, weights)) in scalar_model.weights().iter().zip(model.params().iter()) {
        assert_eq!(tensor.name, name);
        for (&actual, &expected) in weights.iter().zip(&tensor.data) {
            assert!(
                (actual - expected).abs() <= 1e-10,
                "{name} after {num_steps} steps: tape {actual}, scalar {expected}"
            );
        }
    }
}

#[test]
fn the_seed_configuration_matches_the_scalar_model_for_20_adam_steps() {
    let config = Config {
        vocab_size: 5,
        ..Config::default()
    };
    check_model_parity(config, 11);
}

#[test]
fn two_layers_and_three_heads_match_the_scalar_model() {
    let config = Config {
        n_layer: 2,
        n_embd: 12,
        n_head: 3,
        block_size: 6,
        vocab_size: 5,
    };
    check_model_parity(config, 12);
}

/// A batch against the scalar model's per-document losses and gradients, averaged: once within one
/// chunk (documents laid end to end on one tape) and once over two chunks.
#[test]
fn batches_match_the_mean_of_the_scalar_model_documents() {
    let config = Config {
        n_layer: 2,
        n_embd: 12,
        n_head: 3,
        block_size: 6,
        vocab_size: 5,
    };
    let params = Params::<f64>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(13)).unwrap();
    let mut scalar_model = support::scalar_model(&params);
    let mut model = Model::new(params);
    let documents = documents(config.vocab_size);
    for count in [documents.len(), gpt::CHUNK + 3] {
        let batch: Vec<&Vec<usize>> = documents.iter().cycle().take(count).collect();
        let mut expected_loss = 0.0;
        let mut expected_gradients: Vec<Vec<f64>> = Vec::new();
        for tokens in &batch {
            expected_loss += scalar_model.loss(tokens) / count as f64;
            for (index, gradient) in scalar_model.gradients().iter().enumerate() {
                let share = gradient.data.iter().map(|&x| x / count as f64);
                match expected_gradients.get_mut(index) {
                    Some(sum) => sum.iter_mut().zip(share).for_each(|(sum, x)| *sum += x),
                    None => expected_gradients.push(share.collect()),
                }
            }
        }
        let computed = model.batch_loss(&batch).unwrap();
        assert_relative(
            computed.loss(),
            expected_loss,
            1e-12,
            &format!("loss of {count} documents"),
        );
        for (index, expected) in expected_gradients.iter().enumerate() {
            for (&actual, &expected) in computed.gradient(index).as_slice().iter().zip(expected) {
                assert!(
                    (actual - expected).abs() <= 1e-10,
                    "{count} documents, tensor {index}: tape {actual:e}, scalar {expected:e}"
                );
            }
        }
    }
}

#[test]
fn small_expressions_agree_with_the_scalar_engine() {
    // rmsnorm, a linear layer, relu, softmax and a log-likelihood, on both engines.
    let x = [0.3, -1.2, 2.0, 0.7];
    let w = [
        0.5, -0.1, 0.2, 0.9, -0.4, 0.6, 0.3, -0.8, 0.1, 0.1, -0.7, 0.2,
    ];

    let mut graph = Graph::new();
    let xs: Vec<_> = x.iter().map(|&v| graph.leaf(v)).collect();
    let ws: Vec<_> = w.iter().map(|&v| graph.leaf(v)).collect();
    let mut normed = Vec::new();
    scalar::layers::rmsnorm(&mut graph, &xs, &mut normed);
    let mut hidden = Vec::new();
    scalar::layers::linear(&mut graph, &normed, &ws, &mut hidden);
    let activated: Vec<_> = hidden.iter().map(|&h| graph.relu(h)).collect();
    let mut probabilities = Vec::new();
    scalar::layers::softmax(&mut graph, &activated, &mut probabilities);
    let log = graph.log(probabilities[2]);
    let loss = graph.neg(log);
    graph.backward(loss);

    let mut tape = Tape::<f64>::new();
    let xv = tape.parameter(arr1(&x).into_dyn());
    let wv = tape.parameter(ArrayD::from_shape_vec(vec![3, 4], w.to_vec()).unwrap());
    let normed = tape.rms_norm(xv, None, 1e-5).unwrap();
    let hidden = tape.matvec(wv, normed).unwrap();
    let activated = tape.relu(hidden).unwrap();
    let tape_loss = tape.softmax_cross_entropy(activated, &[2]).unwrap();
    let gradients = tape.backward(tape_loss).unwrap();

    assert_relative(tape.scalar(tape_loss), graph.data(loss), 1e-14, "loss");
    for (&actual, &node) in gradients.parameter(xv).as_slice().iter().zip(&xs) {
        assert_relative(actual, graph.grad(node), 1e-12, "d loss / d x");
    }
    for (&actual, &node) in gradients.parameter(wv).as_slice().iter().zip(&ws) {
        assert_relative(actual, graph.grad(node), 1e-12, "d loss / d w");
    }
}
