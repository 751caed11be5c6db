//! A dataset held compactly: the file's text once, and where each document lies in it.
//!
//! microgpt.py keeps a list of strings; as `Vec<String>` plus a `Vec<Vec<usize>>` of tokens that
//! costs ~5 MB of small allocations for names.txt, more than the model, its optimizer and the tape
//! together. Here the 32,033 names take the 228 kB of the file plus 8 bytes each, and a document is
//! tokenized when it is used (a few dozen nanoseconds, against microseconds for its training step).

use std::io;
use std::ops::Range;
use std::path::Path;

use gpt::{Randomness, Tokenizer};

use crate::error::{CliError, Result};

/// The non-blank lines of a text file, trimmed, in an order that can be shuffled.
pub struct Corpus {
    text: String,
    /// Byte ranges of the documents in `text`, in the current order.
    spans: Vec<Range<u32>>,
}

impl Corpus {
    /// Reads `path`: one document per non-blank line, as microgpt.py reads its `input.txt`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => CliError::input(format!(
                "data file {} not found: pass --data FILE with one document per line",
                path.display()
            )),
            _ => CliError::input(format!("cannot read data file {}: {error}", path.display())),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            CliError::input(format!("data file {} is not UTF-8 text", path.display()))
        })?;
        if u32::try_from(text.len()).is_err() {
            return Err(CliError::input(format!(
                "data file {} is larger than 4 GiB; split it",
                path.display()
            )));
        }
        let spans = document_spans(&text);
        if spans.is_empty() {
            return Err(CliError::input(format!(
                "data file {} has no documents: it is empty or holds only blank lines",
                path.display()
            )));
        }
        Ok(Corpus { text, spans })
    }

    /// The number of documents.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Document `index` in the current order.
    pub fn document(&self, index: usize) -> &str {
        let span = &self.spans[index];
        &self.text[span.start as usize..span.end as usize]
    }

    /// The documents in the current order.
    pub fn documents(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|index| self.document(index))
    }

    /// Shuffles the documents as `random.shuffle` shuffles microgpt.py's list: the permutation
    /// depends only on the number of items and the generator.
    pub fn shuffle(&mut self, rng: &mut impl Randomness) {
        rng.shuffle(&mut self.spans);
    }

    /// Checks that every document is in `tokenizer`'s vocabulary, so that [`Corpus::encode_into`]
    /// cannot fail later; the error names the first offending document and character.
    pub fn check_vocabulary(&self, tokenizer: &Tokenizer, path: &Path) -> Result<()> {
        let mut tokens = Vec::new();
        for document in self.documents() {
            tokenizer.encode_into(document, &mut tokens).map_err(|error| {
                CliError::input(format!(
                    "{}: document {document:?}: {error}; the model's vocabulary is fixed by its checkpoint",
                    path.display()
                ))
            })?;
        }
        Ok(())
    }

    /// Document `index` as `[BOS, tokens.., BOS]`, into a reused buffer.
    ///
    /// # Panics
    /// If the document has a character outside the vocabulary: call [`Corpus::check_vocabulary`]
    /// first.
    pub fn encode_into(&self, index: usize, tokenizer: &Tokenizer, tokens: &mut Vec<usize>) {
        tokenizer
            .encode_into(self.document(index), tokens)
            .expect("the vocabulary was checked");
    }
}

/// The byte ranges of the trimmed non-blank lines of `text` (which fits in `u32`).
fn document_spans(text: &str) -> Vec<Range<u32>> {
    let base = text.as_ptr() as usize;
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let start = (line.as_ptr() as usize - base) as u32;
            start..start + line.len() as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(text: &str) -> Corpus {
        Corpus {
            text: text.to_string(),
            spans: document_spans(text),
        }
    }

    #[test]
    fn documents_are_the_trimmed_non_blank_lines() {
        let corpus = corpus("emma\n\n  olivia \r\nava\n   \nmia");
        let documents: Vec<&str> = corpus.documents().collect();
        assert_eq!(documents, ["emma", "olivia", "ava", "mia"]);
    }

    #[test]
    fn shuffling_permutes_documents_like_a_list() {
        use rand::SeedableRng;
        let text = "a\nb\nc\nd\ne\nf\ng";
        let mut shuffled = corpus(text);
        let mut list: Vec<&str> = text.lines().collect();
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
        shuffled.shuffle(&mut rng.clone());
        Randomness::shuffle(&mut rng, &mut list);
        assert_eq!(shuffled.documents().collect::<Vec<_>>(), list);
        assert_ne!(list, ["a", "b", "c", "d", "e", "f", "g"]);
    }

    #[test]
    fn encoding_wraps_a_document_in_bos() {
        let corpus = corpus("ab\nba");
        let tokenizer = Tokenizer::from_documents(corpus.documents());
        corpus
            .check_vocabulary(&tokenizer, Path::new("x"))
            .expect("same vocabulary");
        let mut tokens = vec![9, 9, 9, 9, 9];
        corpus.encode_into(1, &tokenizer, &mut tokens);
        assert_eq!(tokens, [2, 1, 0, 2]);
    }

    #[test]
    fn an_unknown_character_is_named_with_its_document() {
        let corpus = corpus("ab\nabz");
        let tokenizer = Tokenizer::from_documents(["ab"]);
        let error = corpus
            .check_vocabulary(&tokenizer, Path::new("names.txt"))
            .expect_err("z is not in the vocabulary")
            .to_string();
        assert!(error.contains("names.txt: document \"abz\""), "{error}");
        assert!(error.contains("'z'"), "{error}");
    }
}
