//! Errors of the command line: one line for the user, and an exit status.

use std::io;

use gpt::{ConfigError, DecodeError, ModelError, OptionsError};

use crate::download::DownloadError;

/// How a failure ends the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bad arguments or bad input: exit status 2.
    Input,
    /// The environment failed (disk full, I/O, network): exit status 1.
    Environment,
    /// The reader of stdout went away (`microgpt sample | head`): the program ends quietly with
    /// status 0, as a Unix filter killed by SIGPIPE would have done its job; everything the run
    /// had to save was saved before its report was printed.
    ClosedPipe,
    /// A signal stopped the run after it saved its state: 128 + the signal's number (130 for
    /// SIGINT, 143 for SIGTERM), as shells report.
    Interrupted(u8),
}

/// A failure that ends the program with a message on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// What went wrong and how to fix it, in one line.
    pub message: String,
    /// Which exit status it gets.
    pub kind: Kind,
}

impl CliError {
    /// Bad arguments or bad input: exit status 2.
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            kind: Kind::Input,
        }
    }

    /// Any other failure: exit status 1.
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            kind: Kind::Environment,
        }
    }

    /// A write to stdout failed: quietly for a closed pipe, exit 1 otherwise.
    pub fn stdout(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            CliError {
                message: String::new(),
                kind: Kind::ClosedPipe,
            }
        } else {
            CliError::failure(format!("cannot write to stdout: {error}"))
        }
    }

    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Input => 2,
            Kind::Environment => 1,
            Kind::ClosedPipe => 0,
            Kind::Interrupted(status) => status,
        }
    }
}

/// `From` conversions for library errors that always become one kind, so that `?` converts
/// them: `convert!(input: ErrorType, ..)` or `convert!(failure: ..)`, keeping their message.
macro_rules! convert {
    ($kind:ident: $($error:ty),*) => {$(
        impl From<$error> for CliError {
            fn from(error: $error) -> Self {
                CliError::$kind(error.to_string())
            }
        }
    )*};
}

// Always the user's: a value given on the command line or read from the user's files (each
// error names which), or a download, which fails for reasons the user acts on (offline, a proxy,
// a damaged file) as on a bad path.
convert!(input: OptionsError, ConfigError, DownloadError);
// Never the user's: the computation failed on inputs checked before it.
convert!(failure: ModelError, DecodeError);

/// Shorthand for the subcommands' results.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds are those the call sites chose before `?` replaced them: a bad option or
    /// configuration is the user's (exit 2, as the CLI tests of `--temperature 0` and `--n-head`
    /// expect), a model or decoder failing on checked inputs is the program's (exit 1); the
    /// message is the library's, unchanged.
    #[test]
    fn library_errors_convert_to_their_kind_with_their_message() {
        let cases: [(CliError, u8, &str); 4] = [
            (
                OptionsError::TopK(0).into(),
                2,
                "top-k must be at least 1, not 0",
            ),
            (
                ConfigError::Zero("n_layer").into(),
                2,
                "n_layer must be at least 1",
            ),
            (
                ModelError::EmptyBatch.into(),
                1,
                "a batch needs at least one document",
            ),
            (
                DecodeError::ConfigMismatch.into(),
                1,
                "the weights, the cache and the decoder were made for different configurations",
            ),
        ];
        for (error, status, message) in cases {
            assert_eq!(error.exit_code(), status, "{message}");
            assert_eq!(error.to_string(), message);
        }
    }
}
