//! Why a [`Model`](crate::Model) cannot compute a loss: documents it cannot read.

use tape::TapeError;

/// Why [`Model::batch_loss`](crate::Model::batch_loss), [`Model::document_nll`](
/// crate::Model::document_nll) or [`Model::add_nll`](crate::Model::add_nll) refused its documents.
/// Each displays as one line.
///
/// ```
/// use gpt::{Config, Model, ModelError, Params};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
/// let config = Config { vocab_size: 5, ..Config::default() };
/// let mut model = Model::<f64>::new(Params::init(config, &mut rng).unwrap());
/// let no_documents: [&[usize]; 0] = [];
/// assert_eq!(model.batch_loss(&no_documents).err(), Some(ModelError::EmptyBatch));
/// assert_eq!(model.loss(&[4]).err(), Some(ModelError::ShortDocument { length: 1 }));
/// assert_eq!(
///     model.loss(&[4, 7, 4]).err(),
///     Some(ModelError::TokenOutOfRange { token: 7, vocab_size: 5 }),
/// );
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A batch needs at least one document.
    #[error("a batch needs at least one document")]
    EmptyBatch,
    /// A document needs at least two tokens, `[BOS, .., BOS]`, to predict one.
    #[error("a document needs at least 2 tokens (BOS, .., BOS), got {length}")]
    ShortDocument {
        /// The document's number of tokens.
        length: usize,
    },
    /// A token id is not below the configuration's `vocab_size`.
    #[error("token {token} is out of range for a vocabulary of {vocab_size} tokens")]
    TokenOutOfRange {
        /// The token id.
        token: usize,
        /// The model's `vocab_size`.
        vocab_size: usize,
    },
    /// A dropout probability outside `[0, 1)`.
    #[error("the dropout probability must be in [0, 1), got {p}")]
    DropoutOutOfRange {
        /// The probability given.
        p: f64,
    },
    /// Recording on the tape failed: documents the checks above accept never cause it.
    #[error(transparent)]
    Tape(#[from] TapeError),
}

/// Checks that every document of `documents` (at least one) has two or more tokens, each below
/// `vocab_size`, so that recording them cannot fail on their account.
pub(crate) fn check_documents<T: AsRef<[usize]>>(
    documents: &[T],
    vocab_size: usize,
) -> Result<(), ModelError> {
    if documents.is_empty() {
        return Err(ModelError::EmptyBatch);
    }
    for tokens in documents {
        let tokens = tokens.as_ref();
        if tokens.len() < 2 {
            return Err(ModelError::ShortDocument {
                length: tokens.len(),
            });
        }
        if let Some(&token) = tokens.iter().find(|&&token| token >= vocab_size) {
            return Err(ModelError::TokenOutOfRange { token, vocab_size });
        }
    }
    Ok(())
}
