//! `microgpt info`: what a checkpoint holds.

use crate::args::InfoArgs;
use crate::checkpoint_error;
use crate::error::Result;

/// Runs `info`.
pub fn run(args: InfoArgs) -> Result<()> {
    let checkpoint =
        gpt::load::<f64>(&args.model).map_err(|error| checkpoint_error(&args.model, error))?;
    let config = checkpoint.params.config();
    println!("checkpoint: {}", args.model.display());
    println!("n_layer: {}", config.n_layer);
    println!("n_embd: {}", config.n_embd);
    println!("n_head: {}", config.n_head);
    println!("block_size: {}", config.block_size);
    println!("vocab size: {}", config.vocab_size);
    println!("vocab: {:?}", checkpoint.tokenizer.vocab());
    println!("num params: {}", checkpoint.params.num_params());
    match &checkpoint.adam {
        Some(adam) => println!("step: {} (optimizer state saved: can --resume)", adam.step),
        None => println!("step: unknown (no optimizer state)"),
    }
    for (key, value) in &checkpoint.metadata {
        println!("{key}: {value}");
    }
    Ok(())
}
