//! `microgpt sample`: names from a checkpoint, one per line on stdout and nothing else there.

use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;

use gpt::{
    Decoder, DrawScratch, Dtype, KvCache, Params, Request, SampleError, Sampler, SamplingOptions,
    SharedStream, StreamPerName, draw_token,
};
use tape::Float;

use crate::args::SampleArgs;
use crate::checkpoint_error;
use crate::error::{CliError, Result};
use crate::memory;
use crate::rng::{Generator, RngKind, name_stream};
use crate::stream::escaped;

/// Runs `sample` in the precision the checkpoint was trained in.
pub fn run(args: SampleArgs) -> Result<()> {
    let options = SamplingOptions::new(args.temperature, args.top_k, args.top_p)?;
    if args.batch_size == 0 {
        return Err(CliError::input("--batch-size must be at least 1"));
    }
    let checkpoint = gpt::load_weights::<f64>(&args.model)
        .map_err(|error| checkpoint_error(&args.model, error))?;
    match checkpoint
        .metadata
        .get("dtype")
        .and_then(|dtype| dtype.parse().ok())
    {
        // A model trained in f32 samples in f32, as it was trained.
        Some(Dtype::F32) => sample(&args, &options, checkpoint.cast::<f32>()),
        _ => sample(&args, &options, checkpoint),
    }
}

fn sample<F: Float>(
    args: &SampleArgs,
    options: &SamplingOptions,
    checkpoint: gpt::Checkpoint<F>,
) -> Result<()> {
    if let (Some(length), Some(prompt)) = (args.length, &args.prompt) {
        let mut rng = Generator::new(args.rng, args.seed);
        let text = continue_text(&checkpoint, prompt, length, options, &mut rng)?;
        let mut stdout = io::stdout().lock();
        // Running text keeps its line breaks and tabs; other control characters are escaped.
        let shown: String = text
            .split_inclusive(['\n', '\t'])
            .map(|piece| {
                let (body, end) = piece.split_at(piece.trim_end_matches(['\n', '\t']).len());
                format!("{}{end}", escaped(body))
            })
            .collect();
        return writeln!(stdout, "{shown}")
            .and_then(|()| stdout.flush())
            .map_err(CliError::stdout);
    }
    let config = *checkpoint.params.config();
    // CPython draws every token of a name before the next name: keep that order with batch 1.
    let batch = if args.rng == RngKind::Python {
        1
    } else {
        args.batch_size.min(args.num_samples.max(1))
    };
    memory::check(
        memory::sampling(&config, batch, size_of::<F>()),
        args.max_memory,
        "--batch-size",
    )?;
    let mut sampler = Sampler::<F>::new(config, batch);
    // Names are written as they finish, buffered, so memory stays the same for any --num-samples;
    // the first failed write stops the sampling.
    let mut stdout = BufWriter::new(io::stdout().lock());
    let mut written = Ok(());
    let on_name = |name: &str| {
        written = writeln!(stdout, "{}", escaped(name));
        if written.is_ok() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    let request = Request {
        prefix: &args.prefix,
        options: *options,
        ..Request::new(&checkpoint.tokenizer, args.num_samples)
    };
    let mut rng = Generator::new(args.rng, args.seed);
    generate_names(
        &mut sampler,
        &checkpoint.params,
        &request,
        args.seed,
        &mut rng,
        on_name,
    )
    .map_err(sampling_error)?;
    written
        .and_then(|()| stdout.flush())
        .map_err(CliError::stdout)
}

/// `request`'s names, drawn as `microgpt` draws them: with `--rng python` from the one generator
/// `rng` (microgpt.py's order), otherwise name `i` from `name_stream(seed, i)`, the same for any
/// count and batch size.
pub fn generate_names<F: Float>(
    sampler: &mut Sampler<F>,
    params: &Params<F>,
    request: &Request<'_>,
    seed: u64,
    rng: &mut Generator,
    on_name: impl FnMut(&str) -> ControlFlow<()>,
) -> std::result::Result<(), SampleError> {
    if let Generator::Python(_) = rng {
        return sampler.generate_each(params, request, SharedStream(rng), on_name);
    }
    let stream = StreamPerName::new(|index| name_stream(seed, index));
    sampler.generate_each(params, request, stream, on_name)
}

/// `prompt` and `length` more characters, each drawn from the model's prediction given the last
/// `block_size` characters: the cache grows until it holds a whole block, then every character
/// recomputes the window, which has moved by one position.
pub fn continue_text<F: Float>(
    checkpoint: &gpt::Checkpoint<F>,
    prompt: &str,
    length: usize,
    options: &SamplingOptions,
    rng: &mut Generator,
) -> Result<String> {
    let config = *checkpoint.params.config();
    let tokenizer = &checkpoint.tokenizer;
    let mut tokens = tokenizer
        .encode_prefix(prompt)
        .map_err(|error| CliError::input(format!("--prompt: {error}")))?;
    if tokens.is_empty() {
        return Err(CliError::input("--prompt must hold at least one character"));
    }
    let mut decoder = Decoder::new(&checkpoint.params, 1)?;
    let mut cache = KvCache::<F>::new(config, 1);
    let mut scratch = DrawScratch::new(config.vocab_size);
    let block = config.block_size;
    for _ in 0..length {
        let context = &tokens[tokens.len().saturating_sub(block)..];
        // The cached positions are a prefix of the window until the window slides.
        if cache.len(0) >= context.len() || tokens.len() > block {
            cache.reset();
        }
        for &token in &context[cache.len(0)..] {
            decoder.step(&mut cache, &[Some(token)])?;
        }
        let token =
            draw_token(decoder.logits(0), options, &mut scratch, rng).map_err(sampling_error)?;
        tokens.push(token);
    }
    Ok(tokenizer.decode(&tokens))
}

/// Sampling from the user's checkpoint fails on what the user gave: the prefix, or the file
/// (a vocabulary or weights that do not fit, logits that are not finite).
fn sampling_error(error: SampleError) -> CliError {
    CliError::input(error.to_string())
}
