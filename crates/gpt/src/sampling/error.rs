//! Why names could not be sampled.

use std::fmt;

use crate::UnknownCharacter;
use crate::inference::DecodeError;

/// Why names could not be sampled.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleError {
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

impl From<DecodeError> for SampleError {
    fn from(error: DecodeError) -> Self {
        SampleError::Decode(error)
    }
}
