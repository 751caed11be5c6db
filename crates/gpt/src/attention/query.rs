//! One query's causal attention in one head: the arithmetic of both the fused training op (every
//! row of a document, in turn) and the KV-cache decoder (the row of the position just fed).
//!
//! It comes in two halves around the exponential of the shifted scores, which callers take over
//! many queries and heads in one [`Float::exp_in_place`] call (whole vectors of them in `f32`);
//! that exponential works element by element, so the numbers do not depend on how many are taken
//! at once.

use tape::Float;

use super::CausalSelfAttention;
use super::head::{Head, axpy, dot, with_head};

/// `scores[s] = (query . keys[s]) * scale - max` over the keys the query sees, in order, `max`
/// being the largest of them (softmax's shift, which keeps the exponentials finite). `scores`
/// holds one number per key.
#[inline(always)]
pub(crate) fn shifted_scores<'a, F: Float + 'a>(
    query: &[F],
    keys: impl Iterator<Item = &'a [F]>,
    scale: F,
    scores: &mut [F],
) {
    let mut max = F::neg_infinity();
    for (score, key) in scores.iter_mut().zip(keys) {
        *score = dot(query, key) * scale;
        max = max.max(*score);
    }
    scores.iter_mut().for_each(|score| *score -= max);
}

/// Turns `weights`, the exponentials of [`shifted_scores`], into the softmax weights in place (what
/// the training op's backward reads), and sets `out = sum_s weights[s] values[s]`.
#[inline(always)]
pub(crate) fn mix<'a, F: Float + 'a>(
    weights: &mut [F],
    values: impl Iterator<Item = &'a [F]>,
    out: &mut [F],
) {
    let total = weights.iter().fold(F::zero(), |sum, &weight| sum + weight);
    let inverse = total.recip();
    weights.iter_mut().for_each(|weight| *weight *= inverse);
    out.fill(F::zero());
    for (&weight, value) in weights.iter().zip(values) {
        axpy(weight, value, out);
    }
}

/// The decode step's attention for one sequence: the query of its newest position (the first
/// `n_embd` columns of its `[q | k | v]` row) against its cached `keys` and `values`, positions
/// `0..=t` of `n_embd` each, every head's output into its columns of `out`. `scores` holds at least
/// `n_head * (t + 1)` numbers of scratch, rounded up to a multiple of [`Float::EXP_BLOCK`].
pub(crate) fn attend_cached<F: Float>(
    n_head: usize,
    qkv: &[F],
    keys: &[F],
    values: &[F],
    scores: &mut [F],
    out: &mut [F],
) {
    let width = out.len();
    let head_dim = width / n_head;
    let scale = CausalSelfAttention::scale::<F>(head_dim);
    with_head!(width, head_dim, 0, |first| {
        attend_heads(first, scale, qkv, keys, values, scores, out)
    });
}

/// [`attend_cached`] with the head size of `first` (the first head) known at compile time when
/// it is a common one.
#[inline(always)]
fn attend_heads<F: Float, const D: usize>(
    first: Head<D>,
    scale: F,
    qkv: &[F],
    keys: &[F],
    values: &[F],
    scores: &mut [F],
    out: &mut [F],
) {
    let (width, head_dim) = (first.width, first.head_dim);
    let heads = (0..width)
        .step_by(head_dim)
        .map(|start| Head::<D> { start, ..first });
    let positions = keys.len() / width;
    let used = width / head_dim * positions;
    for (head, scores) in heads
        .clone()
        .zip(scores[..used].chunks_exact_mut(positions))
    {
        let keys = keys.chunks_exact(width).map(|key| head.query(key));
        shifted_scores(head.query(qkv), keys, scale, scores);
    }
    // Whole vectors of exponentials (the padding's are never read): cheaper than a scalar tail.
    F::exp_in_place(&mut scores[..used.next_multiple_of(F::EXP_BLOCK)]);
    for (head, weights) in heads.zip(scores[..used].chunks_exact_mut(positions)) {
        let values = values.chunks_exact(width).map(|value| head.query(value));
        mix(weights, values, head.output_mut(out));
    }
}
