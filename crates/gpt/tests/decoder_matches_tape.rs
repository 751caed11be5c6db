//! The KV-cache decoder against the tape model it serves: the same weights and tokens must give the
//! same logits at every position, to the bit, in f64 and in f32.
//!
//! The oracle is [`Model::logits`], the training graph recorded on the tape over the whole
//! sequence at once (every position's keys and values recomputed, the causal mask inside the fused
//! attention op). The decoder computes one position at a time from its cache, through its memo
//! tables (the first block's inputs, the steps at positions 0 and 1 after BOS) whenever a
//! (token, position) repeats. The two share their kernels, not their loops: if the decoder
//! summed, normalised or masked in any other order, or a memo table replayed a step that is not
//! the one asked for, a bit would differ.

mod common;

use common::params;
use gpt::{Config, Decoder, KvCache, Model, Params};
use tape::Float;

/// One and several blocks, one and several heads, head sizes 2, 4, 8 and 16 (the compile-time
/// sizes of the attention and the general one), the seed's model and Karpathy's.
const CONFIGS: [Config; 5] = [
    Config::SEED,
    Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 4,
        block_size: 16,
        vocab_size: 27,
    },
    common::SMALL,
    Config {
        n_layer: 3,
        n_embd: 32,
        n_head: 4,
        block_size: 7,
        vocab_size: 11,
    },
    Config {
        n_layer: 2,
        n_embd: 16,
        n_head: 1,
        block_size: 6,
        vocab_size: 9,
    },
];

/// Full-length sequences from BOS, in three slots, twice over: the second round and the shared
/// prefixes (sequences 0 and 1 share their first three tokens, 2 and 3 their first two) feed
/// (token, position) pairs the memo tables have seen, so their replays are checked too.
fn sequences(config: Config) -> Vec<Vec<usize>> {
    let (bos, vocab, block) = (config.vocab_size - 1, config.vocab_size, config.block_size);
    let tail = |salt: usize| (1..block).map(move |i| (i * 5 + salt * 7 + i * i * salt) % vocab);
    let mut sequences: Vec<Vec<usize>> = (0..4)
        .map(|salt| std::iter::once(bos).chain(tail(salt)).collect())
        .collect();
    let shared = sequences[0][..3].to_vec();
    sequences[1][..3].copy_from_slice(&shared);
    let shared = sequences[2][..2].to_vec();
    sequences[3][..2].copy_from_slice(&shared);
    sequences.extend(sequences.clone());
    sequences
}

/// Feeds `sequences` through one decoder with 3 slots (a slot takes the next sequence as soon as
/// its own ends) and compares each fed position's logits with the tape model's, bit for bit.
fn assert_decoder_matches_tape<F: Float>(config: Config, params: &Params<F>) -> usize {
    let mut model = Model::new(params.clone());
    let sequences = sequences(config);
    let expected: Vec<_> = sequences
        .iter()
        .map(|tokens| model.logits(tokens).unwrap())
        .collect();

    let slots = 3;
    let mut decoder = Decoder::new(params, slots).unwrap();
    let mut cache = KvCache::new(config, slots);
    let mut queue = 0..sequences.len();
    let mut current: Vec<Option<usize>> = (0..slots).map(|_| queue.next()).collect();
    let mut compared = 0;
    while current.iter().any(Option::is_some) {
        let tokens: Vec<Option<usize>> = current
            .iter()
            .enumerate()
            .map(|(slot, sequence)| sequence.map(|s| sequences[s][cache.len(slot)]))
            .collect();
        decoder.step(&mut cache, &tokens).unwrap();
        for (slot, current) in current.iter_mut().enumerate() {
            let Some(sequence) = *current else {
                continue;
            };
            let position = cache.len(slot) - 1;
            let row = expected[sequence].row(position);
            let bits = |values: &[F]| values.iter().map(|&x| x.to_f64().to_bits()).collect();
            let (actual, oracle): (Vec<u64>, Vec<u64>) =
                (bits(decoder.logits(slot)), bits(row.as_slice().unwrap()));
            assert_eq!(
                actual, oracle,
                "{config:?}: sequence {sequence}, position {position}"
            );
            compared += 1;
            if position + 1 == sequences[sequence].len() {
                cache.reset_sequence(slot);
                *current = queue.next();
            }
        }
    }
    compared
}

#[test]
fn f64_logits_equal_the_tape_models_to_the_bit_at_every_position() {
    for (index, config) in CONFIGS.into_iter().enumerate() {
        let compared = assert_decoder_matches_tape(config, &params(config, index as u64));
        assert_eq!(compared, 8 * config.block_size, "every position compared");
    }
}

#[test]
fn f32_logits_equal_the_tape_models_to_the_bit_at_every_position() {
    for (index, config) in CONFIGS.into_iter().enumerate() {
        let params: Params<f32> = params(config, 100 + index as u64).cast();
        assert_decoder_matches_tape(config, &params);
    }
}

#[test]
fn a_position_0_written_under_other_weights_is_not_replayed() {
    // Decoder `a` has recorded the steps at positions 0 and 1 after BOS for its weights. A cache
    // whose position 0 decoder `b` (other weights) wrote must get position 1 computed by `a` from
    // that cache, as a decoder that has recorded nothing computes it.
    let config = CONFIGS[0];
    let bos = config.vocab_size - 1;
    let (first, second) = (params(config, 7), params(config, 8));
    let mut a = Decoder::new(&first, 1).unwrap();
    let mut cache = KvCache::new(config, 1);
    a.step(&mut cache, &[Some(bos)]).unwrap();
    a.step(&mut cache, &[Some(3)]).unwrap();

    let mut b = Decoder::new(&second, 1).unwrap();
    let mut fresh = Decoder::new(&first, 1).unwrap();
    let mut expected_cache = KvCache::new(config, 1);
    cache.reset();
    b.step(&mut cache, &[Some(bos)]).unwrap();
    b.step(&mut expected_cache, &[Some(bos)]).unwrap();
    a.step(&mut cache, &[Some(3)]).unwrap();
    fresh.step(&mut expected_cache, &[Some(3)]).unwrap();
    assert_eq!(a.logits(0), fresh.logits(0));
    assert_eq!(cache, expected_cache);

    // And a reload forgets what the old weights computed: position 0 after `load` is the new
    // weights' step, as a new decoder computes it.
    a.load(&second).unwrap();
    cache.reset();
    a.step(&mut cache, &[Some(bos)]).unwrap();
    assert_eq!(a.logits(0), b.logits(0));
}
