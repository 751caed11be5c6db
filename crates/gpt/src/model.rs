//! microgpt's forward pass recorded on the tape, whole documents at a time, and its training step.

use ndarray::ArrayD;
use rayon::prelude::*;
use tape::{CustomOpId, Float, Gradients, Tape, TapeError, Var};

use crate::attention::CausalSelfAttention;
use crate::params::{LM_HEAD, WPE, WTE, layer_index};
use crate::{Adam, Config, LayerWeight, Params};

/// The epsilon inside RMSNorm's square root.
pub const RMS_EPSILON: f64 = 1e-5;

/// What recording a document needs besides the tape: the weights' handles and the fused ops.
struct Graph {
    config: Config,
    weights: Vec<Var>,
    attention: CustomOpId,
    /// `0..block_size`, the rows of `wpe` a document of any length reads.
    positions: Vec<usize>,
}

/// Documents per chunk of a batch. A batch of more is split into chunks of this many documents,
/// each recorded on its own tape (its own thread), and the chunks' gradients are added in chunk
/// order: the chunks do not depend on the number of threads, so neither do the results, bit for bit.
pub const CHUNK: usize = 8;

/// One tape with its own copy of the weights, the unit of work of one thread.
struct Worker<F: Float> {
    tape: Tape<F>,
    graph: Graph,
    gradients: Gradients<F>,
}

impl<F: Float> Worker<F> {
    fn new(config: Config, weights: impl Iterator<Item = ArrayD<F>>) -> Self {
        let mut tape = Tape::new();
        let weights = weights.map(|tensor| tape.parameter(tensor)).collect();
        let attention = tape.register(CausalSelfAttention {
            n_head: config.n_head,
        });
        let graph = Graph {
            config,
            weights,
            attention,
            positions: (0..config.block_size).collect(),
        };
        Worker {
            tape,
            graph,
            gradients: Gradients::new(),
        }
    }

    /// Records the sum of `documents`' losses, scaled by `scale`, and its gradients.
    fn record<T: AsRef<[usize]>>(&mut self, documents: &[T], scale: F) -> Result<Var, TapeError> {
        self.tape.clear();
        let mut total = None;
        for document in documents {
            let loss = self
                .graph
                .record_document(&mut self.tape, document.as_ref())?;
            total = Some(match total {
                None => loss,
                Some(sum) => self.tape.add(sum, loss)?,
            });
        }
        let total = total.expect("a chunk is not empty");
        let scaled = if scale == F::one() {
            total
        } else {
            self.tape.scale(total, scale)?
        };
        self.tape.backward_into(scaled, &mut self.gradients)?;
        Ok(scaled)
    }
}

/// A model being trained: its weights live on a tape as parameters.
///
/// A document is recorded as a handful of matrix ops over all its positions at once (`[n, n_embd]`
/// activations with a causal mask inside the fused attention op) rather than position by position;
/// the numbers are those of microgpt.py's token-by-token loop with its KV cache, because position `t`
/// attends to exactly the keys and values of positions `0..=t` in both.
///
/// A batch of more than [`CHUNK`] documents is spread over the cores (see [`CHUNK`]).
pub struct Model<F: Float> {
    names: Vec<String>,
    /// `workers[0]` holds the weights the optimizer updates; the others hold copies, refreshed
    /// before each batch that needs them.
    workers: Vec<Worker<F>>,
    /// The gradients of the last batch when it took more than one chunk (the chunks' sum, divided
    /// by the batch size); buffers kept across steps.
    chunked_gradients: Vec<ArrayD<F>>,
    /// Whether `chunked_gradients` holds the last batch's gradients.
    chunked: bool,
    /// Whether a loss (and so a gradient) has been computed.
    has_loss: bool,
}

impl<F: Float> Model<F> {
    /// A model that trains `params`.
    pub fn new(params: Params<F>) -> Self {
        let config = *params.config();
        let names = params.names().to_vec();
        let weights = params
            .tensors()
            .iter()
            .map(|tensor| tensor.clone().into_dyn());
        Model {
            names,
            workers: vec![Worker::new(config, weights)],
            chunked_gradients: Vec::new(),
            chunked: false,
            has_loss: false,
        }
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        &self.workers[0].graph.config
    }

    /// A copy of the current weights.
    pub fn params(&self) -> Params<F> {
        let main = &self.workers[0];
        let named = self
            .names
            .iter()
            .zip(&main.graph.weights)
            .map(|(name, &var)| {
                let matrix = main
                    .tape
                    .value(var)
                    .clone()
                    .into_dimensionality()
                    .expect("weights are matrices");
                (name.clone(), matrix)
            })
            .collect();
        Params::from_named(main.graph.config, named)
            .expect("the model's own tensors fit its config")
    }

    /// The mean loss of one document `[BOS, tokens.., BOS]` (see [`Model::batch_loss`]).
    pub fn loss(&mut self, tokens: &[usize]) -> Result<F, TapeError> {
        self.batch_loss(&[tokens])
    }

    /// Records the loss of a batch, the mean of its documents' losses, and computes its gradient with
    /// respect to every weight ([`Model::gradient`]). A document's loss is the mean over its first
    /// `n = min(block_size, len - 1)` positions of `-log p(next token)`; longer documents are
    /// truncated as microgpt.py does.
    pub fn batch_loss<T: AsRef<[usize]> + Sync>(
        &mut self,
        documents: &[T],
    ) -> Result<F, TapeError> {
        if documents.is_empty() {
            return Err(TapeError::shape(
                "batch_loss",
                "a batch needs at least one document",
            ));
        }
        self.has_loss = false;
        self.chunked = false;
        let inverse = F::from_f64(1.0 / documents.len() as f64);
        if documents.len() <= CHUNK {
            let worker = &mut self.workers[0];
            let loss = worker.record(documents, inverse)?;
            self.has_loss = true;
            return Ok(worker.tape.scalar(loss));
        }
        let chunks = documents.len().div_ceil(CHUNK);
        self.refresh_workers(chunks);
        // Each chunk's losses are summed unscaled; the mean is taken once, after the chunks' sum.
        let losses: Vec<Result<F, TapeError>> = self.workers[..chunks]
            .par_iter_mut()
            .zip(documents.par_chunks(CHUNK))
            .map(|(worker, chunk)| {
                let loss = worker.record(chunk, F::one())?;
                Ok(worker.tape.scalar(loss))
            })
            .collect();
        let mut total = F::zero();
        for loss in losses {
            total += loss?;
        }
        let (main, others) = self.workers.split_at(1);
        let main = &main[0];
        for (index, &var) in main.graph.weights.iter().enumerate() {
            let first = main.gradients.parameter(var);
            if self.chunked_gradients.len() <= index {
                self.chunked_gradients.push(first.clone());
            } else {
                self.chunked_gradients[index].assign(first);
            }
            let sum = &mut self.chunked_gradients[index];
            for worker in &others[..chunks - 1] {
                *sum += worker.gradients.parameter(worker.graph.weights[index]);
            }
            sum.mapv_inplace(|x| x * inverse);
        }
        self.chunked = true;
        self.has_loss = true;
        Ok(total * inverse)
    }

    /// Makes sure there are `count` workers, and copies the main worker's weights into the others.
    fn refresh_workers(&mut self, count: usize) {
        let (main, others) = self.workers.split_at_mut(1);
        let main = &main[0];
        for worker in others.iter_mut().take(count - 1) {
            for ((_, target), source) in worker.tape.parameters_mut().zip(main.tape.parameters()) {
                target.assign(main.tape.value(source));
            }
        }
        while self.workers.len() < count {
            let main = &self.workers[0];
            let weights = main
                .tape
                .parameters()
                .map(|var| main.tape.value(var).clone());
            let worker = Worker::new(main.graph.config, weights);
            self.workers.push(worker);
        }
    }

    /// The gradient of the last loss with respect to weight `index` (DESIGN.md's order).
    ///
    /// # Panics
    /// If no loss has been computed yet or `index` is out of range.
    pub fn gradient(&self, index: usize) -> &ArrayD<F> {
        assert!(self.has_loss, "gradient() before any loss was computed");
        if self.chunked {
            return &self.chunked_gradients[index];
        }
        let main = &self.workers[0];
        main.gradients.parameter(main.graph.weights[index])
    }

    /// Applies one Adam update with the gradients of the last loss, at the learning rate of step
    /// `adam.state.step` of a run of `num_steps`.
    pub fn apply_adam(&mut self, adam: &mut Adam<F>, num_steps: usize) {
        let learning_rate = adam.settings.learning_rate(adam.state.step, num_steps);
        let main = &mut self.workers[0];
        let chunked = self.chunked.then_some(self.chunked_gradients.as_slice());
        let gradients = &main.gradients;
        let pairs = main
            .tape
            .parameters_mut()
            .enumerate()
            .map(|(index, (var, value))| {
                let gradient = match chunked {
                    Some(sums) => &sums[index],
                    None => gradients.parameter(var),
                };
                (
                    value.as_slice_mut().expect("weights are contiguous"),
                    gradient.as_slice().expect("gradients are contiguous"),
                )
            });
        adam.update(learning_rate, pairs);
    }

    /// The summed negative log-likelihood of a document's predicted tokens and how many there are
    /// (`min(block_size, len - 1)`), computed without recording anything for a backward pass.
    pub fn document_nll(&mut self, tokens: &[usize]) -> Result<(F, usize), TapeError> {
        self.has_loss = false;
        self.chunked = false;
        let Worker { tape, graph, .. } = &mut self.workers[0];
        tape.clear();
        let loss = tape.without_grad(|tape| graph.record_document(tape, tokens))?;
        let predicted = graph.config.block_size.min(tokens.len() - 1);
        Ok((tape.scalar(loss) * F::from_f64(predicted as f64), predicted))
    }
}

impl Graph {
    /// Records one document's loss on the tape.
    fn record_document<F: Float>(
        &self,
        tape: &mut Tape<F>,
        tokens: &[usize],
    ) -> Result<Var, TapeError> {
        if tokens.len() < 2 {
            let detail = format!(
                "a document needs at least 2 tokens (BOS, .., BOS), got {}",
                tokens.len()
            );
            return Err(TapeError::shape("loss", detail));
        }
        let n = self.config.block_size.min(tokens.len() - 1);
        let (inputs, targets) = (&tokens[..n], &tokens[1..=n]);
        let epsilon = F::from_f64(RMS_EPSILON);
        let Graph {
            weights,
            positions,
            attention,
            config,
        } = self;
        let token_embeddings = tape.gather(weights[WTE], inputs)?;
        let position_embeddings = tape.gather(weights[WPE], &positions[..n])?;
        let sum = tape.add(token_embeddings, position_embeddings)?;
        let mut x = tape.rms_norm(sum, epsilon)?;
        for layer in 0..config.n_layer {
            let weight = |which| weights[layer_index(layer, which)];
            let residual = x;
            let normed = tape.rms_norm(x, epsilon)?;
            let projections = [
                weight(LayerWeight::Query),
                weight(LayerWeight::Key),
                weight(LayerWeight::Value),
            ];
            let qkv = tape.linear_stacked(normed, &projections)?;
            let attended = tape.custom(*attention, &[qkv])?;
            let projected = tape.linear(attended, weight(LayerWeight::Output))?;
            x = tape.add(projected, residual)?;

            let residual = x;
            let normed = tape.rms_norm(x, epsilon)?;
            let hidden = tape.linear(normed, weight(LayerWeight::Expand))?;
            let hidden = tape.relu(hidden)?;
            let contracted = tape.linear(hidden, weight(LayerWeight::Contract))?;
            x = tape.add(contracted, residual)?;
        }
        let logits = tape.linear(x, weights[LM_HEAD])?;
        tape.softmax_cross_entropy(logits, targets)
    }
}
