//! Drawing names from a model: temperature, top-k and top-p over the decoder's logits, one
//! [`Randomness::weighted_index`] per token.

mod draw;
mod draws;
mod error;
mod options;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use tape::Float;

pub use draw::{DrawScratch, draw_token, token_weights};
pub use draws::{Draws, SharedStream, StreamPerName};
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
/// The sampler allocates its buffers once; per token it allocates nothing. Per name, the text
/// variants allocate the decoded `String`, and a name that finishes before an earlier one is held
/// in a copy until that one is handed out.
///
/// # Examples
///
/// ```
/// use gpt::{Config, Params, Request, Sampler, SamplingOptions, Tokenizer};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
/// let params = Params::<f64>::init(Config::default(), &mut rng).unwrap();
/// let tokenizer = Tokenizer::from_vocab("abcdefghijklmnopqrstuvwxyz");
///
/// let mut sampler = Sampler::new(*params.config(), 4);
/// let request = Request {
///     prefix: "em",
///     options: SamplingOptions::new(0.8, Some(10), None)?,
///     ..Request::new(&tokenizer, 10)
/// };
/// let names = sampler.generate(&params, &request, &mut rng)?;
/// assert_eq!(names.len(), 10);
/// assert!(names.iter().all(|name| name.starts_with("em") && name.chars().count() <= 8));
///
/// let unknown = Request { prefix: "3m", ..request };
/// let error = sampler.generate(&params, &unknown, &mut rng).unwrap_err();
/// assert_eq!(error.to_string(), "prefix: character '3' at position 0 is not in the vocabulary");
/// # Ok::<(), Box<dyn std::error::Error>>(())
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

    /// The names `request` asks for, drawn with `rng` (one generator for every name, see
    /// [`SharedStream`]).
    ///
    /// # Errors
    /// A tokenizer or weights that do not match the sampler's configuration; a prefix character
    /// outside the vocabulary ([`SampleError::UnknownCharacter`], naming it and its position); a
    /// prefix of `block_size` characters or more; a batch size of 0; logits that are not finite.
    pub fn generate(
        &mut self,
        params: &Params<F>,
        request: &Request<'_>,
        rng: &mut impl Randomness,
    ) -> Result<Vec<String>, SampleError> {
        let mut names = Vec::with_capacity(request.count.min(MAX_RESERVED));
        self.generate_each(params, request, SharedStream(rng), |name| {
            names.push(name.to_string());
            ControlFlow::Continue(())
        })?;
        Ok(names)
    }

    /// As [`Sampler::generate`], with the draws of `draws` ([`SharedStream`] or
    /// [`StreamPerName`]), handing each name to `on_name` as soon as it and every name before it
    /// are finished, in the order they were started: memory stays the same for any count.
    /// `on_name` returns [`ControlFlow::Break`] to stop early (say, when its reader went away).
    ///
    /// ```
    /// use gpt::{Config, Params, Request, Sampler, StreamPerName, Tokenizer};
    /// use rand::SeedableRng;
    /// use rand::rngs::Xoshiro256PlusPlus;
    /// let tokenizer = Tokenizer::from_documents(["emma", "ava"]);
    /// let config = Config { vocab_size: tokenizer.vocab_size(), ..Config::default() };
    /// let params = Params::<f32>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(1)).unwrap();
    /// // Name `i` has a generator of its own: the first names are the same for any count and batch.
    /// let mut names = |batch, count| {
    ///     let stream = |i: usize| Xoshiro256PlusPlus::seed_from_u64(1000 + i as u64);
    ///     let mut names = Vec::new();
    ///     Sampler::new(config, batch)
    ///         .generate_each(&params, &Request::new(&tokenizer, count), StreamPerName::new(stream), |name| {
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
    pub fn generate_each(
        &mut self,
        params: &Params<F>,
        request: &Request<'_>,
        mut draws: impl Draws,
        mut on_name: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), SampleError> {
        let tokenizer = request.tokenizer;
        if tokenizer.vocab_size() != self.config.vocab_size {
            return Err(SampleError::VocabularyMismatch {
                tokenizer: tokenizer.vocab_size(),
                model: self.config.vocab_size,
            });
        }
        let prefix = tokenizer
            .encode_prefix(request.prefix)
            .map_err(SampleError::UnknownCharacter)?;
        let tokens = Tokens {
            count: request.count,
            prefix: &prefix,
            options: &request.options,
        };
        self.generate_with(params, tokens, &mut draws, |name| {
            on_name(&tokenizer.decode(name))
        })
    }

    /// `count` names as token ids, each starting with the tokens of `prefix`, drawn with `rng`:
    /// each name is its tokens, prefix included, BOS excluded. BOS is the last token,
    /// `vocab_size - 1`, as [`Tokenizer::bos`] defines it.
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
        let tokens = Tokens {
            count,
            prefix,
            options,
        };
        self.generate_with(params, tokens, &mut SharedStream(rng), |name| {
            names.push(name.to_vec());
            ControlFlow::Continue(())
        })?;
        Ok(names)
    }

    fn generate_with(
        &mut self,
        params: &Params<F>,
        Tokens {
            count,
            prefix,
            options,
        }: Tokens<'_>,
        draws: &mut impl Draws,
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
}

/// What one call to [`Sampler::generate`] asks for: how many names, what each starts with, and how
/// each token is drawn, in the vocabulary of `tokenizer`.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The model's vocabulary: it encodes the prefix and decodes the names.
    pub tokenizer: &'a Tokenizer,
    /// How many names.
    pub count: usize,
    /// What every name starts with (`""` for nothing).
    pub prefix: &'a str,
    /// How each token is drawn.
    pub options: SamplingOptions,
}

impl<'a> Request<'a> {
    /// `count` names with no prefix, drawn as microgpt.py draws them
    /// ([`SamplingOptions::default`]).
    pub fn new(tokenizer: &'a Tokenizer, count: usize) -> Self {
        Request {
            tokenizer,
            count,
            prefix: "",
            options: SamplingOptions::default(),
        }
    }
}

/// A request in token ids, as the decode loop takes it.
#[derive(Clone, Copy)]
struct Tokens<'a> {
    count: usize,
    prefix: &'a [usize],
    options: &'a SamplingOptions,
}
