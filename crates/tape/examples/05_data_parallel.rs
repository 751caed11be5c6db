//! Data parallelism: each step's batch is cut into chunks of a fixed size, each chunk is recorded
//! on a tape of its own on whichever core is free, and `DataParallel` adds the chunks' losses and
//! gradients in chunk order. Since the chunks do not depend on the number of threads, neither do
//! the sums: training on both cores gives the same losses and weights, to the bit, as training on
//! one. This example checks it by training the same model twice, in rayon thread pools of one and
//! two threads.
//!
//! The model is an MLP (2 -> 64 -> 64 -> 3, tanh) that learns which of three interleaved spirals a
//! point of the plane belongs to, by minibatch SGD on synthetic points. Shows
//! `DataParallel::new` (with the per-tape state its setup closure builds), `record_batch` (one
//! step's loss and gradients), `tape_and_gradients_mut` (the SGD update, after which the replicas
//! are refreshed) and `evaluate` (accuracy, with no gradients).
//!
//! Run it with `cargo run --release -p tape --example 05_data_parallel`; it exits with an error if
//! the two runs differ in any bit.

use std::f32::consts::PI;
use std::process::ExitCode;
use std::time::Instant;

use ndarray::{Array1, Array2};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use tape::{DataParallel, Tape, TapeError, Tensor, Var};

const CLASSES: usize = 3;
const HIDDEN: usize = 64;
const BATCH: usize = 512;
/// Points per chunk: one tape records this many at a time, so a batch is 8 chunks.
const CHUNK: usize = 64;
const STEPS: usize = 300;
const LEARNING_RATE: f32 = 0.5;

/// A point of the plane and the spiral it lies on.
struct Point {
    xy: [f32; 2],
    class: usize,
}

/// `count` points on three spiral arms a third of a turn apart, with some noise on the angle.
fn spirals(count: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<Point> {
    (0..count)
        .map(|index| {
            let class = index % CLASSES;
            let radius: f32 = rng.random_range(0.05..1.0);
            let angle = class as f32 * 2.0 * PI / CLASSES as f32
                + 4.0 * radius
                + rng.random_range(-0.3..0.3);
            Point {
                xy: [radius * angle.cos(), radius * angle.sin()],
                class,
            }
        })
        .collect()
}

/// What recording a chunk on one tape needs: the handles of the weights on that tape (every tape
/// has its own) and buffers kept across steps. A custom op would be registered here too: its id
/// belongs to the tape that registered it.
struct Mlp {
    /// `(weight [out, in], bias [out])` of each layer.
    layers: [(Var, Var); 3],
    inputs: Vec<f32>,
    targets: Vec<i64>,
    /// How many points of the last evaluated chunk were classified right.
    correct: usize,
}

/// The setup of every tape: its parameters are the main tape's, in the same order.
fn setup(tape: &mut Tape<f32>) -> Mlp {
    let parameter = |index| tape.parameters().nth(index).expect("six parameters");
    Mlp {
        layers: [
            (parameter(0), parameter(1)),
            (parameter(2), parameter(3)),
            (parameter(4), parameter(5)),
        ],
        inputs: Vec::new(),
        targets: Vec::new(),
        correct: 0,
    }
}

/// The main tape with the MLP's initial weights, uniform in `±1/sqrt(fan_in)` as in PyTorch.
fn initial_weights(rng: &mut Xoshiro256PlusPlus) -> Tape<f32> {
    let mut tape = Tape::new();
    for (inputs, outputs) in [(2, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, CLASSES)] {
        let bound = 1.0 / (inputs as f32).sqrt();
        tape.parameter(Array2::from_shape_fn((outputs, inputs), |_| {
            rng.random_range(-bound..bound)
        }));
        tape.parameter(Array1::from_shape_fn(outputs, |_| {
            rng.random_range(-bound..bound)
        }));
    }
    tape
}

impl Mlp {
    /// The logits `[chunk, CLASSES]` of a chunk of points; fills the input and target buffers.
    fn logits(&mut self, tape: &mut Tape<f32>, chunk: &[Point]) -> Result<Var, TapeError> {
        self.inputs.clear();
        self.targets.clear();
        for point in chunk {
            self.inputs.extend_from_slice(&point.xy);
            self.targets.push(point.class as i64);
        }
        let mut x = tape.constant_from_slice(&[chunk.len(), 2], &self.inputs)?;
        for (layer, &(weight, bias)) in self.layers.iter().enumerate() {
            x = tape.linear(x, weight)?;
            x = tape.add(x, bias)?;
            if layer + 1 < self.layers.len() {
                x = tape.tanh(x)?;
            }
        }
        Ok(x)
    }
}

/// What a run produced: each step's loss, the final weights, the accuracy and the time per step.
struct Run {
    losses: Vec<f32>,
    weights: Vec<Tensor<f32>>,
    accuracy: f64,
    seconds_per_step: f64,
}

/// Trains the MLP on `points` on a rayon pool of `threads` threads.
fn train(threads: usize, points: &[Point], seed: u64) -> Result<Run, TapeError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    pool.install(|| {
        let tape = initial_weights(&mut Xoshiro256PlusPlus::seed_from_u64(seed));
        let mut parallel = DataParallel::new(tape, setup);
        let mut losses = Vec::with_capacity(STEPS);
        let start = Instant::now();
        for step in 0..STEPS {
            let batch = &points[(step * BATCH) % points.len()..][..BATCH];
            let (loss, _) = parallel.record_batch(batch, CHUNK, |tape, mlp, chunk| {
                let logits = mlp.logits(tape, chunk)?;
                let loss = tape.cross_entropy(logits, &mlp.targets, None)?;
                // The chunk's mean, weighted by its share of the batch: the chunks' losses (and
                // gradients) add up to the batch's mean.
                tape.scale(loss, chunk.len() as f32 / batch.len() as f32)
            })?;
            losses.push(loss);
            let (tape, gradients) = parallel.tape_and_gradients_mut();
            for (var, value) in tape.parameters_mut() {
                let gradient = gradients.parameter(var);
                value
                    .view_mut()
                    .scaled_add(-LEARNING_RATE, &gradient.view());
            }
        }
        let seconds_per_step = start.elapsed().as_secs_f64() / STEPS as f64;

        let mut correct = 0;
        parallel.evaluate(
            points,
            CHUNK,
            |tape, mlp, chunk| {
                let logits = tape.without_grad(|tape| mlp.logits(tape, chunk))?;
                let rows = tape.value(logits).as_slice().chunks_exact(CLASSES);
                mlp.correct = rows
                    .zip(&mlp.targets)
                    .filter(|(row, target)| {
                        let best = (0..CLASSES).max_by(|&a, &b| row[a].total_cmp(&row[b]));
                        best == Some(**target as usize)
                    })
                    .count();
                Ok(())
            },
            |mlp| correct += mlp.correct,
        )?;
        let tape = parallel.tape();
        let weights = tape
            .parameters()
            .map(|var| tape.value(var).clone())
            .collect();
        Ok(Run {
            losses,
            weights,
            accuracy: correct as f64 / points.len() as f64,
            seconds_per_step,
        })
    })
}

/// Whether two runs have the same losses and weights, bit for bit.
fn same_bits(a: &Run, b: &Run) -> bool {
    let bits = |values: &[f32]| values.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    bits(&a.losses) == bits(&b.losses)
        && a.weights.len() == b.weights.len()
        && a.weights
            .iter()
            .zip(&b.weights)
            .all(|(a, b)| a.shape() == b.shape() && bits(a.as_slice()) == bits(b.as_slice()))
}

fn main() -> Result<ExitCode, TapeError> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let points = spirals(8 * BATCH, &mut rng);
    let one = train(1, &points, 1)?;
    let two = train(2, &points, 1)?;
    for (threads, run) in [(1, &one), (2, &two)] {
        println!(
            "{threads} thread(s): loss {:.4} -> {:.4}, accuracy {:.1}%, {:.2} ms/step",
            run.losses[0],
            run.losses[STEPS - 1],
            100.0 * run.accuracy,
            1e3 * run.seconds_per_step
        );
    }
    println!(
        "two threads take {:.2}x the time of one",
        two.seconds_per_step / one.seconds_per_step
    );
    if same_bits(&one, &two) {
        println!("the {STEPS} losses and every weight are the same bits on 1 and 2 threads");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: the runs on 1 and 2 threads differ");
        Ok(ExitCode::FAILURE)
    }
}
