//! Why a checkpoint cannot be saved or loaded.

use std::io;
use std::path::PathBuf;

use crate::ConfigError;

/// Why [`save`](crate::save) or [`load`](crate::load) failed. Each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed (missing directory, no permission, not a file, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The checkpoint's path.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, not that format, inconsistent header).
    #[error("not a valid safetensors file ({0}); is it truncated or in another format?")]
    NotSafetensors(String),
    /// A safetensors file, but not a microgpt checkpoint: its metadata lacks `format = "microgpt"`.
    #[error("{}", not_microgpt(format.as_deref()))]
    NotMicrogpt {
        /// The `format` the file declares, if any.
        format: Option<String>,
    },
    /// A metadata entry is missing, or is not a decimal number the file could hold.
    #[error("{}", bad_metadata(key, value.as_deref()))]
    BadMetadata {
        /// The metadata key, such as `"n_embd"`.
        key: String,
        /// Its value, or None if it is missing.
        value: Option<String>,
    },
    /// The metadata describes a configuration that cannot be a model (such as `n_embd` not
    /// divisible by `n_head`).
    #[error("the checkpoint describes an invalid model: {0}")]
    BadConfig(#[source] ConfigError),
    /// A tensor the configuration needs is not in the file.
    #[error("the checkpoint has no tensor {0:?}")]
    MissingTensor(String),
    /// A tensor's shape differs from the one the configuration needs.
    #[error(
        "tensor {name:?} has shape {found:?}, but the checkpoint's configuration needs {expected:?}"
    )]
    WrongShape {
        /// The tensor's name.
        name: String,
        /// The `[rows, columns]` the configuration needs.
        expected: [usize; 2],
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a type other than F32 or F64.
    #[error("tensor {name:?} is stored as {dtype}; a checkpoint holds F32 or F64 tensors")]
    WrongDtype {
        /// The tensor's name.
        name: String,
        /// The safetensors dtype found, such as `"I32"`.
        dtype: String,
    },
    /// The optimizer state is partial: some `adam.*` tensors or the `adam_step` entry are missing
    /// (or, when saving, its moments do not match the parameters).
    #[error("the checkpoint's optimizer state is incomplete: {0}")]
    InconsistentAdam(String),
    /// When saving: the tokenizer's vocabulary size differs from the model's configuration.
    #[error("the tokenizer has {tokenizer} tokens but the model's vocab_size is {config}")]
    VocabMismatch {
        /// Tokens of the tokenizer, BOS included.
        tokenizer: usize,
        /// `vocab_size` of the parameters' configuration.
        config: usize,
    },
    /// When saving: the safetensors encoder refused the checkpoint (say, metadata over 100 MB).
    #[error("cannot encode the checkpoint: {0}")]
    Encode(String),
}

/// The message of [`CheckpointError::NotMicrogpt`].
fn not_microgpt(format: Option<&str>) -> String {
    match format {
        None => "a safetensors file without microgpt metadata (format = \"microgpt\"); \
                 it was not written by microgpt"
            .to_string(),
        Some(format) => {
            format!("a safetensors file of format {format:?}, not a microgpt checkpoint")
        }
    }
}

/// The message of [`CheckpointError::BadMetadata`].
fn bad_metadata(key: &str, value: Option<&str>) -> String {
    match value {
        None => format!("the checkpoint's metadata has no {key:?} entry"),
        Some(value) => format!(
            "the checkpoint's metadata {key:?} is {value:?}, not a decimal number consistent \
             with its tensors"
        ),
    }
}
