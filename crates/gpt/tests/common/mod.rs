//! What several of gpt's test files share.

use gpt::{Config, Params};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// Two blocks of three heads of dimension 2 over a vocabulary of 5: every loop runs more than once
/// and every size differs from the others, at a few hundred weights.
pub const SMALL: Config = Config {
    n_layer: 2,
    n_embd: 6,
    n_head: 3,
    block_size: 5,
    vocab_size: 5,
};

/// Random weights, scaled from N(0, 0.08) to N(0, 0.4) so that attention is far from uniform and a
/// wrong position, a stale cache row or another rounding changes the logits visibly.
pub fn params(config: Config, seed: u64) -> Params<f64> {
    let mut params = Params::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
    for tensor in params.tensors_mut() {
        tensor.mapv_inplace(|x| 5.0 * x);
    }
    params
}
