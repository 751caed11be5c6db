//! Where the workspace's tests find the real names dataset, and the one rule for a test that
//! needs it: names.txt is not committed, so without it such a test fails under CI (the `CI`
//! variable set: CI's script provides the file) and is skipped elsewhere with a `skipped:` line
//! that the test harness does not swallow.
//!
//! ```
//! let Some(names) = testdata::names_txt("my_test") else {
//!     return; // skipped, and said so on stderr
//! };
//! assert!(std::fs::metadata(names).unwrap().len() > 0);
//! ```
//!
//! [`mutation`] holds the byte edits that fuzz tape's and gpt's file loaders; [`Scratch`] is a
//! test's own temporary directory.

pub mod mutation;
mod scratch;

pub use scratch::Scratch;

use std::io::Write;
use std::path::{Path, PathBuf};

/// The places looked in, in order: the workspace's `data/names.txt`, then `../shared/data/`
/// beside the workspace.
fn names_txt_candidates() -> [PathBuf; 2] {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        workspace.join("data/names.txt"),
        workspace.join("../shared/data/names.txt"),
    ]
}

/// The path of names.txt for the test `test`, or `None` after a `skipped: <test>: ...` line on
/// stderr when it is absent.
///
/// # Panics
/// When names.txt is absent and the `CI` environment variable is set: there a missing dataset is a
/// broken setup, not a reason to pass.
pub fn names_txt(test: &str) -> Option<PathBuf> {
    let under_ci = std::env::var_os("CI").is_some();
    find_or_skip(test, &names_txt_candidates(), under_ci)
}

/// The first of `candidates` that is a file; else a panic when `under_ci`, or a `skipped:` line.
fn find_or_skip(test: &str, candidates: &[PathBuf], under_ci: bool) -> Option<PathBuf> {
    if let Some(path) = candidates.iter().find(|path| path.is_file()) {
        return Some(path.clone());
    }
    assert!(
        !under_ci,
        "{test} needs names.txt in data/ or ../shared/data/, and CI must provide it"
    );
    // Written to the process's stderr, not through `eprintln!`, which a passing test's output
    // capture would hide.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: names.txt is not in data/ or ../shared/data/ (see the README)"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_file_is_found_in_the_order_given() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
        let missing = PathBuf::from("/no/such/names.txt");
        let found = find_or_skip("test", &[missing, here.clone()], true);
        assert_eq!(found, Some(here));
    }

    #[test]
    fn a_missing_file_is_skipped_outside_ci() {
        let missing = [PathBuf::from("/no/such/names.txt")];
        // The line it prints names this self-test, so that it is not read as a real test skipped.
        let test = "testdata's own check of the skip (no real test skipped)";
        assert_eq!(find_or_skip(test, &missing, false), None);
    }

    #[test]
    #[should_panic(expected = "CI must provide it")]
    fn a_missing_file_fails_under_ci() {
        find_or_skip("test", &[PathBuf::from("/no/such/names.txt")], true);
    }
}
