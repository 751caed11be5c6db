//! `microgpt train`: microgpt.py's training run, with validation, checkpoints and resumption.
//!
//! A run goes through four steps, each in a file of its own: where it starts from ([`start`]),
//! what it decides and checks before step 1 ([`setup`]), the steps ([`session`]) and what it
//! saves and prints at the end ([`finish`]).

mod fingerprint;
mod finish;
mod paths;
mod plan;
mod report;
mod session;
mod setup;
mod start;
mod training_data;
mod validation;

use gpt::{Dtype, SampleError};
use tape::Float;

use crate::args::TrainArgs;
use crate::error::{CliError, Result};

use self::session::Session;
use self::setup::Setup;
use self::start::Start;
pub use self::validation::add_nll;

/// Runs `train` with the precision the arguments (or the resumed checkpoint) ask for.
pub fn run(args: TrainArgs) -> Result<()> {
    let start = Start::from_args(&args)?;
    match start.settings.dtype {
        Dtype::F32 => train::<f32>(&args, start),
        Dtype::F64 => train::<f64>(&args, start),
    }
}

fn train<F: Float>(args: &TrainArgs, start: Start) -> Result<()> {
    let Setup {
        plan,
        params,
        adam,
        mut rng,
        mut report,
        // Held until the run ends: a second run on the same --out is refused.
        lock: _lock,
    } = Setup::<F>::prepare(args, start)?;
    let trained = Session::begin(args, &plan, params, adam)?.train()?;
    finish::finish(args, &plan, trained, &mut rng, &mut report)
}

/// Names sampled from the run's own model and vocabulary, with no prefix, fail only when the
/// program does: the user gave nothing they could be wrong in.
fn sampling_failure(error: SampleError) -> CliError {
    CliError::failure(error.to_string())
}
