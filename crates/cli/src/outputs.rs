//! Every file a run will write, resolved and checked before its first step, so that a bad path
//! fails in a second with one line instead of after hours of training, and so that no output can
//! replace a device, a directory, an input or another output.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use crate::atomic_file::AtomicFile;
use crate::error::{CliError, Result};
use crate::stream::note;

/// A file the run will write, and what it is (for messages: "the checkpoint (--out)").
pub struct Planned<'a> {
    pub what: &'a str,
    pub path: &'a Path,
    /// The input this output may replace: `--resume run.safetensors --out run.safetensors` reads
    /// the checkpoint whole before replacing it, as resuming in place means to.
    pub may_replace: Option<&'a Path>,
}

/// A file the run reads.
pub struct Input<'a> {
    pub what: &'a str,
    pub path: &'a Path,
}

/// Where a path leads: its canonical form (for a file that may not exist yet, its directory's
/// canonical form and its name) and, when it exists, its device and inode, which also catch hard
/// links.
#[derive(PartialEq)]
struct Identity {
    canonical: PathBuf,
    inode: Option<(u64, u64)>,
}

impl Identity {
    fn of(path: &Path) -> Option<Self> {
        let canonical = fs::canonicalize(path).ok().or_else(|| {
            let name = path.file_name()?;
            Some(fs::canonicalize(directory_of(path)).ok()?.join(name))
        })?;
        Some(Identity {
            canonical,
            inode: inode(path),
        })
    }

    fn same_file(&self, other: &Identity) -> bool {
        self.canonical == other.canonical || (self.inode.is_some() && self.inode == other.inode)
    }
}

#[cfg(unix)]
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|meta| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn inode(_: &Path) -> Option<(u64, u64)> {
    None
}

/// The directory a path's file lives in (`.` for a bare name).
pub fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Refuses (exit status 2, one line) any output that exists and is not a regular file, is the same
/// file as an input or as another output, or lies in a missing or unwritable directory; and
/// removes the temporary files that killed runs left beside the outputs.
pub fn check(outputs: &[Planned], inputs: &[Input]) -> Result<()> {
    let inputs: Vec<(&Input, Option<Identity>)> = inputs
        .iter()
        .map(|input| (input, Identity::of(input.path)))
        .collect();
    let mut seen: Vec<(&Planned, Identity)> = Vec::new();
    let mut listings = Listings::default();
    for output in outputs {
        let path = output.path;
        let directory = directory_of(path);
        if path.file_name().is_none() {
            return Err(CliError::input(format!(
                "{} {} names no file; give a file name",
                output.what,
                path.display()
            )));
        }
        if !directory.is_dir() {
            return Err(CliError::input(format!(
                "cannot save {} to {}: directory {} does not exist; create it or choose another --out",
                output.what,
                path.display(),
                directory.display()
            )));
        }
        if let Ok(meta) = fs::metadata(path)
            && !meta.is_file()
        {
            return Err(CliError::input(format!(
                "{} {} exists and is not a regular file ({}); microgpt replaces only regular files: choose another --out",
                output.what,
                path.display(),
                file_type(&meta)
            )));
        }
        let identity = Identity::of(path).ok_or_else(|| {
            CliError::input(format!("cannot resolve {} {}", output.what, path.display()))
        })?;
        for (input, input_identity) in &inputs {
            let replaceable = output
                .may_replace
                .is_some_and(|allowed| Identity::of(allowed).as_ref() == input_identity.as_ref());
            if !replaceable
                && input_identity
                    .as_ref()
                    .is_some_and(|i| i.same_file(&identity))
            {
                return Err(CliError::input(format!(
                    "{} {} is the same file as {} {}: writing it would destroy the input; choose another --out",
                    output.what,
                    path.display(),
                    input.what,
                    input.path.display()
                )));
            }
        }
        if let Some((earlier, _)) = seen.iter().find(|(_, other)| other.same_file(&identity)) {
            return Err(CliError::input(format!(
                "{} and {} would both be written to {}; choose an --out whose .csv and .svg are other files",
                earlier.what,
                output.what,
                path.display()
            )));
        }
        remove_stale_temporaries(path, &mut listings);
        // Creating the temporary file is the one sure test that the directory takes new files.
        AtomicFile::create(path).map_err(|error| {
            CliError::input(format!(
                "cannot write {} in {}: {}; choose another --out",
                output.what,
                directory.display(),
                io::Error::from(error.kind())
            ))
        })?;
        seen.push((output, identity));
    }
    Ok(())
}

fn file_type(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// The file names in the outputs' directories, each directory read once: a run's outputs all lie
/// beside `--out`, and a listing costs a handful of system calls. Only the temporary files of
/// processes that are gone are removed from a directory once listed, and no process that is gone
/// makes new ones, so a listing taken for the first output holds those of the later ones too.
#[derive(Default)]
struct Listings {
    directories: Vec<(PathBuf, Vec<OsString>)>,
    /// Whether processes can be looked up by id (`/proc`), once asked.
    can_look_up: Option<bool>,
}

impl Listings {
    /// The names in `directory`, or `None` when it cannot be read.
    fn names(&mut self, directory: &Path) -> Option<&[OsString]> {
        let index = match self
            .directories
            .iter()
            .position(|(listed, _)| listed == directory)
        {
            Some(index) => index,
            None => {
                let names = fs::read_dir(directory)
                    .ok()?
                    .flatten()
                    .map(|entry| entry.file_name())
                    .collect();
                self.directories.push((directory.to_path_buf(), names));
                self.directories.len() - 1
            }
        };
        Some(&self.directories[index].1)
    }

    fn can_look_up(&mut self) -> bool {
        *self
            .can_look_up
            .get_or_insert_with(|| Path::new("/proc/self").exists())
    }
}

/// Removes `.<name>.tmp-<pid>` files beside `path` whose process is gone (a kill -9 or a power
/// cut during a save), saying so; where processes cannot be looked up, only reports them.
fn remove_stale_temporaries(path: &Path, listings: &mut Listings) {
    let Some(name) = path.file_name() else {
        return;
    };
    let can_look_up = listings.can_look_up();
    let Some(names) = listings.names(directory_of(path)) else {
        return;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    for file_name in names {
        let Some(pid) = file_name
            .to_str()
            .and_then(|file_name| file_name.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // Named as the user named the output (`.x.tmp-1`, not `./.x.tmp-1`).
        let stale_path = path.with_file_name(file_name);
        let alive = pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists();
        if !can_look_up {
            note!(
                "note: {} may be left by an interrupted run; remove it if no other microgpt is running",
                stale_path.display()
            );
        } else if !alive && fs::remove_file(&stale_path).is_ok() {
            note!(
                "note: removed {}, left by an interrupted run (process {pid})",
                stale_path.display()
            );
        }
    }
}

/// Holds an advisory lock on `.<name>.lock` beside the checkpoint while the run lasts, so that a
/// second run writing the same `--out` is refused instead of interleaving its saves. The lock file
/// is left in place: removing it would let a third run lock a fresh file while the second still
/// holds the old one.
pub fn lock(out: &Path) -> Result<File> {
    let name = out
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    let path = out.with_file_name(format!(".{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| CliError::input(format!("cannot lock {}: {error}", path.display())))?;
    match file.try_lock_exclusive() {
        Ok(true) => Ok(file),
        Ok(false) => Err(CliError::input(format!(
            "another microgpt run is writing {} (it holds {}); wait for it to finish or choose another --out",
            out.display(),
            path.display()
        ))),
        Err(error) => Err(CliError::failure(format!(
            "cannot lock {}: {error}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::scratch_dir;

    #[test]
    fn the_stale_temporaries_of_every_output_in_one_directory_are_removed() {
        // The directory is listed once for all the outputs: the later outputs' stale files must
        // still be found, and a live process's file (this one's parent) and other files kept.
        let dir = scratch_dir("outputs", "stale");
        let outputs = [
            dir.join("run.safetensors"),
            dir.join("run.csv"),
            dir.join("run.svg"),
        ];
        // A process number above any pid_max: its process is certainly gone.
        let stale: Vec<PathBuf> = [".run.safetensors", ".run.csv", ".run.svg"]
            .iter()
            .map(|name| dir.join(format!("{name}.tmp-999999999")))
            .collect();
        let live = dir.join(format!(
            ".run.csv.tmp-{}",
            std::os::unix::process::parent_id()
        ));
        let other = dir.join(".run.csv.tmp-notapid");
        for path in stale.iter().chain([&live, &other]) {
            fs::write(path, "left").unwrap();
        }
        let planned: Vec<Planned> = outputs
            .iter()
            .map(|path| Planned {
                what: "an output",
                path,
                may_replace: None,
            })
            .collect();
        check(&planned, &[]).expect("the outputs are writable");
        for path in &stale {
            assert!(!path.exists(), "{} is still there", path.display());
        }
        assert!(live.exists() && other.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
