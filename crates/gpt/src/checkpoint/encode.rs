//! A checkpoint to the bytes of a safetensors file.

use std::collections::HashMap;

use tape::Float;

use super::dtype::{self, Encoded};
use super::{ADAM_M, ADAM_STEP, ADAM_V, Checkpoint, CheckpointError, Dtype, FORMAT, RESERVED_KEYS};
use crate::{AdamState, Params};

/// The safetensors bytes of `checkpoint`, its tensors converted to `dtype`.
pub(super) fn to_bytes<F: Float>(
    checkpoint: &Checkpoint<F>,
    dtype: Dtype,
) -> Result<Vec<u8>, CheckpointError> {
    let Checkpoint {
        params,
        tokenizer,
        adam,
        metadata,
    } = checkpoint;
    let config = params.config();
    if tokenizer.vocab_size() != config.vocab_size {
        return Err(CheckpointError::VocabMismatch {
            tokenizer: tokenizer.vocab_size(),
            config: config.vocab_size,
        });
    }

    // The typed fields own the reserved keys; a stale copy in `metadata` must not shadow them.
    let mut header: HashMap<String, String> = metadata
        .iter()
        .filter(|(key, _)| !RESERVED_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for (key, value) in [
        ("format", FORMAT.to_string()),
        ("vocab", tokenizer.vocab()),
        ("n_layer", config.n_layer.to_string()),
        ("n_embd", config.n_embd.to_string()),
        ("n_head", config.n_head.to_string()),
        ("block_size", config.block_size.to_string()),
    ] {
        header.insert(key.to_string(), value);
    }

    let mut tensors: Vec<(String, Encoded)> = params
        .iter()
        .map(|(name, tensor)| (name.to_string(), dtype::encode(tensor, dtype)))
        .collect();
    if let Some(adam) = adam {
        check_moments_match(params, adam)?;
        for ((name, _), (m, v)) in params.iter().zip(adam.m.iter().zip(&adam.v)) {
            tensors.push((format!("{ADAM_M}{name}"), dtype::encode(m, dtype)));
            tensors.push((format!("{ADAM_V}{name}"), dtype::encode(v, dtype)));
        }
        header.insert(ADAM_STEP.to_string(), adam.step.to_string());
    }

    let bytes = safetensors::serialize(tensors, Some(header))
        .map_err(|error| CheckpointError::Encode(error.to_string()))?;
    Ok(with_sorted_header(bytes))
}

/// The same file with its JSON header's keys in sorted order.
///
/// safetensors writes the metadata from a `HashMap`, whose order changes from one process to the
/// next; sorting makes a checkpoint's bytes a function of its contents, so that a resumed run can
/// be compared with an uninterrupted one byte for byte. The header keeps its length (the same keys
/// and values, reordered), so the data offsets and the padding are unchanged.
fn with_sorted_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let length = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = &bytes[8..8 + length];
    let parsed: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header.trim_ascii_end()).expect("safetensors wrote valid JSON");
    let sorted = serde_json::to_vec(&parsed).expect("a JSON value serializes");
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes
}

/// Checks that Adam has one first and one second moment per parameter, each of its shape.
fn check_moments_match<F: Float>(
    params: &Params<F>,
    adam: &AdamState<F>,
) -> Result<(), CheckpointError> {
    let count = params.tensors().len();
    if adam.m.len() != count || adam.v.len() != count {
        return Err(CheckpointError::InconsistentAdam(format!(
            "{} first and {} second moments for {count} parameters",
            adam.m.len(),
            adam.v.len()
        )));
    }
    for ((name, tensor), (m, v)) in params.iter().zip(adam.m.iter().zip(&adam.v)) {
        if m.shape() != tensor.shape() || v.shape() != tensor.shape() {
            return Err(CheckpointError::InconsistentAdam(format!(
                "the moments of {name:?} have shapes {:?} and {:?}, not {:?}",
                m.shape(),
                v.shape(),
                tensor.shape()
            )));
        }
    }
    Ok(())
}
