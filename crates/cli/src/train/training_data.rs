//! What a run trains and validates on: documents (one a line) or windows of running text.

use gpt::Tokenizer;

use crate::corpus::Corpus;
use crate::text::Text;

use super::validation::Validation;

/// The data, its vocabulary and its split.
pub struct TrainingData {
    pub corpus: Corpus,
    /// The corpus as running text (`--format text`), or `None` for documents.
    pub text: Option<Text>,
    pub tokenizer: Tokenizer,
    /// Documents before the held-out ones (unused for text, which splits its characters).
    pub train_size: usize,
}

impl TrainingData {
    /// Training item `index` (document `index` modulo the split, or window `index`) into a buffer.
    pub fn train_item_into(&self, index: usize, tokens: &mut Vec<usize>) {
        match &self.text {
            Some(text) => text.train_window_into(index, tokens),
            None => self
                .corpus
                .encode_into(index % self.train_size, &self.tokenizer, tokens),
        }
    }

    /// Validation item `index` (a held-out document, or window) into a buffer.
    pub fn held_out_into(&self, index: usize, tokens: &mut Vec<usize>) {
        match &self.text {
            Some(text) => text.validation().window_into(index, tokens),
            None => self.corpus.encode_into(index, &self.tokenizer, tokens),
        }
    }

    /// The held-out items, the periodic evaluations scoring the first `eval_docs`.
    pub fn validation(&self, eval_docs: usize) -> Validation {
        match &self.text {
            Some(text) => Validation::new(0, text.validation().len(), eval_docs),
            None => Validation::new(self.train_size, self.corpus.len(), eval_docs),
        }
    }
}
