//! The first block's inputs, which depend on nothing but a (token, position) pair.

use tape::Float;

use super::vector::{Epilogue, Packed, linear, rmsnorm, rmsnorm_in_place};
use crate::Config;

/// Per (token, position) pair: the residual stream entering the first block,
/// `rmsnorm(wte[token] + wpe[position])`, and that block's query, key and value of it.
///
/// A sampler feeds only `vocab_size * block_size` distinct pairs (216 for the seed's model) but
/// thousands of tokens, so each pair's embedding, two rmsnorms and three projections (a quarter
/// of a token's arithmetic) are computed once, on first use, and copied afterwards. An entry is
/// computed by the same operations in the same order as a fresh computation, so it is equal to
/// it to the bit.
#[derive(Clone, Debug)]
pub(crate) struct InputTable<F> {
    embd: usize,
    block_size: usize,
    /// Whether each entry `token * block_size + position` holds its values.
    filled: Vec<bool>,
    /// Per entry: residual, query, key and value, each `n_embd` long.
    entries: Vec<F>,
    /// The rmsnorm of the residual, for the projections.
    normed: Vec<F>,
}

/// The weights an entry is computed from.
pub(crate) struct FirstLayer<'a, F> {
    pub(crate) wte: &'a [F],
    pub(crate) wpe: &'a [F],
    pub(crate) query: &'a Packed<F>,
    pub(crate) key: &'a Packed<F>,
    pub(crate) value: &'a Packed<F>,
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

    /// The residual, query, key and value of `token` at `position`, one after the other, computed
    /// from `weights` if this is the pair's first use since [`InputTable::clear`].
    pub(crate) fn entry(
        &mut self,
        weights: &FirstLayer<'_, F>,
        token: usize,
        position: usize,
    ) -> &[F] {
        let embd = self.embd;
        let index = token * self.block_size + position;
        let entry = &mut self.entries[index * 4 * embd..(index + 1) * 4 * embd];
        if !self.filled[index] {
            self.filled[index] = true;
            let (residual, projections) = entry.split_at_mut(embd);
            let token_row = &weights.wte[token * embd..(token + 1) * embd];
            let position_row = &weights.wpe[position * embd..(position + 1) * embd];
            for ((x, &t), &p) in residual.iter_mut().zip(token_row).zip(position_row) {
                *x = t + p;
            }
            rmsnorm_in_place(residual);
            rmsnorm(residual, &mut self.normed);
            let (query, rest) = projections.split_at_mut(embd);
            let (key, value) = rest.split_at_mut(embd);
            linear(weights.query, &self.normed, query, Epilogue::Store);
            linear(weights.key, &self.normed, key, Epilogue::Store);
            linear(weights.value, &self.normed, value, Epilogue::Store);
        }
        entry
    }
}
