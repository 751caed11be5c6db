//! Writing a file atomically: readers see either the old file or the complete new one, never a
//! half-written file, even if the program is killed mid-write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of concurrent writes from one process.
static NEXT_TEMP_ID: AtomicU64 = AtomicU64::new(0);

/// Writes `path` by letting `write` fill a temporary file in the same directory, then flushing it,
/// syncing it to disk and renaming it over `path`.
///
/// The rename is atomic because both files are in the same directory (hence on the same file
/// system). If anything fails, the temporary file is removed and an existing `path` is left
/// untouched. Errors keep their [`io::ErrorKind`] and their message starts with `path`.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let with_path =
        |error: io::Error| io::Error::new(error.kind(), format!("{}: {error}", path.display()));
    let temp = temp_path(path).map_err(with_path)?;
    let result = write_and_rename(&temp, path, write);
    if result.is_err() {
        // The temporary file may not exist (creating it may be what failed); nothing to report then.
        let _ = fs::remove_file(&temp);
    }
    result.map_err(with_path)
}

/// `dir/.name.tmp-<pid>-<n>` for `dir/name`: hidden, and unique per process and call.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let id = NEXT_TEMP_ID.fetch_add(1, Ordering::Relaxed);
    let temp_name = format!(
        ".{}.tmp-{}-{id}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(path.with_file_name(temp_name))
}

fn write_and_rename(
    temp: &Path,
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    // `create_new` never follows or reuses a file that is already there.
    let file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    let mut out = BufWriter::new(file);
    write(&mut out)?;
    out.flush()?;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, path)?;
    sync_directory(path);
    Ok(())
}

/// Makes the rename itself durable. Best effort: the new content is already complete and in place,
/// and some file systems do not support syncing a directory.
fn sync_directory(path: &Path) {
    #[cfg(unix)]
    if let Some(directory) = path.parent() {
        let directory = if directory.as_os_str().is_empty() {
            Path::new(".")
        } else {
            directory
        };
        if let Ok(directory) = File::open(directory) {
            let _ = directory.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory for one test.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("microgpt-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_the_content_and_leaves_only_the_target() {
        let dir = scratch_dir("content");
        let path = dir.join("out.txt");
        write_atomically(&path, |out| out.write_all(b"first\nsecond")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first\nsecond");
        // Overwriting replaces the whole content (a shorter file leaves no tail of the old one).
        write_atomically(&path, |out| out.write_all(b"x")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
        assert_eq!(
            entries(&dir),
            ["out.txt"],
            "a temporary file was left behind"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_writer_leaves_the_target_untouched_and_no_temp_file() {
        let dir = scratch_dir("failing");
        let path = dir.join("out.txt");
        fs::write(&path, b"old content").unwrap();
        let error = write_atomically(&path, |out| {
            out.write_all(b"partial new content")?;
            out.flush()?; // make sure some bytes really reached the temporary file
            Err(io::Error::other("writer failed"))
        })
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Other);
        assert!(error.to_string().contains("writer failed"), "{error}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"old content");
        assert_eq!(
            entries(&dir),
            ["out.txt"],
            "the temporary file was not removed"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = scratch_dir("missing");
        let path = dir.join("no-such-directory").join("out.txt");
        let error = write_atomically(&path, |out| out.write_all(b"data")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(
            error.to_string().starts_with(&path.display().to_string()),
            "{error}"
        );
        assert_eq!(entries(&dir), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_path_without_a_file_name_is_rejected() {
        let error = write_atomically(Path::new("/"), |_| Ok(())).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}
