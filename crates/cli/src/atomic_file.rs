//! Replacing a file all at once: a reader sees the old file or the new one, never a mix.
//!
//! Every file the command line writes goes through here: checkpoints (as
//! [`gpt::Checkpoint::to_bytes`]), loss logs, charts and the downloaded dataset. Their temporary
//! files have one predictable name, `.<name>.tmp-<pid>` beside the target, which is what lets the
//! second Ctrl-C remove them ([`crate::signals`]) and a later run sweep up those a killed run left
//! ([`crate::outputs`]).
//!
//! Every replacement is atomic; only some are also flushed to disk, as [`Durability`] says.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::outputs::directory_of;

/// Where `path`'s new contents are written before they replace it: `.<name>.tmp-<pid>` beside it,
/// so that the rename stays within one file system. `None` if `path` names no file. The signal
/// thread removes these on a second Ctrl-C.
pub fn temporary_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let mut temporary = OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".tmp-{}", std::process::id()));
    Some(path.with_file_name(temporary))
}

/// What a replaced file must survive besides the end of the process that writes it.
///
/// Either way the rename is atomic for every other process at once, and the new file outlives
/// its writer however that ends (Ctrl-C, a kill, a panic), since the operating system holds the
/// written data. Flushing to disk adds only survival of a crash of the machine itself, and costs
/// two `fsync` calls, each a wait for the disk that can dwarf a short run; so it is paid only for
/// files that cannot be made again cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives a crash of the machine: the file is flushed to disk before its rename, and the
    /// directory after it. For checkpoints (the training they hold is the expensive part) and
    /// the downloaded dataset (an empty file after a crash would stop every later run instead of
    /// being downloaded again).
    Synced,
    /// Left for the operating system to write back in its own time: a crash of the machine soon
    /// after may leave the old file, or an empty one, in its place. For outputs derived from a
    /// run, such as the loss CSV and the charts, whose loss costs a curve but never a model; a
    /// resumed run notes a CSV that falls short of its checkpoint.
    Unsynced,
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a reader (or
/// Ctrl-C) sees the old file or the new one, never a mix, flushing to disk as `durability` says.
/// On any failure the temporary file is removed and an existing `path` is left as it was.
/// [`AtomicFile`] does the same for contents written piece by piece.
pub fn write_atomically(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    put_in_place([stage_bytes(path, bytes, durability)?])
}

/// [`write_atomically`] up to the rename: `bytes` complete in the temporary file beside `path`,
/// for [`put_in_place`] to rename together with the files staged beside it.
pub fn stage_bytes(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<Staged> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.stage(durability)
}

/// A file's new contents, written (buffered) into the temporary file `.<name>.tmp-<pid>` beside
/// it and put in its place all at once by [`commit`](Self::commit), so that output too long to
/// hold in memory, such as a loss log growing with every training step, can still replace its file
/// atomically. Dropped without `commit` (an error, an early return), it removes the temporary
/// file and leaves an existing file untouched. Every error names the target path.
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

    /// Writes out everything buffered and renames the temporary file over the target, flushing
    /// the file and the rename to disk as `durability` says. On failure the temporary file is
    /// removed and an existing target is left as it was.
    pub fn commit(self, durability: Durability) -> io::Result<()> {
        put_in_place([self.stage(durability)?])
    }

    /// Writes out everything buffered and closes the temporary file, flushed to disk as
    /// `durability` says, ready to be put in place by [`put_in_place`]: several files staged first
    /// and renamed only once all are complete either all replace their targets or none does
    /// (a full disk fails while staging). On failure the temporary file is removed.
    pub fn stage(self, durability: Durability) -> io::Result<Staged> {
        let Self {
            writer,
            path,
            temporary,
        } = self;
        let file = writer
            .into_inner()
            .map_err(|error| named(&path, error.into_error()))?;
        if durability == Durability::Synced {
            file.sync_all().map_err(|error| named(&path, error))?;
        }
        // Closed before the rename, which some platforms require.
        drop(file);
        Ok(Staged {
            path,
            temporary,
            durability,
        })
    }
}

/// A complete temporary file waiting to replace its target ([`AtomicFile::stage`]). Dropped
/// without [`put_in_place`], it is removed and the target left as it was.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    temporary: Temporary,
    durability: Durability,
}

/// Renames each staged file over its target, in order, flushing the rename of each that is
/// [`Durability::Synced`] to disk at once: before the later renames, whose files' writing back
/// (which replacing a file starts) the flush would otherwise wait for. A failed rename leaves the
/// files not yet renamed as they were and removes their temporary files (a rename within a
/// directory needs no new space, so a full disk fails while staging instead).
pub fn put_in_place(files: impl IntoIterator<Item = Staged>) -> io::Result<()> {
    for mut file in files {
        fs::rename(&file.temporary.path, &file.path).map_err(|error| named(&file.path, error))?;
        file.temporary.renamed = true;
        if file.durability == Durability::Synced {
            sync_directory(directory_of(&file.path));
        }
    }
    Ok(())
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

/// Makes the renames into `directory` durable. Best effort: not every platform can open a
/// directory, and the new files are complete and in place either way.
fn sync_directory(directory: &Path) {
    if let Ok(directory) = File::open(directory) {
        let _ = directory.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::{AtomicFile, Durability, put_in_place, temporary_path, write_atomically};
    use crate::test_support::scratch_dir;

    /// The names in `directory`, sorted.
    fn entries(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Both kinds of commit, which must replace files alike: they differ only in flushing to disk.
    const BOTH: [Durability; 2] = [Durability::Synced, Durability::Unsynced];

    fn temporary_name(name: &str) -> String {
        format!(".{name}.tmp-{}", std::process::id())
    }

    #[test]
    fn the_temporary_file_is_hidden_beside_the_target_and_named_by_the_process() {
        let path = Path::new("runs/model.safetensors");
        let expected = PathBuf::from(format!("runs/{}", temporary_name("model.safetensors")));
        assert_eq!(temporary_path(path), Some(expected));
        assert_eq!(temporary_path(Path::new("/")), None);
    }

    #[test]
    fn bytes_replace_an_existing_file_and_leave_nothing_beside_it() {
        for durability in BOTH {
            let directory = scratch_dir("atomic", &format!("replace-{durability:?}"));
            let path = directory.join("data.txt");
            fs::write(&path, "old").unwrap();
            write_atomically(&path, b"hello", durability).unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"hello", "{durability:?}");
            assert_eq!(entries(&directory), ["data.txt"], "{durability:?}");
        }
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_byte_identical() {
        // Root ignores permissions, so the failure is injected instead: a directory sits where the
        // temporary file must be created. Creating it fails, and a write straight to the target
        // (or one that truncated it first) would already have destroyed the old contents.
        let directory = scratch_dir("atomic", "failed");
        let path = directory.join("model.safetensors");
        fs::write(&path, b"old bytes").unwrap();
        let blocker = directory.join(temporary_name("model.safetensors"));
        fs::create_dir(&blocker).unwrap();

        let error = write_atomically(&path, b"new bytes", Durability::Synced).unwrap_err();
        assert!(
            error.to_string().starts_with(&path.display().to_string()),
            "{error}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"old bytes");
        assert!(blocker.is_dir(), "removed a directory it did not create");
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        // The temporary file is written in full and the rename fails: a file cannot replace a
        // directory. Without the clean-up the written temporary file would stay behind.
        for durability in BOTH {
            let directory = scratch_dir("atomic", &format!("rename-{durability:?}"));
            let path = directory.join("model.safetensors");
            fs::create_dir(&path).unwrap();
            assert!(write_atomically(&path, b"bytes", durability).is_err());
            assert_eq!(entries(&directory), ["model.safetensors"], "{durability:?}");
        }
    }

    #[test]
    fn files_staged_before_a_failure_leave_their_targets_as_they_were() {
        // As when the chart cannot be written after the checkpoint and the CSV were: putting
        // those two in place anyway would leave a new checkpoint and CSV beside the old chart.
        let directory = scratch_dir("atomic", "staged");
        let names = ["run.safetensors", "run.csv", "run.svg"];
        for name in names {
            fs::write(directory.join(name), format!("old {name}")).unwrap();
        }
        let stage = |name: &str| {
            let mut file = AtomicFile::create(&directory.join(name)).unwrap();
            file.write_all(b"new").unwrap();
            file.stage(Durability::Synced).unwrap()
        };
        let staged = [stage(names[0]), stage(names[1])];
        // A directory where the chart's temporary file must go makes its creation fail.
        let blocker = directory.join(temporary_name(names[2]));
        fs::create_dir(&blocker).unwrap();
        assert!(AtomicFile::create(&directory.join(names[2])).is_err());
        drop(staged);
        fs::remove_dir(&blocker).unwrap();
        for name in names {
            assert_eq!(
                fs::read_to_string(directory.join(name)).unwrap(),
                format!("old {name}")
            );
        }
        assert_eq!(
            entries(&directory),
            ["run.csv", "run.safetensors", "run.svg"]
        );

        // Once all are staged, they replace their targets together.
        put_in_place(names.map(stage)).unwrap();
        for name in names {
            assert_eq!(fs::read_to_string(directory.join(name)).unwrap(), "new");
        }
        assert_eq!(
            entries(&directory),
            ["run.csv", "run.safetensors", "run.svg"]
        );
    }

    #[test]
    fn pieces_replace_the_file_only_at_the_commit() {
        for durability in BOTH {
            let directory = scratch_dir("atomic", &format!("commit-{durability:?}"));
            let path = directory.join("loss.csv");
            fs::write(&path, "old contents").unwrap();
            let mut file = AtomicFile::create(&path).unwrap();
            // More than the buffer holds, so some bytes reach the temporary file before the commit.
            let line = "0123456789".repeat(10);
            for _ in 0..1000 {
                writeln!(file, "{line}").unwrap();
            }
            assert_eq!(fs::read_to_string(&path).unwrap(), "old contents");
            assert!(directory.join(temporary_name("loss.csv")).is_file());
            file.commit(durability).unwrap();
            assert_eq!(
                fs::read_to_string(&path).unwrap(),
                format!("{line}\n").repeat(1000),
                "{durability:?}"
            );
            assert_eq!(
                entries(&directory),
                ["loss.csv"],
                "a temporary file was left ({durability:?})"
            );
        }
    }

    #[test]
    fn dropping_without_commit_removes_the_temporary_file_and_keeps_the_old_one() {
        // As when a training run fails half-way through its loss log.
        let directory = scratch_dir("atomic", "drop");
        let path = directory.join("loss.csv");
        fs::write(&path, "old contents").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(&vec![b'x'; 100_000]).unwrap();
        assert!(directory.join(temporary_name("loss.csv")).is_file());
        drop(file);
        assert_eq!(fs::read_to_string(&path).unwrap(), "old contents");
        assert_eq!(
            entries(&directory),
            ["loss.csv"],
            "a temporary file was left"
        );
    }

    #[test]
    fn a_second_writer_to_the_same_path_is_refused_with_the_fix() {
        let directory = scratch_dir("atomic", "twice");
        let path = directory.join("loss.csv");
        let first = AtomicFile::create(&path).unwrap();
        let error = AtomicFile::create(&path).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        let message = error.to_string();
        assert!(
            message.starts_with(&path.display().to_string())
                && message.contains("remove it if no other save is running"),
            "{message}"
        );
        // The refused writer must not have removed the first one's temporary file.
        assert!(directory.join(temporary_name("loss.csv")).is_file());
        drop(first);
        assert!(entries(&directory).is_empty());
    }
}
