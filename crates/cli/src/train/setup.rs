//! Everything a run decides and checks before its first step, in the order the user hears of it:
//! every input error comes before any output is written (only the outputs' lock and the probes of
//! their directories come earlier), and the generator draws the shuffle and the initial weights
//! in microgpt.py's order.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use gpt::{Adam, AdamSettings, Checkpoint, Config, Params, SamplingOptions, Tokenizer};
use tape::Float;

use crate::args::{DataFormat, TrainArgs, given};
use crate::corpus::Corpus;
use crate::data;
use crate::defaults;
use crate::error::{CliError, Result};
use crate::memory;
use crate::outputs;
use crate::rng::{Generator, RngKind};
use crate::settings::RunSettings;
use crate::stream::note;
use crate::text::Text;

use super::fingerprint;
use super::paths::{Paths, check_outputs};
use super::plan::Plan;
use super::report::Report;
use super::start::{Loaded, Start};
use super::training_data::TrainingData;

/// A run ready for its first step.
pub struct Setup<F: Float> {
    pub plan: Plan,
    pub params: Params<F>,
    pub adam: Adam<F>,
    /// The run's generator, past the shuffle and the initial weights: a python-rng run draws its
    /// final names from it, as microgpt.py does.
    pub rng: Generator,
    pub report: Report,
    /// The lock on `--out` ([`outputs::lock`]).
    pub lock: File,
}

impl<F: Float> Setup<F> {
    pub fn prepare(args: &TrainArgs, start: Start) -> Result<Self> {
        let Start {
            mut settings,
            checkpoint,
        } = start;
        let sampling = SamplingOptions::new(args.temperature, None, None)?;
        let paths = Paths::new(args.out.clone());
        let loaded = checkpoint
            .as_ref()
            .map(|loaded| loaded.checkpoint.cast::<F>());
        if let Some(checkpoint) = &loaded {
            settings.check_config_flags(args, checkpoint.params.config())?;
        }
        let data_path = data::path_or_default(given!(args.data).map(PathBuf::as_path))?;
        check_keep_best(args.keep_best, settings.val_fraction)?;
        check_outputs(&paths, &data_path, checkpoint.as_ref(), args.keep_best)?;
        let lock = outputs::lock(&paths.out)?;

        let resumed = checkpoint.as_ref().filter(|loaded| loaded.resumed);
        let mut rng = Generator::new(settings.rng, settings.seed);
        let mut report = Report::default();
        let (data, config) = read_data(
            &data_path,
            resumed,
            loaded.as_ref(),
            &mut settings,
            &mut rng,
            &mut report,
        )?;
        let sample_batch = sample_batch(settings.rng, args.num_samples);
        check_memory::<F>(
            &config,
            &settings,
            sample_batch,
            args.max_memory,
            loaded.is_some(),
        )?;
        let params = params(config, &mut rng, loaded.as_ref())?;
        report.line(format_args!("num params: {}", params.num_params()))?;
        note_truncated(&data, &config);
        let resumed_from = resumed.map(|loaded| loaded.path.clone());
        let adam = adam(&settings, resumed_from.as_deref(), loaded.as_ref(), &params)?;
        let steps = steps(adam.step(), settings.num_steps, args.stop_after)?;

        let plan = Plan {
            settings,
            sampling,
            paths,
            data,
            config,
            steps,
            sample_batch,
            resumed_from,
        };
        Ok(Setup {
            plan,
            params,
            adam,
            rng,
            report,
            lock,
        })
    }
}

/// The data, its vocabulary (the checkpoint's, or the data's characters), and the model's
/// configuration, which running text needs to cut its windows. The batch shrinks to the training
/// documents when they are fewer.
fn read_data<F: Float>(
    path: &Path,
    resumed: Option<&Loaded>,
    loaded: Option<&Checkpoint<F>>,
    settings: &mut RunSettings,
    rng: &mut Generator,
    report: &mut Report,
) -> Result<(TrainingData, Config)> {
    let corpus = read_corpus(path, resumed, settings, rng)?;
    let text_mode = settings.format == DataFormat::Text;
    let tokenizer = tokenizer(loaded, &corpus, text_mode);
    if !text_mode {
        report.line(format_args!("num docs: {}", corpus.len()))?;
    }
    report.line(format_args!("vocab size: {}", tokenizer.vocab_size()))?;
    let config = config(loaded, settings, tokenizer.vocab_size())?;
    let text = text(&corpus, &tokenizer, &config, settings, path, report)?;
    let train_size = train_size(&corpus, settings.val_fraction, text_mode)?;
    clamp_batch(settings, train_size, resumed.is_some(), text_mode);
    let data = TrainingData {
        corpus,
        text,
        tokenizer,
        train_size,
    };
    Ok((data, config))
}

/// `--keep-best` compares validation losses, which a run without a held-out split has none of.
fn check_keep_best(keep_best: bool, val_fraction: f64) -> Result<()> {
    if keep_best && val_fraction == 0.0 {
        return Err(CliError::input(
            "--keep-best needs validation: give a --val-fraction above 0",
        ));
    }
    Ok(())
}

/// The data, checked against the run it resumes, and shuffled as microgpt.py shuffles its list.
fn read_corpus(
    path: &Path,
    resumed: Option<&Loaded>,
    settings: &RunSettings,
    rng: &mut Generator,
) -> Result<Corpus> {
    let mut corpus = Corpus::read(path)?;
    if let Some(loaded) = resumed {
        fingerprint::check(loaded, corpus.fingerprint(), path)?;
    }
    if settings.shuffle && settings.format != DataFormat::Text {
        corpus.shuffle(rng);
    }
    Ok(corpus)
}

/// The checkpoint's vocabulary, or the characters of the data.
fn tokenizer<F: Float>(
    loaded: Option<&Checkpoint<F>>,
    corpus: &Corpus,
    text_mode: bool,
) -> Tokenizer {
    match loaded {
        Some(checkpoint) => checkpoint.tokenizer.clone(),
        None if text_mode => Tokenizer::from_documents([corpus.text()]),
        None => corpus.vocabulary().clone(),
    }
}

/// The checkpoint's configuration, or the flags' over the data's vocabulary.
fn config<F: Float>(
    loaded: Option<&Checkpoint<F>>,
    settings: &RunSettings,
    vocab_size: usize,
) -> Result<Config> {
    let config = match loaded {
        Some(checkpoint) => *checkpoint.params.config(),
        None => settings.config(vocab_size),
    };
    config.validate()?;
    Ok(config)
}

/// The data as running text (`--format text`), or `None` once every document is found to be in
/// the vocabulary.
fn text(
    corpus: &Corpus,
    tokenizer: &Tokenizer,
    config: &Config,
    settings: &RunSettings,
    data_path: &Path,
    report: &mut Report,
) -> Result<Option<Text>> {
    if settings.format != DataFormat::Text {
        corpus.check_vocabulary(tokenizer, data_path)?;
        return Ok(None);
    }
    let text = Text::new(
        corpus.text(),
        tokenizer,
        config.block_size,
        settings.val_fraction,
        settings.seed,
    )?;
    report.line(format_args!("num chars: {}", text.len()))?;
    Ok(Some(text))
}

/// The documents before the held-out ones, of which a run of documents needs at least one.
fn train_size(corpus: &Corpus, val_fraction: f64, text_mode: bool) -> Result<usize> {
    let validation_size = (corpus.len() as f64 * val_fraction) as usize;
    let train_size = corpus.len() - validation_size;
    if train_size == 0 && !text_mode {
        return Err(CliError::input(format!(
            "--val-fraction {val_fraction} leaves no training documents out of {}",
            corpus.len()
        )));
    }
    Ok(train_size)
}

/// More documents a step than there are would only repeat them, at the memory cost of each copy.
/// A resumed run's batch was clamped when it started, unless the file was edited.
fn clamp_batch(settings: &mut RunSettings, train_size: usize, resumed: bool, text_mode: bool) {
    if settings.batch_size <= train_size || text_mode {
        return;
    }
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

/// Names generated at once after training. CPython draws every token of a name before the next
/// name: a python-rng run keeps that order with batch 1.
fn sample_batch(rng: RngKind, num_samples: usize) -> usize {
    if rng == RngKind::Python {
        1
    } else {
        num_samples.clamp(1, defaults::SAMPLE_BATCH)
    }
}

/// The run's memory against `--max-memory`, naming the flags that change it.
fn check_memory<F: Float>(
    config: &Config,
    settings: &RunSettings,
    sample_batch: usize,
    max_memory: Option<f64>,
    from_checkpoint: bool,
) -> Result<()> {
    let sizes = if from_checkpoint {
        "--batch-size (the model's size is the checkpoint's)"
    } else {
        "--n-embd, --n-layer, --block-size or --batch-size"
    };
    let bytes = memory::training(config, settings.batch_size, size_of::<F>(), sample_batch);
    memory::check(bytes, max_memory, sizes)
}

/// The checkpoint's weights, or fresh ones. The initial weights are always drawn, even when a
/// checkpoint replaces them, so that the generator reaches the samples in the same state as in an
/// uninterrupted run.
fn params<F: Float>(
    config: Config,
    rng: &mut Generator,
    loaded: Option<&Checkpoint<F>>,
) -> Result<Params<F>> {
    let fresh = Params::<F>::init(config, rng)?;
    Ok(loaded.map_or(fresh, |checkpoint| checkpoint.params.clone()))
}

/// A document of n characters predicts n + 1 tokens (its last character's successor is BOS): the
/// note says how many do not fit in a block.
fn note_truncated(data: &TrainingData, config: &Config) {
    if data.text.is_some() {
        return;
    }
    // Validated, the block holds at least one token.
    let too_long = data.corpus.count_longer_than(config.block_size - 1);
    if too_long > 0 {
        note!(
            "note: {too_long} documents are longer than block_size {} and are truncated to their first {} characters, as microgpt.py does",
            config.block_size,
            config.block_size - 1
        );
    }
}

/// The optimizer: the resumed run's state (`resumed_from` names its checkpoint), or a fresh one.
fn adam<F: Float>(
    settings: &RunSettings,
    resumed_from: Option<&Path>,
    loaded: Option<&Checkpoint<F>>,
    params: &Params<F>,
) -> Result<Adam<F>> {
    let adam_settings = AdamSettings {
        lr: settings.lr,
        weight_decay: settings.weight_decay,
        max_grad_norm: settings.grad_clip,
        ..AdamSettings::default()
    };
    let (Some(path), Some(checkpoint)) = (resumed_from, loaded) else {
        return Ok(Adam::new(adam_settings, params));
    };
    let state = checkpoint.adam.clone().ok_or_else(|| {
        CliError::input(format!(
            "{} has no optimizer state to resume from; use --init to start a new run from its weights",
            path.display()
        ))
    })?;
    Ok(Adam::from_state(adam_settings, state))
}

/// The steps from the optimizer's to `--stop-after` or the run's end; none is an error that says
/// which flag to change.
fn steps(first_step: usize, num_steps: usize, stop_after: Option<usize>) -> Result<Range<usize>> {
    let last_step = stop_after.map_or(num_steps, |stop| stop.min(num_steps));
    if first_step < last_step {
        return Ok(first_step..last_step);
    }
    Err(CliError::input(match stop_after {
        Some(stop) if stop <= first_step => format!(
            "--stop-after {stop} is not past the run's step {first_step}: give a later step (up to --steps {num_steps})"
        ),
        _ => format!(
            "nothing to do: the run is at step {first_step} of {num_steps}; raise --steps to train further"
        ),
    }))
}
