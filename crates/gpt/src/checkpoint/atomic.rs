//! Replacing a file all at once: a reader sees the old checkpoint or the new one, never a mix.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where `path`'s new contents are written before they replace it: `.<name>.tmp-<pid>` beside it,
/// so that the rename stays within one file system.
pub(super) fn temporary_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let mut temporary = OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".tmp-{}", std::process::id()));
    Some(path.with_file_name(temporary))
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk, and renames it over `path`,
/// so a reader (or a crash, or Ctrl-C) sees the old file or the new one, never a mix. On any
/// failure the temporary file is removed and an existing `path` is left as it was. Checkpoints are
/// saved this way; the command line writes its other outputs (loss curves, the downloaded dataset)
/// with it too.
///
/// ```
/// let path = std::env::temp_dir().join(format!("microgpt-doc-atomic-{}.txt", std::process::id()));
/// gpt::write_atomically(&path, b"hello")?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let failed =
        |error: io::Error| io::Error::new(error.kind(), format!("{}: {error}", path.display()));
    let temporary = temporary_path(path).ok_or_else(|| {
        failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ))
    })?;
    // `create_new`, so that two saves to one path at once fail instead of interleaving their bytes.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(|error| {
            if error.kind() == io::ErrorKind::AlreadyExists {
                failed(io::Error::new(
                    error.kind(),
                    format!(
                        "the temporary file {} already exists; remove it if no other save is running",
                        temporary.display()
                    ),
                ))
            } else {
                failed(error)
            }
        })?;
    // From here on the temporary file is ours, and must not outlive a failure.
    if let Err(error) = fill_and_rename(file, bytes, &temporary, path) {
        let _ = fs::remove_file(&temporary);
        return Err(failed(error));
    }
    sync_directory(path);
    Ok(())
}

fn fill_and_rename(mut file: File, bytes: &[u8], temporary: &Path, path: &Path) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    // Closed before the rename, which some platforms require.
    drop(file);
    fs::rename(temporary, path)
}

/// Makes the rename itself durable. Best effort: not every platform can open a directory, and the
/// new file is complete and in place either way.
fn sync_directory(path: &Path) {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(directory) = File::open(directory) {
        let _ = directory.sync_all();
    }
}
