//! The library can express the project's own model: microgpt written with the tape's primitive ops
//! alone (`crates/tape/examples/03_gpt_from_primitives.rs`) against the `gpt` crate's model, which
//! fuses attention into one custom op and the projections and losses into fused ops. Same weights,
//! same documents, f64: the losses and every weight's gradient must agree to 1e-10 relative (the two
//! sum in different orders, so they agree to round-off, not to the bit).

#[allow(dead_code)] // the example's `main` and its training loop are not used here
#[path = "../crates/tape/examples/03_gpt_from_primitives.rs"]
mod primitives;

use gpt::{Config, Model, Params};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use tape::Tape;

/// Documents of 1 to 12 characters (so some are cut at block_size) of a vocabulary of `bos` letters.
fn documents(bos: usize) -> Vec<Vec<usize>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    [1, 4, 7, 8, 12, 3]
        .iter()
        .map(|&length| {
            let letters = (0..length).map(|_| rand::RngExt::random_range(&mut rng, 0..bos));
            std::iter::once(bos).chain(letters).chain([bos]).collect()
        })
        .collect()
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    let error = (actual - expected).abs();
    assert!(
        error <= 1e-10 * expected.abs().max(1e-6),
        "{what}: primitives {actual:e}, gpt {expected:e}, error {error:e}"
    );
}

fn check(config: Config, seed: u64) {
    let params = Params::<f64>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
    let mut tape = Tape::<f64>::new();
    let primitives = primitives::Gpt::new(
        &mut tape,
        primitives::Config {
            vocab_size: config.vocab_size,
            n_layer: config.n_layer,
            n_embd: config.n_embd,
            n_head: config.n_head,
            block_size: config.block_size,
        },
        params.tensors().to_vec(),
    );
    let mut model = Model::new(params);
    for (document, tokens) in documents(config.vocab_size - 1).iter().enumerate() {
        tape.clear();
        let loss = primitives.document_loss(&mut tape, tokens).unwrap();
        let gradients = tape.backward(loss).unwrap();
        let step = model.loss(tokens).unwrap();
        assert_close(
            tape.scalar(loss),
            step.loss(),
            &format!("document {document}: loss"),
        );
        for (index, &weight) in primitives.weights().iter().enumerate() {
            let actual = gradients.parameter(weight).as_slice();
            let expected = step.gradient(index).as_slice();
            assert_eq!(actual.len(), expected.len());
            for (element, (&a, &e)) in actual.iter().zip(expected).enumerate() {
                let what = format!("document {document}: d loss / d weight {index}[{element}]");
                let error = (a - e).abs();
                assert!(error <= 1e-10 * e.abs().max(1e-3), "{what}: {a:e} vs {e:e}");
            }
        }
    }
}

#[test]
fn the_seed_configuration_written_from_primitives_matches_the_fused_model() {
    let config = Config {
        vocab_size: 7,
        ..Config::default()
    };
    check(config, 1);
}

#[test]
fn two_layers_and_eight_heads_match_too() {
    let config = Config {
        vocab_size: 9,
        n_layer: 2,
        n_embd: 16,
        n_head: 8,
        block_size: 8,
    };
    check(config, 2);
}
