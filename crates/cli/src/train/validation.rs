//! The held-out documents and their loss.

use std::ops::Range;

use gpt::{Model, NllSum};
use tape::Float;

use crate::error::Result;

/// The held-out documents: the fixed subset the periodic evaluations score, the same documents
/// every time so that their losses compare the models and not the samples, and the whole split,
/// scored once at the end.
pub struct Validation {
    pub subset: Range<usize>,
    pub whole: Range<usize>,
}

impl Validation {
    /// The split `train_size..len`, and its first `eval_docs` documents (all of them for 0).
    pub fn new(train_size: usize, len: usize, eval_docs: usize) -> Self {
        let whole = train_size..len;
        let subset_len = if eval_docs == 0 {
            whole.len()
        } else {
            eval_docs.min(whole.len())
        };
        Validation {
            subset: train_size..train_size + subset_len,
            whole,
        }
    }
}

/// Adds to `sum` the negative log-likelihood of the items `range` and how many tokens they predict
/// (its `mean()` is then their per-token loss), in the items' order, each item encoded by
/// `encode(index, buffer)` (a document of a corpus whose vocabulary was checked, or a window of
/// text). A document's loss does not depend on the documents beside it, so adding `b..c` to the
/// sum of `a..b` gives the bits of `a..c` scored at once.
pub fn add_nll<F: Float>(
    model: &mut Model<F>,
    range: Range<usize>,
    mut encode: impl FnMut(usize, &mut Vec<usize>),
    sum: &mut NllSum,
) -> Result<()> {
    // Enough documents at a time to keep every core busy with whole chunks, tokenized into
    // buffers reused from group to group.
    const GROUP: usize = 256;
    let mut group: Vec<Vec<usize>> = Vec::new();
    for start in range.clone().step_by(GROUP) {
        let indices = start..(start + GROUP).min(range.end);
        group.resize_with(indices.len(), Vec::new);
        for (tokens, index) in group.iter_mut().zip(indices) {
            encode(index, tokens);
        }
        model.add_nll(&group, sum)?;
    }
    Ok(())
}
