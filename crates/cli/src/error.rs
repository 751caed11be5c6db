//! Errors of the command line: one line for the user, and an exit status.

use std::fmt;

/// A failure that ends the program with a message on stderr.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong and how to fix it, in one line.
    pub message: String,
    /// Bad arguments or input (exit status 2) rather than a failure of the program itself (1).
    pub bad_input: bool,
}

impl CliError {
    /// Bad arguments or bad input: exit status 2.
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            bad_input: true,
        }
    }

    /// Any other failure: exit status 1.
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            bad_input: false,
        }
    }

    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        if self.bad_input { 2 } else { 1 }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Shorthand for the subcommands' results.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
