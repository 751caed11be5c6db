//! `microgpt bench`: the tape engine against the scalar baseline on identical work.
//!
//! Each training workload starts from the same weights and trains on the same documents with the
//! same Adam settings on every engine; the table gives the median time of one step and how many
//! times faster than the scalar baseline each engine is.

use std::path::Path;
use std::time::Instant;

use gpt::scalar_model;
use gpt::{
    Adam, AdamSettings, Config, Dtype, Model, Params, Randomness, Request, Sampler, Tokenizer,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use scalar::{NamedTensor, ScalarGpt};
use tape::Float;

use crate::args::BenchArgs;
use crate::atomic_file::{Durability, write_atomically};
use crate::corpus::Corpus;
use crate::defaults;
use crate::error::{CliError, Result};
use crate::plot::{Chart, Series};
use crate::stream::{note, outln};
use plotters::prelude::{RGBColor, SeriesLabelPosition};

/// A model size and batch to train, as in the table of peers.
struct Workload {
    name: &'static str,
    description: &'static str,
    n_layer: usize,
    n_embd: usize,
    n_head: usize,
    batch: usize,
    /// How much slower a step is than the smallest workload, roughly; divides `--steps`.
    cost: usize,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "karpathy",
        description: "1 layer, n_embd 16, 4 heads",
        n_layer: 1,
        n_embd: 16,
        n_head: 4,
        batch: 1,
        cost: 1,
    },
    Workload {
        name: "d64",
        description: "2 layers, n_embd 64, 4 heads",
        n_layer: 2,
        n_embd: 64,
        n_head: 4,
        batch: 1,
        cost: 10,
    },
    Workload {
        name: "d128",
        description: "4 layers, n_embd 128, 8 heads",
        n_layer: 4,
        n_embd: 128,
        n_head: 8,
        batch: 1,
        cost: 100,
    },
    Workload {
        name: "d128x32",
        description: "4 layers, n_embd 128, 8 heads, batch 32",
        n_layer: 4,
        n_embd: 128,
        n_head: 8,
        batch: 32,
        cost: 3000,
    },
    Workload {
        name: "makemore",
        description: "4 layers, n_embd 64, 4 heads, batch 32",
        n_layer: 4,
        n_embd: 64,
        n_head: 4,
        batch: 32,
        cost: 800,
    },
];

/// One timed row of the table.
struct Row {
    work: String,
    /// The model's parameter count, for training rows of batch 1 (the chart's x axis).
    params: Option<usize>,
    engine: &'static str,
    /// Median seconds per unit (a training step, or the whole sampling run).
    median_seconds: f64,
    unit: &'static str,
    /// The scalar baseline's median divided by this one, when the baseline ran.
    speedup: Option<f64>,
}

/// Runs `bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.steps == 0 || args.repeats == 0 {
        return Err(CliError::input("--steps and --repeats must be at least 1"));
    }
    let known: Vec<&str> = WORKLOADS.iter().map(|w| w.name).chain(["sample"]).collect();
    if let Some(unknown) = args
        .workloads
        .iter()
        .find(|name| !known.contains(&name.as_str()))
    {
        return Err(CliError::input(format!(
            "unknown workload {unknown:?}; choose from {}",
            known.join(", ")
        )));
    }
    if let Some(path) = &args.svg {
        crate::outputs::check(
            &[crate::outputs::Planned {
                what: "the chart (--svg)",
                path,
                may_replace: None,
            }],
            &[],
        )?;
    }
    let chosen = || {
        WORKLOADS
            .iter()
            .filter(|w| args.workloads.iter().any(|name| name == w.name))
    };
    let read = chosen()
        .map(|workload| documents_read(&args, workload))
        .max()
        .unwrap_or(0);
    let (tokenizer, tokens) = documents(read)?;
    let mut rows = Vec::new();
    for workload in chosen() {
        let config = Config {
            n_layer: workload.n_layer,
            n_embd: workload.n_embd,
            n_head: workload.n_head,
            block_size: 16,
            vocab_size: tokenizer.vocab_size(),
        };
        let (steps, scalar_steps) = steps_of(&args, workload);
        let work = format!("train: {}", workload.description);
        let mut timings = Vec::new();
        if scalar_steps > 0 {
            let repeats = if workload.cost > 10 { 1 } else { args.repeats };
            let seconds = median(repeats, || {
                train_scalar(config, &tokens, workload.batch, scalar_steps)
            });
            timings.push(("scalar f64", seconds / scalar_steps as f64));
        }
        if args.dtype != Some(Dtype::F32) {
            let seconds = median(args.repeats, || {
                train_tape::<f64>(config, &tokens, workload.batch, steps)
            });
            timings.push(("tape f64", seconds / steps as f64));
        }
        if args.dtype != Some(Dtype::F64) {
            let seconds = median(args.repeats, || {
                train_tape::<f32>(config, &tokens, workload.batch, steps)
            });
            timings.push(("tape f32", seconds / steps as f64));
        }
        let params = (workload.batch == 1).then(|| config.num_params());
        push_group(
            &mut rows,
            &work,
            params,
            "step",
            args.scalar_steps > 0,
            &timings,
        );
    }
    if args.workloads.iter().any(|name| name == "sample") {
        let config = Config {
            vocab_size: tokenizer.vocab_size(),
            ..Config::default()
        };
        let params = Params::<f64>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(1))
            .expect("valid config");
        let work = format!("sample {} names, block 8", args.samples);
        let mut timings = Vec::new();
        if args.scalar_steps > 0 {
            timings.push((
                "scalar f64",
                median(args.repeats, || sample_scalar(&params, args.samples)),
            ));
        }
        let single = params.cast::<f32>();
        timings.push((
            "kv-cache f32, 1 at a time",
            median(args.repeats, || {
                sample_tape(&single, &tokenizer, args.samples, 1)
            }),
        ));
        timings.push((
            "kv-cache f32, batch 64",
            median(args.repeats, || {
                sample_tape(&single, &tokenizer, args.samples, 64)
            }),
        ));
        push_group(
            &mut rows,
            &work,
            None,
            "run",
            args.scalar_steps > 0,
            &timings,
        );
    }
    // The chart first: a closed stdout must not lose it.
    if let Some(path) = &args.svg {
        chart(&rows)
            .to_svg()
            .and_then(|svg| write_atomically(path, svg.as_bytes(), Durability::Unsynced))
            .map_err(|error| CliError::failure(format!("cannot write the chart: {error}")))?;
    }
    print(&rows, args.json)
}

/// Seconds per training step against parameter count, one line per engine, both axes logarithmic.
fn chart(rows: &[Row]) -> Chart {
    let mut chart = Chart::new(
        "microgpt: time per training step (1 document) against model size",
        "parameters",
        "seconds per step",
    );
    chart.log_axes = true;
    // Times rise with size: the top left is empty.
    chart.legend = SeriesLabelPosition::UpperLeft;
    for (engine, colour) in [
        ("scalar f64", RGBColor(0x7f, 0x7f, 0x7f)),
        ("tape f64", RGBColor(0x1f, 0x77, 0xb4)),
        ("tape f32", RGBColor(0xd6, 0x27, 0x28)),
    ] {
        let points = rows
            .iter()
            .filter(|row| row.engine == engine)
            .filter_map(|row| Some((row.params? as f64, row.median_seconds)))
            .collect();
        let mut series = Series::new(engine, colour, points);
        series.markers = true;
        chart.series.push(series);
    }
    chart
}

/// The training steps a workload times on the tape and on the scalar baseline (0: not run).
fn steps_of(args: &BenchArgs, workload: &Workload) -> (usize, usize) {
    let steps = (args.steps / workload.cost).max(1);
    let scalar_steps = match args.scalar_steps {
        0 => 0,
        requested => (requested * 100 / (100 + workload.cost)).max(1),
    };
    (steps, scalar_steps)
}

/// How many documents a workload's timed training reads, its warm-up step included: [`batch_of`]
/// takes them in order, so only these are encoded, and the corpus's tokens stay out of the peak
/// memory that the benchmark is also measured by.
fn documents_read(args: &BenchArgs, workload: &Workload) -> usize {
    let (steps, scalar_steps) = steps_of(args, workload);
    (steps.max(scalar_steps) + 1) * workload.batch
}

/// The vocabulary of the real names when they are here, and the tokens of the first `count` of
/// them; otherwise of 2,000 pseudo-names, so the benchmark runs anywhere (saying so, since its
/// times are then not those of names.txt).
fn documents(count: usize) -> Result<(Tokenizer, Vec<Vec<usize>>)> {
    if Path::new(defaults::DATA).is_file() {
        let corpus = Corpus::read(Path::new(defaults::DATA))?;
        let tokenizer = corpus.vocabulary().clone();
        let tokens = (0..count.min(corpus.len()))
            .map(|index| {
                let mut tokens = Vec::new();
                corpus.encode_into(index, &tokenizer, &mut tokens);
                tokens
            })
            .collect();
        return Ok((tokenizer, tokens));
    }
    note!(
        "note: {} not found: timing 2,000 made-up names instead (microgpt train downloads names.txt)",
        defaults::DATA
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let names: Vec<String> = (0..2000)
        .map(|_| {
            let length = 3 + (rng.uniform() * 6.0) as usize;
            (0..length)
                .map(|_| (b'a' + (rng.uniform() * 26.0) as u8) as char)
                .collect()
        })
        .collect();
    let tokenizer = Tokenizer::from_documents(names.iter().map(String::as_str));
    let tokens = names
        .iter()
        .take(count)
        .map(|name| tokenizer.encode(name).expect("own vocabulary"))
        .collect();
    Ok((tokenizer, tokens))
}

/// The median of `repeats` runs of `run`, which returns the seconds its timed part took.
fn median(repeats: usize, mut run: impl FnMut() -> f64) -> f64 {
    let mut times: Vec<f64> = (0..repeats).map(|_| run()).collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The seconds `work` takes.
fn timed(work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_secs_f64()
}

/// Adds a workload's rows; the first timing is the scalar baseline when `has_baseline`.
fn push_group(
    rows: &mut Vec<Row>,
    work: &str,
    params: Option<usize>,
    unit: &'static str,
    has_baseline: bool,
    timings: &[(&'static str, f64)],
) {
    let baseline = has_baseline.then(|| timings[0].1);
    rows.extend(timings.iter().map(|&(engine, median_seconds)| Row {
        work: work.to_string(),
        params,
        engine,
        median_seconds,
        unit,
        speedup: baseline.map(|baseline| baseline / median_seconds),
    }));
}

fn initial_params<F: Float>(config: Config) -> Params<F> {
    Params::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(42)).expect("valid config")
}

/// The documents of step `step`: `batch` consecutive ones, cycling through the data.
fn batch_of(tokens: &[Vec<usize>], step: usize, batch: usize) -> impl Iterator<Item = &[usize]> {
    (0..batch).map(move |b| tokens[(step * batch + b) % tokens.len()].as_slice())
}

/// Seconds for `steps` training steps on the tape, after one untimed step that warms the buffers.
fn train_tape<F: Float>(config: Config, tokens: &[Vec<usize>], batch: usize, steps: usize) -> f64 {
    let params = initial_params::<F>(config);
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);
    let mut documents = Vec::with_capacity(batch);
    let mut step = |step: usize| {
        documents.clear();
        documents.extend(batch_of(tokens, step, batch));
        let computed = model.batch_loss(&documents).expect("valid documents");
        computed.apply(&mut adam, steps + 1);
    };
    step(0);
    timed(|| (1..=steps).for_each(&mut step))
}

/// Seconds for `steps` training steps on the scalar engine, after one untimed warm-up step.
fn train_scalar(config: Config, tokens: &[Vec<usize>], batch: usize, steps: usize) -> f64 {
    let mut model = scalar_model(&initial_params::<f64>(config));
    let mut step = |step: usize| scalar_step(&mut model, tokens, batch, step, steps + 1);
    step(0);
    timed(|| (1..=steps).for_each(&mut step))
}

/// One scalar training step. The scalar engine takes one document at a time, so a batch costs
/// one forward and backward pass per document, plus the summing of their gradients, and one update.
fn scalar_step(
    model: &mut ScalarGpt,
    tokens: &[Vec<usize>],
    batch: usize,
    step: usize,
    steps: usize,
) {
    let lr = AdamSettings::default().lr;
    if batch == 1 {
        model.train_step(&tokens[step % tokens.len()], step, steps, lr);
        return;
    }
    let mut sum: Vec<NamedTensor> = Vec::new();
    for document in batch_of(tokens, step, batch) {
        model.loss(document);
        let gradients = model.gradients();
        if sum.is_empty() {
            sum = gradients;
        } else {
            for (total, gradient) in sum.iter_mut().zip(gradients) {
                total
                    .data
                    .iter_mut()
                    .zip(gradient.data)
                    .for_each(|(t, g)| *t += g);
            }
        }
    }
    // `ScalarGpt` updates from its own gradients (the last document's), not from `sum`: the same
    // amount of work as updating from the mean, which is what is being timed.
    model.adam_step(step, steps, lr);
}

/// Seconds to sample `count` names, `batch` at a time.
fn sample_tape<F: Float>(
    params: &Params<F>,
    tokenizer: &Tokenizer,
    count: usize,
    batch: usize,
) -> f64 {
    let mut sampler = Sampler::<F>::new(*params.config(), batch);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    let request = Request::new(tokenizer, count);
    timed(|| {
        sampler
            .generate(params, &request, &mut rng)
            .expect("a tokenizer of the model's vocabulary");
    })
}

/// The scalar engine has no cache: each token recomputes the logits of the whole prefix, as
/// microgpt.py would without its KV lists.
fn sample_scalar(params: &Params<f64>, count: usize) -> f64 {
    let mut model = scalar_model(params);
    timed(|| sample_scalar_names(&mut model, params, count))
}

fn sample_scalar_names(model: &mut ScalarGpt, params: &Params<f64>, count: usize) {
    let config = *params.config();
    let bos = config.vocab_size - 1;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    let mut weights = vec![0.0; config.vocab_size];
    for _ in 0..count {
        let mut tokens = vec![bos];
        while tokens.len() < config.block_size {
            let logits = model.logits(&tokens);
            let last = logits.last().expect("one row per token");
            let max = last.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for (weight, &logit) in weights.iter_mut().zip(last) {
                *weight = ((logit - max) / 0.5).exp();
            }
            let token = rng.weighted_index(&weights);
            if token == bos {
                break;
            }
            tokens.push(token);
        }
    }
}

fn print(rows: &[Row], json: bool) -> Result<()> {
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|row| {
                let speedup = row.speedup.map_or("null".to_string(), |s| format!("{s:.3}"));
                format!(
                    "{{\"work\": {}, \"engine\": {}, \"unit\": {}, \"median_seconds\": {:e}, \"speedup\": {speedup}}}",
                    json_string(&row.work),
                    json_string(row.engine),
                    json_string(row.unit),
                    row.median_seconds
                )
            })
            .collect();
        return outln!("[{}]", items.join(", "));
    }
    outln!(
        "{:<50} {:<26} {:>16} {:>9}",
        "work",
        "engine",
        "median",
        "speed-up"
    )?;
    for row in rows {
        let speedup = row.speedup.map_or(String::new(), |s| format!("{s:.1}x"));
        let median = format!("{} /{}", seconds(row.median_seconds), row.unit);
        outln!(
            "{:<50} {:<26} {:>16} {:>9}",
            row.work,
            row.engine,
            median,
            speedup
        )?;
    }
    Ok(())
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn seconds(value: f64) -> String {
    if value >= 1.0 {
        format!("{value:.2} s")
    } else if value >= 1e-3 {
        format!("{:.2} ms", value * 1e3)
    } else {
        format!("{:.1} µs", value * 1e6)
    }
}
