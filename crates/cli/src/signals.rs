//! Ctrl-C and SIGTERM during training: the first finishes the step and saves, the second quits.
//!
//! The signals are received on a thread of their own (signal-hook's iterator), not in a signal
//! handler, so that the second one can remove the run's temporary files before it exits: the
//! training loop only reads a flag between steps.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::{CliError, Result};
use crate::stream::note;

/// The first interrupting signal received, if any.
pub struct Interrupts {
    received: Arc<AtomicI32>,
}

/// A signal that asked the run to stop.
#[derive(Clone, Copy, Debug)]
pub struct Signal(i32);

impl Signal {
    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        if self.0 == SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        }
    }

    /// The conventional exit status: 128 + the signal number (130, 143).
    pub fn exit_status(self) -> u8 {
        (128 + self.0) as u8
    }
}

impl Interrupts {
    /// Starts listening. On a second signal, `temporaries` (the `.NAME.tmp-PID` files a save may
    /// be writing) are removed and the process exits at once with 128 + the signal's number; the
    /// files being replaced are untouched, as every save is a rename.
    pub fn install(temporaries: Vec<PathBuf>) -> Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|error| {
            CliError::failure(format!("cannot handle Ctrl-C and SIGTERM: {error}"))
        })?;
        let received = Arc::new(AtomicI32::new(0));
        let flag = Arc::clone(&received);
        std::thread::spawn(move || {
            for number in signals.forever() {
                let signal = Signal(number);
                if flag
                    .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    note!(
                        "{}: finishing this step, then saving (send it again to quit at once without saving)",
                        signal.name()
                    );
                    continue;
                }
                for path in &temporaries {
                    let _ = std::fs::remove_file(path);
                }
                note!("{}: quitting without saving this run", signal.name());
                std::process::exit(signal.exit_status().into());
            }
        });
        Ok(Interrupts { received })
    }

    /// The first signal, once one has arrived.
    pub fn received(&self) -> Option<Signal> {
        match self.received.load(Ordering::SeqCst) {
            0 => None,
            number => Some(Signal(number)),
        }
    }
}
