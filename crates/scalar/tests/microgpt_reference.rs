//! The scalar model against numbers printed by microgpt.py itself.
//!
//! Oracle: Karpathy's microgpt.py, run with CPython 3.11 on x86-64 Linux: its `Value` class, its
//! `linear`, `softmax`, `rmsnorm` and `gpt` functions and its training loop, unchanged, except
//!   - the configuration is `n_layer=2, n_embd=6, n_head=3, block_size=4, vocab_size=5` (BOS = 4);
//!   - `random.gauss(0, std)` is replaced by [`weight`] below, a dyadic rational that is exact in both
//!     languages, drawn in the same order (the state dict's order, row by row);
//!   - every step trains on the document `[4, 0, 1, 2, 3, 1, 4]` (7 tokens, so block_size truncates
//!     it to 4 predictions), with `num_steps = 3`;
//!   - it prints `repr()` of the loss at each step, of the logits at the last position of step 0, of
//!     the gradients of the first, middle and last entry of every tensor at step 0, and of four
//!     parameters after the three Adam updates.
//!
//! Tolerances: the forward pass follows Python's order of operations, so the loss and logits agree to
//! the last bit or two (libm differences aside). Gradients add the same terms as Python but possibly
//! in another order (reverse creation order instead of Python's depth-first topological order), so
//! they agree to round-off: 1e-15 absolute plus 1e-12 relative.

use scalar::{Config, ScalarGpt};

const CONFIG: Config = Config {
    n_layer: 2,
    n_embd: 6,
    n_head: 3,
    block_size: 4,
    vocab_size: 5,
};

const DOCUMENT: [usize; 7] = [4, 0, 1, 2, 3, 1, 4];

/// The k-th parameter in DESIGN.md order: a multiplicative hash mapped to [-1/8, 1/8) in steps of
/// 2^-18, exact in f64. Python: `(((k * 2654435761 + 12345) % 2**32) >> 16) - 32768) / 2**18`.
fn weight(k: u64) -> f64 {
    let hashed = ((k * 2_654_435_761 + 12_345) % (1 << 32)) >> 16;
    (hashed as f64 - 32_768.0) / f64::from(1 << 18)
}

fn model() -> ScalarGpt {
    let mut k = 0;
    ScalarGpt::init(CONFIG, || {
        k += 1;
        weight(k - 1)
    })
    .unwrap()
}

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual:e}, microgpt.py printed {expected:e} (difference {:e})",
        (actual - expected).abs()
    );
}

#[test]
fn loss_and_logits_match_microgpt_py() {
    let mut model = model();
    assert_eq!(model.num_params(), 948);
    let loss = model.loss(&DOCUMENT);
    assert_close(loss, 1.466_414_005_311_692_3, 4e-16, "loss at step 0");
    let logits = model.logits(&DOCUMENT[..4]);
    let expected = [
        -0.167_341_058_183_440_33,
        -0.288_745_333_633_917_86,
        -0.078_582_487_101_580_5,
        0.303_780_040_107_425_93,
        -0.161_444_795_312_266_7,
    ];
    for (token, (&actual, &expected)) in logits[3].iter().zip(&expected).enumerate() {
        assert_close(
            actual,
            expected,
            1e-16,
            &format!("logit {token} at position 3"),
        );
    }
}

#[test]
fn gradients_match_microgpt_py() {
    let mut model = model();
    model.loss(&DOCUMENT);
    // (tensor, [(index within the tensor, gradient)]) as printed by microgpt.py.
    let expected: [(&str, [(usize, f64); 3]); 15] = [
        (
            "wte",
            [
                (0, 0.019_585_008_712_789_03),
                (15, -0.020_466_741_863_561_087),
                (29, -0.088_309_398_963_006_16),
            ],
        ),
        (
            "wpe",
            [
                (0, -0.043_122_410_157_275_116),
                (12, -0.044_556_071_159_479_67),
                (23, 0.044_573_023_071_073_82),
            ],
        ),
        (
            "lm_head",
            [
                (0, -0.220_156_212_069_953_12),
                (15, -0.221_000_480_124_464_94),
                (29, -0.025_116_784_574_076_77),
            ],
        ),
        (
            "layer0.attn_wq",
            [
                (0, -7.499_868_952_518_657e-5),
                (18, 1.062_356_291_944_255_5e-4),
                (35, 3.093_498_825_971_723e-4),
            ],
        ),
        (
            "layer0.attn_wk",
            [
                (0, 1.837_266_538_472_393_4e-4),
                (18, 3.647_386_438_203_567e-4),
                (35, 1.526_618_806_737_136e-4),
            ],
        ),
        (
            "layer0.attn_wv",
            [
                (0, 0.004_464_520_724_436_969),
                (18, 0.001_939_687_501_488_215_2),
                (35, 0.003_900_120_233_938_079_4),
            ],
        ),
        (
            "layer0.attn_wo",
            [
                (0, 8.021_018_302_992_834e-4),
                (18, 0.002_121_424_754_968_349_3),
                (35, -0.002_707_990_145_747_555_5),
            ],
        ),
        (
            "layer0.mlp_fc1",
            [
                (0, -0.001_384_431_021_170_013_9),
                (72, -0.001_064_724_822_296_345),
                (143, 0.003_890_177_684_887_402),
            ],
        ),
        (
            "layer0.mlp_fc2",
            [
                (0, -0.006_562_816_948_893_936),
                (72, -0.003_577_840_030_724_249),
                (143, 0.005_372_753_658_257_056),
            ],
        ),
        (
            "layer1.attn_wq",
            [
                (0, -5.955_383_788_206_783e-5),
                (18, 9.920_547_762_895_25e-5),
                (35, 3.225_969_477_049_817_4e-4),
            ],
        ),
        (
            "layer1.attn_wk",
            [
                (0, 1.109_205_143_072_877_9e-4),
                (18, 3.569_164_938_207_639e-4),
                (35, 1.444_697_153_655_637e-4),
            ],
        ),
        (
            "layer1.attn_wv",
            [
                (0, 0.004_129_467_465_385_291),
                (18, 0.001_901_496_955_217_745),
                (35, 0.003_923_032_620_358_233),
            ],
        ),
        (
            "layer1.attn_wo",
            [
                (0, 8.772_413_298_503_074e-4),
                (18, 0.002_104_013_770_835_188_7),
                (35, -0.002_677_660_727_590_852_7),
            ],
        ),
        (
            "layer1.mlp_fc1",
            [
                (0, -0.001_380_156_015_653_016_9),
                (72, -0.001_149_783_953_570_909_9),
                (143, 0.003_813_788_522_777_831_3),
            ],
        ),
        (
            "layer1.mlp_fc2",
            [
                (0, -0.002_826_270_394_464_895_3),
                (72, 0.002_981_475_245_020_451),
                (143, 0.005_254_422_339_118_198),
            ],
        ),
    ];
    let gradients = model.gradients();
    assert_eq!(gradients.len(), expected.len());
    for (gradient, (name, samples)) in gradients.iter().zip(expected) {
        assert_eq!(gradient.name, name);
        for (index, value) in samples {
            let tolerance = 1e-15 + 1e-12 * value.abs();
            assert_close(
                gradient.data[index],
                value,
                tolerance,
                &format!("d loss / d {name}[{index}]"),
            );
        }
    }
}

/// Three microgpt.py training steps: the losses after one and two Adam updates, and four parameters
/// after three, match. This checks Adam (bias correction, decay, eps) on the whole model.
#[test]
fn training_matches_microgpt_py() {
    let mut model = model();
    let expected_losses = [
        1.466_414_005_311_692_3,
        1.360_498_825_801_393_5,
        1.298_595_012_061_705_6,
    ];
    for (step, expected) in expected_losses.into_iter().enumerate() {
        let loss = model.train_step(&DOCUMENT, step, 3, 0.01);
        assert_close(loss, expected, 1e-14, &format!("loss at step {step}"));
    }
    let parameters: Vec<f64> = model
        .weights()
        .into_iter()
        .flat_map(|tensor| tensor.data)
        .collect();
    let expected = [
        (0, -0.131_197_342_855_748_94),
        (100, 0.095_452_258_133_006_76),
        (500, -0.100_717_386_839_149_8),
        (947, -0.075_496_915_289_990_99),
    ];
    for (index, value) in expected {
        assert_close(
            parameters[index],
            value,
            1e-14,
            &format!("parameter {index} after 3 steps"),
        );
    }
}
