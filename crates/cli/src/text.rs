//! Running text (`--format text`, nanoGPT's shakespeare_char): the whole file as one token
//! stream, trained on windows of `block_size + 1` characters.
//!
//! The last `val_fraction` of the characters are held out. Training window `i` starts at a
//! position drawn from its own generator (seeded by the run's seed and `i`), so a run resumed at
//! any step draws the windows the uninterrupted run draws. Validation windows tile the held-out
//! characters without overlap, in order.

use gpt::{Randomness, Tokenizer};

use crate::error::{CliError, Result};
use crate::rng::name_stream;

/// Keeps the window draws apart from the name draws of the same seed.
const WINDOW_STREAM: u64 = 0x7465_7874; // "text"

/// A text's tokens and its split.
pub struct Text {
    tokens: Vec<usize>,
    train_len: usize,
    window: usize,
    seed: u64,
}

impl Text {
    /// `text` tokenized whole (no BOS), with windows of `block_size + 1` tokens.
    pub fn new(
        text: &str,
        tokenizer: &Tokenizer,
        block_size: usize,
        val_fraction: f64,
        seed: u64,
    ) -> Result<Self> {
        let tokens = tokenizer.encode_prefix(text).map_err(|error| {
            CliError::input(format!(
                "the data: {error}; the model's vocabulary is fixed by its checkpoint"
            ))
        })?;
        let window = block_size + 1;
        let held_out = (tokens.len() as f64 * val_fraction) as usize;
        let train_len = tokens.len() - held_out;
        if train_len < window {
            return Err(CliError::input(format!(
                "--format text needs at least block_size + 1 = {window} training characters; the data has {train_len}"
            )));
        }
        Ok(Text {
            tokens,
            train_len,
            window,
            seed,
        })
    }

    /// The number of characters.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Where training window `index` starts.
    pub fn train_start(&self, index: usize) -> usize {
        let mut rng = name_stream(self.seed ^ WINDOW_STREAM, index);
        let starts = self.train_len - self.window + 1;
        ((rng.uniform() * starts as f64) as usize).min(starts - 1)
    }

    /// Training window `index` into a reused buffer.
    pub fn train_window_into(&self, index: usize, tokens: &mut Vec<usize>) {
        let start = self.train_start(index);
        tokens.clear();
        tokens.extend_from_slice(&self.tokens[start..start + self.window]);
    }

    /// The number of validation windows.
    pub fn validation_windows(&self) -> usize {
        (self.tokens.len() - self.train_len) / self.window
    }

    /// Validation window `index` into a reused buffer.
    pub fn validation_window_into(&self, index: usize, tokens: &mut Vec<usize>) {
        let start = self.train_len + index * self.window;
        tokens.clear();
        tokens.extend_from_slice(&self.tokens[start..start + self.window]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_block_plus_one_characters_of_the_text_in_their_split() {
        let text: String = "to be, or not to be: that is the question.\n".repeat(5);
        let tokenizer = Tokenizer::from_documents([text.as_str()]);
        let corpus = Text::new(&text, &tokenizer, 8, 0.2, 3).unwrap();
        let chars: Vec<char> = text.chars().collect();
        let train_len = chars.len() - (chars.len() as f64 * 0.2) as usize;
        let mut tokens = Vec::new();
        let mut starts = std::collections::BTreeSet::new();
        for index in 0..3000 {
            corpus.train_window_into(index, &mut tokens);
            let start = corpus.train_start(index);
            starts.insert(start);
            // Brute force: the window is the text's characters from its start, all in training.
            assert!(start + 9 <= train_len);
            assert_eq!(
                tokenizer.decode(&tokens),
                chars[start..start + 9].iter().collect::<String>()
            );
        }
        // Every start is reachable, the first and the last included.
        assert_eq!(starts.len(), train_len - 9 + 1);
        let windows = corpus.validation_windows();
        assert_eq!(windows, (chars.len() - train_len) / 9);
        for index in 0..windows {
            corpus.validation_window_into(index, &mut tokens);
            let start = train_len + index * 9;
            assert_eq!(
                tokenizer.decode(&tokens),
                chars[start..start + 9].iter().collect::<String>()
            );
        }
    }

    #[test]
    fn a_text_shorter_than_a_window_is_refused() {
        let tokenizer = Tokenizer::from_documents(["abc"]);
        let error = Text::new("abc", &tokenizer, 8, 0.0, 1).err().unwrap();
        assert!(
            error.to_string().contains("at least block_size + 1 = 9"),
            "{error}"
        );
    }
}
