//! Drawing names from a model: temperature, top-k and top-p over the decoder's logits, one
//! [`Randomness::weighted_index`] per token.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;

use tape::{EXP_LANES, Float};

use crate::inference::vector::is_single;
use crate::inference::{DecodeError, Decoder, KvCache};
use crate::random::Randomness;
use crate::{Config, Params, Tokenizer, UnknownCharacter};

/// The most names reserved up front when collecting them: a huge `count` grows the list as names
/// arrive rather than asking for its whole size at once.
const MAX_RESERVED: usize = 4096;

/// How the next token is drawn from the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingOptions {
    /// The logits are divided by it before the softmax: below 1 sharpens the distribution, above 1
    /// flattens it. Finite and positive; microgpt.py's default is 0.5.
    pub temperature: f64,
    /// Keep only the `k` most probable tokens (`k >= 1`); `None` keeps all.
    pub top_k: Option<usize>,
    /// Keep only the smallest set of most probable tokens whose probability reaches `p`, in `(0, 1]`;
    /// `None` keeps all. Applied after `top_k`, to the mass that `top_k` kept.
    pub top_p: Option<f64>,
}

impl Default for SamplingOptions {
    /// Temperature 0.5, no top-k, no top-p: microgpt.py's sampling.
    fn default() -> Self {
        SamplingOptions {
            temperature: 0.5,
            top_k: None,
            top_p: None,
        }
    }
}

impl SamplingOptions {
    /// Checks that the temperature is finite and positive (with a finite inverse), `top_k` at least
    /// 1, and `top_p` in `(0, 1]`.
    ///
    /// ```
    /// use gpt::{OptionsError, SamplingOptions};
    ///
    /// assert!(SamplingOptions::default().validate().is_ok());
    /// let frozen = SamplingOptions { temperature: 0.0, ..SamplingOptions::default() };
    /// assert_eq!(frozen.validate(), Err(OptionsError::Temperature(0.0)));
    /// let greedy = SamplingOptions { top_k: Some(0), ..SamplingOptions::default() };
    /// assert_eq!(greedy.validate(), Err(OptionsError::TopK(0)));
    /// ```
    pub fn validate(&self) -> Result<(), OptionsError> {
        let temperature = self.temperature;
        // A subnormal temperature has an infinite inverse, which would turn every logit into ±inf.
        if !(temperature.is_finite() && temperature > 0.0 && temperature.powf(-1.0).is_finite()) {
            return Err(OptionsError::Temperature(temperature));
        }
        if let Some(k) = self.top_k
            && k == 0
        {
            return Err(OptionsError::TopK(k));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(OptionsError::TopP(p));
        }
        Ok(())
    }
}

/// An invalid [`SamplingOptions`] field, with the value given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptionsError {
    /// The temperature is not a finite positive number (or is so small its inverse overflows).
    Temperature(f64),
    /// `top_k` is 0.
    TopK(usize),
    /// `top_p` is not in `(0, 1]`.
    TopP(f64),
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::Temperature(t) => {
                write!(f, "temperature must be a finite number above 0, not {t}")
            }
            OptionsError::TopK(k) => write!(f, "top-k must be at least 1, not {k}"),
            OptionsError::TopP(p) => write!(f, "top-p must be in (0, 1], not {p}"),
        }
    }
}

impl std::error::Error for OptionsError {}

/// Why names could not be sampled.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleError {
    /// The sampling options are invalid.
    Options(OptionsError),
    /// A character of the prefix is not in the vocabulary (it says which, and where).
    UnknownCharacter(UnknownCharacter),
    /// A prefix token is not a character of the vocabulary (it is BOS or beyond).
    PrefixToken {
        /// Its position in the prefix, from 0.
        position: usize,
        /// The token.
        token: usize,
    },
    /// The prefix leaves no position to generate at: it must be shorter than `block_size`.
    PrefixTooLong {
        /// The prefix's length in characters (tokens).
        length: usize,
        /// The model's context length.
        block_size: usize,
    },
    /// The tokenizer's vocabulary is not the model's.
    VocabularyMismatch {
        /// The tokenizer's vocabulary size.
        tokenizer: usize,
        /// The model's vocabulary size.
        model: usize,
    },
    /// The weights were not made for the sampler's configuration.
    ConfigMismatch,
    /// Names were asked of a sampler with room for no sequence.
    ZeroBatch,
    /// There are no logits to draw from.
    NoLogits,
    /// The logits make no probability distribution (a NaN or an infinity).
    NotFinite,
    /// The decode step failed.
    Decode(DecodeError),
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleError::Options(error) => write!(f, "{error}"),
            SampleError::UnknownCharacter(error) => write!(f, "prefix: {error}"),
            SampleError::PrefixToken { position, token } => write!(
                f,
                "prefix token {token} at position {position} is not a character of the vocabulary"
            ),
            SampleError::PrefixTooLong { length, block_size } => write!(
                f,
                "the prefix has {length} characters; it must be shorter than block_size ({block_size})"
            ),
            SampleError::VocabularyMismatch { tokenizer, model } => write!(
                f,
                "the tokenizer has {tokenizer} tokens but the model has {model}"
            ),
            SampleError::ConfigMismatch => {
                write!(f, "the weights were made for another configuration")
            }
            SampleError::ZeroBatch => write!(f, "the sampler's batch size is 0"),
            SampleError::NoLogits => write!(f, "there are no logits to sample from"),
            SampleError::NotFinite => {
                write!(f, "the logits are not finite, so they give no distribution")
            }
            SampleError::Decode(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for SampleError {}

impl From<OptionsError> for SampleError {
    fn from(error: OptionsError) -> Self {
        SampleError::Options(error)
    }
}

impl From<DecodeError> for SampleError {
    fn from(error: DecodeError) -> Self {
        SampleError::Decode(error)
    }
}

/// The buffers of [`token_weights`] and [`draw_token`], reused from token to token: after the first
/// token of a given vocabulary size, drawing allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct DrawScratch {
    /// The probabilities, then the weights handed to the generator.
    weights: Vec<f64>,
    /// Token ids from most to least probable.
    order: Vec<usize>,
    /// The shifted logits of an `f32` model, then their exponentials, padded with zeros to whole
    /// vectors of exponentials.
    exponentials: Vec<f32>,
}

impl DrawScratch {
    /// Scratch space for a vocabulary of `vocab_size` tokens.
    pub fn new(vocab_size: usize) -> Self {
        DrawScratch {
            weights: Vec::with_capacity(vocab_size),
            order: Vec::with_capacity(vocab_size),
            exponentials: Vec::with_capacity(vocab_size.next_multiple_of(EXP_LANES)),
        }
    }

    /// The weights of the last [`token_weights`] or [`draw_token`] call.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
}

/// The weights the next token is drawn with: `softmax(logits / temperature)`, with the tokens that
/// top-k and top-p filter out set to 0 (the others keep their probability, so the draw renormalises).
///
/// For `f64` logits the softmax is computed exactly as microgpt.py computes it, so that the weights
/// are the ones it hands to `random.choices`: each logit is multiplied by `temperature ** -1`
/// (Python's `l / temperature` on a `Value`), the first maximum is subtracted, the exponentials are
/// summed left to right, and each is multiplied by `total ** -1`. For `f32` logits (a precision
/// microgpt.py does not have) the same steps run, but the exponentials are the decoder's vectorised
/// `f32` ones (within 2 units in the last place of `f32`, flushed to 0 below `e^-87.3`): the C
/// library's `f64` `exp`, one call per token, was a fifth of the time to sample a name.
///
/// Top-k keeps the `k` most probable tokens. Top-p then keeps the shortest run of the most probable
/// remaining tokens whose cumulative probability reaches `p` times the mass kept so far. Equal
/// probabilities are ranked by token id, lowest first.
///
/// # Errors
/// Invalid options, no logits, or logits that give no finite distribution.
///
/// ```
/// use gpt::{DrawScratch, SamplingOptions, token_weights};
///
/// let mut scratch = DrawScratch::new(3);
/// let options = SamplingOptions { temperature: 1.0, top_k: Some(2), top_p: None };
/// let weights = token_weights(&[0.0f32, 2.0, 1.0], &options, &mut scratch).unwrap();
/// assert_eq!(weights[0], 0.0); // the least probable token is filtered out
/// assert!(weights[1] > weights[2] && weights[2] > 0.0);
/// ```
pub fn token_weights<'a, F: Float>(
    logits: &[F],
    options: &SamplingOptions,
    scratch: &'a mut DrawScratch,
) -> Result<&'a [f64], SampleError> {
    options.validate()?;
    let DrawScratch {
        weights,
        order,
        exponentials: single,
    } = scratch;
    exponentials(logits, options.temperature, weights, single)?;
    let total = weights.iter().fold(0.0, |sum, &weight| sum + weight);
    if !(total.is_finite() && total > 0.0) {
        return Err(SampleError::NotFinite);
    }
    let inverse_total = total.powf(-1.0);
    for weight in weights.iter_mut() {
        *weight *= inverse_total;
    }
    if options.top_k.is_some() || options.top_p.is_some() {
        filter(weights, order, options);
    }
    Ok(weights)
}

/// `weights[i] = exp(logits[i] * temperature ** -1 - max)`, the softmax before its normalisation,
/// with `max` the largest scaled logit (see [`token_weights`] for the precision of each dtype).
///
/// # Errors
/// No logits.
fn exponentials<F: Float>(
    logits: &[F],
    temperature: f64,
    weights: &mut Vec<f64>,
    single: &mut Vec<f32>,
) -> Result<(), SampleError> {
    if logits.is_empty() {
        return Err(SampleError::NoLogits);
    }
    scale(logits, temperature.powf(-1.0), weights);
    let max = maximum(weights);
    if is_single::<F>() {
        single.clear();
        single.resize(weights.len().next_multiple_of(EXP_LANES), 0.0);
        shift(weights, max, single);
        f32::exp_in_place(single);
        for (weight, &exponential) in weights.iter_mut().zip(&*single) {
            *weight = f64::from(exponential);
        }
    } else {
        for weight in weights.iter_mut() {
            *weight = (*weight - max).exp();
        }
    }
    Ok(())
}

/// `scaled[i] = logits[i] * inverse_temperature` in `f64` (Python's `l / temperature`).
fn scale<F: Float>(logits: &[F], inverse_temperature: f64, scaled: &mut Vec<f64>) {
    scaled.clear();
    scaled.extend(
        logits
            .iter()
            .map(|&logit| Float::to_f64(logit) * inverse_temperature),
    );
}

/// `shifted[i] = scaled[i] - max`, rounded to `f32` for the vectorised exponential.
fn shift(scaled: &[f64], max: f64, shifted: &mut [f32]) {
    for (shifted, &scaled) in shifted.iter_mut().zip(scaled) {
        *shifted = (scaled - max) as f32;
    }
}

/// `weights[i] = exponentials[i]` in `f64`, for the generator.
///
/// # Errors
/// A NaN (from a NaN logit). Otherwise the largest weight is `exp(0) = 1` and none is infinite,
/// so the total is finite and positive.
fn widen(exponentials: &[f32], weights: &mut Vec<f64>) -> Result<(), SampleError> {
    weights.clear();
    weights.extend(exponentials.iter().map(|&e| f64::from(e)));
    reject_nan(weights)
}

/// [`SampleError::NotFinite`] if a weight is NaN (the NaN of a NaN logit: see [`widen`]).
fn reject_nan(weights: &[f64]) -> Result<(), SampleError> {
    if weights.iter().fold(false, |nan, w| nan | w.is_nan()) {
        return Err(SampleError::NotFinite);
    }
    Ok(())
}

/// The largest of the non-empty `values`, as Python's `max` finds it, but compared in eight
/// independent lanes so that the comparisons vectorise.
///
/// Which of two equal values wins can differ from Python's first-wins rule only for `0.0` against
/// `-0.0`, and subtracting either from a logit gives the same number. A NaN is skipped as Python
/// skips it (`>` is false), unless it comes first, in which case both return it.
fn maximum(values: &[f64]) -> f64 {
    let first = values[0];
    let (chunks, rest) = values.as_chunks::<8>();
    let mut lanes = [first; 8];
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            if value > *lane {
                *lane = value;
            }
        }
    }
    lanes
        .iter()
        .chain(rest)
        .fold(first, |max, &value| if value > max { value } else { max })
}

/// Sets to 0 the probabilities that top-k and then top-p filter out (see [`token_weights`]).
fn filter(weights: &mut [f64], order: &mut Vec<usize>, options: &SamplingOptions) {
    order.clear();
    order.extend(0..weights.len());
    // A total order (probability descending, then id ascending): deterministic, and the unstable
    // sort does not allocate.
    order.sort_unstable_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut keep = options.top_k.map_or(order.len(), |k| k.min(order.len()));
    if let Some(p) = options.top_p {
        let kept_mass = order[..keep]
            .iter()
            .fold(0.0, |sum, &token| sum + weights[token]);
        let threshold = p * kept_mass;
        let mut cumulative = 0.0;
        if let Some(rank) = order[..keep].iter().position(|&token| {
            cumulative += weights[token];
            cumulative >= threshold
        }) {
            keep = rank + 1;
        }
    }
    for &token in &order[keep..] {
        weights[token] = 0.0;
    }
}

/// Draws the next token from `logits`: [`token_weights`], then exactly one
/// `rng.weighted_index(weights)` and no other use of `rng`.
///
/// With the default options and [`PythonRandom`](crate::PythonRandom), this is microgpt.py's
/// `random.choices(range(vocab_size), weights=[p.data for p in softmax([l / temperature ...])])`.
///
/// For `f32` logits without top-k or top-p, the weights handed to the generator are the
/// exponentials before their normalisation: the same distribution (the draw divides by their
/// total), without the two passes over the vocabulary that normalising takes.
///
/// # Errors
/// As [`token_weights`].
///
/// ```
/// use gpt::{DrawScratch, SamplingOptions, draw_token};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(3);
/// let mut scratch = DrawScratch::new(3);
/// let greedy = SamplingOptions { top_k: Some(1), ..SamplingOptions::default() };
/// assert_eq!(draw_token(&[0.5f64, -1.0, 2.5], &greedy, &mut scratch, &mut rng), Ok(2));
/// ```
pub fn draw_token<F: Float>(
    logits: &[F],
    options: &SamplingOptions,
    scratch: &mut DrawScratch,
    rng: &mut impl Randomness,
) -> Result<usize, SampleError> {
    let unfiltered = options.top_k.is_none() && options.top_p.is_none();
    let weights = if is_single::<F>() && unfiltered {
        options.validate()?;
        let DrawScratch {
            weights,
            exponentials: single,
            ..
        } = scratch;
        exponentials(logits, options.temperature, weights, single)?;
        reject_nan(weights)?;
        &scratch.weights[..]
    } else {
        token_weights(logits, options, scratch)?
    };
    Ok(draw_with(weights, rng))
}

/// One `rng.weighted_index(weights)`, kept inside the tokens of positive weight.
fn draw_with(weights: &[f64], rng: &mut impl Randomness) -> usize {
    let token = rng.weighted_index(weights);
    if weights[token] > 0.0 {
        return token;
    }
    // Only reachable when `uniform() * total` rounds up to `total`, where `random.choices` falls back
    // to the last token even if its weight is 0: keep the draw inside the filtered set instead.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(token)
}

/// The exponentials of a whole decode step of an `f32` model, for draws without top-k or top-p:
/// every sequence's shifted logits, then one call of the vectorised exponential over all of them.
///
/// Per sequence the exponential is one or two vectors, each a chain of dependent operations that
/// leaves the processor waiting; over a batch, many independent vectors are in flight. The
/// numbers are those [`draw_token`] computes, so the draws are the same.
#[derive(Clone, Debug)]
struct StepExponentials {
    vocab_size: usize,
    /// `vocab_size` rounded up to whole vectors of exponentials.
    stride: usize,
    /// Per sequence, `stride` values: the shifted logits, then their exponentials.
    exponentials: Vec<f32>,
}

impl StepExponentials {
    fn new(vocab_size: usize, batch: usize) -> Self {
        let stride = vocab_size.next_multiple_of(EXP_LANES);
        StepExponentials {
            vocab_size,
            stride,
            exponentials: vec![0.0; batch * stride],
        }
    }

    /// The exponentials of every sequence's row of `logits [batch, vocab_size]`, with `scaled` as
    /// scratch. Rows of idle sequences are computed too: that is cheaper than skipping them.
    fn compute<F: Float>(&mut self, logits: &[F], inverse_temperature: f64, scaled: &mut Vec<f64>) {
        for (row, shifted) in logits
            .chunks_exact(self.vocab_size)
            .zip(self.exponentials.chunks_exact_mut(self.stride))
        {
            scale(row, inverse_temperature, scaled);
            shift(scaled, maximum(scaled), shifted);
        }
        f32::exp_in_place(&mut self.exponentials);
    }

    /// The weights of `sequence` from the last [`StepExponentials::compute`], as [`widen`] makes
    /// them.
    fn weights(&self, sequence: usize, weights: &mut Vec<f64>) -> Result<(), SampleError> {
        let row = &self.exponentials[sequence * self.stride..][..self.vocab_size];
        widen(row, weights)
    }
}

/// Generates names with a model, up to `batch` at a time through one [`KvCache`].
///
/// Each name starts from BOS at position 0, then the prefix's tokens at positions 1, 2, .., then
/// drawn tokens fed back, and stops when BOS is drawn or after `block_size` positions (so a name,
/// prefix included, has at most `block_size` characters). Every drawn token costs exactly one
/// [`Randomness::weighted_index`] and nothing else uses the generator.
///
/// # Order of draws
///
/// Names are assigned to the `batch` slots in order: names `0..batch` start in slots `0..batch`,
/// and when a name finishes, the next unstarted name takes its slot, starting at the next decode
/// step. Each decode step feeds one token to every active slot; then the slots are visited in order
/// `0..batch`, and each slot whose next token is not forced by the prefix draws one token. The names
/// are returned in the order they were started.
///
/// With `batch = 1` this is microgpt.py's order: every token of name 1, then of name 2, and so on,
/// so [`PythonRandom`](crate::PythonRandom) with microgpt.py's seed and state draws the same tokens.
/// With `batch > 1` the draws interleave, so the names differ from those of `batch = 1`; for a given
/// seed and batch size they are always the same.
///
/// The sampler allocates its buffers once; per token it allocates nothing (each name's token list is
/// allocated when the name starts).
///
/// # Examples
///
/// ```
/// use gpt::{Config, Params, Sampler, SamplingOptions, Tokenizer};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
/// let params = Params::<f64>::init(Config::default(), &mut rng).unwrap();
/// let tokenizer = Tokenizer::from_vocab("abcdefghijklmnopqrstuvwxyz");
///
/// let mut sampler = Sampler::new(*params.config(), 4);
/// let options = SamplingOptions::default();
/// let names = sampler.generate(&params, &tokenizer, 10, "em", &options, &mut rng).unwrap();
/// assert_eq!(names.len(), 10);
/// assert!(names.iter().all(|name| name.starts_with("em") && name.chars().count() <= 8));
///
/// let error = sampler.generate(&params, &tokenizer, 1, "3m", &options, &mut rng).unwrap_err();
/// assert_eq!(error.to_string(), "prefix: character '3' at position 0 is not in the vocabulary");
/// ```
#[derive(Clone, Debug)]
pub struct Sampler<F> {
    config: Config,
    cache: KvCache<F>,
    decoder: Decoder<F>,
    scratch: DrawScratch,
    /// The exponentials of a step's draws, for an `f32` model without top-k or top-p.
    step_exponentials: StepExponentials,
    /// The token each slot is fed at the next decode step; `None` for an idle slot.
    feed: Vec<Option<usize>>,
    /// The name (index into the result) each slot is generating.
    slots: Vec<Option<usize>>,
}

impl<F: Float> Sampler<F> {
    /// A sampler for a model of shape `config`, generating up to `batch` names at a time.
    pub fn new(config: Config, batch: usize) -> Self {
        Sampler {
            config,
            cache: KvCache::new(config, batch),
            decoder: Decoder::new(config, batch),
            scratch: DrawScratch::new(config.vocab_size),
            step_exponentials: StepExponentials::new(config.vocab_size, batch),
            feed: vec![None; batch],
            slots: vec![None; batch],
        }
    }

    /// The configuration the sampler was sized for.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The number of names generated at a time.
    pub fn batch(&self) -> usize {
        self.feed.len()
    }

    /// `count` names, each starting with `prefix` (`""` for none), drawn with `rng`.
    ///
    /// # Errors
    /// Invalid options; a tokenizer or weights that do not match the sampler's configuration; a
    /// prefix character outside the vocabulary ([`SampleError::UnknownCharacter`], naming it and its
    /// position); a prefix of `block_size` characters or more; a batch size of 0; logits that are not
    /// finite.
    pub fn generate(
        &mut self,
        params: &Params<F>,
        tokenizer: &Tokenizer,
        count: usize,
        prefix: &str,
        options: &SamplingOptions,
        rng: &mut impl Randomness,
    ) -> Result<Vec<String>, SampleError> {
        let mut names = Vec::with_capacity(count.min(MAX_RESERVED));
        self.generate_each(params, tokenizer, count, prefix, options, rng, |name| {
            names.push(name.to_string());
            ControlFlow::Continue(())
        })?;
        Ok(names)
    }

    /// As [`Sampler::generate`], handing each name to `on_name` as soon as it and every name before
    /// it are finished, in the same order and with the same draws: memory stays the same for any
    /// `count`. `on_name` returns [`ControlFlow::Break`] to stop early (say, when its reader went
    /// away).
    ///
    /// # Errors
    /// As [`Sampler::generate`].
    #[allow(clippy::too_many_arguments)]
    pub fn generate_each(
        &mut self,
        params: &Params<F>,
        tokenizer: &Tokenizer,
        count: usize,
        prefix: &str,
        options: &SamplingOptions,
        rng: &mut impl Randomness,
        mut on_name: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), SampleError> {
        if tokenizer.vocab_size() != self.config.vocab_size {
            return Err(SampleError::VocabularyMismatch {
                tokenizer: tokenizer.vocab_size(),
                model: self.config.vocab_size,
            });
        }
        let prefix = tokenizer
            .encode_prefix(prefix)
            .map_err(SampleError::UnknownCharacter)?;
        self.generate_tokens_each(params, count, &prefix, options, rng, |name| {
            on_name(&tokenizer.decode(name))
        })
    }

    /// As [`Sampler::generate`], on token ids: each name is its tokens, prefix included, BOS
    /// excluded. BOS is the last token, `vocab_size - 1`, as [`Tokenizer::bos`] defines it.
    ///
    /// # Errors
    /// As [`Sampler::generate`]; a prefix token that is BOS or beyond is
    /// [`SampleError::PrefixToken`].
    pub fn generate_tokens(
        &mut self,
        params: &Params<F>,
        count: usize,
        prefix: &[usize],
        options: &SamplingOptions,
        rng: &mut impl Randomness,
    ) -> Result<Vec<Vec<usize>>, SampleError> {
        let mut names = Vec::with_capacity(count.min(MAX_RESERVED));
        self.generate_tokens_each(params, count, prefix, options, rng, |name| {
            names.push(name.to_vec());
            ControlFlow::Continue(())
        })?;
        Ok(names)
    }

    /// As [`Sampler::generate_each`], on token ids (see [`Sampler::generate_tokens`]).
    ///
    /// # Errors
    /// As [`Sampler::generate_tokens`].
    pub fn generate_tokens_each(
        &mut self,
        params: &Params<F>,
        count: usize,
        prefix: &[usize],
        options: &SamplingOptions,
        rng: &mut impl Randomness,
        on_name: impl FnMut(&[usize]) -> ControlFlow<()>,
    ) -> Result<(), SampleError> {
        self.generate_with(params, count, prefix, options, &mut Shared(rng), on_name)
    }

    /// As [`Sampler::generate_each`], but name `i` draws from its own generator `stream(i)`, so
    /// that it is the same for any `count` and any batch size: the i-th name of a seed is that
    /// seed's i-th name however many are asked for, and however many are generated at a time.
    ///
    /// ```
    /// use gpt::{Config, Params, Sampler, SamplingOptions, Tokenizer};
    /// use rand::SeedableRng;
    /// use rand::rngs::Xoshiro256PlusPlus;
    /// let tokenizer = Tokenizer::from_documents(["emma", "ava"]);
    /// let config = Config { vocab_size: tokenizer.vocab_size(), ..Config::default() };
    /// let params = Params::<f32>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(1)).unwrap();
    /// let stream = |i: usize| Xoshiro256PlusPlus::seed_from_u64(1000 + i as u64);
    /// let options = SamplingOptions::default();
    /// let mut names = |batch, count| {
    ///     let mut names = Vec::new();
    ///     Sampler::new(config, batch)
    ///         .generate_each_streamed(&params, &tokenizer, count, "", &options, stream, |name| {
    ///             names.push(name.to_string());
    ///             std::ops::ControlFlow::Continue(())
    ///         })
    ///         .unwrap();
    ///     names
    /// };
    /// assert_eq!(names(1, 3), names(4, 8)[..3]);
    /// ```
    ///
    /// # Errors
    /// As [`Sampler::generate`].
    #[allow(clippy::too_many_arguments)]
    pub fn generate_each_streamed<R: Randomness>(
        &mut self,
        params: &Params<F>,
        tokenizer: &Tokenizer,
        count: usize,
        prefix: &str,
        options: &SamplingOptions,
        stream: impl FnMut(usize) -> R,
        mut on_name: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), SampleError> {
        if tokenizer.vocab_size() != self.config.vocab_size {
            return Err(SampleError::VocabularyMismatch {
                tokenizer: tokenizer.vocab_size(),
                model: self.config.vocab_size,
            });
        }
        let prefix = tokenizer
            .encode_prefix(prefix)
            .map_err(SampleError::UnknownCharacter)?;
        let mut draws = PerName {
            stream,
            slots: (0..self.batch()).map(|_| None).collect(),
        };
        self.generate_with(params, count, &prefix, options, &mut draws, |name| {
            on_name(&tokenizer.decode(name))
        })
    }

    fn generate_with<D: Draws>(
        &mut self,
        params: &Params<F>,
        count: usize,
        prefix: &[usize],
        options: &SamplingOptions,
        draws: &mut D,
        mut on_name: impl FnMut(&[usize]) -> ControlFlow<()>,
    ) -> Result<(), SampleError> {
        options.validate()?;
        if *params.config() != self.config {
            return Err(SampleError::ConfigMismatch);
        }
        let block_size = self.config.block_size;
        let bos = self.config.vocab_size - 1;
        if let Some((position, &token)) = prefix.iter().enumerate().find(|(_, t)| **t >= bos) {
            return Err(SampleError::PrefixToken { position, token });
        }
        if prefix.len() >= block_size {
            return Err(SampleError::PrefixTooLong {
                length: prefix.len(),
                block_size,
            });
        }
        if count == 0 {
            return Ok(());
        }
        if self.batch() == 0 {
            return Err(SampleError::ZeroBatch);
        }

        // Names are handed out in the order they were started. With several slots a later name can
        // finish first: it waits in `finished` until the earlier ones are out, so at most `batch`
        // names are held at any time, whatever `count` is.
        let mut started = 0;
        let mut emitted = 0;
        let mut finished: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut start = |name: &mut Vec<usize>| {
            if started == count {
                return None;
            }
            name.clear();
            name.extend_from_slice(prefix);
            started += 1;
            Some(started - 1)
        };
        self.cache.reset();
        let mut building: Vec<Vec<usize>> = (0..self.batch())
            .map(|_| Vec::with_capacity(block_size))
            .collect();
        for (sequence, ((slot, feed), name)) in self
            .slots
            .iter_mut()
            .zip(&mut self.feed)
            .zip(&mut building)
            .enumerate()
        {
            *slot = start(name);
            *feed = slot.map(|_| bos);
            if let Some(index) = *slot {
                draws.begin(sequence, index);
            }
        }

        // The weights are fixed for the whole call: put them in the decoder's layout once.
        self.decoder.load(params)?;
        let batched = is_single::<F>() && options.top_k.is_none() && options.top_p.is_none();
        let inverse_temperature = options.temperature.powf(-1.0);
        while self.slots.iter().any(Option::is_some) {
            self.decoder.step_loaded(&mut self.cache, &self.feed)?;
            if batched {
                let logits = self.decoder.all_logits();
                let scaled = &mut self.scratch.weights;
                self.step_exponentials
                    .compute(logits, inverse_temperature, scaled);
            }
            for (sequence, (slot, feed)) in self.slots.iter_mut().zip(&mut self.feed).enumerate() {
                let Some(index) = *slot else { continue };
                let name = &mut building[sequence];
                // The position just fed: BOS at 0, then the prefix, then drawn tokens.
                let position = self.cache.len(sequence) - 1;
                if let Some(&forced) = prefix.get(position) {
                    *feed = Some(forced);
                    continue;
                }
                let token = if batched {
                    let weights = &mut self.scratch.weights;
                    self.step_exponentials.weights(sequence, weights)?;
                    draw_with(weights, draws.rng(sequence))
                } else {
                    let logits = self.decoder.logits(sequence);
                    draw_token(logits, options, &mut self.scratch, draws.rng(sequence))?
                };
                if token != bos {
                    name.push(token);
                }
                if token == bos || position + 1 == block_size {
                    self.cache.reset_sequence(sequence);
                    if index == emitted {
                        if on_name(name).is_break() {
                            return Ok(());
                        }
                        emitted += 1;
                        while let Some(next) = finished.remove(&emitted) {
                            if on_name(&next).is_break() {
                                return Ok(());
                            }
                            emitted += 1;
                        }
                    } else {
                        finished.insert(index, name.clone());
                    }
                    *slot = start(name);
                    *feed = slot.map(|_| bos);
                    if let Some(index) = *slot {
                        draws.begin(sequence, index);
                    }
                } else {
                    *feed = Some(token);
                }
            }
        }
        Ok(())
    }
}

/// Where the draws of the name in each slot come from.
trait Draws {
    type Rng: Randomness;
    /// Slot `slot` starts name `index`.
    fn begin(&mut self, slot: usize, index: usize);
    /// The generator of the name in `slot`.
    fn rng(&mut self, slot: usize) -> &mut Self::Rng;
}

/// One generator for every name, drawn in decode order (CPython's order with one slot).
struct Shared<'a, R>(&'a mut R);

impl<R: Randomness> Draws for Shared<'_, R> {
    type Rng = R;
    fn begin(&mut self, _: usize, _: usize) {}
    fn rng(&mut self, _: usize) -> &mut R {
        self.0
    }
}

/// A generator per name, `stream(index)`.
struct PerName<R, S> {
    stream: S,
    slots: Vec<Option<R>>,
}

impl<R: Randomness, S: FnMut(usize) -> R> Draws for PerName<R, S> {
    type Rng = R;
    fn begin(&mut self, slot: usize, index: usize) {
        self.slots[slot] = Some((self.stream)(index));
    }
    fn rng(&mut self, slot: usize) -> &mut R {
        self.slots[slot]
            .as_mut()
            .expect("a busy slot has begun a name")
    }
}
