//! The proof of faithfulness: with `--rng python`, `microgpt train` prints what Karpathy's
//! microgpt.py prints — the same document count, vocabulary, parameter count, last-step loss and
//! the same 20 names — in Karpathy's configuration and in the seed's.
//!
//! The oracle is microgpt.py's own output, recorded in `tests/fixtures/` (see the README there for
//! how it was produced). It needs the real names.txt: without it the test fails under CI and is
//! skipped elsewhere, saying so.

use std::fs;

use support::{names_txt, run_microgpt, scratch_directory};

fn check(block_size: &str, steps: &str, fixture: &str) {
    let Some(names) = names_txt(&format!("python reproduction of {fixture}")) else {
        return;
    };
    let directory = scratch_directory(&format!("python-{block_size}-{steps}"));
    let data = names.to_str().unwrap();
    let arguments = [
        "train",
        "--data",
        data,
        "--rng",
        "python",
        "--block-size",
        block_size,
        "--steps",
        steps,
    ];
    let output = run_microgpt(&directory, &arguments);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = fs::read_to_string(format!(
        "{}/tests/fixtures/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
}

#[test]
fn karpathys_configuration_prints_what_microgpt_py_prints() {
    check("16", "1000", "microgpt_py_block16_1000.txt");
}

#[test]
fn the_seed_configuration_prints_what_microgpt_py_prints() {
    check("8", "500", "microgpt_py_block8_500.txt");
}
