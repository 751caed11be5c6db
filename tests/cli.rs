//! End-to-end runs of the built `microgpt` binary: the main job, its checkpoint in the other
//! subcommands, exact resumption, and every kind of bad input (exit status 2, one line on stderr,
//! no panic, nothing lost).

use std::fs;
use std::path::Path;
use std::process::Output;

use support::{
    assert_bad_input, run_microgpt, scratch_directory, stderr, stdout, temporary_files,
    train_on_names, with_names,
};

/// Ten names, a blank line and a padded name: loading skips the one and trims the other.
const NAMES: &str = "emma\nolivia\nava\nisabella\nsophia\ncharlotte\nmia\namelia\nharper\nevelyn\n\n  abigail  \nemily\n";

#[test]
fn training_with_no_subcommand_prints_what_microgpt_py_prints_and_saves_everything() {
    let directory = with_names("default-job", NAMES);
    let output = run_microgpt(&directory, &["--data", "names.txt", "--steps", "40"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    // 12 non-blank lines; 17 distinct characters + BOS; 1 layer of width 16 over 18 tokens.
    assert_eq!(lines[0], "num docs: 12");
    assert_eq!(lines[1], "vocab size: 18");
    let expected_params = 18 * 16 + 8 * 16 + 18 * 16 + 4 * 16 * 16 + 2 * 64 * 16;
    assert_eq!(lines[2], format!("num params: {expected_params}"));
    assert!(
        lines[3].starts_with("step   40 /   40 | loss "),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "--- inference (new, hallucinated names) ---");
    assert_eq!(lines.len(), 5 + 20, "20 samples by default:\n{text}");
    assert!(lines[5].starts_with("sample  1: "));
    for file in ["microgpt.safetensors", "microgpt.csv", "microgpt.svg"] {
        assert!(directory.join(file).is_file(), "{file} was not written");
    }
    let csv = fs::read_to_string(directory.join("microgpt.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("step,train_loss,val_loss"));
    assert_eq!(csv.lines().count(), 41, "a row per step");
    // Steps 1 to 40 in order, each with its loss; validation (every 100 steps and at the last one)
    // only on the last row.
    for (index, row) in csv.lines().skip(1).enumerate() {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 3, "{row}");
        assert_eq!(fields[0], (index + 1).to_string(), "{row}");
        assert!(fields[1].parse::<f64>().unwrap().is_finite(), "{row}");
        assert_eq!(fields[2].is_empty(), index + 1 < 40, "{row}");
    }
    // Stderr is not a terminal here: plain progress lines instead of a bar.
    assert!(
        stderr(&output).contains("step 40/40 | loss"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sample_eval_and_info_use_the_checkpoint() {
    let directory = support::trained("subcommands", NAMES);
    let sample = run_microgpt(
        &directory,
        &[
            "sample",
            "--model",
            "model.safetensors",
            "--num-samples",
            "7",
            "--prefix",
            "em",
        ],
    );
    assert!(sample.status.success(), "{}", stderr(&sample));
    let names = stdout(&sample);
    assert_eq!(
        names.lines().count(),
        7,
        "one name per line, nothing else:\n{names}"
    );
    assert!(names.lines().all(|name| name.starts_with("em")), "{names}");
    // The same seed gives the same names.
    let again = run_microgpt(
        &directory,
        &[
            "sample",
            "--model",
            "model.safetensors",
            "--num-samples",
            "7",
            "--prefix",
            "em",
        ],
    );
    assert_eq!(stdout(&again), names);

    let eval = run_microgpt(
        &directory,
        &[
            "eval",
            "--model",
            "model.safetensors",
            "--data",
            "names.txt",
        ],
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
    let text = stdout(&eval);
    let loss: f64 = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("loss ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(loss > 0.0 && loss < 18f64.ln() + 0.5, "{text}");
    let json = run_microgpt(
        &directory,
        &[
            "eval",
            "--model",
            "model.safetensors",
            "--data",
            "names.txt",
            "--json",
        ],
    );
    let json = stdout(&json);
    assert!(
        json.starts_with("{\"loss\": ") && json.contains("\"tokens\": "),
        "{json}"
    );

    let info = run_microgpt(&directory, &["info", "--model", "model.safetensors"]);
    let info = stdout(&info);
    for line in [
        "n_layer: 1",
        "n_embd: 16",
        "block_size: 8",
        "vocab size: 18",
        "step: 30",
    ] {
        assert!(info.contains(line), "{line:?} missing from info:\n{info}");
    }
}

#[test]
fn stopping_and_resuming_gives_the_same_checkpoint_bit_for_bit() {
    let directory = with_names("resume", NAMES);
    let common = [
        "train",
        "--data",
        "names.txt",
        "--steps",
        "200",
        "--eval-every",
        "50",
        "--samples",
        "5",
    ];
    let whole = run_microgpt(
        &directory,
        &[&common[..], &["--out", "whole.safetensors"]].concat(),
    );
    assert!(whole.status.success(), "{}", stderr(&whole));
    let first = run_microgpt(
        &directory,
        &[
            &common[..],
            &["--stop-after", "100", "--out", "half.safetensors"],
        ]
        .concat(),
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let second = train_on_names(
        &directory,
        &[
            "--resume",
            "half.safetensors",
            "--samples",
            "5",
            "--out",
            "resumed.safetensors",
        ],
    );
    assert!(second.status.success(), "{}", stderr(&second));
    // Both halves count against the run's 200 steps, a line every tenth of what each trains.
    let counters = |output: &Output| {
        stderr(output)
            .lines()
            .filter(|line| line.starts_with("step ") && line.contains(" | lr "))
            .map(|line| line.split(' ').nth(1).unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let tenths = |range: std::ops::RangeInclusive<usize>| {
        range
            .step_by(10)
            .map(|step| format!("{step}/200"))
            .collect::<Vec<_>>()
    };
    assert_eq!(counters(&first), tenths(10..=100));
    assert_eq!(counters(&second), tenths(110..=200));
    let whole_bytes = fs::read(directory.join("whole.safetensors")).unwrap();
    // Compared as booleans: a failure should not print two 90 KB byte arrays.
    let resumed_bytes = fs::read(directory.join("resumed.safetensors")).unwrap();
    assert!(
        whole_bytes == resumed_bytes,
        "the resumed checkpoint differs"
    );
    let half_bytes = fs::read(directory.join("half.safetensors")).unwrap();
    assert!(
        whole_bytes != half_bytes,
        "the half-way checkpoint equals the final one"
    );
    // The generator is in the same state too: the same names.
    let names = |output: &Output| {
        stdout(output)
            .lines()
            .filter(|line| line.starts_with("sample"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&whole), names(&second));
}

#[test]
fn bad_data_files_are_reported() {
    let directory = scratch_directory("bad-data");
    assert_bad_input(
        &run_microgpt(&directory, &["train", "--data", "missing.txt"]),
        "missing.txt not found",
    );
    fs::write(directory.join("empty.txt"), "").unwrap();
    assert_bad_input(
        &run_microgpt(&directory, &["train", "--data", "empty.txt"]),
        "has no documents",
    );
    fs::write(directory.join("blank.txt"), "\n   \n\t\n").unwrap();
    assert_bad_input(
        &run_microgpt(&directory, &["train", "--data", "blank.txt"]),
        "has no documents",
    );
    fs::write(directory.join("binary.txt"), [0xff, 0xfe, 0x00]).unwrap();
    assert_bad_input(
        &run_microgpt(&directory, &["train", "--data", "binary.txt"]),
        "not UTF-8",
    );
    fs::create_dir(directory.join("folder")).unwrap();
    assert_bad_input(
        &run_microgpt(&directory, &["train", "--data", "folder"]),
        "cannot read data file",
    );
}

#[test]
fn long_documents_are_truncated_with_one_note() {
    let directory = scratch_directory("long-docs");
    fs::write(
        directory.join("long.txt"),
        "abcdefghijklmnop\nab\nabcdefghijkl\n",
    )
    .unwrap();
    let output = run_microgpt(
        &directory,
        &[
            "train",
            "--data",
            "long.txt",
            "--steps",
            "3",
            "--samples",
            "0",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let notes: Vec<String> = stderr(&output)
        .lines()
        .filter(|line| line.contains("truncated"))
        .map(str::to_string)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("2 documents are longer than block_size 8"),
        "{}",
        notes[0]
    );
}

#[test]
fn out_of_vocabulary_characters_are_named() {
    let directory = support::trained("vocabulary", NAMES);
    let prefix = run_microgpt(
        &directory,
        &["sample", "--model", "model.safetensors", "--prefix", "eX"],
    );
    assert_bad_input(&prefix, "'X' at position 1 is not in the vocabulary");
    fs::write(directory.join("other.txt"), "emma\nzoë\n").unwrap();
    let eval = run_microgpt(
        &directory,
        &[
            "eval",
            "--model",
            "model.safetensors",
            "--data",
            "other.txt",
        ],
    );
    assert_bad_input(&eval, "'z' at position 0 is not in the vocabulary");
}

#[test]
fn broken_checkpoints_are_reported() {
    let directory = support::trained("broken-checkpoints", NAMES);
    let bytes = fs::read(directory.join("model.safetensors")).unwrap();
    fs::write(
        directory.join("truncated.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    fs::write(
        directory.join("text.safetensors"),
        "not a checkpoint at all",
    )
    .unwrap();
    let cases = [
        ("truncated.safetensors", "truncated.safetensors"),
        ("text.safetensors", "text.safetensors"),
        ("absent.safetensors", "absent.safetensors"),
    ];
    for (file, expected) in cases {
        assert_bad_input(
            &run_microgpt(&directory, &["sample", "--model", file]),
            expected,
        );
        assert_bad_input(
            &run_microgpt(&directory, &["info", "--model", file]),
            expected,
        );
        assert_bad_input(
            &run_microgpt(
                &directory,
                &["eval", "--model", file, "--data", "names.txt"],
            ),
            expected,
        );
    }
    // A checkpoint of another width, renamed over the tensors' expectations: the loader names the shape.
    let other = train_on_names(
        &directory,
        &[
            "--steps",
            "1",
            "--samples",
            "0",
            "--n-embd",
            "8",
            "--n-head",
            "2",
            "--out",
            "narrow.safetensors",
        ],
    );
    assert!(other.status.success(), "{}", stderr(&other));
    let narrow = fs::read(directory.join("narrow.safetensors")).unwrap();
    let header_length = u64::from_le_bytes(narrow[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(narrow[8..8 + header_length].to_vec()).unwrap();
    let patched = header.replace("\"n_embd\":\"8\"", "\"n_embd\":\"4\"");
    assert_ne!(patched, header, "the header has the n_embd entry");
    let mut wrong_shape = (patched.len() as u64).to_le_bytes().to_vec();
    wrong_shape.extend_from_slice(patched.as_bytes());
    wrong_shape.extend_from_slice(&narrow[8 + header_length..]);
    fs::write(directory.join("wrong-shape.safetensors"), wrong_shape).unwrap();
    assert_bad_input(
        &run_microgpt(
            &directory,
            &["sample", "--model", "wrong-shape.safetensors"],
        ),
        "shape",
    );
}

#[test]
fn invalid_options_are_refused_before_any_work() {
    let directory = support::trained("options", NAMES);
    let train = |extra: &[&str]| {
        run_microgpt(
            &directory,
            &[
                &["train", "--data", "names.txt", "--out", "new.safetensors"][..],
                extra,
            ]
            .concat(),
        )
    };
    assert_bad_input(
        &train(&["--n-embd", "10", "--n-head", "4"]),
        "n_embd (10) must be divisible by n_head (4)",
    );
    assert_bad_input(&train(&["--temperature", "0"]), "temperature");
    assert_bad_input(&train(&["--temperature=-1"]), "temperature");
    assert_bad_input(&train(&["--steps", "0"]), "--steps must be at least 1");
    assert_bad_input(
        &train(&["--batch-size", "0"]),
        "--batch-size must be at least 1",
    );
    assert_bad_input(&train(&["--val-fraction", "1.5"]), "--val-fraction");
    assert_bad_input(
        &train(&["--init", "model.safetensors", "--n-embd", "32"]),
        "--n-embd 32 conflicts with the checkpoint's 16",
    );
    assert_bad_input(&train(&["--dtype", "f16"]), "f16");
    assert!(
        !directory.join("new.safetensors").exists(),
        "a refused run wrote a checkpoint"
    );

    let sample = |extra: &[&str]| {
        run_microgpt(
            &directory,
            &[&["sample", "--model", "model.safetensors"][..], extra].concat(),
        )
    };
    assert_bad_input(&sample(&["--temperature", "0"]), "temperature");
    assert_bad_input(&sample(&["--top-k", "0"]), "top-k must be at least 1");
    assert_bad_input(&sample(&["--top-p", "0"]), "top-p");
    assert_bad_input(&sample(&["--top-p", "1.5"]), "top-p");
    assert_bad_input(
        &sample(&["--batch-size", "0"]),
        "--batch-size must be at least 1",
    );
    assert_bad_input(&sample(&["--no-such-flag"]), "--no-such-flag");
}

#[test]
fn an_unusable_output_path_keeps_the_old_checkpoint() {
    let directory = support::trained("output-path", NAMES);
    let before = fs::read(directory.join("model.safetensors")).unwrap();
    let missing = train_on_names(
        &directory,
        &["--steps", "5", "--out", "no/such/dir/model.safetensors"],
    );
    assert_bad_input(&missing, "does not exist");
    // A directory where the file should go: the write fails at the end, after training.
    fs::create_dir(directory.join("taken.safetensors")).unwrap();
    let taken = train_on_names(&directory, &["--steps", "5", "--out", "taken.safetensors"]);
    assert_bad_input(&taken, "taken.safetensors");
    assert_eq!(
        fs::read(directory.join("model.safetensors")).unwrap(),
        before
    );
}

#[test]
fn a_diverging_run_stops_with_the_step_keeps_out_and_saves_the_last_healthy_state() {
    let directory = support::trained("nan", NAMES);
    let before = fs::read(directory.join("model.safetensors")).unwrap();
    let csv_before = fs::read(directory.join("model.csv")).unwrap();
    let svg_before = fs::read(directory.join("model.svg")).unwrap();
    // 1e300 overflows to infinities and NaN; 1e6 stays finite and climbs past 3 x ln(vocab).
    for lr in ["1e300", "1e6"] {
        let output = train_on_names(
            &directory,
            &["--steps", "50", "--lr", lr, "--out", "model.safetensors"],
        );
        assert_bad_input(&output, "training diverged at step");
        assert!(
            stderr(&output).contains("model.last-healthy.safetensors"),
            "{}",
            stderr(&output)
        );
        assert_eq!(
            fs::read(directory.join("model.safetensors")).unwrap(),
            before
        );
        // The loss curve of the earlier run too, though rows of this one were already being written.
        assert_eq!(fs::read(directory.join("model.csv")).unwrap(), csv_before);
        assert_eq!(fs::read(directory.join("model.svg")).unwrap(), svg_before);
        assert!(temporary_files(&directory).is_empty());
        // The healthy state is a checkpoint that loads, and a run can start from it.
        let info = run_microgpt(
            &directory,
            &["info", "--model", "model.last-healthy.safetensors"],
        );
        assert!(info.status.success(), "{}", stderr(&info));
    }
}

#[test]
fn offline_without_data_says_how_to_supply_it() {
    let directory = scratch_directory("offline");
    // Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once.
    let output = std::process::Command::new(support::microgpt())
        .args(["train", "--steps", "1"])
        .current_dir(&directory)
        .env("MICROGPT_NAMES_URL", "http://127.0.0.1:9/names.txt")
        .output()
        .unwrap();
    assert_bad_input(&output, "--data");
    assert!(!Path::new(&directory.join("data/names.txt")).exists());
}

#[test]
fn a_missing_default_dataset_is_downloaded_and_verified() {
    let Some(names) = support::names_txt("a_missing_default_dataset_is_downloaded_and_verified")
    else {
        return;
    };
    let body = fs::read(names).unwrap();
    // A one-shot HTTP server on loopback standing in for the makemore repository.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/names.txt", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
    });
    let directory = scratch_directory("download");
    let output = std::process::Command::new(support::microgpt())
        .args(["train", "--steps", "2", "--samples", "1"])
        .current_dir(&directory)
        .env("MICROGPT_NAMES_URL", &url)
        .output()
        .unwrap();
    server.join().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("downloading names.txt"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).starts_with("num docs: 32033\nvocab size: 27\nnum params: 4064\n"));
    assert!(directory.join("data/names.txt").is_file());
}

#[test]
fn f32_runs_and_init_from_a_checkpoint_work_end_to_end() {
    let directory = support::trained("f32-and-init", NAMES);
    let f32_run = train_on_names(
        &directory,
        &[
            "--steps",
            "20",
            "--dtype",
            "f32",
            "--samples",
            "2",
            "--out",
            "small.safetensors",
        ],
    );
    assert!(f32_run.status.success(), "{}", stderr(&f32_run));
    let info = stdout(&run_microgpt(
        &directory,
        &["info", "--model", "small.safetensors"],
    ));
    assert!(info.contains("dtype: f32"), "{info}");
    let sample = run_microgpt(
        &directory,
        &[
            "sample",
            "--model",
            "small.safetensors",
            "--num-samples",
            "3",
        ],
    );
    assert_eq!(stdout(&sample).lines().count(), 3, "{}", stderr(&sample));
    let eval = run_microgpt(
        &directory,
        &[
            "eval",
            "--model",
            "small.safetensors",
            "--data",
            "names.txt",
            "--dtype",
            "f32",
        ],
    );
    assert!(stdout(&eval).starts_with("loss "), "{}", stderr(&eval));

    // --init takes the weights, vocabulary and configuration; a fresh optimizer starts at step 0.
    fs::write(directory.join("subset.txt"), "emma\nava\n").unwrap();
    let init = run_microgpt(
        &directory,
        &[
            "train",
            "--data",
            "subset.txt",
            "--init",
            "model.safetensors",
            "--steps",
            "5",
            "--samples",
            "0",
            "--out",
            "tuned.safetensors",
        ],
    );
    assert!(init.status.success(), "{}", stderr(&init));
    assert!(
        stdout(&init).contains("vocab size: 18"),
        "the checkpoint's vocabulary, not the subset's: {}",
        stdout(&init)
    );
    let info = stdout(&run_microgpt(
        &directory,
        &["info", "--model", "tuned.safetensors"],
    ));
    assert!(info.contains("step: 5"), "{info}");
}

#[test]
fn bench_prints_a_table_and_json() {
    let directory = scratch_directory("bench");
    let table = run_microgpt(
        &directory,
        &[
            "bench",
            "--workloads",
            "karpathy,sample",
            "--steps",
            "2",
            "--scalar-steps",
            "1",
            "--repeats",
            "1",
            "--samples",
            "5",
        ],
    );
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("work"), "{text}");
    assert!(
        text.contains("scalar f64") && text.contains("tape f32") && text.contains("speed-up"),
        "{text}"
    );
    let json = run_microgpt(
        &directory,
        &[
            "bench",
            "--workloads",
            "sample",
            "--repeats",
            "1",
            "--samples",
            "5",
            "--json",
        ],
    );
    let json = stdout(&json);
    assert!(
        json.starts_with("[{\"work\": \"sample 5 names") && json.contains("\"median_seconds\": "),
        "{json}"
    );
}

#[test]
fn bench_times_one_precision_when_asked() {
    let directory = scratch_directory("bench-dtype");
    for (dtype, kept, left_out) in [
        ("f32", "tape f32", "tape f64"),
        ("f64", "tape f64", "tape f32"),
    ] {
        let output = run_microgpt(
            &directory,
            &[
                "bench",
                "--workloads",
                "karpathy",
                "--steps",
                "2",
                "--scalar-steps",
                "0",
                "--repeats",
                "1",
                "--dtype",
                dtype,
                "--json",
            ],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let json = stdout(&output);
        assert!(json.contains(kept) && !json.contains(left_out), "{json}");
    }
    let output = run_microgpt(&directory, &["bench", "--dtype", "f16"]);
    assert!(output.status.code() == Some(2), "{}", stderr(&output));
}

#[test]
fn bench_refuses_an_unknown_workload() {
    let directory = scratch_directory("bench-unknown");
    let output = run_microgpt(&directory, &["bench", "--workloads", "karpathy,huge"]);
    assert_bad_input(
        &output,
        "unknown workload \"huge\"; choose from karpathy, d64, d128, d128x32, makemore, sample",
    );
}
