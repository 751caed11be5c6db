//! Schedules drive Adam at exactly their rate: `Step::apply_at` at microgpt.py's linear rate gives
//! the very weights `Step::apply` gives, and a constant rate the weights of Adam's rule applied at
//! that rate by hand.

use gpt::{Adam, AdamSettings, Config, Model, Params, Schedule, Step};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

fn config() -> Config {
    Config {
        n_layer: 1,
        n_embd: 8,
        n_head: 2,
        block_size: 6,
        vocab_size: 5,
    }
}

/// Weights after `steps` updates on a fixed batch, each made by `update(computed, adam, step)`.
fn train(
    steps: usize,
    mut update: impl FnMut(Step<'_, f64>, &mut Adam<f64>, usize),
) -> Params<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let params = Params::<f64>::init(config(), &mut rng).unwrap();
    let mut adam = Adam::new(AdamSettings::default(), &params);
    let mut model = Model::new(params);
    let batch = [vec![4, 0, 1, 2, 4], vec![4, 3, 3, 1, 0, 2, 4]];
    for step in 0..steps {
        update(model.batch_loss(&batch).unwrap(), &mut adam, step);
    }
    model.params()
}

#[test]
fn applying_at_the_linear_rate_is_microgpts_decay_to_the_bit() {
    // If this failed, a non-default schedule could not reproduce the default one exactly, and
    // its rates would be off by a rounding error.
    let num_steps = 7;
    let direct = train(num_steps, |computed, adam, _| {
        computed.apply(adam, num_steps);
    });
    let schedule = Schedule::linear(AdamSettings::default().lr);
    let driven = train(num_steps, |computed, adam, step| {
        computed.apply_at(adam, schedule.learning_rate(step, num_steps));
    });
    for (a, b) in direct.tensors().iter().zip(driven.tensors()) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

#[test]
fn applying_at_a_constant_rate_is_the_linear_rule_with_that_rate_at_every_step() {
    // Oracle: at step 0 microgpt.py's factor is exactly 1, so `settings.lr = r` is rate r.
    let rate = 0.003;
    let by_hand = train(1, |computed, adam, _| {
        adam.settings.lr = rate;
        computed.apply(adam, 1);
    });
    let driven = train(1, |computed, adam, _| {
        computed.apply_at(adam, rate);
    });
    assert_eq!(by_hand, driven);
    // The settings' own rate is left as it was.
    let mut seen = None;
    train(3, |computed, adam, _| {
        computed.apply_at(adam, rate);
        seen = Some(adam.settings.lr);
    });
    assert_eq!(seen, Some(AdamSettings::default().lr));
}
