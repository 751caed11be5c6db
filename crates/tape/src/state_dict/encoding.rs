//! A state dict as the bytes of a safetensors file and back, trusting nothing a file declares.

use std::borrow::Cow;
use std::collections::BTreeMap;

use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensors, View};

use super::{METADATA_KEY, StateDict, StateDictError};
use crate::{Float, MAX_AXES, Tensor};

/// The length of the little-endian `u64` that starts a safetensors file: the header's size.
const LENGTH_PREFIX: usize = 8;

/// The bytes of a safetensors file holding `state`: little-endian, row-major, as F32 for an `f32`
/// state dict and F64 for an `f64` one, with `state.metadata` as the header's `__metadata__`.
pub(super) fn to_bytes<F: Float>(state: &StateDict<F>) -> Result<Vec<u8>, StateDictError> {
    if state.tensors.contains_key(METADATA_KEY) {
        return Err(StateDictError::ReservedName {
            name: METADATA_KEY.to_string(),
        });
    }
    let tensors = state
        .tensors
        .iter()
        .map(|(name, tensor)| (name.as_str(), Encoded::new(tensor)));
    let metadata = (!state.metadata.is_empty()).then(|| {
        let entries = state.metadata.iter();
        entries
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    });
    safetensors::serialize(tensors, metadata).map_err(|error| StateDictError::Encode {
        detail: error.to_string(),
    })
}

/// The state dict stored in `bytes`, each tensor converted from F32 or F64 to `F`.
pub(super) fn from_bytes<F: Float>(bytes: &[u8]) -> Result<StateDict<F>, StateDictError> {
    let (header, data) = read_safetensors(bytes).map_err(StateDictError::corrupt)?;
    let mut tensors = BTreeMap::new();
    for (name, info) in tensor_infos(&header) {
        let tensor = decode(&name, info, data)?;
        tensors.insert(name, tensor);
    }
    let metadata = header
        .metadata()
        .as_ref()
        .map_or_else(BTreeMap::new, |metadata| {
            metadata
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        });
    Ok(StateDict { tensors, metadata })
}

/// Every tensor of the header with its name, in name order (so that the first error a file gives
/// is the same on every run).
fn tensor_infos(header: &Metadata) -> Vec<(String, &TensorInfo)> {
    let mut infos: Vec<(String, &TensorInfo)> = header.tensors().into_iter().collect();
    infos.sort_by(|(left, _), (right, _)| left.cmp(right));
    infos
}

/// The tensor `name` described by `info`, its bytes taken from `data`, converted to `F`.
fn decode<F: Float>(
    name: &str,
    info: &TensorInfo,
    data: &[u8],
) -> Result<Tensor<F>, StateDictError> {
    if info.shape.len() > MAX_AXES {
        return Err(StateDictError::TooManyAxes {
            name: name.to_string(),
            shape: info.shape.clone(),
        });
    }
    let size = match info.dtype {
        Dtype::F32 => 4,
        Dtype::F64 => 8,
        dtype => {
            return Err(StateDictError::UnsupportedDtype {
                name: name.to_string(),
                dtype: dtype.to_string(),
            });
        }
    };
    // safetensors has checked the offsets against the shape and the file; check again rather than
    // index with numbers read from the file.
    let (start, end) = info.data_offsets;
    let bytes = data
        .get(start..end)
        .ok_or_else(|| StateDictError::corrupt(format!("tensor {name:?} lies outside the file")))?;
    let elements = info
        .shape
        .iter()
        .try_fold(1usize, |n, &axis| n.checked_mul(axis));
    if elements.and_then(|n| n.checked_mul(size)) != Some(bytes.len()) {
        return Err(StateDictError::corrupt(format!(
            "tensor {name:?} holds {} bytes, which do not fill its shape {:?}",
            bytes.len(),
            info.shape
        )));
    }
    let mut tensor = Tensor::zeros(&info.shape);
    let values = tensor.as_mut_slice();
    if size == 4 {
        let (chunks, _) = bytes.as_chunks::<4>();
        for (value, chunk) in values.iter_mut().zip(chunks) {
            *value = F::from_f64(f64::from(f32::from_le_bytes(*chunk)));
        }
    } else {
        let (chunks, _) = bytes.as_chunks::<8>();
        for (value, chunk) in values.iter_mut().zip(chunks) {
            *value = F::from_f64(f64::from_le_bytes(*chunk));
        }
    }
    Ok(tensor)
}

/// A tensor's elements as the little-endian bytes of its dtype, for `safetensors::serialize`.
struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Encoded {
    /// `tensor` as F32 if `F` is `f32` (exact), else as F64 (exact for `f64`).
    fn new<F: Float>(tensor: &Tensor<F>) -> Self {
        let values = tensor.as_slice();
        let (dtype, bytes) = if size_of::<F>() == 4 {
            let bytes = values
                .iter()
                .flat_map(|v| (Float::to_f64(*v) as f32).to_le_bytes());
            (Dtype::F32, bytes.collect())
        } else {
            let bytes = values.iter().flat_map(|v| Float::to_f64(*v).to_le_bytes());
            (Dtype::F64, bytes.collect())
        };
        Encoded {
            dtype,
            shape: tensor.shape().to_vec(),
            bytes,
        }
    }
}

impl View for Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The header and the data section of the safetensors file `bytes`, or why it is not one, in a
/// phrase. Nothing a file declares is trusted: sizes and offsets are checked before any is used.
/// (`gpt`'s checkpoint loader reads its files through this too.)
pub fn read_safetensors(bytes: &[u8]) -> Result<(Metadata, &[u8]), String> {
    if declares_huge_number(bytes) {
        return Err(format!(
            "the header declares a size or offset far beyond the {}-byte file",
            bytes.len()
        ));
    }
    let (header_len, header) =
        SafeTensors::read_metadata(bytes).map_err(|error| error.to_string())?;
    let data = LENGTH_PREFIX
        .checked_add(header_len)
        .and_then(|start| bytes.get(start..))
        .ok_or_else(|| "the header overruns the file".to_string())?;
    Ok((header, data))
}

/// Whether the header declares a number which, added to the file's length, overflows.
///
/// safetensors 0.8's `read_metadata` adds the declared end of the data to the header's length
/// unchecked, which panics in debug builds when a header declares an offset near `u64::MAX`. No
/// valid file declares such a number. Numbers inside JSON strings (names, metadata values) are
/// skipped; anything malformed is left for safetensors to report.
fn declares_huge_number(bytes: &[u8]) -> bool {
    let header = bytes
        .get(..LENGTH_PREFIX)
        .and_then(|prefix| prefix.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|len| usize::try_from(len).ok())
        .and_then(|len| bytes.get(LENGTH_PREFIX..LENGTH_PREFIX.checked_add(len)?));
    let Some(header) = header else {
        return false;
    };
    let limit = (usize::MAX - bytes.len()) as u128;
    let (mut in_string, mut escaped) = (false, false);
    let mut number: Option<u128> = None;
    // A trailing space ends a number that ends the header.
    for &byte in header.iter().chain(b" ") {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte.is_ascii_digit() {
            let digit = u128::from(byte - b'0');
            number = Some(number.unwrap_or(0).saturating_mul(10).saturating_add(digit));
        } else {
            if number.take().is_some_and(|number| number > limit) {
                return true;
            }
            in_string = byte == b'"';
        }
    }
    false
}
