//! Replacing a checkpoint all at once: a reader, a crash or Ctrl-C sees the old file or the new
//! one, never a mix.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to a temporary file beside `path` (`.<name>.<random>.tmp`, so that the rename
/// stays within one file system), flushes it to disk and renames it over `path`. On any failure
/// the temporary file is removed (tempfile's `NamedTempFile` does so when dropped) and an existing
/// file at `path` is left as it was.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|name| name.to_string_lossy());
    let prefix = format!(".{}.", name.as_deref().unwrap_or("checkpoint"));
    let mut temporary = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(directory)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|error| error.error)?;
    // Makes the rename itself durable. Best effort: not every platform can open a directory, and
    // the new file is complete and in place either way.
    if let Ok(directory) = File::open(directory) {
        let _ = directory.sync_all();
    }
    Ok(())
}
