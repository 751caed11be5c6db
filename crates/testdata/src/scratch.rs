//! A directory of one test's own, removed when the test ends.

use std::ops::Deref;
use std::path::Path;

use tempfile::TempDir;

/// An empty directory in the system's temporary directory, named after the test that asked for it
/// (so a listing while tests run says whose it is), and removed with everything in it when this
/// value is dropped, whether the test passed or failed. Tests run as threads of one process, so each
/// needs its own; it reads as a [`Path`].
///
/// ```
/// let directory = testdata::Scratch::new("doc-example");
/// std::fs::write(directory.join("a.txt"), "a").unwrap();
/// let path = directory.to_path_buf();
/// drop(directory);
/// assert!(!path.exists());
/// ```
pub struct Scratch(TempDir);

impl Scratch {
    /// A new directory for the test `name`.
    ///
    /// # Panics
    /// If the temporary directory is not writable: no test can run there.
    pub fn new(name: &str) -> Self {
        let directory = tempfile::Builder::new()
            .prefix(&format!("microgpt-test-{name}-"))
            .tempdir()
            .expect("the temporary directory is writable");
        Scratch(directory)
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}
