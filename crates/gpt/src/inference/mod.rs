//! Inference without a tape: a batched key/value cache and a decode step that appends one position
//! per sequence and writes the next-token logits.
//!
//! The math is DESIGN.md section 1 for one token per sequence, on plain slices, with the sequences of
//! a step as the rows of one matrix; nothing is recorded and nothing is allocated once a [`Decoder`]
//! and its [`KvCache`] exist.

mod decode;
mod first_position;
mod input_table;
mod kv_cache;
pub(crate) mod vector;

pub use decode::{DecodeError, Decoder};
pub use kv_cache::KvCache;
