//! `microgpt bench`: the tape engine against the scalar baseline on identical work.

use std::path::Path;
use std::time::Instant;

use gpt::{
    Adam, AdamSettings, Config, Model, Params, Randomness, Sampler, SamplingOptions, Tokenizer,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use scalar::{NamedTensor, ScalarGpt};
use tape::Float;

use crate::args::BenchArgs;
use crate::data::{self, DEFAULT_DATA};
use crate::error::{CliError, Result};

/// One timed row of the table.
struct Row {
    work: String,
    engine: &'static str,
    median_seconds: f64,
    /// The baseline's median divided by this one (1 for the baseline).
    speedup: f64,
}

/// Runs `bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.steps == 0 || args.repeats == 0 {
        return Err(CliError::input("--steps and --repeats must be at least 1"));
    }
    let documents = documents()?;
    let tokenizer = Tokenizer::from_documents(documents.iter().map(String::as_str));
    let tokens: Vec<Vec<usize>> = documents
        .iter()
        .map(|d| tokenizer.encode(d).expect("own vocabulary"))
        .collect();
    let mut rows = Vec::new();
    for block_size in [8, 16] {
        let config = Config {
            vocab_size: tokenizer.vocab_size(),
            block_size,
            ..Config::default()
        };
        let work = format!("train {} steps, block {block_size}", args.steps);
        let scalar = median(args.repeats, || train_scalar(config, &tokens, args.steps));
        let tape64 = median(args.repeats, || {
            train_tape::<f64>(config, &tokens, args.steps)
        });
        let tape32 = median(args.repeats, || {
            train_tape::<f32>(config, &tokens, args.steps)
        });
        push_group(
            &mut rows,
            &work,
            [
                ("scalar f64", scalar),
                ("tape f64", tape64),
                ("tape f32", tape32),
            ],
        );
    }
    let config = Config {
        vocab_size: tokenizer.vocab_size(),
        ..Config::default()
    };
    let params = Params::<f64>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(1))
        .expect("valid config");
    let work = format!("sample {} names, block 8", args.samples);
    let scalar = median(args.repeats, || sample_scalar(&params, args.samples));
    let one = median(args.repeats, || {
        sample_tape(&params.cast::<f32>(), &tokenizer, args.samples, 1)
    });
    let batched = median(args.repeats, || {
        sample_tape(&params.cast::<f32>(), &tokenizer, args.samples, 64)
    });
    push_group(
        &mut rows,
        &work,
        [
            ("scalar f64", scalar),
            ("kv-cache f32, 1 at a time", one),
            ("kv-cache f32, batch 64", batched),
        ],
    );
    print(&rows, args.json);
    Ok(())
}

/// The real names when they are here; otherwise 2,000 pseudo-names, so the benchmark runs anywhere.
fn documents() -> Result<Vec<String>> {
    if Path::new(DEFAULT_DATA).is_file() {
        return data::read_documents(Path::new(DEFAULT_DATA));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    Ok((0..2000)
        .map(|_| {
            let length = 3 + (rng.uniform() * 6.0) as usize;
            (0..length)
                .map(|_| (b'a' + (rng.uniform() * 26.0) as u8) as char)
                .collect()
        })
        .collect())
}

fn median(repeats: usize, mut run: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn push_group<const N: usize>(rows: &mut Vec<Row>, work: &str, timings: [(&'static str, f64); N]) {
    let baseline = timings[0].1;
    rows.extend(timings.into_iter().map(|(engine, median_seconds)| Row {
        work: work.to_string(),
        engine,
        median_seconds,
        speedup: baseline / median_seconds,
    }));
}

fn initial_params<F: Float>(config: Config) -> Params<F> {
    Params::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(42)).expect("valid config")
}

fn train_tape<F: Float>(config: Config, tokens: &[Vec<usize>], steps: usize) {
    let params = initial_params::<F>(config);
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);
    for step in 0..steps {
        model
            .loss(&tokens[step % tokens.len()])
            .expect("valid document");
        model.apply_adam(&mut adam, steps);
    }
}

fn train_scalar(config: Config, tokens: &[Vec<usize>], steps: usize) {
    let mut model = scalar_model(&initial_params::<f64>(config));
    for (step, document) in tokens.iter().cycle().take(steps).enumerate() {
        model.train_step(document, step, steps, AdamSettings::default().lr);
    }
}

fn scalar_model(params: &Params<f64>) -> ScalarGpt {
    let config = params.config();
    let weights: Vec<NamedTensor> = params
        .iter()
        .map(|(name, tensor)| NamedTensor {
            name: name.to_string(),
            shape: [tensor.nrows(), tensor.ncols()],
            data: tensor.iter().copied().collect(),
        })
        .collect();
    let config = scalar::Config {
        n_layer: config.n_layer,
        n_embd: config.n_embd,
        n_head: config.n_head,
        block_size: config.block_size,
        vocab_size: config.vocab_size,
    };
    ScalarGpt::new(config, &weights).expect("the same weights")
}

fn sample_tape<F: Float>(params: &Params<F>, tokenizer: &Tokenizer, count: usize, batch: usize) {
    let mut sampler = Sampler::<F>::new(*params.config(), batch);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    sampler
        .generate(
            params,
            tokenizer,
            count,
            "",
            &SamplingOptions::default(),
            &mut rng,
        )
        .expect("valid options");
}

/// The scalar engine has no cache: each token recomputes the logits of the whole prefix, as
/// microgpt.py would without its KV lists.
fn sample_scalar(params: &Params<f64>, count: usize) {
    let mut model = scalar_model(params);
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

fn print(rows: &[Row], json: bool) {
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|row| {
                format!(
                    "{{\"work\": {:?}, \"engine\": {:?}, \"median_seconds\": {:e}, \"speedup\": {:.3}}}",
                    row.work, row.engine, row.median_seconds, row.speedup
                )
            })
            .collect();
        println!("[{}]", items.join(", "));
        return;
    }
    println!(
        "{:<28} {:<28} {:>12} {:>10}",
        "work", "engine", "median", "speed-up"
    );
    for row in rows {
        println!(
            "{:<28} {:<28} {:>12} {:>9.1}x",
            row.work,
            row.engine,
            seconds(row.median_seconds),
            row.speedup
        );
    }
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
