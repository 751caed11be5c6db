//! Where the default dataset lives, and fetching it when it is missing.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use crate::defaults;
use crate::download;
use crate::error::Result;
use crate::stream::note;

/// The environment variable that points the download of names.txt elsewhere (tests use a local
/// server).
pub const NAMES_URL_VARIABLE: &str = "MICROGPT_NAMES_URL";

/// The data file `given` (`--data`), or the default dataset, downloaded if missing.
pub fn path_or_default(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let path = PathBuf::from(defaults::DATA);
    ensure_default_dataset(&path)?;
    Ok(path)
}

/// Makes sure the default dataset exists, downloading names.txt as microgpt.py does when it is
/// missing. Other paths are the user's to provide.
fn ensure_default_dataset(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let url = std::env::var(NAMES_URL_VARIABLE).unwrap_or_else(|_| download::NAMES_URL.to_string());
    note!(
        "{} is missing: downloading names.txt from {url}",
        path.display()
    );
    Ok(download::download_names(
        &url,
        path,
        io::stderr().is_terminal(),
    )?)
}
