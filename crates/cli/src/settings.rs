//! A training run's settings: from the flags with their defaults, or from the checkpoint a run
//! resumes, and back into that checkpoint's metadata.

use std::collections::BTreeMap;
use std::str::FromStr;

use gpt::{BatchMean, Checkpoint, Config, Decay, Dtype, Schedule};

use crate::args::{DataFormat, TrainArgs, given};
use crate::defaults;
use crate::error::{CliError, Result};
use crate::rng::RngKind;

/// Everything that determines a run besides the data and the starting weights.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSettings {
    pub num_steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub lr_schedule: Decay,
    pub warmup_steps: usize,
    pub min_lr: f64,
    pub weight_decay: f64,
    /// The global gradient norm the steps clip to (`None`: no clipping).
    pub grad_clip: Option<f64>,
    pub dropout: f64,
    pub batch_mean: BatchMean,
    pub seed: u64,
    pub rng: RngKind,
    pub shuffle: bool,
    pub format: DataFormat,
    pub val_fraction: f64,
    pub eval_every: usize,
    /// Held-out documents of the periodic evaluations (0: all of them).
    pub eval_docs: usize,
    pub dtype: Dtype,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub block_size: usize,
    /// The best validation loss so far (of the resumed run).
    pub best_val_loss: Option<f64>,
}

impl RunSettings {
    /// The flags, with microgpt.py's defaults for those not given.
    pub fn fresh(args: &TrainArgs) -> Result<Self> {
        let settings = RunSettings {
            num_steps: args.steps,
            batch_size: args.batch_size,
            lr: args.lr,
            lr_schedule: args.lr_schedule,
            warmup_steps: args.warmup_steps,
            min_lr: args.min_lr,
            weight_decay: args.weight_decay,
            grad_clip: args.grad_clip,
            dropout: args.dropout,
            batch_mean: args.batch_mean,
            seed: args.seed,
            rng: args.rng,
            shuffle: !args.no_shuffle,
            format: args.format,
            val_fraction: args.val_fraction,
            eval_every: args.eval_every,
            eval_docs: args.eval_docs,
            dtype: args.dtype,
            n_layer: args.n_layer,
            n_embd: args.n_embd,
            n_head: args.n_head,
            block_size: args.block_size,
            best_val_loss: None,
        };
        settings.validate(|_| None)?;
        Ok(settings)
    }

    /// The settings recorded in `checkpoint`; flags may repeat them but not contradict them,
    /// except `--steps`, which may extend the run.
    pub fn resumed(args: &TrainArgs, checkpoint: &Checkpoint<f64>) -> Result<Self> {
        let metadata = &checkpoint.metadata;
        let config = checkpoint.params.config();
        let recorded = RunSettings {
            num_steps: field(metadata, "num_steps")?,
            batch_size: field(metadata, "batch_size")?,
            lr: field(metadata, "lr")?,
            // Runs saved before schedules were flags used microgpt.py's.
            lr_schedule: optional_field(metadata, "lr_schedule", defaults::LR_SCHEDULE)?,
            warmup_steps: optional_field(metadata, "warmup_steps", defaults::WARMUP_STEPS)?,
            min_lr: optional_field(metadata, "min_lr", defaults::MIN_LR)?,
            // Runs saved before these were flags used plain Adam without clipping.
            weight_decay: optional_field(metadata, "weight_decay", defaults::WEIGHT_DECAY)?,
            grad_clip: optional_field::<GradClip>(metadata, "grad_clip", GradClip(None))?.0,
            dropout: optional_field(metadata, "dropout", defaults::DROPOUT)?,
            batch_mean: optional_field(metadata, "batch_mean", defaults::BATCH_MEAN)?,
            seed: field(metadata, "seed")?,
            rng: RngKind::from_name(&field::<String>(metadata, "rng")?)
                .ok_or_else(|| CliError::input("the checkpoint records an unknown rng"))?,
            shuffle: field(metadata, "shuffle")?,
            format: recorded_format(metadata)?,
            val_fraction: field(metadata, "val_fraction")?,
            eval_every: field(metadata, "eval_every")?,
            // Runs saved before --eval-docs scored the whole split every time.
            eval_docs: optional_field(metadata, "eval_docs", 0)?,
            dtype: field(metadata, "dtype")?,
            n_layer: config.n_layer,
            n_embd: config.n_embd,
            n_head: config.n_head,
            block_size: config.block_size,
            best_val_loss: metadata
                .get("best_val_loss")
                .and_then(|value| value.parse().ok()),
        };
        let conflicts = [
            (
                "--batch-size",
                differs(given!(args.batch_size), &recorded.batch_size),
            ),
            ("--lr", differs(given!(args.lr), &recorded.lr)),
            (
                "--lr-schedule",
                differs(given!(args.lr_schedule), &recorded.lr_schedule),
            ),
            (
                "--warmup-steps",
                differs(given!(args.warmup_steps), &recorded.warmup_steps),
            ),
            ("--min-lr", differs(given!(args.min_lr), &recorded.min_lr)),
            (
                "--weight-decay",
                differs(given!(args.weight_decay), &recorded.weight_decay),
            ),
            (
                "--grad-clip",
                args.grad_clip
                    .is_some_and(|v| Some(v) != recorded.grad_clip),
            ),
            (
                "--dropout",
                differs(given!(args.dropout), &recorded.dropout),
            ),
            (
                "--batch-mean",
                differs(given!(args.batch_mean), &recorded.batch_mean),
            ),
            ("--seed", differs(given!(args.seed), &recorded.seed)),
            ("--rng", differs(given!(args.rng), &recorded.rng)),
            ("--no-shuffle", args.no_shuffle && recorded.shuffle),
            ("--format", differs(given!(args.format), &recorded.format)),
            (
                "--val-fraction",
                differs(given!(args.val_fraction), &recorded.val_fraction),
            ),
            (
                "--eval-every",
                differs(given!(args.eval_every), &recorded.eval_every),
            ),
            (
                "--eval-docs",
                differs(given!(args.eval_docs), &recorded.eval_docs),
            ),
            ("--dtype", differs(given!(args.dtype), &recorded.dtype)),
        ];
        if let Some((flag, _)) = conflicts.iter().find(|(_, conflict)| *conflict) {
            return Err(CliError::input(format!(
                "{flag} differs from the run being resumed; --resume continues a run with its own settings (drop {flag}, or use --init to start a new run)"
            )));
        }
        let steps = given!(args.steps).copied();
        let settings = RunSettings {
            num_steps: steps.unwrap_or(recorded.num_steps),
            ..recorded
        };
        // Only --steps can change a resumed run's settings: any other bad value is the file's.
        settings.validate(|key| (key != "num_steps" || steps.is_none()).then_some(key))?;
        Ok(settings)
    }

    /// Checks the values; `from_checkpoint(key)` names the metadata entry a value was read from,
    /// so that the message blames the file rather than a flag the user never passed.
    fn validate(
        &self,
        from_checkpoint: impl Fn(&'static str) -> Option<&'static str>,
    ) -> Result<()> {
        let (key, flag, rule) = if self.num_steps == 0 {
            ("num_steps", "--steps", "must be at least 1")
        } else if self.batch_size == 0 {
            ("batch_size", "--batch-size", "must be at least 1")
        } else if !(self.lr.is_finite() && self.lr > 0.0) {
            ("lr", "--lr", "must be a positive number")
        } else if !(self.min_lr.is_finite() && (0.0..=self.lr).contains(&self.min_lr)) {
            ("min_lr", "--min-lr", "must be at least 0 and at most --lr")
        } else if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            (
                "weight_decay",
                "--weight-decay",
                "must be a number at least 0",
            )
        } else if self
            .grad_clip
            .is_some_and(|clip| !(clip.is_finite() && clip > 0.0))
        {
            ("grad_clip", "--grad-clip", "must be a positive number")
        } else if !(0.0..1.0).contains(&self.dropout) {
            ("dropout", "--dropout", "must be at least 0 and below 1")
        } else if !(0.0..1.0).contains(&self.val_fraction) {
            (
                "val_fraction",
                "--val-fraction",
                "must be at least 0 and below 1",
            )
        } else {
            return Ok(());
        };
        Err(CliError::input(match from_checkpoint(key) {
            Some(key) => format!(
                "the checkpoint's {key} {rule}: the file was edited or damaged; start a new run from its weights with --init"
            ),
            None => format!("{flag} {rule}"),
        }))
    }

    /// The learning rate of every step.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            lr: self.lr,
            decay: self.lr_schedule,
            warmup_steps: self.warmup_steps,
            min_lr: self.min_lr,
        }
    }

    /// The model configuration of a fresh run over a vocabulary of `vocab_size` tokens.
    pub fn config(&self, vocab_size: usize) -> Config {
        Config {
            n_layer: self.n_layer,
            n_embd: self.n_embd,
            n_head: self.n_head,
            block_size: self.block_size,
            vocab_size,
        }
    }

    /// With --init or --resume the configuration is the checkpoint's: a flag may repeat it, not
    /// change it.
    pub fn check_config_flags(&self, args: &TrainArgs, config: &Config) -> Result<()> {
        let flags = [
            ("--n-layer", given!(args.n_layer), config.n_layer),
            ("--n-embd", given!(args.n_embd), config.n_embd),
            ("--n-head", given!(args.n_head), config.n_head),
            ("--block-size", given!(args.block_size), config.block_size),
        ];
        for (flag, given, checkpoint) in flags {
            if let Some(given) = given.filter(|&&given| given != checkpoint) {
                return Err(CliError::input(format!(
                    "{flag} {given} conflicts with the checkpoint's {checkpoint}: --init and --resume take the configuration from the checkpoint"
                )));
            }
        }
        Ok(())
    }

    /// The settings as checkpoint metadata (numbers in Rust's shortest round-trip form).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        [
            ("num_steps", self.num_steps.to_string()),
            ("batch_size", self.batch_size.to_string()),
            ("lr", self.lr.to_string()),
            ("lr_schedule", self.lr_schedule.to_string()),
            ("warmup_steps", self.warmup_steps.to_string()),
            ("min_lr", self.min_lr.to_string()),
            ("weight_decay", self.weight_decay.to_string()),
            ("grad_clip", GradClip(self.grad_clip).to_string()),
            ("dropout", self.dropout.to_string()),
            ("batch_mean", self.batch_mean.to_string()),
            ("seed", self.seed.to_string()),
            ("rng", self.rng.name().to_string()),
            ("shuffle", self.shuffle.to_string()),
            (FORMAT_KEY, self.format.name().to_string()),
            ("val_fraction", self.val_fraction.to_string()),
            ("eval_every", self.eval_every.to_string()),
            ("eval_docs", self.eval_docs.to_string()),
            ("dtype", self.dtype.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }
}

/// The metadata entry of the data format a run trained on.
const FORMAT_KEY: &str = "data_format";

/// The data format `metadata`'s run trained on, which `eval` scores its data as: lines for
/// checkpoints saved before running text existed.
pub fn recorded_format(metadata: &BTreeMap<String, String>) -> Result<DataFormat> {
    match metadata.get(FORMAT_KEY) {
        None => Ok(DataFormat::Lines),
        Some(name) => DataFormat::from_name(name).ok_or_else(|| {
            CliError::input(format!(
                "the checkpoint records an unknown {FORMAT_KEY} {name:?}: expected lines or text"
            ))
        }),
    }
}

/// Whether a flag was given a value other than the one recorded.
fn differs<T: PartialEq>(given: Option<&T>, recorded: &T) -> bool {
    given.is_some_and(|given| given != recorded)
}

/// The `grad_clip` metadata entry: the norm, or `none`.
struct GradClip(Option<f64>);

impl std::fmt::Display for GradClip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(clip) => write!(f, "{clip}"),
            None => f.write_str("none"),
        }
    }
}

impl FromStr for GradClip {
    type Err = std::num::ParseFloatError;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "none" => Ok(GradClip(None)),
            _ => text.parse().map(|clip| GradClip(Some(clip))),
        }
    }
}

/// A metadata entry parsed, `default` when the checkpoint predates it, or an error naming it.
fn optional_field<T: FromStr>(
    metadata: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> Result<T> {
    match metadata.get(key) {
        None => Ok(default),
        Some(_) => field(metadata, key),
    }
}

/// A metadata entry parsed, or an error naming it.
fn field<T: FromStr>(metadata: &BTreeMap<String, String>, key: &str) -> Result<T> {
    metadata.get(key).and_then(|value| value.parse().ok()).ok_or_else(|| {
        CliError::input(format!(
            "the checkpoint does not record a valid {key:?} and cannot be resumed; use --init to start a new run from its weights"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint saved before running text existed trained on lines; one that names its format
    /// is read as named, and a name no format has is refused rather than scored as lines.
    #[test]
    fn the_recorded_format_is_lines_when_the_checkpoint_predates_it() {
        let metadata = |entries: &[(&str, &str)]| -> BTreeMap<String, String> {
            entries
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        assert_eq!(recorded_format(&metadata(&[])).unwrap(), DataFormat::Lines);
        let text = metadata(&[("data_format", "text")]);
        assert_eq!(recorded_format(&text).unwrap(), DataFormat::Text);
        let lines = metadata(&[("data_format", "lines")]);
        assert_eq!(recorded_format(&lines).unwrap(), DataFormat::Lines);
        let error = recorded_format(&metadata(&[("data_format", "words")])).unwrap_err();
        assert!(
            error.to_string().contains("unknown data_format \"words\""),
            "{error}"
        );
    }
}
