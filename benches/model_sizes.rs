//! Time per training step as the model grows, the rows of the performance issue's table:
//! 2 layers / n_embd 64 / 4 heads and 4 layers / n_embd 128 / 8 heads with one document a step,
//! and the latter with 32 documents a step. Tape f32 and f64 against the scalar engine (f64) on the
//! same weights and documents; the scalar engine is left out of the batch-32 group, where one of
//! its steps takes seconds (`microgpt bench --workloads d128x32` measures it once).
//!
//! Each iteration is one step (loss of the batch, backward, Adam update) of a run that continues
//! across iterations from the same initial weights; the model is built once per benchmark,
//! untimed, and warmed by one step.
//!
//! Run with `cargo bench -p microgpt-rs --bench model_sizes`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gpt::{Adam, AdamSettings, Config, Model, Params, Tokenizer};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use support::{NAMES, scalar_model};
use tape::Float;

/// A run long enough that the learning rate stays reasonable over all the iterations criterion
/// makes.
const NUM_STEPS: usize = 1_000_000;

fn documents() -> Vec<Vec<usize>> {
    let tokenizer = Tokenizer::from_vocab("abcdefghijklmnopqrstuvwxyz");
    NAMES
        .iter()
        .map(|name| tokenizer.encode(name).expect("lowercase names"))
        .collect()
}

fn config(n_layer: usize, n_embd: usize, n_head: usize) -> Config {
    Config {
        n_layer,
        n_embd,
        n_head,
        block_size: 16,
        vocab_size: 27,
    }
}

fn bench_tape<F: Float>(
    c: &mut Criterion,
    group: &str,
    config: Config,
    batch: usize,
    documents: &[Vec<usize>],
) {
    let params = Params::<F>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(42))
        .expect("valid config");
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);
    let mut step = 0;
    let mut batch_documents: Vec<&[usize]> = Vec::with_capacity(batch);
    let name = if std::mem::size_of::<F>() == 4 {
        "tape_f32"
    } else {
        "tape_f64"
    };
    c.benchmark_group(group)
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .bench_function(name, |b| {
            b.iter(|| {
                batch_documents.clear();
                batch_documents.extend(
                    (0..batch).map(|i| documents[(step * batch + i) % documents.len()].as_slice()),
                );
                let computed = model.batch_loss(&batch_documents).expect("valid documents");
                black_box(computed.apply(&mut adam, NUM_STEPS));
                step += 1;
            })
        });
}

fn bench_scalar(c: &mut Criterion, group: &str, config: Config, documents: &[Vec<usize>]) {
    let params = Params::<f64>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(42))
        .expect("valid config");
    let mut model = scalar_model(&params);
    model.train_step(&documents[0], 0, NUM_STEPS, AdamSettings::default().lr);
    let mut step = 1;
    c.benchmark_group(group)
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .bench_function("scalar_f64", |b| {
            b.iter(|| {
                let document = &documents[step % documents.len()];
                black_box(model.train_step(document, step, NUM_STEPS, AdamSettings::default().lr));
                step += 1;
            })
        });
}

fn model_sizes(c: &mut Criterion) {
    let documents = documents();
    for (group, config) in [
        ("d64_2layers_batch1", config(2, 64, 4)),
        ("d128_4layers_batch1", config(4, 128, 8)),
    ] {
        bench_scalar(c, group, config, &documents);
        bench_tape::<f64>(c, group, config, 1, &documents);
        bench_tape::<f32>(c, group, config, 1, &documents);
    }
    let group = "d128_4layers_batch32";
    bench_tape::<f64>(c, group, config(4, 128, 8), 32, &documents);
    bench_tape::<f32>(c, group, config(4, 128, 8), 32, &documents);
}

criterion_group!(benches, model_sizes);
criterion_main!(benches);
