//! The `microgpt` command line: argument parsing, datasets, progress, plots and exit codes around
//! the `gpt` crate. The binary's `main` calls [`run`].

mod args;
mod atomic_file;
mod bench;
mod corpus;
mod data;
mod defaults;
mod divergence;
mod download;
mod error;
mod eval;
mod export;
mod info;
mod loss_csv;
mod loss_log;
mod memory;
mod outputs;
mod plot;
mod progress;
mod rng;
mod sample;
mod settings;
mod signals;
mod stream;
#[cfg(test)]
mod test_support;
mod text;
mod train;

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::ExitCode;

use gpt::{Checkpoint, CheckpointError, Dtype};
use tape::Float;

use crate::args::{Cli, Command};
use crate::atomic_file::Durability;
use crate::error::{CliError, Kind};

/// Parses `arguments` (the program name first), runs the command and returns the exit status:
/// 0 on success, 2 for bad arguments or input, 1 for other failures, with one line on stderr.
pub fn run(arguments: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::parse_arguments(arguments) {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version to stdout with status 0, and usage errors with 2.
            let _ = error.print();
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    let result = match cli.command {
        None => train::run(cli.train),
        Some(Command::Train(args)) => train::run(*args),
        Some(Command::Sample(args)) => sample::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Export(args)) => export::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match error.kind {
                Kind::ClosedPipe => {}
                Kind::Interrupted(_) => stream::write_note(format_args!("{error}")),
                Kind::Input | Kind::Environment => {
                    stream::write_note(format_args!("error: {error}"))
                }
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Saves `checkpoint` to `path` with tensors stored as `dtype`, atomically, durably (it holds the
/// training) and with the temporary file name the signal thread knows ([`atomic_file`]).
fn save_checkpoint<F: Float>(
    checkpoint: &Checkpoint<F>,
    path: &Path,
    dtype: Dtype,
) -> Result<(), CliError> {
    let staged = stage_checkpoint(checkpoint, path, dtype)?;
    atomic_file::put_in_place([staged]).map_err(checkpoint_write_error)
}

/// [`save_checkpoint`] up to the rename: the complete checkpoint, flushed to disk in its temporary
/// file, for [`atomic_file::put_in_place`] to put in place with the files saved beside it.
fn stage_checkpoint<F: Float>(
    checkpoint: &Checkpoint<F>,
    path: &Path,
    dtype: Dtype,
) -> Result<atomic_file::Staged, CliError> {
    let bytes = checkpoint
        .to_bytes(dtype)
        .map_err(|error| checkpoint_error(path, error))?;
    atomic_file::stage_bytes(path, &bytes, Durability::Synced).map_err(checkpoint_write_error)
}

/// A checkpoint that cannot be written. The error names the file already, as every error of an
/// atomic write does.
fn checkpoint_write_error(error: io::Error) -> CliError {
    CliError::failure(format!("cannot save the checkpoint: {error}"))
}

/// One line for a checkpoint that cannot be read.
fn checkpoint_error(path: &Path, error: CheckpointError) -> CliError {
    match &error {
        CheckpointError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            if path == Path::new(defaults::CHECKPOINT) {
                CliError::input(format!(
                    "{} not found: train a model first (microgpt train), or pass --model CKPT",
                    path.display()
                ))
            } else {
                CliError::input(format!("{error}: check the checkpoint's path"))
            }
        }
        // An I/O error names its path already.
        CheckpointError::Io { source, .. }
            if matches!(
                source.kind(),
                io::ErrorKind::IsADirectory | io::ErrorKind::PermissionDenied
            ) =>
        {
            CliError::input(error.to_string())
        }
        CheckpointError::Io { .. } => CliError::failure(error.to_string()),
        _ => CliError::input(format!("{}: {error}", path.display())),
    }
}
