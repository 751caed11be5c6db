//! `microgpt eval`: the mean per-token loss of a checkpoint on a data file, scored as the
//! checkpoint's run trained: documents one a line, or windows of running text.

use std::path::{Path, PathBuf};

use gpt::{Dtype, Model, NllSum, Tokenizer};
use tape::Float;

use crate::args::{DataFormat, EvalArgs, given};
use crate::checkpoint_error;
use crate::corpus::Corpus;
use crate::data;
use crate::error::{CliError, Result};
use crate::settings::recorded_format;
use crate::stream::outln;
use crate::text::{self, Tiling};
use crate::train::add_nll;

/// Runs `eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.dtype {
        Dtype::F32 => evaluate::<f32>(&args),
        Dtype::F64 => evaluate::<f64>(&args),
    }
}

/// The mean loss over the predicted tokens of the items scored (documents or windows).
struct Score {
    loss: f64,
    tokens: usize,
    items: usize,
    /// What the items are, as the JSON output names their count.
    unit: &'static str,
}

fn evaluate<F: Float>(args: &EvalArgs) -> Result<()> {
    let checkpoint = gpt::load_weights::<F>(&args.model)
        .map_err(|error| checkpoint_error(&args.model, error))?;
    let format = recorded_format(&checkpoint.metadata)?;
    let data = data::path_or_default(given!(args.data).map(PathBuf::as_path))?;
    let corpus = Corpus::read(&data)?;
    let block_size = checkpoint.params.config().block_size;
    let tokenizer = &checkpoint.tokenizer;
    let mut model = Model::new(checkpoint.params);
    let score = match format {
        DataFormat::Lines => score_lines(&mut model, &corpus, tokenizer, &data)?,
        DataFormat::Text => score_text(&mut model, &corpus, tokenizer, &data, block_size)?,
    };
    let Score {
        loss,
        tokens,
        items,
        unit,
    } = score;
    if !loss.is_finite() {
        return Err(CliError::failure(format!(
            "the loss is {loss}: the checkpoint's weights are not finite"
        )));
    }
    let perplexity = loss.exp();
    if args.json {
        outln!(
            "{{\"loss\": {loss}, \"perplexity\": {perplexity}, \"tokens\": {tokens}, \"{unit}\": {items}}}"
        )?;
    } else {
        outln!("loss {loss:.6}")?;
        outln!("perplexity {perplexity:.4}")?;
        outln!("tokens {tokens}")?;
    }
    Ok(())
}

/// Every document from BOS to BOS, as a run of lines trains on them.
fn score_lines<F: Float>(
    model: &mut Model<F>,
    corpus: &Corpus,
    tokenizer: &Tokenizer,
    data: &Path,
) -> Result<Score> {
    corpus.check_vocabulary(tokenizer, data)?;
    let mut sum = NllSum::default();
    let encode = |index, tokens: &mut Vec<usize>| corpus.encode_into(index, tokenizer, tokens);
    add_nll(model, 0..corpus.len(), encode, &mut sum)?;
    Ok(Score {
        loss: sum.mean(),
        tokens: sum.tokens,
        items: corpus.len(),
        unit: "documents",
    })
}

/// The whole file as running text, cut into the windows a run of text validates on.
fn score_text<F: Float>(
    model: &mut Model<F>,
    corpus: &Corpus,
    tokenizer: &Tokenizer,
    data: &Path,
    block_size: usize,
) -> Result<Score> {
    let tokens = text::encode(corpus.text(), tokenizer)?;
    let windows = Tiling::new(&tokens, block_size);
    if windows.len() == 0 {
        return Err(CliError::input(format!(
            "{}: a model of running text scores windows of block_size + 1 = {} characters; the data has {}",
            data.display(),
            text::window_len(block_size),
            tokens.len()
        )));
    }
    let mut sum = NllSum::default();
    let encode = |index, tokens: &mut Vec<usize>| windows.window_into(index, tokens);
    add_nll(model, 0..windows.len(), encode, &mut sum)?;
    Ok(Score {
        loss: sum.mean(),
        tokens: sum.tokens,
        items: windows.len(),
        unit: "windows",
    })
}
