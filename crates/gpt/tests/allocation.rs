//! A warm training step (`Model::loss` then `Model::apply_adam`) does not touch the heap.
//!
//! The oracle is a counting global allocator: it counts the allocations of the current thread, so
//! the test harness's other threads cannot disturb the count. "Warm" means the model has already
//! seen a document at least as long as the measured one, so every buffer is big enough.

use gpt::{Adam, AdamSettings, Config, Model, Params};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

#[path = "common/counting_allocator.rs"]
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
    let mut step = |model: &mut Model<F>, tokens: &[usize]| {
        let loss = model.loss(tokens).unwrap();
        model.apply_adam(&mut adam, 100);
        loss
    };
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
