//! `DataParallel` against its oracle: one tape recording the chunks one after the other, their
//! losses and gradients added in chunk order, written out plainly below. Whatever the number of
//! threads, the parallel results must be those bits; after the weights change they must be those of
//! a fresh computation from the new weights.

#[path = "common/counting_allocator.rs"]
mod counting_allocator;

use counting_allocator::allocations;

use ndarray::{Array1, Array2};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use tape::{
    CustomOp, CustomOpId, DataParallel, Float, InputGrads, Inputs, Tape, TapeError, Tensor, Var,
};

/// Examples per chunk: the batch sizes below include ones it does not divide.
const CHUNK: usize = 4;
const FEATURES: usize = 3;
const HIDDEN: usize = 8;
const CLASSES: usize = 4;

/// `x / (1 + |x|)`, a custom op, so that each replica must register it on its own tape.
struct Softsign;

impl<F: Float> CustomOp<F> for Softsign {
    fn name(&self) -> &'static str {
        "softsign"
    }

    fn forward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &mut Tensor<F>,
        _saved: &mut Tensor<F>,
    ) -> Result<(), TapeError> {
        let x = inputs.get(0);
        let out = output.resize(x.shape());
        for (out, &x) in out.iter_mut().zip(x.as_slice()) {
            *out = x / (F::one() + x.abs());
        }
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, F>,
        _output: &Tensor<F>,
        _saved: &Tensor<F>,
        output_grad: &Tensor<F>,
        grads: &mut InputGrads<'_, '_, F>,
    ) {
        let x = inputs.get(0).as_slice();
        let grad = grads.get_mut(0).as_mut_slice();
        for ((grad, &x), &g) in grad.iter_mut().zip(x).zip(output_grad.as_slice()) {
            let denominator = F::one() + x.abs();
            *grad += g / (denominator * denominator);
        }
    }
}

/// One training example: features and a class.
#[derive(Clone, Copy)]
struct Example {
    features: [f64; FEATURES],
    class: usize,
}

/// What recording on one tape needs: the handles of the MLP's weights on that tape, its softsign
/// op and the buffers a chunk's inputs are laid out in.
struct Net<F> {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    softsign: CustomOpId,
    inputs: Vec<F>,
    targets: Vec<i64>,
}

/// The setup of every tape: the parameters were added in the order w1, b1, w2, b2.
fn setup<F: Float>(tape: &mut Tape<F>) -> Net<F> {
    let [w1, b1, w2, b2] = std::array::from_fn(|index| tape.parameters().nth(index).unwrap());
    Net {
        w1,
        b1,
        w2,
        b2,
        softsign: tape.register(Softsign),
        inputs: Vec::new(),
        targets: Vec::new(),
    }
}

/// A tape holding the MLP's weights, drawn from `seed`.
fn weights<F: Float>(seed: u64) -> Tape<F> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut tape = Tape::new();
    let mut uniform = |rows, columns| {
        Array2::from_shape_fn((rows, columns), |_| {
            F::from_f64(rng.random_range(-1.0..1.0))
        })
    };
    tape.parameter(uniform(HIDDEN, FEATURES));
    tape.parameter(uniform(1, HIDDEN).into_shape_with_order(HIDDEN).unwrap());
    tape.parameter(uniform(CLASSES, HIDDEN));
    tape.parameter(uniform(1, CLASSES).into_shape_with_order(CLASSES).unwrap());
    tape
}

/// A copy of `from`'s parameters on a tape of their own, for an oracle computed from scratch.
fn copy_of<F: Float>(from: &Tape<F>) -> Tape<F> {
    let mut tape = Tape::new();
    for var in from.parameters() {
        tape.parameter(from.value(var).clone());
    }
    tape
}

fn examples(count: usize, seed: u64) -> Vec<Example> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..count)
        .map(|_| Example {
            features: std::array::from_fn(|_| rng.random_range(-2.0..2.0)),
            class: rng.random_range(0..CLASSES),
        })
        .collect()
}

/// The logits `[chunk, CLASSES]` of a chunk; fills the net's input and target buffers.
fn logits<F: Float>(
    tape: &mut Tape<F>,
    net: &mut Net<F>,
    chunk: &[Example],
) -> Result<Var, TapeError> {
    net.inputs.clear();
    net.targets.clear();
    for example in chunk {
        net.inputs
            .extend(example.features.iter().map(|&x| F::from_f64(x)));
        net.targets.push(example.class as i64);
    }
    let x = tape.constant_from_slice(&[chunk.len(), FEATURES], &net.inputs)?;
    let hidden = tape.linear(x, net.w1)?;
    let hidden = tape.add(hidden, net.b1)?;
    let hidden = tape.tanh(hidden)?;
    let hidden = tape.custom(net.softsign, &[hidden])?;
    let logits = tape.linear(hidden, net.w2)?;
    tape.add(logits, net.b2)
}

/// The chunk's mean cross-entropy scaled by its share of a batch of `batch` examples, so that the
/// chunks' losses add up to the batch mean.
fn chunk_loss<F: Float>(
    tape: &mut Tape<F>,
    net: &mut Net<F>,
    chunk: &[Example],
    batch: usize,
) -> Result<Var, TapeError> {
    let logits = logits(tape, net, chunk)?;
    let loss = tape.cross_entropy(logits, &net.targets, None)?;
    tape.scale(loss, F::from_f64(chunk.len() as f64 / batch as f64))
}

/// A batch's loss and every gradient, as bits (an `f32` widened to `f64` keeps its bits apart).
#[derive(Debug, PartialEq)]
struct Bits {
    loss: u64,
    gradients: Vec<Vec<u64>>,
}

fn bits<F: Float>(x: F) -> u64 {
    x.to_f64().to_bits()
}

/// The oracle: one tape with a copy of `weights` records the chunks one after the other; the
/// chunks' losses are added in chunk order starting from zero, and so is each gradient, starting
/// from the first chunk's.
fn one_tape_in_chunk_order<F: Float>(weights: &Tape<F>, batch: &[Example]) -> Bits {
    let mut tape = copy_of(weights);
    let mut net = setup(&mut tape);
    let mut loss = F::zero();
    let mut sums: Vec<Vec<F>> = Vec::new();
    for chunk in batch.chunks(CHUNK) {
        tape.clear();
        let chunk_loss = chunk_loss(&mut tape, &mut net, chunk, batch.len()).unwrap();
        let gradients = tape.backward(chunk_loss).unwrap();
        loss += tape.scalar(chunk_loss);
        for (index, var) in tape.parameters().enumerate() {
            let gradient = gradients.parameter(var).as_slice();
            match sums.get_mut(index) {
                None => sums.push(gradient.to_vec()),
                Some(sum) => {
                    for (sum, &g) in sum.iter_mut().zip(gradient) {
                        *sum += g;
                    }
                }
            }
        }
    }
    Bits {
        loss: bits(loss),
        gradients: sums
            .iter()
            .map(|sum| sum.iter().map(|&x| bits(x)).collect())
            .collect(),
    }
}

/// The batch's loss and gradients from `parallel`.
fn parallel_bits<F: Float>(parallel: &mut DataParallel<F, Net<F>>, batch: &[Example]) -> Bits {
    let (loss, gradients) = parallel
        .record_batch(batch, CHUNK, |tape, net, chunk| {
            chunk_loss(tape, net, chunk, batch.len())
        })
        .unwrap();
    assert_eq!(gradients.iter().len(), 4);
    Bits {
        loss: bits(loss),
        gradients: gradients
            .iter()
            .map(|(_, gradient)| gradient.as_slice().iter().map(|&x| bits(x)).collect())
            .collect(),
    }
}

/// Runs `work` on a rayon pool of `threads` threads, so that the chunks spread over that many.
fn on_threads<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(work)
}

/// Batch sizes of one chunk, of whole chunks and of a partial last chunk.
const BATCH_SIZES: [usize; 7] = [1, 3, 4, 5, 8, 11, 17];

fn every_thread_count_gives_the_bits_of_one_tape<F: Float>() {
    let weights = weights::<F>(1);
    for threads in [1, 2, 3] {
        on_threads(threads, || {
            // One DataParallel for every batch size: its replicas are reused as the number of
            // chunks grows and shrinks.
            let mut parallel = DataParallel::new(copy_of(&weights), setup);
            for size in BATCH_SIZES {
                let batch = examples(size, size as u64);
                let expected = one_tape_in_chunk_order(&weights, &batch);
                let actual = parallel_bits(&mut parallel, &batch);
                assert_eq!(actual, expected, "{size} examples on {threads} threads");
            }
        });
    }
}

/// If this fails, the chunks' gradients are added in an order that depends on the threads, or a
/// replica records with other weights or another op than the main tape.
#[test]
fn every_thread_count_gives_the_bits_of_one_tape_recording_the_chunks_in_order() {
    every_thread_count_gives_the_bits_of_one_tape::<f64>();
    every_thread_count_gives_the_bits_of_one_tape::<f32>();
}

/// If this fails, a replica kept weights from before an update: each step must give the bits of a
/// fresh computation from the main tape's current weights, whichever way they were changed.
#[test]
fn replicas_follow_every_change_of_the_weights() {
    let batch = examples(11, 7);
    let single = examples(3, 8);
    on_threads(2, || {
        let mut parallel = DataParallel::new(weights::<f64>(2), setup);
        let mut losses = Vec::new();
        for step in 0..5 {
            let expected = one_tape_in_chunk_order(parallel.tape(), &batch);
            assert_eq!(
                parallel_bits(&mut parallel, &batch),
                expected,
                "step {step}"
            );
            losses.push(expected.loss);
            match step {
                // An optimizer step: plain SGD on the batch's gradients.
                0 | 1 => {
                    let (tape, gradients) = parallel.tape_and_gradients_mut();
                    for (var, value) in tape.parameters_mut() {
                        value
                            .view_mut()
                            .scaled_add(-0.5, &gradients.parameter(var).view());
                    }
                }
                // Weights loaded by hand.
                2 => {
                    let tape = parallel.tape_mut();
                    let w1 = tape.parameters().next().unwrap();
                    tape.parameter_mut(w1).as_mut_slice().fill(0.25);
                }
                // An SGD step on a one-chunk batch (recorded on the main tape alone) before the
                // next large batch.
                _ => {
                    let expected = one_tape_in_chunk_order(parallel.tape(), &single);
                    assert_eq!(parallel_bits(&mut parallel, &single), expected);
                    let (tape, gradients) = parallel.tape_and_gradients_mut();
                    for (var, value) in tape.parameters_mut() {
                        value
                            .view_mut()
                            .scaled_add(-0.5, &gradients.parameter(var).view());
                    }
                }
            }
        }
        losses.dedup();
        assert_eq!(losses.len(), 5, "every change moved the loss");
    });
}

/// If this fails, a weight changed while recording on the main tape with `record_on_main` did not
/// reach the replicas, which read the main tape's values.
#[test]
fn a_weight_changed_in_record_on_main_reaches_the_replicas() {
    let batch = examples(11, 7);
    on_threads(2, || {
        let mut parallel = DataParallel::new(weights::<f64>(3), setup);
        parallel_bits(&mut parallel, &batch);
        parallel.record_on_main(|tape, net| tape.parameter_mut(net.b2).as_mut_slice()[0] += 1.0);
        let expected = one_tape_in_chunk_order(parallel.tape(), &batch);
        assert_eq!(parallel_bits(&mut parallel, &batch), expected);
    });
}

/// The logits of every example of `batch`, from one tape recording the chunks in order.
fn logits_one_tape(weights: &Tape<f64>, batch: &[Example]) -> Vec<u64> {
    let mut tape = copy_of(weights);
    let mut net = setup(&mut tape);
    let mut all = Vec::new();
    for chunk in batch.chunks(CHUNK) {
        tape.clear();
        let logits = logits(&mut tape, &mut net, chunk).unwrap();
        all.extend(tape.value(logits).as_slice().iter().map(|&x| bits(x)));
    }
    all
}

/// If this fails, `evaluate` collects chunks out of order, skips some, or reads stale weights.
#[test]
fn evaluation_collects_every_chunk_in_order_with_the_current_weights() {
    let batch = examples(23, 9);
    for threads in [1, 2, 3] {
        on_threads(threads, || {
            let mut parallel = DataParallel::new(weights::<f64>(4), setup);
            for _ in 0..2 {
                let mut all = Vec::new();
                parallel
                    .evaluate(
                        &batch,
                        CHUNK,
                        |tape, net, chunk| {
                            let logits = tape.without_grad(|tape| logits(tape, net, chunk))?;
                            // The chunk's logits, kept in the state's input buffer.
                            let values = tape.value(logits).as_slice();
                            net.inputs.clear();
                            net.inputs.extend_from_slice(values);
                            Ok(())
                        },
                        |net| all.extend(net.inputs.iter().map(|&x| bits(x))),
                    )
                    .unwrap();
                assert_eq!(all.len(), batch.len() * CLASSES);
                assert_eq!(
                    all,
                    logits_one_tape(parallel.tape(), &batch),
                    "{threads} threads"
                );
                // Change the weights: the second evaluation must see them on every replica.
                let tape = parallel.tape_mut();
                let b1 = tape.parameters().nth(1).unwrap();
                tape.parameter_mut(b1).as_mut_slice().fill(-0.5);
            }
        });
    }
}

/// If this fails, replicas are rebuilt instead of kept (a new tape per batch re-allocates all
/// its buffers), or more are made than the chunks or the threads need (each costs a copy of the
/// weights and of their gradients).
#[test]
fn replicas_are_created_once_and_kept_one_per_thread_at_most() {
    on_threads(3, || {
        let mut parallel = DataParallel::new(weights::<f64>(5), setup);
        let mut counts = Vec::new();
        // In chunks of 4: 2, 3, 3, 1, 5 and 4 chunks, on 3 threads.
        for size in [5, 11, 11, 1, 17, 13] {
            parallel_bits(&mut parallel, &examples(size, 1));
            counts.push(parallel.replicas());
        }
        assert_eq!(counts, [2, 3, 3, 3, 3, 3]);
    });
}

/// If this fails, an error in a chunk is lost, reported for the wrong chunk, or leaves the
/// gradients of an earlier batch looking like this one's.
#[test]
fn a_failing_chunk_reports_the_first_error_in_chunk_order_and_leaves_no_gradients() {
    let mut batch = examples(11, 3);
    batch[5].class = 7; // chunk 1
    batch[9].class = 9; // chunk 2
    on_threads(3, || {
        let mut parallel = DataParallel::new(weights::<f64>(6), setup);
        parallel_bits(&mut parallel, &examples(11, 4));
        let error = parallel
            .record_batch(&batch, CHUNK, |tape, net, chunk| {
                chunk_loss(tape, net, chunk, batch.len())
            })
            .err()
            .expect("class 7 is out of range");
        assert!(
            matches!(
                error,
                TapeError::Index {
                    index: 7,
                    len: 4,
                    ..
                }
            ),
            "{error}"
        );
        assert!(parallel.gradients().is_empty());
        assert_eq!(parallel.gradients().iter().len(), 0);
        // The next good batch is computed as usual.
        let good = examples(11, 5);
        let expected = one_tape_in_chunk_order(parallel.tape(), &good);
        assert_eq!(parallel_bits(&mut parallel, &good), expected);
    });
}

/// If this fails, a batch that cannot be chunked is accepted (and would divide by zero or record
/// nothing) instead of being refused with an error naming the call.
#[test]
fn an_empty_batch_or_a_zero_chunk_size_is_an_argument_error() {
    let mut parallel = DataParallel::new(weights::<f64>(7), setup);
    let record = |tape: &mut Tape<f64>, net: &mut Net<f64>, chunk: &[Example]| {
        chunk_loss(tape, net, chunk, 1)
    };
    let empty = parallel.record_batch(&[], CHUNK, record).err().unwrap();
    assert!(
        matches!(
            empty,
            TapeError::Argument {
                op: "record_batch",
                ..
            }
        ),
        "{empty}"
    );
    let zero = parallel
        .record_batch(&examples(3, 1), 0, record)
        .err()
        .unwrap();
    assert!(
        matches!(
            zero,
            TapeError::Argument {
                op: "record_batch",
                ..
            }
        ),
        "{zero}"
    );
    let run = |_: &mut Tape<f64>, _: &mut Net<f64>, _: &[Example]| Ok(());
    let zero = parallel
        .evaluate(&examples(3, 1), 0, run, |_| {})
        .unwrap_err();
    assert!(
        matches!(zero, TapeError::Argument { op: "evaluate", .. }),
        "{zero}"
    );
    assert_eq!(
        parallel.evaluate(&[], CHUNK, run, |_| panic!("nothing to collect")),
        Ok(())
    );
}

/// If this fails, a handle that is not one of the main tape's parameters gets a gradient that
/// belongs to something else.
#[test]
fn batch_gradients_answer_only_for_the_main_tape_s_parameters() {
    let batch = examples(11, 2);
    let mut parallel = DataParallel::new(weights::<f64>(8), setup);
    let mut other = weights::<f64>(8);
    let foreign = other.parameters().next().unwrap();
    let node = other.constant(Array1::from(vec![1.0]));
    for size in [3, 11] {
        parallel_bits(&mut parallel, &batch[..size]);
        let gradients = parallel.gradients();
        let w1 = parallel.state().w1;
        assert_eq!(gradients.get(w1).unwrap().shape(), [HIDDEN, FEATURES]);
        assert!(gradients.get(foreign).is_none(), "{size} examples");
        assert!(gradients.get(node).is_none(), "{size} examples");
    }
}

/// If this fails, a warm batch of several chunks (recording, backward, summing, the weight copy
/// after an update) allocates. It runs on a one-thread pool: the counter sees the current thread
/// only, and this way every chunk is recorded on it.
#[test]
fn a_warm_batch_of_several_chunks_allocates_nothing() {
    let batch = examples(11, 6);
    on_threads(1, || {
        let mut parallel = DataParallel::new(weights::<f64>(9), setup);
        let step = |parallel: &mut DataParallel<f64, Net<f64>>| {
            let record = |tape: &mut Tape<f64>, net: &mut Net<f64>, chunk: &[Example]| {
                chunk_loss(tape, net, chunk, batch.len())
            };
            let (loss, _) = parallel.record_batch(&batch, CHUNK, record).unwrap();
            let (tape, gradients) = parallel.tape_and_gradients_mut();
            for (var, value) in tape.parameters_mut() {
                let gradient = gradients.parameter(var).as_slice();
                for (value, &g) in value.as_mut_slice().iter_mut().zip(gradient) {
                    *value -= 0.1 * g;
                }
            }
            loss
        };
        step(&mut parallel);
        let before = allocations();
        let loss = step(&mut parallel);
        let during = allocations() - before;
        assert!(loss.is_finite());
        assert_eq!(during, 0, "a warm batch allocated {during} times");
    });
}
