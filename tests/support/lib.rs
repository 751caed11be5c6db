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

/// A fresh, empty directory for one test, removed when the returned value is dropped.
pub fn scratch_directory(name: &str) -> testdata::Scratch {
    testdata::Scratch::new(name)
}

/// 12 documents in file order: the end-to-end tests' small dataset (the tests that need to know
/// the split pass `--no-shuffle`).
pub const TWELVE_NAMES: &str =
    "emma\nolivia\nava\nisabella\nsophia\ncharlotte\nmia\namelia\nharper\nevelyn\nabigail\nemily\n";

/// A fresh directory for one test holding `names` as `names.txt`.
pub fn with_names(name: &str, names: &str) -> testdata::Scratch {
    let directory = scratch_directory(name);
    std::fs::write(directory.join("names.txt"), names).expect("the scratch directory is writable");
    directory
}

/// `microgpt train --data names.txt` with `extra` arguments, in `directory`.
pub fn train_on_names(directory: &Path, extra: &[&str]) -> Output {
    run_microgpt(
        directory,
        &[&["train", "--data", "names.txt"], extra].concat(),
    )
}

/// A directory holding `names` as `names.txt` and `model.safetensors` trained on it for 30 steps.
pub fn trained(name: &str, names: &str) -> testdata::Scratch {
    let directory = with_names(name, names);
    let extra = [
        "--steps",
        "30",
        "--samples",
        "0",
        "--out",
        "model.safetensors",
    ];
    let output = train_on_names(&directory, &extra);
    assert!(output.status.success(), "{}", stderr(&output));
    directory
}

/// What a run printed on stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a run printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A run that must fail with status `code` and exactly one `error` line on stderr, containing
/// `expected`, without a panic.
pub fn assert_fails(output: &Output, code: i32, expected: &str) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr:\n{message}");
    assert!(
        !message.contains("panicked") && !message.contains("RUST_BACKTRACE"),
        "a panic:\n{message}"
    );
    let errors: Vec<&str> = message
        .lines()
        .filter(|line| line.starts_with("error"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{message}");
    assert!(
        errors[0].contains(expected),
        "{expected:?} not in {:?}",
        errors[0]
    );
}

/// A run that must fail as bad input: [`assert_fails`] with status 2.
pub fn assert_bad_input(output: &Output, expected: &str) {
    assert_fails(output, 2, expected);
}

/// The temporary files in `directory` that a run left behind: the CLI's `.<name>.tmp-<pid>` and
/// a library's `.<name>.<random>.tmp`.
pub fn temporary_files(directory: &Path) -> Vec<String> {
    std::fs::read_dir(directory)
        .expect("the directory is readable")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains(".tmp"))
        .collect()
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
