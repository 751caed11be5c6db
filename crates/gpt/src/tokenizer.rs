//! Characters to token ids and back.

use std::collections::BTreeSet;

/// A character-level vocabulary: the sorted distinct characters of a corpus, plus BOS.
///
/// Token `i < bos()` is the `i`-th character; `bos() = chars.len()` both starts and ends a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokenizer {
    chars: Vec<char>,
}

/// A character outside the vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("character {character:?} at position {position} is not in the vocabulary")]
pub struct UnknownCharacter {
    /// The character.
    pub character: char,
    /// Its position in the text, counted in characters from 0.
    pub position: usize,
}

impl Tokenizer {
    /// The vocabulary of `documents`: every distinct character (Unicode scalar value), sorted.
    ///
    /// ```
    /// let tokenizer = gpt::Tokenizer::from_documents(["emma", "ava"]);
    /// assert_eq!(tokenizer.vocab(), "aemv");
    /// assert_eq!(tokenizer.vocab_size(), 5);
    /// assert_eq!(tokenizer.encode("ma").unwrap(), vec![4, 2, 0, 4]);
    /// ```
    pub fn from_documents<'a>(documents: impl IntoIterator<Item = &'a str>) -> Self {
        // Every character of the corpus is looked at, so each costs little: ASCII ones (all of
        // names.txt) mark a table, and only the others go into an ordered set. ASCII sorts before
        // every other character, so the table's characters, then the set's, are in order.
        let mut ascii = [false; 128];
        let mut others = BTreeSet::new();
        for document in documents {
            for character in document.chars() {
                match ascii.get_mut(character as usize) {
                    Some(seen) => *seen = true,
                    None => {
                        others.insert(character);
                    }
                }
            }
        }
        let ascii = (0..=127u8)
            .filter(|&byte| ascii[usize::from(byte)])
            .map(char::from);
        Tokenizer {
            chars: ascii.chain(others).collect(),
        }
    }

    /// The tokenizer whose characters are exactly `vocab`, in that order (as a checkpoint stores it).
    pub fn from_vocab(vocab: &str) -> Self {
        Tokenizer {
            chars: vocab.chars().collect(),
        }
    }

    /// The characters in token order, as one string.
    pub fn vocab(&self) -> String {
        self.chars.iter().collect()
    }

    /// The number of tokens, BOS included.
    pub fn vocab_size(&self) -> usize {
        self.chars.len() + 1
    }

    /// The begin/end-of-sequence token.
    pub fn bos(&self) -> usize {
        self.chars.len()
    }

    /// The token of one character.
    pub fn token(&self, character: char) -> Option<usize> {
        self.chars.binary_search(&character).ok().or_else(|| {
            // A vocabulary read from a checkpoint may not be sorted; fall back to a scan.
            self.chars.iter().position(|&c| c == character)
        })
    }

    /// `[BOS, c1, .., cn, BOS]`, the form in which a document is trained on.
    pub fn encode(&self, document: &str) -> Result<Vec<usize>, UnknownCharacter> {
        let mut tokens = Vec::with_capacity(document.len() + 2);
        self.encode_into(document, &mut tokens)?;
        Ok(tokens)
    }

    /// [`Tokenizer::encode`] into a reused buffer (cleared first).
    pub fn encode_into(
        &self,
        document: &str,
        tokens: &mut Vec<usize>,
    ) -> Result<(), UnknownCharacter> {
        tokens.clear();
        tokens.push(self.bos());
        for (position, character) in document.chars().enumerate() {
            let token = self.token(character).ok_or(UnknownCharacter {
                character,
                position,
            })?;
            tokens.push(token);
        }
        tokens.push(self.bos());
        Ok(())
    }

    /// The tokens of `text` without BOS (for a prompt that a sample must start with).
    pub fn encode_prefix(&self, text: &str) -> Result<Vec<usize>, UnknownCharacter> {
        text.chars()
            .enumerate()
            .map(|(position, character)| {
                self.token(character).ok_or(UnknownCharacter {
                    character,
                    position,
                })
            })
            .collect()
    }

    /// The text of `tokens`, skipping BOS.
    pub fn decode(&self, tokens: &[usize]) -> String {
        tokens
            .iter()
            .filter_map(|&token| self.chars.get(token))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Tokenizer, UnknownCharacter};

    #[test]
    fn any_unicode_text_gets_a_sorted_vocabulary() {
        // Sorted by Unicode scalar value: 'z' (U+7A) < 'é' (U+E9) < '漢' (U+6F22) < '🙂' (U+1F642).
        let tokenizer = Tokenizer::from_documents(["🙂漢", "zé"]);
        assert_eq!(tokenizer.vocab(), "zé漢🙂");
        assert_eq!(tokenizer.bos(), 4);
        let tokens = tokenizer.encode("é🙂z").unwrap();
        assert_eq!(tokens, vec![4, 1, 3, 0, 4]);
        assert_eq!(tokenizer.decode(&tokens), "é🙂z");
    }

    proptest::proptest! {
        /// The vocabulary is the sorted distinct characters of all documents, as a set of every
        /// character (the naive reference) gives them, whatever mix of ASCII and other characters.
        #[test]
        fn the_vocabulary_is_every_distinct_character_sorted(
            documents in proptest::collection::vec("[a-c~\u{7f}\u{80}é漢🙂\n ]{0,12}", 0..6),
        ) {
            let expected: String = documents
                .iter()
                .flat_map(|document| document.chars())
                .collect::<std::collections::BTreeSet<char>>()
                .into_iter()
                .collect();
            let tokenizer = Tokenizer::from_documents(documents.iter().map(String::as_str));
            proptest::prop_assert_eq!(tokenizer.vocab(), expected);
        }
    }

    #[test]
    fn unknown_characters_are_named_with_their_position() {
        let tokenizer = Tokenizer::from_documents(["abc"]);
        let error = tokenizer.encode("abXc").unwrap_err();
        assert_eq!(
            error,
            UnknownCharacter {
                character: 'X',
                position: 2
            }
        );
        assert_eq!(
            error.to_string(),
            "character 'X' at position 2 is not in the vocabulary"
        );
        // Positions count characters, not bytes.
        assert_eq!(tokenizer.encode_prefix("éa").unwrap_err().position, 0);
        assert_eq!(
            Tokenizer::from_documents(["é"])
                .encode_prefix("éb")
                .unwrap_err()
                .position,
            1
        );
    }

    #[test]
    fn a_checkpoint_vocabulary_keeps_its_order() {
        let tokenizer = Tokenizer::from_vocab("cab");
        assert_eq!(tokenizer.token('a'), Some(1));
        assert_eq!(tokenizer.encode("bc").unwrap(), vec![3, 2, 0, 3]);
    }
}
