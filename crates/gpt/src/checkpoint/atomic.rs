//! Replacing a file all at once: a reader sees the old file or the new one, never a mix.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Where `path`'s new contents are written before they replace it: `.<name>.tmp-<pid>` beside it,
/// so that the rename stays within one file system. `None` if `path` names no file. A program that
/// must remove its temporary files from a signal handler's thread finds them here.
///
/// ```
/// let path = std::path::Path::new("runs/model.safetensors");
/// let expected = format!("runs/.model.safetensors.tmp-{}", std::process::id());
/// assert_eq!(gpt::temporary_path(path).unwrap(), std::path::PathBuf::from(expected));
/// ```
pub fn temporary_path(path: &Path) -> Option<PathBuf> {
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
/// with it too. [`AtomicFile`] does the same for contents written piece by piece.
///
/// ```
/// let path = std::env::temp_dir().join(format!("microgpt-doc-atomic-{}.txt", std::process::id()));
/// gpt::write_atomically(&path, b"hello")?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A file's new contents, written (buffered) into the temporary file `.<name>.tmp-<pid>` beside
/// it and put in its place all at once by [`commit`](Self::commit), so that output too long to
/// hold in memory, such as a loss log growing with every training step, can still replace its file
/// atomically. Dropped without `commit` (an error, an early return), it removes the temporary
/// file and leaves an existing file untouched. Every error names the target path.
///
/// ```
/// use std::io::Write;
///
/// let path = std::env::temp_dir().join(format!("microgpt-doc-atomic-file-{}.csv", std::process::id()));
/// std::fs::write(&path, "old")?;
/// let mut file = gpt::AtomicFile::create(&path)?;
/// for step in 1..=3 {
///     writeln!(file, "{step}")?;
/// }
/// assert_eq!(std::fs::read(&path)?, b"old", "nothing changes before the commit");
/// file.commit()?;
/// assert_eq!(std::fs::read(&path)?, b"1\n2\n3\n");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    // Declared before `temporary`, so that an uncommitted file is closed before it is removed
    // (which some platforms require).
    writer: BufWriter<File>,
    path: PathBuf,
    temporary: Temporary,
}

impl AtomicFile {
    /// Creates the temporary file beside `path`. It fails if that file exists already: another
    /// save to `path` may be running, and two at once would interleave their bytes.
    pub fn create(path: &Path) -> io::Result<Self> {
        let temporary = temporary_path(path).ok_or_else(|| {
            named(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file"),
            )
        })?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(|error| {
                if error.kind() == io::ErrorKind::AlreadyExists {
                    named(
                        path,
                        io::Error::new(
                            error.kind(),
                            format!(
                                "the temporary file {} already exists; remove it if no other save is running",
                                temporary.display()
                            ),
                        ),
                    )
                } else {
                    named(path, error)
                }
            })?;
        Ok(Self {
            writer: BufWriter::new(file),
            path: path.to_path_buf(),
            // From here on the temporary file is ours, and must not outlive a failure.
            temporary: Temporary {
                path: temporary,
                renamed: false,
            },
        })
    }

    /// The temporary file being written: `.<name>.tmp-<pid>` beside the target, until the commit.
    pub fn temporary_path(&self) -> &Path {
        &self.temporary.path
    }

    /// Flushes everything written to disk and renames the temporary file over the target. On
    /// failure the temporary file is removed and an existing target is left as it was.
    pub fn commit(self) -> io::Result<()> {
        let Self {
            writer,
            path,
            mut temporary,
        } = self;
        let file = writer
            .into_inner()
            .map_err(|error| named(&path, error.into_error()))?;
        file.sync_all().map_err(|error| named(&path, error))?;
        // Closed before the rename, which some platforms require.
        drop(file);
        fs::rename(&temporary.path, &path).map_err(|error| named(&path, error))?;
        temporary.renamed = true;
        sync_directory(&path);
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.writer
            .write(bytes)
            .map_err(|error| named(&self.path, error))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer
            .flush()
            .map_err(|error| named(&self.path, error))
    }
}

/// A temporary file that is removed when this is dropped, unless it was renamed into place.
#[derive(Debug)]
struct Temporary {
    path: PathBuf,
    renamed: bool,
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `error` with `path` in front, as every error of this module reads.
fn named(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
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
