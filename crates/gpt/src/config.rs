//! The model's hyperparameters.

/// The shape of a microgpt model. [`Config::default`] is the seed's configuration on names.txt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Width of the residual stream (the embedding size).
    pub n_embd: usize,
    /// Attention heads per block; each sees `n_embd / n_head` dimensions.
    pub n_head: usize,
    /// The longest context: positions `0..block_size`.
    pub block_size: usize,
    /// Tokens, including BOS.
    pub vocab_size: usize,
}

impl Config {
    /// The seed's configuration: 1 layer, n_embd 16, 4 heads, block 8, and the 27 tokens of
    /// names.txt (4,064 parameters). The CLI's defaults are read from it.
    pub const SEED: Config = Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 4,
        block_size: 8,
        vocab_size: 27,
    };
}

impl Default for Config {
    /// [`Config::SEED`].
    fn default() -> Self {
        Config::SEED
    }
}

/// Why a [`Config`] cannot describe a model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A size that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// `n_embd` does not split evenly into `n_head` heads.
    #[error(
        "n_embd ({n_embd}) must be divisible by n_head ({n_head}); choose n_embd as a multiple of n_head"
    )]
    HeadsDoNotDivide {
        /// The embedding width.
        n_embd: usize,
        /// The number of heads.
        n_head: usize,
    },
}

impl Config {
    /// Checks that every size is positive and that the heads split `n_embd` evenly.
    ///
    /// ```
    /// use gpt::{Config, ConfigError};
    /// assert!(Config::default().validate().is_ok());
    /// let odd = Config { n_embd: 10, n_head: 4, ..Config::default() };
    /// assert_eq!(odd.validate(), Err(ConfigError::HeadsDoNotDivide { n_embd: 10, n_head: 4 }));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sizes = [
            ("n_layer", self.n_layer),
            ("n_embd", self.n_embd),
            ("n_head", self.n_head),
            ("block_size", self.block_size),
            ("vocab_size", self.vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err(ConfigError::Zero(name));
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(ConfigError::HeadsDoNotDivide {
                n_embd: self.n_embd,
                n_head: self.n_head,
            });
        }
        Ok(())
    }

    /// The positions a document of `len` tokens (`[BOS, characters.., BOS]`, at least 2) is trained
    /// and scored on: `min(block_size, len - 1)`, a longer one truncated as microgpt.py does.
    pub fn predicted_positions(&self, len: usize) -> usize {
        self.block_size.min(len - 1)
    }

    /// The width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// The names and `[rows, columns]` shapes of the parameters, in DESIGN.md's order (the order in
    /// which microgpt.py draws them, and the order of a checkpoint).
    ///
    /// ```
    /// let shapes = gpt::Config::default().parameter_shapes();
    /// assert_eq!(shapes[0], ("wte".to_string(), [27, 16]));
    /// assert_eq!(shapes[8], ("layer0.mlp_fc2".to_string(), [16, 64]));
    /// ```
    pub fn parameter_shapes(&self) -> Vec<(String, [usize; 2])> {
        let (embd, vocab) = (self.n_embd, self.vocab_size);
        let mut shapes = vec![
            ("wte".to_string(), [vocab, embd]),
            ("wpe".to_string(), [self.block_size, embd]),
            ("lm_head".to_string(), [vocab, embd]),
        ];
        for layer in 0..self.n_layer {
            for (name, shape) in [
                ("attn_wq", [embd, embd]),
                ("attn_wk", [embd, embd]),
                ("attn_wv", [embd, embd]),
                ("attn_wo", [embd, embd]),
                ("mlp_fc1", [4 * embd, embd]),
                ("mlp_fc2", [embd, 4 * embd]),
            ] {
                shapes.push((format!("layer{layer}.{name}"), shape));
            }
        }
        shapes
    }

    /// The number of scalar parameters: 4,064 for the default configuration.
    ///
    /// ```
    /// assert_eq!(gpt::Config::default().num_params(), 4064);
    /// assert_eq!(gpt::Config { block_size: 16, ..Default::default() }.num_params(), 4192);
    /// ```
    pub fn num_params(&self) -> usize {
        self.parameter_shapes()
            .iter()
            .map(|(_, [rows, columns])| rows * columns)
            .sum()
    }
}
