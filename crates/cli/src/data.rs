//! Reading a dataset: one document per line, as microgpt.py reads its `input.txt`.

use std::io::{self, IsTerminal};
use std::path::Path;

use crate::download;
use crate::error::{CliError, Result};

/// Where `train` looks for data when `--data` is not given.
pub const DEFAULT_DATA: &str = "data/names.txt";

/// The environment variable that points the download of names.txt elsewhere (tests use a local
/// server).
pub const NAMES_URL_VARIABLE: &str = "MICROGPT_NAMES_URL";

/// The non-blank lines of `path`, trimmed.
pub fn read_documents(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => CliError::input(format!(
            "data file {} not found: pass --data FILE with one document per line",
            path.display()
        )),
        _ => CliError::input(format!("cannot read data file {}: {error}", path.display())),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::input(format!("data file {} is not UTF-8 text", path.display())))?;
    let documents: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if documents.is_empty() {
        return Err(CliError::input(format!(
            "data file {} has no documents: it is empty or holds only blank lines",
            path.display()
        )));
    }
    Ok(documents)
}

/// Makes sure the default dataset exists, downloading names.txt as microgpt.py does when it is
/// missing. Other paths are the user's to provide.
pub fn ensure_default_dataset(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let url = std::env::var(NAMES_URL_VARIABLE).unwrap_or_else(|_| download::NAMES_URL.to_string());
    eprintln!(
        "{} is missing: downloading names.txt from {url}",
        path.display()
    );
    download::download_names(&url, path, io::stderr().is_terminal())
        .map_err(|error| CliError::input(error.to_string()))
}
