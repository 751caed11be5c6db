//! The command line's grammar (clap). Flag names follow DESIGN.md section 3, a contract.

use std::path::PathBuf;

use std::collections::BTreeSet;
use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use gpt::{BatchMean, Decay, Dtype};

use crate::defaults;
use crate::rng::RngKind;

/// Train a tiny GPT on a list of names (or any one-document-per-line text) and sample new ones.
///
/// With no subcommand, `microgpt` trains: like `python microgpt.py`, it reads data/names.txt
/// (downloading it if missing), trains 500 steps, saves the model and prints 20 new names.
#[derive(Parser, Debug)]
#[command(name = "microgpt", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: train).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Training options, when no subcommand is given.
    #[command(flatten)]
    pub train: TrainArgs,
}

impl Cli {
    /// Parses `arguments` (the program name first) as [`Parser::try_parse_from`] does, recording
    /// which flags of `train` or `eval` were given.
    pub fn parse_arguments(
        arguments: impl IntoIterator<Item = OsString>,
    ) -> Result<Self, clap::Error> {
        let mut matches = Cli::command().try_get_matches_from(arguments)?;
        let given = Given::of(matches.subcommand().map_or(&matches, |(_, sub)| sub));
        let mut cli = Cli::from_arg_matches_mut(&mut matches)
            .map_err(|error| error.format(&mut Cli::command()))?;
        match &mut cli.command {
            None => cli.train.given = given,
            Some(Command::Train(args)) => args.given = given,
            Some(Command::Eval(args)) => args.given = given,
            Some(_) => {}
        }
        Ok(cli)
    }
}

/// The flags given on the command line, as against those left at their defaults: `--resume` and
/// `--init` take the checkpoint's values for the others, and only the default data is downloaded
/// when missing. Read with [`given!`].
#[derive(Clone, Debug, Default)]
pub struct Given(BTreeSet<String>);

impl Given {
    fn of(matches: &ArgMatches) -> Self {
        let given = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.as_str().to_string());
        Given(given.collect())
    }

    /// `value`, the field of the flag `id`, when the flag was given.
    pub fn value<'a, T>(&self, id: &str, value: &'a T) -> Option<&'a T> {
        self.0.contains(id).then_some(value)
    }
}

/// `given!(args.field)`: the value of `args.field` when its flag was given on the command line,
/// `None` when it holds its default. A flag's id is its field's name, so that no name can be
/// misspelt.
macro_rules! given {
    ($args:ident . $field:ident) => {
        $args.given.value(stringify!($field), &$args.$field)
    };
}
pub(crate) use given;

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model and print sampled names (what `microgpt` alone does).
    Train(Box<TrainArgs>),
    /// Print names sampled from a trained model, one per line, on stdout only.
    Sample(SampleArgs),
    /// The mean per-token loss (and perplexity) of a model on a data file.
    ///
    /// The file is scored as the model's run trained: a model of lines (the default) scores every
    /// document from BOS to BOS, one a line; a model trained with --format text scores the whole
    /// file as running text, cut into windows of block_size + 1 characters that do not overlap
    /// (a shorter tail is left out), each predicting block_size characters.
    Eval(EvalArgs),
    /// Time the tape engine against the scalar baseline on the same work.
    Bench(BenchArgs),
    /// Describe a checkpoint: configuration, vocabulary, parameters, training progress.
    Info(InfoArgs),
    /// Write a checkpoint's weights alone (no optimizer state), for PyTorch's `load_state_dict`.
    Export(ExportArgs),
}

/// `microgpt train`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Training data, one document per line (the default is downloaded if missing)
    #[arg(long, value_name = "FILE", default_value = defaults::DATA)]
    pub data: PathBuf,

    /// Optimizer steps of the whole run (with --resume: the run's total, by default the
    /// checkpoint's)
    #[arg(long, default_value_t = defaults::STEPS)]
    pub steps: usize,

    /// Stop after this many steps of the run and save, so that --resume can continue it exactly
    #[arg(long, value_name = "STEP")]
    pub stop_after: Option<usize>,

    /// Documents per step; the step's loss is the mean of theirs
    #[arg(long, default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,

    /// Adam's peak learning rate (see --lr-schedule)
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults::LR)]
    pub lr: f64,

    /// The learning rate's decay after the warmup: linear (microgpt.py's, to --min-lr at the end),
    /// cosine (nanoGPT's, to --min-lr) or constant
    #[arg(long, value_name = "linear|cosine|constant", default_value_t = defaults::LR_SCHEDULE)]
    pub lr_schedule: Decay,

    /// Steps over which the learning rate rises linearly to --lr before it decays
    #[arg(long, value_name = "STEPS", default_value_t = defaults::WARMUP_STEPS)]
    pub warmup_steps: usize,

    /// The learning rate the decay ends at, at most --lr
    #[arg(long, value_name = "LR", allow_negative_numbers = true, default_value_t = defaults::MIN_LR)]
    pub min_lr: f64,

    /// Decoupled weight decay (AdamW, as torch.optim.AdamW): every weight is multiplied by
    /// 1 - lr * W before each step
    #[arg(long, value_name = "W", allow_negative_numbers = true, default_value_t = defaults::WEIGHT_DECAY)]
    pub weight_decay: f64,

    /// Clip the gradients to this global L2 norm before each step, as
    /// torch.nn.utils.clip_grad_norm_ [default: no clipping]
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub grad_clip: Option<f64>,

    /// Residual dropout while training (nanoGPT's): each attention and MLP output is dropped with
    /// this probability, in [0, 1), before it joins the residual stream
    #[arg(long, value_name = "P", allow_negative_numbers = true, default_value_t = defaults::DROPOUT)]
    pub dropout: f64,

    /// How a batch's loss averages: over documents (each document's mean loss weighs the same,
    /// microgpt's) or over tokens (every predicted token weighs the same, as makemore's and
    /// nanoGPT's cross_entropy; the validation loss is such a mean)
    #[arg(long, value_name = "documents|tokens", default_value_t = defaults::BATCH_MEAN)]
    pub batch_mean: BatchMean,

    /// Seed of the shuffle, the initial weights and the samples
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,

    /// Transformer blocks
    #[arg(long, default_value_t = defaults::N_LAYER)]
    pub n_layer: usize,

    /// Embedding width; must be divisible by --n-head
    #[arg(long, default_value_t = defaults::N_EMBD)]
    pub n_embd: usize,

    /// Attention heads
    #[arg(long, default_value_t = defaults::N_HEAD)]
    pub n_head: usize,

    /// Context length: longer documents are truncated, as microgpt.py does
    #[arg(long, default_value_t = defaults::BLOCK_SIZE)]
    pub block_size: usize,

    /// Precision of training and of the saved checkpoint: f32 or f64
    #[arg(long, value_name = "f32|f64", default_value_t = defaults::DTYPE)]
    pub dtype: Dtype,

    /// Start from these weights (with their vocabulary and configuration) and a fresh optimizer
    #[arg(long, value_name = "CKPT", conflicts_with = "resume")]
    pub init: Option<PathBuf>,

    /// Continue the run saved in this checkpoint exactly, optimizer state included
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,

    /// lines: one document per line (names); text: running text, trained on random windows of
    /// block_size + 1 characters of the whole file (nanoGPT's shakespeare_char)
    #[arg(long, value_enum, default_value_t = defaults::FORMAT)]
    pub format: DataFormat,

    /// Train on the documents in file order instead of shuffling them
    #[arg(long)]
    pub no_shuffle: bool,

    /// Where to save the checkpoint; the loss curve goes beside it (.csv, .svg)
    #[arg(long, value_name = "CKPT", default_value = defaults::CHECKPOINT)]
    pub out: PathBuf,

    /// Names to print after training (alias --samples)
    #[arg(long, alias = "samples", default_value_t = defaults::NUM_SAMPLES)]
    pub num_samples: usize,

    /// Sampling temperature of those names (> 0; lower is more conservative)
    #[arg(long, default_value_t = defaults::TEMPERATURE, allow_negative_numbers = true)]
    pub temperature: f64,

    /// Fraction of the shuffled documents held out (the last ones) for validation
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults::VAL_FRACTION)]
    pub val_fraction: f64,

    /// Steps between validation losses (0: only at the end)
    #[arg(long, default_value_t = defaults::EVAL_EVERY)]
    pub eval_every: usize,

    /// Held-out documents (the first N of the split) scored by the periodic validation losses and
    /// the best-checkpoint decision; the last step also scores the whole split (0: always the whole
    /// split)
    #[arg(long, value_name = "N", default_value_t = defaults::EVAL_DOCS)]
    pub eval_docs: usize,

    /// Print --sample-count names to stderr every N steps, as makemore does (0: never)
    #[arg(long, value_name = "N", default_value_t = defaults::SAMPLE_EVERY)]
    pub sample_every: usize,

    /// Names printed by each --sample-every
    #[arg(long, value_name = "COUNT", default_value_t = defaults::SAMPLE_COUNT)]
    pub sample_count: usize,

    /// Also keep the checkpoint of the lowest periodic validation loss, as NAME.best.safetensors beside --out
    #[arg(long)]
    pub keep_best: bool,

    /// Random generator: rust (fast) or python (CPython's, reproducing microgpt.py exactly)
    #[arg(long, value_enum, default_value_t = defaults::RNG)]
    pub rng: RngKind,

    /// Also save the checkpoint and the loss CSV every N steps (atomically), so that a kill loses at most N steps
    #[arg(long, value_name = "N")]
    pub save_every: Option<usize>,

    /// The most memory the run may need, in GB (10^9 bytes) [default: half the physical memory]
    #[arg(long, value_name = "GB")]
    pub max_memory: Option<f64>,

    /// Which of these flags were given.
    #[arg(skip)]
    pub given: Given,
}

/// How a data file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DataFormat {
    /// One document per non-blank line.
    Lines,
    /// The whole file as one stream of characters.
    Text,
}

impl DataFormat {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Lines => "lines",
            DataFormat::Text => "text",
        }
    }

    /// Parses [`DataFormat::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [DataFormat::Lines, DataFormat::Text]
            .into_iter()
            .find(|format| format.name() == name)
    }
}

/// `microgpt sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The checkpoint to sample from
    #[arg(long, value_name = "CKPT", default_value = defaults::CHECKPOINT)]
    pub model: PathBuf,

    /// Names to print
    #[arg(long, alias = "samples", default_value_t = defaults::NUM_SAMPLES)]
    pub num_samples: usize,

    /// Temperature (> 0): logits are divided by it before the softmax
    #[arg(long, default_value_t = defaults::TEMPERATURE, allow_negative_numbers = true)]
    pub temperature: f64,

    /// Draw only among the k most likely tokens (>= 1)
    #[arg(long)]
    pub top_k: Option<usize>,

    /// Draw only among the most likely tokens whose probabilities add up to p, in (0, 1]
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f64>,

    /// Seed of the draws
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,

    /// Every name starts with this text
    #[arg(long, default_value = "")]
    pub prefix: String,

    /// Continue --prompt by this many characters as running text (a model trained with --format
    /// text), sliding the context window past the block size, instead of printing names
    #[arg(long, value_name = "N", requires = "prompt")]
    pub length: Option<usize>,

    /// The text that --length continues
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,

    /// Names generated at once through the KV cache (python rng: always 1, to keep CPython's order)
    #[arg(long, default_value_t = defaults::SAMPLE_BATCH)]
    pub batch_size: usize,

    /// Random generator: rust or python (CPython's `random.choices`)
    #[arg(long, value_enum, default_value_t = defaults::RNG)]
    pub rng: RngKind,

    /// The most memory sampling may need, in GB (10^9 bytes) [default: half the physical memory]
    #[arg(long, value_name = "GB")]
    pub max_memory: Option<f64>,
}

/// `microgpt eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The checkpoint to evaluate
    #[arg(long, value_name = "CKPT", default_value = defaults::CHECKPOINT)]
    pub model: PathBuf,

    /// The data to score: documents one a line, or running text for a --format text model (the
    /// default is downloaded if missing, as by train)
    #[arg(long, value_name = "FILE", default_value = defaults::DATA)]
    pub data: PathBuf,

    /// Precision of the computation
    #[arg(long, value_name = "f32|f64", default_value_t = defaults::DTYPE)]
    pub dtype: Dtype,

    /// Print a JSON object ({"loss", "perplexity", "tokens", and "documents" or, for running
    /// text, "windows"}) instead of text
    #[arg(long)]
    pub json: bool,

    /// Which of these flags were given.
    #[arg(skip)]
    pub given: Given,
}

/// `microgpt bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workloads to time, comma-separated: karpathy (1 layer, n_embd 16, block 16), d64 (2 layers,
    /// n_embd 64), d128 (4 layers, n_embd 128, 8 heads), d128x32 (d128 with 32 documents a step),
    /// makemore (makemore's transformer: 4 layers, n_embd 64, 4 heads, batch 32; not run unless
    /// named), sample (1,000 names)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "karpathy,d64,d128,d128x32,sample"
    )]
    pub workloads: Vec<String>,

    /// Training steps timed per repetition on the tape (the larger workloads take a tenth, at least 1)
    #[arg(long, default_value_t = 200)]
    pub steps: usize,

    /// Training steps timed on the scalar baseline, which is far slower (0: skip it)
    #[arg(long, default_value_t = 5)]
    pub scalar_steps: usize,

    /// Repetitions; the table reports medians
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,

    /// Names sampled in the sampling workload
    #[arg(long = "num-samples", alias = "samples", default_value_t = 1000)]
    pub samples: usize,

    /// Train in this precision only (default: both, f64 then f32); one precision per process
    /// gives that precision's own peak memory. Sampling is always timed in f32
    #[arg(long, value_name = "f32|f64")]
    pub dtype: Option<Dtype>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also write a chart of time per training step against model size (SVG) to this file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
}

/// `microgpt info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The checkpoint to describe
    #[arg(long, value_name = "CKPT", default_value = defaults::CHECKPOINT)]
    pub model: PathBuf,
}

/// `microgpt export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The checkpoint whose weights to export
    #[arg(long, value_name = "CKPT", default_value = defaults::CHECKPOINT)]
    pub model: PathBuf,

    /// Where to write the weights (safetensors)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Precision of the written tensors: f32 (PyTorch's default) or f64
    #[arg(long, value_name = "f32|f64", default_value_t = defaults::EXPORT_DTYPE)]
    pub dtype: Dtype,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Cli {
        let arguments = ["microgpt"].iter().chain(arguments).map(OsString::from);
        Cli::parse_arguments(arguments).expect("valid arguments")
    }

    /// A flag given its default value is still given (so `--resume --lr 0.01` is checked against
    /// the checkpoint's lr), and a flag left out is not, though its field holds the default.
    #[test]
    fn given_records_the_flags_on_the_command_line_only() {
        for cli in [parse(&["--lr", "0.01"]), parse(&["train", "--lr", "0.01"])] {
            let args = match &cli.command {
                Some(Command::Train(args)) => args.as_ref(),
                _ => &cli.train,
            };
            assert_eq!(given!(args.lr), Some(&0.01));
            assert_eq!(given!(args.steps), None);
            assert_eq!(args.steps, 500);
            assert_eq!(given!(args.data), None);
        }
        let cli = parse(&["eval", "--data", "data/names.txt"]);
        let Some(Command::Eval(args)) = &cli.command else {
            panic!("eval parses as eval");
        };
        assert_eq!(given!(args.data), Some(&PathBuf::from("data/names.txt")));
    }
}
