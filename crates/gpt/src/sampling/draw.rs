//! The one softmax-and-draw path, for `f32` and `f64` logits alike: scale and shift, exponentials
//! (one call over every row of a step), normalise, filter, one weighted draw.

use tape::Float;

use super::{SampleError, SamplingOptions};
use crate::random::Randomness;

/// The buffers of the draw, reused from token to token: once they have held a vocabulary's worth,
/// drawing allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct DrawScratch<F> {
    /// The shifted scaled logits of each row being drawn, then their exponentials.
    exponentials: Vec<F>,
    /// The probabilities of each row, handed to the generator.
    weights: Vec<f64>,
    /// Token ids from most to least probable.
    order: Vec<usize>,
}

impl<F: Float> DrawScratch<F> {
    /// Scratch space for a vocabulary of `vocab_size` tokens.
    pub fn new(vocab_size: usize) -> Self {
        DrawScratch::for_rows(vocab_size, 1)
    }

    /// Scratch space for `rows` draws at a time from a vocabulary of `vocab_size` tokens.
    pub(crate) fn for_rows(vocab_size: usize, rows: usize) -> Self {
        DrawScratch {
            exponentials: Vec::with_capacity((vocab_size * rows).next_multiple_of(F::EXP_BLOCK)),
            weights: Vec::with_capacity(vocab_size * rows),
            order: Vec::with_capacity(vocab_size),
        }
    }

    /// The weights of the last [`token_weights`] or [`draw_token`] call.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Forgets the rows of the last step.
    pub(crate) fn clear_rows(&mut self) {
        self.exponentials.clear();
    }

    /// Adds a row to draw from: `logits` scaled by the inverse temperature and shifted by their
    /// maximum, in `f64` (Python's `l / temperature` on a `Value`, and its `max`), then rounded to
    /// `F` for the exponential.
    ///
    /// # Errors
    /// No logits.
    pub(crate) fn push_row(
        &mut self,
        logits: &[F],
        options: &SamplingOptions,
    ) -> Result<(), SampleError> {
        let Some(&first) = logits.first() else {
            return Err(SampleError::NoLogits);
        };
        let inverse_temperature = options.inverse_temperature();
        let scaled = |logit: F| logit.to_f64() * inverse_temperature;
        // Scaling by a positive factor never reverses an order, so the largest scaled logit is the
        // scaled largest logit: Python's `max` of the scaled logits, found without converting each.
        let max = scaled(python_max(first, logits));
        let start = self.exponentials.len();
        self.exponentials.resize(start + logits.len(), F::zero());
        // Written over a slice of known length, not pushed one by one: the loop vectorises.
        for (shifted, &logit) in self.exponentials[start..].iter_mut().zip(logits) {
            *shifted = F::from_f64(scaled(logit) - max);
        }
        Ok(())
    }

    /// Turns every row pushed since [`DrawScratch::clear_rows`] into its probabilities: the
    /// exponentials in one call over whole vectors of them (the padding is never read: cheaper
    /// than a scalar tail), then each row summed left to right and multiplied by `total ** -1`
    /// (microgpt.py's `e / total` on a `Value`).
    ///
    /// Each row's sum is a chain of dependent additions; done here for every row of a step, the
    /// rows' chains overlap, where between two draws each would wait for the previous draw.
    ///
    /// # Errors
    /// A row whose exponentials give no finite distribution.
    pub(crate) fn softmax(&mut self, vocab_size: usize) -> Result<(), SampleError> {
        let used = self.exponentials.len();
        self.exponentials
            .resize(used.next_multiple_of(F::EXP_BLOCK), F::zero());
        F::exp_in_place(&mut self.exponentials);
        self.weights.clear();
        self.weights.extend(
            self.exponentials[..used]
                .iter()
                .map(|&exponential| exponential.to_f64()),
        );
        // (Rows are never empty: `push_row` refuses empty logits.)
        for row in self.weights.chunks_exact_mut(vocab_size.max(1)) {
            let total = row.iter().fold(0.0, |sum, &weight| sum + weight);
            if !(total.is_finite() && total > 0.0) {
                return Err(SampleError::NotFinite);
            }
            let inverse_total = total.powf(-1.0);
            row.iter_mut().for_each(|weight| *weight *= inverse_total);
        }
        Ok(())
    }

    /// The probabilities of row `row` (of `vocab_size`) from the last [`DrawScratch::softmax`],
    /// filtered by top-k and top-p (see [`token_weights`]).
    pub(crate) fn row_weights(
        &mut self,
        row: usize,
        vocab_size: usize,
        options: &SamplingOptions,
    ) -> &[f64] {
        let weights = &mut self.weights[row * vocab_size..(row + 1) * vocab_size];
        if options.filters() {
            filter(weights, &mut self.order, options);
        }
        weights
    }
}

/// The weights the next token is drawn with: `softmax(logits / temperature)`, with the tokens that
/// top-k and top-p filter out set to 0 (the others keep their probability, so the draw renormalises).
///
/// The softmax is computed as microgpt.py computes it, so that for `f64` logits the weights are
/// the ones it hands to `random.choices`: each logit is multiplied by `temperature ** -1`, the
/// first maximum is subtracted, the exponentials ([`Float::exp_in_place`]: the C library's in
/// `f64`, a vectorised polynomial within 2 units in the last place in `f32`) are summed left to
/// right, and each is multiplied by `total ** -1`.
///
/// Top-k keeps the `k` most probable tokens. Top-p then keeps the shortest run of the most probable
/// remaining tokens whose cumulative probability reaches `p` times the mass kept so far. Equal
/// probabilities are ranked by token id, lowest first.
///
/// # Errors
/// No logits, or logits that give no finite distribution.
///
/// ```
/// use gpt::{DrawScratch, SamplingOptions, token_weights};
///
/// let mut scratch = DrawScratch::new(3);
/// let options = SamplingOptions::new(1.0, Some(2), None).unwrap();
/// let weights = token_weights(&[0.0f32, 2.0, 1.0], &options, &mut scratch).unwrap();
/// assert_eq!(weights[0], 0.0); // the least probable token is filtered out
/// assert!(weights[1] > weights[2] && weights[2] > 0.0);
/// ```
pub fn token_weights<'a, F: Float>(
    logits: &[F],
    options: &SamplingOptions,
    scratch: &'a mut DrawScratch<F>,
) -> Result<&'a [f64], SampleError> {
    scratch.clear_rows();
    scratch.push_row(logits, options)?;
    scratch.softmax(logits.len())?;
    Ok(scratch.row_weights(0, logits.len(), options))
}

/// Draws the next token from `logits`: [`token_weights`], then exactly one
/// `rng.weighted_index(weights)` and no other use of `rng`.
///
/// With the default options and [`PythonRandom`](crate::PythonRandom), this is microgpt.py's
/// `random.choices(range(vocab_size), weights=[p.data for p in softmax([l / temperature ...])])`.
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
/// let greedy = SamplingOptions::new(0.5, Some(1), None).unwrap();
/// assert_eq!(draw_token(&[0.5f64, -1.0, 2.5], &greedy, &mut scratch, &mut rng), Ok(2));
/// ```
pub fn draw_token<F: Float>(
    logits: &[F],
    options: &SamplingOptions,
    scratch: &mut DrawScratch<F>,
    rng: &mut impl Randomness,
) -> Result<usize, SampleError> {
    let weights = token_weights(logits, options, scratch)?;
    Ok(draw_with(weights, rng))
}

/// One `rng.weighted_index(weights)`, kept inside the tokens of positive weight.
pub(crate) fn draw_with(weights: &[f64], rng: &mut impl Randomness) -> usize {
    let token = rng.weighted_index(weights);
    if weights[token] > 0.0 {
        return token;
    }
    // Only reachable when `uniform() * total` rounds up to `total`, where `random.choices` falls back
    // to the last token even if its weight is 0: keep the draw inside the filtered set instead.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(token)
}

/// The value of Python's `max(values)` (`values` starts with `first`): NaN if `first` is NaN,
/// otherwise the largest of the values that are not NaN.
///
/// Python keeps the first of equal values; this may pick another zero when the largest value is
/// zero, of the other sign, which changes nothing downstream: a shift by either zero gives the
/// same nonzero differences and zeros whose exponentials are both exactly 1. Lanes of independent
/// maxima rather than one chain of comparisons, each waiting for the last.
fn python_max<F: Float>(first: F, values: &[F]) -> F {
    const LANES: usize = 8;
    if first.is_nan() {
        return first;
    }
    let (vectors, rest) = values.as_chunks::<LANES>();
    let mut lanes = [first; LANES];
    for vector in vectors {
        for (lane, &value) in lanes.iter_mut().zip(vector) {
            *lane = lane.max(value);
        }
    }
    rest.iter()
        .chain(&lanes)
        .fold(first, |max, &value| max.max(value))
}

/// Sets to 0 the probabilities that top-k and then top-p filter out (see [`token_weights`]).
fn filter(weights: &mut [f64], order: &mut Vec<usize>, options: &SamplingOptions) {
    order.clear();
    order.extend(0..weights.len());
    // A total order (probability descending, then id ascending): deterministic, and the unstable
    // sort does not allocate.
    order.sort_unstable_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut keep = options.top_k().map_or(order.len(), |k| k.min(order.len()));
    if let Some(p) = options.top_p() {
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
