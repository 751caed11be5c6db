//! `PythonRandom` against draws recorded from CPython 3.11.
//!
//! The expected values come from `fixtures/python_random.txt`, which `fixtures/python_random.py`
//! writes (its header says how to regenerate it and describes the format). Every comparison is
//! exact: floats are compared by their bits. Most cases also record the three `random()` values
//! that follow the calls under test, which checks that the calls consumed as many words of the
//! Mersenne Twister as CPython's did.

use gpt::random::{PythonRandom, Randomness};

const FIXTURE: &str = include_str!("fixtures/python_random.txt");

/// One line of the fixture: `<kind> <name>=<value> ... : <group> | <group> | ...`.
struct Case {
    kind: &'static str,
    params: Vec<(&'static str, &'static str)>,
    groups: Vec<Vec<&'static str>>,
    line: &'static str,
}

impl Case {
    fn parse(line: &'static str) -> Self {
        let (head, body) = line
            .split_once(" : ")
            .unwrap_or_else(|| panic!("no ` : ` in {line}"));
        let mut words = head.split_whitespace();
        let kind = words.next().expect("a kind");
        let params = words
            .map(|word| {
                word.split_once('=')
                    .unwrap_or_else(|| panic!("bad parameter {word}"))
            })
            .collect();
        let groups = body
            .split('|')
            .map(|group| group.split_whitespace().collect())
            .collect();
        Self {
            kind,
            params,
            groups,
            line,
        }
    }

    fn param(&self, name: &str) -> &'static str {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .unwrap_or_else(|| panic!("no parameter {name} in {}", self.line))
            .1
    }

    fn seed(&self) -> u64 {
        self.param("seed").parse().expect("a u64 seed")
    }

    /// The groups, after checking there are `count` of them.
    fn groups(&self, count: usize) -> &[Vec<&'static str>] {
        assert_eq!(
            self.groups.len(),
            count,
            "number of groups in {}",
            self.line
        );
        &self.groups
    }

    /// A short name for assertion messages.
    fn name(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .filter(|(key, _)| *key != "weights" && *key != "base")
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        format!("{} {}", self.kind, params.join(" "))
    }
}

/// Every case of the given kind, after checking that the fixture has `count` of them (so that a
/// truncated or renamed fixture cannot make a test pass by checking nothing).
fn cases(kind: &str, count: usize) -> Vec<Case> {
    let found: Vec<Case> = FIXTURE
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(Case::parse)
        .filter(|case| case.kind == kind)
        .collect();
    assert_eq!(
        found.len(),
        count,
        "number of `{kind}` cases in the fixture"
    );
    found
}

/// A float written as the 16 hex digits of its bits.
fn float(hex: &str) -> f64 {
    assert_eq!(hex.len(), 16, "float bits {hex}");
    f64::from_bits(u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("float bits {hex}")))
}

/// A comma-separated list of floats written as bits.
fn floats(list: &str) -> Vec<f64> {
    list.split(',').map(float).collect()
}

fn ints<T: std::str::FromStr>(group: &[&str]) -> Vec<T> {
    group
        .iter()
        .map(|word| {
            word.parse()
                .unwrap_or_else(|_| panic!("bad integer {word}"))
        })
        .collect()
}

/// Checks a float bit for bit, showing both values when they differ.
fn assert_bits(actual: f64, expected: &str, what: &str) {
    assert_eq!(
        format!("{:016x}", actual.to_bits()),
        expected,
        "{what}: got {actual:?}, CPython gave {:?}",
        float(expected)
    );
}

/// Checks the next `random()` draws against the trailing group of a case.
fn assert_next_random(rng: &mut PythonRandom, expected: &[&str], case: &Case) {
    assert_eq!(expected.len(), 3, "trailing group of {}", case.line);
    for (i, bits) in expected.iter().enumerate() {
        assert_bits(
            rng.random(),
            bits,
            &format!("{}: random() #{i} after the calls", case.name()),
        );
    }
}

#[test]
fn the_fixture_has_only_known_cases() {
    let known = [
        ("random", 8),
        ("getrandbits", 4 * 13),
        ("randbelow", 4 * 33),
        ("shuffle", 4 * 8),
        ("shuffle_digest", 4),
        ("calls", 4),
        ("gauss", 4),
        ("choices", 4 * 15),
        ("microgpt", 1),
    ];
    let lines: Vec<&str> = FIXTURE
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect();
    assert_eq!(
        lines.len(),
        known.iter().map(|(_, count)| count).sum::<usize>()
    );
    for line in lines {
        let kind = Case::parse(line).kind;
        assert!(
            known.iter().any(|(name, _)| *name == kind),
            "unknown case kind {kind}"
        );
    }
}

#[test]
fn random_matches_cpython() {
    for case in cases("random", 8) {
        let expected = &case.groups(1)[0];
        assert_eq!(expected.len(), 20);
        let mut rng = PythonRandom::new(case.seed());
        let mut through_trait = PythonRandom::new(case.seed());
        for (i, bits) in expected.iter().enumerate() {
            assert_bits(
                rng.random(),
                bits,
                &format!("{} random() #{i}", case.name()),
            );
            assert_bits(
                through_trait.uniform(),
                bits,
                &format!("{} uniform() #{i}", case.name()),
            );
        }
    }
}

#[test]
fn getrandbits_matches_cpython() {
    for case in cases("getrandbits", 4 * 13) {
        let groups = case.groups(2);
        let k: u32 = case.param("k").parse().unwrap();
        let expected: Vec<u64> = ints(&groups[0]);
        assert_eq!(expected.len(), 20);
        let mut rng = PythonRandom::new(case.seed());
        let actual: Vec<u64> = (0..20).map(|_| rng.getrandbits(k)).collect();
        assert_eq!(actual, expected, "{}", case.name());
        assert_next_random(&mut rng, &groups[1], &case);
    }
}

#[test]
fn randbelow_matches_cpython() {
    for case in cases("randbelow", 4 * 33) {
        let groups = case.groups(2);
        let n: u64 = case.param("n").parse().unwrap();
        let expected: Vec<u64> = ints(&groups[0]);
        assert_eq!(expected.len(), 20);
        let mut rng = PythonRandom::new(case.seed());
        let actual: Vec<u64> = (0..20).map(|_| rng.randbelow(n)).collect();
        assert_eq!(actual, expected, "{}", case.name());
        assert_next_random(&mut rng, &groups[1], &case);
    }
}

#[test]
fn shuffle_matches_cpython() {
    for case in cases("shuffle", 4 * 8) {
        let groups = case.groups(2);
        let n: usize = case.param("n").parse().unwrap();
        let expected: Vec<usize> = ints(&groups[0]);
        assert_eq!(expected.len(), n);
        let mut rng = PythonRandom::new(case.seed());
        let mut items: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut items);
        assert_eq!(items, expected, "{}", case.name());
        assert_next_random(&mut rng, &groups[1], &case);
    }
}

/// The fixture's 64-bit polynomial hash of a permutation (`shuffle_digest` in the script).
fn shuffle_digest(items: &[usize]) -> u64 {
    items.iter().fold(0_u64, |hash, &item| {
        hash.wrapping_mul(1_000_003).wrapping_add(item as u64 + 1)
    })
}

#[test]
fn large_shuffle_matches_cpython() {
    for case in cases("shuffle_digest", 4) {
        let groups = case.groups(2);
        let n: usize = case.param("n").parse().unwrap();
        let expected: Vec<u64> = ints(&groups[0]);
        assert_eq!(expected.len(), 21);
        let mut rng = PythonRandom::new(case.seed());
        let mut items: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut items);
        let first: Vec<u64> = items[..10].iter().map(|&i| i as u64).collect();
        let last: Vec<u64> = items[n - 10..].iter().map(|&i| i as u64).collect();
        assert_eq!(first, expected[1..11], "{}: first ten", case.name());
        assert_eq!(last, expected[11..], "{}: last ten", case.name());
        assert_eq!(
            shuffle_digest(&items),
            expected[0],
            "{}: digest",
            case.name()
        );
        assert_next_random(&mut rng, &groups[1], &case);
    }
}

#[test]
fn interleaved_gauss_random_and_seed_match_cpython() {
    for case in cases("calls", 4) {
        let ops = &case.groups(1)[0];
        let mut rng = PythonRandom::new(case.seed());
        let (mut gausses, mut reseeds) = (0, 0);
        for (i, op) in ops.iter().enumerate() {
            let what = format!("{} op #{i} {op}", case.name());
            if let Some(bits) = op.strip_prefix("r=") {
                assert_bits(rng.random(), bits, &what);
            } else if let Some(seed) = op.strip_prefix("s:") {
                rng.seed(seed.parse().unwrap());
                reseeds += 1;
            } else {
                let (call, bits) = op.split_once('=').expect("g:<mu>:<sigma>=<result>");
                let mut args = call.strip_prefix("g:").expect("a gauss op").split(':');
                let (mu, sigma) = (float(args.next().unwrap()), float(args.next().unwrap()));
                assert_bits(rng.gauss(mu, sigma), bits, &what);
                gausses += 1;
            }
        }
        assert!(
            gausses >= 15 && reseeds == 2,
            "{}: {gausses} gauss, {reseeds} seed",
            case.name()
        );
    }
}

#[test]
fn gauss_matches_cpython() {
    for case in cases("gauss", 4) {
        let groups = case.groups(2);
        assert_eq!(groups[0].len(), 40);
        let mut rng = PythonRandom::new(case.seed());
        let mut through_trait = PythonRandom::new(case.seed());
        for (i, bits) in groups[0].iter().enumerate() {
            assert_bits(
                rng.gauss(0.0, 0.08),
                bits,
                &format!("{} gauss #{i}", case.name()),
            );
            assert_bits(
                through_trait.normal(0.0, 0.08),
                bits,
                &format!("{} normal #{i}", case.name()),
            );
        }
        assert_next_random(&mut rng, &groups[1], &case);
    }
}

#[test]
fn weighted_index_matches_cpython_choices() {
    for case in cases("choices", 4 * 15) {
        let groups = case.groups(2);
        let weights = floats(case.param("weights"));
        let expected: Vec<usize> = ints(&groups[0]);
        assert_eq!(expected.len(), 50);
        let mut rng = PythonRandom::new(case.seed());
        let actual: Vec<usize> = (0..50).map(|_| rng.weighted_index(&weights)).collect();
        assert_eq!(actual, expected, "{}", case.name());
        for (index, weight) in weights.iter().enumerate() {
            if *weight == 0.0 {
                assert!(
                    !actual.contains(&index),
                    "{}: picked zero-weight {index}",
                    case.name()
                );
            }
        }
        // Some weights of the fixture are built around the first draw, `random() * total`: with
        // `exact_tie` it is exactly the first two running sums, which `bisect_right` must skip;
        // with `summation_order` it is exactly the first running sum, but only if the total is
        // summed from the left, as `itertools.accumulate` does; with `just_below` it is the float
        // just below the first running sum, which must therefore be picked.
        match case.param("name") {
            "exact_tie" => assert_eq!(expected[0], 2, "{}", case.name()),
            "just_below" => assert_eq!(expected[0], 0, "{}", case.name()),
            "summation_order" => assert_eq!(expected[0], 1, "{}", case.name()),
            _ => {}
        }
        assert_next_random(&mut rng, &groups[1], &case);
    }
}

/// microgpt.py's sequence of draws: `random.seed(42)`, one `random.shuffle(docs)`, a `gauss(0,
/// 0.08)` per weight, then a `choices` per sampled token.
#[test]
fn microgpt_call_sequence_matches_cpython() {
    let case = &cases("microgpt", 1)[0];
    let groups = case.groups(4);
    let base = floats(case.param("base"));
    assert_eq!(base.len(), 27);

    let mut rng: PythonRandom = PythonRandom::new(0);
    rng.seed(case.seed());

    let mut docs: Vec<String> = (0..1000).map(|i| format!("doc{i}")).collect();
    rng.shuffle(&mut docs);
    assert_eq!(docs, groups[0], "shuffled documents");

    assert_eq!(groups[1].len(), 100);
    for (i, bits) in groups[1].iter().enumerate() {
        assert_bits(rng.normal(0.0, 0.08), bits, &format!("weight #{i}"));
    }

    let expected: Vec<usize> = ints(&groups[2]);
    assert_eq!(expected.len(), 50);
    let picks: Vec<usize> = (0..50)
        .map(|step| {
            let mut probs = base.clone();
            probs.rotate_left(step % 27);
            rng.weighted_index(&probs)
        })
        .collect();
    assert_eq!(picks, expected, "sampled tokens");

    assert_next_random(&mut rng, &groups[3], case);
}

#[test]
fn a_clone_continues_the_same_sequence() {
    let mut rng = PythonRandom::new(42);
    rng.gauss(0.0, 1.0);
    for _ in 0..700 {
        rng.random(); // crosses a twist of the state
    }
    rng.gauss(0.0, 1.0); // returns the cached value
    rng.gauss(0.0, 1.0); // draws a new pair and caches its second value
    let mut copy = rng.clone();
    for _ in 0..1000 {
        assert_eq!(
            rng.gauss(0.0, 1.0).to_bits(),
            copy.gauss(0.0, 1.0).to_bits()
        );
        assert_eq!(rng.getrandbits(64), copy.getrandbits(64));
    }
}
