//! The data fingerprint a checkpoint records, so that `--resume` continues on the run's data.

use std::collections::BTreeMap;
use std::path::Path;

use crate::corpus::Fingerprint;
use crate::error::{CliError, Result};
use crate::stream::{escaped, note};

use super::start::Loaded;

/// The metadata entries of the data fingerprint.
const DATA_DOCUMENTS: &str = "data_documents";
const DATA_SHA256: &str = "data_sha256";

/// Adds the fingerprint of the run's data to a checkpoint's metadata.
pub fn record(metadata: &mut BTreeMap<String, String>, fingerprint: &Fingerprint) {
    metadata.insert(
        DATA_DOCUMENTS.to_string(),
        fingerprint.documents.to_string(),
    );
    metadata.insert(DATA_SHA256.to_string(), fingerprint.sha256.clone());
}

/// `--resume` must be given the data the run was trained on: other data would silently continue a
/// different run. Checkpoints saved before fingerprints were recorded resume unchecked, with a note.
pub fn check(loaded: &Loaded, data: &Fingerprint, data_path: &Path) -> Result<()> {
    let metadata = &loaded.checkpoint.metadata;
    let recorded = metadata
        .get(DATA_DOCUMENTS)
        .zip(metadata.get(DATA_SHA256))
        .map(|(documents, sha256)| (documents.as_str(), sha256.as_str()));
    let Some((documents, sha256)) = recorded else {
        note!(
            "note: {} records no data fingerprint (it was saved by an older microgpt): --data {} cannot be checked against the run's data",
            loaded.path.display(),
            data_path.display()
        );
        return Ok(());
    };
    if documents == data.documents.to_string() && sha256 == data.sha256 {
        return Ok(());
    }
    Err(CliError::input(format!(
        "--data {} ({}) is not the data of the run in {} ({} documents, sha256 {}); pass the run's data file, or use --init to train its weights on new data",
        data_path.display(),
        short(data),
        loaded.path.display(),
        escaped(documents),
        escaped(&sha256.chars().take(12).collect::<String>())
    )))
}

fn short(fingerprint: &Fingerprint) -> String {
    format!(
        "{} documents, sha256 {}",
        fingerprint.documents,
        &fingerprint.sha256[..12]
    )
}
