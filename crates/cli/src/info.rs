//! `microgpt info`: what a checkpoint holds.

use crate::args::InfoArgs;
use crate::checkpoint_error;
use crate::error::Result;
use crate::stream::{escaped, outln};

/// Runs `info`.
pub fn run(args: InfoArgs) -> Result<()> {
    let checkpoint =
        gpt::load::<f64>(&args.model).map_err(|error| checkpoint_error(&args.model, error))?;
    let config = checkpoint.params.config();
    outln!("checkpoint: {}", escaped(&args.model.display().to_string()))?;
    outln!("n_layer: {}", config.n_layer)?;
    outln!("n_embd: {}", config.n_embd)?;
    outln!("n_head: {}", config.n_head)?;
    outln!("block_size: {}", config.block_size)?;
    outln!("vocab size: {}", config.vocab_size)?;
    outln!("vocab: {:?}", checkpoint.tokenizer.vocab())?;
    outln!("num params: {}", checkpoint.params.num_params())?;
    match &checkpoint.adam {
        Some(adam) => outln!("step: {} (optimizer state saved: can --resume)", adam.step)?,
        None => outln!("step: unknown (no optimizer state)")?,
    }
    for (key, value) in &checkpoint.metadata {
        outln!("{}: {}", escaped(key), escaped(value))?;
    }
    Ok(())
}
