//! The incremental decoder and its KV cache against independent computations of the same logits.
//!
//! Oracles:
//! - `full_recompute` below: DESIGN.md section 1 written out in plain `Vec<f64>` loops, processing a
//!   whole prefix at once (every key and value recomputed from scratch for every position), sharing no
//!   code with the library. If the decoder reads a stale or misplaced cache row, mixes sequences of a
//!   batch, or gets a head slice, a scale or a norm wrong, the logits disagree.
//! - `scalar::ScalarGpt::logits`, the port of microgpt.py's scalar `Value` engine, holding the same
//!   weights (`gpt::scalar_model`).
//! - The same model in f32, which must agree with f64 to single-precision round-off.
//!
//! The file also counts heap allocations (per thread) to check that a warm decode-and-draw loop makes
//! none.

mod common;

use common::params;
use gpt::{
    Config, DecodeError, Decoder, DrawScratch, KvCache, Params, SamplingOptions, draw_token,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

#[path = "../../tape/tests/common/counting_allocator.rs"]
mod counting_allocator;

use counting_allocator::allocations;

/// The configurations under test: two blocks of three heads (head_dim 2 and 4, n_embd 6 below the
/// eight-lane width of the dot products and 12 across it), and microgpt's default.
const CONFIGS: [Config; 3] = [
    common::SMALL,
    Config {
        n_layer: 2,
        n_embd: 12,
        n_head: 3,
        block_size: 5,
        vocab_size: 7,
    },
    Config::SEED,
];

/// A token sequence of `len` tokens starting with BOS, the others spread over the vocabulary.
fn sequence(config: Config, len: usize, salt: usize) -> Vec<usize> {
    let bos = config.vocab_size - 1;
    std::iter::once(bos)
        .chain((1..len).map(|i| (i * 7 + salt * 3 + i * i * salt) % config.vocab_size))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The oracle: DESIGN.md section 1 over a whole prefix, plain loops, nothing cached.

type Matrix = Vec<Vec<f64>>;

struct Weights {
    wte: Matrix,
    wpe: Matrix,
    lm_head: Matrix,
    /// Per layer: wq, wk, wv, wo, fc1, fc2.
    layers: Vec<[Matrix; 6]>,
}

fn matrix(params: &Params<f64>, name: &str) -> Matrix {
    let tensor = params.get(name).unwrap();
    tensor.rows().into_iter().map(|row| row.to_vec()).collect()
}

fn weights(params: &Params<f64>) -> Weights {
    let layers = (0..params.config().n_layer)
        .map(|l| {
            [
                "attn_wq", "attn_wk", "attn_wv", "attn_wo", "mlp_fc1", "mlp_fc2",
            ]
            .map(|name| matrix(params, &format!("layer{l}.{name}")))
        })
        .collect();
    Weights {
        wte: matrix(params, "wte"),
        wpe: matrix(params, "wpe"),
        lm_head: matrix(params, "lm_head"),
        layers,
    }
}

fn linear(x: &[f64], w: &Matrix) -> Vec<f64> {
    w.iter()
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn rmsnorm(x: &[f64]) -> Vec<f64> {
    let mean_square = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let scale = 1.0 / (mean_square + 1e-5).sqrt();
    x.iter().map(|v| v * scale).collect()
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// What a full forward pass over `tokens` gives at the last position: the logits, and the keys and
/// values of every layer at every position (`[layer][position][n_embd]`).
struct Recomputed {
    logits: Vec<f64>,
    keys: Vec<Matrix>,
    values: Vec<Matrix>,
}

fn full_recompute(config: Config, w: &Weights, tokens: &[usize]) -> Recomputed {
    let head_dim = config.n_embd / config.n_head;
    let mut xs: Matrix = tokens
        .iter()
        .enumerate()
        .map(|(p, &token)| rmsnorm(&add(&w.wte[token], &w.wpe[p])))
        .collect();
    let (mut all_keys, mut all_values) = (Vec::new(), Vec::new());
    for layer in &w.layers {
        let [wq, wk, wv, wo, fc1, fc2] = layer;
        let normed: Matrix = xs.iter().map(|x| rmsnorm(x)).collect();
        let queries: Matrix = normed.iter().map(|x| linear(x, wq)).collect();
        let keys: Matrix = normed.iter().map(|x| linear(x, wk)).collect();
        let values: Matrix = normed.iter().map(|x| linear(x, wv)).collect();
        for (p, x) in xs.iter_mut().enumerate() {
            let mut concat = Vec::new();
            for h in 0..config.n_head {
                let span = h * head_dim..(h + 1) * head_dim;
                let scores: Vec<f64> = (0..=p)
                    .map(|t| {
                        let dot: f64 = span.clone().map(|j| queries[p][j] * keys[t][j]).sum();
                        dot / (head_dim as f64).sqrt()
                    })
                    .collect();
                let attention = softmax(&scores);
                for j in span {
                    concat.push((0..=p).map(|t| attention[t] * values[t][j]).sum());
                }
            }
            let attended = add(&linear(&concat, wo), x);
            let hidden: Vec<f64> = linear(&rmsnorm(&attended), fc1)
                .into_iter()
                .map(|h| h.max(0.0))
                .collect();
            *x = add(&linear(&hidden, fc2), &attended);
        }
        all_keys.push(keys);
        all_values.push(values);
    }
    Recomputed {
        logits: linear(xs.last().unwrap(), &w.lm_head),
        keys: all_keys,
        values: all_values,
    }
}

// ---------------------------------------------------------------------------------------------

fn assert_close(actual: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "{what}[{i}]: decoder {a}, oracle {e} (difference {:e})",
            (a - e).abs()
        );
    }
}

/// Runs a batch of 3 slots through the decoder: slot 0 a full block, slot 1 two tokens then (after
/// a reset) a second full-block sequence in the same slot, slot 2 one token short of a block. At
/// every step, calls `check(slot, tokens_so_far, decoder, cache)` for each slot that was fed.
fn run_batch<F: tape::Float>(
    config: Config,
    params: &Params<F>,
    mut check: impl FnMut(usize, &[usize], &Decoder<F>, &KvCache<F>),
) {
    let block = config.block_size;
    let mut queues: Vec<Vec<Vec<usize>>> = vec![
        vec![sequence(config, block, 1)],
        vec![sequence(config, block, 3), sequence(config, 2, 2)],
        vec![sequence(config, block - 1, 4)],
    ];
    let mut cache = KvCache::new(config, 3);
    let mut decoder = Decoder::new(params, 3).unwrap();
    let mut current: Vec<Option<Vec<usize>>> = queues.iter_mut().map(Vec::pop).collect();
    let mut fed = [0usize; 3];
    let mut steps = 0;
    while current.iter().any(Option::is_some) {
        let tokens: Vec<Option<usize>> = current
            .iter()
            .zip(fed)
            .map(|(sequence, fed)| sequence.as_ref().map(|s| s[fed]))
            .collect();
        decoder.step(&mut cache, &tokens).unwrap();
        steps += 1;
        for slot in 0..3 {
            let Some(sequence) = &current[slot] else {
                continue;
            };
            fed[slot] += 1;
            assert_eq!(cache.len(slot), fed[slot]);
            check(slot, &sequence[..fed[slot]], &decoder, &cache);
            if fed[slot] == sequence.len() {
                // This sequence is done: the slot moves on to the next one, from position 0.
                current[slot] = queues[slot].pop();
                fed[slot] = 0;
                cache.reset_sequence(slot);
            }
        }
    }
    assert_eq!(
        steps,
        2 + block,
        "slot 1 runs a 2-token then a full sequence"
    );
}

#[test]
fn incremental_logits_equal_a_full_recompute_at_every_position() {
    for (index, config) in CONFIGS.into_iter().enumerate() {
        let params = params(config, index as u64 + 10);
        let w = weights(&params);
        let mut checked = 0;
        run_batch(config, &params, |slot, tokens, decoder, cache| {
            let what = format!("config {index}, slot {slot}, tokens {tokens:?}");
            let expected = full_recompute(config, &w, tokens);
            assert_close(decoder.logits(slot), &expected.logits, 1e-12, &what);
            for layer in 0..config.n_layer {
                let flat = |rows: &Matrix| rows.concat();
                assert_close(
                    cache.keys(layer, slot),
                    &flat(&expected.keys[layer]),
                    1e-12,
                    &format!("{what}: keys of layer {layer}"),
                );
                assert_close(
                    cache.values(layer, slot),
                    &flat(&expected.values[layer]),
                    1e-12,
                    &format!("{what}: values of layer {layer}"),
                );
            }
            checked += 1;
        });
        let block = config.block_size;
        assert_eq!(checked, block + block + 2 + (block - 1));
    }
}

#[test]
fn the_oracle_is_sensitive_to_attention() {
    // If attention were uniform (or ignored earlier positions), swapping two earlier tokens would
    // not move the last logits; with these weights it must, or the test above proves little.
    let config = CONFIGS[0];
    let w = weights(&params(config, 10));
    let a = full_recompute(config, &w, &[4, 0, 1, 2]).logits;
    let b = full_recompute(config, &w, &[4, 1, 0, 2]).logits;
    let moved = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(
        moved > 1e-2,
        "the order of the context barely matters: {moved}"
    );
}

#[test]
fn f32_agrees_with_f64() {
    for (index, config) in CONFIGS.into_iter().enumerate() {
        let params64 = params(config, index as u64 + 20);
        let params32: Params<f32> = params64.cast();
        let mut expected: Vec<Vec<f64>> = Vec::new();
        run_batch(config, &params64, |slot, _, decoder, _| {
            expected.push(decoder.logits(slot).to_vec());
        });
        let mut next = expected.iter();
        run_batch(config, &params32, |slot, tokens, decoder, _| {
            let actual: Vec<f64> = decoder.logits(slot).iter().map(|&x| f64::from(x)).collect();
            let what = format!("config {index}, slot {slot}, tokens {tokens:?} in f32");
            assert_close(&actual, next.next().unwrap(), 1e-4, &what);
        });
    }
}

#[test]
fn incremental_logits_equal_the_scalar_engine() {
    for (index, config) in CONFIGS.into_iter().enumerate() {
        let params = params(config, index as u64 + 30);
        let mut model = gpt::scalar_model(&params);
        let tokens = sequence(config, config.block_size, 5);
        let expected = model.logits(&tokens);

        let mut cache = KvCache::new(config, 1);
        let mut decoder = Decoder::new(&params, 1).unwrap();
        for (position, &token) in tokens.iter().enumerate() {
            decoder.step(&mut cache, &[Some(token)]).unwrap();
            let what = format!("config {index}, position {position} against scalar");
            assert_close(decoder.logits(0), &expected[position], 1e-12, &what);
        }
    }
}

#[test]
fn bad_steps_are_errors_that_change_nothing() {
    let config = CONFIGS[0];
    let params = params(config, 40);
    let mut cache = KvCache::new(config, 2);
    let mut decoder = Decoder::new(&params, 2).unwrap();
    let bos = config.vocab_size - 1;
    for _ in 0..config.block_size {
        decoder.step(&mut cache, &[Some(bos), None]).unwrap();
    }
    let before_cache = cache.clone();
    let before_logits = decoder.all_logits().to_vec();

    // Sequence 0 is full; sequence 1 could take a token, but the step as a whole is refused.
    assert_eq!(
        decoder.step(&mut cache, &[Some(0), Some(0)]),
        Err(DecodeError::ContextFull {
            sequence: 0,
            block_size: config.block_size,
        })
    );
    assert_eq!(
        decoder.step(&mut cache, &[None, Some(config.vocab_size)]),
        Err(DecodeError::TokenOutOfRange {
            sequence: 1,
            token: config.vocab_size,
            vocab_size: config.vocab_size,
        })
    );
    assert_eq!(
        decoder.step(&mut cache, &[None]),
        Err(DecodeError::BatchMismatch {
            decoder: 2,
            cache: 2,
            tokens: 1,
        })
    );
    let other = self::params(CONFIGS[1], 41);
    assert_eq!(
        Decoder::new(&other, 2)
            .unwrap()
            .step(&mut cache, &[None, None]),
        Err(DecodeError::ConfigMismatch)
    );
    let mut transposed = params.clone();
    let wq = &mut transposed.tensors_mut()[3];
    *wq = wq.clone().reversed_axes();
    let layout = Err(DecodeError::WeightLayout {
        name: "layer0.attn_wq".to_string(),
    });
    assert_eq!(Decoder::new(&transposed, 2).map(|_| ()), layout);
    assert_eq!(decoder.load(&transposed), layout);
    assert_eq!(decoder.load(&other), Err(DecodeError::ConfigMismatch));
    assert_eq!(cache, before_cache);
    assert_eq!(decoder.all_logits(), before_logits);

    // After a reset the sequence takes tokens again.
    cache.reset();
    decoder.step(&mut cache, &[Some(0), None]).unwrap();
    assert_eq!((cache.len(0), cache.len(1)), (1, 0));
}

#[test]
fn a_warm_decode_and_draw_loop_allocates_nothing() {
    let config = CONFIGS[2];
    let params = params(config, 50);
    let batch = 4;
    let mut cache = KvCache::new(config, batch);
    let mut decoder = Decoder::new(&params, batch).unwrap();
    let mut scratch = DrawScratch::new(config.vocab_size);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let options = SamplingOptions::new(0.8, Some(10), Some(0.9)).unwrap();
    let bos = config.vocab_size - 1;
    let mut tokens = vec![Some(bos); batch];

    let mut generate = |cache: &mut KvCache<f64>, tokens: &mut [Option<usize>]| {
        cache.reset();
        tokens.fill(Some(bos));
        for step in 0..config.block_size {
            decoder.step(cache, tokens).unwrap();
            for (sequence, token) in tokens.iter_mut().enumerate() {
                if token.is_some() {
                    let next =
                        draw_token(decoder.logits(sequence), &options, &mut scratch, &mut rng);
                    // Sequences drop out at different steps, as finished names do.
                    *token = (step < sequence + 4).then(|| next.unwrap());
                }
            }
        }
    };

    generate(&mut cache, &mut tokens);
    let before = allocations();
    generate(&mut cache, &mut tokens);
    assert_eq!(
        allocations() - before,
        0,
        "a warm decode step or draw allocated"
    );
}
