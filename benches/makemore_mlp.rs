//! One training step of tape example 02, the makemore MLP (context 3, embedding 10, 200 tanh
//! units, batch 32, f32): embedding of a [32, 3] id array, reshape, two linear layers with
//! broadcast biases, tanh, cross-entropy, backward and the AdamW update, on a warm tape. Compare it
//! with the per-op overhead of `tape_ops` (group `tape_op_16_f64`): this step records 10 ops.
//!
//! Run with `cargo bench -p microgpt-rs --bench makemore_mlp`.

#[allow(dead_code)] // the example's `main` and training driver are not used here
#[path = "../crates/tape/examples/02_makemore_mlp.rs"]
mod example;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use example::{Batch, Examples, Mlp, optimizer_config};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use tape::optim::AdamW;
use tape::{Gradients, Tape};

fn makemore_mlp_step(c: &mut Criterion) {
    // The benchmarks' 50 names: the step's cost does not depend on which names they are.
    let token = |c: char| 1 + (c as usize - 'a' as usize);
    let examples = Examples::new(&support::NAMES, token);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut tape = Tape::<f32>::new();
    let model = Mlp::new(&mut tape, 27, &mut rng);
    let mut gradients = Gradients::new();
    let mut optimizer = AdamW::new(optimizer_config());
    let mut batch = Batch::new();
    c.bench_function("makemore_mlp_step_f32_batch32", |bencher| {
        bencher.iter(|| {
            let loss = model
                .train_step(
                    &mut tape,
                    &mut gradients,
                    &mut optimizer,
                    &examples,
                    &mut rng,
                    0.002,
                    &mut batch,
                )
                .expect("the shapes are fixed");
            black_box(loss)
        })
    });
}

criterion_group!(benches, makemore_mlp_step);
criterion_main!(benches);
