//! Printing that cannot panic: the standard print macros panic when stdout is a closed pipe or a
//! full disk.
//!
//! Results go to stdout through [`write_line`] (or the [`outln!`] macro), whose failure is an error like
//! any other: a closed pipe ends the program quietly, any other write error with exit status 1.
//! Notes and progress go to stderr through [`write_note`] (the [`note!`] macro), best effort: a run does
//! not stop because its diagnostics cannot be shown, and there is nowhere left to report that.

use std::fmt;
use std::io::{self, Write};

use crate::error::{CliError, Result};

/// Writes one line to stdout and flushes it, so that a failure shows up here and not at exit.
pub fn write_line(arguments: fmt::Arguments) -> Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_fmt(arguments)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
        .map_err(CliError::stdout)
}

/// Writes one line to stderr, ignoring failure. The line is formatted first and written in one
/// piece: stderr is unbuffered, so written as formatted it would cost a system call per piece of
/// the format, and another writer could cut it.
pub fn write_note(arguments: fmt::Arguments) {
    let mut line = String::new();
    // Only a failing `Display` makes this fail, which leaves the line short.
    let _ = fmt::Write::write_fmt(&mut line, arguments);
    line.push('\n');
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// `text` with its control characters escaped (`\u{1b}`), so that a vocabulary or a name read from
/// a file cannot send terminal escape sequences when printed.
pub fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|character| {
            if character.is_control() {
                character.escape_default().to_string()
            } else {
                character.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// `outln!("x = {}", x)?`: one line on stdout (see [`write_line`]).
macro_rules! outln {
    ($($argument:tt)*) => {
        $crate::stream::write_line(format_args!($($argument)*))
    };
}

/// `note!("...")`: one line on stderr, best effort (see [`write_note`]).
macro_rules! note {
    ($($argument:tt)*) => {
        $crate::stream::write_note(format_args!($($argument)*))
    };
}

pub(crate) use {note, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_other_text_is_kept() {
        assert_eq!(escaped("emma zoë"), "emma zoë");
        assert_eq!(escaped("a\u{1b}[2Jb\tc\n"), "a\\u{1b}[2Jb\\tc\\n");
    }
}
