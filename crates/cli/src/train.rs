//! `microgpt train`: microgpt.py's training run, with validation, checkpoints and resumption.

use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::time::Instant;

use gpt::{
    Adam, AdamSettings, AdamState, Checkpoint, CheckpointError, Dropout, Dtype, Model, NllSum,
    Params, Sampler, SamplingOptions, Tokenizer,
};
use tape::Float;

use crate::args::{DataFormat, TrainArgs};
use crate::atomic_file::temporary_path;
use crate::corpus::{Corpus, Fingerprint};
use crate::data::{self, DEFAULT_DATA};
use crate::divergence::{Guard, Healthy};
use crate::error::{CliError, Kind, Result};
use crate::loss_csv::LossCsv;
use crate::loss_log::LossPoint;
use crate::memory;
use crate::outputs::{self, Input, Planned};
use crate::plot;
use crate::progress::Progress;
use crate::rng::{Generator, RngKind, name_stream};
use crate::settings::RunSettings;
use crate::signals::Interrupts;
use crate::stream::{self, escaped, note};
use crate::text::Text;
use crate::{checkpoint_error, save_checkpoint};

/// Where the checkpoint goes when `--out` is not given.
pub const DEFAULT_OUT: &str = "microgpt.safetensors";

/// Runs `train` with the precision the arguments (or the resumed checkpoint) ask for.
pub fn run(args: TrainArgs) -> Result<()> {
    let start = Start::from_args(&args)?;
    match start.settings.dtype {
        Dtype::F32 => train::<f32>(&args, start),
        Dtype::F64 => train::<f64>(&args, start),
    }
}

/// What a run starts from: its settings, and the checkpoint given with --init or --resume.
struct Start {
    settings: RunSettings,
    checkpoint: Option<Loaded>,
}

/// A checkpoint read once (in f64, which holds an F32 file exactly) and where it came from.
struct Loaded {
    path: PathBuf,
    checkpoint: Checkpoint<f64>,
    /// `--resume` (continue with its optimizer state) rather than `--init` (fresh optimizer).
    resumed: bool,
}

impl Start {
    fn from_args(args: &TrainArgs) -> Result<Self> {
        let Some((path, resumed)) = args
            .resume
            .as_ref()
            .map(|path| (path, true))
            .or(args.init.as_ref().map(|path| (path, false)))
        else {
            return Ok(Start {
                settings: RunSettings::fresh(args)?,
                checkpoint: None,
            });
        };
        // --init needs the weights only, so a damaged optimizer state cannot stop it.
        let checkpoint = if resumed {
            gpt::load::<f64>(path).map_err(|error| resume_error(path, error))?
        } else {
            gpt::load_weights::<f64>(path).map_err(|error| checkpoint_error(path, error))?
        };
        let settings = if resumed {
            RunSettings::resumed(args, &checkpoint)?
        } else {
            RunSettings::fresh(args)?
        };
        let path = path.clone();
        Ok(Start {
            settings,
            checkpoint: Some(Loaded {
                path,
                checkpoint,
                resumed,
            }),
        })
    }
}

/// A checkpoint that cannot be resumed. When its weights load alone, what is broken is the
/// optimizer state, and `--init` (which reads nothing else) starts a new run from them.
fn resume_error(path: &Path, error: CheckpointError) -> CliError {
    let weights_load =
        !matches!(error, CheckpointError::Io { .. }) && gpt::load_weights::<f64>(path).is_ok();
    let mut error = checkpoint_error(path, error);
    if weights_load {
        error.message.push_str(&format!(
            "; its weights are intact: start a new run from them with --init {} (a fresh optimizer)",
            path.display()
        ));
    }
    error
}

/// The files a run writes, all beside `--out`.
struct Paths {
    out: PathBuf,
    csv: PathBuf,
    svg: PathBuf,
    /// Where the last healthy state goes when training diverges (`--out` keeps its contents).
    healthy: PathBuf,
    /// The checkpoint of the lowest validation loss (`--keep-best`).
    best: PathBuf,
}

impl Paths {
    fn new(out: PathBuf) -> Self {
        Paths {
            csv: out.with_extension("csv"),
            svg: out.with_extension("svg"),
            healthy: out.with_extension("last-healthy.safetensors"),
            best: out.with_extension("best.safetensors"),
            out,
        }
    }

    /// The temporary files a save of each may be writing, for the second Ctrl-C to remove.
    fn temporaries(&self) -> Vec<PathBuf> {
        [&self.out, &self.csv, &self.svg, &self.healthy, &self.best]
            .into_iter()
            .filter_map(|path| temporary_path(path))
            .collect()
    }
}

fn train<F: Float>(args: &TrainArgs, start: Start) -> Result<()> {
    let mut settings = start.settings;
    let sampling = SamplingOptions::new(args.temperature, None, None)
        .map_err(|error| CliError::input(error.to_string()))?;
    let paths = Paths::new(
        args.out
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT)),
    );

    let loaded = start
        .checkpoint
        .as_ref()
        .map(|loaded| loaded.checkpoint.cast::<F>());
    if let Some(checkpoint) = &loaded {
        settings.check_config_flags(args, checkpoint.params.config())?;
    }

    let data_path = match &args.data {
        Some(path) => path.clone(),
        None => {
            let path = PathBuf::from(DEFAULT_DATA);
            data::ensure_default_dataset(&path)?;
            path
        }
    };
    if args.keep_best && settings.val_fraction == 0.0 {
        return Err(CliError::input(
            "--keep-best needs validation: give a --val-fraction above 0",
        ));
    }
    check_outputs(
        &paths,
        &data_path,
        start.checkpoint.as_ref(),
        args.keep_best,
    )?;
    // Held until the run ends: a second run on the same --out is refused.
    let _lock = outputs::lock(&paths.out)?;

    let mut corpus = Corpus::read(&data_path)?;
    if let Some(loaded) = start.checkpoint.as_ref().filter(|loaded| loaded.resumed) {
        check_fingerprint(loaded, corpus.fingerprint(), &data_path)?;
    }
    let text_mode = settings.format == DataFormat::Text;
    let mut rng = Generator::new(settings.rng, settings.seed);
    if settings.shuffle && !text_mode {
        corpus.shuffle(&mut rng);
    }
    let tokenizer = match &loaded {
        Some(checkpoint) => checkpoint.tokenizer.clone(),
        None if text_mode => Tokenizer::from_documents([corpus.text()]),
        None => Tokenizer::from_documents(corpus.documents()),
    };
    let mut report = Report::default();
    if !text_mode {
        report.line(format_args!("num docs: {}", corpus.len()))?;
    }
    report.line(format_args!("vocab size: {}", tokenizer.vocab_size()))?;

    let config = match &loaded {
        Some(checkpoint) => *checkpoint.params.config(),
        None => settings.config(tokenizer.vocab_size()),
    };
    config
        .validate()
        .map_err(|error| CliError::input(error.to_string()))?;

    let text = if text_mode {
        let text = Text::new(
            corpus.text(),
            &tokenizer,
            config.block_size,
            settings.val_fraction,
            settings.seed,
        )?;
        report.line(format_args!("num chars: {}", text.len()))?;
        Some(text)
    } else {
        corpus.check_vocabulary(&tokenizer, &data_path)?;
        None
    };
    let validation_size = (corpus.len() as f64 * settings.val_fraction) as usize;
    let train_size = corpus.len() - validation_size;
    if train_size == 0 && !text_mode {
        return Err(CliError::input(format!(
            "--val-fraction {} leaves no training documents out of {}",
            settings.val_fraction,
            corpus.len()
        )));
    }
    let resumed = start
        .checkpoint
        .as_ref()
        .is_some_and(|loaded| loaded.resumed);
    if settings.batch_size > train_size && !text_mode {
        // More documents a step than there are would only repeat them, at the memory cost of
        // each copy. A resumed run's batch was clamped when it started, unless the file was edited.
        let source = if resumed {
            "the checkpoint's batch_size"
        } else {
            "--batch-size"
        };
        note!(
            "note: {source} {} is more than the {train_size} training documents; using {train_size}",
            settings.batch_size
        );
        settings.batch_size = train_size;
    }
    let sample_batch = if settings.rng == RngKind::Python {
        1
    } else {
        args.num_samples.clamp(1, 64)
    };
    let sizes = if loaded.is_some() {
        "--batch-size (the model's size is the checkpoint's)"
    } else {
        "--n-embd, --n-layer, --block-size or --batch-size"
    };
    memory::check(
        memory::training(&config, settings.batch_size, size_of::<F>(), sample_batch),
        args.max_memory,
        sizes,
    )?;

    // The initial weights are always drawn, even when a checkpoint replaces them, so that the
    // generator reaches the samples in the same state as in an uninterrupted run.
    let fresh =
        Params::<F>::init(config, &mut rng).map_err(|error| CliError::input(error.to_string()))?;
    let params = loaded
        .as_ref()
        .map_or(fresh, |checkpoint| checkpoint.params.clone());
    report.line(format_args!("num params: {}", params.num_params()))?;

    // A document of n characters predicts n + 1 tokens (its last character's successor is BOS).
    let too_long = corpus
        .documents()
        .filter(|_| !text_mode)
        .filter(|document| document.chars().count() + 1 > config.block_size)
        .count();
    if too_long > 0 {
        note!(
            "note: {too_long} documents are longer than block_size {} and are truncated to their first {} characters, as microgpt.py does",
            config.block_size,
            config.block_size - 1
        );
    }

    let adam_settings = AdamSettings {
        lr: settings.lr,
        weight_decay: settings.weight_decay,
        max_grad_norm: settings.grad_clip,
        ..AdamSettings::default()
    };
    let mut adam = match (&start.checkpoint, &loaded) {
        (
            Some(Loaded {
                path,
                resumed: true,
                ..
            }),
            Some(checkpoint),
        ) => {
            let state = checkpoint.adam.clone().ok_or_else(|| {
                CliError::input(format!(
                    "{} has no optimizer state to resume from; use --init to start a new run from its weights",
                    path.display()
                ))
            })?;
            Adam::from_state(adam_settings, state)
        }
        _ => Adam::new(adam_settings, &params),
    };
    let first_step = adam.step();
    let num_steps = settings.num_steps;
    let last_step = args
        .stop_after
        .map_or(num_steps, |stop| stop.min(num_steps));
    if first_step >= last_step {
        return Err(CliError::input(match args.stop_after {
            Some(stop) if stop <= first_step => format!(
                "--stop-after {stop} is not past the run's step {first_step}: give a later step (up to --steps {num_steps})"
            ),
            _ => format!(
                "nothing to do: the run is at step {first_step} of {num_steps}; raise --steps to train further"
            ),
        }));
    }

    let run = Run {
        settings: &settings,
        tokenizer: &tokenizer,
        fingerprint: corpus.fingerprint().clone(),
    };
    // Listening from before the first temporary file is created, so that none can outlive a signal.
    let interrupts = Interrupts::install(paths.temporaries())?;
    // Every step's row goes to the CSV's temporary file beside it as training goes, the chart gets
    // a bounded summary: memory stays the same however many steps are run.
    let mut csv = LossCsv::create(&paths.csv).map_err(|error| cannot_write(&paths.csv, error))?;
    if let Some(loaded) = start.checkpoint.as_ref().filter(|loaded| loaded.resumed) {
        let earlier = loaded.path.with_extension("csv");
        let copied = csv
            .carry_over(&earlier, first_step)
            .map_err(|error| cannot_write(&paths.csv, error))?;
        if copied < first_step {
            note!(
                "note: {} has loss rows up to step {copied} only; the new {} starts there",
                earlier.display(),
                paths.csv.display()
            );
        }
    }
    let mut guard = Guard::new(config.vocab_size);
    let names = params.names().to_vec();
    let mut healthy = Healthy::new(params.clone(), adam.state());
    let mut model = Model::new(params);
    let mut best_val_loss = settings.best_val_loss;
    // The batch's documents, tokenized into buffers reused from step to step.
    let mut batch = vec![Vec::new(); settings.batch_size];
    let schedule = settings.schedule();
    let sample_every = args.sample_every.filter(|&every| every > 0);
    let mut progress = Progress::new(first_step, last_step, num_steps);
    let validation = match &text {
        Some(text) => Validation::new(0, text.validation_windows(), settings.eval_docs),
        None => Validation::new(train_size, corpus.len(), settings.eval_docs),
    };
    // Encodes validation item `index` (a held-out document, or window) into a buffer.
    let held_out = |index: usize, tokens: &mut Vec<usize>| match &text {
        Some(text) => text.validation_window_into(index, tokens),
        None => corpus.encode_into(index, &tokenizer, tokens),
    };
    let mut final_val_loss = None;
    // Scoring a document without a backward pass costs about half a training step's document,
    // so a run that trains on at least as many documents as the split holds spends at most a
    // third of its time on the whole split. A shorter run (the default one: 500 names against
    // 3,203) keeps the subset's loss; `--eval-docs 0` scores the whole split every time.
    let whole_is_cheap = (last_step - first_step) * settings.batch_size >= validation.whole.len();
    let mut last_loss = 0.0;
    let mut done = first_step;
    let mut stopped_by = None;
    for step in first_step..last_step {
        for (b, tokens) in batch.iter_mut().enumerate() {
            let index = step * settings.batch_size + b;
            match &text {
                Some(text) => text.train_window_into(index, tokens),
                None => corpus.encode_into(index % train_size, &tokenizer, tokens),
            }
        }
        // Each step's masks from a seed of its own (gpt adds the chunk's index, below 2^20).
        let dropout = (settings.dropout > 0.0).then(|| Dropout {
            p: settings.dropout,
            seed: settings.seed.wrapping_add((step as u64 + 1) << 20),
        });
        let computed = model
            .batch_loss_with_dropout(&batch, dropout)
            .map_err(|error| CliError::failure(error.to_string()))?;
        let loss = computed.loss().to_f64();
        if let Some(problem) = guard.problem(loss, &computed, &names) {
            progress.finish();
            let state = run.checkpoint(healthy.params, Some(healthy.adam), best_val_loss);
            run.save(&state, &paths.healthy)?;
            return Err(CliError::input(format!(
                "training diverged at step {}: {problem}; {} is unchanged and the last healthy state (step {step}) is in {}: lower --lr and continue from it with --init",
                step + 1,
                paths.out.display(),
                paths.healthy.display()
            )));
        }
        healthy.record(computed.model(), &adam);
        let lr = schedule.learning_rate(step, num_steps);
        computed.apply_at(&mut adam, lr);
        last_loss = loss;
        done = step + 1;
        let predicted: usize = batch
            .iter()
            .map(|document| config.block_size.min(document.len() - 1))
            .sum();
        progress.step(step + 1, loss, lr, predicted);
        let mut point = LossPoint {
            step: step + 1,
            train_loss: loss,
            val_loss: None,
        };
        let last = step + 1 == num_steps;
        let evaluate_now =
            settings.eval_every > 0 && (step + 1).is_multiple_of(settings.eval_every) || last;
        if evaluate_now && !validation.whole.is_empty() {
            let started = Instant::now();
            let val_loss = mean_loss(&mut model, validation.subset.clone(), held_out)?;
            let mut line = format!("step {} | val loss {val_loss:.4}", step + 1);
            if last && validation.subset != validation.whole && whole_is_cheap {
                let whole = mean_loss(&mut model, validation.whole.clone(), held_out)?;
                line += &format!(
                    " | all {} held-out documents {whole:.4}",
                    validation.whole.len()
                );
                final_val_loss = Some(whole);
            } else if last {
                final_val_loss = Some(val_loss);
            }
            let improved = best_val_loss.is_none_or(|best| val_loss < best);
            if improved {
                best_val_loss = Some(val_loss);
                if args.keep_best {
                    let mut state =
                        run.checkpoint(model.params(), Some(adam.state()), best_val_loss);
                    state
                        .metadata
                        .insert("best_step".to_string(), (step + 1).to_string());
                    run.save(&state, &paths.best)?;
                    line += &format!(" | best so far, saved {}", paths.best.display());
                }
            }
            progress.note(&line);
            point.val_loss = Some(val_loss);
            progress.exclude(started.elapsed());
        }
        if sample_every.is_some_and(|every| (step + 1).is_multiple_of(every)) {
            let started = Instant::now();
            let params = model.params();
            // A generator of its own, so that the run's draws (and its final names) stay those of
            // a run without samples.
            let seed = settings.seed ^ (step as u64 + 1);
            let mut names = Vec::new();
            Sampler::<F>::new(config, args.sample_count.clamp(1, 64))
                .generate_each_streamed(
                    &params,
                    &tokenizer,
                    args.sample_count,
                    "",
                    &sampling,
                    |index| name_stream(seed, index),
                    |name| {
                        names.push(escaped(name).into_owned());
                        ControlFlow::Continue(())
                    },
                )
                .map_err(|error| CliError::failure(error.to_string()))?;
            progress.note(&format!("step {} | samples: {}", step + 1, names.join(" ")));
            progress.exclude(started.elapsed());
        }
        csv.push(&point)
            .map_err(|error| cannot_write(&paths.csv, error))?;
        if let Some(signal) = interrupts.received() {
            stopped_by = Some(signal);
            break;
        }
        if args
            .save_every
            .is_some_and(|every| every > 0 && done.is_multiple_of(every))
            && done < last_step
        {
            // The rows first: if the run dies between the two, the CSV holds rows past the
            // checkpoint, which a resumed run ignores, rather than too few.
            csv = csv
                .save()
                .map_err(|error| cannot_write(&paths.csv, error))?;
            let state = run.checkpoint(model.params(), Some(adam.state()), best_val_loss);
            run.save(&state, &paths.out)?;
        }
    }
    let (training_time, throughput) = (progress.training_time(), progress.tokens_per_second());
    progress.finish();
    note!(
        "trained steps {}..{done} in {:.2}s, {:.0} tokens/s (validation excluded)",
        first_step + 1,
        training_time.as_secs_f64(),
        throughput
    );

    // Everything is saved before anything is reported, so that a closed stdout loses nothing.
    let mut checkpoint = run.checkpoint(model.params(), Some(adam.state()), best_val_loss);
    if let Some(loss) = final_val_loss {
        checkpoint
            .metadata
            .insert("val_loss".to_string(), loss.to_string());
    }
    run.save(&checkpoint, &paths.out)?;
    let loss_log = csv
        .commit()
        .map_err(|error| cannot_write(&paths.csv, error))?;
    plot::write_svg(&paths.svg, &loss_log, &chart_title(&settings))
        .map_err(|error| cannot_write(&paths.svg, error))?;
    note!(
        "saved {} (loss curve: {} and {})",
        paths.out.display(),
        paths.csv.display(),
        paths.svg.display()
    );
    if args.keep_best
        && let Some(best) = best_val_loss
    {
        note!(
            "best validation loss {best:.4}: its checkpoint is {}",
            paths.best.display()
        );
    }
    if let Some(signal) = stopped_by.or(interrupts.received()) {
        return Err(CliError {
            message: format!(
                "{}: stopped after step {done} of {num_steps} and saved {}; continue with --resume {}",
                signal.name(),
                paths.out.display(),
                paths.out.display()
            ),
            kind: Kind::Interrupted(signal.exit_status()),
        });
    }
    report.line(format_args!(
        "step {last_step:4} / {num_steps:4} | loss {last_loss:.4}"
    ))?;

    if text_mode && args.num_samples > 0 {
        note!(
            "continue text with: microgpt sample --model {} --length 200 --prompt TEXT",
            paths.out.display()
        );
    }
    if args.num_samples > 0 && !report.closed && !text_mode {
        report.line(format_args!("--- inference (new, hallucinated names) ---"))?;
        // CPython draws every token of a name before the next name: keep that order with batch 1.
        let mut sampler = Sampler::<F>::new(config, sample_batch);
        let mut index = 0;
        let mut written = Ok(());
        let on_name = |name: &str| {
            index += 1;
            written = report.line(format_args!("sample {index:2}: {}", escaped(name)));
            if written.is_ok() && !report.closed {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        };
        let (params, count) = (&checkpoint.params, args.num_samples);
        match settings.rng {
            // microgpt.py's names come from its one stream, after the initial weights' draws.
            RngKind::Python => {
                sampler.generate_each(params, &tokenizer, count, "", &sampling, &mut rng, on_name)
            }
            // The names `microgpt sample --seed SEED` prints from this checkpoint.
            RngKind::Rust => {
                let stream = |index| name_stream(settings.seed, index);
                sampler.generate_each_streamed(
                    params, &tokenizer, count, "", &sampling, stream, on_name,
                )
            }
        }
        .map_err(|error| CliError::failure(error.to_string()))?;
        written?;
    }
    Ok(())
}

/// The held-out documents: the fixed subset the periodic evaluations score, the same documents
/// every time so that their losses compare the models and not the samples, and the whole split,
/// scored once at the end.
struct Validation {
    subset: Range<usize>,
    whole: Range<usize>,
}

impl Validation {
    /// The split `train_size..len`, and its first `eval_docs` documents (all of them for 0).
    fn new(train_size: usize, len: usize, eval_docs: usize) -> Self {
        let whole = train_size..len;
        let subset_len = if eval_docs == 0 {
            whole.len()
        } else {
            eval_docs.min(whole.len())
        };
        Validation {
            subset: train_size..train_size + subset_len,
            whole,
        }
    }
}

/// The run's lines on stdout. They report on the run rather than being its product, so when the
/// reader goes away (`microgpt train | head -1`) the run goes on and saves its checkpoint, and only
/// stops printing (and skips the samples, which would go nowhere); any other write error (a full
/// disk) ends it.
#[derive(Default)]
struct Report {
    closed: bool,
}

impl Report {
    fn line(&mut self, arguments: std::fmt::Arguments) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        match stream::write_line(arguments) {
            Err(error) if error.kind == Kind::ClosedPipe => {
                self.closed = true;
                Ok(())
            }
            result => result,
        }
    }
}

/// What every checkpoint of a run records besides its weights and optimizer state.
struct Run<'a> {
    settings: &'a RunSettings,
    tokenizer: &'a Tokenizer,
    fingerprint: Fingerprint,
}

impl Run<'_> {
    fn checkpoint<F: Float>(
        &self,
        params: Params<F>,
        adam: Option<AdamState<F>>,
        best_val_loss: Option<f64>,
    ) -> Checkpoint<F> {
        let mut metadata = self.settings.metadata();
        if let Some(best) = best_val_loss {
            metadata.insert("best_val_loss".to_string(), best.to_string());
        }
        metadata.insert(
            DATA_DOCUMENTS.to_string(),
            self.fingerprint.documents.to_string(),
        );
        metadata.insert(DATA_SHA256.to_string(), self.fingerprint.sha256.clone());
        Checkpoint {
            params,
            tokenizer: self.tokenizer.clone(),
            adam,
            metadata,
        }
    }

    fn save<F: Float>(&self, checkpoint: &Checkpoint<F>, path: &Path) -> Result<()> {
        save_checkpoint(checkpoint, path, self.settings.dtype)
    }
}

/// The metadata entries of the data fingerprint.
const DATA_DOCUMENTS: &str = "data_documents";
const DATA_SHA256: &str = "data_sha256";

/// `--resume` must be given the data the run was trained on: other data would silently continue a
/// different run. Checkpoints saved before fingerprints were recorded resume unchecked, with a note.
fn check_fingerprint(loaded: &Loaded, data: &Fingerprint, data_path: &Path) -> Result<()> {
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

/// Every file the run will write, checked against each other and the inputs before step 1.
fn check_outputs(
    paths: &Paths,
    data: &Path,
    checkpoint: Option<&Loaded>,
    keep_best: bool,
) -> Result<()> {
    let resumed_from = checkpoint.map(|loaded| loaded.path.as_path());
    let mut planned = vec![
        Planned {
            what: "the checkpoint (--out)",
            path: &paths.out,
            may_replace: resumed_from,
        },
        Planned {
            what: "the loss CSV (beside --out)",
            path: &paths.csv,
            may_replace: None,
        },
        Planned {
            what: "the loss chart (beside --out)",
            path: &paths.svg,
            may_replace: None,
        },
        Planned {
            what: "the last healthy state (beside --out)",
            path: &paths.healthy,
            may_replace: None,
        },
    ];
    if keep_best {
        planned.push(Planned {
            what: "the best checkpoint (--keep-best, beside --out)",
            path: &paths.best,
            // Resuming a run whose best checkpoint is the one resumed from replaces it.
            may_replace: resumed_from,
        });
    }
    let mut inputs = vec![Input {
        what: "the data (--data)",
        path: data,
    }];
    if let Some(loaded) = checkpoint {
        inputs.push(Input {
            what: if loaded.resumed {
                "the checkpoint (--resume)"
            } else {
                "the checkpoint (--init)"
            },
            path: &loaded.path,
        });
    }
    outputs::check(&planned, &inputs)
}

/// The mean per-token loss of the items `range`, each encoded by `encode(index, buffer)` (a
/// document of a corpus whose vocabulary was checked, or a window of text).
pub fn mean_loss<F: Float>(
    model: &mut Model<F>,
    range: Range<usize>,
    mut encode: impl FnMut(usize, &mut Vec<usize>),
) -> Result<f64> {
    // Enough documents at a time to keep every core busy with whole chunks, tokenized into
    // buffers reused from group to group.
    const GROUP: usize = 256;
    let mut group: Vec<Vec<usize>> = Vec::new();
    let mut sum = NllSum::default();
    for start in range.clone().step_by(GROUP) {
        let indices = start..(start + GROUP).min(range.end);
        group.resize_with(indices.len(), Vec::new);
        for (tokens, index) in group.iter_mut().zip(indices) {
            encode(index, tokens);
        }
        model
            .add_nll(&group, &mut sum)
            .map_err(|error| CliError::failure(error.to_string()))?;
    }
    Ok(sum.mean())
}

fn chart_title(settings: &RunSettings) -> String {
    format!(
        "microgpt loss ({} steps, lr {})",
        settings.num_steps, settings.lr
    )
}

/// A write that fails after the outputs were checked is the environment's failure (a full disk).
fn cannot_write(path: &Path, error: std::io::Error) -> CliError {
    CliError::failure(format!("cannot write {}: {error}", path.display()))
}
