//! `microgpt info`: what a checkpoint holds.

use crate::args::InfoArgs;
use crate::checkpoint_error;
use crate::error::Result;
use crate::stream::{escaped, outln};

/// Runs `info`.
pub fn run(args: InfoArgs) -> Result<()> {
    // A checkpoint whose weights load but whose optimizer state does not is still described: it
    // can be sampled from and trained further with --init.
    let (checkpoint, adam_problem) = match gpt::load::<f64>(&args.model) {
        Ok(checkpoint) => (checkpoint, None),
        Err(error) => match gpt::load_weights::<f64>(&args.model) {
            Ok(checkpoint) => (checkpoint, Some(error)),
            Err(_) => return Err(checkpoint_error(&args.model, error)),
        },
    };
    let config = checkpoint.params.config();
    outln!("checkpoint: {}", escaped(&args.model.display().to_string()))?;
    outln!("n_layer: {}", config.n_layer)?;
    outln!("n_embd: {}", config.n_embd)?;
    outln!("n_head: {}", config.n_head)?;
    outln!("block_size: {}", config.block_size)?;
    outln!("vocab size: {}", config.vocab_size)?;
    outln!("vocab: {:?}", checkpoint.tokenizer.vocab())?;
    outln!("num params: {}", checkpoint.params.num_params())?;
    match (&checkpoint.adam, adam_problem) {
        (Some(adam), _) => outln!("step: {} (optimizer state saved: can --resume)", adam.step)?,
        (None, Some(problem)) => outln!(
            "step: unknown ({}: cannot --resume; --init starts from its weights)",
            escaped(&problem.to_string())
        )?,
        (None, None) => outln!("step: unknown (no optimizer state)")?,
    }
    for (key, value) in &checkpoint.metadata {
        outln!("{}: {}", escaped(key), escaped(value))?;
    }
    Ok(())
}
