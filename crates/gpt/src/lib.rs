//! microgpt on the tape: Karpathy's tiny GPT, trained with exact gradients on a tensor tape.
//!
//! A run in a few lines: a [`Tokenizer`] from the documents, [`Params::init`] from a seed, then
//! [`Model::batch_loss`] for a batch, whose [`Step`] applies Adam's update, and a [`Sampler`] for
//! names. `examples/train_and_sample.rs` does exactly that
//! (`cargo run --release -p gpt --example train_and_sample`).

mod adam;
mod attention;
mod checkpoint;
mod config;
mod inference;
mod model;
mod model_error;
mod params;
pub mod random;
mod sampling;
#[cfg(feature = "scalar")]
mod scalar_model;
mod schedule;
mod tokenizer;

pub use adam::{Adam, AdamSettings, AdamState};
pub use checkpoint::{
    Checkpoint, CheckpointError, Dtype, ParseDtypeError, load, load_weights, save,
};
pub use config::{Config, ConfigError};
pub use inference::{DecodeError, Decoder, KvCache};
pub use model::{BatchMean, CHUNK, Dropout, Model, NllSum, ParseBatchMeanError, RMS_EPSILON, Step};
pub use model_error::ModelError;
pub use params::{INIT_STD, LayerWeight, Params, ParamsError};
pub use random::{PythonRandom, Randomness};
pub use sampling::{
    DrawScratch, Draws, OptionsError, Request, SampleError, Sampler, SamplingOptions, SharedStream,
    StreamPerName, draw_token, token_weights,
};
#[cfg(feature = "scalar")]
pub use scalar_model::scalar_model;
pub use schedule::{Decay, ParseDecayError, Schedule};
pub use tokenizer::{Tokenizer, UnknownCharacter};
