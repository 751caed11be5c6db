//! A model's weights in the layout the decode step's products read, copied once per set of
//! weights.

use ndarray::Array2;
use tape::Float;
use tape::rows::Linear;

use super::DecodeError;
use crate::{Config, LayerWeight, Params};

/// The weights of a model for the decode step: the embeddings as they are, every matrix as a
/// [`Linear`] (transposed and padded once, rather than on every product as the tape's linear op
/// does), the query, key and value projections of a block stacked into one product as the
/// training graph's `linear_stacked` stacks them.
#[derive(Clone, Debug)]
pub(crate) struct Weights<F> {
    pub(crate) wte: Vec<F>,
    pub(crate) wpe: Vec<F>,
    pub(crate) blocks: Vec<Block<F>>,
    pub(crate) lm_head: Linear<F>,
}

/// One transformer block's matrices.
#[derive(Clone, Debug)]
pub(crate) struct Block<F> {
    /// Query, key and value: `[3 n_embd, n_embd]`, so a row's product is `[q | k | v]`.
    pub(crate) qkv: Linear<F>,
    pub(crate) output: Linear<F>,
    pub(crate) expand: Linear<F>,
    pub(crate) contract: Linear<F>,
}

impl<F: Float> Weights<F> {
    /// All-zero weights of a model of shape `config`, with room for [`Weights::load`].
    pub(crate) fn zeros(config: Config) -> Self {
        let (embd, vocab) = (config.n_embd, config.vocab_size);
        Weights {
            wte: vec![F::zero(); vocab * embd],
            wpe: vec![F::zero(); config.block_size * embd],
            blocks: (0..config.n_layer)
                .map(|_| Block {
                    qkv: Linear::new(3 * embd, embd),
                    output: Linear::new(embd, embd),
                    expand: Linear::new(4 * embd, embd),
                    contract: Linear::new(embd, 4 * embd),
                })
                .collect(),
            lm_head: Linear::new(vocab, embd),
        }
    }

    /// Copies `params` (of the configuration these weights were made for) in. Allocates nothing.
    ///
    /// # Errors
    /// If a weight is not a contiguous row-major matrix; the weights are then unchanged.
    pub(crate) fn load(&mut self, params: &Params<F>) -> Result<(), DecodeError> {
        if let Some((name, _)) = params
            .iter()
            .find(|(_, tensor)| !tensor.is_standard_layout())
        {
            return Err(DecodeError::WeightLayout {
                name: name.to_string(),
            });
        }
        self.wte.copy_from_slice(row_major(params.wte()));
        self.wpe.copy_from_slice(row_major(params.wpe()));
        self.lm_head.pack(row_major(params.lm_head()));
        for (layer, block) in self.blocks.iter_mut().enumerate() {
            let weight = |which| row_major(params.layer(layer, which));
            block.qkv.pack_stacked(&[
                weight(LayerWeight::Query),
                weight(LayerWeight::Key),
                weight(LayerWeight::Value),
            ]);
            block.output.pack(weight(LayerWeight::Output));
            block.expand.pack(weight(LayerWeight::Expand));
            block.contract.pack(weight(LayerWeight::Contract));
        }
        Ok(())
    }
}

/// The row-major elements of a weight in standard layout.
fn row_major<F>(tensor: &Array2<F>) -> &[F] {
    tensor
        .as_slice()
        .expect("the weights are checked to be in standard layout first")
}
