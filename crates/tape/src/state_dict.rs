//! Named parameters, saved to and loaded from safetensors files: PyTorch's `state_dict()` and
//! `load_state_dict`.
//!
//! [`NamedParameters`] gives a tape's parameters names (`"fc1.weight"`), as a PyTorch module's
//! `named_parameters()` does. [`NamedParameters::state_dict`] copies their values into a
//! [`StateDict`], a map from names to tensors plus string metadata, which is saved as a
//! safetensors file; [`NamedParameters::load_state_dict`] copies a state dict back into the
//! parameters by name, strictly (every parameter and every tensor accounted for, as PyTorch's
//! `strict=True`) or not. Shapes must match, and a bad file is an error naming the tensor at
//! fault, never a panic.
//!
//! A file written here is what `safetensors.torch.save_file(model.state_dict(), path)` writes:
//! names as given, little-endian row-major data, F32 for an `f32` tape and F64 for an `f64` one.
//! It loads with `safetensors.torch.load_file` and then into a PyTorch module's `load_state_dict`
//! as it is, and loading here accepts F32 and F64 files whatever the tape's type.
//!
//! ```
//! use ndarray::{arr1, arr2};
//! use tape::{NamedParameters, Strictness, Tape};
//!
//! let mut tape = Tape::<f32>::new();
//! let mut names = NamedParameters::new();
//! let weight = names.parameter(&mut tape, "fc1.weight", arr2(&[[1.0, 2.0], [3.0, 4.0]]))?;
//! let bias = names.parameter(&mut tape, "fc1.bias", arr1(&[0.5, -0.5]))?;
//!
//! let path = std::env::temp_dir().join(format!("tape-doc-{}.safetensors", std::process::id()));
//! names.save(&tape, &path)?;
//!
//! // Another model with the same names (in any order) loads the weights by name.
//! let mut other = Tape::<f32>::new();
//! let mut other_names = NamedParameters::new();
//! let other_bias = other_names.parameter(&mut other, "fc1.bias", arr1(&[0.0, 0.0]))?;
//! let other_weight = other_names.parameter(&mut other, "fc1.weight", arr2(&[[0.0; 2]; 2]))?;
//! other_names.load(&mut other, &path, Strictness::Strict)?;
//! assert_eq!(other.value(other_weight), tape.value(weight));
//! assert_eq!(other.value(other_bias), tape.value(bias));
//! std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod atomic;
mod encoding;
mod error;
mod named;

use std::collections::BTreeMap;
use std::path::Path;

pub use encoding::read_safetensors;
pub use error::StateDictError;
pub use named::{LoadReport, NamedParameters, Strictness};

use crate::{Float, Tensor};

/// The header entry of a safetensors file that holds its string metadata: no tensor may take it.
const METADATA_KEY: &str = "__metadata__";

/// Named tensors and string metadata: the contents of one safetensors file.
///
/// Like a PyTorch state dict it is a plain map, so tensors can be added, renamed or dropped before
/// saving; [`StateDict::merge`] and [`StateDict::take_prefixed`] put a second set (an optimizer's
/// state, say) in the same file under a prefix and take it out again.
///
/// ```
/// use ndarray::arr1;
/// use tape::{StateDict, Tensor};
///
/// let mut weights = StateDict::<f64>::new();
/// weights.tensors.insert("w".into(), Tensor::from(arr1(&[1.0, 2.0])));
/// let mut moments = StateDict::new();
/// moments.tensors.insert("w".into(), Tensor::from(arr1(&[0.1, 0.2])));
/// moments.metadata.insert("step".into(), "10".into());
///
/// weights.merge("optimizer.", moments.clone())?;
/// assert!(weights.tensors.contains_key("optimizer.w"));
/// assert_eq!(weights.metadata["optimizer.step"], "10");
///
/// let mut loaded = StateDict::<f64>::from_bytes(&weights.to_bytes()?)?;
/// assert_eq!(loaded.take_prefixed("optimizer."), moments);
/// assert_eq!(loaded.tensors.keys().collect::<Vec<_>>(), ["w"]);
/// # Ok::<(), tape::StateDictError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StateDict<F: Float> {
    /// The tensors by name. Names are plain strings (`"layer0.attn_wq"`); any string but
    /// `__metadata__` will do.
    pub tensors: BTreeMap<String, Tensor<F>>,
    /// The file's `__metadata__`: free string entries such as a step count or a configuration.
    pub metadata: BTreeMap<String, String>,
}

impl<F: Float> Default for StateDict<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Float> StateDict<F> {
    /// An empty state dict.
    pub fn new() -> Self {
        StateDict {
            tensors: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// The bytes of the safetensors file [`StateDict::save`] writes: tensors as F32 if `F` is
    /// `f32`, else as F64 (both exact), little-endian and row-major, with the metadata as the
    /// header's `__metadata__` (omitted when empty).
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateDictError> {
        encoding::to_bytes(self)
    }

    /// The state dict in the bytes of a safetensors file whose tensors are F32 or F64 (converted to
    /// `F`: exact, except F64 into `f32`, which rounds to nearest). Any bytes give `Ok` or an
    /// error, never a panic; tensors of other dtypes are refused with
    /// [`StateDictError::UnsupportedDtype`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateDictError> {
        encoding::from_bytes(bytes)
    }

    /// Writes the state dict to `path` as a safetensors file ([`StateDict::to_bytes`]).
    ///
    /// The write is atomic: the bytes go to a temporary file beside `path`, are flushed to disk,
    /// and the temporary file is renamed over `path`. If anything fails, the temporary file is
    /// removed and an existing file at `path` is left as it was.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), StateDictError> {
        atomic::write_atomically(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads the safetensors file at `path` ([`StateDict::from_bytes`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, StateDictError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| StateDictError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Adds every tensor and metadata entry of `other` under `prefix` + its name (`"adam.m."` +
    /// `"wte"`), or nothing at all if one of those names is taken
    /// ([`StateDictError::DuplicateName`]).
    pub fn merge(&mut self, prefix: &str, other: StateDict<F>) -> Result<(), StateDictError> {
        let prefixed = |name: &String| format!("{prefix}{name}");
        let taken = other
            .tensors
            .keys()
            .map(prefixed)
            .find(|name| self.tensors.contains_key(name))
            .or_else(|| {
                let mut keys = other.metadata.keys().map(prefixed);
                keys.find(|key| self.metadata.contains_key(key))
            });
        if let Some(name) = taken {
            return Err(StateDictError::DuplicateName { name });
        }
        for (name, tensor) in other.tensors {
            self.tensors.insert(format!("{prefix}{name}"), tensor);
        }
        for (key, value) in other.metadata {
            self.metadata.insert(format!("{prefix}{key}"), value);
        }
        Ok(())
    }

    /// Removes the tensors and metadata entries whose names start with `prefix` and returns them
    /// with the prefix cut off: the inverse of [`StateDict::merge`].
    pub fn take_prefixed(&mut self, prefix: &str) -> StateDict<F> {
        StateDict {
            tensors: take_prefixed(&mut self.tensors, prefix),
            metadata: take_prefixed(&mut self.metadata, prefix),
        }
    }
}

/// The entries of `map` under `prefix`, removed from it, with the prefix cut off.
fn take_prefixed<V>(map: &mut BTreeMap<String, V>, prefix: &str) -> BTreeMap<String, V> {
    // The names starting with `prefix` are one contiguous range of the sorted map.
    let names: Vec<String> = map
        .range(prefix.to_string()..)
        .map(|(name, _)| name)
        .take_while(|name| name.starts_with(prefix))
        .cloned()
        .collect();
    names
        .into_iter()
        .filter_map(|name| {
            let value = map.remove(&name)?;
            Some((name.strip_prefix(prefix)?.to_string(), value))
        })
        .collect()
}
