//! Drawing names from a model: temperature, top-k and top-p over the decoder's logits, one
//! [`Randomness::weighted_index`] per token.

mod draw;
mod error;
mod options;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use tape::Float;

pub use draw::{DrawScratch, draw_token, token_weights};
pub use error::SampleError;
pub use options::{OptionsError, SamplingOptions};

use crate::inference::{Decoder, KvCache};
use crate::random::Randomness;
use crate::{Config, Params, Tokenizer};

/// The most names reserved up front when collecting them: a huge `count` grows the list as names
/// arrive rather than asking for its whole size at once.
const MAX_RESERVED: usize = 4096;

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
    /// The rows of a step's draws, from the decoder's logits to the weights of each draw.
    scratch: DrawScratch<F>,
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
            decoder: Decoder::zeros(config, batch),
            scratch: DrawScratch::for_rows(config.vocab_size, batch),
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
    /// A tokenizer or weights that do not match the sampler's configuration; a
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
        let prefix = self.encode_prefix(tokenizer, prefix)?;
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
        let prefix = self.encode_prefix(tokenizer, prefix)?;
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
        let vocab = self.config.vocab_size;
        while self.slots.iter().any(Option::is_some) {
            self.decoder.step(&mut self.cache, &self.feed)?;
            // The position each slot was just fed at: BOS at 0, then the prefix, then drawn tokens.
            let position = |cache: &KvCache<F>, sequence| cache.len(sequence) - 1;
            // Every draw of the step goes through one softmax.
            self.scratch.clear_rows();
            for (sequence, slot) in self.slots.iter().enumerate() {
                if slot.is_some() && position(&self.cache, sequence) >= prefix.len() {
                    self.scratch
                        .push_row(self.decoder.logits(sequence), options)?;
                }
            }
            self.scratch.softmax(vocab)?;
            let mut rows = 0..;
            for (sequence, (slot, feed)) in self.slots.iter_mut().zip(&mut self.feed).enumerate() {
                let Some(index) = *slot else { continue };
                let name = &mut building[sequence];
                let position = position(&self.cache, sequence);
                if let Some(&forced) = prefix.get(position) {
                    *feed = Some(forced);
                    continue;
                }
                let row = rows.next().expect("a row per drawing slot");
                let weights = self.scratch.row_weights(row, vocab, options);
                let token = draw::draw_with(weights, draws.rng(sequence));
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

    /// `prefix` as token ids, after checking that `tokenizer` is this model's vocabulary.
    fn encode_prefix(
        &self,
        tokenizer: &Tokenizer,
        prefix: &str,
    ) -> Result<Vec<usize>, SampleError> {
        if tokenizer.vocab_size() != self.config.vocab_size {
            return Err(SampleError::VocabularyMismatch {
                tokenizer: tokenizer.vocab_size(),
                model: self.config.vocab_size,
            });
        }
        tokenizer
            .encode_prefix(prefix)
            .map_err(SampleError::UnknownCharacter)
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
