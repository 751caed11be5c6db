//! Why a state dict cannot be built, saved or loaded.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why saving or loading a [`StateDict`](crate::StateDict) (or building [`NamedParameters`](
/// crate::NamedParameters)) failed. Every variant that concerns one tensor names it, and each
/// displays as one line. Bad files give one of these, never a panic.
#[derive(Debug)]
pub enum StateDictError {
    /// Reading or writing the file failed (missing directory, no permission, not a file, ...).
    Io {
        /// The file's path.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The bytes are not a valid safetensors file: truncated, another format, or a header whose
    /// offsets and shapes disagree with the data.
    Corrupt {
        /// What is wrong, naming the tensor when one is at fault.
        detail: String,
    },
    /// A tensor is stored as a type other than F32 or F64 (say I64 or BF16).
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// The safetensors dtype found, such as `"I64"`.
        dtype: String,
    },
    /// A tensor in the file has more axes than a [`Tensor`](crate::Tensor) can hold
    /// ([`MAX_AXES`](crate::MAX_AXES)).
    TooManyAxes {
        /// The tensor's name.
        name: String,
        /// Its shape in the file.
        shape: Vec<usize>,
    },
    /// A tensor's shape differs from the parameter it is loaded into.
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The tensor's shape in the state dict.
        found: Vec<usize>,
    },
    /// Strict loading: parameters that the state dict has no tensor for.
    MissingTensors {
        /// Their names, in the order the parameters were named.
        names: Vec<String>,
    },
    /// Strict loading: tensors of the state dict that name no parameter.
    UnexpectedTensors {
        /// Their names, in sorted order.
        names: Vec<String>,
    },
    /// Two entries would get the same name.
    DuplicateName {
        /// The name given twice.
        name: String,
    },
    /// `__metadata__` is the safetensors header's own entry and cannot name a tensor.
    ReservedName {
        /// The name refused.
        name: String,
    },
    /// A name was given to a value that is not a parameter of the tape it is used with (a
    /// constant, an op's result, or a parameter of another tape).
    NotAParameter {
        /// The name given to it.
        name: String,
    },
    /// The safetensors encoder refused the state dict (say, a header over its 100 MB limit).
    Encode {
        /// The encoder's reason.
        detail: String,
    },
}

impl StateDictError {
    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        StateDictError::Corrupt {
            detail: detail.into(),
        }
    }
}

impl fmt::Display for StateDictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateDictError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StateDictError::Corrupt { detail } => write!(
                f,
                "not a valid safetensors file ({detail}); is it truncated or in another format?"
            ),
            StateDictError::UnsupportedDtype { name, dtype } => write!(
                f,
                "tensor {name:?} is stored as {dtype}; a state dict holds F32 or F64 tensors"
            ),
            StateDictError::TooManyAxes { name, shape } => write!(
                f,
                "tensor {name:?} has shape {shape:?}, more than the {} axes a tensor can have",
                crate::MAX_AXES
            ),
            StateDictError::ShapeMismatch {
                name,
                expected,
                found,
            } => write!(
                f,
                "tensor {name:?} has shape {found:?}, but the parameter it loads into has shape {expected:?}"
            ),
            StateDictError::MissingTensors { names } => write!(
                f,
                "the state dict has no tensor for parameter(s) {}; load non-strictly to keep their values",
                quoted(names)
            ),
            StateDictError::UnexpectedTensors { names } => write!(
                f,
                "the state dict has tensor(s) {} that name no parameter; load non-strictly to ignore them",
                quoted(names)
            ),
            StateDictError::DuplicateName { name } => {
                write!(f, "the name {name:?} is given twice")
            }
            StateDictError::ReservedName { name } => write!(
                f,
                "{name:?} is reserved by the safetensors format and cannot name a tensor"
            ),
            StateDictError::NotAParameter { name } => write!(
                f,
                "{name:?} names a value that is not a parameter of this tape"
            ),
            StateDictError::Encode { detail } => {
                write!(f, "cannot encode the state dict: {detail}")
            }
        }
    }
}

impl std::error::Error for StateDictError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateDictError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `"a", "b", "c"`.
fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    quoted.join(", ")
}
