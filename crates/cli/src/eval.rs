//! `microgpt eval`: the mean per-token loss of a checkpoint on a data file.

use gpt::{Dtype, Model};
use tape::Float;

use crate::args::EvalArgs;
use crate::error::{CliError, Result};
use crate::train::mean_loss;
use crate::{checkpoint_error, data, encode_all};

/// Runs `eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.dtype {
        Dtype::F32 => evaluate::<f32>(&args),
        Dtype::F64 => evaluate::<f64>(&args),
    }
}

fn evaluate<F: Float>(args: &EvalArgs) -> Result<()> {
    let checkpoint =
        gpt::load::<F>(&args.model).map_err(|error| checkpoint_error(&args.model, error))?;
    let documents = data::read_documents(&args.data)?;
    let tokens = encode_all(&checkpoint.tokenizer, &documents, &args.data)?;
    let block_size = checkpoint.params.config().block_size;
    let predicted: usize = tokens
        .iter()
        .map(|document| block_size.min(document.len() - 1))
        .sum();
    let mut model = Model::new(checkpoint.params);
    let loss = mean_loss(&mut model, &tokens)?;
    if !loss.is_finite() {
        return Err(CliError::failure(format!(
            "the loss is {loss}: the checkpoint's weights are not finite"
        )));
    }
    let perplexity = loss.exp();
    if args.json {
        println!(
            "{{\"loss\": {loss}, \"perplexity\": {perplexity}, \"tokens\": {predicted}, \"documents\": {}}}",
            documents.len()
        );
    } else {
        println!("loss {loss:.6}");
        println!("perplexity {perplexity:.4}");
        println!("tokens {predicted}");
    }
    Ok(())
}
