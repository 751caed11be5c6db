//! What a run starts from: the flags, or the checkpoint given with `--init` or `--resume`.

use std::path::{Path, PathBuf};

use gpt::{Checkpoint, CheckpointError};

use crate::args::TrainArgs;
use crate::checkpoint_error;
use crate::error::{CliError, Result};
use crate::settings::RunSettings;

/// What a run starts from: its settings, and the checkpoint given with --init or --resume.
pub struct Start {
    pub settings: RunSettings,
    pub checkpoint: Option<Loaded>,
}

/// A checkpoint read once (in f64, which holds an F32 file exactly) and where it came from.
pub struct Loaded {
    pub path: PathBuf,
    pub checkpoint: Checkpoint<f64>,
    /// `--resume` (continue with its optimizer state) rather than `--init` (fresh optimizer).
    pub resumed: bool,
}

impl Start {
    pub fn from_args(args: &TrainArgs) -> Result<Self> {
        let Some((path, resumed)) = args
            .resume
            .as_ref()
            .map(|path| (path, true))
            .or(args.init.as_ref().map(|path| (path, false)))
        else {
            return Ok(Start {
                settings: RunSettings::fresh(args)?,
                checkpoint: None,
            });
        };
        // --init needs the weights only, so a damaged optimizer state cannot stop it.
        let checkpoint = if resumed {
            gpt::load::<f64>(path).map_err(|error| resume_error(path, error))?
        } else {
            gpt::load_weights::<f64>(path).map_err(|error| checkpoint_error(path, error))?
        };
        let settings = if resumed {
            RunSettings::resumed(args, &checkpoint)?
        } else {
            RunSettings::fresh(args)?
        };
        let path = path.clone();
        Ok(Start {
            settings,
            checkpoint: Some(Loaded {
                path,
                checkpoint,
                resumed,
            }),
        })
    }
}

/// A checkpoint that cannot be resumed. When its weights load alone, what is broken is the
/// optimizer state, and `--init` (which reads nothing else) starts a new run from them.
fn resume_error(path: &Path, error: CheckpointError) -> CliError {
    let weights_load =
        !matches!(error, CheckpointError::Io { .. }) && gpt::load_weights::<f64>(path).is_ok();
    let mut error = checkpoint_error(path, error);
    if weights_load {
        error.message.push_str(&format!(
            "; its weights are intact: start a new run from them with --init {} (a fresh optimizer)",
            path.display()
        ));
    }
    error
}
