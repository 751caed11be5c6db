//! Ctrl-C during training. The loss CSV is streamed into a temporary file beside it for the whole
//! run, and SIGINT ends a process without running its destructors, so the file would be left
//! behind. The handler installed here removes it, then exits with status 130, as a shell reports a
//! process ended by Ctrl-C; the old CSV and checkpoint stay as they were, as before.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

/// The temporary file to remove on Ctrl-C, while there is one.
static TEMPORARY_FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Removes `path` if Ctrl-C interrupts the process before the returned guard is dropped.
pub fn remove_on_interrupt(path: &Path) -> RemoveOnInterrupt {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        // Best effort: without the handler Ctrl-C ends the process as it always did, and only the
        // temporary file is left behind.
        let _ = ctrlc::set_handler(|| {
            if let Some(path) = temporary_file().take() {
                let _ = fs::remove_file(path);
            }
            std::process::exit(130);
        });
    });
    *temporary_file() = Some(path.to_path_buf());
    RemoveOnInterrupt { _private: () }
}

/// While alive, Ctrl-C removes the file given to [`remove_on_interrupt`].
#[derive(Debug)]
pub struct RemoveOnInterrupt {
    _private: (),
}

impl Drop for RemoveOnInterrupt {
    fn drop(&mut self) {
        *temporary_file() = None;
    }
}

fn temporary_file() -> MutexGuard<'static, Option<PathBuf>> {
    // A panic elsewhere while holding the lock leaves a path or none, both still meaningful.
    TEMPORARY_FILE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}
