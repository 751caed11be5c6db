//! The two random generators a run can use.

use clap::ValueEnum;
use gpt::{PythonRandom, Randomness};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// Which generator draws the shuffle, the initial weights and the samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RngKind {
    /// Xoshiro256++: fast and portable.
    Rust,
    /// CPython's Mersenne Twister and `random` algorithms: reproduces microgpt.py draw for draw.
    Python,
}

impl RngKind {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            RngKind::Rust => "rust",
            RngKind::Python => "python",
        }
    }

    /// Parses [`RngKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [RngKind::Rust, RngKind::Python]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// A generator of either kind (CPython's 2.5 KB state is boxed to keep the enum small).
pub enum Generator {
    /// See [`RngKind::Rust`].
    Rust(Xoshiro256PlusPlus),
    /// See [`RngKind::Python`].
    Python(Box<PythonRandom>),
}

impl Generator {
    /// The generator of `kind` seeded with `seed` (for Python, `random.seed(seed)`).
    pub fn new(kind: RngKind, seed: u64) -> Self {
        match kind {
            RngKind::Rust => Generator::Rust(Xoshiro256PlusPlus::seed_from_u64(seed)),
            RngKind::Python => Generator::Python(Box::new(PythonRandom::new(seed))),
        }
    }
}

impl Randomness for Generator {
    fn uniform(&mut self) -> f64 {
        match self {
            Generator::Rust(rng) => rng.uniform(),
            Generator::Python(rng) => rng.uniform(),
        }
    }

    fn normal(&mut self, mean: f64, std_dev: f64) -> f64 {
        match self {
            Generator::Rust(rng) => rng.normal(mean, std_dev),
            Generator::Python(rng) => rng.normal(mean, std_dev),
        }
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        match self {
            Generator::Rust(rng) => rng.shuffle(items),
            Generator::Python(rng) => rng.shuffle(items),
        }
    }

    fn weighted_index(&mut self, weights: &[f64]) -> usize {
        match self {
            Generator::Rust(rng) => rng.weighted_index(weights),
            Generator::Python(rng) => rng.weighted_index(weights),
        }
    }
}

/// The generator of the `index`-th name sampled with `seed` (the rust generator): its own stream,
/// so that a seed's names do not depend on how many are drawn or how many at a time. The seed is
/// mixed (SplitMix64's finaliser) before the index is added, so that nearby seeds do not share
/// streams, and `seed_from_u64` mixes the sum again.
pub fn name_stream(seed: u64, index: usize) -> Xoshiro256PlusPlus {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Xoshiro256PlusPlus::seed_from_u64(z.wrapping_add(index as u64))
}
