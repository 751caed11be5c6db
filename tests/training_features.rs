//! End-to-end runs of the training features makemore and nanoGPT users expect (issue 14): cheap
//! validation, schedules, samples during training, the best checkpoint, weights export, seeded
//! sampling and running text. Each test runs the built `microgpt` binary.

use std::fs;
use std::path::Path;
use std::process::Output;

use support::{
    TWELVE_NAMES, assert_bad_input, run_microgpt, scratch_directory, stderr, stdout,
    train_on_names, with_names,
};

/// [`train_on_names`], which must succeed.
fn train(directory: &Path, extra: &[&str]) -> Output {
    let output = train_on_names(directory, extra);
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// `microgpt eval --json` of `model` on `documents`: its loss.
fn eval_loss(directory: &Path, model: &str, documents: &[&str]) -> f64 {
    fs::write(directory.join("eval.txt"), documents.join("\n")).unwrap();
    let output = run_microgpt(
        directory,
        &["eval", "--model", model, "--data", "eval.txt", "--json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    json["loss"].as_f64().unwrap()
}

/// The number after `label` in `text` (`"val loss 2.4045 | ..."`).
fn number_after(text: &str, label: &str) -> f64 {
    let start = text
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {text}"))
        + label.len();
    text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn periodic_validation_scores_the_first_eval_docs_and_the_end_scores_the_whole_split() {
    let directory = with_names("eval-docs", TWELVE_NAMES);
    // --no-shuffle: the held-out half is the file's last 6 names, the subset its first 2.
    let output = train(
        &directory,
        &[
            "--no-shuffle",
            "--val-fraction",
            "0.5",
            "--eval-docs",
            "2",
            "--steps",
            "20",
            "--eval-every",
            "10",
            "--num-samples",
            "0",
            "--out",
            "m.safetensors",
        ],
    );
    let log = stderr(&output);
    let last = log
        .lines()
        .find(|line| line.starts_with("step 20 | val loss"))
        .unwrap_or_else(|| panic!("a last validation line in {log}"));
    let subset = number_after(last, "val loss");
    let whole = number_after(last, "all 6 held-out documents");
    // If these failed, the periodic loss would not be of the named documents.
    let expected_subset = eval_loss(&directory, "m.safetensors", &["mia", "amelia"]);
    let expected_whole = eval_loss(
        &directory,
        "m.safetensors",
        &["mia", "amelia", "harper", "evelyn", "abigail", "emily"],
    );
    assert!((subset - expected_subset).abs() <= 5e-5, "{last}");
    assert!((whole - expected_whole).abs() <= 5e-5, "{last}");
    assert!(
        log.contains("tokens/s (validation excluded)"),
        "a throughput line without the evaluations:\n{log}"
    );
}

#[test]
fn a_short_run_keeps_the_subsets_loss_at_the_end() {
    let directory = with_names("eval-docs-short", TWELVE_NAMES);
    // 4 documents trained on against a split of 6: scoring it all would cost more than the run.
    let output = train(
        &directory,
        &[
            "--val-fraction",
            "0.5",
            "--eval-docs",
            "2",
            "--steps",
            "4",
            "--num-samples",
            "0",
        ],
    );
    let log = stderr(&output);
    assert!(log.contains("step 4 | val loss"), "{log}");
    assert!(!log.contains("held-out documents"), "{log}");
}

#[test]
fn a_bad_eval_docs_is_refused_by_the_parser() {
    let directory = with_names("eval-docs-bad", TWELVE_NAMES);
    let output = run_microgpt(
        &directory,
        &["train", "--data", "names.txt", "--eval-docs", "-3"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));
}

/// The learning rates a run's progress lines report, step by step (10 steps: a line each).
fn reported_rates(directory: &Path, extra: &[&str]) -> Vec<f64> {
    let output = train(
        directory,
        &[&["--steps", "10", "--num-samples", "0"], extra].concat(),
    );
    stderr(&output)
        .lines()
        .filter(|line| line.starts_with("step ") && line.contains("| lr "))
        .map(|line| number_after(line, "| lr "))
        .collect()
}

#[test]
fn schedules_warmup_and_floor_give_their_closed_forms() {
    let directory = with_names("schedules", TWELVE_NAMES);
    let round =
        |rates: Vec<f64>| -> Vec<f64> { rates.iter().map(|r| (r * 1e5).round() / 1e5).collect() };
    // microgpt.py's default: 0.01 (1 - t/10).
    let linear: Vec<f64> = (0..10).map(|t| 0.01 * (1.0 - t as f64 / 10.0)).collect();
    assert_eq!(reported_rates(&directory, &[]), round(linear));
    // Constant after 4 warmup steps: 0.005 (t + 1) / 5, then 0.005.
    let warm: Vec<f64> = (0..10)
        .map(|t| {
            if t < 4 {
                0.005 * (t + 1) as f64 / 5.0
            } else {
                0.005
            }
        })
        .collect();
    assert_eq!(
        reported_rates(
            &directory,
            &[
                "--lr",
                "0.005",
                "--lr-schedule",
                "constant",
                "--warmup-steps",
                "4"
            ],
        ),
        round(warm)
    );
    // Cosine from 0.01 to 0.001: 0.001 + 0.009 (1 + cos(pi t / 10)) / 2.
    let cosine: Vec<f64> = (0..10)
        .map(|t| 0.001 + 0.009 * (1.0 + (std::f64::consts::PI * t as f64 / 10.0).cos()) / 2.0)
        .collect();
    assert_eq!(
        reported_rates(
            &directory,
            &["--lr-schedule", "cosine", "--min-lr", "0.001"]
        ),
        round(cosine)
    );
    // Linear to a floor: 0.002 + 0.008 (1 - t/10).
    let floor: Vec<f64> = (0..10)
        .map(|t| 0.002 + 0.008 * (1.0 - t as f64 / 10.0))
        .collect();
    assert_eq!(
        reported_rates(&directory, &["--min-lr", "0.002"]),
        round(floor)
    );
}

#[test]
fn bad_schedules_are_refused_in_one_line() {
    let directory = with_names("schedules-bad", TWELVE_NAMES);
    let run = |extra: &[&str]| {
        run_microgpt(
            &directory,
            &[&["train", "--data", "names.txt", "--steps", "3"], extra].concat(),
        )
    };
    assert_bad_input(
        &run(&["--min-lr", "0.5"]),
        "--min-lr must be at least 0 and at most --lr",
    );
    assert_bad_input(&run(&["--min-lr", "-1"]), "--min-lr");
    let unknown = run(&["--lr-schedule", "step"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("expected linear, cosine or constant"));
}

#[test]
fn a_resumed_run_keeps_its_schedule_and_refuses_another() {
    let directory = with_names("schedules-resume", TWELVE_NAMES);
    let common = [
        "--steps",
        "12",
        "--lr-schedule",
        "cosine",
        "--warmup-steps",
        "3",
        "--num-samples",
        "0",
    ];
    train(
        &directory,
        &[&common[..], &["--out", "whole.safetensors"]].concat(),
    );
    train(
        &directory,
        &[
            &common[..],
            &["--stop-after", "5", "--out", "cut.safetensors"],
        ]
        .concat(),
    );
    train(
        &directory,
        &[
            "--resume",
            "cut.safetensors",
            "--out",
            "cut.safetensors",
            "--num-samples",
            "0",
        ],
    );
    let tensors = |name: &str| {
        let bytes = fs::read(directory.join(name)).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut all: Vec<(String, Vec<u8>)> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.data().to_vec()))
            .collect();
        all.sort();
        all
    };
    // If this failed, resuming would have fallen back to the linear schedule.
    assert_eq!(tensors("whole.safetensors"), tensors("cut.safetensors"));
    let other = run_microgpt(
        &directory,
        &[
            "train",
            "--data",
            "names.txt",
            "--resume",
            "cut.safetensors",
            "--steps",
            "20",
            "--lr-schedule",
            "linear",
        ],
    );
    assert_bad_input(&other, "--lr-schedule differs from the run being resumed");
}

#[test]
fn sample_every_prints_names_to_stderr_and_leaves_the_run_unchanged() {
    let directory = with_names("sample-every", TWELVE_NAMES);
    let common = ["--steps", "20", "--num-samples", "4"];
    let plain = train(
        &directory,
        &[&common[..], &["--out", "a.safetensors"]].concat(),
    );
    let sampled = train(
        &directory,
        &[
            &common[..],
            &[
                "--sample-every",
                "10",
                "--sample-count",
                "3",
                "--out",
                "b.safetensors",
            ],
        ]
        .concat(),
    );
    let lines: Vec<String> = stderr(&sampled)
        .lines()
        .filter(|line| line.contains("| samples: "))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{}", stderr(&sampled));
    assert!(lines[0].starts_with("step 10 | samples: ") && lines[1].starts_with("step 20 |"));
    assert_eq!(lines[0].split(": ").nth(1).unwrap().split(' ').count(), 3);
    // The samples draw from a generator of their own: the run and its final names are the same.
    assert_eq!(stdout(&plain), stdout(&sampled));
    let weights = |name: &str| fs::read(directory.join(name)).unwrap();
    assert_eq!(weights("a.safetensors"), weights("b.safetensors"));
}

#[test]
fn keep_best_keeps_the_checkpoint_of_the_lowest_validation_loss() {
    let directory = with_names("keep-best", TWELVE_NAMES);
    // A high learning rate makes the validation loss go up and down.
    let output = train(
        &directory,
        &[
            "--no-shuffle",
            "--val-fraction",
            "0.25",
            "--steps",
            "40",
            "--eval-every",
            "2",
            "--lr",
            "0.05",
            "--keep-best",
            "--num-samples",
            "0",
            "--out",
            "m.safetensors",
        ],
    );
    let log = stderr(&output);
    let losses: Vec<(usize, f64)> = log
        .lines()
        .filter(|line| line.contains("| val loss "))
        .map(|line| {
            (
                number_after(line, "step ") as usize,
                number_after(line, "val loss "),
            )
        })
        .collect();
    assert_eq!(losses.len(), 20, "{log}");
    let &(best_step, best) = losses
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .unwrap();
    assert!(
        best_step < 40,
        "the test needs a loss that rises again: {losses:?}"
    );
    let bytes = fs::read(directory.join("m.best.safetensors")).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = metadata.metadata().clone().unwrap();
    assert_eq!(metadata["best_step"], best_step.to_string(), "{log}");
    // Its loss on the held-out documents is the minimum printed (to its 4 decimals).
    let held_out = eval_loss(
        &directory,
        "m.best.safetensors",
        &["evelyn", "abigail", "emily"],
    );
    assert!((held_out - best).abs() <= 5e-5, "{held_out} against {best}");
    assert!(
        log.contains("its checkpoint is m.best.safetensors"),
        "{log}"
    );
}

#[test]
fn keep_best_is_refused_without_validation_and_checked_as_an_output() {
    let directory = with_names("keep-best-bad", TWELVE_NAMES);
    let run = |extra: &[&str]| {
        run_microgpt(
            &directory,
            &[
                &[
                    "train",
                    "--data",
                    "names.txt",
                    "--steps",
                    "3",
                    "--keep-best",
                ],
                extra,
            ]
            .concat(),
        )
    };
    assert_bad_input(
        &run(&["--val-fraction", "0"]),
        "--keep-best needs validation",
    );
    fs::create_dir(directory.join("m.best.safetensors")).unwrap();
    assert_bad_input(
        &run(&["--out", "m.safetensors"]),
        "the best checkpoint (--keep-best, beside --out) m.best.safetensors exists and is not a regular file",
    );
    assert!(!directory.join("m.safetensors").exists());
}

#[test]
fn export_writes_the_weights_alone_with_their_names_and_values() {
    let directory = with_names("export", TWELVE_NAMES);
    train(
        &directory,
        &[
            "--steps",
            "5",
            "--num-samples",
            "0",
            "--out",
            "m.safetensors",
        ],
    );
    let output = run_microgpt(
        &directory,
        &[
            "export",
            "--model",
            "m.safetensors",
            "--out",
            "w.safetensors",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let original = fs::read(directory.join("m.safetensors")).unwrap();
    let original = safetensors::SafeTensors::deserialize(&original).unwrap();
    let exported = fs::read(directory.join("w.safetensors")).unwrap();
    let exported = safetensors::SafeTensors::deserialize(&exported).unwrap();
    let mut names = exported.names();
    names.sort();
    let mut weights: Vec<String> = original
        .names()
        .into_iter()
        .filter(|name| !name.starts_with("adam."))
        .map(str::to_string)
        .collect();
    weights.sort();
    // If this failed, load_state_dict would meet unexpected (optimizer) or missing keys.
    assert_eq!(names, weights);
    assert!(
        weights.contains(&"layer0.attn_wq".to_string()) && weights.contains(&"wte".to_string())
    );
    for name in &weights {
        let (a, b) = (
            original.tensor(name).unwrap(),
            exported.tensor(name).unwrap(),
        );
        assert_eq!(a.shape(), b.shape(), "{name}");
        assert_eq!(b.dtype(), safetensors::Dtype::F32, "{name}");
        let f64s = a
            .data()
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()));
        let f32s = b
            .data()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
        for (x, y) in f64s.zip(f32s) {
            assert_eq!(x as f32, y, "{name}");
        }
    }
    // The export still samples.
    let sample = run_microgpt(
        &directory,
        &["sample", "--model", "w.safetensors", "--num-samples", "2"],
    );
    assert!(sample.status.success(), "{}", stderr(&sample));
    assert_eq!(stdout(&sample).lines().count(), 2);
}

#[test]
fn export_refuses_the_outputs_train_refuses() {
    let directory = with_names("export-bad", TWELVE_NAMES);
    train(
        &directory,
        &[
            "--steps",
            "2",
            "--num-samples",
            "0",
            "--out",
            "m.safetensors",
        ],
    );
    let export = |out: &str| {
        run_microgpt(
            &directory,
            &["export", "--model", "m.safetensors", "--out", out],
        )
    };
    assert_bad_input(
        &export("m.safetensors"),
        "is the same file as the checkpoint (--model)",
    );
    assert_bad_input(
        &export("missing/w.safetensors"),
        "directory missing does not exist",
    );
    fs::create_dir(directory.join("d")).unwrap();
    assert_bad_input(&export("d"), "exists and is not a regular file");
    let bad = run_microgpt(
        &directory,
        &["export", "--model", "names.txt", "--out", "w.safetensors"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn the_ith_name_of_a_seed_is_the_same_for_any_count_and_batch_size() {
    let directory = with_names("seeded-sampling", TWELVE_NAMES);
    let output = train(
        &directory,
        &[
            "--steps",
            "30",
            "--num-samples",
            "6",
            "--out",
            "m.safetensors",
        ],
    );
    let sample = |extra: &[&str]| {
        let output = run_microgpt(
            &directory,
            &[&["sample", "--model", "m.safetensors"], extra].concat(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // 42: train's default seed, and sample's.
    let reference = sample(&["--seed", "42", "--num-samples", "40", "--batch-size", "1"]);
    for (count, batch) in [
        ("40", "64"),
        ("40", "7"),
        ("3", "1"),
        ("3", "64"),
        ("17", "5"),
    ] {
        let names = sample(&["--num-samples", count, "--batch-size", batch]);
        // If this failed, a name would depend on how many names are drawn, or how many at once.
        assert_eq!(
            names[..],
            reference[..names.len()],
            "--num-samples {count} --batch-size {batch}"
        );
    }
    // train's own names are `sample --seed` names of its checkpoint.
    let trained: Vec<String> = stdout(&output)
        .lines()
        .filter_map(|line| {
            line.split_once(": ")
                .filter(|(label, _)| label.starts_with("sample"))
        })
        .map(|(_, name)| name.to_string())
        .collect();
    assert_eq!(trained[..], reference[..6]);
    assert_ne!(sample(&["--seed", "43", "--num-samples", "40"]), reference);
}

#[test]
fn flags_have_one_spelling_and_eval_finds_the_default_data_as_train_does() {
    let directory = with_names("spellings", TWELVE_NAMES);
    fs::create_dir(directory.join("data")).unwrap();
    fs::copy(
        directory.join("names.txt"),
        directory.join("data/names.txt"),
    )
    .unwrap();
    // train's defaults: data/names.txt in, microgpt.safetensors out; --samples is --num-samples.
    let output = run_microgpt(&directory, &["train", "--steps", "5", "--samples", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output)
            .lines()
            .filter(|l| l.starts_with("sample "))
            .count(),
        2
    );
    let eval = |extra: &[&str]| {
        let output = run_microgpt(&directory, &[&["eval", "--json"], extra].concat());
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    assert_eq!(eval(&[]), eval(&["--data", "data/names.txt"]));
    let names = |flag: &str| {
        let output = run_microgpt(&directory, &["sample", flag, "3"]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    assert_eq!(names("--samples"), names("--num-samples"));
    assert_eq!(names("--num-samples").lines().count(), 3);
}

/// Running text: the names of TWELVE_NAMES as one stream, four times over.
fn running_text() -> String {
    TWELVE_NAMES.repeat(4)
}

/// Trains `t.safetensors` in `directory` on its `text.txt` as running text with block 8, which must
/// succeed.
fn train_on_text(directory: &Path, extra: &[&str]) -> Output {
    let text = ["train", "--data", "text.txt", "--format", "text"];
    let out = ["--block-size", "8", "--out", "t.safetensors"];
    let output = run_microgpt(directory, &[&text[..], &out, extra].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

#[test]
fn text_format_trains_on_windows_and_sample_slides_past_the_block() {
    let directory = scratch_directory("text-format");
    fs::write(directory.join("text.txt"), running_text()).unwrap();
    let output = train_on_text(&directory, &["--steps", "40", "--eval-every", "20"]);
    let log = stderr(&output);
    assert!(stdout(&output).contains(&format!("num chars: {}", running_text().len())));
    // 10% held out: 32 of the 324 characters, 3 windows of 9.
    assert!(log.contains("step 20 | val loss"), "{log}");
    assert!(
        !stdout(&output).contains("sample  1"),
        "no names in text mode"
    );

    let continued = run_microgpt(
        &directory,
        &[
            "sample",
            "--model",
            "t.safetensors",
            "--length",
            "30",
            "--prompt",
            "emma\no",
            "--top-k",
            "1",
        ],
    );
    assert!(continued.status.success(), "{}", stderr(&continued));
    let text = stdout(&continued);
    let text = text.strip_suffix('\n').unwrap();
    assert_eq!(text.chars().count(), 6 + 30, "{text:?}");

    // Brute force: every character from a fresh cache over the last block_size characters.
    let checkpoint = gpt::load::<f64>(&directory.join("t.safetensors")).unwrap();
    let config = *checkpoint.params.config();
    let mut tokens = checkpoint.tokenizer.encode_prefix("emma\no").unwrap();
    for _ in 0..30 {
        let mut decoder = gpt::Decoder::new(&checkpoint.params, 1).unwrap();
        let mut cache = gpt::KvCache::<f64>::new(config, 1);
        for &token in &tokens[tokens.len().saturating_sub(8)..] {
            decoder.step(&mut cache, &[Some(token)]).unwrap();
        }
        let logits = decoder.logits(0);
        let best = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        tokens.push(best);
    }
    // If this failed, the window would not slide (or would slide wrongly) past the block size.
    assert_eq!(text, checkpoint.tokenizer.decode(&tokens));

    let bad = run_microgpt(
        &directory,
        &["sample", "--model", "t.safetensors", "--length", "5"],
    );
    assert_eq!(bad.status.code(), Some(2), "--length needs --prompt");
    assert_bad_input(
        &run_microgpt(
            &directory,
            &[
                "sample",
                "--model",
                "t.safetensors",
                "--length",
                "5",
                "--prompt",
                "Z",
            ],
        ),
        "--prompt",
    );
    let short = run_microgpt(
        &directory,
        &[
            "train",
            "--data",
            "text.txt",
            "--format",
            "text",
            "--block-size",
            "16",
            "--val-fraction",
            "0.99",
            "--out",
            "s.safetensors",
        ],
    );
    assert_bad_input(&short, "--format text needs at least block_size + 1");
}

/// `microgpt eval --json` of `model` on the file `data`, which must succeed.
fn eval_json(directory: &Path, model: &str, data: &str) -> serde_json::Value {
    let output = run_microgpt(
        directory,
        &["eval", "--model", model, "--data", data, "--json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

/// The mean over the windows of `block_size + 1` characters tiling `text` from its start of the
/// scalar engine's loss of each (a window's loss is the mean over its block_size predictions, so
/// this is the mean per predicted character), and the number of windows.
fn scalar_window_loss(checkpoint: &gpt::Checkpoint<f64>, text: &str) -> (f64, usize) {
    let block_size = checkpoint.params.config().block_size;
    let tokens = checkpoint.tokenizer.encode_prefix(text).unwrap();
    let mut oracle = support::scalar_model(&checkpoint.params);
    let losses: Vec<f64> = tokens
        .chunks_exact(block_size + 1)
        .map(|window| oracle.loss(window))
        .collect();
    (
        losses.iter().sum::<f64>() / losses.len() as f64,
        losses.len(),
    )
}

/// `eval` scores a model trained with `--format text` as running text: the windows of
/// `block_size + 1` characters that tile the file, as the scalar engine scores them from the same
/// weights (one document a line from BOS to BOS would give another figure, and "documents" rather
/// than "windows"). Given the held-out tenth alone, it gives the validation loss train printed.
#[test]
fn eval_scores_a_text_model_on_the_windows_of_its_running_text() {
    let directory = scratch_directory("text-eval");
    let text = running_text();
    fs::write(directory.join("text.txt"), &text).unwrap();
    let quiet = ["--steps", "30", "--eval-every", "30", "--num-samples", "0"];
    let output = train_on_text(&directory, &quiet);
    let checkpoint = gpt::load::<f64>(&directory.join("t.safetensors")).unwrap();

    let json = eval_json(&directory, "t.safetensors", "text.txt");
    let (expected, windows) = scalar_window_loss(&checkpoint, &text);
    // By hand: 324 characters make 36 windows of 9, each predicting 8.
    assert_eq!((text.chars().count(), windows), (324, 36));
    assert_eq!(json["windows"].as_u64(), Some(36), "{json}");
    assert_eq!(json["tokens"].as_u64(), Some(36 * 8), "{json}");
    let loss = json["loss"].as_f64().unwrap();
    assert!(
        (loss - expected).abs() <= 1e-12 * expected,
        "eval {loss} against the scalar engine's {expected}"
    );

    // The last tenth of the characters, which train held out (the file is ASCII).
    let held_out = &text[text.len() - text.len() / 10..];
    fs::write(directory.join("held-out.txt"), held_out).unwrap();
    let json = eval_json(&directory, "t.safetensors", "held-out.txt");
    let (expected, windows) = scalar_window_loss(&checkpoint, held_out);
    assert_eq!(json["windows"].as_u64(), Some(windows as u64), "{json}");
    let loss = json["loss"].as_f64().unwrap();
    assert!(
        (loss - expected).abs() <= 1e-12 * expected,
        "{loss} against {expected}"
    );
    let printed = number_after(&stderr(&output), "step 30 | val loss ");
    assert!(
        (loss - printed).abs() <= 5e-5,
        "eval {loss} of the held-out text against train's validation loss {printed}"
    );

    fs::write(directory.join("short.txt"), "emma\n").unwrap();
    assert_bad_input(
        &run_microgpt(
            &directory,
            &["eval", "--model", "t.safetensors", "--data", "short.txt"],
        ),
        "windows of block_size + 1 = 9 characters; the data has 5",
    );
}

/// The weights of checkpoint `name` (no optimizer state), by name, as f64 (the default dtype).
fn checkpoint_weights(directory: &Path, name: &str) -> Vec<(String, Vec<f64>)> {
    let bytes = fs::read(directory.join(name)).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut weights: Vec<(String, Vec<f64>)> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("adam"))
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F64, "{name}");
            let values = view
                .data()
                .chunks_exact(8)
                .map(|bytes| f64::from_le_bytes(bytes.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    weights
}

/// One step from the same weights with and without decay: AdamW (torch.optim.AdamW's rule,
/// `w = w - lr lambda w` before the Adam step, which does not depend on the decay at the first
/// step) makes them differ by exactly `lr lambda w`, for every tensor. `--weight-decay 0` is the
/// default run to the bit.
#[test]
fn weight_decay_decays_every_weight_as_adamw_and_zero_is_the_default() {
    let directory = with_names("weight-decay", TWELVE_NAMES);
    let quiet = ["--num-samples", "0", "--eval-every", "0"];
    train(
        &directory,
        &[&quiet[..], &["--steps", "3", "--out", "start.safetensors"]].concat(),
    );
    let one_step = |extra: &[&str], out: &str| {
        let common = [
            "--init",
            "start.safetensors",
            "--steps",
            "1",
            "--lr",
            "0.01",
        ];
        train(
            &directory,
            &[&quiet[..], &common[..], extra, &["--out", out]].concat(),
        );
        checkpoint_weights(&directory, out)
    };
    let plain = one_step(&[], "plain.safetensors");
    let zero = one_step(&["--weight-decay", "0"], "zero.safetensors");
    assert_eq!(plain, zero, "--weight-decay 0 is not the default run");
    let decayed = one_step(&["--weight-decay", "0.5"], "decayed.safetensors");
    let start = checkpoint_weights(&directory, "start.safetensors");
    assert_eq!(
        start.len(),
        9,
        "wte, wpe, lm_head and one layer's 6 matrices"
    );
    for (((name, w), (_, plain)), (_, decayed)) in start.iter().zip(&plain).zip(&decayed) {
        for ((w, plain), decayed) in w.iter().zip(plain).zip(decayed) {
            let expected = 0.01 * 0.5 * w;
            assert!(
                (plain - decayed - expected).abs() <= 1e-15,
                "{name}: {plain} - {decayed} is not 0.005 * {w}"
            );
        }
    }
}

/// `--grad-clip` with a norm no gradient reaches changes nothing, to the bit; a small one changes
/// the run; both settings are recorded, so a resumed run keeps them and refuses others; bad values
/// are refused in one line.
#[test]
fn grad_clip_clips_only_above_its_norm_and_a_resumed_run_keeps_it() {
    let directory = with_names("grad-clip", TWELVE_NAMES);
    let common = ["--steps", "8", "--num-samples", "0", "--batch-size", "4"];
    let run = |extra: &[&str], out: &str| {
        train(&directory, &[&common[..], extra, &["--out", out]].concat());
        checkpoint_weights(&directory, out)
    };
    let plain = run(&[], "plain.safetensors");
    assert_eq!(
        plain,
        run(&["--grad-clip", "1e9"], "loose.safetensors"),
        "a clip above every norm changed the run"
    );
    let clipped = run(&["--grad-clip", "0.01"], "clipped.safetensors");
    assert_ne!(plain, clipped, "a clip of 0.01 changed nothing");

    let settings = ["--grad-clip", "0.01", "--weight-decay", "0.2"];
    let whole = run(&settings, "whole.safetensors");
    train(
        &directory,
        &[
            &common[..],
            &settings[..],
            &["--stop-after", "3", "--out", "cut.safetensors"],
        ]
        .concat(),
    );
    let resume = ["--resume", "cut.safetensors", "--out", "cut.safetensors"];
    train(&directory, &[&resume[..], &["--num-samples", "0"]].concat());
    // If this failed, the resumed run would have dropped the clip or the decay.
    assert_eq!(whole, checkpoint_weights(&directory, "cut.safetensors"));
    let refused = |extra: &[&str], expected: &str| {
        let output = run_microgpt(
            &directory,
            &[
                &["train", "--data", "names.txt", "--steps", "20"],
                &resume[..],
                extra,
            ]
            .concat(),
        );
        assert_bad_input(&output, expected);
    };
    refused(
        &["--grad-clip", "1"],
        "--grad-clip differs from the run being resumed",
    );
    refused(
        &["--weight-decay", "0"],
        "--weight-decay differs from the run being resumed",
    );

    let fresh = |extra: &[&str]| {
        run_microgpt(
            &directory,
            &[&["train", "--data", "names.txt", "--steps", "2"], extra].concat(),
        )
    };
    for bad in ["0", "-1", "nan", "inf"] {
        assert_bad_input(
            &fresh(&["--grad-clip", bad]),
            "--grad-clip must be a positive number",
        );
    }
    for bad in ["-0.1", "nan"] {
        assert_bad_input(
            &fresh(&["--weight-decay", bad]),
            "--weight-decay must be a number at least 0",
        );
    }
}

/// `--dropout 0` is the default run to the bit and 0.2 another; its masks depend on the step
/// alone, so a run stopped and resumed ends on the uninterrupted run's weights; the resumed run
/// keeps the probability and refuses another; a probability outside [0, 1) is refused.
#[test]
fn dropout_is_off_by_default_and_a_resumed_run_draws_the_same_masks() {
    let directory = with_names("dropout", TWELVE_NAMES);
    let common = ["--steps", "8", "--num-samples", "0", "--batch-size", "12"];
    let run = |extra: &[&str], out: &str| {
        train(&directory, &[&common[..], extra, &["--out", out]].concat());
        checkpoint_weights(&directory, out)
    };
    let plain = run(&[], "plain.safetensors");
    assert_eq!(plain, run(&["--dropout", "0"], "zero.safetensors"));
    let whole = run(&["--dropout", "0.2"], "whole.safetensors");
    assert_ne!(plain, whole, "--dropout 0.2 changed nothing");
    train(
        &directory,
        &[
            &common[..],
            &[
                "--dropout",
                "0.2",
                "--stop-after",
                "3",
                "--out",
                "cut.safetensors",
            ],
        ]
        .concat(),
    );
    let resume = ["--resume", "cut.safetensors", "--out", "cut.safetensors"];
    train(&directory, &[&resume[..], &["--num-samples", "0"]].concat());
    assert_eq!(whole, checkpoint_weights(&directory, "cut.safetensors"));
    let other = run_microgpt(
        &directory,
        &[
            &["train", "--data", "names.txt", "--steps", "20"],
            &resume[..],
            &["--dropout", "0.1"],
        ]
        .concat(),
    );
    assert_bad_input(&other, "--dropout differs from the run being resumed");
    for bad in ["1", "-0.1", "nan"] {
        let output = run_microgpt(
            &directory,
            &[
                "train",
                "--data",
                "names.txt",
                "--steps",
                "2",
                "--dropout",
                bad,
            ],
        );
        assert_bad_input(&output, "--dropout must be at least 0 and below 1");
    }
}

/// The first row of `name`'s loss CSV: the loss of step 1, in full precision.
fn first_step_loss(directory: &Path, name: &str) -> f64 {
    let csv = fs::read_to_string(directory.join(name)).unwrap();
    let row = csv.lines().nth(1).unwrap();
    row.split(',').nth(1).unwrap().parse().unwrap()
}

/// With every name in one batch, step 1's `--batch-mean tokens` loss is the mean over all their
/// predicted tokens, which `eval` computes by its own path from the same weights; the default
/// (each document's mean weighs the same) differs, as the names differ in length. The mean is
/// recorded, so a resumed run keeps it and refuses another; an unknown one is refused.
#[test]
fn batch_mean_tokens_weighs_every_predicted_token_alike() {
    let directory = with_names("batch-mean", TWELVE_NAMES);
    let quiet = [
        "--num-samples",
        "0",
        "--eval-every",
        "0",
        "--val-fraction",
        "0",
    ];
    train(
        &directory,
        &[&quiet[..], &["--steps", "2", "--out", "start.safetensors"]].concat(),
    );
    let names: Vec<&str> = TWELVE_NAMES.split_whitespace().collect();
    let expected = eval_loss(&directory, "start.safetensors", &names);
    let first_step = |extra: &[&str], out: &str| {
        let common = ["--init", "start.safetensors", "--steps", "1"];
        let batch = ["--batch-size", "12", "--out", out];
        train(&directory, &[&quiet[..], &common, extra, &batch].concat());
        first_step_loss(&directory, &out.replace(".safetensors", ".csv"))
    };
    let tokens = first_step(&["--batch-mean", "tokens"], "tokens.safetensors");
    assert!(
        (tokens - expected).abs() < 1e-12,
        "{tokens} against eval's {expected}"
    );
    let documents = first_step(&[], "documents.safetensors");
    assert!(
        (documents - expected).abs() > 1e-3,
        "the default mean {documents} is the token mean {expected}"
    );

    let cut = [
        "--batch-size",
        "4",
        "--steps",
        "6",
        "--batch-mean",
        "tokens",
    ];
    let whole = ["--out", "whole.safetensors"];
    train(&directory, &[&quiet[..], &cut, &whole].concat());
    let stopped = ["--stop-after", "3", "--out", "cut.safetensors"];
    train(&directory, &[&quiet[..], &cut, &stopped].concat());
    let resume = ["--resume", "cut.safetensors", "--out", "cut.safetensors"];
    train(&directory, &[&resume[..], &["--num-samples", "0"]].concat());
    assert_eq!(
        checkpoint_weights(&directory, "whole.safetensors"),
        checkpoint_weights(&directory, "cut.safetensors"),
        "the resumed run dropped --batch-mean tokens"
    );
    let train_with = |extra: &[&str]| {
        let base = ["train", "--data", "names.txt", "--steps", "20"];
        run_microgpt(&directory, &[&base[..], extra].concat())
    };
    assert_bad_input(
        &train_with(&[&resume[..], &["--batch-mean", "documents"]].concat()),
        "--batch-mean differs from the run being resumed",
    );
    assert_bad_input(
        &train_with(&["--batch-mean", "words"]),
        "unknown batch mean \"words\": expected documents or tokens",
    );
}
