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
    let bytes = checkpoint
        .to_bytes(dtype)
        .map_err(|error| checkpoint_error(path, error))?;
    write_checkpoint(path, &bytes)
}

/// [`save_checkpoint`] on a thread of its own, so that the wait for the disk (two `fsync` calls,
/// often longer than what a short run does after its last step) overlaps the caller's next work.
/// Nothing is in place until [`PendingSave::wait`] says so.
fn save_checkpoint_in_background<F: Float>(
    checkpoint: &Checkpoint<F>,
    path: &Path,
    dtype: Dtype,
) -> Result<PendingSave, CliError> {
    let bytes = checkpoint
        .to_bytes(dtype)
        .map_err(|error| checkpoint_error(path, error))?;
    let target = path.to_path_buf();
    std::thread::Builder::new()
        .name("save".to_string())
        .spawn(move || write_checkpoint(&target, &bytes))
        .map(PendingSave)
        .map_err(|error| CliError::failure(format!("cannot save the checkpoint: {error}")))
}

/// A checkpoint being saved by [`save_checkpoint_in_background`].
struct PendingSave(std::thread::JoinHandle<Result<(), CliError>>);

impl PendingSave {
    /// Waits until the checkpoint is in place and on disk, or says why it is not.
    fn wait(self) -> Result<(), CliError> {
        self.0.join().unwrap_or_else(|_| {
            Err(CliError::failure(
                "cannot save the checkpoint: its thread stopped",
            ))
        })
    }
}

fn write_checkpoint(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    // The error names the file already, as every error of an atomic write does.
    atomic_file::write_atomically(path, bytes, Durability::Synced)
        .map_err(|error| CliError::failure(format!("cannot save the checkpoint: {error}")))
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;

    use gpt::{Checkpoint, Config, Dtype, Params, Tokenizer};
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    use super::save_checkpoint_in_background;
    use crate::test_support::scratch_dir;

    fn checkpoint() -> Checkpoint<f64> {
        let tokenizer = Tokenizer::from_documents(["ab"]);
        let config = Config {
            vocab_size: tokenizer.vocab_size(),
            ..Config::default()
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        Checkpoint {
            params: Params::init(config, &mut rng).unwrap(),
            tokenizer,
            adam: None,
            metadata: BTreeMap::new(),
        }
    }

    /// If this fails, a background save returns before its file is in place, or loses its error
    /// (the run would report a checkpoint it does not have).
    #[test]
    fn a_background_save_is_in_place_once_waited_for_and_its_failure_is_reported() {
        let directory = scratch_dir("lib", "background-save");
        let path = directory.join("model.safetensors");
        let checkpoint = checkpoint();
        save_checkpoint_in_background(&checkpoint, &path, Dtype::F64)
            .unwrap()
            .wait()
            .unwrap();
        let loaded = gpt::load::<f64>(&path).unwrap();
        assert_eq!(loaded.params, checkpoint.params);

        // A directory where the checkpoint must go: the rename fails, on the save's thread.
        let blocked = directory.join("blocked.safetensors");
        fs::create_dir(&blocked).unwrap();
        let error = save_checkpoint_in_background(&checkpoint, &blocked, Dtype::F64)
            .unwrap()
            .wait()
            .unwrap_err();
        assert!(
            error.message.starts_with("cannot save the checkpoint"),
            "{}",
            error.message
        );
        let mut names: Vec<_> = fs::read_dir(&directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["blocked.safetensors", "model.safetensors"]);
    }
}
