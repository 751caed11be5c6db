//! `microgpt eval`: the mean per-token loss of a checkpoint on a data file.

use std::path::PathBuf;

use gpt::{Dtype, Model};
use tape::Float;

use crate::args::{EvalArgs, given};
use crate::checkpoint_error;
use crate::corpus::Corpus;
use crate::data;
use crate::error::{CliError, Result};
use crate::stream::outln;
use crate::train::mean_loss;

/// Runs `eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.dtype {
        Dtype::F32 => evaluate::<f32>(&args),
        Dtype::F64 => evaluate::<f64>(&args),
    }
}

fn evaluate<F: Float>(args: &EvalArgs) -> Result<()> {
    let checkpoint = gpt::load_weights::<F>(&args.model)
        .map_err(|error| checkpoint_error(&args.model, error))?;
    let data = data::path_or_default(given!(args.data).map(PathBuf::as_path))?;
    let corpus = Corpus::read(&data)?;
    corpus.check_vocabulary(&checkpoint.tokenizer, &data)?;
    let block_size = checkpoint.params.config().block_size;
    // A document of n characters predicts n + 1 tokens, at most block_size of them.
    let predicted: usize = corpus
        .documents()
        .map(|document| block_size.min(document.chars().count() + 1))
        .sum();
    let mut model = Model::new(checkpoint.params);
    let tokenizer = &checkpoint.tokenizer;
    let loss = mean_loss(&mut model, 0..corpus.len(), |index, tokens| {
        corpus.encode_into(index, tokenizer, tokens)
    })?;
    if !loss.is_finite() {
        return Err(CliError::failure(format!(
            "the loss is {loss}: the checkpoint's weights are not finite"
        )));
    }
    let perplexity = loss.exp();
    if args.json {
        outln!(
            "{{\"loss\": {loss}, \"perplexity\": {perplexity}, \"tokens\": {predicted}, \"documents\": {}}}",
            corpus.len()
        )?;
    } else {
        outln!("loss {loss:.6}")?;
        outln!("perplexity {perplexity:.4}")?;
        outln!("tokens {predicted}")?;
    }
    Ok(())
}
