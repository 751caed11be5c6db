//! A memo of the whole forward pass at the first two positions of a sequence that starts with BOS,
//! which depends on nothing but the token fed.
//!
//! A special case kept for speed (see [`FirstPositionTable`] for what it buys); the decoder tests
//! check that the logits and cache rows it replays are the tape model's to the bit, and that it
//! never replays into a cache whose position 0 another set of weights wrote.

use tape::Float;

use super::KvCache;
use crate::Config;

/// What feeding a token leaves behind at position 0, and at position 1 after BOS at position 0:
/// every block's key and value at that position and the next-token logits.
///
/// The assumption it rests on: at position 0 attention sees only the token itself, so these are
/// a function of the token and the weights alone; at position 1 after BOS, likewise, provided the
/// BOS at position 0 was fed under the same weights (the cache records which load of which
/// decoder fed each position 0, see [`KvCache::first`]). Every name a sampler draws starts with BOS at
/// position 0 and one of `vocab_size` tokens at position 1: the first name to feed each computes
/// the step, and the others copy it (two of the seven steps of a typical name). The copy is the
/// computed values themselves, so it is equal to a fresh computation to the bit.
///
/// Entry `token` is position 0, entry `vocab_size + token` position 1 after BOS.
#[derive(Clone, Debug)]
pub(crate) struct FirstPositionTable<F> {
    config: Config,
    /// Whether each entry holds its values.
    filled: Vec<bool>,
    /// Per entry and block: the key, then the value, each `n_embd` long.
    keys_values: Vec<F>,
    /// Per entry: the logits, `vocab_size` long.
    logits: Vec<F>,
}

impl<F: Float> FirstPositionTable<F> {
    /// An empty table for a model of shape `config`.
    pub(crate) fn new(config: Config) -> Self {
        let (vocab, entries) = (config.vocab_size, 2 * config.vocab_size);
        FirstPositionTable {
            config,
            filled: vec![false; entries],
            keys_values: vec![F::zero(); entries * config.n_layer * 2 * config.n_embd],
            logits: vec![F::zero(); entries * vocab],
        }
    }

    /// Forgets every entry: the weights have changed.
    pub(crate) fn clear(&mut self) {
        self.filled.fill(false);
    }

    /// The entry of `token` fed at `position` to a sequence that started with `first` (the token
    /// fed at position 0 under the table's weights, if it was), if the table has room for it.
    pub(crate) fn entry(
        &self,
        first: Option<usize>,
        position: usize,
        token: usize,
    ) -> Option<usize> {
        let bos = self.config.vocab_size - 1;
        match (position, first) {
            (0, _) => Some(token),
            (1, Some(first)) if first == bos => Some(self.config.vocab_size + token),
            _ => None,
        }
    }

    /// If `entry` holds its values, writes them as position `position` of `sequence` (which then
    /// holds one more position) and its logits into `logits`, and returns `true`.
    pub(crate) fn replay(
        &self,
        entry: usize,
        sequence: usize,
        position: usize,
        cache: &mut KvCache<F>,
        logits: &mut [F],
    ) -> bool {
        if !self.filled[entry] {
            return false;
        }
        let embd = self.config.n_embd;
        let row = position * embd..(position + 1) * embd;
        for (layer, key_value) in self.keys_values(entry).chunks_exact(2 * embd).enumerate() {
            let (keys, values) = cache.block_mut(layer, sequence, position);
            let (key, value) = key_value.split_at(embd);
            keys[row.clone()].copy_from_slice(key);
            values[row.clone()].copy_from_slice(value);
        }
        let vocab = self.config.vocab_size;
        logits.copy_from_slice(&self.logits[entry * vocab..(entry + 1) * vocab]);
        cache.advance(sequence);
        true
    }

    /// Stores what feeding `sequence` at `position` (its last) computed, as `entry`: its cached
    /// key and value in every block, and `logits`.
    pub(crate) fn record(
        &mut self,
        entry: usize,
        sequence: usize,
        position: usize,
        cache: &KvCache<F>,
        logits: &[F],
    ) {
        let (embd, vocab) = (self.config.n_embd, self.config.vocab_size);
        let row = position * embd..(position + 1) * embd;
        let size = self.config.n_layer * 2 * embd;
        let keys_values = &mut self.keys_values[entry * size..(entry + 1) * size];
        for (layer, key_value) in keys_values.chunks_exact_mut(2 * embd).enumerate() {
            let (key, value) = key_value.split_at_mut(embd);
            key.copy_from_slice(&cache.keys(layer, sequence)[row.clone()]);
            value.copy_from_slice(&cache.values(layer, sequence)[row.clone()]);
        }
        self.logits[entry * vocab..(entry + 1) * vocab].copy_from_slice(logits);
        self.filled[entry] = true;
    }

    fn keys_values(&self, entry: usize) -> &[F] {
        let size = self.config.n_layer * 2 * self.config.n_embd;
        &self.keys_values[entry * size..(entry + 1) * size]
    }
}
