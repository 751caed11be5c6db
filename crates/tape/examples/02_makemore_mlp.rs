//! Bengio et al.'s MLP language model (2003) on names, as in Karpathy's makemore: each character is
//! predicted from the three before it (padded with the boundary token `.`), through a learned
//! 10-dimensional embedding of each, a hidden layer of 200 tanh units and a softmax over the
//! 27 tokens. Shows broadcasting (the biases), `embedding` of a `[batch, 3]` id array, `reshape`,
//! `tanh`, `cross_entropy`, a no-grad evaluation, and minibatch training with the crate's AdamW
//! (as makemore trains) and a learning rate decayed by the loop.
//!
//! A tenth of the names is held out; the example prints the loss on them at the end (Karpathy's
//! lecture reaches about 2.17 with this model). Run it with
//! `cargo run --release -p tape --example 02_makemore_mlp` (it reads `data/names.txt`).

use ndarray::{Array1, Array2, ArrayView2};
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::path::Path;
use tape::optim::{AdamConfig, AdamW, Optimizer};

use tape::{Gradients, NamedParameters, StateDictError, Strictness, Tape, TapeError, Var};

/// Characters each prediction sees.
pub const CONTEXT: usize = 3;
const EMBEDDING: usize = 10;
const HIDDEN: usize = 200;
const BATCH: usize = 32;

/// Every (context, next character) pair of a list of names, as token ids (0 is the boundary `.`).
pub struct Examples {
    /// `[examples, CONTEXT]`.
    pub contexts: Array2<usize>,
    /// The next character of each context.
    pub targets: Vec<i64>,
}

impl Examples {
    /// The pairs of `names`, each name read as `...name.`, under the tokeniser `token`.
    pub fn new(names: &[&str], token: impl Fn(char) -> usize) -> Self {
        let (mut contexts, mut targets) = (Vec::new(), Vec::new());
        for name in names {
            let mut window = [0; CONTEXT];
            for next in name.chars().map(&token).chain([0]) {
                contexts.extend_from_slice(&window);
                targets.push(next as i64);
                window.rotate_left(1);
                window[CONTEXT - 1] = next;
            }
        }
        let contexts = Array2::from_shape_vec((targets.len(), CONTEXT), contexts)
            .expect("CONTEXT ids per target");
        Examples { contexts, targets }
    }
}

/// The MLP's parameters on a tape.
pub struct Mlp {
    embedding: Var,
    hidden: Var,
    hidden_bias: Var,
    output: Var,
    output_bias: Var,
    /// The parameters' names in a saved file, as a PyTorch module with layers `embedding`,
    /// `hidden` and `output` would name them.
    names: NamedParameters,
}

impl Mlp {
    /// Random parameters for `vocab_size` tokens, scaled so that tanh starts far from saturation
    /// and the first predictions are nearly uniform.
    pub fn new(tape: &mut Tape<f32>, vocab_size: usize, rng: &mut Xoshiro256PlusPlus) -> Self {
        let normal = Normal::new(0.0f32, 1.0).expect("a valid standard deviation");
        let mut random = |shape: (usize, usize), scale: f32| {
            Array2::from_shape_fn(shape, |_| scale * normal.sample(rng))
        };
        let fan_in = (CONTEXT * EMBEDDING) as f32;
        let mut names = NamedParameters::new();
        let mut named = |name: &str, value: Array2<f32>| {
            names.parameter(tape, name, value).expect("distinct names")
        };
        let embedding = named("embedding.weight", random((vocab_size, EMBEDDING), 1.0));
        let scale = 5.0 / 3.0 / fan_in.sqrt();
        let hidden = named(
            "hidden.weight",
            random((HIDDEN, CONTEXT * EMBEDDING), scale),
        );
        let output = named("output.weight", random((vocab_size, HIDDEN), 0.01));
        let mut bias = |name: &str, len: usize| {
            names
                .parameter(tape, name, Array1::from_elem(len, 0.0f32))
                .expect("distinct names")
        };
        let hidden_bias = bias("hidden.bias", HIDDEN);
        let output_bias = bias("output.bias", vocab_size);
        Mlp {
            embedding,
            hidden,
            hidden_bias,
            output,
            output_bias,
            names,
        }
    }

    /// Saves the weights by name to a safetensors file (which `safetensors.torch.load_file`
    /// reads, named as a PyTorch module's `state_dict` would be).
    pub fn save(&self, tape: &Tape<f32>, path: &Path) -> Result<(), StateDictError> {
        self.names.save(tape, path)
    }

    /// Loads weights saved by [`Mlp::save`] into this model's parameters, by name; every name
    /// must be there with its shape.
    pub fn load(&self, tape: &mut Tape<f32>, path: &Path) -> Result<(), StateDictError> {
        self.names.load(tape, path, Strictness::Strict).map(|_| ())
    }

    /// The mean cross-entropy of predicting `targets` from `contexts` (`[rows, CONTEXT]`).
    pub fn loss(
        &self,
        tape: &mut Tape<f32>,
        contexts: ArrayView2<'_, usize>,
        targets: &[i64],
    ) -> Result<Var, TapeError> {
        let rows = contexts.nrows();
        let embedded = tape.embedding(self.embedding, &contexts)?; // [rows, 3, 10]
        let flat = tape.reshape(embedded, &[rows, CONTEXT * EMBEDDING])?;
        let hidden = tape.linear(flat, self.hidden)?;
        let hidden = tape.add(hidden, self.hidden_bias)?; // [rows, 200] + [200]
        let hidden = tape.tanh(hidden)?;
        let logits = tape.linear(hidden, self.output)?;
        let logits = tape.add(logits, self.output_bias)?;
        tape.cross_entropy(logits, targets, None)
    }

    /// One step of `optimizer` at learning rate `lr` on `BATCH` random examples; returns the
    /// batch's loss.
    #[allow(clippy::too_many_arguments)] // the buffers a step reuses, each its own
    pub fn train_step(
        &self,
        tape: &mut Tape<f32>,
        gradients: &mut Gradients<f32>,
        optimizer: &mut impl Optimizer<f32>,
        examples: &Examples,
        rng: &mut Xoshiro256PlusPlus,
        lr: f64,
        batch: &mut Batch,
    ) -> Result<f32, TapeError> {
        batch.draw(examples, rng);
        tape.clear();
        let loss = self.loss(tape, batch.contexts.view(), &batch.targets)?;
        tape.backward_into(loss, gradients)?;
        optimizer.step(tape, gradients, lr)?;
        Ok(tape.scalar(loss))
    }

    /// The mean loss over all of `examples`, computed without recording gradients.
    pub fn evaluate(&self, tape: &mut Tape<f32>, examples: &Examples) -> Result<f32, TapeError> {
        tape.clear();
        let loss =
            tape.without_grad(|tape| self.loss(tape, examples.contexts.view(), &examples.targets))?;
        Ok(tape.scalar(loss))
    }
}

/// A minibatch's buffers, reused every step.
pub struct Batch {
    contexts: Array2<usize>,
    targets: Vec<i64>,
}

impl Batch {
    /// Buffers for `BATCH` examples.
    pub fn new() -> Self {
        Batch {
            contexts: Array2::zeros((BATCH, CONTEXT)),
            targets: vec![0; BATCH],
        }
    }

    fn draw(&mut self, examples: &Examples, rng: &mut Xoshiro256PlusPlus) {
        for (row, target) in self.contexts.rows_mut().into_iter().zip(&mut self.targets) {
            let index = rng.random_range(0..examples.targets.len());
            row.into_iter()
                .zip(examples.contexts.row(index))
                .for_each(|(slot, &id)| *slot = id);
            *target = examples.targets[index];
        }
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

/// The result of a run: the mean loss on the training names and on the held-out tenth.
pub struct Losses {
    /// Over every training example.
    pub train: f32,
    /// Over every held-out example.
    pub validation: f32,
    /// Over every held-out example, by a fresh model that loaded the saved weights.
    pub validation_reloaded: f32,
}

/// makemore's AdamW settings: betas 0.9 and 0.99, eps 1e-8, weight decay 0.01.
pub fn optimizer_config() -> AdamConfig {
    AdamConfig {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.01,
    }
}

/// The learning rate of step `step` of `steps`: 0.002, and a tenth of it for the second half
/// (Karpathy's step decay, at a rate that suits Adam).
pub fn learning_rate(step: usize, steps: usize) -> f64 {
    if step < steps / 2 { 0.002 } else { 0.0002 }
}

/// Trains the MLP for `steps` steps on the names of `text` (one a line), holding out a tenth of
/// them, and prints the batch loss every 10,000 steps; then saves its weights to `weights` and
/// evaluates them again in a fresh model that loads them.
pub fn train_and_evaluate(
    text: &str,
    steps: usize,
    weights: &Path,
) -> Result<Losses, Box<dyn std::error::Error>> {
    let mut names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut characters: Vec<char> = names.iter().flat_map(|name| name.chars()).collect();
    characters.sort_unstable();
    characters.dedup();
    // Token 0 is the boundary; the characters follow in sorted order.
    let token = |c: char| {
        1 + characters
            .binary_search(&c)
            .expect("a character of the data")
    };

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    names.shuffle(&mut rng);
    let held_out = names.len() / 10;
    let (train, validation) = names.split_at(names.len() - held_out);
    let (train, validation) = (
        Examples::new(train, token),
        Examples::new(validation, token),
    );

    let mut tape = Tape::<f32>::new();
    let model = Mlp::new(&mut tape, characters.len() + 1, &mut rng);
    let mut gradients = Gradients::new();
    let mut optimizer = AdamW::new(optimizer_config());
    let mut batch = Batch::new();
    for step in 0..steps {
        let lr = learning_rate(step, steps);
        let loss = model.train_step(
            &mut tape,
            &mut gradients,
            &mut optimizer,
            &train,
            &mut rng,
            lr,
            &mut batch,
        )?;
        if step % 10_000 == 0 {
            println!("step {step:6} | batch loss {loss:.4}");
        }
    }
    model.save(&tape, weights)?;
    let mut fresh_tape = Tape::<f32>::new();
    let fresh = Mlp::new(&mut fresh_tape, characters.len() + 1, &mut rng);
    fresh.load(&mut fresh_tape, weights)?;
    Ok(Losses {
        train: model.evaluate(&mut tape, &train)?,
        validation: model.evaluate(&mut tape, &validation)?,
        validation_reloaded: fresh.evaluate(&mut fresh_tape, &validation)?,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/names.txt");
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("{path}: {error} (copy names.txt into data/)"))?;
    // Under target/, which git ignores.
    let weights = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/makemore_mlp.safetensors"
    ));
    let losses = train_and_evaluate(&text, 100_000, weights)?;
    println!("train loss {:.4}", losses.train);
    println!("val loss {:.4}", losses.validation);
    println!(
        "val loss {:.4} again after loading {}",
        losses.validation_reloaded,
        weights.display()
    );
    Ok(())
}
