//! The same model on the scalar engine: the oracle the tape model is tested against and the
//! baseline `microgpt bench` times it against.

use scalar::{NamedTensor, ScalarGpt};

use crate::Params;

/// The scalar engine's model with the configuration and weights of `params`.
///
/// ```
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
/// let config = gpt::Config { vocab_size: 5, ..gpt::Config::default() };
/// let params = gpt::Params::<f64>::init(config, &mut rng).unwrap();
/// let oracle = gpt::scalar_model(&params);
/// assert_eq!(oracle.num_params(), params.num_params());
/// ```
pub fn scalar_model(params: &Params<f64>) -> ScalarGpt {
    let config = params.config();
    let weights: Vec<NamedTensor> = params
        .iter()
        .map(|(name, tensor)| NamedTensor {
            name: name.to_string(),
            shape: [tensor.nrows(), tensor.ncols()],
            data: tensor.iter().copied().collect(),
        })
        .collect();
    let config = scalar::Config {
        n_layer: config.n_layer,
        n_embd: config.n_embd,
        n_head: config.n_head,
        block_size: config.block_size,
        vocab_size: config.vocab_size,
    };
    // Params hold exactly the tensors of a valid configuration, which is all `new` checks.
    ScalarGpt::new(config, &weights).expect("a valid model's weights make a scalar model")
}
