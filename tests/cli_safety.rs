//! End-to-end runs of the binary under adversarial conditions (issue 13): special files and
//! collisions at the outputs, closed and full streams, signals mid-run, divergence, huge sizes,
//! resumption with other data, concurrent runs, hostile text. Each checks the exit status, the one
//! line on stderr, and that no file was lost or left behind.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{
    TWELVE_NAMES, assert_fails, microgpt, run_microgpt, scratch_directory, stderr, temporary_files,
    train_on_names, with_names,
};

/// [`train_on_names`] writing `model.safetensors` unless `extra` gives an `--out`.
fn train(directory: &Path, extra: &[&str]) -> Output {
    let out: &[&str] = if extra.contains(&"--out") {
        &[]
    } else {
        &["--out", "model.safetensors"]
    };
    train_on_names(directory, &[out, extra].concat())
}

fn spawn(directory: &Path, arguments: &[&str]) -> Child {
    Command::new(microgpt())
        .args(arguments)
        .current_dir(directory)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Reads `child`'s stderr until a line contains `marker`; returns what was read and the reader.
fn wait_for_line(
    child: &mut Child,
    marker: &str,
) -> (String, BufReader<std::process::ChildStderr>) {
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains(marker) {
            return (seen, reader);
        }
        assert!(Instant::now() < deadline, "no {marker:?} in:\n{seen}");
    }
}

#[test]
fn a_device_at_out_is_refused_and_left_as_it_was() {
    let directory = with_names("device-out", TWELVE_NAMES);
    // A private character device with /dev/null's numbers, never /dev/null itself.
    let made = Command::new("mknod")
        .args([directory.join("device").to_str().unwrap(), "c", "1", "3"])
        .status()
        .is_ok_and(|status| status.success());
    let special = if made {
        "a device"
    } else {
        eprintln!("mknod failed (not root?): testing a FIFO at --out instead of a device");
        assert!(
            Command::new("mkfifo")
                .arg(directory.join("device"))
                .status()
                .unwrap()
                .success()
        );
        "a FIFO"
    };
    let output = train(&directory, &["--steps", "2", "--out", "device"]);
    assert_fails(&output, 2, "is not a regular file");
    assert!(stderr(&output).contains(special), "{}", stderr(&output));
    use std::os::unix::fs::FileTypeExt;
    let kind = fs::metadata(directory.join("device")).unwrap().file_type();
    assert!(
        kind.is_char_device() || kind.is_fifo(),
        "the special file was replaced"
    );
    for written in ["device.csv", "device.svg"] {
        assert!(!directory.join(written).exists(), "{written} was written");
    }
    assert!(temporary_files(&directory).is_empty());
}

#[test]
fn outputs_that_are_inputs_or_each_other_are_refused_before_training() {
    let directory = support::trained("collisions", TWELVE_NAMES);
    fs::write(directory.join("d.txt"), TWELVE_NAMES).unwrap();
    fs::write(directory.join("names.csv"), TWELVE_NAMES).unwrap();
    fs::hard_link(directory.join("d.txt"), directory.join("link.safetensors")).unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--data", "d.txt", "--out", "d.txt"],
            "same file as the data",
        ),
        (
            &["--data", "names.csv", "--out", "names.safetensors"],
            "same file as the data",
        ),
        (
            &["--data", "d.txt", "--out", "link.safetensors"],
            "same file as the data",
        ),
        (
            &["--data", "d.txt", "--out", "run.csv"],
            "would both be written",
        ),
    ];
    for (arguments, expected) in cases {
        let output = run_microgpt(
            &directory,
            &[&["train", "--steps", "2"][..], arguments].concat(),
        );
        assert_fails(&output, 2, expected);
        assert_eq!(
            fs::read_to_string(directory.join("d.txt")).unwrap(),
            TWELVE_NAMES
        );
        assert_eq!(
            fs::read_to_string(directory.join("names.csv")).unwrap(),
            TWELVE_NAMES
        );
    }
    // The checkpoint being resumed may be replaced by the run's own checkpoint (in place), but
    // not by its CSV.
    let output = train(
        &directory,
        &[
            "--resume",
            "model.safetensors",
            "--steps",
            "31",
            "--out",
            "model.csv",
        ],
    );
    assert!(!output.status.success());
    // An unwritable directory (even for root) fails in a second, before training.
    let output = train(
        &directory,
        &["--steps", "100000", "--out", "/proc/microgpt.safetensors"],
    );
    assert_fails(&output, 2, "cannot write the checkpoint");
    assert!(temporary_files(&directory).is_empty());
}

#[test]
fn the_run_never_writes_to_tmpdir_and_removes_stale_temporary_files() {
    let directory = support::trained("tmpdir", TWELVE_NAMES);
    // A process number above any pid_max: its process is certainly gone.
    let stale = directory.join(".model.safetensors.tmp-999999999");
    fs::write(&stale, "half a checkpoint").unwrap();
    let output = Command::new(microgpt())
        .args([
            "train",
            "--data",
            "names.txt",
            "--steps",
            "3",
            "--samples",
            "0",
        ])
        .args(["--out", "model.safetensors"])
        .current_dir(&directory)
        .env("TMPDIR", directory.join("no-such-directory"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stale.exists(), "the stale temporary file is still there");
    assert!(
        stderr(&output).contains("left by an interrupted run"),
        "{}",
        stderr(&output)
    );
    assert!(temporary_files(&directory).is_empty());
}

#[test]
fn closed_and_full_stdout() {
    let directory = support::trained("streams", TWELVE_NAMES);
    // The reader goes away at once: every command ends quietly, without a panic.
    for arguments in [
        &[
            "sample",
            "--model",
            "model.safetensors",
            "--num-samples",
            "100000",
        ][..],
        &["info", "--model", "model.safetensors"],
        &[
            "eval",
            "--model",
            "model.safetensors",
            "--data",
            "names.txt",
        ],
        &[
            "bench",
            "--workloads",
            "sample",
            "--repeats",
            "1",
            "--samples",
            "5",
            "--scalar-steps",
            "0",
        ],
    ] {
        let mut child = spawn(&directory, arguments);
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{arguments:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    }
    // `train | head -1`: the run goes on and saves its checkpoint.
    let mut child = spawn(
        &directory,
        &[
            "train",
            "--data",
            "names.txt",
            "--steps",
            "20",
            "--out",
            "piped.safetensors",
        ],
    );
    let mut first = [0u8; 4];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let info = run_microgpt(&directory, &["info", "--model", "piped.safetensors"]);
    assert!(String::from_utf8_lossy(&info.stdout).contains("step: 20"));
    // A full disk is a failure: status 1, one line.
    for arguments in [
        &["sample", "--model", "model.safetensors"][..],
        &["info", "--model", "model.safetensors"],
    ] {
        let output = Command::new(microgpt())
            .args(arguments)
            .current_dir(&directory)
            .stdout(fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        assert_fails(&output, 1, "cannot write to stdout");
    }
    assert!(temporary_files(&directory).is_empty());
}

#[test]
fn a_sigint_mid_run_saves_a_checkpoint_that_resumes_exactly() {
    let directory = with_names("sigint", TWELVE_NAMES);
    let common = [
        "train",
        "--data",
        "names.txt",
        "--steps",
        "3000",
        "--samples",
        "3",
    ];
    let whole = run_microgpt(
        &directory,
        &[&common[..], &["--out", "whole.safetensors"]].concat(),
    );
    assert!(whole.status.success(), "{}", stderr(&whole));

    let mut child = spawn(
        &directory,
        &[&common[..], &["--out", "cut.safetensors"]].concat(),
    );
    // Progress lines come every 300 steps: interrupt after the first.
    let (_, mut reader) = wait_for_line(&mut child, "step 300/3000");
    signal(&child, "INT");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    let line = rest
        .lines()
        .find(|l| l.contains("SIGINT: stopped after step"))
        .unwrap_or_else(|| panic!("{rest}"));
    let step: usize = line
        .split("step ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(step < 3000, "{line}");
    assert!(line.contains("--resume cut.safetensors"), "{line}");
    assert!(temporary_files(&directory).is_empty());

    let resumed = train(
        &directory,
        &[
            "--resume",
            "cut.safetensors",
            "--samples",
            "3",
            "--out",
            "cut.safetensors",
        ],
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        fs::read(directory.join("whole.safetensors")).unwrap()
            == fs::read(directory.join("cut.safetensors")).unwrap(),
        "the interrupted and resumed run differs from the whole one"
    );
    // The resumed CSV keeps the rows before the interruption: the same as the whole run's.
    assert_eq!(
        fs::read_to_string(directory.join("whole.csv")).unwrap(),
        fs::read_to_string(directory.join("cut.csv")).unwrap()
    );
    let samples = |output: &Output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.starts_with("sample"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(samples(&whole), samples(&resumed));
}

#[test]
fn a_second_sigterm_quits_at_once_leaving_the_previous_files_and_no_temporary_file() {
    let directory = support::trained("sigterm-twice", TWELVE_NAMES);
    let before = fs::read(directory.join("model.safetensors")).unwrap();
    let csv_before = fs::read(directory.join("model.csv")).unwrap();
    // A wide, deep model in f64: a step takes a few hundred milliseconds even on a quiet machine,
    // so both signals arrive within it (a fast step would finish and save between them).
    let mut child = spawn(
        &directory,
        &[
            "train",
            "--data",
            "names.txt",
            "--steps",
            "10",
            "--n-embd",
            "512",
            "--n-layer",
            "4",
            "--batch-size",
            "16",
            "--lr",
            "0.0001",
            "--out",
            "model.safetensors",
            "--samples",
            "0",
        ],
    );
    let (_, mut reader) = wait_for_line(&mut child, "step 1/10");
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(30));
    signal(&child, "TERM");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143), "{rest}");
    assert!(rest.contains("quitting without saving"), "{rest}");
    assert_eq!(
        fs::read(directory.join("model.safetensors")).unwrap(),
        before
    );
    assert_eq!(fs::read(directory.join("model.csv")).unwrap(), csv_before);
    assert!(temporary_files(&directory).is_empty());
}

#[test]
fn a_second_run_on_the_same_out_is_refused() {
    let directory = support::trained("lock", TWELVE_NAMES);
    let mut first = spawn(
        &directory,
        &[
            "train",
            "--data",
            "names.txt",
            "--steps",
            "100000000",
            "--out",
            "busy.safetensors",
        ],
    );
    let (_, reader) = wait_for_line(&mut first, "step ");
    let second = train(&directory, &["--steps", "2", "--out", "busy.safetensors"]);
    assert_fails(
        &second,
        2,
        "another microgpt run is writing busy.safetensors",
    );
    signal(&first, "INT");
    drop(reader);
    let _ = first.wait();
}

#[test]
fn huge_sizes_are_refused_or_clamped_before_allocating() {
    let directory = support::trained("sizes", TWELVE_NAMES);
    let output = train(&directory, &["--n-embd", "1000000", "--n-head", "1"]);
    assert_fails(&output, 2, "needs about");
    assert!(
        stderr(&output).contains("--max-memory"),
        "{}",
        stderr(&output)
    );
    let output = train(
        &directory,
        &[
            "--steps",
            "2",
            "--batch-size",
            "100000",
            "--out",
            "wide.safetensors",
            "--samples",
            "0",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--batch-size 100000 is more than the 11 training documents"),
        "{}",
        stderr(&output)
    );
    // A checkpoint whose metadata says batch_size = 10^12 resumes with the batch clamped.
    let patched = patch_metadata(
        &directory.join("model.safetensors"),
        "\"batch_size\":\"1\"",
        "\"batch_size\":\"1000000000000\"",
    );
    fs::write(directory.join("huge.safetensors"), patched).unwrap();
    let output = train(
        &directory,
        &[
            "--resume",
            "huge.safetensors",
            "--steps",
            "32",
            "--out",
            "huge.safetensors",
            "--samples",
            "0",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the checkpoint's batch_size 1000000000000"),
        "{}",
        stderr(&output)
    );
    // A billion names stream: the first thousand arrive at once and the pipe closes quietly.
    let mut child = spawn(
        &directory,
        &[
            "sample",
            "--model",
            "model.safetensors",
            "--num-samples",
            "1000000000",
        ],
    );
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..1000 {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0);
    }
    drop(reader);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// The checkpoint at `path` with `from` replaced by `to` in its JSON header.
fn patch_metadata(path: &Path, from: &str, to: &str) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + length].to_vec()).unwrap();
    let patched = header.replace(from, to);
    assert_ne!(patched, header, "{from} not in the header");
    let mut out = (patched.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(patched.as_bytes());
    out.extend_from_slice(&bytes[8 + length..]);
    out
}

#[test]
fn resume_is_guarded_against_other_data_and_keeps_the_loss_rows() {
    let directory = support::trained("resume-guard", TWELVE_NAMES);
    fs::write(directory.join("other.txt"), "emma\nava\nmia\n").unwrap();
    let output = run_microgpt(
        &directory,
        &[
            "train",
            "--data",
            "other.txt",
            "--resume",
            "model.safetensors",
            "--steps",
            "40",
            "--out",
            "model.safetensors",
        ],
    );
    assert_fails(
        &output,
        2,
        "is not the data of the run in model.safetensors",
    );
    assert!(
        stderr(&output).contains("3 documents") && stderr(&output).contains("12 documents"),
        "{}",
        stderr(&output)
    );
    // Resumed in place: the CSV has every row from step 1.
    let csv_before = fs::read_to_string(directory.join("model.csv")).unwrap();
    let output = train(
        &directory,
        &[
            "--resume",
            "model.safetensors",
            "--steps",
            "40",
            "--samples",
            "0",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let csv = fs::read_to_string(directory.join("model.csv")).unwrap();
    assert_eq!(csv.lines().count(), 41);
    assert!(csv.starts_with(&csv_before[..csv_before.rfind("30,").unwrap()]));
    // A checkpoint saved before fingerprints resumes, saying it cannot check.
    let old = patch_metadata(
        &directory.join("model.safetensors"),
        "\"data_sha256\"",
        "\"old_sha256\"",
    );
    fs::write(directory.join("old.safetensors"), old).unwrap();
    let output = train(
        &directory,
        &[
            "--resume",
            "old.safetensors",
            "--steps",
            "41",
            "--out",
            "old.safetensors",
            "--samples",
            "0",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stderr(&output)
            .matches("records no data fingerprint")
            .count(),
        1
    );
}

#[test]
fn messages_name_the_source_and_a_fix_that_works() {
    let directory = support::trained("messages", TWELVE_NAMES);
    let output = train(
        &directory,
        &["--resume", "model.safetensors", "--stop-after", "10"],
    );
    assert_fails(&output, 2, "--stop-after 10 is not past the run's step 30");
    let patched = patch_metadata(
        &directory.join("model.safetensors"),
        "\"lr\":\"0.01\"",
        "\"lr\":\"-1\"",
    );
    fs::write(directory.join("bad-lr.safetensors"), patched).unwrap();
    let output = train(
        &directory,
        &["--resume", "bad-lr.safetensors", "--out", "x.safetensors"],
    );
    assert_fails(&output, 2, "the checkpoint's lr must be a positive number");
    let empty = scratch_directory("messages-empty");
    assert_fails(&run_microgpt(&empty, &["sample"]), 2, "train a model first");
    let bench = run_microgpt(
        &empty,
        &[
            "bench",
            "--workloads",
            "sample",
            "--repeats",
            "1",
            "--samples",
            "2",
            "--scalar-steps",
            "0",
        ],
    );
    assert!(bench.status.success());
    assert!(
        stderr(&bench).contains("made-up names"),
        "{}",
        stderr(&bench)
    );
}

#[test]
fn a_bom_crlf_and_control_characters_are_cleaned_or_escaped() {
    let directory = scratch_directory("hygiene");
    fs::write(directory.join("crlf.txt"), "\u{feff}emma\r\nava\r\nmia\r\n").unwrap();
    let output = run_microgpt(
        &directory,
        &[
            "train",
            "--data",
            "crlf.txt",
            "--steps",
            "2",
            "--samples",
            "0",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("vocab size: 6"),
        "e, m, a, v, i and BOS: no byte-order mark and no CR in the vocabulary"
    );
    assert_eq!(stderr(&output).matches("byte-order mark").count(), 1);
    // An escape character in the data reaches the vocabulary; printed, it is escaped.
    fs::write(
        directory.join("escape.txt"),
        "\u{1b}\u{1b}\u{1b}\n\u{1b}a\n".repeat(20),
    )
    .unwrap();
    let output = run_microgpt(
        &directory,
        &[
            "train",
            "--data",
            "escape.txt",
            "--steps",
            "30",
            "--samples",
            "20",
            "--out",
            "escape.safetensors",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!output.stdout.contains(&0x1b), "a raw escape on stdout");
    for arguments in [
        &["info", "--model", "escape.safetensors"][..],
        &["sample", "--model", "escape.safetensors"],
    ] {
        let output = run_microgpt(&directory, arguments);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            !output.stdout.contains(&0x1b),
            "{arguments:?}: a raw escape on stdout"
        );
    }
}

#[test]
fn save_every_keeps_the_checkpoint_and_the_loss_rows_through_a_kill_9() {
    let directory = with_names("save-every", TWELVE_NAMES);
    // Enough steps for the kill to land mid-run; progress lines come every 500.
    let common = [
        "train",
        "--data",
        "names.txt",
        "--steps",
        "5000",
        "--batch-size",
        "8",
        "--save-every",
        "100",
        "--samples",
        "0",
    ];
    let mut child = spawn(
        &directory,
        &[&common[..], &["--out", "model.safetensors"]].concat(),
    );
    let (_, reader) = wait_for_line(&mut child, "step 500/5000");
    signal(&child, "KILL");
    drop(reader);
    let _ = child.wait();
    let step = saved_step(&directory, "model.safetensors");
    assert!(
        (100..5000).contains(&step) && step.is_multiple_of(100),
        "step {step}"
    );
    // The CSV was saved with the checkpoint (just before it): every row up to its step is there.
    let csv = fs::read_to_string(directory.join("model.csv")).unwrap();
    assert!(
        csv.lines().count() > step,
        "{} rows for step {step}",
        csv.lines().count() - 1
    );

    // The next run removes whatever the kill left and continues from the periodic save, to the
    // same checkpoint and the same rows as a run that was never killed.
    let stop = (step + 50).to_string();
    let resumed = train(
        &directory,
        &[
            "--resume",
            "model.safetensors",
            "--steps",
            "5000",
            "--stop-after",
            &stop,
            "--samples",
            "0",
        ],
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        !stderr(&resumed).contains("has loss rows up to"),
        "{}",
        stderr(&resumed)
    );
    let whole = run_microgpt(
        &directory,
        &[
            &common[..],
            &["--stop-after", &stop, "--out", "whole.safetensors"],
        ]
        .concat(),
    );
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert_eq!(
        fs::read_to_string(directory.join("model.csv")).unwrap(),
        fs::read_to_string(directory.join("whole.csv")).unwrap(),
        "the resumed CSV's rows differ from those of the run that was never killed"
    );
    assert!(
        fs::read(directory.join("model.safetensors")).unwrap()
            == fs::read(directory.join("whole.safetensors")).unwrap(),
        "the resumed checkpoint differs from that of the run that was never killed"
    );
    assert!(temporary_files(&directory).is_empty());
}

/// The step of the optimizer state in a checkpoint, as `info` reports it.
fn saved_step(directory: &Path, checkpoint: &str) -> usize {
    let info = run_microgpt(directory, &["info", "--model", checkpoint]);
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    info.lines()
        .find_map(|line| line.strip_prefix("step: "))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{info}"))
}

#[test]
fn a_damaged_optimizer_state_cannot_be_resumed_but_its_weights_start_a_new_run() {
    let directory = support::trained("damaged-adam", TWELVE_NAMES);
    let copy_with = |name: &str, from: &str, to: &str| {
        let patched = patch_metadata(&directory.join("model.safetensors"), from, to);
        fs::write(directory.join(name), patched).unwrap();
    };
    let resume = |checkpoint: &str| {
        train(
            &directory,
            &[
                "--resume",
                checkpoint,
                "--steps",
                "40",
                "--out",
                "resumed.safetensors",
            ],
        )
    };
    // One moment renamed (same length, so the header stays valid): the optimizer state is
    // incomplete, the weights are whole.
    copy_with("damaged.safetensors", "\"adam.m.wte\"", "\"adam.x.wte\"");
    let output = resume("damaged.safetensors");
    assert_fails(&output, 2, "optimizer state is incomplete");
    assert!(
        stderr(&output).contains("--init damaged.safetensors"),
        "{}",
        stderr(&output)
    );
    assert!(!directory.join("resumed.safetensors").exists());

    // The advice works: --init reads the weights only.
    let output = train(
        &directory,
        &[
            "--init",
            "damaged.safetensors",
            "--steps",
            "5",
            "--samples",
            "2",
            "--out",
            "new.safetensors",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(saved_step(&directory, "new.safetensors"), 5);
    // So do sampling and info, which need no optimizer state.
    let sample = run_microgpt(&directory, &["sample", "--model", "damaged.safetensors"]);
    assert!(sample.status.success(), "{}", stderr(&sample));
    let info = run_microgpt(&directory, &["info", "--model", "damaged.safetensors"]);
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(
        String::from_utf8_lossy(&info.stdout)
            .contains("cannot --resume; --init starts from its weights"),
        "{}",
        String::from_utf8_lossy(&info.stdout)
    );
    // Damaged weights get no such advice, as --init would fail on them too.
    copy_with("no-weights.safetensors", "\"lm_head\"", "\"lm_xead\"");
    let output = resume("no-weights.safetensors");
    assert_fails(&output, 2, "has no tensor \"lm_head\"");
    assert!(!stderr(&output).contains("--init"), "{}", stderr(&output));
    assert!(temporary_files(&directory).is_empty());
}

/// A tmpfs mounted on a directory while the test runs, unmounted however the test ends.
struct Tmpfs {
    directory: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's notation: `64k`) on `directory`; None where this process
    /// may not mount (not root, or a container without the capability).
    fn mount(directory: &Path, size: &str) -> Option<Self> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(directory)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| Tmpfs {
            directory: directory.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.directory).status();
    }
}

#[test]
fn a_disk_that_fills_during_the_save_fails_with_one_line_and_keeps_the_previous_files() {
    let directory = with_names("full-disk", TWELVE_NAMES);
    let disk = directory.join("disk");
    fs::create_dir(&disk).unwrap();
    let Some(_mounted) = Tmpfs::mount(&disk, "64k") else {
        // Most machines may not mount: skipping is said on the terminal (past the test harness's
        // capture of eprintln!), and a machine that must run the test says so.
        assert!(
            std::env::var_os("MICROGPT_REQUIRE_TMPFS").is_none(),
            "MICROGPT_REQUIRE_TMPFS is set but a tmpfs cannot be mounted on {}",
            disk.display()
        );
        let _ = writeln!(
            std::io::stderr(),
            "skipped: cannot mount a tmpfs (needs root); the full-disk test did not run"
        );
        return;
    };
    // A small previous run (about 14 kB of files) fits; the default model's checkpoint (about
    // 95 kB with its optimizer state) does not.
    let previous = train(
        &directory,
        &[
            "--n-embd",
            "4",
            "--n-head",
            "1",
            "--steps",
            "2",
            "--samples",
            "0",
            "--out",
            "disk/x.safetensors",
        ],
    );
    assert!(previous.status.success(), "{}", stderr(&previous));
    let before: Vec<(String, Vec<u8>)> = ["x.safetensors", "x.csv", "x.svg"]
        .into_iter()
        .map(|name| (name.to_string(), fs::read(disk.join(name)).unwrap()))
        .collect();

    let output = train(
        &directory,
        &[
            "--steps",
            "20",
            "--samples",
            "0",
            "--out",
            "disk/x.safetensors",
        ],
    );
    assert_fails(&output, 1, "disk/x.safetensors");
    assert!(
        stderr(&output).contains("No space left on device"),
        "{}",
        stderr(&output)
    );
    for (name, bytes) in before {
        assert!(
            fs::read(disk.join(&name)).unwrap() == bytes,
            "{name} changed"
        );
    }
    assert!(
        temporary_files(&disk).is_empty(),
        "{:?}",
        temporary_files(&disk)
    );
}
