//! microgpt's forward pass recorded on the tape, whole documents at a time, and its training step.

use std::fmt;
use std::str::FromStr;

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use tape::{CustomOpId, DataParallel, Float, Tape, TapeError, Tensor, Var};

use crate::attention::CausalSelfAttention;
use crate::model_error::check_documents;
use crate::params::{LM_HEAD, WPE, WTE, layer_index};
use crate::{Adam, Config, LayerWeight, ModelError, Params};

/// The epsilon inside RMSNorm's square root.
pub const RMS_EPSILON: f64 = 1e-5;

/// What recording a chunk of documents needs besides the tape: the weights' handles and the fused
/// ops.
struct Graph {
    config: Config,
    weights: Vec<Var>,
    attention: CustomOpId,
}

/// Dropout of a training step (`--dropout`), as nanoGPT's residual dropout: the output of each
/// attention projection and of each MLP is dropped with probability `p` (inverted dropout, see
/// [`Tape::dropout`]) before it joins the residual stream. The fused attention op has no dropout
/// of its weights, and evaluation never drops anything.
///
/// The masks of chunk `c` (see [`CHUNK`]) are drawn from a generator seeded with `seed + c`, so
/// they do not depend on the number of threads; the caller gives each step its own `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The drop probability, in `[0, 1)`; 0 records no dropout at all.
    pub p: f64,
    /// The step's seed.
    pub seed: u64,
}

/// How a batch's loss averages over its documents' predicted tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchMean {
    /// The mean of the documents' mean losses: every document weighs the same, however long.
    /// microgpt.py trains on one document a step, and this is its loss for any batch.
    #[default]
    Documents,
    /// The mean over all the batch's predicted tokens, as PyTorch's `cross_entropy` over a padded
    /// batch gives it (makemore, nanoGPT): a document weighs as many tokens as it predicts. It is
    /// the quantity the validation loss reports, so training on it aims at what is measured.
    Tokens,
}

impl BatchMean {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            BatchMean::Documents => "documents",
            BatchMean::Tokens => "tokens",
        }
    }
}

impl fmt::Display for BatchMean {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`BatchMean`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown batch mean {0:?}: expected documents or tokens")]
pub struct ParseBatchMeanError(pub String);

impl FromStr for BatchMean {
    type Err = ParseBatchMeanError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [BatchMean::Documents, BatchMean::Tokens]
            .into_iter()
            .find(|mean| mean.name() == name)
            .ok_or_else(|| ParseBatchMeanError(name.to_string()))
    }
}

/// Documents per chunk of a batch. A chunk's documents are laid end to end and recorded as one
/// sequence of rows, so each weight matrix is read once per chunk rather than once per document; a
/// batch of more is split into chunks of this many documents, each recorded on its own tape (its
/// own thread), and the chunks' gradients are added in chunk order: the chunks do not depend on the
/// number of threads, so neither do the results, bit for bit.
pub const CHUNK: usize = 8;

/// A chunk's documents laid end to end: for each row (a predicted position of a document), the
/// token it reads, its position in its document and the token it predicts. Buffers kept across
/// steps.
#[derive(Default)]
struct Rows {
    inputs: Vec<usize>,
    positions: Vec<usize>,
    targets: Vec<usize>,
    /// Each document's number of rows, [`Config::predicted_positions`].
    lengths: Vec<usize>,
}

impl Rows {
    /// Lays `documents` end to end, each truncated to its first `block_size` predictions as
    /// microgpt.py does. The documents have passed [`check_documents`].
    fn fill<T: AsRef<[usize]>>(&mut self, documents: &[T], config: &Config) {
        self.inputs.clear();
        self.positions.clear();
        self.targets.clear();
        self.lengths.clear();
        for tokens in documents {
            let tokens = tokens.as_ref();
            let n = config.predicted_positions(tokens.len());
            self.inputs.extend_from_slice(&tokens[..n]);
            self.positions.extend(0..n);
            self.targets.extend_from_slice(&tokens[1..=n]);
            self.lengths.push(n);
        }
    }
}

/// What recording on one tape needs besides the tape: the weights' handles on it, its fused op
/// and buffers kept across steps. Every tape of the model's [`DataParallel`] has one.
struct Worker<F: Float> {
    graph: Graph,
    rows: Rows,
    /// Each document's summed negative log-likelihood from the last [`Worker::nll`].
    nlls: Vec<F>,
}

impl<F: Float> Worker<F> {
    /// The worker of `tape`, whose parameters are the weights in DESIGN.md's order; registers the
    /// attention op on it.
    fn new(config: Config, tape: &mut Tape<F>) -> Self {
        let weights = tape.parameters().collect();
        let attention = tape.register(CausalSelfAttention {
            n_head: config.n_head,
        });
        let graph = Graph {
            config,
            weights,
            attention,
        };
        Worker {
            graph,
            rows: Rows::default(),
            nlls: Vec::new(),
        }
    }

    /// Records the mean loss of `documents` (averaged as `mean` says), scaled by `scale`, on a
    /// cleared `tape`, with dropout masks drawn from `dropout` (probability and generator) if given.
    fn record<T: AsRef<[usize]>>(
        &mut self,
        tape: &mut Tape<F>,
        documents: &[T],
        (mean, scale): (BatchMean, F),
        dropout: Option<(F, &mut Xoshiro256PlusPlus)>,
    ) -> Result<Var, TapeError> {
        self.rows.fill(documents, &self.graph.config);
        let loss = self.graph.record(tape, &self.rows, mean, dropout)?;
        if scale == F::one() {
            Ok(loss)
        } else {
            tape.scale(loss, scale)
        }
    }

    /// Each of `documents`' summed negative log-likelihood into `nlls`, recording nothing for a
    /// backward pass. A document's rows get the same bits in any chunk (every op is row by row or
    /// within its document), and its sum is taken as the training loss takes it, so the number is
    /// [`Model::document_nll`]'s.
    fn nll<T: AsRef<[usize]>>(
        &mut self,
        tape: &mut Tape<F>,
        documents: &[T],
    ) -> Result<(), TapeError> {
        let Worker { graph, rows, nlls } = self;
        rows.fill(documents, &graph.config);
        let losses = tape.without_grad(|tape| {
            let logits = graph.logits(tape, rows, None)?;
            tape.row_cross_entropy(logits, &rows.targets)
        })?;
        let mut losses = tape.value(losses).as_slice();
        nlls.clear();
        for &n in &rows.lengths {
            let document;
            (document, losses) = losses.split_at(n);
            let total = document.iter().fold(F::zero(), |sum, &loss| sum + loss);
            // The document's mean loss, as the loss of a batch of one gives it, times its length.
            let count = F::from_f64(n as f64);
            nlls.push(total / count * count);
        }
        Ok(())
    }
}

/// A running total of documents' negative log-likelihoods, added in `f64` one document at a time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NllSum {
    /// The summed negative log-likelihood of the predicted tokens.
    pub total: f64,
    /// The number of predicted tokens.
    pub tokens: usize,
}

impl NllSum {
    /// The mean loss per predicted token (0 before any).
    pub fn mean(&self) -> f64 {
        self.total / self.tokens.max(1) as f64
    }
}

/// A model being trained: its weights live on a tape as parameters.
///
/// A chunk of documents is recorded as a handful of matrix ops over all their positions at once
/// (`[rows, n_embd]` activations, the documents laid end to end, with a causal mask confined to each
/// document inside the fused attention op) rather than position by position; the numbers are those
/// of microgpt.py's token-by-token loop with its KV cache, because position `t` attends to exactly
/// the keys and values of positions `0..=t` of its own document in both.
///
/// A batch of more than [`CHUNK`] documents is spread over the cores (see [`CHUNK`]) by the tape's
/// [`DataParallel`].
pub struct Model<F: Float> {
    names: Vec<String>,
    batch_mean: BatchMean,
    /// The main tape holds the weights the optimizer updates; its replicas record the other chunks
    /// of a batch.
    parallel: DataParallel<F, Worker<F>>,
}

impl<F: Float> Model<F> {
    /// A model that trains `params`.
    pub fn new(params: Params<F>) -> Self {
        let config = *params.config();
        let names = params.names().to_vec();
        let mut tape = Tape::new();
        for tensor in params.tensors() {
            tape.parameter(Tensor::from(tensor.clone()));
        }
        Model {
            names,
            batch_mean: BatchMean::default(),
            parallel: DataParallel::new(tape, move |tape| Worker::new(config, tape)),
        }
    }

    /// How [`Model::batch_loss`] averages a batch (by default [`BatchMean::Documents`]).
    pub fn with_batch_mean(mut self, batch_mean: BatchMean) -> Self {
        self.batch_mean = batch_mean;
        self
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        &self.parallel.state().graph.config
    }

    /// A copy of the current weights.
    pub fn params(&self) -> Params<F> {
        let (tape, graph) = (self.parallel.tape(), &self.parallel.state().graph);
        let named = self
            .names
            .iter()
            .zip(&graph.weights)
            .map(|(name, &var)| {
                let matrix = tape
                    .value(var)
                    .to_array()
                    .into_dimensionality()
                    .expect("weights are matrices");
                (name.clone(), matrix)
            })
            .collect();
        Params::from_named(graph.config, named).expect("the model's own tensors fit its config")
    }

    /// Copies the current weights into `params` (of the model's configuration) without allocating:
    /// a run keeps its last healthy state this way every step, to save it if training diverges.
    ///
    /// # Panics
    /// If `params` has another configuration.
    pub fn copy_params_into(&self, params: &mut Params<F>) {
        let (tape, graph) = (self.parallel.tape(), &self.parallel.state().graph);
        assert_eq!(
            params.config(),
            &graph.config,
            "params of another configuration"
        );
        for (target, &var) in params.tensors_mut().iter_mut().zip(&graph.weights) {
            let source = tape.value(var).as_slice();
            target
                .as_slice_mut()
                .expect("parameters are contiguous")
                .copy_from_slice(source);
        }
    }

    /// The mean loss of one document `[BOS, tokens.., BOS]` (see [`Model::batch_loss`]).
    pub fn loss(&mut self, tokens: &[usize]) -> Result<Step<'_, F>, ModelError> {
        self.batch_loss(&[tokens])
    }

    /// Records the loss of a batch and computes its gradient with respect to every weight, held in
    /// the [`Step`] it returns until the step is applied. The loss is the mean of `-log p(next
    /// token)` over each document's first `n = min(block_size, len - 1)` positions (longer
    /// documents are truncated as microgpt.py does), averaged over the batch as the model's
    /// [`BatchMean`] says: by default the mean of the documents' means.
    pub fn batch_loss<T: AsRef<[usize]> + Sync>(
        &mut self,
        documents: &[T],
    ) -> Result<Step<'_, F>, ModelError> {
        self.batch_loss_with_dropout(documents, None)
    }

    /// [`Model::batch_loss`] with `dropout` applied while recording (none for `None` or `p = 0`,
    /// which is [`Model::batch_loss`] to the bit).
    pub fn batch_loss_with_dropout<T: AsRef<[usize]> + Sync>(
        &mut self,
        documents: &[T],
        dropout: Option<Dropout>,
    ) -> Result<Step<'_, F>, ModelError> {
        let dropout = dropout.filter(|dropout| dropout.p != 0.0);
        if let Some(Dropout { p, .. }) = dropout
            && !(0.0..1.0).contains(&p)
        {
            return Err(ModelError::DropoutOutOfRange { p });
        }
        check_documents(documents, self.config().vocab_size)?;
        // A chunk's loss is the mean over its documents (or tokens); scaled by the chunk's share
        // of the batch's documents (or tokens), the chunks' losses (and gradients) add up to the
        // batch's mean.
        let (mean, config) = (self.batch_mean, *self.config());
        let weight = |chunk: &[T]| match mean {
            BatchMean::Documents => chunk.len(),
            BatchMean::Tokens => chunk
                .iter()
                .map(|tokens| config.predicted_positions(tokens.as_ref().len()))
                .sum(),
        };
        let batch = weight(documents) as f64;
        let (loss, _) = self
            .parallel
            .record_batch(documents, CHUNK, |tape, worker, chunk| {
                let scale = if chunk.len() == documents.len() {
                    F::one()
                } else {
                    F::from_f64(weight(chunk) as f64 / batch)
                };
                // The chunk's place in the batch, from where it starts: chunks are cut at
                // multiples of CHUNK.
                let offset =
                    (chunk.as_ptr() as usize - documents.as_ptr() as usize) / size_of::<T>().max(1);
                let mut rng = dropout.map(|dropout| {
                    let chunk_index = (offset / CHUNK) as u64;
                    let rng =
                        Xoshiro256PlusPlus::seed_from_u64(dropout.seed.wrapping_add(chunk_index));
                    (F::from_f64(dropout.p), rng)
                });
                let dropout = rng.as_mut().map(|(p, rng)| (*p, rng));
                worker.record(tape, chunk, (mean, scale), dropout)
            })?;
        Ok(Step { model: self, loss })
    }

    /// The summed negative log-likelihood of a document's predicted tokens and how many there are
    /// (`min(block_size, len - 1)`), computed without recording anything for a backward pass.
    pub fn document_nll(&mut self, tokens: &[usize]) -> Result<(F, usize), ModelError> {
        check_documents(&[tokens], self.config().vocab_size)?;
        let recorded = self.parallel.record_on_main(|tape, worker| {
            let Worker { graph, rows, .. } = worker;
            tape.clear();
            rows.fill(&[tokens], &graph.config);
            let loss =
                tape.without_grad(|tape| graph.record(tape, rows, BatchMean::Documents, None))?;
            let predicted = rows.targets.len();
            Ok::<_, TapeError>((tape.scalar(loss) * F::from_f64(predicted as f64), predicted))
        });
        Ok(recorded?)
    }

    /// The logits `[tokens.len(), vocab_size]` of `tokens` read from position 0 (at most
    /// `block_size` of them): row `p` scores the token after `tokens[p]`. Computed by the training
    /// graph without recording anything for a backward pass; the oracle the
    /// [`Decoder`](crate::Decoder) is tested against.
    ///
    /// # Errors
    /// No tokens, more than `block_size`, or a token outside the vocabulary.
    pub fn logits(&mut self, tokens: &[usize]) -> Result<Array2<F>, TapeError> {
        self.parallel.record_on_main(|tape, worker| {
            let Worker { graph, rows, .. } = worker;
            if tokens.is_empty() || tokens.len() > graph.config.block_size {
                let detail = format!(
                    "needs 1 to block_size = {} tokens, got {}",
                    graph.config.block_size,
                    tokens.len()
                );
                return Err(TapeError::shape("logits", detail));
            }
            tape.clear();
            rows.inputs.clear();
            rows.inputs.extend_from_slice(tokens);
            rows.positions.clear();
            rows.positions.extend(0..tokens.len());
            rows.targets.clear();
            rows.lengths.clear();
            rows.lengths.push(tokens.len());
            let logits = tape.without_grad(|tape| graph.logits(tape, rows, None))?;
            Ok(tape
                .value(logits)
                .to_array()
                .into_dimensionality()
                .expect("logits are a matrix"))
        })
    }

    /// Adds every document's summed negative log-likelihood to `sum`, in document order, each the
    /// very number [`Model::document_nll`] gives, and their predicted tokens. Nothing is recorded
    /// for a backward pass; the documents are evaluated [`CHUNK`] at a time, on every core, which
    /// makes a validation pass several times faster than one document at a time.
    ///
    /// ```
    /// use gpt::{Config, Model, NllSum, Params};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
    /// let config = Config { vocab_size: 5, ..Config::default() };
    /// let mut model = Model::<f64>::new(Params::init(config, &mut rng).unwrap());
    /// let documents: [&[usize]; 2] = [&[4, 0, 1, 4], &[4, 2, 4]];
    /// let mut sum = NllSum::default();
    /// model.add_nll(&documents, &mut sum)?;
    /// assert_eq!(sum.tokens, 3 + 2);
    /// let (first, _) = model.document_nll(documents[0])?;
    /// let (second, _) = model.document_nll(documents[1])?;
    /// assert_eq!(sum.total, 0.0 + first + second);
    /// # Ok::<(), gpt::ModelError>(())
    /// ```
    pub fn add_nll<T: AsRef<[usize]> + Sync>(
        &mut self,
        documents: &[T],
        sum: &mut NllSum,
    ) -> Result<(), ModelError> {
        if documents.is_empty() {
            return Ok(());
        }
        check_documents(documents, self.config().vocab_size)?;
        let evaluated = self.parallel.evaluate(
            documents,
            CHUNK,
            |tape, worker, chunk| worker.nll(tape, chunk),
            |worker| {
                for (&nll, &tokens) in worker.nlls.iter().zip(&worker.rows.lengths) {
                    sum.total += nll.to_f64();
                    sum.tokens += tokens;
                }
            },
        );
        Ok(evaluated?)
    }
}

/// The loss of a batch and its gradient with respect to every weight, which the model holds until
/// the step is applied or dropped. It borrows the model, so nothing else can record over the
/// gradient before it is used, and an update without a gradient does not compile.
pub struct Step<'m, F: Float> {
    model: &'m mut Model<F>,
    loss: F,
}

impl<F: Float> Step<'_, F> {
    /// The batch's loss, averaged as the model's [`BatchMean`] says.
    pub fn loss(&self) -> F {
        self.loss
    }

    /// The model, with the weights the gradient was taken at.
    pub fn model(&self) -> &Model<F> {
        self.model
    }

    /// The gradient of the loss with respect to weight `index` (DESIGN.md's order).
    ///
    /// # Panics
    /// If `index` is not below the model's number of weights.
    pub fn gradient(&self, index: usize) -> &Tensor<F> {
        let parallel = &self.model.parallel;
        let weight = parallel.state().graph.weights[index];
        parallel.gradients().parameter(weight)
    }

    /// Applies one Adam update with this gradient at the learning rate of step `adam.step()` of a
    /// run of `num_steps` (microgpt's linear decay); returns the loss.
    ///
    /// # Panics
    /// As [`Step::apply_at`].
    pub fn apply(self, adam: &mut Adam<F>, num_steps: usize) -> F {
        let learning_rate = adam.settings.learning_rate(adam.step(), num_steps);
        self.apply_at(adam, learning_rate)
    }

    /// Applies one Adam update with this gradient at `learning_rate` (the rate a
    /// [`Schedule`](crate::Schedule) gives for the step); returns the loss.
    ///
    /// # Panics
    /// If `adam`'s moments are not shaped like the weights or its settings are out of range (betas
    /// in `[0, 1)`, eps and weight decay at least 0, a maximum gradient norm finite and above 0).
    pub fn apply_at(self, adam: &mut Adam<F>, learning_rate: f64) -> F {
        let (tape, gradients) = self.model.parallel.tape_and_gradients_mut();
        adam.update(tape, &gradients, learning_rate)
            .unwrap_or_else(|error| panic!("Adam's update: {error}"));
        self.loss
    }
}

impl Graph {
    /// Records the mean loss of the documents laid out in `rows`, averaged as `mean` says.
    fn record<F: Float>(
        &self,
        tape: &mut Tape<F>,
        rows: &Rows,
        mean: BatchMean,
        dropout: Option<(F, &mut Xoshiro256PlusPlus)>,
    ) -> Result<Var, TapeError> {
        let logits = self.logits(tape, rows, dropout)?;
        match mean {
            BatchMean::Documents => {
                tape.segmented_cross_entropy(logits, &rows.targets, &rows.lengths)
            }
            BatchMean::Tokens => tape.softmax_cross_entropy(logits, &rows.targets),
        }
    }

    /// Records the logits `[rows, vocab_size]` of the documents laid out in `rows`, each residual
    /// branch dropped out by `dropout` (probability and generator) if given.
    fn logits<F: Float>(
        &self,
        tape: &mut Tape<F>,
        rows: &Rows,
        mut dropout: Option<(F, &mut Xoshiro256PlusPlus)>,
    ) -> Result<Var, TapeError> {
        let mut dropped = |tape: &mut Tape<F>, branch: Var| match &mut dropout {
            Some((p, rng)) => tape.dropout(branch, *p, *rng),
            None => Ok(branch),
        };
        let epsilon = F::from_f64(RMS_EPSILON);
        let Graph {
            weights,
            attention,
            config,
        } = self;
        let token_embeddings = tape.gather(weights[WTE], &rows.inputs)?;
        let position_embeddings = tape.gather(weights[WPE], &rows.positions)?;
        let sum = tape.add(token_embeddings, position_embeddings)?;
        let mut x = tape.rms_norm(sum, None, epsilon)?;
        for layer in 0..config.n_layer {
            let weight = |which| weights[layer_index(layer, which)];
            let residual = x;
            let normed = tape.rms_norm(x, None, epsilon)?;
            let projections = [
                weight(LayerWeight::Query),
                weight(LayerWeight::Key),
                weight(LayerWeight::Value),
            ];
            let qkv = tape.linear_stacked(normed, &projections)?;
            let attended = tape.custom_with_indices(*attention, &[qkv], &rows.lengths)?;
            let projected = tape.linear(attended, weight(LayerWeight::Output))?;
            let projected = dropped(tape, projected)?;
            x = tape.add(projected, residual)?;

            let residual = x;
            let normed = tape.rms_norm(x, None, epsilon)?;
            let hidden = tape.linear(normed, weight(LayerWeight::Expand))?;
            let hidden = tape.relu(hidden)?;
            let contracted = tape.linear(hidden, weight(LayerWeight::Contract))?;
            let contracted = dropped(tape, contracted)?;
            x = tape.add(contracted, residual)?;
        }
        tape.linear(x, weights[LM_HEAD])
    }
}
