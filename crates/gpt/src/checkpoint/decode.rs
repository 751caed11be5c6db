//! A checkpoint from the bytes of a safetensors file, trusting nothing the file declares.

use std::collections::HashMap;

use ndarray::Array2;
use safetensors::tensor::Metadata;
use tape::Float;

use super::dtype::{self, Dtype};
use super::{ADAM_M, ADAM_STEP, ADAM_V, Checkpoint, CheckpointError, FORMAT, RESERVED_KEYS};
use crate::{AdamState, Config, Params, ParamsError, Tokenizer};

/// Which parts of a file to decode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Parts {
    /// Weights, vocabulary, metadata and Adam's state (which may be absent, not partial).
    All,
    /// Everything but Adam's state, whose tensors and step are then not even looked at.
    Weights,
}

/// The checkpoint stored in `bytes`, converted to `F`.
pub(super) fn from_bytes<F: Float>(
    bytes: &[u8],
    parts: Parts,
) -> Result<Checkpoint<F>, CheckpointError> {
    let (header, data) = tape::read_safetensors(bytes).map_err(CheckpointError::NotSafetensors)?;
    let file = File { header, data };

    let metadata = file
        .header
        .metadata()
        .as_ref()
        .ok_or(CheckpointError::NotMicrogpt { format: None })?;
    match metadata.get("format") {
        Some(format) if format == FORMAT => {}
        format => {
            return Err(CheckpointError::NotMicrogpt {
                format: format.cloned(),
            });
        }
    }
    let vocab = metadata.get("vocab").ok_or_else(|| missing("vocab"))?;
    let tokenizer = Tokenizer::from_vocab(vocab);
    let config = Config {
        n_layer: number(metadata, "n_layer")?,
        n_embd: number(metadata, "n_embd")?,
        n_head: number(metadata, "n_head")?,
        block_size: number(metadata, "block_size")?,
        vocab_size: tokenizer.vocab_size(),
    };
    config.validate().map_err(CheckpointError::BadConfig)?;
    check_fits(&config, &file)?;

    let shapes = config.parameter_shapes();
    let named = shapes
        .iter()
        .map(|(name, shape)| Ok((name.clone(), file.tensor(name, *shape)?)))
        .collect::<Result<Vec<_>, CheckpointError>>()?;
    let params = Params::from_named(config, named).map_err(from_params_error)?;
    let adam = match parts {
        Parts::All => read_adam(&file, metadata, &shapes)?,
        Parts::Weights => None,
    };
    let metadata = metadata
        .iter()
        .filter(|(key, _)| !RESERVED_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Ok(Checkpoint {
        params,
        tokenizer,
        adam,
        metadata,
    })
}

/// A parsed file: its header, and the bytes after it that the tensors' offsets index.
struct File<'a> {
    header: Metadata,
    data: &'a [u8],
}

impl File<'_> {
    /// The F32 or F64 tensor `name`, which must have `shape`, converted to `F`.
    fn tensor<F: Float>(
        &self,
        name: &str,
        shape: [usize; 2],
    ) -> Result<Array2<F>, CheckpointError> {
        let info = self
            .header
            .info(name)
            .ok_or_else(|| CheckpointError::MissingTensor(name.to_string()))?;
        let dtype = Dtype::from_stored(info.dtype).ok_or_else(|| CheckpointError::WrongDtype {
            name: name.to_string(),
            dtype: info.dtype.to_string(),
        })?;
        if info.shape != shape {
            return Err(CheckpointError::WrongShape {
                name: name.to_string(),
                expected: shape,
                found: info.shape.clone(),
            });
        }
        // safetensors has checked the offsets against the shape and the file; check again rather
        // than index with numbers read from the file.
        let (start, end) = info.data_offsets;
        let bytes = self.data.get(start..end).ok_or_else(|| {
            CheckpointError::NotSafetensors(format!("tensor {name:?} lies outside the file"))
        })?;
        dtype::decode(dtype, bytes, shape).ok_or_else(|| {
            CheckpointError::NotSafetensors(format!(
                "tensor {name:?} holds {} bytes, which do not match its shape",
                bytes.len()
            ))
        })
    }
}

/// Adam's moments and step, all present or all absent.
fn read_adam<F: Float>(
    file: &File,
    metadata: &HashMap<String, String>,
    shapes: &[(String, [usize; 2])],
) -> Result<Option<AdamState<F>>, CheckpointError> {
    let Some(step) = metadata.get(ADAM_STEP) else {
        let names = file.header.offset_keys();
        return match names
            .iter()
            .find(|name| name.starts_with(ADAM_M) || name.starts_with(ADAM_V))
        {
            Some(name) => Err(CheckpointError::InconsistentAdam(format!(
                "tensor {name:?} is present but the metadata has no {ADAM_STEP:?}"
            ))),
            None => Ok(None),
        };
    };
    let step = parse_decimal(step).ok_or_else(|| CheckpointError::BadMetadata {
        key: ADAM_STEP.to_string(),
        value: Some(step.clone()),
    })?;
    let mut m = Vec::with_capacity(shapes.len());
    let mut v = Vec::with_capacity(shapes.len());
    for (name, shape) in shapes {
        m.push(moment(file, ADAM_M, name, *shape)?);
        v.push(moment(file, ADAM_V, name, *shape)?);
    }
    Ok(Some(AdamState { m, v, step }))
}

/// One of Adam's moments; a missing one makes the optimizer state, not the weights, incomplete.
fn moment<F: Float>(
    file: &File,
    prefix: &str,
    parameter: &str,
    shape: [usize; 2],
) -> Result<Array2<F>, CheckpointError> {
    file.tensor(&format!("{prefix}{parameter}"), shape)
        .map_err(|error| match error {
            CheckpointError::MissingTensor(name) => CheckpointError::InconsistentAdam(format!(
                "the metadata has {ADAM_STEP:?} but tensor {name:?} is missing"
            )),
            other => other,
        })
}

/// Bounds the configuration by what the file could hold, before `Config::parameter_shapes`
/// allocates a name per tensor and multiplies sizes: each layer needs tensors of its own, and
/// `wte` and `wpe` hold at least `n_embd` and `block_size` elements of 4 bytes or more (so
/// `4 * n_embd` cannot overflow). Every real checkpoint passes; `n_head <= n_embd` already holds.
fn check_fits(config: &Config, file: &File) -> Result<(), CheckpointError> {
    let tensors = file.header.offset_keys().len();
    let elements = file.data.len() / 4;
    for (key, value, limit) in [
        ("n_layer", config.n_layer, tensors),
        ("n_embd", config.n_embd, elements),
        ("block_size", config.block_size, elements),
    ] {
        if value > limit {
            return Err(CheckpointError::BadMetadata {
                key: key.to_string(),
                value: Some(value.to_string()),
            });
        }
    }
    Ok(())
}

/// The metadata entry `key` as a count.
fn number(metadata: &HashMap<String, String>, key: &str) -> Result<usize, CheckpointError> {
    let value = metadata.get(key).ok_or_else(|| missing(key))?;
    parse_decimal(value).ok_or_else(|| CheckpointError::BadMetadata {
        key: key.to_string(),
        value: Some(value.clone()),
    })
}

/// Digits only (no sign, no spaces), as the format writes them.
fn parse_decimal(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn missing(key: &str) -> CheckpointError {
    CheckpointError::BadMetadata {
        key: key.to_string(),
        value: None,
    }
}

fn from_params_error(error: ParamsError) -> CheckpointError {
    match error {
        ParamsError::Config(error) => CheckpointError::BadConfig(error),
        ParamsError::Missing(name) => CheckpointError::MissingTensor(name),
        ParamsError::Shape {
            name,
            expected,
            found,
        } => CheckpointError::WrongShape {
            name,
            expected,
            found,
        },
    }
}
