//! The binary's own tests (they also make `cargo test` build it for the workspace's end-to-end
//! tests): every subcommand explains itself, and `--version` works.

use std::process::Command;

fn microgpt(arguments: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(arguments)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[test]
fn every_subcommand_has_help_with_defaults() {
    for (subcommand, flag) in [
        ("train", "--val-fraction"),
        ("sample", "--top-p"),
        ("eval", "--json"),
        ("bench", "--repeats"),
        ("info", "--model"),
    ] {
        let (ok, help) = microgpt(&[subcommand, "--help"]);
        assert!(ok, "{subcommand} --help failed");
        assert!(
            help.contains(flag),
            "{subcommand} --help does not mention {flag}:\n{help}"
        );
        assert!(
            help.contains("default"),
            "{subcommand} --help gives no defaults:\n{help}"
        );
    }
}

#[test]
fn version_prints_the_package_version() {
    let (ok, version) = microgpt(&["--version"]);
    assert!(ok);
    assert_eq!(
        version.trim(),
        format!("microgpt {}", env!("CARGO_PKG_VERSION"))
    );
}
