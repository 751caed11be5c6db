//! Sampling throughput: 1,000 names from the seed's configuration (n_layer 1, n_embd 16, n_head 4,
//! block_size 8, vocab 27) with random initial weights, at temperature 0.5.
//!
//! The sampler decodes with a KV cache, feeding a batch of names through the model one position at
//! a time. Batch 1 generates the names one at a time; batches of 64 and 1000 advance that many
//! names per `Decoder::step`. The ratio of the batch-1 median to a batched one is what batching
//! buys. The sampler (its cache and buffers) is created once per benchmark and reused; each
//! iteration starts from the same seed, so it draws the same 1,000 names. f32 and f64 are side by
//! side, with throughput in names per second.
//!
//! Random weights give near-uniform predictions, so BOS (1 token in 27) rarely ends a name early:
//! these names average about 7 characters (about 7,250 decode steps per 1,000 names), close to the
//! 8-position limit, which makes this near the most work 1,000 names can take here.
//!
//! Run with `cargo bench -p microgpt-rs --bench sampling` (add `-- --quick` for a fast check);
//! without `-p` cargo looks only in the workspace's default member, the CLI, and finds no bench.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gpt::{Config, Params, Request, Sampler, Tokenizer};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use tape::Float;

const NAMES: usize = 1000;

fn bench_dtype<F: Float>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dtype: &str,
    params: &Params<f64>,
    tokenizer: &Tokenizer,
) {
    let params = params.cast::<F>();
    let request = Request::new(tokenizer, NAMES);
    for batch in [1, 64, 1000] {
        let mut sampler = Sampler::<F>::new(*params.config(), batch);
        group.bench_function(
            BenchmarkId::new(dtype, format!("batch_{batch}")),
            |bencher| {
                bencher.iter(|| {
                    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
                    sampler
                        .generate(&params, black_box(&request), &mut rng)
                        .expect("a tokenizer of the model's vocabulary")
                })
            },
        );
    }
}

fn sampling(c: &mut Criterion) {
    let config = Config::default();
    let params =
        Params::<f64>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(1)).expect("valid");
    let tokenizer = Tokenizer::from_vocab("abcdefghijklmnopqrstuvwxyz");
    let mut group = c.benchmark_group("sample_1000_names/seed_block8");
    group
        .throughput(Throughput::Elements(NAMES as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    bench_dtype::<f32>(&mut group, "f32", &params, &tokenizer);
    bench_dtype::<f64>(&mut group, "f64", &params, &tokenizer);
    group.finish();
}

criterion_group!(benches, sampling);
criterion_main!(benches);
