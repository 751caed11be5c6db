//! One decode step: a token per active sequence in, one cached position and the next-token logits
//! out.

use std::sync::atomic::{AtomicU64, Ordering};

use tape::Float;
use tape::rows;

use super::first_position::FirstPositionTable;
use super::input_table::InputTable;
use super::weights::Weights;
use super::{DecodeError, KvCache};
use crate::attention::query::attend_cached;
use crate::{Config, Params, RMS_EPSILON};

/// The incremental forward pass: feeds one token to each active sequence of a batch, appends its key
/// and value to a [`KvCache`], and leaves the logits of the next token in a buffer it owns.
///
/// The weights are copied into the decoder's layout once, by [`Decoder::new`] (or
/// [`Decoder::load`] for new weights); every buffer is allocated then too, and [`Decoder::step`]
/// allocates nothing. The arithmetic is the training graph's ([`Model`](crate::Model)): the same
/// products and RMSNorm of the tape ([`tape::rows`]) and the same attention as its fused op, so in
/// either precision the logits at every position are the tape model's to the bit.
///
/// The active sequences of a step go through the model together, as the rows of one matrix: each
/// linear layer is one matrix product over them.
///
/// # Examples
///
/// Greedy decoding of two sequences, the second of which stops after one token:
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
/// let mut tokens = [Some(bos), Some(bos)];
/// for step in 0..config.block_size {
///     decoder.step(&mut cache, &tokens).unwrap();
///     for (sequence, token) in tokens.iter_mut().enumerate() {
///         if token.is_some() {
///             let logits = decoder.logits(sequence);
///             let best = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b]));
///             *token = if sequence == 1 && step == 0 { None } else { best };
///         }
///     }
/// }
/// assert_eq!((cache.len(0), cache.len(1)), (config.block_size, 1));
///
/// // A ninth token has no position left.
/// assert!(decoder.step(&mut cache, &[Some(0), None]).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Decoder<F> {
    config: Config,
    batch: usize,
    /// The weights as the products read them, from the last load.
    weights: Weights<F>,
    /// Which load the weights come from, unique in the process: a cache position 0 filled under
    /// another load is not this decoder's to replay from (see [`FirstPositionTable`]).
    load_id: u64,
    /// The first block's inputs per (token, position), for the weights of the last load.
    inputs: InputTable<F>,
    /// What each token fed at position 0, or at 1 after BOS, leaves behind, for the weights of the
    /// last load.
    first_position: FirstPositionTable<F>,
    /// The active sequences of the current step, in order: row `r` of the buffers below is
    /// sequence `rows[r]`.
    rows: Vec<usize>,
    /// The position each row is fed at.
    positions: Vec<usize>,
    /// The residual stream, `[rows, n_embd]`.
    residual: Vec<F>,
    /// The RMSNorm of the residual stream, `[rows, n_embd]`.
    normed: Vec<F>,
    /// Queries, keys and values side by side, `[rows, 3 n_embd]`.
    qkv: Vec<F>,
    /// The concatenated head outputs, `[rows, n_embd]`.
    attended: Vec<F>,
    /// The MLP hidden layer, `[rows, 4 n_embd]`.
    hidden: Vec<F>,
    /// One row's attention scores, then weights, `[n_head, block_size]`, with room to round up to
    /// whole vectors of exponentials.
    scores: Vec<F>,
    /// The logits of the rows, `[rows, vocab_size]`.
    row_logits: Vec<F>,
    /// The next-token logits of every sequence, `[batch, vocab_size]`.
    logits: Vec<F>,
}

/// The source of [`Decoder::load_id`].
static LOADS: AtomicU64 = AtomicU64::new(0);

impl<F: Float> Decoder<F> {
    /// A decoder for `batch` sequences of the model `params`, with all its buffers.
    ///
    /// # Errors
    /// If a weight is not a contiguous row-major matrix.
    pub fn new(params: &Params<F>, batch: usize) -> Result<Self, DecodeError> {
        let mut decoder = Decoder::zeros(*params.config(), batch);
        decoder.load(params)?;
        Ok(decoder)
    }

    /// A decoder for `batch` sequences of a model of shape `config` whose weights are all zero,
    /// for a [`Decoder::load`] to come.
    pub(crate) fn zeros(config: Config, batch: usize) -> Self {
        let embd = config.n_embd;
        Decoder {
            config,
            batch,
            weights: Weights::zeros(config),
            load_id: LOADS.fetch_add(1, Ordering::Relaxed),
            inputs: InputTable::new(config),
            first_position: FirstPositionTable::new(config),
            rows: Vec::with_capacity(batch),
            positions: Vec::with_capacity(batch),
            residual: vec![F::zero(); batch * embd],
            normed: vec![F::zero(); batch * embd],
            qkv: vec![F::zero(); batch * 3 * embd],
            attended: vec![F::zero(); batch * embd],
            hidden: vec![F::zero(); batch * 4 * embd],
            scores: vec![
                F::zero();
                (config.n_head * config.block_size).next_multiple_of(F::EXP_BLOCK)
            ],
            row_logits: vec![F::zero(); batch * config.vocab_size],
            logits: vec![F::zero(); batch * config.vocab_size],
        }
    }

    /// Replaces the weights with `params` (of the decoder's configuration), keeping every buffer:
    /// about the work of one token's forward pass. Caches filled with the old weights should be
    /// reset.
    ///
    /// # Errors
    /// If `params` were made for another configuration or a weight is not contiguous; the decoder
    /// is then unchanged.
    pub fn load(&mut self, params: &Params<F>) -> Result<(), DecodeError> {
        if *params.config() != self.config {
            return Err(DecodeError::ConfigMismatch);
        }
        self.weights.load(params)?;
        self.load_id = LOADS.fetch_add(1, Ordering::Relaxed);
        self.inputs.clear();
        self.first_position.clear();
        Ok(())
    }

    /// The configuration the decoder was sized for.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The number of sequences.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Feeds `tokens[s]` to every sequence `s` whose entry is `Some`, at position `cache.len(s)`,
    /// and computes its next-token logits ([`Decoder::logits`]). Sequences whose entry is `None` are
    /// left alone: their cache and their row of logits keep their values.
    ///
    /// Sequences are independent: a sequence's logits depend only on its own tokens, whatever the
    /// others do.
    ///
    /// # Errors
    /// Without changing anything: if `cache` was made for another configuration or batch size than
    /// the decoder, if `tokens` does not have an entry per sequence, if a token is not below
    /// `vocab_size`, or if a sequence already holds `block_size` positions.
    pub fn step(
        &mut self,
        cache: &mut KvCache<F>,
        tokens: &[Option<usize>],
    ) -> Result<(), DecodeError> {
        self.check(cache, tokens)?;
        self.select_rows(cache, tokens);
        self.embed(tokens);
        self.blocks(cache);
        self.finish(cache, tokens);
        Ok(())
    }

    /// The next-token logits of `sequence` from the last step that fed it: `vocab_size` values.
    ///
    /// # Panics
    /// If `sequence >= batch()`.
    pub fn logits(&self, sequence: usize) -> &[F] {
        let vocab = self.config.vocab_size;
        &self.logits[sequence * vocab..(sequence + 1) * vocab]
    }

    /// The logits of every sequence, row-major `[batch, vocab_size]`.
    pub fn all_logits(&self) -> &[F] {
        &self.logits
    }

    /// Everything a step can reject about the cache and the tokens, checked before anything is
    /// written.
    fn check(&self, cache: &KvCache<F>, tokens: &[Option<usize>]) -> Result<(), DecodeError> {
        if *cache.config() != self.config {
            return Err(DecodeError::ConfigMismatch);
        }
        if cache.batch() != self.batch || tokens.len() != self.batch {
            return Err(DecodeError::BatchMismatch {
                decoder: self.batch,
                cache: cache.batch(),
                tokens: tokens.len(),
            });
        }
        for (sequence, token) in tokens.iter().enumerate() {
            let Some(token) = *token else { continue };
            if token >= self.config.vocab_size {
                return Err(DecodeError::TokenOutOfRange {
                    sequence,
                    token,
                    vocab_size: self.config.vocab_size,
                });
            }
            if cache.len(sequence) >= self.config.block_size {
                return Err(DecodeError::ContextFull {
                    sequence,
                    block_size: self.config.block_size,
                });
            }
        }
        Ok(())
    }

    /// Takes the fed sequences whose step the first-position table replays out of the step, and
    /// lists the others as the rows to compute.
    fn select_rows(&mut self, cache: &mut KvCache<F>, tokens: &[Option<usize>]) {
        self.rows.clear();
        self.positions.clear();
        let vocab = self.config.vocab_size;
        for (sequence, token) in tokens.iter().enumerate() {
            let Some(token) = *token else { continue };
            let position = cache.len(sequence);
            if position == 0 {
                cache.set_first(sequence, self.load_id, token);
            }
            let logits = &mut self.logits[sequence * vocab..(sequence + 1) * vocab];
            let first = cache.first(sequence, self.load_id);
            if let Some(entry) = self.first_position.entry(first, position, token)
                && self
                    .first_position
                    .replay(entry, sequence, position, cache, logits)
            {
                continue;
            }
            self.rows.push(sequence);
            self.positions.push(position);
        }
    }

    /// The residual stream entering the first block, and that block's queries, keys and values,
    /// of every row (from the input table).
    fn embed(&mut self, tokens: &[Option<usize>]) {
        let (embd, count) = (self.config.n_embd, self.rows.len());
        let residual = self.residual[..count * embd].chunks_exact_mut(embd);
        let qkv = self.qkv[..count * 3 * embd].chunks_exact_mut(3 * embd);
        let rows = self.rows.iter().zip(&self.positions);
        for ((residual, qkv), (&sequence, &position)) in residual.zip(qkv).zip(rows) {
            let token = tokens[sequence].expect("a row is a fed sequence");
            let entry = self.inputs.entry(&self.weights, token, position);
            let (entry_residual, entry_qkv) = entry.split_at(embd);
            residual.copy_from_slice(entry_residual);
            qkv.copy_from_slice(entry_qkv);
        }
    }

    /// Every block on every row, as the training graph records it.
    fn blocks(&mut self, cache: &mut KvCache<F>) {
        let Decoder {
            config,
            weights,
            rows,
            positions,
            residual,
            normed,
            qkv,
            attended,
            hidden,
            scores,
            ..
        } = self;
        let (embd, count) = (config.n_embd, rows.len());
        let residual = &mut residual[..count * embd];
        let normed = &mut normed[..count * embd];
        let qkv = &mut qkv[..count * 3 * embd];
        let attended = &mut attended[..count * embd];
        let hidden = &mut hidden[..count * 4 * embd];
        for (layer, block) in weights.blocks.iter().enumerate() {
            // The first block's queries, keys and values came from the input table.
            if layer > 0 {
                rms_norm_rows(residual, normed, embd);
                block.qkv.product(normed, qkv);
            }
            let rows = rows.iter().zip(&*positions);
            let qkv_rows = qkv.chunks_exact(3 * embd);
            for (((&sequence, &position), qkv), out) in
                rows.zip(qkv_rows).zip(attended.chunks_exact_mut(embd))
            {
                let (keys, values) = cache.block_mut(layer, sequence, position);
                let newest = position * embd..(position + 1) * embd;
                keys[newest.clone()].copy_from_slice(&qkv[embd..2 * embd]);
                values[newest].copy_from_slice(&qkv[2 * embd..]);
                attend_cached(config.n_head, qkv, keys, values, scores, out);
            }
            block.output.add_product(attended, residual);
            rms_norm_rows(residual, normed, embd);
            block.expand.product(normed, hidden);
            rows::relu_in_place(hidden);
            block.contract.add_product(hidden, residual);
        }
    }

    /// The logits of every row, into each sequence's row of the logits; records the steps the
    /// first-position table keeps.
    fn finish(&mut self, cache: &mut KvCache<F>, tokens: &[Option<usize>]) {
        let (embd, vocab, count) = (self.config.n_embd, self.config.vocab_size, self.rows.len());
        let row_logits = &mut self.row_logits[..count * vocab];
        self.weights
            .lm_head
            .product(&self.residual[..count * embd], row_logits);
        let rows = self.rows.iter().zip(&self.positions);
        for ((&sequence, &position), row) in rows.zip(row_logits.chunks_exact(vocab)) {
            self.logits[sequence * vocab..(sequence + 1) * vocab].copy_from_slice(row);
            cache.advance(sequence);
            let token = tokens[sequence].expect("a row is a fed sequence");
            let first = cache.first(sequence, self.load_id);
            if let Some(entry) = self.first_position.entry(first, position, token) {
                self.first_position
                    .record(entry, sequence, position, cache, row);
            }
        }
    }
}

/// `out = x / sqrt(mean(x^2) + epsilon)` for each row of `width` of the row-major `x`, as the
/// training graph's RMSNorm computes it.
pub(crate) fn rms_norm_rows<F: Float>(x: &[F], out: &mut [F], width: usize) {
    let epsilon = F::from_f64(RMS_EPSILON);
    for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        rows::rms_norm(x, out, epsilon);
    }
}

/// The first block's input row of `token` at `position`, `rms_norm(wte[token] + wpe[position])`,
/// into `residual`, and the block's `[q | k | v]` of it into `qkv`, with `normed` as scratch: what
/// the training graph computes for a row before its first attention.
pub(crate) fn first_block_input<F: Float>(
    weights: &Weights<F>,
    token: usize,
    position: usize,
    normed: &mut [F],
    residual: &mut [F],
    qkv: &mut [F],
) {
    let embd = residual.len();
    let token_row = &weights.wte[token * embd..(token + 1) * embd];
    let position_row = &weights.wpe[position * embd..(position + 1) * embd];
    for ((sum, &t), &p) in normed.iter_mut().zip(token_row).zip(position_row) {
        *sum = t + p;
    }
    rms_norm_rows(normed, residual, embd);
    rms_norm_rows(residual, normed, embd);
    weights.blocks[0].qkv.product(normed, qkv);
}
