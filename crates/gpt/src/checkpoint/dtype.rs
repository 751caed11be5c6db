//! The two element types a checkpoint stores, and the conversions between their bytes and floats.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use ndarray::Array2;
use safetensors::View;
use tape::Float;

/// The element type of the tensors in a saved checkpoint (the CLI's `--dtype f32|f64`).
///
/// Loading accepts either, whatever the model's own float type.
///
/// ```
/// use gpt::Dtype;
/// assert_eq!("f32".parse::<Dtype>(), Ok(Dtype::F32));
/// assert_eq!(Dtype::F64.to_string(), "f64");
/// assert!("f16".parse::<Dtype>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 32-bit IEEE floats (`F32` in the file): half the size; an f64 model is rounded to nearest.
    F32,
    /// 64-bit IEEE floats (`F64` in the file): exact for both f32 and f64 models.
    F64,
}

/// A dtype name other than `f32` or `f64`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype {found:?}; expected f32 or f64")]
pub struct ParseDtypeError {
    /// The text that was given.
    pub found: String,
}

impl FromStr for Dtype {
    type Err = ParseDtypeError;

    /// `f32` or `f64`, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "f32" => Ok(Dtype::F32),
            "f64" => Ok(Dtype::F64),
            _ => Err(ParseDtypeError {
                found: text.to_string(),
            }),
        }
    }
}

impl fmt::Display for Dtype {
    /// `f32` or `f64`, the spelling [`Dtype::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        })
    }
}

impl Dtype {
    /// The dtype of a stored tensor, if it is one a checkpoint may hold.
    pub(super) fn from_stored(stored: safetensors::Dtype) -> Option<Dtype> {
        match stored {
            safetensors::Dtype::F32 => Some(Dtype::F32),
            safetensors::Dtype::F64 => Some(Dtype::F64),
            _ => None,
        }
    }
}

/// A float type as a safetensors file stores it: little-endian IEEE bytes.
trait Element: Copy {
    /// The safetensors name of the type.
    const STORED: safetensors::Dtype;
    /// Bytes per element.
    const SIZE: usize;
    /// The nearest value of this type.
    fn narrow(value: f64) -> Self;
    /// The value as an f64 (exact for both types).
    fn widen(self) -> f64;
    /// Appends the little-endian bytes.
    fn append_le(self, bytes: &mut Vec<u8>);
    /// The value of `SIZE` little-endian bytes (None for any other length).
    fn from_le_chunk(chunk: &[u8]) -> Option<Self>;
}

impl Element for f32 {
    const STORED: safetensors::Dtype = safetensors::Dtype::F32;
    const SIZE: usize = 4;
    fn narrow(value: f64) -> Self {
        value as f32
    }
    fn widen(self) -> f64 {
        f64::from(self)
    }
    fn append_le(self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le_chunk(chunk: &[u8]) -> Option<Self> {
        chunk.try_into().ok().map(f32::from_le_bytes)
    }
}

impl Element for f64 {
    const STORED: safetensors::Dtype = safetensors::Dtype::F64;
    const SIZE: usize = 8;
    fn narrow(value: f64) -> Self {
        value
    }
    fn widen(self) -> f64 {
        self
    }
    fn append_le(self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le_chunk(chunk: &[u8]) -> Option<Self> {
        chunk.try_into().ok().map(f64::from_le_bytes)
    }
}

/// A tensor encoded for the file, ready for `safetensors::serialize`.
pub(super) struct Encoded {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for Encoded {
    fn dtype(&self) -> safetensors::Dtype {
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

/// `tensor` as row-major elements of `dtype` (f64 to F32 rounds to nearest).
pub(super) fn encode<F: Float>(tensor: &Array2<F>, dtype: Dtype) -> Encoded {
    match dtype {
        Dtype::F32 => encode_as::<f32, F>(tensor),
        Dtype::F64 => encode_as::<f64, F>(tensor),
    }
}

fn encode_as<E: Element, F: Float>(tensor: &Array2<F>) -> Encoded {
    let mut bytes = Vec::with_capacity(tensor.len() * E::SIZE);
    // `iter` walks in logical row-major order whatever the memory layout.
    for &value in tensor {
        E::narrow(value.to_f64()).append_le(&mut bytes);
    }
    Encoded {
        dtype: E::STORED,
        shape: tensor.shape().to_vec(),
        bytes,
    }
}

/// The `[rows, columns]` matrix stored row-major in `bytes` as elements of `dtype`, converted to `F`;
/// None unless `bytes` holds exactly `rows * columns` elements.
pub(super) fn decode<F: Float>(dtype: Dtype, bytes: &[u8], shape: [usize; 2]) -> Option<Array2<F>> {
    match dtype {
        Dtype::F32 => decode_as::<f32, F>(bytes, shape),
        Dtype::F64 => decode_as::<f64, F>(bytes, shape),
    }
}

fn decode_as<E: Element, F: Float>(bytes: &[u8], [rows, columns]: [usize; 2]) -> Option<Array2<F>> {
    // The sizes come from the file: multiply with checks, never trusting them.
    let expected_len = rows.checked_mul(columns)?.checked_mul(E::SIZE)?;
    if bytes.len() != expected_len {
        return None;
    }
    let values = bytes
        .chunks_exact(E::SIZE)
        .map(|chunk| E::from_le_chunk(chunk).map(|value| F::from_f64(value.widen())))
        .collect::<Option<Vec<F>>>()?;
    Array2::from_shape_vec((rows, columns), values).ok()
}
