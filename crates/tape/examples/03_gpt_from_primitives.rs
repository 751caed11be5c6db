//! microgpt's model written with the tape's public primitive ops alone: no custom op, no fused op.
//! Embeddings are row lookups, attention is `matmul`, `masked_fill` with a causal mask and
//! `softmax_axis` over heads laid out as `[heads, time, head_dim]`, the loss is `cross_entropy`.
//! The workspace's `tests/gpt_from_primitives.rs` checks that this model's f64 loss and every
//! gradient equal those of the `gpt` crate's fused model on the same weights, which is what shows
//! the library can express the project's own model.
//!
//! It trains the seed's configuration (1 layer, n_embd 16, 4 heads, block 8) for a few hundred
//! steps of the crate's Adam, with microgpt.py's settings, on `data/names.txt`, a batch of 8 names
//! a step, and prints the loss as it falls.
//! Run it with `cargo run --release -p tape --example 03_gpt_from_primitives`.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Normal};
use tape::optim::{Adam, AdamConfig, Optimizer};
use tape::{Float, Gradients, Tape, TapeError, Var};

/// The epsilon inside RMSNorm's square root, as microgpt.py's.
pub const RMS_EPSILON: f64 = 1e-5;

/// The model's sizes (microgpt.py's names).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Characters plus the BOS token.
    pub vocab_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Attention heads; `n_embd / n_head` is the head size.
    pub n_head: usize,
    /// The most positions a document is trained on.
    pub block_size: usize,
}

impl Config {
    /// The `[rows, columns]` of every weight matrix in microgpt's order: `wte`, `wpe`, `lm_head`,
    /// then per layer the query, key, value and output projections and the two MLP matrices.
    pub fn shapes(&self) -> Vec<[usize; 2]> {
        let (embd, vocab) = (self.n_embd, self.vocab_size);
        let mut shapes = vec![[vocab, embd], [self.block_size, embd], [vocab, embd]];
        for _ in 0..self.n_layer {
            let layer = [[embd, embd]; 4].into_iter();
            shapes.extend(layer.chain([[4 * embd, embd], [embd, 4 * embd]]));
        }
        shapes
    }
}

/// One block's weights on the tape.
pub struct Layer {
    query: Var,
    key: Var,
    value: Var,
    output: Var,
    expand: Var,
    contract: Var,
}

/// The model's weights on a tape, as parameters.
pub struct Gpt {
    config: Config,
    token_embedding: Var,
    position_embedding: Var,
    lm_head: Var,
    layers: Vec<Layer>,
}

impl Gpt {
    /// Puts `weights` (in [`Config::shapes`]' order) on `tape` as its parameters.
    pub fn new<F: Float>(tape: &mut Tape<F>, config: Config, weights: Vec<Array2<F>>) -> Self {
        let mut parameters = weights.into_iter().map(|weight| tape.parameter(weight));
        let mut next = || parameters.next().expect("one weight per shape");
        let (token_embedding, position_embedding, lm_head) = (next(), next(), next());
        let layers = (0..config.n_layer)
            .map(|_| Layer {
                query: next(),
                key: next(),
                value: next(),
                output: next(),
                expand: next(),
                contract: next(),
            })
            .collect();
        Gpt {
            config,
            token_embedding,
            position_embedding,
            lm_head,
            layers,
        }
    }

    /// The mean loss of predicting each next token of `tokens` (BOS, characters, BOS) from the ones
    /// before it, over the first `block_size` predictions.
    pub fn document_loss<F: Float>(
        &self,
        tape: &mut Tape<F>,
        tokens: &[usize],
    ) -> Result<Var, TapeError> {
        let Config { n_embd, n_head, .. } = self.config;
        let head_dim = n_embd / n_head;
        let time = (tokens.len() - 1).min(self.config.block_size);
        let epsilon = F::from_f64(RMS_EPSILON);
        let positions: Vec<usize> = (0..time).collect();

        let tokens_in = tape.gather(self.token_embedding, &tokens[..time])?;
        let positions_in = tape.gather(self.position_embedding, &positions)?;
        let sum = tape.add(tokens_in, positions_in)?;
        let mut x = tape.rms_norm(sum, None, epsilon)?;
        let causal = tape.causal_mask(time);
        for layer in &self.layers {
            let residual = x;
            let normed = tape.rms_norm(x, None, epsilon)?;
            // [time, n_embd] -> [heads, time, head_dim]: each head attends on its own.
            let mut heads = |weight| -> Result<Var, TapeError> {
                let projected = tape.linear(normed, weight)?;
                let split = tape.reshape(projected, &[time, n_head, head_dim])?;
                tape.transpose(split, 0, 1)
            };
            let (q, k, v) = (heads(layer.query)?, heads(layer.key)?, heads(layer.value)?);
            let keys = tape.transpose(k, 1, 2)?;
            let scores = tape.matmul(q, keys)?;
            let scores = tape.scale(scores, F::from_f64(1.0 / (head_dim as f64).sqrt()))?;
            let scores = tape.masked_fill(scores, causal, F::neg_infinity())?;
            let weights = tape.softmax_axis(scores, 2)?;
            let mixed = tape.matmul(weights, v)?;
            let merged = tape.transpose(mixed, 0, 1)?;
            let merged = tape.reshape(merged, &[time, n_embd])?;
            let projected = tape.linear(merged, layer.output)?;
            x = tape.add(projected, residual)?;

            let residual = x;
            let normed = tape.rms_norm(x, None, epsilon)?;
            let hidden = tape.linear(normed, layer.expand)?;
            let hidden = tape.relu(hidden)?;
            let contracted = tape.linear(hidden, layer.contract)?;
            x = tape.add(contracted, residual)?;
        }
        let logits = tape.linear(x, self.lm_head)?;
        let targets: Vec<i64> = tokens[1..=time].iter().map(|&t| t as i64).collect();
        tape.cross_entropy(logits, &targets, None)
    }

    /// Every weight's handle in [`Config::shapes`]' order.
    pub fn weights(&self) -> Vec<Var> {
        let mut weights = vec![self.token_embedding, self.position_embedding, self.lm_head];
        for layer in &self.layers {
            weights.extend([
                layer.query,
                layer.key,
                layer.value,
                layer.output,
                layer.expand,
                layer.contract,
            ]);
        }
        weights
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/names.txt");
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("{path}: {error} (copy names.txt into data/)"))?;
    let mut names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut characters: Vec<char> = names.iter().flat_map(|name| name.chars()).collect();
    characters.sort_unstable();
    characters.dedup();
    let bos = characters.len();
    let encode = |name: &str| -> Vec<usize> {
        let letters = name.chars().map(|c| characters.binary_search(&c).unwrap());
        std::iter::once(bos).chain(letters).chain([bos]).collect()
    };

    let config = Config {
        vocab_size: bos + 1,
        n_layer: 1,
        n_embd: 16,
        n_head: 4,
        block_size: 8,
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    names.shuffle(&mut rng);
    let normal = Normal::new(0.0, 0.08)?;
    let weights = config
        .shapes()
        .into_iter()
        .map(|[rows, columns]| Array2::from_shape_fn((rows, columns), |_| normal.sample(&mut rng)))
        .collect();
    let mut tape = Tape::<f64>::new();
    let model = Gpt::new(&mut tape, config, weights);
    // microgpt.py's Adam: betas 0.85 and 0.99, no weight decay, the rate decayed linearly below.
    let mut adam = Adam::new(AdamConfig {
        beta1: 0.85,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
    });

    let (steps, batch) = (300, 8);
    let mut gradients = Gradients::new();
    for step in 0..steps {
        tape.clear();
        let mut total = None;
        for name in names.iter().cycle().skip(step * batch).take(batch) {
            let loss = model.document_loss(&mut tape, &encode(name))?;
            total = Some(match total {
                None => loss,
                Some(sum) => tape.add(sum, loss)?,
            });
        }
        let loss = tape.scale(total.expect("a batch has names"), 1.0 / batch as f64)?;
        tape.backward_into(loss, &mut gradients)?;
        let lr = 0.01 * (1.0 - step as f64 / steps as f64);
        adam.step(&mut tape, &gradients, lr)?;
        if step % 50 == 0 || step == steps - 1 {
            println!("step {:4} | loss {:.4}", step + 1, tape.scalar(loss));
        }
    }
    Ok(())
}
