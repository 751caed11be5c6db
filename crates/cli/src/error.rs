//! Errors of the command line: one line for the user, and an exit status.

use std::fmt;
use std::io;

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
#[derive(Debug)]
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

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Shorthand for the subcommands' results.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
