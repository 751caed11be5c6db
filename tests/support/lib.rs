//! Helpers shared by the workspace's cross-crate tests and benchmarks.

use std::path::PathBuf;

/// The names dataset, looked up in `data/names.txt` and then `../shared/data/names.txt`.
///
/// Returns `None` when neither exists, so that tests needing the real data can skip with a message
/// instead of failing on a machine without it.
pub fn names_txt() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        root.join("data/names.txt"),
        root.join("../shared/data/names.txt"),
    ]
    .into_iter()
    .find(|path| path.is_file())
}
