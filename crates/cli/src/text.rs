//! Running text (`--format text`, nanoGPT's shakespeare_char): the whole file as one token
//! stream, trained on windows of `block_size + 1` characters.
//!
//! The last `val_fraction` of the characters are held out. Training window `i` starts at a
//! position drawn from its own generator (seeded by the run's seed and `i`), so a run resumed at
//! any step draws the windows the uninterrupted run draws. Validation windows tile the held-out
//! characters without overlap, in order, as `eval` tiles the whole of its file.

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
        let tokens = encode(text, tokenizer)?;
        let window = window_len(block_size);
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

    /// The held-out characters, as windows.
    pub fn validation(&self) -> Tiling<'_> {
        Tiling {
            tokens: &self.tokens[self.train_len..],
            window: self.window,
        }
    }
}

/// `text` as tokens without BOS: running text has no documents to start and end.
pub fn encode(text: &str, tokenizer: &Tokenizer) -> Result<Vec<usize>> {
    tokenizer.encode_prefix(text).map_err(|error| {
        CliError::input(format!(
            "the data: {error}; the model's vocabulary is fixed by its checkpoint"
        ))
    })
}

/// The tokens of a window: one for each of the `block_size` positions, and the one the last
/// position predicts.
pub fn window_len(block_size: usize) -> usize {
    block_size + 1
}

/// Windows of `block_size + 1` tokens that tile tokens without overlap, in order; a tail shorter
/// than a window is not scored. Each window predicts `block_size` tokens.
pub struct Tiling<'a> {
    tokens: &'a [usize],
    window: usize,
}

impl<'a> Tiling<'a> {
    /// The whole of `tokens`, cut into windows for a model of this block size.
    pub fn new(tokens: &'a [usize], block_size: usize) -> Self {
        Tiling {
            tokens,
            window: window_len(block_size),
        }
    }

    /// The number of windows.
    pub fn len(&self) -> usize {
        self.tokens.len() / self.window
    }

    /// Window `index` into a reused buffer.
    pub fn window_into(&self, index: usize, tokens: &mut Vec<usize>) {
        let start = index * self.window;
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
        let validation = corpus.validation();
        let windows = validation.len();
        assert_eq!(windows, (chars.len() - train_len) / 9);
        for index in 0..windows {
            validation.window_into(index, &mut tokens);
            let start = train_len + index * 9;
            assert_eq!(
                tokenizer.decode(&tokens),
                chars[start..start + 9].iter().collect::<String>()
            );
        }
    }

    #[test]
    fn a_tiling_cuts_every_whole_window_from_the_start_and_leaves_the_tail() {
        let tokens: Vec<usize> = (0..23).collect();
        let tiling = Tiling::new(&tokens, 4);
        // By hand: 23 tokens make 4 windows of 5, and 3 tokens too few for a fifth.
        assert_eq!(tiling.len(), 4);
        let mut window = Vec::new();
        for index in 0..4 {
            tiling.window_into(index, &mut window);
            let start = 5 * index;
            assert_eq!(window, (start..start + 5).collect::<Vec<_>>());
        }
        assert_eq!(Tiling::new(&tokens[..4], 4).len(), 0);
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
