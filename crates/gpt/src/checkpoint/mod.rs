//! Checkpoints: a model's weights, vocabulary and (optionally) Adam's state in one safetensors file.
//!
//! The layout is DESIGN.md's contract (section 3). Tensors are named as in [`Config::parameter_shapes`]
//! (`wte`, `wpe`, `lm_head`, `layer0.attn_wq`, ...), shaped `[out, in]`, stored as little-endian F32
//! or F64. Adam's moments, when present, are `adam.m.<name>` and `adam.v.<name>`. The
//! `__metadata__` holds `format = "microgpt"`, `vocab` (the characters in token order), `n_layer`,
//! `n_embd`, `n_head`, `block_size` and, with Adam, `adam_step` (decimal strings), plus the free
//! entries of [`Checkpoint::metadata`]. Python reads such a file with `safetensors.numpy.load_file`.
//!
//! [`Config::parameter_shapes`]: crate::Config::parameter_shapes

mod atomic;
mod decode;
use decode::Parts;
mod dtype;
mod encode;
mod error;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tape::Float;

use crate::{AdamState, Params, Tokenizer};

pub use dtype::{Dtype, ParseDtypeError};
pub use error::CheckpointError;

/// The `format` metadata of every microgpt checkpoint.
const FORMAT: &str = "microgpt";
/// The metadata entry holding Adam's step count.
const ADAM_STEP: &str = "adam_step";
/// The prefixes of Adam's first and second moments.
const ADAM_M: &str = "adam.m.";
const ADAM_V: &str = "adam.v.";
/// Metadata written from the typed fields of a [`Checkpoint`], never from its free `metadata`.
const RESERVED_KEYS: [&str; 7] = [
    "format",
    "vocab",
    "n_layer",
    "n_embd",
    "n_head",
    "block_size",
    ADAM_STEP,
];

/// Everything a checkpoint file holds: the weights (whose [`Config`](crate::Config) is the model's),
/// the vocabulary, optionally Adam's state for `--resume`, and free string metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint<F> {
    /// The weights and, through [`Params::config`], the model's configuration.
    pub params: Params<F>,
    /// The vocabulary; its size must equal the configuration's `vocab_size`.
    pub tokenizer: Tokenizer,
    /// Adam's moments and step count, for a run that resumes exactly.
    pub adam: Option<AdamState<F>>,
    /// Extra entries such as `best_val_loss`, `num_steps`, `lr` or `seed`. The reserved keys
    /// (`format`, `vocab`, `n_layer`, `n_embd`, `n_head`, `block_size`, `adam_step`) come from the
    /// typed fields: saving skips them here, and loading does not put them here.
    pub metadata: BTreeMap<String, String>,
}

impl<F: Float> Checkpoint<F> {
    /// The same checkpoint in another precision (`f64` to `f32` rounds to nearest, as loading an
    /// F64 file as `f32` does; `f32` to `f64` and back is exact).
    pub fn cast<G: Float>(&self) -> Checkpoint<G> {
        Checkpoint {
            params: self.params.cast(),
            tokenizer: self.tokenizer.clone(),
            adam: self.adam.as_ref().map(AdamState::cast),
            metadata: self.metadata.clone(),
        }
    }

    /// The bytes of the safetensors file [`save`] writes, with tensors stored as `dtype`.
    pub fn to_bytes(&self, dtype: Dtype) -> Result<Vec<u8>, CheckpointError> {
        encode::to_bytes(self, dtype)
    }

    /// The checkpoint in the bytes of a safetensors file (F32 or F64, converted to `F`), as [`load`]
    /// reads it. Any bytes give `Ok` or `Err`, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        decode::from_bytes(bytes, Parts::All)
    }

    /// The weights, vocabulary and metadata in the bytes of a safetensors file, as
    /// [`load_weights`] reads them: Adam's state is neither read nor checked, and is `None`.
    pub fn weights_from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        decode::from_bytes(bytes, Parts::Weights)
    }
}

/// Writes `checkpoint` to `path` as a safetensors file with tensors stored as `dtype`.
///
/// The write is atomic: the bytes go to a temporary file beside `path`, are flushed to disk, and
/// the temporary file is renamed over `path`. If anything fails, the temporary file is removed
/// and an existing file at `path` is left untouched.
///
/// ```
/// use gpt::{Checkpoint, Config, Dtype, Params, Tokenizer};
/// use rand::SeedableRng;
///
/// let tokenizer = Tokenizer::from_documents(["emma", "olivia", "ava"]);
/// let config = Config { vocab_size: tokenizer.vocab_size(), ..Config::default() };
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
/// let params = Params::<f64>::init(config, &mut rng)?;
/// let metadata = [("seed".to_string(), "7".to_string())].into();
/// let checkpoint = Checkpoint { params, tokenizer, adam: None, metadata };
///
/// let path = std::env::temp_dir().join(format!("microgpt-doc-save-{}.safetensors", std::process::id()));
/// gpt::save(&checkpoint, &path, Dtype::F64)?;
/// assert_eq!(gpt::load::<f64>(&path)?, checkpoint);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save<F: Float>(
    checkpoint: &Checkpoint<F>,
    path: &Path,
    dtype: Dtype,
) -> Result<(), CheckpointError> {
    let bytes = checkpoint.to_bytes(dtype)?;
    atomic::write_atomically(path, &bytes).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the checkpoint at `path`, whose tensors may be F32 or F64, converting them to `F`.
///
/// The configuration comes from the metadata (`vocab_size` is the vocabulary's length plus BOS) and
/// is validated; every tensor's name, dtype and shape is checked against it.
///
/// ```
/// use gpt::{Checkpoint, Config, Dtype, Params, Tokenizer};
/// use rand::SeedableRng;
///
/// let tokenizer = Tokenizer::from_documents(["emma", "olivia", "ava"]);
/// let config = Config { vocab_size: tokenizer.vocab_size(), ..Config::default() };
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
/// let params = Params::<f64>::init(config, &mut rng)?;
/// let checkpoint = Checkpoint { params, tokenizer, adam: None, metadata: Default::default() };
///
/// // Saved as F32, loaded as f32: each weight rounded to the nearest f32.
/// let path = std::env::temp_dir().join(format!("microgpt-doc-load-{}.safetensors", std::process::id()));
/// gpt::save(&checkpoint, &path, Dtype::F32)?;
/// let loaded: Checkpoint<f32> = gpt::load(&path)?;
/// assert_eq!(loaded.params, checkpoint.params.cast::<f32>());
/// assert_eq!(loaded.tokenizer.vocab(), "aeilmov");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load<F: Float>(path: &Path) -> Result<Checkpoint<F>, CheckpointError> {
    Checkpoint::from_bytes(&read(path)?)
}

/// Reads the weights, vocabulary and metadata of the checkpoint at `path`, as [`load`] does, but
/// not Adam's state: the returned `adam` is `None`. What starts a new run from trained weights, or
/// samples from them, needs no optimizer state, so a damaged or partial one (a file edited by
/// hand, moments of another configuration) must not stop it.
///
/// ```
/// use gpt::{AdamState, Checkpoint, Config, Dtype, Params, Tokenizer};
/// use rand::SeedableRng;
///
/// let tokenizer = Tokenizer::from_documents(["emma", "olivia", "ava"]);
/// let config = Config { vocab_size: tokenizer.vocab_size(), ..Config::default() };
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
/// let params = Params::<f64>::init(config, &mut rng)?;
/// let adam = AdamState::zeros(&params);
/// let checkpoint = Checkpoint { params, tokenizer, adam: Some(adam), metadata: Default::default() };
///
/// let path = std::env::temp_dir().join(format!("microgpt-doc-weights-{}.safetensors", std::process::id()));
/// gpt::save(&checkpoint, &path, Dtype::F64)?;
/// let weights: Checkpoint<f64> = gpt::load_weights(&path)?;
/// assert_eq!(weights.params, checkpoint.params);
/// assert_eq!(weights.adam, None);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_weights<F: Float>(path: &Path) -> Result<Checkpoint<F>, CheckpointError> {
    Checkpoint::weights_from_bytes(&read(path)?)
}

fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}
