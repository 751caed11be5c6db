//! Why a checkpoint cannot be saved or loaded.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::ConfigError;

/// Why [`save`](crate::save) or [`load`](crate::load) failed. Each displays as one line.
#[derive(Debug)]
pub enum CheckpointError {
    /// Reading or writing the file failed (missing directory, no permission, not a file, ...).
    Io {
        /// The checkpoint's path.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, not that format, inconsistent header).
    NotSafetensors(String),
    /// A safetensors file, but not a microgpt checkpoint: its metadata lacks `format = "microgpt"`.
    NotMicrogpt {
        /// The `format` the file declares, if any.
        format: Option<String>,
    },
    /// A metadata entry is missing, or is not a decimal number the file could hold.
    BadMetadata {
        /// The metadata key, such as `"n_embd"`.
        key: String,
        /// Its value, or None if it is missing.
        value: Option<String>,
    },
    /// The metadata describes a configuration that cannot be a model (such as `n_embd` not
    /// divisible by `n_head`).
    BadConfig(ConfigError),
    /// A tensor the configuration needs is not in the file.
    MissingTensor(String),
    /// A tensor's shape differs from the one the configuration needs.
    WrongShape {
        /// The tensor's name.
        name: String,
        /// The `[rows, columns]` the configuration needs.
        expected: [usize; 2],
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a type other than F32 or F64.
    WrongDtype {
        /// The tensor's name.
        name: String,
        /// The safetensors dtype found, such as `"I32"`.
        dtype: String,
    },
    /// The optimizer state is partial: some `adam.*` tensors or the `adam_step` entry are missing
    /// (or, when saving, its moments do not match the parameters).
    InconsistentAdam(String),
    /// When saving: the tokenizer's vocabulary size differs from the model's configuration.
    VocabMismatch {
        /// Tokens of the tokenizer, BOS included.
        tokenizer: usize,
        /// `vocab_size` of the parameters' configuration.
        config: usize,
    },
    /// When saving: the safetensors encoder refused the checkpoint (say, metadata over 100 MB).
    Encode(String),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CheckpointError::NotSafetensors(reason) => write!(
                f,
                "not a valid safetensors file ({reason}); is it truncated or in another format?"
            ),
            CheckpointError::NotMicrogpt { format: None } => write!(
                f,
                "a safetensors file without microgpt metadata (format = \"microgpt\"); \
                 it was not written by microgpt"
            ),
            CheckpointError::NotMicrogpt {
                format: Some(format),
            } => write!(
                f,
                "a safetensors file of format {format:?}, not a microgpt checkpoint"
            ),
            CheckpointError::BadMetadata { key, value: None } => {
                write!(f, "the checkpoint's metadata has no {key:?} entry")
            }
            CheckpointError::BadMetadata {
                key,
                value: Some(value),
            } => write!(
                f,
                "the checkpoint's metadata {key:?} is {value:?}, not a decimal number consistent \
                 with its tensors"
            ),
            CheckpointError::BadConfig(error) => {
                write!(f, "the checkpoint describes an invalid model: {error}")
            }
            CheckpointError::MissingTensor(name) => {
                write!(f, "the checkpoint has no tensor {name:?}")
            }
            CheckpointError::WrongShape {
                name,
                expected,
                found,
            } => write!(
                f,
                "tensor {name:?} has shape {found:?}, but the checkpoint's configuration needs {expected:?}"
            ),
            CheckpointError::WrongDtype { name, dtype } => write!(
                f,
                "tensor {name:?} is stored as {dtype}; a checkpoint holds F32 or F64 tensors"
            ),
            CheckpointError::InconsistentAdam(detail) => write!(
                f,
                "the checkpoint's optimizer state is incomplete: {detail}"
            ),
            CheckpointError::VocabMismatch { tokenizer, config } => write!(
                f,
                "the tokenizer has {tokenizer} tokens but the model's vocab_size is {config}"
            ),
            CheckpointError::Encode(reason) => write!(f, "cannot encode the checkpoint: {reason}"),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            CheckpointError::BadConfig(error) => Some(error),
            _ => None,
        }
    }
}
