//! The keys and values of every position decoded so far, for a batch of sequences.

use tape::Float;

use crate::Config;

/// The attention keys and values of a batch of sequences, allocated once.
///
/// Both live in one contiguous buffer each, laid out `[layer][sequence][position][n_embd]` with room
/// for `block_size` positions per sequence, so the keys a head reads for one sequence are
/// `len(sequence)` rows of stride `n_embd`. Each sequence has its own length: sequences in a batch
/// may start and finish at different times, and one can be [reset](KvCache::reset_sequence) and
/// reused while the others continue.
///
/// A [`Decoder`](crate::Decoder) fills the cache; this type only stores it.
///
/// # Examples
///
/// ```
/// use gpt::{Config, Decoder, KvCache, Params};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
/// let params = Params::<f64>::init(Config::default(), &mut rng).unwrap();
/// let config = *params.config();
/// let mut cache = KvCache::new(config, 2);
/// let mut decoder = Decoder::new(&params, 2).unwrap();
///
/// let bos = config.vocab_size - 1;
/// decoder.step(&mut cache, &[Some(bos), Some(bos)]).unwrap();
/// decoder.step(&mut cache, &[Some(4), None]).unwrap(); // sequence 1 waits
/// assert_eq!((cache.len(0), cache.len(1)), (2, 1));
/// assert_eq!(cache.keys(0, 0).len(), 2 * config.n_embd);
///
/// cache.reset_sequence(0);
/// assert_eq!(cache.len(0), 0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct KvCache<F> {
    config: Config,
    batch: usize,
    keys: Vec<F>,
    values: Vec<F>,
    lengths: Vec<usize>,
    /// Per sequence, once its position 0 is fed: the load of the decoder that fed it (see
    /// [`KvCache::first`]) and the token.
    firsts: Vec<Option<(u64, usize)>>,
}

impl<F: Float> KvCache<F> {
    /// An empty cache for `batch` sequences of up to `config.block_size` positions each; this is
    /// the only allocation it ever makes.
    pub fn new(config: Config, batch: usize) -> Self {
        let size = config.n_layer * batch * config.block_size * config.n_embd;
        KvCache {
            config,
            batch,
            keys: vec![F::zero(); size],
            values: vec![F::zero(); size],
            lengths: vec![0; batch],
            firsts: vec![None; batch],
        }
    }

    /// The configuration the cache was sized for.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The number of sequences.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The number of positions cached for `sequence` (the position its next token will take).
    ///
    /// # Panics
    /// If `sequence >= batch()`.
    pub fn len(&self, sequence: usize) -> usize {
        self.lengths[sequence]
    }

    /// Forgets every sequence (the buffers are kept).
    pub fn reset(&mut self) {
        self.lengths.fill(0);
        self.firsts.fill(None);
    }

    /// Forgets one sequence, so that its slot can start a new one at position 0.
    ///
    /// # Panics
    /// If `sequence >= batch()`.
    pub fn reset_sequence(&mut self, sequence: usize) {
        self.lengths[sequence] = 0;
        self.firsts[sequence] = None;
    }

    /// The cached keys of `sequence` in block `layer`: `len(sequence)` rows of `n_embd`, row-major.
    ///
    /// # Panics
    /// If `layer >= n_layer` or `sequence >= batch()`.
    pub fn keys(&self, layer: usize, sequence: usize) -> &[F] {
        let start = self.offset(layer, sequence, 0);
        &self.keys[start..start + self.lengths[sequence] * self.config.n_embd]
    }

    /// The cached values of `sequence` in block `layer`, laid out as [`KvCache::keys`].
    ///
    /// # Panics
    /// If `layer >= n_layer` or `sequence >= batch()`.
    pub fn values(&self, layer: usize, sequence: usize) -> &[F] {
        let start = self.offset(layer, sequence, 0);
        &self.values[start..start + self.lengths[sequence] * self.config.n_embd]
    }

    /// Where the row of (`layer`, `sequence`, `position`) starts in both buffers.
    fn offset(&self, layer: usize, sequence: usize, position: usize) -> usize {
        assert!(
            layer < self.config.n_layer && sequence < self.batch,
            "layer {layer} of sequence {sequence} is outside a cache of {} layers and {} sequences",
            self.config.n_layer,
            self.batch
        );
        ((layer * self.batch + sequence) * self.config.block_size + position) * self.config.n_embd
    }

    /// The key and value rows of `position` (to write), and the key and value blocks of positions
    /// `0..=position` (to read once written): `(keys, values)`, each `[position + 1, n_embd]`.
    pub(crate) fn block_mut(
        &mut self,
        layer: usize,
        sequence: usize,
        position: usize,
    ) -> (&mut [F], &mut [F]) {
        debug_assert!(position < self.config.block_size);
        let start = self.offset(layer, sequence, 0);
        let end = start + (position + 1) * self.config.n_embd;
        (&mut self.keys[start..end], &mut self.values[start..end])
    }

    /// Records that the decoder load `load` feeds `token` to `sequence` at position 0.
    pub(crate) fn set_first(&mut self, sequence: usize, load: u64, token: usize) {
        self.firsts[sequence] = Some((load, token));
    }

    /// The token `sequence` was fed at position 0, if the decoder load `load` fed it: a memo of
    /// that load may then stand for what position 0 left in the cache.
    pub(crate) fn first(&self, sequence: usize, load: u64) -> Option<usize> {
        match self.firsts[sequence] {
            Some((fed_by, token)) if fed_by == load => Some(token),
            _ => None,
        }
    }

    /// Records that `sequence` now holds one more position.
    pub(crate) fn advance(&mut self, sequence: usize) {
        self.lengths[sequence] += 1;
    }
}
