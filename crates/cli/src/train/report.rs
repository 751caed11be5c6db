//! The run's lines on stdout.

use crate::error::{Kind, Result};
use crate::stream;

/// The run's lines on stdout. They report on the run rather than being its product, so when the
/// reader goes away (`microgpt train | head -1`) the run goes on and saves its checkpoint, and only
/// stops printing (and skips the samples, which would go nowhere); any other write error (a full
/// disk) ends it.
#[derive(Default)]
pub struct Report {
    pub closed: bool,
}

impl Report {
    pub fn line(&mut self, arguments: std::fmt::Arguments) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        match stream::write_line(arguments) {
            Err(error) if error.kind == Kind::ClosedPipe => {
                self.closed = true;
                Ok(())
            }
            result => result,
        }
    }
}
