//! CPython's `random` module, re-implemented draw for draw.
//!
//! microgpt.py, the Python program this workspace ports, takes every random draw from CPython's
//! module-level `random` functions: it calls `random.seed(42)`, then `random.shuffle(docs)` once,
//! `random.gauss(0, 0.08)` for every weight of the model, and
//! `random.choices(range(vocab_size), weights=probs)` for every sampled token. [`PythonRandom`]
//! computes the same algorithms on the same Mersenne Twister state, so that
//! `microgpt train --rng python` starts from bit-identical weights, sees the documents in the same
//! order and samples the same tokens as microgpt.py does.
//!
//! The algorithms are those of CPython 3.11 (`Modules/_randommodule.c` and `Lib/random.py`),
//! written here from their description; the tests check them against draws recorded from CPython.

use std::f64::consts::TAU;
use std::fmt;

use super::{Randomness, first_cumulative_above};

/// Number of 32-bit words in the Mersenne Twister state.
const N: usize = 624;
/// Offset of the word mixed into each twisted word.
const M: usize = 397;
/// The twist matrix of MT19937, applied when the low bit of the combined word is set.
const MATRIX_A: u32 = 0x9908_b0df;
/// The most significant bit of a word.
const UPPER_MASK: u32 = 0x8000_0000;
/// The 31 least significant bits of a word.
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A random number generator that reproduces CPython 3.11's `random.Random` bit for bit.
///
/// `PythonRandom::new(seed)` is `random.Random(seed)`: a 32-bit Mersenne Twister (MT19937) seeded
/// from the integer the way CPython seeds it. From the same seed, every method returns exactly what
/// its CPython counterpart returns, and consumes exactly as many words of the generator, so any
/// interleaving of calls stays in step with CPython:
///
/// | Rust                                     | CPython                                     |
/// |------------------------------------------|---------------------------------------------|
/// | [`PythonRandom::new(n)`][Self::new]      | `random.Random(n)`                          |
/// | [`seed(n)`][Self::seed]                  | `random.seed(n)`                            |
/// | [`random()`][Self::random], [`Randomness::uniform`] | `random.random()`                |
/// | [`getrandbits(k)`][Self::getrandbits]    | `random.getrandbits(k)`                     |
/// | [`randbelow(n)`][Self::randbelow]        | `random._randbelow(n)`                      |
/// | [`gauss(mu, sigma)`][Self::gauss], [`Randomness::normal`] | `random.gauss(mu, sigma)`  |
/// | [`Randomness::shuffle`]                  | `random.shuffle(x)`                         |
/// | [`Randomness::weighted_index`]           | `random.choices(range(len(w)), weights=w)[0]` |
///
/// Only seeds that fit in a `u64` are supported; CPython accepts integers of any size (and floats,
/// strings and bytes), which are out of scope. The generator does not implement `rand`'s `Rng`:
/// its draws would not be CPython's through `rand`'s algorithms anyway, and [`Randomness`] is
/// already implemented for every `Rng`.
///
/// The Gaussian draws go through the platform's `sin`, `cos` and `log`, as CPython's do; they match
/// CPython bit for bit when both use the same C math library (glibc on Linux, for instance).
///
/// # Examples
///
/// The expected values below were printed by CPython 3.11 (`random.Random(42)`):
///
/// ```
/// use gpt::random::{PythonRandom, Randomness};
///
/// let mut rng = PythonRandom::new(42);
/// assert_eq!(rng.random(), 0.6394267984578837);
/// assert_eq!(rng.getrandbits(8), 6);
///
/// let mut digits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
/// rng.shuffle(&mut digits);
/// assert_eq!(digits, [7, 6, 2, 9, 0, 5, 1, 8, 3, 4]);
/// ```
#[derive(Clone)]
pub struct PythonRandom {
    /// The Mersenne Twister state.
    state: [u32; N],
    /// Index in `state` of the next word to temper and return; `N` when the state must be twisted.
    index: usize,
    /// The second value of the last Box-Muller pair, which the next `gauss` returns.
    gauss_next: Option<f64>,
}

impl PythonRandom {
    /// A generator seeded like `random.Random(seed)` (or, equivalently, `random.seed(seed)`).
    ///
    /// # Examples
    ///
    /// The expected value was printed by CPython 3.11 (`random.Random(0).random()`):
    ///
    /// ```
    /// use gpt::random::PythonRandom;
    ///
    /// assert_eq!(PythonRandom::new(0).random(), 0.8444218515250481);
    /// ```
    pub fn new(seed: u64) -> Self {
        let mut rng = Self {
            state: [0; N],
            index: N,
            gauss_next: None,
        };
        rng.seed(seed);
        rng
    }

    /// Re-seeds the generator like `random.seed(seed)`, which also forgets the cached `gauss` value.
    ///
    /// CPython splits the absolute value of an integer seed into 32-bit words, least significant
    /// first and at least one word (so `0` is the key `[0]`), and hands them to MT19937's
    /// `init_by_array`. A `u64` is therefore one word below 2³² and two words from 2³² on.
    ///
    /// # Examples
    ///
    /// ```
    /// use gpt::random::PythonRandom;
    ///
    /// let mut rng = PythonRandom::new(7);
    /// let first = rng.gauss(0.0, 1.0);
    /// rng.seed(7);
    /// assert_eq!(rng.gauss(0.0, 1.0), first);
    /// ```
    pub fn seed(&mut self, seed: u64) {
        // Truncations intended: the seed's low and high 32-bit words.
        let low = seed as u32;
        let high = (seed >> 32) as u32;
        if high == 0 {
            self.init_by_array(&[low]);
        } else {
            self.init_by_array(&[low, high]);
        }
        self.gauss_next = None;
    }

    /// A float drawn uniformly from `[0, 1)`, like `random.random()`.
    ///
    /// It has 53 random bits: the top 27 bits of one word and the top 26 bits of the next.
    ///
    /// # Examples
    ///
    /// The expected values were printed by CPython 3.11 (`random.Random(1)`):
    ///
    /// ```
    /// use gpt::random::PythonRandom;
    ///
    /// let mut rng = PythonRandom::new(1);
    /// assert_eq!(rng.random(), 0.13436424411240122);
    /// assert_eq!(rng.random(), 0.8474337369372327);
    /// ```
    pub fn random(&mut self) -> f64 {
        let high = self.next_u32() >> 5;
        let low = self.next_u32() >> 6;
        (f64::from(high) * 67_108_864.0 + f64::from(low)) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// An integer with `k` random bits, like `random.getrandbits(k)`, for `k` up to 64.
    ///
    /// `k = 0` returns 0 without drawing. Up to 32 bits come from the top of one word; above 32,
    /// the first word drawn gives the low 32 bits and the top `k - 32` bits of the second word give
    /// the high ones, as in CPython.
    ///
    /// # Panics
    ///
    /// If `k > 64`.
    ///
    /// # Examples
    ///
    /// The expected values were printed by CPython 3.11 (`random.Random(42)`):
    ///
    /// ```
    /// use gpt::random::PythonRandom;
    ///
    /// let mut rng = PythonRandom::new(42);
    /// assert_eq!(rng.getrandbits(32), 2746317213);
    /// assert_eq!(rng.getrandbits(64), 461366972257415551);
    /// ```
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        match k {
            0 => 0,
            1..=32 => u64::from(self.next_u32() >> (32 - k)),
            33..=64 => {
                let low = self.next_u32();
                let high = self.next_u32() >> (64 - k);
                (u64::from(high) << 32) | u64::from(low)
            }
            _ => panic!("getrandbits({k}): at most 64 bits are supported"),
        }
    }

    /// An integer drawn uniformly from `0..n`, like CPython's `random._randbelow(n)`.
    ///
    /// This is the rejection sampling CPython uses in `shuffle`, `randrange` and `choice`: draw
    /// `getrandbits(n.bit_length())` until it is below `n`.
    ///
    /// # Panics
    ///
    /// If `n` is 0. (CPython's `_randbelow(0)` loops forever: `getrandbits(0)` is always 0.)
    ///
    /// # Examples
    ///
    /// The expected values were printed by CPython 3.11 (`random.Random(42)`):
    ///
    /// ```
    /// use gpt::random::PythonRandom;
    ///
    /// let mut rng = PythonRandom::new(42);
    /// let draws: Vec<u64> = (0..5).map(|_| rng.randbelow(27)).collect();
    /// assert_eq!(draws, [20, 3, 0, 23, 8]);
    /// ```
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow(0): the range 0..0 is empty");
        let k = u64::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// A float drawn from the normal distribution with mean `mu` and standard deviation `sigma`,
    /// like `random.gauss(mu, sigma)`.
    ///
    /// CPython uses the Box-Muller transform, which turns two `random()` draws into two independent
    /// normal values: one call returns the first and caches the second, which the next call returns
    /// without drawing. [`seed`](Self::seed) drops the cached value.
    ///
    /// # Examples
    ///
    /// The expected values were printed by CPython 3.11 (`random.Random(42)`), on Linux with glibc:
    ///
    /// ```
    /// use gpt::random::PythonRandom;
    ///
    /// let mut rng = PythonRandom::new(42);
    /// assert_eq!(rng.gauss(0.0, 0.08), -0.011527226366234268);
    /// assert_eq!(rng.gauss(0.0, 0.08), -0.013832288026521545);
    /// ```
    pub fn gauss(&mut self, mu: f64, sigma: f64) -> f64 {
        let z = match self.gauss_next.take() {
            Some(z) => z,
            None => {
                let angle = self.random() * TAU;
                let radius = (-2.0 * (1.0 - self.random()).ln()).sqrt();
                self.gauss_next = Some(angle.sin() * radius);
                angle.cos() * radius
            }
        };
        mu + z * sigma
    }

    /// MT19937's `init_genrand`: fills the state from one 32-bit seed.
    fn init_genrand(&mut self, seed: u32) {
        self.state[0] = seed;
        for i in 1..N {
            let previous = self.state[i - 1];
            // `i < N` fits in a u32.
            self.state[i] = 1_812_433_253_u32
                .wrapping_mul(previous ^ (previous >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    /// MT19937's `init_by_array`: fills the state from a key of 32-bit words.
    fn init_by_array(&mut self, key: &[u32]) {
        debug_assert!(!key.is_empty());
        self.init_genrand(19_650_218);
        let mut i = 1;
        let mut j = 0;
        for _ in 0..N.max(key.len()) {
            let previous = self.state[i - 1];
            let mixed = (previous ^ (previous >> 30)).wrapping_mul(1_664_525);
            // `j` is below the key's length, which is at most 2 here.
            self.state[i] = (self.state[i] ^ mixed)
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.state[0] = self.state[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let previous = self.state[i - 1];
            let mixed = (previous ^ (previous >> 30)).wrapping_mul(1_566_083_941);
            // `i < N` fits in a u32.
            self.state[i] = (self.state[i] ^ mixed).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.state[0] = self.state[N - 1];
                i = 1;
            }
        }
        // The most significant bit set guarantees a non-zero state.
        self.state[0] = UPPER_MASK;
        self.index = N;
    }

    /// Regenerates all `N` words of the state (MT19937's twist), in place.
    fn twist(&mut self) {
        for k in 0..N {
            // Indices past the end wrap to words that this loop has already regenerated, which is
            // what MT19937 specifies.
            let y = (self.state[k] & UPPER_MASK) | (self.state[(k + 1) % N] & LOWER_MASK);
            let matrix = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.state[k] = self.state[(k + M) % N] ^ (y >> 1) ^ matrix;
        }
        self.index = 0;
    }

    /// MT19937's `genrand_uint32`: the next 32-bit output, tempered.
    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

impl fmt::Debug for PythonRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonRandom")
            .field("index", &self.index)
            .field("gauss_next", &self.gauss_next)
            .finish_non_exhaustive()
    }
}

impl Randomness for PythonRandom {
    /// `random.random()`: see [`PythonRandom::random`].
    fn uniform(&mut self) -> f64 {
        self.random()
    }

    /// `random.gauss(mean, std_dev)`: see [`PythonRandom::gauss`].
    fn normal(&mut self, mean: f64, std_dev: f64) -> f64 {
        self.gauss(mean, std_dev)
    }

    /// `random.shuffle(items)`: Fisher-Yates from the back, with `randbelow(i + 1)` for each
    /// position `i` from the last down to 1.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            // usize and u64 have the same width on the platforms we build for, and `j <= i`.
            let j = self.randbelow(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// `random.choices(range(len(weights)), weights=weights)[0]`: one `random()` draw, scaled by
    /// the total weight, looked up in the running sums of the weights.
    ///
    /// # Panics
    ///
    /// If `weights` is empty or its total is not positive and finite (CPython raises an error).
    fn weighted_index(&mut self, weights: &[f64]) -> usize {
        // `itertools.accumulate` sums from the left, like this fold: `0.0 + w == w` for the first
        // weight (up to the sign of a zero, which compares equal).
        let total = weights.iter().fold(0.0, |sum, weight| sum + weight);
        assert!(
            total > 0.0 && total.is_finite(),
            "weighted_index: the total of the weights must be positive and finite, not {total}"
        );
        first_cumulative_above(weights, self.random() * total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference outputs of MT19937 published with the algorithm (`mt19937ar.out`), and
    /// required of `std::mt19937` by the C++ standard: these pin down `init_genrand`,
    /// `init_by_array`, the twist and the tempering independently of CPython.
    #[test]
    fn matches_the_mt19937_reference_outputs() {
        let mut rng = PythonRandom::new(0);
        rng.init_genrand(5489);
        assert_eq!(rng.next_u32(), 3_499_211_612);
        for _ in 1..9_999 {
            rng.next_u32();
        }
        assert_eq!(rng.next_u32(), 4_123_659_995);

        rng.init_by_array(&[0x123, 0x234, 0x345, 0x456]);
        let first: Vec<u32> = (0..5).map(|_| rng.next_u32()).collect();
        assert_eq!(
            first,
            [
                1_067_595_299,
                955_945_823,
                477_289_528,
                4_107_218_783,
                4_228_976_476
            ]
        );
    }

    /// CPython's `bisect.bisect_right(a, x, 0, hi)`: the first index in `0..hi` whose value
    /// exceeds `x`, found by halving, or `hi` when there is none.
    fn bisect_right(a: &[f64], x: f64, hi: usize) -> usize {
        let (mut lo, mut hi) = (0, hi);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if x < a[mid] {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// `first_cumulative_above` must agree with what `random.choices` does,
    /// `bisect_right(list(accumulate(weights)), target, 0, len(weights) - 1)`, for every target,
    /// including targets equal to a running sum and runs of equal sums (zero weights).
    #[test]
    fn first_cumulative_above_is_choices_bisection() {
        let mut rng = PythonRandom::new(3);
        let mut checked = 0;
        for case in 0..2_000 {
            let len = 1 + rng.randbelow(12) as usize;
            let weights: Vec<f64> = (0..len)
                .map(|_| match rng.randbelow(4) {
                    0 => 0.0,
                    1 => 1.0,
                    2 => 0.1,
                    _ => rng.random() * 10.0_f64.powi(case % 7 - 3),
                })
                .collect();
            let cumulative: Vec<f64> = weights
                .iter()
                .scan(None, |sum: &mut Option<f64>, &w| {
                    let next = sum.map_or(w, |s| s + w);
                    *sum = Some(next);
                    Some(next)
                })
                .collect();
            let total = cumulative[len - 1];
            let mut targets = vec![0.0, total, total * (1.0 - f64::EPSILON / 2.0)];
            for &c in &cumulative {
                targets.extend([c, c.next_down(), c.next_up()]);
            }
            targets.extend((0..8).map(|_| rng.random() * total));
            for target in targets.into_iter().filter(|t| *t >= 0.0) {
                assert_eq!(
                    first_cumulative_above(&weights, target),
                    bisect_right(&cumulative, target, len - 1),
                    "weights {weights:?}, target {target:e}"
                );
                checked += 1;
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    #[should_panic(expected = "randbelow(0)")]
    fn randbelow_zero_panics() {
        PythonRandom::new(0).randbelow(0);
    }

    #[test]
    #[should_panic(expected = "at most 64 bits")]
    fn getrandbits_over_64_panics() {
        PythonRandom::new(0).getrandbits(65);
    }

    #[test]
    #[should_panic(expected = "positive and finite")]
    fn weighted_index_with_zero_total_panics() {
        PythonRandom::new(0).weighted_index(&[0.0, 0.0]);
    }

    #[test]
    #[should_panic(expected = "positive and finite")]
    fn weighted_index_with_no_weights_panics() {
        PythonRandom::new(0).weighted_index(&[]);
    }
}
