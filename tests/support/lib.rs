//! Helpers shared by the workspace's cross-crate tests and benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use testdata::names_txt;

/// The `microgpt` binary of the same build as the running test.
///
/// Cargo only tells a package's own tests where its binaries are, and the binary belongs to the
/// `cli` package; but `cargo test --workspace` builds it into the same target directory as this
/// test (`target/<profile>/`, one level above the test's own `deps/`).
///
/// # Panics
/// If the binary has not been built (run the tests with `cargo test --workspace`).
pub fn microgpt() -> PathBuf {
    let test = std::env::current_exe().expect("the test knows its own path");
    let profile_directory = test
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let binary = profile_directory.join(format!("microgpt{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        binary.display()
    );
    binary
}

/// Runs `microgpt` with `arguments` in `directory` and returns what it printed and its status.
pub fn run_microgpt(directory: &Path, arguments: &[&str]) -> Output {
    Command::new(microgpt())
        .args(arguments)
        .current_dir(directory)
        .env_remove("MICROGPT_NAMES_URL")
        .output()
        .expect("microgpt runs")
}

/// A fresh, empty directory for one test, removed first if a previous run left it behind.
pub fn scratch_directory(name: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("microgpt-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("the temporary directory is writable");
    directory
}

/// The scalar engine's model with the same configuration and weights as `params`: the oracle of the
/// parity tests and the baseline of the benchmarks (the one `microgpt bench` uses).
pub use gpt::scalar_model;

/// 50 names of 3 to 15 characters, the mix of lengths names.txt has: the benchmarks' documents.
pub const NAMES: [&str; 50] = [
    "emma",
    "olivia",
    "ava",
    "isabella",
    "sophia",
    "charlotte",
    "mia",
    "amelia",
    "harper",
    "evelyn",
    "abigail",
    "emily",
    "elizabeth",
    "mila",
    "ella",
    "avery",
    "sofia",
    "camila",
    "aria",
    "scarlett",
    "victoria",
    "madison",
    "luna",
    "grace",
    "chloe",
    "penelope",
    "layla",
    "riley",
    "zoey",
    "nora",
    "lily",
    "eleanor",
    "hannah",
    "lillian",
    "addison",
    "aubrey",
    "ellie",
    "stella",
    "natalie",
    "zoe",
    "leah",
    "hazel",
    "violet",
    "aurora",
    "savannah",
    "audrey",
    "brooklyn",
    "bella",
    "claire",
    "mariaguadalupes",
];
