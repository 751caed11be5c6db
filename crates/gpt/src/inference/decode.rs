//! One decode step: a token per active sequence in, one cached position and the next-token logits
//! out.

use std::fmt;

use ndarray::Array2;
use tape::{EXP_LANES, Float};

use super::KvCache;
use super::first_position::FirstPositionTable;
use super::input_table::{FirstLayer, InputTable};
use super::vector::{Epilogue, Packed, copy_row, is_single, linear, rmsnorm_rows};
use crate::{Config, LayerWeight, Params};

/// Why a decode step could not run. A step that fails changes nothing: the cache and the logits are
/// as they were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The weights, the cache and the decoder were not all made for the same configuration.
    ConfigMismatch,
    /// The decoder, the cache and the list of tokens disagree on the number of sequences.
    BatchMismatch {
        /// The decoder's batch size.
        decoder: usize,
        /// The cache's batch size.
        cache: usize,
        /// The number of entries in the list of tokens.
        tokens: usize,
    },
    /// A token is not below `vocab_size`.
    TokenOutOfRange {
        /// The sequence it was given for.
        sequence: usize,
        /// The token.
        token: usize,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// The sequence already holds `block_size` positions, so there is no position for another token.
    ContextFull {
        /// The full sequence.
        sequence: usize,
        /// The model's context length.
        block_size: usize,
    },
    /// A weight matrix is not stored contiguously in row-major order.
    WeightLayout {
        /// The weight's name, such as `layer0.attn_wq`.
        name: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::ConfigMismatch => write!(
                f,
                "the weights, the cache and the decoder were made for different configurations"
            ),
            DecodeError::BatchMismatch {
                decoder,
                cache,
                tokens,
            } => write!(
                f,
                "batch sizes disagree: decoder {decoder}, cache {cache}, tokens given {tokens}"
            ),
            DecodeError::TokenOutOfRange {
                sequence,
                token,
                vocab_size,
            } => write!(
                f,
                "token {token} of sequence {sequence} is outside the vocabulary of {vocab_size} tokens"
            ),
            DecodeError::ContextFull {
                sequence,
                block_size,
            } => write!(
                f,
                "sequence {sequence} already holds block_size = {block_size} positions"
            ),
            DecodeError::WeightLayout { name } => {
                write!(f, "weight {name:?} is not a contiguous row-major matrix")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// The incremental forward pass: feeds one token to each active sequence of a batch, appends its key
/// and value to a [`KvCache`], and leaves the logits of the next token in a buffer it owns.
///
/// Every buffer is allocated by [`Decoder::new`]; [`Decoder::step`] allocates nothing. The result
/// equals the full forward pass of DESIGN.md section 1 at every position (the tests check this against
/// a recomputation from scratch). In `f64` every sum runs left to right, as microgpt.py's do, so the
/// logits are microgpt.py's; in `f32` rmsnorm and attention's exponentials take faster routes (see
/// the `vector` module).
///
/// The active sequences of a step go through the model together, as the rows of one matrix: each
/// linear layer is one matrix product over them, with the weights transposed into register tiles
/// (see [`Decoder::step`] for what that costs).
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
/// let (mut cache, mut decoder) = (KvCache::new(config, 2), Decoder::new(config, 2));
///
/// let bos = config.vocab_size - 1;
/// let mut tokens = [Some(bos), Some(bos)];
/// for step in 0..config.block_size {
///     decoder.step(&params, &mut cache, &tokens).unwrap();
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
/// assert!(decoder.step(&params, &mut cache, &[Some(0), None]).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Decoder<F> {
    config: Config,
    batch: usize,
    /// The weights as the kernels read them, from the last [`Decoder::load`].
    weights: Weights<F>,
    /// The first block's inputs per (token, position), for the weights of the last load.
    inputs: InputTable<F>,
    /// What each token fed at position 0, or at 1 after BOS, leaves behind, for the weights of the
    /// last load.
    first_position: FirstPositionTable<F>,
    /// The token each sequence was fed at position 0, once fed. Only [`Decoder::step_loaded`]
    /// replays from the table, on the one cache of a sampler; [`Decoder::step`] clears the table
    /// on every call, so a cache filled elsewhere can never be matched with a stale entry.
    first_tokens: Vec<Option<usize>>,
    /// The active sequences of the current step, in order: row `r` of the buffers below is
    /// sequence `rows[r]`.
    rows: Vec<usize>,
    /// The position each row is fed at.
    positions: Vec<usize>,
    /// The residual stream, `[rows, n_embd]`.
    residual: Vec<F>,
    /// The rmsnorm of the residual stream, `[rows, n_embd]`.
    normed: Vec<F>,
    /// Queries, keys and values, each `[rows, n_embd]`.
    query: Vec<F>,
    key: Vec<F>,
    value: Vec<F>,
    /// The concatenated head outputs, `[rows, n_embd]`.
    attended: Vec<F>,
    /// The MLP hidden layer, `[rows, 4 n_embd]`.
    hidden: Vec<F>,
    /// One row's attention scores, then weights, `[n_head, block_size]`, with room to round up to
    /// whole vectors of exponentials.
    scores: Vec<F>,
    /// One row's per-lane products, then per-lane weights, `[block_size, n_embd]` (see [`attend`]).
    lanes: Vec<F>,
    /// The logits of the rows, `[rows, vocab_size]`.
    row_logits: Vec<F>,
    /// The next-token logits of every sequence, `[batch, vocab_size]`.
    logits: Vec<F>,
}

/// The weights of a model, copied and transposed for the decode step's kernels.
#[derive(Clone, Debug)]
struct Weights<F> {
    wte: Vec<F>,
    wpe: Vec<F>,
    /// Per layer: query, key, value, output, expand, contract.
    layers: Vec<[Packed<F>; 6]>,
    lm_head: Packed<F>,
}

impl<F: Float> Weights<F> {
    fn new(config: Config) -> Self {
        let (embd, vocab) = (config.n_embd, config.vocab_size);
        let square = || Packed::new(embd, embd);
        Weights {
            wte: vec![F::zero(); vocab * embd],
            wpe: vec![F::zero(); config.block_size * embd],
            layers: (0..config.n_layer)
                .map(|_| {
                    [
                        square(),
                        square(),
                        square(),
                        square(),
                        Packed::new(4 * embd, embd),
                        Packed::new(embd, 4 * embd),
                    ]
                })
                .collect(),
            lm_head: Packed::new(vocab, embd),
        }
    }
}

/// The weights of a block in [`Weights::layers`]' order.
const LAYER_WEIGHTS: [LayerWeight; 6] = [
    LayerWeight::Query,
    LayerWeight::Key,
    LayerWeight::Value,
    LayerWeight::Output,
    LayerWeight::Expand,
    LayerWeight::Contract,
];

impl<F: Float> Decoder<F> {
    /// A decoder for `batch` sequences of a model of shape `config`, with all its buffers.
    pub fn new(config: Config, batch: usize) -> Self {
        let embd = config.n_embd;
        Decoder {
            config,
            batch,
            weights: Weights::new(config),
            inputs: InputTable::new(config),
            first_position: FirstPositionTable::new(config),
            first_tokens: vec![None; batch],
            rows: Vec::with_capacity(batch),
            positions: Vec::with_capacity(batch),
            residual: vec![F::zero(); batch * embd],
            normed: vec![F::zero(); batch * embd],
            query: vec![F::zero(); batch * embd],
            key: vec![F::zero(); batch * embd],
            value: vec![F::zero(); batch * embd],
            attended: vec![F::zero(); batch * embd],
            hidden: vec![F::zero(); batch * 4 * embd],
            scores: vec![
                F::zero();
                (config.n_head * config.block_size).next_multiple_of(EXP_LANES)
            ],
            lanes: vec![F::zero(); config.block_size * embd],
            row_logits: vec![F::zero(); batch * config.vocab_size],
            logits: vec![F::zero(); batch * config.vocab_size],
        }
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
    /// Each call copies the weights into the decoder's transposed layout (about as much work as one
    /// token's forward pass) and forgets what it computed once for the previous weights (the first
    /// block's inputs per token and position, the whole step per token at position 0 and at 1 after
    /// BOS), which a [`Sampler`](crate::Sampler) does once per batch of names.
    ///
    /// # Errors
    /// Without changing anything: if `params`, `cache` and the decoder were made for different
    /// configurations or batch sizes, if a token is not below `vocab_size`, if a sequence already
    /// holds `block_size` positions, or if a weight is not contiguous.
    pub fn step(
        &mut self,
        params: &Params<F>,
        cache: &mut KvCache<F>,
        tokens: &[Option<usize>],
    ) -> Result<(), DecodeError> {
        if *params.config() != self.config {
            return Err(DecodeError::ConfigMismatch);
        }
        self.check(cache, tokens)?;
        self.load(params)?;
        self.run(cache, tokens);
        Ok(())
    }

    /// Copies `params` into the decoder's layout, for [`Decoder::step_loaded`].
    ///
    /// # Errors
    /// If `params` were made for another configuration or a weight is not contiguous; the decoder
    /// is then unchanged.
    pub(crate) fn load(&mut self, params: &Params<F>) -> Result<(), DecodeError> {
        if *params.config() != self.config {
            return Err(DecodeError::ConfigMismatch);
        }
        if let Some((name, _)) = params
            .iter()
            .find(|(_, tensor)| !tensor.is_standard_layout())
        {
            return Err(DecodeError::WeightLayout {
                name: name.to_string(),
            });
        }
        self.inputs.clear();
        self.first_position.clear();
        let weights = &mut self.weights;
        weights.wte.copy_from_slice(row_major(params.wte()));
        weights.wpe.copy_from_slice(row_major(params.wpe()));
        weights.lm_head.pack(row_major(params.lm_head()));
        for (layer, packed) in weights.layers.iter_mut().enumerate() {
            for (packed, which) in packed.iter_mut().zip(LAYER_WEIGHTS) {
                packed.pack(row_major(params.layer(layer, which)));
            }
        }
        Ok(())
    }

    /// [`Decoder::step`] with the weights of the last [`Decoder::load`].
    pub(crate) fn step_loaded(
        &mut self,
        cache: &mut KvCache<F>,
        tokens: &[Option<usize>],
    ) -> Result<(), DecodeError> {
        self.check(cache, tokens)?;
        self.run(cache, tokens);
        Ok(())
    }

    /// The step itself, on checked arguments.
    fn run(&mut self, cache: &mut KvCache<F>, tokens: &[Option<usize>]) {
        let config = self.config;
        let embd = config.n_embd;
        let head_dim = config.head_dim();
        // microgpt.py divides by `head_dim ** 0.5`, a multiplication by `(head_dim ** 0.5) ** -1`.
        let score_scale = F::from_f64((head_dim as f64).powf(0.5).powf(-1.0));
        let Decoder {
            weights,
            inputs,
            first_position,
            first_tokens,
            rows,
            positions,
            residual,
            normed,
            query,
            key,
            value,
            attended,
            hidden,
            scores,
            lanes,
            row_logits,
            logits,
            ..
        } = self;

        rows.clear();
        positions.clear();
        let vocab = config.vocab_size;
        for (sequence, token) in tokens.iter().enumerate() {
            let Some(token) = *token else { continue };
            let position = cache.len(sequence);
            if position == 0 {
                first_tokens[sequence] = Some(token);
            }
            let sequence_logits = &mut logits[sequence * vocab..(sequence + 1) * vocab];
            if let Some(entry) = first_position.entry(first_tokens[sequence], position, token)
                && first_position.replay(entry, sequence, position, cache, sequence_logits)
            {
                continue;
            }
            rows.push(sequence);
            positions.push(position);
        }
        let count = rows.len();
        let residual = &mut residual[..count * embd];
        let normed = &mut normed[..count * embd];
        let (query, key, value) = (
            &mut query[..count * embd],
            &mut key[..count * embd],
            &mut value[..count * embd],
        );
        let attended = &mut attended[..count * embd];
        let hidden = &mut hidden[..count * 4 * embd];

        let [first_query, first_key, first_value, ..] = &weights.layers[0];
        let first_layer = FirstLayer {
            wte: &weights.wte,
            wpe: &weights.wpe,
            query: first_query,
            key: first_key,
            value: first_value,
        };
        for (row, (&sequence, &position)) in rows.iter().zip(&*positions).enumerate() {
            let token = tokens[sequence].unwrap_or_default();
            let entry = inputs.entry(&first_layer, token, position);
            let span = row * embd..(row + 1) * embd;
            for (buffer, values) in [&mut *residual, &mut *query, &mut *key, &mut *value]
                .into_iter()
                .zip(entry.chunks_exact(embd))
            {
                copy_row(&mut buffer[span.clone()], values);
            }
        }

        for (layer, [wq, wk, wv, wo, fc1, fc2]) in weights.layers.iter().enumerate() {
            // The first block's query, key and value came from the table.
            if layer > 0 {
                rmsnorm_rows(residual, normed, embd);
                linear(wq, normed, query, Epilogue::Store);
                linear(wk, normed, key, Epilogue::Store);
                linear(wv, normed, value, Epilogue::Store);
            }
            for (row, (&sequence, &position)) in rows.iter().zip(&*positions).enumerate() {
                let span = row * embd..(row + 1) * embd;
                let (keys, values) = cache.block_mut(layer, sequence, position);
                let last = position * embd..(position + 1) * embd;
                copy_row(&mut keys[last.clone()], &key[span.clone()]);
                copy_row(&mut values[last], &value[span.clone()]);
                attend(
                    config,
                    score_scale,
                    &query[span.clone()],
                    keys,
                    values,
                    scores,
                    lanes,
                    &mut attended[span],
                );
            }
            linear(wo, attended, residual, Epilogue::Add);
            rmsnorm_rows(residual, normed, embd);
            linear(fc1, normed, hidden, Epilogue::Relu);
            linear(fc2, hidden, residual, Epilogue::Add);
        }

        let row_logits = &mut row_logits[..count * vocab];
        linear(&weights.lm_head, residual, row_logits, Epilogue::Store);
        for ((&sequence, &position), row) in rows
            .iter()
            .zip(&*positions)
            .zip(row_logits.chunks_exact(vocab))
        {
            logits[sequence * vocab..(sequence + 1) * vocab].copy_from_slice(row);
            cache.advance(sequence);
            let token = tokens[sequence].unwrap_or_default();
            if let Some(entry) = first_position.entry(first_tokens[sequence], position, token) {
                first_position.record(entry, sequence, position, cache, row);
            }
        }
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
}

/// One row's attention over its cached positions `0..=position`: for each head, the scores
/// `q_h . K_h[t] / sqrt(head_dim)`, their softmax, and `sum_t w[t] V_h[t]` into `out`, every sum
/// left to right as in microgpt.py.
///
/// The head widths of the seed's and Karpathy's models get their own copies of the loops, in which
/// `head_dim` is a constant the compiler unrolls by.
#[allow(clippy::too_many_arguments)]
fn attend<F: Float>(
    config: Config,
    score_scale: F,
    query: &[F],
    keys: &[F],
    values: &[F],
    scores: &mut [F],
    lanes: &mut [F],
    out: &mut [F],
) {
    let (n_head, head_dim) = (config.n_head, config.head_dim());
    let mut attend = |head_dim| {
        attend_heads(
            n_head,
            head_dim,
            score_scale,
            query,
            keys,
            values,
            scores,
            lanes,
            out,
        )
    };
    match head_dim {
        4 => attend(4),
        8 => attend(8),
        _ => attend(head_dim),
    }
}

/// [`attend`] for `n_head` heads of `head_dim` lanes, inlined so that a constant `head_dim` is
/// known inside.
///
/// The multiplications and the weighted sum of values run over all `n_embd` lanes of a position at
/// once (which vectorises), rather than head by head over `head_dim` lanes (which does not): first
/// the products `q[j] K[t][j]`, summed per head; then each position's weight spread over its
/// head's lanes.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_heads<F: Float>(
    n_head: usize,
    head_dim: usize,
    score_scale: F,
    query: &[F],
    keys: &[F],
    values: &[F],
    scores: &mut [F],
    lanes: &mut [F],
    out: &mut [F],
) {
    let embd = n_head * head_dim;
    let positions = keys.len() / embd;
    let lanes = &mut lanes[..keys.len()];
    for (products, key) in lanes.chunks_exact_mut(embd).zip(keys.chunks_exact(embd)) {
        for ((product, &q), &k) in products.iter_mut().zip(query).zip(key) {
            *product = q * k;
        }
    }
    // scores[h * positions + t]: each head's scores contiguous, all heads' exponentials in one loop.
    let used = n_head * positions;
    for (position, products) in lanes.chunks_exact(embd).enumerate() {
        for (head, products) in products.chunks_exact(head_dim).enumerate() {
            let dot = products
                .iter()
                .fold(F::zero(), |sum, &product| sum + product);
            scores[head * positions + position] = dot * score_scale;
        }
    }
    for scores in scores[..used].chunks_exact_mut(positions) {
        // Python's `max` keeps the first of equal values; for a maximum that makes no difference.
        let max = scores[1..]
            .iter()
            .fold(scores[0], |max, &s| if s > max { s } else { max });
        for score in scores.iter_mut() {
            *score -= max;
        }
    }
    // In f32, to the end of the last whole vector of exponentials (the buffer has the room):
    // cheaper than a scalar tail. In f64 every exponential is a call, so only the used ones.
    let padded = if is_single::<F>() {
        used.next_multiple_of(EXP_LANES).min(scores.len())
    } else {
        used
    };
    F::exp_in_place(&mut scores[..padded]);
    for scores in scores[..used].chunks_exact_mut(positions) {
        let total = scores.iter().fold(F::zero(), |sum, &e| sum + e);
        // microgpt.py's `e / total` is `e * total ** -1`.
        let inverse_total = total.powf(-F::one());
        for weight in scores.iter_mut() {
            *weight *= inverse_total;
        }
    }
    for (position, weights) in lanes.chunks_exact_mut(embd).enumerate() {
        for (head, weights) in weights.chunks_exact_mut(head_dim).enumerate() {
            weights.fill(scores[head * positions + position]);
        }
    }
    out.fill(F::zero());
    for (weights, value) in lanes.chunks_exact(embd).zip(values.chunks_exact(embd)) {
        for ((out, &weight), &value) in out.iter_mut().zip(weights).zip(value) {
            *out += weight * value;
        }
    }
}

/// The row-major elements of a weight in standard layout.
fn row_major<F>(tensor: &Array2<F>) -> &[F] {
    tensor
        .as_slice()
        .expect("the decoder checks that every weight is in standard layout")
}
