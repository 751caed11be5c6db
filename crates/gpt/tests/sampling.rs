//! Sampling: the distribution of one draw, the top-k and top-p filters, and whole names.
//!
//! Oracles: exact softmax formulas and a chi-square test for the distribution of draws; a brute-force
//! search over subsets for top-p; names printed by microgpt.py's own generation loop (CPython 3.11)
//! for the order of draws with batch size 1; and, for batches, a replay of the documented order of
//! draws in which every draw's weights are recomputed from the name's own context with a batch-1
//! decoder (itself checked against a full recompute in `tests/kv_cache.rs`).

use gpt::{
    Config, Decoder, DrawScratch, KvCache, OptionsError, Params, PythonRandom, Randomness, Request,
    SampleError, Sampler, SamplingOptions, StreamPerName, Tokenizer, UnknownCharacter, draw_token,
    token_weights,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// A generator that records every `weighted_index` call and refuses every other draw: sampling may
/// use the generator only through `weighted_index`, once per token.
struct Recording<R> {
    inner: R,
    draws: Vec<(Vec<f64>, usize)>,
}

impl<R> Recording<R> {
    fn new(inner: R) -> Self {
        Recording {
            inner,
            draws: Vec::new(),
        }
    }
}

impl<R: Randomness> Randomness for Recording<R> {
    fn uniform(&mut self) -> f64 {
        panic!("sampling called uniform()")
    }
    fn normal(&mut self, _: f64, _: f64) -> f64 {
        panic!("sampling called normal()")
    }
    fn shuffle<T>(&mut self, _: &mut [T]) {
        panic!("sampling called shuffle()")
    }
    fn weighted_index(&mut self, weights: &[f64]) -> usize {
        let token = self.inner.weighted_index(weights);
        self.draws.push((weights.to_vec(), token));
        token
    }
}

/// A "generator" that always picks the same token, to force how names end.
struct Always(usize);

impl Randomness for Always {
    fn uniform(&mut self) -> f64 {
        panic!("sampling called uniform()")
    }
    fn normal(&mut self, _: f64, _: f64) -> f64 {
        panic!("sampling called normal()")
    }
    fn shuffle<T>(&mut self, _: &mut [T]) {
        panic!("sampling called shuffle()")
    }
    fn weighted_index(&mut self, _: &[f64]) -> usize {
        self.0
    }
}

fn temperature(temperature: f64) -> SamplingOptions {
    SamplingOptions::new(temperature, None, None).unwrap()
}

/// `softmax(logits / temperature)` by the textbook formula.
fn exact_softmax(logits: &[f64], temperature: f64) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits
        .iter()
        .map(|l| ((l - max) / temperature).exp())
        .collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// Pearson's statistic of `counts` against `probabilities` (those with probability 0 must be 0).
fn chi_square(counts: &[usize], probabilities: &[f64]) -> f64 {
    let draws: usize = counts.iter().sum();
    counts
        .iter()
        .zip(probabilities)
        .filter(|(_, p)| **p > 0.0)
        .map(|(&count, &p)| {
            let expected = p * draws as f64;
            (count as f64 - expected).powi(2) / expected
        })
        .sum()
}

fn counts(
    logits: &[f64],
    options: &SamplingOptions,
    draws: usize,
    seed: u64,
) -> (Vec<usize>, Vec<f64>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut scratch = DrawScratch::new(logits.len());
    let mut counts = vec![0; logits.len()];
    for _ in 0..draws {
        counts[draw_token(logits, options, &mut scratch, &mut rng).unwrap()] += 1;
    }
    (counts, scratch.weights().to_vec())
}

const LOGITS: [f64; 7] = [0.0, 1.0, -0.5, 2.0, 0.3, -1.0, 0.7];

#[test]
fn weights_are_the_softmax_of_the_logits_over_the_temperature() {
    for t in [1.0, 0.5, 0.3, 2.0, 7.5] {
        let mut scratch = DrawScratch::new(LOGITS.len());
        let weights = token_weights(&LOGITS, &temperature(t), &mut scratch).unwrap();
        let expected = exact_softmax(&LOGITS, t);
        for (w, e) in weights.iter().zip(&expected) {
            assert!((w - e).abs() < 1e-15, "temperature {t}: {w} vs {e}");
        }
    }
}

#[test]
fn draws_follow_the_softmax_distribution() {
    // 7 categories, so 6 degrees of freedom; the chi-square critical value at p = 0.001 is 22.458.
    // The seed is fixed, so the test is deterministic; a correct sampler fails it for only 1 seed in
    // 1000, and one that draws from the wrong distribution (say, the logits unnormalised, or without
    // the exponential) gives a statistic in the thousands with 100,000 draws.
    let probabilities = exact_softmax(&LOGITS, 1.0);
    let (counts, _) = counts(&LOGITS, &temperature(1.0), 100_000, 1);
    let statistic = chi_square(&counts, &probabilities);
    assert!(
        statistic < 22.458,
        "chi-square {statistic} for counts {counts:?}"
    );
}

#[test]
fn top_k_draws_follow_the_renormalised_distribution_of_the_k_best() {
    // Top-3 of LOGITS keeps tokens 3, 1 and 6; 2 degrees of freedom, critical value 13.816 at
    // p = 0.001 (fixed seed, as above).
    let options = SamplingOptions::new(1.0, Some(3), None).unwrap();
    let (counts, _) = counts(&LOGITS, &options, 100_000, 2);
    let kept = [3, 1, 6];
    let mut probabilities = vec![0.0; LOGITS.len()];
    let kept_logits: Vec<f64> = kept.iter().map(|&t| LOGITS[t]).collect();
    for (&token, p) in kept.iter().zip(exact_softmax(&kept_logits, 1.0)) {
        probabilities[token] = p;
    }
    for (token, &count) in counts.iter().enumerate() {
        assert!(
            kept.contains(&token) || count == 0,
            "token {token} drawn {count} times"
        );
    }
    let statistic = chi_square(&counts, &probabilities);
    assert!(
        statistic < 13.816,
        "chi-square {statistic} for counts {counts:?}"
    );
}

#[test]
fn a_tiny_temperature_gives_the_argmax() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut scratch = DrawScratch::new(LOGITS.len());
    for _ in 0..1000 {
        let token = draw_token(&LOGITS, &temperature(1e-6), &mut scratch, &mut rng).unwrap();
        assert_eq!(token, 3);
    }
    let f32_logits: Vec<f32> = LOGITS.iter().map(|&l| -l as f32).collect();
    let mut scratch = DrawScratch::new(f32_logits.len());
    let token = draw_token(&f32_logits, &temperature(1e-6), &mut scratch, &mut rng).unwrap();
    assert_eq!(token, 5);
}

/// microgpt.py's weights, written out as its `softmax([l / temperature for l in logits])` computes
/// them, one element at a time: each logit times `temperature ** -1` in `f64`, `max` keeping the
/// first of equal values and skipping a later NaN, the shifted value rounded to `F` for `F`'s
/// exponential, the exponentials summed left to right in `f64`, each times `total ** -1`.
fn python_weights<F: tape::Float>(logits: &[F], temperature: f64) -> Vec<f64> {
    let inverse = temperature.powf(-1.0);
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&l| tape::Float::to_f64(l) * inverse)
        .collect();
    let mut max = scaled[0];
    for &value in &scaled[1..] {
        if value > max {
            max = value;
        }
    }
    let exponentials: Vec<f64> = scaled
        .iter()
        .map(|&value| {
            let mut one = [F::from_f64(value - max)];
            F::exp_in_place(&mut one);
            tape::Float::to_f64(one[0])
        })
        .collect();
    let mut total = 0.0f64;
    for &e in &exponentials {
        total += e;
    }
    let inverse_total = total.powf(-1.0);
    exponentials.iter().map(|e| e * inverse_total).collect()
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|value| value.to_bits()).collect()
}

/// Logits with ties, zeros of both signs and repeated maxima: where which maximum is taken could
/// show.
fn tied_logits() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop::sample::select(vec![0.0, -0.0, 1.0, -1.0, 0.5, -3.25, 2.0, 1e-300, -1e-300]),
        1..40,
    )
}

proptest! {
    /// The weights are microgpt.py's to the bit, in both precisions: the maximum, the shift and
    /// the sums change none of them, however the logits tie.
    #[test]
    fn weights_are_microgpt_py_s_to_the_bit(
        logits in prop_oneof![tied_logits(), prop::collection::vec(-30.0f64..30.0, 1..40)],
        t in prop::sample::select(vec![0.5, 1.0, 0.3, 2.0, 0.7]),
    ) {
        let mut scratch = DrawScratch::new(logits.len());
        let weights = token_weights(&logits, &temperature(t), &mut scratch).unwrap();
        prop_assert_eq!(bits(weights), bits(&python_weights(&logits, t)));
        let single: Vec<f32> = logits.iter().map(|&l| l as f32).collect();
        let mut scratch = DrawScratch::new(single.len());
        let weights = token_weights(&single, &temperature(t), &mut scratch).unwrap();
        prop_assert_eq!(bits(weights), bits(&python_weights(&single, t)));
    }

    #[test]
    fn top_k_never_draws_outside_the_k_best(
        logits in prop::collection::vec(-8.0f64..8.0, 1..30),
        k in 1usize..35,
        seed in any::<u64>(),
        t in 0.2f64..3.0,
    ) {
        let options = SamplingOptions::new(t, Some(k), None).unwrap();
        let mut scratch = DrawScratch::new(logits.len());
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        for _ in 0..20 {
            let token = draw_token(&logits, &options, &mut scratch, &mut rng).unwrap();
            // Among the k best: fewer than k tokens have a strictly larger logit.
            let better = logits.iter().filter(|&&l| l > logits[token]).count();
            prop_assert!(better < k, "token {} has {} better tokens, k = {}", token, better, k);
        }
        let kept = scratch.weights().iter().filter(|&&w| w > 0.0).count();
        prop_assert_eq!(kept, k.min(logits.len()));
    }

    #[test]
    fn top_p_keeps_the_smallest_set_whose_mass_reaches_p(
        logits in prop::collection::vec(-4.0f64..4.0, 1..9),
        p in prop_oneof![Just(1.0), 0.001f64..1.0],
        t in 0.3f64..3.0,
    ) {
        let mut scratch = DrawScratch::new(logits.len());
        let probabilities = token_weights(&logits, &temperature(t), &mut scratch).unwrap().to_vec();
        let options = SamplingOptions::new(t, None, Some(p)).unwrap();
        let weights = token_weights(&logits, &options, &mut scratch).unwrap().to_vec();

        let n = logits.len();
        let total: f64 = probabilities.iter().sum();
        let target = p * total;
        let mass = |set: u32| -> f64 {
            (0..n).filter(|i| set & (1 << i) != 0).map(|i| probabilities[i]).sum()
        };
        let kept: u32 = (0..n).filter(|&i| weights[i] > 0.0).map(|i| 1 << i).sum();
        let size = kept.count_ones();
        // Kept tokens keep their probability; the others get 0.
        for i in 0..n {
            prop_assert!(weights[i] == 0.0 || weights[i] == probabilities[i]);
        }
        // The kept set reaches p ...
        prop_assert!(mass(kept) >= target - 1e-12, "kept mass {} < {}", mass(kept), target);
        // ... and by brute force over every subset, no smaller set does.
        let best_smaller = (0..1u32 << n)
            .filter(|set| set.count_ones() + 1 == size)
            .map(mass)
            .fold(0.0, f64::max);
        prop_assert!(
            size == 0 || best_smaller < target + 1e-12,
            "a set of {} tokens has mass {} >= {}", size - 1, best_smaller, target
        );
        // The kept tokens are the most probable ones.
        let least_kept = (0..n).filter(|&i| weights[i] > 0.0).map(|i| probabilities[i]).fold(1.0, f64::min);
        let most_dropped = (0..n).filter(|&i| weights[i] == 0.0).map(|i| probabilities[i]).fold(0.0, f64::max);
        prop_assert!(least_kept >= most_dropped);
    }
}

#[test]
fn top_p_then_top_k_on_a_known_distribution() {
    // Probabilities 0.5, 0.25, 0.125, 0.125 (logits ln of them, temperature 1).
    let logits: Vec<f64> = [0.5f64, 0.25, 0.125, 0.125]
        .iter()
        .map(|p| p.ln())
        .collect();
    let kept = |top_k, top_p| {
        let options = SamplingOptions::new(1.0, top_k, top_p).unwrap();
        let mut scratch = DrawScratch::new(4);
        let weights = token_weights(&logits, &options, &mut scratch).unwrap();
        weights.iter().map(|&w| w > 0.0).collect::<Vec<_>>()
    };
    assert_eq!(kept(None, Some(0.5)), [true, false, false, false]);
    assert_eq!(kept(None, Some(0.6)), [true, true, false, false]);
    assert_eq!(kept(None, Some(0.8)), [true, true, true, false]);
    assert_eq!(kept(None, Some(1.0)), [true, true, true, true]);
    // After top-2 the kept mass is 0.75; top-p 0.6 of it is 0.45, which token 0 alone reaches.
    assert_eq!(kept(Some(2), Some(0.6)), [true, false, false, false]);
    assert_eq!(kept(Some(2), Some(0.7)), [true, true, false, false]);
    // Equal probabilities are ranked by token id.
    assert_eq!(kept(Some(3), None), [true, true, true, false]);
}

#[test]
fn bad_options_are_errors() {
    let bad = [
        ((0.0, None, None), OptionsError::Temperature(0.0)),
        ((-1.0, None, None), OptionsError::Temperature(-1.0)),
        (
            (f64::INFINITY, None, None),
            OptionsError::Temperature(f64::INFINITY),
        ),
        // A subnormal temperature's inverse overflows.
        ((1e-310, None, None), OptionsError::Temperature(1e-310)),
        ((0.5, Some(0), None), OptionsError::TopK(0)),
        ((0.5, None, Some(0.0)), OptionsError::TopP(0.0)),
        ((0.5, None, Some(1.5)), OptionsError::TopP(1.5)),
    ];
    for ((temperature, top_k, top_p), error) in bad {
        assert_eq!(SamplingOptions::new(temperature, top_k, top_p), Err(error));
    }
    assert!(matches!(
        SamplingOptions::new(f64::NAN, None, None),
        Err(OptionsError::Temperature(t)) if t.is_nan()
    ));
    assert!(matches!(
        SamplingOptions::new(0.5, None, Some(f64::NAN)),
        Err(OptionsError::TopP(p)) if p.is_nan()
    ));
    // The edges that are valid.
    assert!(SamplingOptions::new(1e-300, Some(1), Some(1.0)).is_ok());

    let mut scratch = DrawScratch::default();
    let options = SamplingOptions::default();
    assert_eq!(
        token_weights::<f64>(&[], &options, &mut scratch),
        Err(SampleError::NoLogits)
    );
    assert_eq!(
        token_weights(&[0.0, f64::NAN], &options, &mut scratch),
        Err(SampleError::NotFinite)
    );
    assert_eq!(
        token_weights(&[0.0, f64::INFINITY], &options, &mut scratch),
        Err(SampleError::NotFinite)
    );
    // f32 logits go through the same path: the same refusals.
    let mut scratch = DrawScratch::<f32>::default();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    for bad in [f32::NAN, f32::INFINITY] {
        assert_eq!(
            draw_token(&[bad, 0.0], &options, &mut scratch, &mut rng),
            Err(SampleError::NotFinite),
            "logit {bad}"
        );
    }
    // A logit of -inf is a token ruled out, not an error.
    let ruled_out = [f32::NEG_INFINITY, 0.0];
    assert_eq!(
        draw_token(&ruled_out, &options, &mut scratch, &mut rng),
        Ok(1)
    );
}

// ---------------------------------------------------------------------------------------------
// Whole names.

/// A small model whose names end at varied lengths: 3 characters and BOS, block_size 5, and weights
/// scaled up from N(0, 0.08) so the distributions are far from uniform.
fn small_model() -> (Params<f64>, Tokenizer) {
    let config = Config {
        n_layer: 1,
        n_embd: 8,
        n_head: 2,
        block_size: 5,
        vocab_size: 4,
    };
    let mut params = Params::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(5)).unwrap();
    for tensor in params.tensors_mut() {
        tensor.mapv_inplace(|x| 8.0 * x);
    }
    (params, Tokenizer::from_vocab("abc"))
}

fn default_model(seed: u64) -> (Params<f64>, Tokenizer) {
    let params = Params::init(
        Config::default(),
        &mut Xoshiro256PlusPlus::seed_from_u64(seed),
    )
    .unwrap();
    (params, Tokenizer::from_vocab("abcdefghijklmnopqrstuvwxyz"))
}

#[test]
fn batch_one_draws_what_microgpt_py_draws() {
    // microgpt.py's model and generation loop, with `random.seed(42)`, fresh weights (no training)
    // in the default configuration over the 26 lowercase letters, temperature 0.5. Printed by CPython
    // 3.11.7 on x86-64 Linux running this script (microgpt.py's functions in plain floats, in the
    // order of operations of its `Value` class; `l / temperature` on a `Value` is
    // `l * temperature ** -1`, and `e / total` is `e * total ** -1`):
    //
    //     import math, random
    //     n_layer, n_embd, n_head, block_size = 1, 16, 4, 8
    //     uchars = [chr(ord('a') + i) for i in range(26)]; BOS = len(uchars); vocab_size = BOS + 1
    //     head_dim = n_embd // n_head
    //     random.seed(42)
    //     matrix = lambda nout, nin, std=0.08: [[random.gauss(0, std) for _ in range(nin)] for _ in range(nout)]
    //     state_dict = {'wte': matrix(vocab_size, n_embd), 'wpe': matrix(block_size, n_embd),
    //                   'lm_head': matrix(vocab_size, n_embd)}
    //     for i in range(n_layer):
    //         for name, (nout, nin) in [('attn_wq', (n_embd, n_embd)), ('attn_wk', (n_embd, n_embd)),
    //                 ('attn_wv', (n_embd, n_embd)), ('attn_wo', (n_embd, n_embd)),
    //                 ('mlp_fc1', (4 * n_embd, n_embd)), ('mlp_fc2', (n_embd, 4 * n_embd))]:
    //             state_dict[f'layer{i}.{name}'] = matrix(nout, nin)
    //     def linear(x, w): return [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]
    //     def softmax(logits):
    //         max_val = max(logits); exps = [math.exp(v - max_val) for v in logits]
    //         total = sum(exps); return [e * total ** -1 for e in exps]
    //     def rmsnorm(x):
    //         ms = sum(xi * xi for xi in x) * len(x) ** -1; scale = (ms + 1e-5) ** -0.5
    //         return [xi * scale for xi in x]
    //     def gpt(token_id, pos_id, keys, values):
    //         x = rmsnorm([t + p for t, p in zip(state_dict['wte'][token_id], state_dict['wpe'][pos_id])])
    //         for li in range(n_layer):
    //             x_residual = x; x = rmsnorm(x)
    //             q = linear(x, state_dict[f'layer{li}.attn_wq'])
    //             k = linear(x, state_dict[f'layer{li}.attn_wk'])
    //             v = linear(x, state_dict[f'layer{li}.attn_wv'])
    //             keys[li].append(k); values[li].append(v); x_attn = []
    //             for h in range(n_head):
    //                 hs = h * head_dim; q_h = q[hs:hs + head_dim]
    //                 k_h = [ki[hs:hs + head_dim] for ki in keys[li]]
    //                 v_h = [vi[hs:hs + head_dim] for vi in values[li]]
    //                 attn_logits = [sum(q_h[j] * k_h[t][j] for j in range(head_dim)) * (head_dim ** 0.5) ** -1
    //                                for t in range(len(k_h))]
    //                 attn_weights = softmax(attn_logits)
    //                 x_attn.extend(sum(attn_weights[t] * v_h[t][j] for t in range(len(v_h)))
    //                               for j in range(head_dim))
    //             x = [a + b for a, b in zip(linear(x_attn, state_dict[f'layer{li}.attn_wo']), x_residual)]
    //             x_residual = x; x = rmsnorm(x)
    //             x = [max(0.0, xi) for xi in linear(x, state_dict[f'layer{li}.mlp_fc1'])]
    //             x = [a + b for a, b in zip(linear(x, state_dict[f'layer{li}.mlp_fc2']), x_residual)]
    //         return linear(x, state_dict['lm_head'])
    //     temperature = 0.5
    //     for sample_idx in range(20):
    //         keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    //         token_id = BOS; sample = []
    //         for pos_id in range(block_size):
    //             logits = gpt(token_id, pos_id, keys, values)
    //             probs = softmax([l * temperature ** -1 for l in logits])
    //             token_id = random.choices(range(vocab_size), weights=probs)[0]
    //             if token_id == BOS: break
    //             sample.append(uchars[token_id])
    //         print(''.join(sample))
    //     print(random.random())
    //
    // The decoder sums left to right as Python does, so in f64 its logits are Python's; a draw could
    // only change if the C library's `exp` or `pow` differed from the one CPython used.
    const EXPECTED: [&str; 20] = [
        "mgqttbza", "bezibgeb", "k", "rptpzvrp", "ftvhbnmg", "dbhae", "wjimnvcd", "ivxizdsg", "",
        "qgmbcfzv", "", "zwnt", "pvu", "nmmadbq", "tffzlaxh", "bqwayngx", "izryofsx", "feepcayt",
        "tqvlcmno", "",
    ];
    let mut rng = PythonRandom::new(42);
    let params = Params::<f64>::init(Config::default(), &mut rng).unwrap();
    let tokenizer = Tokenizer::from_vocab("abcdefghijklmnopqrstuvwxyz");
    let mut sampler = Sampler::new(*params.config(), 1);
    let names = sampler
        .generate(&params, &Request::new(&tokenizer, 20), &mut rng)
        .unwrap();
    assert_eq!(names, EXPECTED);
    // The last value printed is the next `random()` after the 20 names: the sampler consumed
    // exactly what microgpt.py consumed, one `random()` per drawn token.
    assert_eq!(rng.random(), 0.896999773193295);
}

#[test]
fn the_same_seed_gives_the_same_names_and_another_seed_others() {
    let (params, tokenizer) = default_model(11);
    let options = SamplingOptions::new(1.0, None, None).unwrap();
    for batch in [1, 3] {
        let mut sampler = Sampler::new(*params.config(), batch);
        let mut names = |seed| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            sampler
                .generate(
                    &params,
                    &Request {
                        options,
                        ..Request::new(&tokenizer, 10)
                    },
                    &mut rng,
                )
                .unwrap()
        };
        let first = names(1);
        assert_eq!(first.len(), 10);
        assert_eq!(names(1), first, "batch {batch}: same seed, other names");
        assert_ne!(names(2), first, "batch {batch}: other seed, same names");
    }
}

#[test]
fn names_start_with_the_prefix() {
    let (params, tokenizer) = default_model(12);
    let mut sampler = Sampler::new(*params.config(), 3);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
    for prefix in ["em", "a", "abcdefg"] {
        let names = sampler
            .generate(
                &params,
                &Request {
                    prefix,
                    ..Request::new(&tokenizer, 7)
                },
                &mut rng,
            )
            .unwrap();
        assert_eq!(names.len(), 7);
        for name in names {
            assert!(
                name.starts_with(prefix) && name.len() <= 8,
                "{name:?} for {prefix:?}"
            );
        }
    }
}

#[test]
fn bad_prefixes_and_mismatches_are_errors() {
    let (params, tokenizer) = default_model(13);
    let options = SamplingOptions::default();
    let mut sampler = Sampler::new(*params.config(), 2);
    let mut rng = Always(0);
    let mut generate = |prefix: &str| {
        sampler.generate(
            &params,
            &Request {
                prefix,
                ..Request::new(&tokenizer, 3)
            },
            &mut rng,
        )
    };

    assert_eq!(
        generate("abC"),
        Err(SampleError::UnknownCharacter(UnknownCharacter {
            character: 'C',
            position: 2,
        }))
    );
    assert_eq!(
        generate("éa").unwrap_err().to_string(),
        "prefix: character 'é' at position 0 is not in the vocabulary"
    );
    for length in [8, 9] {
        assert_eq!(
            generate(&"a".repeat(length)),
            Err(SampleError::PrefixTooLong {
                length,
                block_size: 8,
            })
        );
    }
    assert_eq!(
        generate("abcdefg"),
        Ok(vec!["abcdefga".to_string(); 3]),
        "a prefix of block_size - 1 leaves one draw"
    );

    assert_eq!(
        sampler.generate(
            &params,
            &Request::new(&Tokenizer::from_vocab("ab"), 1),
            &mut rng
        ),
        Err(SampleError::VocabularyMismatch {
            tokenizer: 3,
            model: 27,
        })
    );
    let (small, small_tokenizer) = small_model();
    assert_eq!(
        sampler.generate(&small, &Request::new(&small_tokenizer, 1), &mut rng),
        Err(SampleError::VocabularyMismatch {
            tokenizer: 4,
            model: 27,
        })
    );
    let mut small_sampler = Sampler::new(*small.config(), 1);
    assert_eq!(
        small_sampler.generate(&params, &Request::new(&tokenizer, 1), &mut rng),
        Err(SampleError::VocabularyMismatch {
            tokenizer: 27,
            model: 4,
        })
    );
    assert_eq!(
        small_sampler.generate_tokens(&params, 1, &[], &options, &mut rng),
        Err(SampleError::ConfigMismatch)
    );
    assert_eq!(
        small_sampler.generate_tokens(&small, 1, &[0, 3], &options, &mut rng),
        Err(SampleError::PrefixToken {
            position: 1,
            token: 3,
        })
    );
    assert_eq!(
        Sampler::new(*small.config(), 0).generate_tokens(&small, 1, &[], &options, &mut rng),
        Err(SampleError::ZeroBatch)
    );
    assert_eq!(
        Sampler::new(*small.config(), 0).generate_tokens(&small, 0, &[], &options, &mut rng),
        Ok(vec![])
    );
}

#[test]
fn names_stop_at_bos_or_after_block_size_tokens() {
    let (params, _) = small_model();
    let config = *params.config();
    let bos = config.vocab_size - 1;
    let options = SamplingOptions::default();
    for batch in [1, 2, 5] {
        let mut sampler = Sampler::new(config, batch);
        // A generator that always draws BOS: every name ends at once.
        let names = sampler
            .generate_tokens(&params, 4, &[], &options, &mut Always(bos))
            .unwrap();
        assert_eq!(names, vec![Vec::<usize>::new(); 4]);
        let names = sampler
            .generate_tokens(&params, 4, &[2, 0], &options, &mut Always(bos))
            .unwrap();
        assert_eq!(names, vec![vec![2, 0]; 4]);
        // One that never draws BOS: every name fills the block (block_size = 5 characters).
        let names = sampler
            .generate_tokens(&params, 4, &[2], &options, &mut Always(1))
            .unwrap();
        assert_eq!(names, vec![vec![2, 1, 1, 1, 1]; 4]);
    }

    // With real draws, names end both ways, and the number of draws says each name stopped exactly
    // when it should: one draw per character after the prefix, plus the BOS that ended it unless
    // the name filled the block.
    let mut sampler = Sampler::new(config, 3);
    let mut rng = Recording::new(Xoshiro256PlusPlus::seed_from_u64(8));
    let prefix = [1];
    let names = sampler
        .generate_tokens(&params, 40, &prefix, &temperature(1.0), &mut rng)
        .unwrap();
    let full = names.iter().filter(|name| name.len() == 5).count();
    assert!(full > 0 && full < 40, "{full} of 40 names filled the block");
    let expected_draws: usize = names
        .iter()
        .map(|name| draws_of(name, prefix.len(), config.block_size))
        .sum();
    assert_eq!(rng.draws.len(), expected_draws);
    assert!(names.iter().all(|name| !name.contains(&bos)));
}

/// The draws a name took: one per character after the prefix, plus the final BOS unless the name
/// filled the block.
fn draws_of(name: &[usize], prefix: usize, block_size: usize) -> usize {
    if name.len() == block_size {
        block_size - prefix
    } else {
        name.len() - prefix + 1
    }
}

#[test]
fn batched_draws_follow_the_documented_order_and_each_name_its_own_context() {
    let (params, _) = small_model();
    let config = *params.config();
    let bos = config.vocab_size - 1;
    let t = 1.3;
    for (batch, prefix, count) in [(3, vec![], 11), (4, vec![2], 9), (2, vec![0, 1], 6)] {
        let mut sampler = Sampler::new(config, batch);
        let mut rng = Recording::new(Xoshiro256PlusPlus::seed_from_u64(batch as u64));
        let names = sampler
            .generate_tokens(&params, count, &prefix, &temperature(t), &mut rng)
            .unwrap();
        assert_eq!(names.len(), count);

        // Replay the documented schedule: names start in slot order and a finished name's slot goes
        // to the next name at the next step; each step feeds every active slot, then the slots draw
        // in order, except while their next token is a prefix token.
        let draws: Vec<usize> = names
            .iter()
            .map(|name| draws_of(name, prefix.len(), config.block_size))
            .collect();
        let mut schedule = Vec::new(); // (name, index of the draw within the name)
        let mut slots: Vec<Option<(usize, usize)>> = vec![None; batch]; // (name, position fed)
        let mut next_name = 0;
        for slot in &mut slots {
            if next_name < count {
                *slot = Some((next_name, usize::MAX));
                next_name += 1;
            }
        }
        while slots.iter().any(Option::is_some) {
            for (_, position) in slots.iter_mut().flatten() {
                *position = position.wrapping_add(1);
            }
            for slot in &mut slots {
                let Some((name, position)) = *slot else {
                    continue;
                };
                if position < prefix.len() {
                    continue;
                }
                let draw = position - prefix.len();
                schedule.push((name, draw));
                if draw + 1 == draws[name] {
                    *slot = (next_name < count).then_some((next_name, usize::MAX));
                    next_name += 1;
                }
            }
        }
        assert_eq!(rng.draws.len(), schedule.len());

        // Each recorded draw: the weights must be those of the name's own context, computed alone
        // (batch 1), and the token drawn must be the name's next character (or the BOS ending it).
        for ((weights, token), &(name, draw)) in rng.draws.iter().zip(&schedule) {
            let fed = prefix.len() + draw;
            let context: Vec<usize> = std::iter::once(bos)
                .chain(names[name][..fed].iter().copied())
                .collect();
            let expected_token = names[name].get(fed).copied().unwrap_or(bos);
            assert_eq!(*token, expected_token, "name {name}, draw {draw}");
            let mut cache = KvCache::new(config, 1);
            let mut decoder = Decoder::new(&params, 1).unwrap();
            for &token in &context {
                decoder.step(&mut cache, &[Some(token)]).unwrap();
            }
            let expected = exact_softmax(decoder.logits(0), t);
            for (w, e) in weights.iter().zip(&expected) {
                assert!(
                    (w - e).abs() < 1e-12,
                    "batch {batch}, name {name}, draw {draw}: weights {weights:?}, expected {expected:?}"
                );
            }
        }
    }
}

#[test]
fn fewer_names_than_slots_and_f32_models_work() {
    let (params, tokenizer) = default_model(14);
    let params32: Params<f32> = params.cast();
    let mut sampler = Sampler::<f32>::new(*params32.config(), 8);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let names = sampler
        .generate(
            &params32,
            &Request {
                prefix: "z",
                ..Request::new(&tokenizer, 3)
            },
            &mut rng,
        )
        .unwrap();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|name| name.starts_with('z')));
}

#[test]
fn a_batched_f32_sampler_draws_each_name_as_draw_token_draws_it_alone() {
    // The oracle is `drawn_alone`, per name with the name's own generator: a step's softmax over
    // the rows of all its names (in one pass) must give each row the weights `draw_token` gives it
    // alone, with and without the filters, or the names would part.
    let (params, tokenizer) = default_model(16);
    let params: Params<f32> = params.cast();
    let config = *params.config();
    let stream = |index: usize| Xoshiro256PlusPlus::seed_from_u64(100 + index as u64);
    let filtered = SamplingOptions::new(0.8, Some(5), Some(0.9)).unwrap();
    for options in [SamplingOptions::default(), filtered] {
        let mut names = Vec::new();
        Sampler::new(config, 7)
            .generate_each(
                &params,
                &Request {
                    options,
                    ..Request::new(&tokenizer, 60)
                },
                StreamPerName::new(stream),
                |name| {
                    names.push(name.to_string());
                    std::ops::ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert_eq!(names.len(), 60);
        let mut scratch = DrawScratch::new(config.vocab_size);
        for (index, name) in names.iter().enumerate() {
            let expected = drawn_alone(&params, &options, &mut scratch, &mut stream(index));
            assert_eq!(name, &tokenizer.decode(&expected), "name {index}");
        }
    }
}

#[test]
fn an_f32_sampler_draws_what_stepping_and_draw_token_draw() {
    // The oracle: `drawn_alone`, one name at a time. The sampler's tables (first block's inputs,
    // the steps at positions 0 and 1) and its batched exponentials must give the same numbers, so
    // the same generator draws the same names.
    let (params, _) = default_model(15);
    let params: Params<f32> = params.cast();
    let config = *params.config();
    let options = SamplingOptions::default();
    let mut sampler = Sampler::new(config, 1);
    let names = sampler
        .generate_tokens(
            &params,
            200,
            &[],
            &options,
            &mut Xoshiro256PlusPlus::seed_from_u64(5),
        )
        .unwrap();

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut scratch = DrawScratch::new(config.vocab_size);
    for (index, name) in names.iter().enumerate() {
        let expected = drawn_alone(&params, &options, &mut scratch, &mut rng);
        assert_eq!(name, &expected, "name {index}");
    }
}

/// The oracle of the sampler's names: one name drawn through the public one-token-at-a-time route,
/// a fresh `Decoder` and cache (so no table survives from another name) and `draw_token`.
fn drawn_alone<F: tape::Float>(
    params: &Params<F>,
    options: &SamplingOptions,
    scratch: &mut DrawScratch<F>,
    rng: &mut impl Randomness,
) -> Vec<usize> {
    let config = *params.config();
    let bos = config.vocab_size - 1;
    let mut cache = KvCache::new(config, 1);
    let mut decoder = Decoder::new(params, 1).unwrap();
    let mut name = Vec::new();
    let mut token = bos;
    for _ in 0..config.block_size {
        decoder.step(&mut cache, &[Some(token)]).unwrap();
        token = draw_token(decoder.logits(0), options, scratch, rng).unwrap();
        if token == bos {
            break;
        }
        name.push(token);
    }
    name
}
