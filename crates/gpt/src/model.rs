//! microgpt's forward pass recorded on the tape, whole documents at a time, and its training step.

use ndarray::ArrayD;
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

/// A model being trained: its weights live on a tape as parameters.
///
/// A document is recorded as a handful of matrix ops over all its positions at once (`[n, n_embd]`
/// activations with a causal mask inside the fused attention op) rather than position by position;
/// the numbers are those of microgpt.py's token-by-token loop with its KV cache, because position `t`
/// attends to exactly the keys and values of positions `0..=t` in both.
pub struct Model<F: Float> {
    names: Vec<String>,
    tape: Tape<F>,
    graph: Graph,
    gradients: Gradients<F>,
    /// The loss of the last recorded batch (a node of the current tape step).
    loss: Option<Var>,
}

impl<F: Float> Model<F> {
    /// A model that trains `params`.
    pub fn new(params: Params<F>) -> Self {
        let config = *params.config();
        let names = params.names().to_vec();
        let mut tape = Tape::new();
        let weights = params
            .tensors()
            .iter()
            .map(|tensor| tape.parameter(tensor.clone().into_dyn()))
            .collect();
        let attention = tape.register(CausalSelfAttention {
            n_head: config.n_head,
        });
        let graph = Graph {
            config,
            weights,
            attention,
            positions: (0..config.block_size).collect(),
        };
        Model {
            names,
            tape,
            graph,
            gradients: Gradients::new(),
            loss: None,
        }
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        &self.graph.config
    }

    /// A copy of the current weights.
    pub fn params(&self) -> Params<F> {
        let named = self
            .names
            .iter()
            .zip(&self.graph.weights)
            .map(|(name, &var)| {
                let matrix = self
                    .tape
                    .value(var)
                    .clone()
                    .into_dimensionality()
                    .expect("weights are matrices");
                (name.clone(), matrix)
            })
            .collect();
        Params::from_named(self.graph.config, named)
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
    pub fn batch_loss<T: AsRef<[usize]>>(&mut self, documents: &[T]) -> Result<F, TapeError> {
        if documents.is_empty() {
            return Err(TapeError::shape(
                "batch_loss",
                "a batch needs at least one document",
            ));
        }
        self.tape.clear();
        self.loss = None;
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
        let total = total.expect("the batch is not empty");
        let mean = if documents.len() == 1 {
            total
        } else {
            self.tape
                .scale(total, F::from_f64(1.0 / documents.len() as f64))?
        };
        self.tape.backward_into(mean, &mut self.gradients)?;
        self.loss = Some(mean);
        Ok(self.tape.scalar(mean))
    }

    /// The gradient of the last loss with respect to weight `index` (DESIGN.md's order).
    ///
    /// # Panics
    /// If no loss has been computed yet or `index` is out of range.
    pub fn gradient(&self, index: usize) -> &ArrayD<F> {
        assert!(
            self.loss.is_some(),
            "gradient() before any loss was computed"
        );
        self.gradients.parameter(self.graph.weights[index])
    }

    /// Applies one Adam update with the gradients of the last loss, at the learning rate of step
    /// `adam.state.step` of a run of `num_steps`.
    pub fn apply_adam(&mut self, adam: &mut Adam<F>, num_steps: usize) {
        let learning_rate = adam.settings.learning_rate(adam.state.step, num_steps);
        let gradients = &self.gradients;
        let pairs = self.tape.parameters_mut().map(|(var, value)| {
            let gradient = gradients
                .parameter(var)
                .as_slice()
                .expect("gradients are contiguous");
            (
                value.as_slice_mut().expect("weights are contiguous"),
                gradient,
            )
        });
        adam.update(learning_rate, pairs);
    }

    /// The summed negative log-likelihood of a document's predicted tokens and how many there are
    /// (`min(block_size, len - 1)`), computed without recording anything for a backward pass.
    pub fn document_nll(&mut self, tokens: &[usize]) -> Result<(F, usize), TapeError> {
        self.tape.clear();
        self.loss = None;
        let Model { tape, graph, .. } = self;
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
