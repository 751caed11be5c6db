//! Why a decode step could not run.

use std::fmt;

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
