//! The memory a configuration needs, estimated before anything is allocated, so that a size typed
//! wrong (`--n-embd 1000000`) is refused with one line instead of aborting the process (or making
//! the machine swap) when the allocation fails.
//!
//! The estimate counts what grows with the configuration: the weights and their gradients, Adam's
//! two moments, the last healthy state kept for divergence, the copies of the weights on extra
//! worker threads, the tape's activations (values and gradients) of a batch, and the KV cache of a
//! sample batch. It is computed in f64 from the sizes alone, so no product of huge numbers can
//! overflow. It is a rough upper-side model of the tape, not a measurement: its purpose is to
//! catch sizes off by orders of magnitude.

use gpt::{CHUNK, Config};

use crate::error::{CliError, Result};

/// Half the physical memory, or this when it cannot be read.
const FALLBACK_LIMIT_GB: f64 = 8.0;

/// Elements of the parameters, from the shapes of DESIGN.md section 1, without building them.
fn parameters(config: &Config) -> f64 {
    let (vocab, embd) = (config.vocab_size as f64, config.n_embd as f64);
    let layers = config.n_layer as f64;
    2.0 * vocab * embd + config.block_size as f64 * embd + layers * 12.0 * embd * embd
}

/// Bytes to train `config` on batches of `batch` documents in floats of `float_bytes`, then
/// sample names `sample_batch` at a time.
pub fn training(config: &Config, batch: usize, float_bytes: usize, sample_batch: usize) -> f64 {
    let params = parameters(config);
    let workers = batch.div_ceil(CHUNK) as f64;
    // Weights, gradients, two moments, the healthy copy (three), and weights plus gradients on
    // each extra worker.
    let weights = params * (7.0 + 2.0 * (workers - 1.0));
    let (embd, heads) = (config.n_embd as f64, config.n_head as f64);
    let positions = config.block_size as f64;
    // Per position: per layer about 18 vectors of n_embd (attention and a 4x MLP) and the
    // attention scores and weights of every head; the logits, their softmax and its gradient.
    let per_position = config.n_layer as f64 * (18.0 * embd + 2.0 * heads * positions)
        + 4.0 * embd
        + 3.0 * config.vocab_size as f64;
    let activations = 2.0 * per_position * positions * batch as f64;
    (weights + activations) * float_bytes as f64 + sampling_cache(config, sample_batch, float_bytes)
}

/// Bytes to sample from `config`, `batch` names at a time: the weights in the decoder's layout,
/// the KV cache and the logits.
pub fn sampling(config: &Config, batch: usize, float_bytes: usize) -> f64 {
    2.0 * parameters(config) * float_bytes as f64 + sampling_cache(config, batch, float_bytes)
}

fn sampling_cache(config: &Config, batch: usize, float_bytes: usize) -> f64 {
    let per_sequence = 2.0 * (config.n_layer * config.block_size) as f64 * config.n_embd as f64
        + 2.0 * config.vocab_size as f64;
    per_sequence * batch as f64 * float_bytes as f64
}

/// The limit in bytes (`--max-memory` in GB, else half the physical memory) and how it was set.
fn limit(flag: Option<f64>) -> (f64, String) {
    if let Some(gb) = flag {
        return (gb * 1e9, format!("--max-memory {gb}"));
    }
    match physical_memory() {
        Some(bytes) => (bytes / 2.0, "half the physical memory".to_string()),
        None => (
            FALLBACK_LIMIT_GB * 1e9,
            format!("{FALLBACK_LIMIT_GB} GB, as the physical memory is unknown"),
        ),
    }
}

/// MemTotal of /proc/meminfo, in bytes (Linux).
fn physical_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Refuses an estimate of `bytes` above the limit, naming `sizes` (the flags, or the checkpoint,
/// that set the size) and `--max-memory`.
pub fn check(bytes: f64, max_memory: Option<f64>, sizes: &str) -> Result<()> {
    if let Some(gb) = max_memory
        && !(gb.is_finite() && gb > 0.0)
    {
        return Err(CliError::input(
            "--max-memory must be a positive number of GB",
        ));
    }
    let (limit, source) = limit(max_memory);
    if bytes <= limit {
        return Ok(());
    }
    Err(CliError::input(format!(
        "this configuration needs about {} of memory, over the limit of {} ({source}); lower {sizes}, or raise --max-memory GB",
        gigabytes(bytes),
        gigabytes(limit)
    )))
}

fn gigabytes(bytes: f64) -> String {
    if bytes < 1e13 {
        format!("{:.1} GB", bytes / 1e9)
    } else {
        format!("{:.1e} GB", bytes / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_count_is_the_configs() {
        // The formula must agree with the shapes the model is built from.
        for config in [
            Config::default(),
            Config {
                n_layer: 3,
                n_embd: 32,
                n_head: 4,
                block_size: 16,
                vocab_size: 50,
            },
        ] {
            assert_eq!(parameters(&config), config.num_params() as f64);
        }
    }

    #[test]
    fn a_huge_configuration_is_refused_with_its_estimate_and_the_flag() {
        let config = Config {
            n_embd: 1_000_000,
            n_head: 1,
            ..Config::default()
        };
        let error = check(training(&config, 1, 8, 20), None, "--n-embd").unwrap_err();
        assert!(error.message.contains("--n-embd") && error.message.contains("--max-memory"));
        assert!(check(training(&Config::default(), 1, 8, 20), None, "--n-embd").is_ok());
    }
}
