//! microgpt on the tape: Karpathy's tiny GPT, trained with exact gradients on a tensor tape.

mod adam;
mod attention;
mod config;
mod model;
mod params;
pub mod random;
mod tokenizer;

pub use adam::{Adam, AdamSettings, AdamState};
pub use config::{Config, ConfigError};
pub use model::{Model, RMS_EPSILON};
pub use params::{INIT_STD, LayerWeight, Params, ParamsError};
pub use random::{PythonRandom, Randomness};
pub use tokenizer::{Tokenizer, UnknownCharacter};
