//! Why a model could not be built: a bad configuration or weights that do not fit it.

use std::fmt;

/// The error type of this crate: building a [`crate::ScalarGpt`] from a bad [`crate::Config`] or from
/// weights whose names or shapes do not match it.
///
/// ```
/// let config = scalar::Config { n_layer: 1, n_embd: 6, n_head: 4, block_size: 4, vocab_size: 5 };
/// assert_eq!(
///     config.validate(),
///     Err(scalar::Error::HeadsDoNotDivide { n_embd: 6, n_head: 4 }),
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A size that must be at least 1 is 0 (`n_embd`, `n_head`, `block_size` or `vocab_size`).
    ZeroDimension {
        /// The name of the `Config` field.
        field: &'static str,
    },
    /// `n_embd` is not a multiple of `n_head`, so the heads cannot split the embedding evenly.
    HeadsDoNotDivide {
        /// The embedding width.
        n_embd: usize,
        /// The number of heads.
        n_head: usize,
    },
    /// The model has more parameters than a `u32` node id can address.
    TooManyParameters {
        /// How many parameters the configuration asks for.
        count: usize,
    },
    /// A tensor the configuration needs is not among the weights.
    MissingTensor {
        /// Its name, e.g. `layer0.attn_wq`.
        name: String,
    },
    /// A tensor among the weights is not part of the model.
    UnexpectedTensor {
        /// Its name.
        name: String,
    },
    /// Two tensors among the weights have the same name.
    DuplicateTensor {
        /// The repeated name.
        name: String,
    },
    /// A tensor's shape is not the one the configuration implies.
    WrongShape {
        /// The tensor's name.
        name: String,
        /// `[out, in]` as the configuration implies it.
        expected: [usize; 2],
        /// `[out, in]` as given.
        found: [usize; 2],
    },
    /// A tensor's data does not hold `out * in` numbers.
    WrongLength {
        /// The tensor's name.
        name: String,
        /// `out * in`.
        expected: usize,
        /// The length of its data.
        found: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroDimension { field } => write!(f, "config: {field} must be at least 1"),
            Self::HeadsDoNotDivide { n_embd, n_head } => {
                write!(
                    f,
                    "config: n_embd {n_embd} is not divisible by n_head {n_head}"
                )
            }
            Self::TooManyParameters { count } => {
                write!(f, "config: {count} parameters do not fit u32 node ids")
            }
            Self::MissingTensor { name } => write!(f, "weights: missing tensor {name}"),
            Self::UnexpectedTensor { name } => write!(f, "weights: unexpected tensor {name}"),
            Self::DuplicateTensor { name } => write!(f, "weights: tensor {name} given twice"),
            Self::WrongShape {
                name,
                expected,
                found,
            } => write!(
                f,
                "weights: tensor {name} has shape {found:?}, expected {expected:?}"
            ),
            Self::WrongLength {
                name,
                expected,
                found,
            } => write!(
                f,
                "weights: tensor {name} holds {found} numbers, expected {expected}"
            ),
        }
    }
}

impl std::error::Error for Error {}
