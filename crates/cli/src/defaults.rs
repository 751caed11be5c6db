//! Every default of the command line, in one place, so that the subcommands cannot drift apart:
//! `train`'s run is microgpt.py's, and `sample`, `eval`, `info` and `export` default to what `train`
//! writes and reads.

use gpt::{AdamSettings, BatchMean, Config, Decay, Dtype};

use crate::args::DataFormat;
use crate::rng::RngKind;

/// Where `train` and `eval` look for data when `--data` is not given (downloaded if missing).
pub const DATA: &str = "data/names.txt";
/// Where `train` saves its checkpoint, and where `sample`, `eval`, `info` and `export` read it.
pub const CHECKPOINT: &str = "microgpt.safetensors";

/// Names printed by `train` and `sample`.
pub const NUM_SAMPLES: usize = 20;
/// Names generated at once through the KV cache by `sample`, and at most by `train`.
pub const SAMPLE_BATCH: usize = 64;
/// Sampling temperature of `train` and `sample` (microgpt.py's).
pub const TEMPERATURE: f64 = 0.5;
/// Seed of the run and of the samples (microgpt.py's).
pub const SEED: u64 = 42;
/// microgpt.py's run: 500 steps of one document at learning rate 0.01.
pub const STEPS: usize = 500;
pub const BATCH_SIZE: usize = 1;
pub const LR: f64 = AdamSettings::MICROGPT.lr;
/// microgpt.py's schedule: no warmup, then linear decay to 0.
pub const LR_SCHEDULE: Decay = Decay::Linear;
pub const WARMUP_STEPS: usize = 0;
pub const MIN_LR: f64 = 0.0;
/// microgpt.py's Adam decays no weights (AdamW's decoupled decay is `--weight-decay`); gradients
/// are clipped only when `--grad-clip` asks.
pub const WEIGHT_DECAY: f64 = AdamSettings::MICROGPT.weight_decay;
/// Each document's mean loss weighs the same in a batch: microgpt.py's loss, whose batch is one
/// document (`--batch-mean tokens` is makemore's and nanoGPT's).
pub const BATCH_MEAN: BatchMean = BatchMean::Documents;
/// microgpt.py drops nothing (`--dropout` is nanoGPT's residual dropout).
pub const DROPOUT: f64 = 0.0;
/// The seed's configuration: 1 layer, n_embd 16, 4 heads, block 8.
pub const N_LAYER: usize = Config::SEED.n_layer;
pub const N_EMBD: usize = Config::SEED.n_embd;
pub const N_HEAD: usize = Config::SEED.n_head;
pub const BLOCK_SIZE: usize = Config::SEED.block_size;
/// Training and checkpoints in f64, the precision of microgpt.py's floats.
pub const DTYPE: Dtype = Dtype::F64;
/// `export` writes PyTorch's default precision, whatever the checkpoint's.
pub const EXPORT_DTYPE: Dtype = Dtype::F32;
/// One document a line, as names.txt.
pub const FORMAT: DataFormat = DataFormat::Lines;
/// The fast generator; `python` reproduces microgpt.py's draws.
pub const RNG: RngKind = RngKind::Rust;
/// The held-out tenth, scored every 100 steps.
pub const VAL_FRACTION: f64 = 0.1;
pub const EVAL_EVERY: usize = 100;
/// Held-out documents scored by each periodic evaluation: enough for a loss within about 0.03 of
/// the whole split's (names average 7 tokens, so 200 names are about 1,400 predictions), few
/// enough that the default run spends under a fifth of its time on validation.
pub const EVAL_DOCS: usize = 200;
/// No names printed while training, and 10 at each `--sample-every` when asked.
pub const SAMPLE_EVERY: usize = 0;
pub const SAMPLE_COUNT: usize = 10;
