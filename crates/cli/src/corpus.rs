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
use sha2::{Digest, Sha256};

use crate::error::{CliError, Result};
use crate::stream::note;

/// The non-blank lines of a text file, trimmed, in an order that can be shuffled.
pub struct Corpus {
    text: String,
    /// Byte ranges of the documents in `text`, in the current order.
    spans: Vec<Range<u32>>,
    /// The characters of the documents, gathered as they are found.
    vocabulary: Tokenizer,
    /// What identifies the file's contents.
    fingerprint: Fingerprint,
}

/// What identifies a data file, recorded in checkpoints so that `--resume` can tell when it is
/// given other data: the number of documents and the SHA-256 of the file's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub documents: usize,
    pub sha256: String,
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} documents, sha256 {}", self.documents, &self.sha256)
    }
}

impl Corpus {
    /// Reads `path`: one document per non-blank line, as microgpt.py reads its `input.txt`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => CliError::input(format!(
                "data file {} not found: pass --data FILE with one document per line",
                path.display()
            )),
            io::ErrorKind::IsADirectory | io::ErrorKind::PermissionDenied => {
                CliError::input(format!("cannot read data file {}: {error}", path.display()))
            }
            _ => CliError::failure(format!("cannot read data file {}: {error}", path.display())),
        })?;
        let (corpus, cleaned) = Corpus::from_bytes(bytes).map_err(|problem| {
            CliError::input(format!("data file {} {problem}", path.display()))
        })?;
        if let Some(cleaned) = cleaned {
            note!("note: data file {}: {cleaned}", path.display());
        }
        Ok(corpus)
    }

    /// The corpus in a file's bytes, and a note of what was cleaned (a UTF-8 byte-order mark,
    /// CRLF line endings), or why the bytes hold no corpus (the end of a sentence beginning with
    /// the file's name). Any bytes give one or the other, never a panic.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<(Self, Option<String>), String> {
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let mut text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())?;
        let mut cleaned = Vec::new();
        // A byte-order mark would otherwise become part of the first document (and a character
        // of the vocabulary); a CR before each newline is removed with the trimming of the lines.
        if text.starts_with('\u{feff}') {
            text.drain(..'\u{feff}'.len_utf8());
            cleaned.push("removed its UTF-8 byte-order mark");
        }
        if u32::try_from(text.len()).is_err() {
            return Err("is larger than 4 GiB; split it".to_string());
        }
        let Documents {
            spans,
            vocabulary,
            crlf,
        } = Documents::find(&text);
        if crlf {
            cleaned.push("its CRLF line endings are read as LF");
        }
        if spans.is_empty() {
            return Err("has no documents: it is empty or holds only blank lines".to_string());
        }
        let fingerprint = Fingerprint {
            documents: spans.len(),
            sha256,
        };
        let cleaned = (!cleaned.is_empty()).then(|| cleaned.join("; "));
        Ok((
            Corpus {
                text,
                spans,
                vocabulary,
                fingerprint,
            },
            cleaned,
        ))
    }

    /// The file's fingerprint (the count is of the whole file, before any validation split).
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The characters of the documents (sorted, as [`Tokenizer::from_documents`] gives them): the
    /// vocabulary of a new model trained on them.
    pub fn vocabulary(&self) -> &Tokenizer {
        &self.vocabulary
    }

    /// The file's text (a byte-order mark removed), for `--format text`.
    pub fn text(&self) -> &str {
        &self.text
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

    /// How many documents have more than `characters` characters. A document's bytes are at least
    /// its characters, and as many in an ASCII corpus, so its length settles most without a count.
    pub fn count_longer_than(&self, characters: usize) -> usize {
        let ascii = self.vocabulary.vocab().is_ascii();
        self.documents()
            .filter(|document| {
                document.len() > characters && (ascii || document.chars().count() > characters)
            })
            .count()
    }

    /// Shuffles the documents as `random.shuffle` shuffles microgpt.py's list: the permutation
    /// depends only on the number of items and the generator.
    pub fn shuffle(&mut self, rng: &mut impl Randomness) {
        rng.shuffle(&mut self.spans);
    }

    /// Checks that every document is in `tokenizer`'s vocabulary, so that [`Corpus::encode_into`]
    /// cannot fail later; the error names the first offending document and character.
    pub fn check_vocabulary(&self, tokenizer: &Tokenizer, path: &Path) -> Result<()> {
        // The documents' characters, gathered when they were read, settle it without reading
        // them again; only a failure goes through the documents, to name the first offender.
        let known = self
            .vocabulary
            .vocab()
            .chars()
            .all(|character| tokenizer.token(character).is_some());
        if known {
            return Ok(());
        }
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

/// What one pass over a file's text finds: its documents and their characters.
struct Documents {
    /// The byte ranges of the trimmed non-blank lines, in the file's order.
    spans: Vec<Range<u32>>,
    /// Their characters.
    vocabulary: Tokenizer,
    /// Whether any line ends in CRLF (the CR is trimmed with the other whitespace).
    crlf: bool,
}

impl Documents {
    /// The documents of `text` (which fits in `u32`): the lines as [`str::lines`] splits them,
    /// trimmed, the blank ones left out.
    ///
    /// One pass over the bytes, which a run's start-up waits for, finds the non-empty lines and
    /// which bytes occur. When those are no whitespace but the newlines and no character beyond
    /// ASCII (as names.txt), the lines are the documents as they stand and every byte but a
    /// newline is a character of one; any other text is read again and trimmed.
    fn find(text: &str) -> Self {
        // The bytes go by blocks whose newlines are noted without a branch (a line break every
        // few bytes, as names.txt has, defeats a branch predictor), then turned into lines.
        const BLOCK: usize = 4096;
        let mut seen = [false; 256];
        let mut newlines = [0u32; BLOCK];
        let mut spans = Vec::new();
        let mut start = 0;
        for (block_index, block) in text.as_bytes().chunks(BLOCK).enumerate() {
            let offset = block_index * BLOCK;
            let mut count = 0;
            for (index, &byte) in block.iter().enumerate() {
                seen[usize::from(byte)] = true;
                // Overwritten by the next byte unless this one is a newline.
                newlines[count] = (offset + index) as u32;
                count += usize::from(byte == b'\n');
            }
            for &end in &newlines[..count] {
                if end > start {
                    spans.push(start..end);
                }
                start = end + 1;
            }
        }
        let whitespace = b"\t\x0b\x0c\r ".iter().any(|&byte| seen[usize::from(byte)]);
        if whitespace || seen[128..].contains(&true) {
            return Documents::trimmed(text);
        }
        let end = text.len() as u32;
        if end > start {
            spans.push(start..end);
        }
        let characters: String = (0..128u8)
            .filter(|&byte| byte != b'\n' && seen[usize::from(byte)])
            .map(char::from)
            .collect();
        Documents {
            spans,
            vocabulary: Tokenizer::from_documents([characters.as_str()]),
            crlf: false,
        }
    }

    /// The documents of any text: each line trimmed as [`str::trim`] trims it.
    fn trimmed(text: &str) -> Self {
        let base = text.as_ptr() as usize;
        let mut spans = Vec::new();
        let mut crlf = false;
        let documents = text
            .split_inclusive('\n')
            .inspect(|line| crlf |= line.ends_with("\r\n"))
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .inspect(|document| {
                let start = (document.as_ptr() as usize - base) as u32;
                spans.push(start..start + document.len() as u32);
            });
        let vocabulary = Tokenizer::from_documents(documents);
        Documents {
            spans,
            vocabulary,
            crlf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(text: &str) -> Corpus {
        Corpus::from_bytes(text.as_bytes().to_vec()).unwrap().0
    }

    #[test]
    fn documents_are_the_trimmed_non_blank_lines() {
        let corpus = corpus("emma\n\n  olivia \r\nava\n   \nmia");
        let documents: Vec<&str> = corpus.documents().collect();
        assert_eq!(documents, ["emma", "olivia", "ava", "mia"]);
    }

    #[test]
    fn a_plain_file_s_documents_are_its_non_empty_lines_and_its_bytes_their_vocabulary() {
        // By hand: no whitespace but the newlines, so nothing to trim; the empty lines (one
        // between, one at the end) hold no document; the vocabulary is the sorted letters.
        let names = corpus("emma\n\nava\nmia\n");
        assert_eq!(
            names.documents().collect::<Vec<_>>(),
            ["emma", "ava", "mia"]
        );
        assert_eq!(names.vocabulary().vocab(), "aeimv");
        let name = corpus("\nzoe");
        assert_eq!(name.documents().collect::<Vec<_>>(), ["zoe"]);
        assert_eq!(name.vocabulary().vocab(), "eoz");
    }

    #[test]
    fn a_plain_file_longer_than_a_block_keeps_the_lines_that_cross_blocks() {
        // Lines of 1 to 12 letters, some empty, over several blocks of 4,096 bytes: lines cross
        // the blocks' edges and newlines fall on them; str::lines is the oracle.
        let mut text = String::new();
        for index in 0..2_000usize {
            let length = index * 7 % 13;
            text.extend((0..length).map(|letter| char::from(b'a' + ((index + letter) % 26) as u8)));
            text.push('\n');
        }
        text.push_str("zz");
        assert!(text.len() > 3 * 4096, "{}", text.len());
        let expected: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
        let corpus = corpus(&text);
        assert_eq!(corpus.documents().collect::<Vec<_>>(), expected);
        assert_eq!(corpus.vocabulary().vocab(), "abcdefghijklmnopqrstuvwxyz");
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
    fn documents_longer_than_a_count_of_characters_are_counted_in_characters() {
        // By hand: of "abc", "éé" (2 characters in 4 bytes), "abcd" and "ééé", only "abcd" has
        // more than 3 characters; counting bytes would take "éé" and "ééé" too.
        assert_eq!(corpus("abc\néé\nabcd\nééé").count_longer_than(3), 1);
        assert_eq!(corpus("ab\nabcd\nabc\nabcde").count_longer_than(3), 2);
        assert_eq!(corpus("ab\nabcd").count_longer_than(0), 2);
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

    #[test]
    fn a_byte_order_mark_and_crlf_are_cleaned_and_said_once() {
        let (corpus, cleaned) =
            Corpus::from_bytes(b"\xef\xbb\xbfemma\r\nava\r\n".to_vec()).unwrap();
        assert_eq!(corpus.documents().collect::<Vec<_>>(), ["emma", "ava"]);
        let cleaned = cleaned.expect("a note");
        assert!(
            cleaned.contains("byte-order mark") && cleaned.contains("CRLF"),
            "{cleaned}"
        );
        assert_eq!(Corpus::from_bytes(b"emma\n".to_vec()).unwrap().1, None);
    }

    #[test]
    fn the_fingerprint_is_the_document_count_and_the_files_sha256() {
        let corpus = corpus("emma\n\nava");
        // `printf 'emma\n\nava' | sha256sum`
        let expected = "cdb6297095ad1e502d3a9e189a7a98039636b760f3fa9cace7d0424abb1750ae";
        assert_eq!(corpus.fingerprint().documents, 2);
        assert_eq!(corpus.fingerprint().sha256, expected);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any bytes are a corpus or one reason why not; a corpus's documents are the file's
        /// trimmed non-blank lines, whose characters are the vocabulary found with them and each
        /// tokenizable with it, and the long ones are those with more characters.
        #[test]
        fn any_bytes_load_or_are_refused_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            // Unicode whitespace (U+0085, U+3000) too, which trimming removes like a space.
            text in "[a-c \r\n\t\u{feff}\u{1b}\u{85}\u{3000}é]{0,60}",
            // A file with nothing to trim but its newlines, which is read by a shortcut.
            plain in "[a-c\n\u{1b}~]{0,60}",
        ) {
            for input in [bytes, text.into_bytes(), plain.into_bytes()] {
                let Ok((corpus, _)) = Corpus::from_bytes(input.clone()) else { continue };
                let text = String::from_utf8(input).unwrap();
                let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
                let expected: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                proptest::prop_assert_eq!(corpus.documents().collect::<Vec<_>>(), expected.clone());
                let longer = expected.iter().filter(|document| document.chars().count() > 2).count();
                proptest::prop_assert_eq!(corpus.count_longer_than(2), longer);
                let tokenizer = Tokenizer::from_documents(corpus.documents());
                proptest::prop_assert_eq!(corpus.vocabulary(), &tokenizer);
                proptest::prop_assert!(corpus.check_vocabulary(&tokenizer, Path::new("x")).is_ok());
                let mut tokens = Vec::new();
                for index in 0..corpus.len() {
                    corpus.encode_into(index, &tokenizer, &mut tokens);
                    proptest::prop_assert_eq!(tokens.len(), corpus.document(index).chars().count() + 2);
                }
            }
        }
    }
}
