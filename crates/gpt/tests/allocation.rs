//! A warm training step (`Model::loss` then `Step::apply`) does not touch the heap.
//!
//! The oracle is a counting global allocator: it counts the allocations of the current thread, so
//! the test harness's other threads cannot disturb the count. "Warm" means the model has already
//! seen a document at least as long as the measured one, so every buffer is big enough.

use gpt::{Adam, AdamSettings, Config, Model, Params};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

#[path = "../../tape/tests/common/counting_allocator.rs"]
mod counting_allocator;

use counting_allocator::allocations;

fn warm_steps_allocate_nothing<F: tape::Float>() {
    // Karpathy's configuration on names.txt's vocabulary.
    let config = Config {
        vocab_size: 27,
        block_size: 16,
        ..Config::default()
    };
    let params = Params::<F>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(7)).unwrap();
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);
    // BOS = 26; a long document (truncated to the block), then shorter ones of other lengths.
    let long: Vec<usize> = [26].into_iter().chain(0..20).chain([26]).collect();
    let documents: [&[usize]; 4] = [
        &long,
        &[26, 4, 0, 26],
        &[26, 1, 2, 3, 4, 5, 26],
        &[26, 9, 26],
    ];
    let mut step =
        |model: &mut Model<F>, tokens: &[usize]| model.loss(tokens).unwrap().apply(&mut adam, 100);
    step(&mut model, documents[0]);
    for tokens in documents {
        let before = allocations();
        let loss = step(&mut model, tokens);
        let during = allocations() - before;
        assert!(loss.to_f64().is_finite());
        assert_eq!(
            during,
            0,
            "a warm step on a {}-token document allocated {during} times",
            tokens.len()
        );
    }
}

#[test]
fn a_warm_f32_training_step_allocates_nothing() {
    warm_steps_allocate_nothing::<f32>();
}

#[test]
fn a_warm_f64_training_step_allocates_nothing() {
    warm_steps_allocate_nothing::<f64>();
}

/// A warm step on a batch of several chunks allocates nothing either. It runs on a one-thread rayon
/// pool: the counter sees only the current thread, and this way every chunk is recorded on it (on
/// more threads, rayon's own queues may also allocate now and then, outside the model's control).
fn warm_chunked_steps_allocate_nothing<F: tape::Float>() {
    let config = Config {
        vocab_size: 27,
        block_size: 16,
        ..Config::default()
    };
    let params = Params::<F>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(8)).unwrap();
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);
    // 2.5 chunks of documents of 1 to 20 letters (BOS = 26).
    let documents: Vec<Vec<usize>> = (0..2 * gpt::CHUNK + gpt::CHUNK / 2)
        .map(|index| {
            let letters = (0..1 + index % 20).map(|letter| (index + letter) % 26);
            [26].into_iter().chain(letters).chain([26]).collect()
        })
        .collect();
    // The same documents in other orders, so each chunk gets other lengths; the first pass warms
    // every chunk's buffers for all of them.
    let orders: Vec<Vec<Vec<usize>>> = (0..4)
        .map(|shift| {
            let mut order = documents.clone();
            order.rotate_left(3 * shift);
            order
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let mut step = |model: &mut Model<F>, documents: &[Vec<usize>]| {
            model.batch_loss(documents).unwrap().apply(&mut adam, 100)
        };
        for order in &orders {
            step(&mut model, order);
        }
        for order in &orders {
            let before = allocations();
            let loss = step(&mut model, order);
            let during = allocations() - before;
            assert!(loss.to_f64().is_finite());
            assert_eq!(
                during,
                0,
                "a warm step on a batch of {} documents allocated {during} times",
                order.len()
            );
        }
    });
}

#[test]
fn a_warm_f32_step_on_several_chunks_allocates_nothing() {
    warm_chunked_steps_allocate_nothing::<f32>();
}

#[test]
fn a_warm_f64_step_on_several_chunks_allocates_nothing() {
    warm_chunked_steps_allocate_nothing::<f64>();
}
