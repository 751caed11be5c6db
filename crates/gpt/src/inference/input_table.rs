//! A memo of the first block's inputs, which depend on nothing but a (token, position) pair.
//!
//! A special case kept for speed (see [`InputTable`] for what it buys); the decoder tests check
//! that the logits it gives are the tape model's to the bit.

use tape::Float;

use super::decode::first_block_input;
use super::weights::Weights;
use crate::Config;

/// Per (token, position) pair: the residual stream entering the first block,
/// `rms_norm(wte[token] + wpe[position])`, and that block's query, key and value of it.
///
/// The assumption it rests on: before the first attention, a row's numbers are a function of its
/// token, its position and the weights alone (embedding, RMSNorm and a product act row by row).
/// A sampler feeds only `vocab_size * block_size` distinct pairs (216 for the seed's model) but
/// thousands of tokens, so each pair's embedding, two RMSNorms and the query, key and value
/// products (a quarter of a token's arithmetic in the seed's model) are computed once, on first
/// use, by [`first_block_input`] (the decoder's own code for them), and copied afterwards.
#[derive(Clone, Debug)]
pub(crate) struct InputTable<F> {
    embd: usize,
    block_size: usize,
    /// Whether each entry `token * block_size + position` holds its values.
    filled: Vec<bool>,
    /// Per entry: the residual (`n_embd`), then `[q | k | v]` (`3 n_embd`).
    entries: Vec<F>,
    /// Scratch for the computation of an entry.
    normed: Vec<F>,
}

impl<F: Float> InputTable<F> {
    /// An empty table for a model of shape `config`.
    pub(crate) fn new(config: Config) -> Self {
        let pairs = config.vocab_size * config.block_size;
        InputTable {
            embd: config.n_embd,
            block_size: config.block_size,
            filled: vec![false; pairs],
            entries: vec![F::zero(); pairs * 4 * config.n_embd],
            normed: vec![F::zero(); config.n_embd],
        }
    }

    /// Forgets every entry: the weights have changed.
    pub(crate) fn clear(&mut self) {
        self.filled.fill(false);
    }

    /// The residual and `[q | k | v]` of `token` at `position`, one after the other, computed from
    /// `weights` if this is the pair's first use since [`InputTable::clear`].
    pub(crate) fn entry(&mut self, weights: &Weights<F>, token: usize, position: usize) -> &[F] {
        let embd = self.embd;
        let index = token * self.block_size + position;
        let entry = &mut self.entries[index * 4 * embd..(index + 1) * 4 * embd];
        if !self.filled[index] {
            self.filled[index] = true;
            let (residual, qkv) = entry.split_at_mut(embd);
            first_block_input(weights, token, position, &mut self.normed, residual, qkv);
        }
        entry
    }
}
