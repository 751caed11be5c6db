//! What can go wrong when recording on a tape.

use crate::Var;

/// An error from recording an op or running backward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapeError {
    /// The inputs of an op do not have shapes it accepts.
    #[error("{op}: shape mismatch: {detail}")]
    Shape {
        /// The op that refused its inputs, such as `"matvec"`.
        op: &'static str,
        /// The shapes it saw and what it needs, such as `"W is [3, 4] but x is [5]"`.
        detail: String,
    },
    /// An index (a row of a gather, a target of a cross-entropy, a slice bound) is out of range.
    #[error("{op}: index {index} is out of range for length {len}")]
    Index {
        /// The op that received the index.
        op: &'static str,
        /// The offending index.
        index: usize,
        /// The number of valid positions.
        len: usize,
    },
    /// An argument other than a shape is outside what the op accepts (a probability, a target).
    #[error("{op}: {detail}")]
    Argument {
        /// The op that refused the argument, such as `"dropout"`.
        op: &'static str,
        /// What was passed and what the op needs.
        detail: String,
    },
    /// The variable belongs to a step that [`Tape::clear`](crate::Tape::clear) has ended.
    #[error("{0:?} belongs to a step the tape has cleared; record it again")]
    StaleVar(Var),
    /// The variable was handed out by another tape.
    #[error("{0:?} belongs to another tape; use the handles this tape returned")]
    ForeignVar(Var),
    /// `backward` needs a loss with exactly one element.
    #[error(
        "backward needs a loss with one element, got shape {shape:?}; reduce it with sum or mean"
    )]
    NotScalar {
        /// The shape of the value passed as the loss.
        shape: Vec<usize>,
    },
}

impl TapeError {
    /// A shape error of `op`, described by `detail`.
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        TapeError::Shape {
            op,
            detail: detail.into(),
        }
    }

    /// An argument error of `op`, described by `detail`.
    pub fn argument(op: &'static str, detail: impl Into<String>) -> Self {
        TapeError::Argument {
            op,
            detail: detail.into(),
        }
    }
}
