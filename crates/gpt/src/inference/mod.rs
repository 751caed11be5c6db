//! Inference without a tape: a batched key/value cache and a decode step that appends one position
//! per sequence and writes the next-token logits.
//!
//! The math is the training graph's for one token per sequence, through the same kernels (the
//! tape's [`rows`](tape::rows) and the fused attention's single-query half), with the sequences of
//! a step as the rows of one matrix; nothing is recorded and nothing is allocated once a
//! [`Decoder`] and its [`KvCache`] exist. Two memo tables, each in its own file, skip work whose
//! result is known from an earlier step.

mod decode;
mod error;
mod first_position;
mod input_table;
mod kv_cache;
mod weights;

pub use decode::Decoder;
pub use error::DecodeError;
pub use kv_cache::KvCache;
