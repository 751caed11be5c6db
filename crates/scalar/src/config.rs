//! The model's hyperparameters and the parameter tensors they imply (DESIGN.md section 1).

use crate::Error;

/// The shape of a microgpt model.
///
/// ```
/// let config = scalar::Config { n_layer: 1, n_embd: 16, n_head: 4, block_size: 8, vocab_size: 27 };
/// config.validate().unwrap();
/// assert_eq!((config.head_dim(), config.bos()), (4, 26));
/// assert_eq!(config.num_params(), 4064); // the seed's configuration on names.txt
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Number of transformer layers (0 is allowed: embeddings, rmsnorm, then `lm_head`).
    pub n_layer: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Number of attention heads; must divide `n_embd`.
    pub n_head: usize,
    /// Maximum number of positions (rows of `wpe`).
    pub block_size: usize,
    /// Number of tokens, including BOS, which is the last one (`vocab_size - 1`).
    pub vocab_size: usize,
}

impl Config {
    /// Checks that every size is usable: `n_embd`, `n_head`, `block_size`, `vocab_size` at least 1,
    /// `n_head` divides `n_embd`, and the parameters fit `u32` node ids.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 6, n_head: 0, block_size: 4, vocab_size: 5 };
    /// assert_eq!(config.validate(), Err(scalar::Error::ZeroDimension { field: "n_head" }));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        for (field, size) in [
            ("n_embd", self.n_embd),
            ("n_head", self.n_head),
            ("block_size", self.block_size),
            ("vocab_size", self.vocab_size),
        ] {
            if size == 0 {
                return Err(Error::ZeroDimension { field });
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(Error::HeadsDoNotDivide {
                n_embd: self.n_embd,
                n_head: self.n_head,
            });
        }
        let count = self.num_params();
        if u32::try_from(count).is_err() {
            return Err(Error::TooManyParameters { count });
        }
        Ok(())
    }

    /// Width of one attention head, `n_embd / n_head`.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 2, n_embd: 6, n_head: 3, block_size: 4, vocab_size: 5 };
    /// assert_eq!(config.head_dim(), 2);
    /// ```
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// The BOS token, `vocab_size - 1`, which starts and ends every document.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 2, n_embd: 6, n_head: 3, block_size: 4, vocab_size: 5 };
    /// assert_eq!(config.bos(), 4);
    /// ```
    pub fn bos(&self) -> usize {
        self.vocab_size - 1
    }

    /// Every parameter tensor's name and `[out, in]` shape, in DESIGN.md order: `wte`, `wpe`,
    /// `lm_head`, then per layer `i` `layer{i}.attn_wq`, `attn_wk`, `attn_wv`, `attn_wo`, `mlp_fc1`,
    /// `mlp_fc2`.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 6, n_head: 3, block_size: 4, vocab_size: 5 };
    /// let shapes = config.parameter_shapes();
    /// assert_eq!(shapes[0], ("wte".to_string(), [5, 6]));
    /// assert_eq!(shapes[7], ("layer0.mlp_fc1".to_string(), [24, 6]));
    /// assert_eq!(shapes.len(), 9);
    /// ```
    pub fn parameter_shapes(&self) -> Vec<(String, [usize; 2])> {
        let (n_embd, hidden) = (self.n_embd, 4 * self.n_embd);
        let mut shapes = vec![
            ("wte".to_string(), [self.vocab_size, n_embd]),
            ("wpe".to_string(), [self.block_size, n_embd]),
            ("lm_head".to_string(), [self.vocab_size, n_embd]),
        ];
        for layer in 0..self.n_layer {
            for (suffix, shape) in [
                ("attn_wq", [n_embd, n_embd]),
                ("attn_wk", [n_embd, n_embd]),
                ("attn_wv", [n_embd, n_embd]),
                ("attn_wo", [n_embd, n_embd]),
                ("mlp_fc1", [hidden, n_embd]),
                ("mlp_fc2", [n_embd, hidden]),
            ] {
                shapes.push((format!("layer{layer}.{suffix}"), shape));
            }
        }
        shapes
    }

    /// Total number of scalar parameters.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 16, n_head: 4, block_size: 16, vocab_size: 27 };
    /// assert_eq!(config.num_params(), 4192); // Karpathy's later revision
    /// ```
    pub fn num_params(&self) -> usize {
        // Saturating, so that an absurd configuration fails `validate` instead of overflowing.
        let embeddings = (self.vocab_size.saturating_mul(2))
            .saturating_add(self.block_size)
            .saturating_mul(self.n_embd);
        let per_layer = self.n_embd.saturating_mul(self.n_embd).saturating_mul(12);
        embeddings.saturating_add(self.n_layer.saturating_mul(per_layer))
    }
}
