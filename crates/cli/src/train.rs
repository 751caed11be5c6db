//! `microgpt train`: microgpt.py's training run, with validation, checkpoints and resumption.

use std::ops::Range;
use std::path::{Path, PathBuf};

use gpt::{
    Adam, AdamSettings, Checkpoint, Dtype, Model, NllSum, Params, Sampler, SamplingOptions,
    Tokenizer,
};
use tape::Float;

use crate::args::TrainArgs;
use crate::checkpoint_error;
use crate::corpus::Corpus;
use crate::data::{self, DEFAULT_DATA};
use crate::error::{CliError, Result};
use crate::loss_csv::LossCsv;
use crate::loss_log::LossLog;
use crate::plot::{self, LossPoint};
use crate::progress::Progress;
use crate::rng::{Generator, RngKind};
use crate::settings::RunSettings;

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
        let checkpoint = gpt::load::<f64>(path).map_err(|error| checkpoint_error(path, error))?;
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

fn train<F: Float>(args: &TrainArgs, start: Start) -> Result<()> {
    let settings = start.settings;
    let sampling = SamplingOptions {
        temperature: args.temperature,
        top_k: None,
        top_p: None,
    };
    sampling
        .validate()
        .map_err(|error| CliError::input(error.to_string()))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT));
    check_output_directory(&out)?;

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
    let mut corpus = Corpus::read(&data_path)?;
    let mut rng = Generator::new(settings.rng, settings.seed);
    if settings.shuffle {
        corpus.shuffle(&mut rng);
    }
    let tokenizer = match &loaded {
        Some(checkpoint) => checkpoint.tokenizer.clone(),
        None => Tokenizer::from_documents(corpus.documents()),
    };
    println!("num docs: {}", corpus.len());
    println!("vocab size: {}", tokenizer.vocab_size());

    let config = match &loaded {
        Some(checkpoint) => *checkpoint.params.config(),
        None => settings.config(tokenizer.vocab_size()),
    };
    config
        .validate()
        .map_err(|error| CliError::input(error.to_string()))?;
    // The initial weights are always drawn, even when a checkpoint replaces them, so that the
    // generator reaches the samples in the same state as in an uninterrupted run.
    let fresh =
        Params::<F>::init(config, &mut rng).map_err(|error| CliError::input(error.to_string()))?;
    let params = loaded
        .as_ref()
        .map_or(fresh, |checkpoint| checkpoint.params.clone());
    println!("num params: {}", params.num_params());

    corpus.check_vocabulary(&tokenizer, &data_path)?;
    let validation_size = (corpus.len() as f64 * settings.val_fraction) as usize;
    let train_size = corpus.len() - validation_size;
    if train_size == 0 {
        return Err(CliError::input(format!(
            "--val-fraction {} leaves no training documents out of {}",
            settings.val_fraction,
            corpus.len()
        )));
    }
    // A document of n characters predicts n + 1 tokens (its last character's successor is BOS).
    let too_long = corpus
        .documents()
        .filter(|document| document.chars().count() + 1 > config.block_size)
        .count();
    if too_long > 0 {
        eprintln!(
            "note: {too_long} documents are longer than block_size {} and are truncated to their first {} characters, as microgpt.py does",
            config.block_size,
            config.block_size - 1
        );
    }

    let adam_settings = AdamSettings {
        lr: settings.lr,
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
            Adam {
                settings: adam_settings,
                state,
            }
        }
        _ => Adam::new(adam_settings, &params),
    };
    let first_step = adam.state.step;
    let num_steps = settings.num_steps;
    let last_step = args
        .stop_after
        .map_or(num_steps, |stop| stop.min(num_steps));
    if first_step >= last_step {
        return Err(CliError::input(format!(
            "nothing to do: the run is at step {first_step} of {num_steps}; raise --steps to train further"
        )));
    }

    // The CSV gets a row per step as training goes, the chart a bounded summary: memory stays
    // the same however many steps are run. The CSV replaces the old one only once the run succeeds.
    let csv_path = with_extension(&out, "csv");
    let mut csv = LossCsv::create(&csv_path).map_err(|error| cannot_write(&csv_path, error))?;
    let mut loss_log = LossLog::default();
    let mut model = Model::new(params);
    let mut best_val_loss = settings.best_val_loss;
    // The batch's documents, tokenized into buffers reused from step to step.
    let mut batch = vec![Vec::new(); settings.batch_size];
    let mut progress = Progress::new(first_step, last_step);
    let mut last_loss = 0.0;
    for step in first_step..last_step {
        for (b, tokens) in batch.iter_mut().enumerate() {
            let index = (step * settings.batch_size + b) % train_size;
            corpus.encode_into(index, &tokenizer, tokens);
        }
        let loss = model
            .batch_loss(&batch)
            .map_err(|error| CliError::failure(error.to_string()))?
            .to_f64();
        if !loss.is_finite() {
            progress.finish();
            return Err(CliError::input(format!(
                "training diverged: the loss is {loss} at step {}; lower --lr (nothing was saved, {} is unchanged)",
                step + 1,
                out.display()
            )));
        }
        let lr = adam.settings.learning_rate(step, num_steps);
        model.apply_adam(&mut adam, num_steps);
        last_loss = loss;
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
        let evaluate_now = settings.eval_every > 0
            && (step + 1).is_multiple_of(settings.eval_every)
            || step + 1 == num_steps;
        if evaluate_now && validation_size > 0 {
            let validation = train_size..corpus.len();
            let val_loss = mean_loss(&mut model, &corpus, validation, &tokenizer)?;
            progress.note(&format!("step {} | val loss {val_loss:.4}", step + 1));
            best_val_loss = Some(best_val_loss.map_or(val_loss, |best: f64| best.min(val_loss)));
            point.val_loss = Some(val_loss);
        }
        csv.push(&point)
            .map_err(|error| cannot_write(&csv_path, error))?;
        loss_log.push(&point);
    }
    progress.finish();
    println!("step {last_step:4} / {num_steps:4} | loss {last_loss:.4}");

    let mut metadata = settings.metadata();
    if let Some(best) = best_val_loss {
        metadata.insert("best_val_loss".to_string(), best.to_string());
    }
    let checkpoint = Checkpoint {
        params: model.params(),
        tokenizer: tokenizer.clone(),
        adam: Some(adam.state.clone()),
        metadata,
    };
    gpt::save(&checkpoint, &out, settings.dtype).map_err(|error| checkpoint_error(&out, error))?;
    csv.commit()
        .map_err(|error| cannot_write(&csv_path, error))?;
    let svg_path = with_extension(&out, "svg");
    plot::write_svg(&svg_path, &loss_log, &chart_title(&settings))
        .map_err(|error| cannot_write(&svg_path, error))?;
    eprintln!(
        "saved {} (loss curve: {} and {})",
        out.display(),
        csv_path.display(),
        svg_path.display()
    );

    if args.samples > 0 {
        println!("--- inference (new, hallucinated names) ---");
        // CPython draws every token of a name before the next name: keep that order with batch 1.
        let batch = if settings.rng == RngKind::Python {
            1
        } else {
            args.samples.min(64)
        };
        let mut sampler = Sampler::<F>::new(config, batch);
        let names = sampler
            .generate(
                &checkpoint.params,
                &tokenizer,
                args.samples,
                "",
                &sampling,
                &mut rng,
            )
            .map_err(|error| CliError::failure(error.to_string()))?;
        for (index, name) in names.iter().enumerate() {
            println!("sample {:2}: {name}", index + 1);
        }
    }
    Ok(())
}

/// The mean per-token loss of the documents `range` of `corpus` (whose vocabulary was checked).
pub fn mean_loss<F: Float>(
    model: &mut Model<F>,
    corpus: &Corpus,
    range: Range<usize>,
    tokenizer: &Tokenizer,
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
            corpus.encode_into(index, tokenizer, tokens);
        }
        model
            .add_nll(&group, &mut sum)
            .map_err(|error| CliError::failure(error.to_string()))?;
    }
    Ok(sum.mean())
}

fn check_output_directory(out: &Path) -> Result<()> {
    let directory = out
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !directory.is_dir() {
        return Err(CliError::input(format!(
            "cannot save to {}: directory {} does not exist; create it or choose another --out",
            out.display(),
            directory.display()
        )));
    }
    Ok(())
}

/// `run.safetensors` -> `run.csv`.
fn with_extension(path: &Path, extension: &str) -> PathBuf {
    path.with_extension(extension)
}

fn chart_title(settings: &RunSettings) -> String {
    format!(
        "microgpt loss ({} steps, lr {})",
        settings.num_steps, settings.lr
    )
}

fn cannot_write(path: &Path, error: std::io::Error) -> CliError {
    CliError::input(format!("cannot write {}: {error}", path.display()))
}
