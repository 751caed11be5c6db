//! Edits of a file's bytes for fuzzing loaders: flipped bits, overwritten, inserted and removed
//! bytes, changed digits (mostly a header's sizes and offsets), truncation and junk appended. The
//! loaders of tape's state dicts and gpt's checkpoints are fuzzed with the same edits.

use proptest::collection::vec;
use proptest::prelude::*;

/// One edit of a file's bytes.
#[allow(missing_docs)] // each variant's doc names its fields
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flips bit `bit` of byte `at`.
    FlipBit { at: usize, bit: u8 },
    /// Writes `byte` over byte `at`.
    Overwrite { at: usize, byte: u8 },
    /// Replaces ASCII digit number `which` of the file with `digit`.
    ChangeDigit { which: usize, digit: u8 },
    /// Inserts `byte` before byte `at`.
    Insert { at: usize, byte: u8 },
    /// Removes byte `at`.
    Remove { at: usize },
    /// Cuts the file at `at`.
    Truncate { at: usize },
    /// Appends `bytes`.
    Extend { bytes: Vec<u8> },
}

/// Any [`Mutation`], at any position (taken modulo the file's length when applied).
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite { at, byte }),
        (any::<usize>(), 0u8..10).prop_map(|(which, digit)| Mutation::ChangeDigit { which, digit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        vec(any::<u8>(), 1..16).prop_map(|bytes| Mutation::Extend { bytes }),
    ]
}

/// Applies `mutation` to `bytes`; one that needs a byte the file does not have does nothing.
pub fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match *mutation {
        Mutation::FlipBit { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
        Mutation::Overwrite { at, byte } if len > 0 => bytes[at % len] = byte,
        Mutation::ChangeDigit { which, digit } => {
            let digits: Vec<usize> = (0..len).filter(|&i| bytes[i].is_ascii_digit()).collect();
            if !digits.is_empty() {
                bytes[digits[which % digits.len()]] = b'0' + digit;
            }
        }
        Mutation::Insert { at, byte } => bytes.insert(at % (len + 1), byte),
        Mutation::Remove { at } if len > 0 => {
            bytes.remove(at % len);
        }
        Mutation::Truncate { at } => bytes.truncate(at % (len + 1)),
        Mutation::Extend { bytes: ref extra } => bytes.extend_from_slice(extra),
        _ => {}
    }
}
