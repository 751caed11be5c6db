//! Why a model could not be built: a bad configuration or weights that do not fit it.

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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A size that must be at least 1 is 0 (`n_embd`, `n_head`, `block_size` or `vocab_size`).
    #[error("config: {field} must be at least 1")]
    ZeroDimension {
        /// The name of the `Config` field.
        field: &'static str,
    },
    /// `n_embd` is not a multiple of `n_head`, so the heads cannot split the embedding evenly.
    #[error("config: n_embd {n_embd} is not divisible by n_head {n_head}")]
    HeadsDoNotDivide {
        /// The embedding width.
        n_embd: usize,
        /// The number of heads.
        n_head: usize,
    },
    /// The model has more parameters than a `u32` node id can address.
    #[error("config: {count} parameters do not fit u32 node ids")]
    TooManyParameters {
        /// How many parameters the configuration asks for.
        count: usize,
    },
    /// A tensor the configuration needs is not among the weights.
    #[error("weights: missing tensor {name}")]
    MissingTensor {
        /// Its name, e.g. `layer0.attn_wq`.
        name: String,
    },
    /// A tensor among the weights is not part of the model.
    #[error("weights: unexpected tensor {name}")]
    UnexpectedTensor {
        /// Its name.
        name: String,
    },
    /// Two tensors among the weights have the same name.
    #[error("weights: tensor {name} given twice")]
    DuplicateTensor {
        /// The repeated name.
        name: String,
    },
    /// A tensor's shape is not the one the configuration implies.
    #[error("weights: tensor {name} has shape {found:?}, expected {expected:?}")]
    WrongShape {
        /// The tensor's name.
        name: String,
        /// `[out, in]` as the configuration implies it.
        expected: [usize; 2],
        /// `[out, in]` as given.
        found: [usize; 2],
    },
    /// A tensor's data does not hold `out * in` numbers.
    #[error("weights: tensor {name} holds {found} numbers, expected {expected}")]
    WrongLength {
        /// The tensor's name.
        name: String,
        /// `out * in`.
        expected: usize,
        /// The length of its data.
        found: usize,
    },
}
