//! Training throughput: one step (loss + backward + Adam update), and a whole 1000-step run.
//!
//! Groups `training_step/seed_block8` (the seed's configuration: n_layer 1, n_embd 16, n_head 4,
//! block_size 8, vocab 27, on the 6-character name "sophia") and `training_step/karpathy_block16`
//! (the same with block_size 16, on the 15-character "mariaguadalupes", so all 16 positions are
//! used): the tape in f64 and f32 against the scalar engine (microgpt.py's design) in f64. The
//! ratio of the scalar median to a tape median is the tape's speed-up per step.
//!
//! Every timed step is one of the steps of a fresh 100-step run (Adam's learning-rate schedule over
//! 100 steps) from the same initial weights, on the same document; a new run starts every 100
//! steps, untimed. So each sample times the same work, and the weights never drift far from a real
//! run's (training one document for thousands of steps would overfit it and could reach subnormal
//! floats). The first step of each run fills the tape's buffers, as in real training: 1% of the
//! steps.
//!
//! Group `train_1000_steps`: Karpathy's configuration trained for 1000 steps, one document per
//! step, cycling through 50 fixed names, from the model's creation to the last Adam update.
//!
//! Run with `cargo bench -p microgpt-rs --bench training_step` (add `-- --quick` for a fast check);
//! without `-p` cargo looks only in the workspace's default member, the CLI, and finds no bench.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gpt::{Adam, AdamSettings, Config, Model, Params, Tokenizer};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use support::{NAMES, scalar_model};
use tape::Float;

/// Steps of each timed run before the weights are reset.
const RUN_LENGTH: usize = 100;

fn tokenizer() -> Tokenizer {
    Tokenizer::from_vocab("abcdefghijklmnopqrstuvwxyz")
}

fn config(block_size: usize) -> Config {
    Config {
        block_size,
        ..Config::default()
    }
}

fn initial_params(config: Config) -> Params<f64> {
    Params::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(42)).expect("valid config")
}

/// Times `iterations` training steps, in fresh runs of [`RUN_LENGTH`] steps; building each run's
/// model (`start`) is not timed.
fn time_steps<M>(
    iterations: u64,
    mut start: impl FnMut() -> M,
    mut step: impl FnMut(&mut M, usize),
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut remaining = iterations as usize;
    while remaining > 0 {
        let steps = remaining.min(RUN_LENGTH);
        let mut model = start();
        let clock = Instant::now();
        for index in 0..steps {
            step(&mut model, index);
        }
        elapsed += clock.elapsed();
        black_box(&mut model);
        remaining -= steps;
    }
    elapsed
}

fn tape_start<F: Float>(params: &Params<f64>) -> impl FnMut() -> (Model<F>, Adam<F>) + '_ {
    move || {
        let params = params.cast::<F>();
        let adam = Adam::new(AdamSettings::default(), &params);
        (Model::new(params), adam)
    }
}

fn tape_step<F: Float>((model, adam): &mut (Model<F>, Adam<F>), tokens: &[usize], steps: usize) {
    let step = model.loss(black_box(tokens)).expect("valid document");
    black_box(step.apply(adam, steps));
}

fn training_step(c: &mut Criterion) {
    for (group_name, block_size, document) in [
        ("training_step/seed_block8", 8, "sophia"),
        ("training_step/karpathy_block16", 16, "mariaguadalupes"),
    ] {
        let params = initial_params(config(block_size));
        let tokens = tokenizer().encode(document).expect("lowercase letters");
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("tape_f64", |bencher| {
            bencher.iter_custom(|iterations| {
                time_steps(iterations, tape_start::<f64>(&params), |model, _| {
                    tape_step(model, &tokens, RUN_LENGTH)
                })
            })
        });
        group.bench_function("tape_f32", |bencher| {
            bencher.iter_custom(|iterations| {
                time_steps(iterations, tape_start::<f32>(&params), |model, _| {
                    tape_step(model, &tokens, RUN_LENGTH)
                })
            })
        });
        group.bench_function("scalar_f64", |bencher| {
            bencher.iter_custom(|iterations| {
                time_steps(
                    iterations,
                    || scalar_model(&params),
                    |model, step| {
                        let lr = AdamSettings::default().lr;
                        black_box(model.train_step(black_box(&tokens), step, RUN_LENGTH, lr));
                    },
                )
            })
        });
        group.finish();
    }
}

const TRAINING_STEPS: usize = 1000;

fn train_tape<F: Float>(params: &Params<f64>, documents: &[Vec<usize>]) -> F {
    let params = params.cast::<F>();
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);
    let mut loss = F::zero();
    for document in documents.iter().cycle().take(TRAINING_STEPS) {
        let step = model.loss(document).expect("valid document");
        loss = step.apply(&mut adam, TRAINING_STEPS);
    }
    loss
}

fn train_scalar(params: &Params<f64>, documents: &[Vec<usize>]) -> f64 {
    let mut model = scalar_model(params);
    let lr = AdamSettings::default().lr;
    let mut loss = 0.0;
    for (step, document) in documents.iter().cycle().take(TRAINING_STEPS).enumerate() {
        loss = model.train_step(document, step, TRAINING_STEPS, lr);
    }
    loss
}

fn train_1000_steps(c: &mut Criterion) {
    let params = initial_params(config(16));
    let tokenizer = tokenizer();
    let documents: Vec<Vec<usize>> = NAMES
        .iter()
        .map(|name| tokenizer.encode(name).expect("lowercase letters"))
        .collect();
    let mut group = c.benchmark_group("train_1000_steps/karpathy_block16");
    // A run takes tens of milliseconds on the tape and a few tenths of a second on the scalar
    // engine: ten samples are enough and keep the whole group under half a minute.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("tape_f64", |bencher| {
        bencher.iter(|| train_tape::<f64>(&params, black_box(&documents)))
    });
    group.bench_function("tape_f32", |bencher| {
        bencher.iter(|| train_tape::<f32>(&params, black_box(&documents)))
    });
    group.bench_function("scalar_f64", |bencher| {
        bencher.iter(|| train_scalar(&params, black_box(&documents)))
    });
    group.finish();
}

criterion_group!(benches, training_step, train_1000_steps);
criterion_main!(benches);
