//! One decode step: a token per active sequence in, one cached position and the next-token logits
//! out.

use std::fmt;

use ndarray::Array2;
use tape::Float;

use super::KvCache;
use super::vector::{axpy, dot, matvec, matvec_add, rmsnorm, rmsnorm_in_place, softmax_in_place};
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
/// a recomputation from scratch); sums over a vector of eight or more elements use eight partial sums,
/// so the last bits can differ from microgpt.py's left-to-right sums.
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
    /// The residual stream of every sequence, `[batch, n_embd]`.
    residual: Vec<F>,
    /// The rmsnorm of one sequence's residual, `[n_embd]`.
    normed: Vec<F>,
    /// One sequence's query, `[n_embd]`.
    query: Vec<F>,
    /// One sequence's concatenated head outputs, `[n_embd]`.
    attended: Vec<F>,
    /// One sequence's MLP hidden layer, `[4 n_embd]`.
    hidden: Vec<F>,
    /// One head's attention scores, then weights, `[block_size]`.
    scores: Vec<F>,
    /// The next-token logits of every sequence, `[batch, vocab_size]`.
    logits: Vec<F>,
}

impl<F: Float> Decoder<F> {
    /// A decoder for `batch` sequences of a model of shape `config`, with all its buffers.
    pub fn new(config: Config, batch: usize) -> Self {
        let embd = config.n_embd;
        Decoder {
            config,
            batch,
            residual: vec![F::zero(); batch * embd],
            normed: vec![F::zero(); embd],
            query: vec![F::zero(); embd],
            attended: vec![F::zero(); embd],
            hidden: vec![F::zero(); 4 * embd],
            scores: vec![F::zero(); config.block_size],
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
        self.check(params, cache, tokens)?;
        let config = self.config;
        let embd = config.n_embd;
        let head_dim = config.head_dim();
        // microgpt.py divides by `head_dim ** 0.5`, a multiplication by `(head_dim ** 0.5) ** -1`.
        let score_scale = F::from_f64((head_dim as f64).powf(0.5).powf(-1.0));
        let Decoder {
            residual,
            normed,
            query,
            attended,
            hidden,
            scores,
            logits,
            ..
        } = self;

        let wte = contiguous(params.wte(), "wte")?;
        let wpe = contiguous(params.wpe(), "wpe")?;
        for (sequence, x) in residual.chunks_exact_mut(embd).enumerate() {
            if let Some(token) = tokens[sequence] {
                let position = cache.len(sequence);
                let token_row = &wte[token * embd..(token + 1) * embd];
                let position_row = &wpe[position * embd..(position + 1) * embd];
                for ((x, &t), &p) in x.iter_mut().zip(token_row).zip(position_row) {
                    *x = t + p;
                }
                rmsnorm_in_place(x);
            }
        }

        for layer in 0..config.n_layer {
            let weight = |which: LayerWeight| {
                let name = || format!("layer{layer}.{}", layer_weight_name(which));
                params
                    .layer(layer, which)
                    .as_slice()
                    .ok_or_else(|| DecodeError::WeightLayout { name: name() })
            };
            let (wq, wk, wv) = (
                weight(LayerWeight::Query)?,
                weight(LayerWeight::Key)?,
                weight(LayerWeight::Value)?,
            );
            let (wo, fc1, fc2) = (
                weight(LayerWeight::Output)?,
                weight(LayerWeight::Expand)?,
                weight(LayerWeight::Contract)?,
            );
            for (sequence, x) in residual.chunks_exact_mut(embd).enumerate() {
                if tokens[sequence].is_none() {
                    continue;
                }
                let position = cache.len(sequence);
                rmsnorm(x, normed);
                matvec(wq, normed, query);
                let (keys, values) = cache.block_mut(layer, sequence, position);
                let row = position * embd..(position + 1) * embd;
                matvec(wk, normed, &mut keys[row.clone()]);
                matvec(wv, normed, &mut values[row]);

                let scores = &mut scores[..=position];
                for head in 0..config.n_head {
                    let span = head * head_dim..(head + 1) * head_dim;
                    // K_h q_h over the cached block, then softmax, then V_h^T w.
                    let query_head = &query[span.clone()];
                    for (score, key) in scores.iter_mut().zip(keys.chunks_exact(embd)) {
                        *score = dot(query_head, &key[span.clone()]) * score_scale;
                    }
                    softmax_in_place(scores);
                    let out = &mut attended[span.clone()];
                    out.fill(F::zero());
                    for (&weight, value) in scores.iter().zip(values.chunks_exact(embd)) {
                        axpy(weight, &value[span.clone()], out);
                    }
                }
                matvec_add(wo, attended, x);

                rmsnorm(x, normed);
                matvec(fc1, normed, hidden);
                for h in hidden.iter_mut() {
                    *h = h.max(F::zero());
                }
                matvec_add(fc2, hidden, x);
            }
        }

        let lm_head = contiguous(params.lm_head(), "lm_head")?;
        let vocab = config.vocab_size;
        for (sequence, (x, logits)) in residual
            .chunks_exact(embd)
            .zip(logits.chunks_exact_mut(vocab))
            .enumerate()
        {
            if tokens[sequence].is_some() {
                matvec(lm_head, x, logits);
                cache.advance(sequence);
            }
        }
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

    /// Everything [`Decoder::step`] can reject, checked before anything is written.
    fn check(
        &self,
        params: &Params<F>,
        cache: &KvCache<F>,
        tokens: &[Option<usize>],
    ) -> Result<(), DecodeError> {
        if *params.config() != self.config || *cache.config() != self.config {
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
        if let Some((name, _)) = params
            .iter()
            .find(|(_, tensor)| !tensor.is_standard_layout())
        {
            return Err(DecodeError::WeightLayout {
                name: name.to_string(),
            });
        }
        Ok(())
    }
}

/// The row-major elements of a weight.
fn contiguous<'a, F>(tensor: &'a Array2<F>, name: &str) -> Result<&'a [F], DecodeError> {
    tensor.as_slice().ok_or_else(|| DecodeError::WeightLayout {
        name: name.to_string(),
    })
}

/// The suffix of a block's weight in DESIGN.md's names.
fn layer_weight_name(weight: LayerWeight) -> &'static str {
    match weight {
        LayerWeight::Query => "attn_wq",
        LayerWeight::Key => "attn_wk",
        LayerWeight::Value => "attn_wv",
        LayerWeight::Output => "attn_wo",
        LayerWeight::Expand => "mlp_fc1",
        LayerWeight::Contract => "mlp_fc2",
    }
}
