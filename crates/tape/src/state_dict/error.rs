//! Why a state dict cannot be built, saved or loaded.

use std::io;
use std::path::PathBuf;

/// Why saving or loading a [`StateDict`](crate::StateDict) (or building [`NamedParameters`](
/// crate::NamedParameters)) failed. Every variant that concerns one tensor names it, and each
/// displays as one line. Bad files give one of these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum StateDictError {
    /// Reading or writing the file failed (missing directory, no permission, not a file, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file's path.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The bytes are not a valid safetensors file: truncated, another format, or a header whose
    /// offsets and shapes disagree with the data.
    #[error("not a valid safetensors file ({detail}); is it truncated or in another format?")]
    Corrupt {
        /// What is wrong, naming the tensor when one is at fault.
        detail: String,
    },
    /// A tensor is stored as a type other than F32 or F64 (say I64 or BF16).
    #[error("tensor {name:?} is stored as {dtype}; a state dict holds F32 or F64 tensors")]
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// The safetensors dtype found, such as `"I64"`.
        dtype: String,
    },
    /// A tensor in the file has more axes than a [`Tensor`](crate::Tensor) can hold
    /// ([`MAX_AXES`](crate::MAX_AXES)).
    #[error("tensor {name:?} has shape {shape:?}, more than the {max} axes a tensor can have", max = crate::MAX_AXES)]
    TooManyAxes {
        /// The tensor's name.
        name: String,
        /// Its shape in the file.
        shape: Vec<usize>,
    },
    /// A tensor's shape differs from the parameter it is loaded into.
    #[error(
        "tensor {name:?} has shape {found:?}, but the parameter it loads into has shape {expected:?}"
    )]
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The tensor's shape in the state dict.
        found: Vec<usize>,
    },
    /// Strict loading: parameters that the state dict has no tensor for.
    #[error(
        "the state dict has no tensor for parameter(s) {}; load non-strictly to keep their values",
        quoted(names)
    )]
    MissingTensors {
        /// Their names, in the order the parameters were named.
        names: Vec<String>,
    },
    /// Strict loading: tensors of the state dict that name no parameter.
    #[error(
        "the state dict has tensor(s) {} that name no parameter; load non-strictly to ignore them",
        quoted(names)
    )]
    UnexpectedTensors {
        /// Their names, in sorted order.
        names: Vec<String>,
    },
    /// Two entries would get the same name.
    #[error("the name {name:?} is given twice")]
    DuplicateName {
        /// The name given twice.
        name: String,
    },
    /// `__metadata__` is the safetensors header's own entry and cannot name a tensor.
    #[error("{name:?} is reserved by the safetensors format and cannot name a tensor")]
    ReservedName {
        /// The name refused.
        name: String,
    },
    /// A name was given to a value that is not a parameter of the tape it is used with (a
    /// constant, an op's result, or a parameter of another tape).
    #[error("{name:?} names a value that is not a parameter of this tape")]
    NotAParameter {
        /// The name given to it.
        name: String,
    },
    /// The safetensors encoder refused the state dict (say, a header over its 100 MB limit).
    #[error("cannot encode the state dict: {detail}")]
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

/// `"a", "b", "c"`.
fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    quoted.join(", ")
}
