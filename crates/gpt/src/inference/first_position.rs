//! The whole forward pass at position 0, which depends on nothing but the token.

use tape::Float;

use super::KvCache;
use crate::Config;

/// Per token: what feeding it at position 0 leaves behind, every block's key and value and the
/// next-token logits.
///
/// At position 0 attention sees only the token itself, so these are a function of the token
/// alone. Every name a sampler draws starts with BOS at position 0: the first of them computes
/// that step, and the others (a seventh of all the steps of short names) copy it. The copy is
/// the computed values themselves, so it is equal to a fresh computation to the bit.
#[derive(Clone, Debug)]
pub(crate) struct FirstPositionTable<F> {
    config: Config,
    /// Whether each token's entry holds its values.
    filled: Vec<bool>,
    /// Per token and block: the key, then the value, each `n_embd` long.
    keys_values: Vec<F>,
    /// Per token: the logits, `vocab_size` long.
    logits: Vec<F>,
}

impl<F: Float> FirstPositionTable<F> {
    /// An empty table for a model of shape `config`.
    pub(crate) fn new(config: Config) -> Self {
        let vocab = config.vocab_size;
        FirstPositionTable {
            config,
            filled: vec![false; vocab],
            keys_values: vec![F::zero(); vocab * config.n_layer * 2 * config.n_embd],
            logits: vec![F::zero(); vocab * vocab],
        }
    }

    /// Forgets every entry: the weights have changed.
    pub(crate) fn clear(&mut self) {
        self.filled.fill(false);
    }

    /// If `token` has an entry, writes it as position 0 of the empty `sequence` (which then holds
    /// one position) and its logits into `logits`, and returns `true`.
    pub(crate) fn replay(
        &self,
        token: usize,
        sequence: usize,
        cache: &mut KvCache<F>,
        logits: &mut [F],
    ) -> bool {
        if !self.filled[token] {
            return false;
        }
        let embd = self.config.n_embd;
        for (layer, key_value) in self.entry(token).chunks_exact(2 * embd).enumerate() {
            let (keys, values) = cache.block_mut(layer, sequence, 0);
            let (key, value) = key_value.split_at(embd);
            keys.copy_from_slice(key);
            values.copy_from_slice(value);
        }
        logits.copy_from_slice(self.token_logits(token));
        cache.advance(sequence);
        true
    }

    /// Stores what feeding `token` to `sequence` at position 0 computed: its cached key and value
    /// in every block, and `logits`.
    pub(crate) fn record(
        &mut self,
        token: usize,
        sequence: usize,
        cache: &KvCache<F>,
        logits: &[F],
    ) {
        let (embd, vocab) = (self.config.n_embd, self.config.vocab_size);
        let span =
            token * self.config.n_layer * 2 * embd..(token + 1) * self.config.n_layer * 2 * embd;
        for (layer, key_value) in self.keys_values[span]
            .chunks_exact_mut(2 * embd)
            .enumerate()
        {
            let (key, value) = key_value.split_at_mut(embd);
            key.copy_from_slice(&cache.keys(layer, sequence)[..embd]);
            value.copy_from_slice(&cache.values(layer, sequence)[..embd]);
        }
        self.logits[token * vocab..(token + 1) * vocab].copy_from_slice(logits);
        self.filled[token] = true;
    }

    fn entry(&self, token: usize) -> &[F] {
        let size = self.config.n_layer * 2 * self.config.n_embd;
        &self.keys_values[token * size..(token + 1) * size]
    }

    fn token_logits(&self, token: usize) -> &[F] {
        let vocab = self.config.vocab_size;
        &self.logits[token * vocab..(token + 1) * vocab]
    }
}
