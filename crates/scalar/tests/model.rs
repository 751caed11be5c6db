//! The scalar GPT: its loss at initialisation, its gradients against finite differences for every
//! tensor, truncation to block_size, consistency of loss and logits, and graph reuse.

use scalar::{Config, Error, NamedTensor, ScalarGpt};

/// A seeded N(0, std) generator (SplitMix64 + Box-Muller), so the tests need no RNG crate.
fn normal(seed: u64, std: f64) -> impl FnMut() -> f64 {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64 // in (0, 1)
    };
    move || {
        let (u1, u2) = (uniform(), uniform());
        std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The configuration of DESIGN.md's seed run on names.txt.
const SEED_RUN: Config = Config {
    n_layer: 1,
    n_embd: 16,
    n_head: 4,
    block_size: 8,
    vocab_size: 27,
};

/// Small enough for finite differences on every tensor, with 2 layers and 3 heads of width 2.
const SMALL: Config = Config {
    n_layer: 2,
    n_embd: 6,
    n_head: 3,
    block_size: 4,
    vocab_size: 5,
};

/// BOS, 6 letters, BOS: 8 tokens, so 7 predictions, of which block_size = 4 are used.
const LONG_DOCUMENT: [usize; 8] = [4, 0, 1, 2, 3, 1, 0, 4];

/// At N(0, 0.08) init the logits are nearly uniform, so the loss is close to ln(vocab_size).
///
/// Bound: rmsnorm makes the residual stream RMS ~1 and the blocks add little at std 0.08, so each
/// logit is roughly N(0, s^2) with s = 0.08 * sqrt(n_embd) = 0.32. For iid logits
/// E[-log softmax_target] = E[logsumexp] - E[z_target] ~ ln V + s^2 / 2 = ln 27 + 0.05. Averaged over
/// 40 documents (~250 predictions) the spread is a few hundredths, so |mean - ln 27| < 0.2 holds with
/// a wide margin (measured: 3.351 against 3.296); a broken softmax, a missing normalisation or a
/// wrong loss sign misses it by far more.
#[test]
fn loss_at_small_random_init_is_near_ln_vocab() {
    let mut model = ScalarGpt::init(SEED_RUN, normal(1, 0.08)).unwrap();
    let mut letters = normal(2, 1.0);
    let bos = SEED_RUN.bos();
    let mut total = 0.0;
    let documents = 40;
    for length in (0..documents).map(|index| 2 + index % 9) {
        let mut tokens = vec![bos];
        // Letters 0..=25 from |N(0, 1)| scaled: any spread of tokens will do.
        tokens.extend((0..length).map(|_| ((letters().abs() * 9.0) as usize).min(bos - 1)));
        tokens.push(bos);
        total += model.loss(&tokens);
    }
    let mean = total / documents as f64;
    let expected = (SEED_RUN.vocab_size as f64).ln();
    assert!(
        (mean - expected).abs() < 0.2,
        "mean loss {mean}, ln 27 = {expected}"
    );
}

/// Every gradient the backward pass produces agrees with central differences of the loss, for a
/// sample of entries of every tensor, on a document longer than block_size.
///
/// Oracle: (loss(w + h) - loss(w - h)) / 2h with h = 1e-5, each from a model rebuilt from the
/// perturbed weights. Its error is ~h^2 |loss'''| + eps |loss| / h ~ 1e-10 (measured: at most
/// 6e-11 on this model); the tolerance 1e-9 + 1e-7 |g| leaves a 10x margin and is far below the
/// gradients' size (~1e-3..1e-1), so a term missing from any op, a wrong head slice or a cache that
/// blocks gradients fails it.
#[test]
fn gradients_match_finite_differences_for_every_tensor() {
    let mut model = ScalarGpt::init(SMALL, normal(3, 0.3)).unwrap();
    model.loss(&LONG_DOCUMENT);
    let weights = model.weights();
    let gradients = model.gradients();
    let h = 1e-5;
    let loss_with = |tensor: usize, index: usize, delta: f64| {
        let mut perturbed = weights.clone();
        perturbed[tensor].data[index] += delta;
        ScalarGpt::new(SMALL, &perturbed)
            .unwrap()
            .loss(&LONG_DOCUMENT)
    };
    let mut checked = 0;
    for (tensor, (weight, gradient)) in weights.iter().zip(&gradients).enumerate() {
        let len = weight.data.len();
        let mut nonzero = false;
        for index in [0, len / 3, len / 2, 2 * len / 3, len - 1] {
            let numeric = (loss_with(tensor, index, h) - loss_with(tensor, index, -h)) / (2.0 * h);
            let analytic = gradient.data[index];
            assert!(
                (analytic - numeric).abs() <= 1e-9 + 1e-7 * analytic.abs(),
                "{}[{index}]: backward {analytic}, finite differences {numeric}",
                weight.name
            );
            nonzero |= analytic != 0.0;
            checked += 1;
        }
        assert!(nonzero, "{}: every sampled gradient is 0", weight.name);
    }
    assert_eq!(checked, 5 * (3 + 6 * SMALL.n_layer));
}

/// microgpt.py uses n = min(block_size, len - 1) predictions: tokens past position n change nothing,
/// neither the loss nor any gradient (and the wpe rows past block_size do not exist).
#[test]
fn tokens_past_block_size_are_ignored() {
    let mut model = ScalarGpt::init(SMALL, normal(4, 0.3)).unwrap();
    let long = model.loss(&LONG_DOCUMENT);
    let long_gradients = model.gradients();
    let n = SMALL.block_size;
    let short = model.loss(&LONG_DOCUMENT[..=n]);
    assert_eq!(long, short);
    assert_eq!(long_gradients, model.gradients());
    let mut other_tail = LONG_DOCUMENT;
    other_tail[n + 1..].fill(2);
    assert_eq!(model.loss(&other_tail), long);
}

/// The loss is the mean over positions of -log softmax(logits)[target], recomputed here in plain
/// f64 (log-sum-exp) from the forward-only logits.
#[test]
fn loss_is_mean_negative_log_likelihood_of_the_logits() {
    let mut model = ScalarGpt::init(SMALL, normal(5, 0.3)).unwrap();
    let tokens = [4, 2, 0, 3, 4];
    let logits = model.logits(&tokens[..4]);
    let mut expected = 0.0;
    for (row, &target) in logits.iter().zip(&tokens[1..]) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum_exp = max + row.iter().map(|&l| (l - max).exp()).sum::<f64>().ln();
        expected += (log_sum_exp - row[target]) / 4.0;
    }
    let loss = model.loss(&tokens);
    assert!(
        (loss - expected).abs() < 1e-14,
        "loss {loss}, expected {expected}"
    );
}

/// Causality through the key/value cache: the logits at position p depend only on tokens 0..=p.
#[test]
fn logits_of_a_prefix_match_the_full_run() {
    let mut model = ScalarGpt::init(SMALL, normal(6, 0.3)).unwrap();
    let full = model.logits(&[4, 1, 3, 0]);
    let prefix = model.logits(&[4, 1]);
    assert_eq!(prefix[..], full[..2]);
    assert_ne!(full[1], full[2], "positions must differ");
}

/// Reusing the arena: a second identical step builds the same number of nodes and gives the same
/// bits, and a forward-only call in between leaves the gradients alone.
#[test]
fn repeated_loss_reuses_the_graph_exactly() {
    let mut model = ScalarGpt::init(SMALL, normal(7, 0.3)).unwrap();
    let first = model.loss(&LONG_DOCUMENT);
    let (first_len, first_gradients) = (model.graph().len(), model.gradients());
    model.logits(&[4, 0]);
    assert_eq!(model.gradients(), first_gradients);
    model.loss(&[4, 3, 4]); // a different, shorter document in between
    let second = model.loss(&LONG_DOCUMENT);
    assert_eq!(first, second);
    assert_eq!(model.graph().len(), first_len);
    assert_eq!(model.gradients(), first_gradients);
}

/// train_step = loss + adam_step; the update consumes the gradients and moves the weights.
#[test]
fn train_step_is_loss_then_adam() {
    let mut stepped = ScalarGpt::init(SMALL, normal(8, 0.3)).unwrap();
    let mut manual = stepped.clone();
    let loss = stepped.train_step(&LONG_DOCUMENT, 2, 10, 0.01);
    assert_eq!(loss, manual.loss(&LONG_DOCUMENT));
    let gradients = manual.gradients();
    let before = manual.weights();
    manual.adam_step(2, 10, 0.01);
    assert_eq!(stepped.weights(), manual.weights());
    assert!(
        manual
            .gradients()
            .iter()
            .all(|g| g.data.iter().all(|&x| x == 0.0))
    );
    // Every parameter with a nonzero gradient moved, against it.
    for ((before, after), gradient) in before.iter().zip(manual.weights()).zip(gradients) {
        for ((b, a), g) in before.data.iter().zip(&after.data).zip(&gradient.data) {
            assert!(
                *g == 0.0 || (a - b) * g < 0.0,
                "{} did not move against g",
                before.name
            );
        }
    }
}

/// Weights go in by name in any order and come out in DESIGN.md order, unchanged.
#[test]
fn weights_round_trip_in_design_order() {
    let model = ScalarGpt::init(SMALL, normal(9, 0.08)).unwrap();
    let weights = model.weights();
    let names: Vec<&str> = weights.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[..4], ["wte", "wpe", "lm_head", "layer0.attn_wq"]);
    assert_eq!(names[names.len() - 1], "layer1.mlp_fc2");
    assert_eq!(weights[1].shape, [SMALL.block_size, SMALL.n_embd]);
    let mut reversed = weights.clone();
    reversed.reverse();
    assert_eq!(ScalarGpt::new(SMALL, &reversed).unwrap().weights(), weights);
}

#[test]
fn construction_rejects_bad_weights() {
    let weights = ScalarGpt::init(SMALL, normal(10, 0.08)).unwrap().weights();
    let build = |weights: &[NamedTensor]| ScalarGpt::new(SMALL, weights).err();
    let name = |name: &str| name.to_string();

    assert_eq!(
        build(&weights[1..]),
        Some(Error::MissingTensor { name: name("wte") })
    );
    let mut extra = weights.clone();
    extra.push(NamedTensor {
        name: name("layer2.attn_wq"),
        ..weights[3].clone()
    });
    assert_eq!(
        build(&extra),
        Some(Error::UnexpectedTensor {
            name: name("layer2.attn_wq")
        })
    );
    let mut twice = weights.clone();
    twice.push(weights[0].clone());
    assert_eq!(
        build(&twice),
        Some(Error::DuplicateTensor { name: name("wte") })
    );
    let mut transposed = weights.clone();
    transposed[7].shape = [6, 24];
    assert_eq!(
        build(&transposed),
        Some(Error::WrongShape {
            name: name("layer0.mlp_fc1"),
            expected: [24, 6],
            found: [6, 24]
        })
    );
    let mut short = weights.clone();
    short[2].data.pop();
    assert_eq!(
        build(&short),
        Some(Error::WrongLength {
            name: name("lm_head"),
            expected: 30,
            found: 29
        })
    );
    let uneven = Config { n_head: 4, ..SMALL };
    assert_eq!(
        ScalarGpt::init(uneven, || 0.0).err(),
        Some(Error::HeadsDoNotDivide {
            n_embd: 6,
            n_head: 4
        })
    );
}

#[test]
#[should_panic(expected = "at least 2 tokens")]
fn loss_of_a_single_token_panics() {
    ScalarGpt::init(SMALL, || 0.0).unwrap().loss(&[4]);
}

#[test]
#[should_panic(expected = "out of range")]
fn out_of_vocabulary_token_panics() {
    ScalarGpt::init(SMALL, || 0.0).unwrap().loss(&[4, 5, 4]);
}

#[test]
#[should_panic(expected = "block_size")]
fn logits_past_block_size_panic() {
    ScalarGpt::init(SMALL, || 0.0)
        .unwrap()
        .logits(&LONG_DOCUMENT);
}
