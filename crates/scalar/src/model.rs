//! [`ScalarGpt`]: the microgpt model and its training step on [`Graph`] scalars.

use crate::forward::{Activations, Weights};
use crate::graph::{Graph, Value};
use crate::{Adam, Config, Error, NamedTensor};

/// microgpt.py's model, one graph node per scalar: the oracle the tensor engine is checked against and
/// the baseline it is timed against.
///
/// The parameters are the first leaves of an internal [`Graph`], in DESIGN.md order and row-major
/// within each tensor. Each [`ScalarGpt::loss`] rewinds the graph to them (keeping its capacity),
/// builds the whole document's graph exactly as microgpt.py does, and runs backward; gradients stay
/// readable until the next call. Adam's moments live inside the model.
///
/// ```
/// use scalar::{Config, ScalarGpt};
///
/// let config = Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 4, vocab_size: 3 };
/// let mut model = ScalarGpt::init(config, || 0.0).unwrap();
/// let bos = config.bos();
/// // All weights 0: every logit is 0, so the loss is ln(vocab_size) exactly.
/// let loss = model.train_step(&[bos, 0, 1, bos], 0, 10, 0.01);
/// assert!((loss - 3f64.ln()).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct ScalarGpt {
    config: Config,
    graph: Graph,
    /// The leaves `0..num_params`, so layers can take weight rows as slices.
    parameters: Vec<Value>,
    /// Name and `[out, in]` of every tensor, DESIGN.md order.
    shapes: Vec<(String, [usize; 2])>,
    /// `offsets[i]..offsets[i + 1]` are tensor `i`'s parameters.
    offsets: Vec<usize>,
    adam: Adam,
    activations: Activations,
    scratch: Vec<f64>,
}

impl ScalarGpt {
    /// A model with the given weights, which must be exactly the tensors of
    /// [`Config::parameter_shapes`] (in any order), each with that shape and `out * in` numbers.
    ///
    /// # Errors
    /// An invalid configuration, or a tensor that is missing, unexpected, repeated, of the wrong shape
    /// or of the wrong length.
    ///
    /// ```
    /// use scalar::{Config, NamedTensor, ScalarGpt};
    ///
    /// let config = Config { n_layer: 0, n_embd: 2, n_head: 1, block_size: 2, vocab_size: 2 };
    /// let weights: Vec<NamedTensor> = config
    ///     .parameter_shapes()
    ///     .into_iter()
    ///     .map(|(name, shape)| NamedTensor { name, shape, data: vec![0.1; shape[0] * shape[1]] })
    ///     .collect();
    /// let model = ScalarGpt::new(config, &weights).unwrap();
    /// assert_eq!(model.weights(), weights);
    /// assert!(ScalarGpt::new(config, &weights[1..]).is_err()); // wte missing
    /// ```
    pub fn new(config: Config, weights: &[NamedTensor]) -> Result<Self, Error> {
        config.validate()?;
        let shapes = config.parameter_shapes();
        for (index, tensor) in weights.iter().enumerate() {
            if !shapes.iter().any(|(name, _)| *name == tensor.name) {
                return Err(Error::UnexpectedTensor {
                    name: tensor.name.clone(),
                });
            }
            if weights[..index].iter().any(|seen| seen.name == tensor.name) {
                return Err(Error::DuplicateTensor {
                    name: tensor.name.clone(),
                });
            }
        }
        let mut ordered = Vec::with_capacity(shapes.len());
        for (name, expected) in &shapes {
            let tensor = weights
                .iter()
                .find(|tensor| tensor.name == *name)
                .ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
            if tensor.shape != *expected {
                return Err(Error::WrongShape {
                    name: name.clone(),
                    expected: *expected,
                    found: tensor.shape,
                });
            }
            if tensor.data.len() != expected[0] * expected[1] {
                return Err(Error::WrongLength {
                    name: name.clone(),
                    expected: expected[0] * expected[1],
                    found: tensor.data.len(),
                });
            }
            ordered.push(tensor.data.as_slice());
        }
        Ok(Self::from_values(
            config,
            shapes,
            ordered.concat().into_iter(),
        ))
    }

    /// A model whose weights are drawn from `draw`, one call per scalar, tensor by tensor in DESIGN.md
    /// order and row by row within each tensor (microgpt.py's `matrix(nout, nin)` order). `draw` should
    /// return samples of N(0, 0.08) for microgpt's initialisation; any closure will do, so tests can
    /// plug in any generator (pass `&mut draw` to keep using it afterwards).
    ///
    /// # Errors
    /// An invalid configuration ([`Config::validate`]).
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let mut counter = 0.0;
    /// let model = scalar::ScalarGpt::init(config, || { counter += 1.0; counter }).unwrap();
    /// let weights = model.weights();
    /// assert_eq!(weights[0].data[..3], [1.0, 2.0, 3.0]); // wte row 0 comes first
    /// assert_eq!(weights[1].data[0], 21.0); // then wpe, after 5 * 4 entries of wte
    /// ```
    pub fn init(config: Config, mut draw: impl FnMut() -> f64) -> Result<Self, Error> {
        config.validate()?;
        let count = config.num_params();
        let shapes = config.parameter_shapes();
        Ok(Self::from_values(
            config,
            shapes,
            std::iter::repeat_with(&mut draw).take(count),
        ))
    }

    fn from_values(
        config: Config,
        shapes: Vec<(String, [usize; 2])>,
        values: impl Iterator<Item = f64>,
    ) -> Self {
        let mut graph = Graph::new();
        let parameters: Vec<Value> = values.map(|value| graph.leaf(value)).collect();
        let mut offsets = vec![0];
        for (_, [rows, cols]) in &shapes {
            offsets.push(offsets[offsets.len() - 1] + rows * cols);
        }
        let mut activations = Activations::default();
        activations.start_document(config.n_layer);
        Self {
            adam: Adam::new(parameters.len()),
            config,
            graph,
            parameters,
            shapes,
            offsets,
            activations,
            scratch: Vec::new(),
        }
    }

    /// The model's configuration.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// assert_eq!(*scalar::ScalarGpt::init(config, || 0.0).unwrap().config(), config);
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The number of scalar parameters.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// assert_eq!(scalar::ScalarGpt::init(config, || 0.0).unwrap().num_params(), config.num_params());
    /// ```
    pub fn num_params(&self) -> usize {
        self.parameters.len()
    }

    /// The underlying graph: after [`ScalarGpt::loss`] it holds the parameters followed by that
    /// document's nodes (its [`Graph::len`] is the size of the graph microgpt.py would build, minus
    /// the constant leaves Python creates for plain numbers).
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let mut model = scalar::ScalarGpt::init(config, || 0.1).unwrap();
    /// model.loss(&[4, 0, 4]);
    /// assert!(model.graph().len() > model.num_params());
    /// ```
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The optimizer state used by [`ScalarGpt::adam_step`].
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let model = scalar::ScalarGpt::init(config, || 0.1).unwrap();
    /// assert_eq!(model.adam().first_moment().len(), model.num_params());
    /// ```
    pub fn adam(&self) -> &Adam {
        &self.adam
    }

    /// The current weights, one tensor per parameter matrix, in DESIGN.md order.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let weights = scalar::ScalarGpt::init(config, || 0.1).unwrap().weights();
    /// assert_eq!(weights[2].name, "lm_head");
    /// assert_eq!(weights[3].name, "layer0.attn_wq");
    /// ```
    pub fn weights(&self) -> Vec<NamedTensor> {
        self.named(Graph::data)
    }

    /// d(loss)/d(weight) from the last [`ScalarGpt::loss`] (zero before any, and after
    /// [`ScalarGpt::adam_step`], which consumes them), in the same layout as [`ScalarGpt::weights`].
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let mut model = scalar::ScalarGpt::init(config, || 0.1).unwrap();
    /// model.loss(&[4, 0, 4]);
    /// let wte = &model.gradients()[0];
    /// assert_eq!(wte.row(1), [0.0; 4]); // token 1 never appears
    /// ```
    pub fn gradients(&self) -> Vec<NamedTensor> {
        self.named(Graph::grad)
    }

    fn named(&self, read: fn(&Graph, Value) -> f64) -> Vec<NamedTensor> {
        self.shapes
            .iter()
            .zip(self.offsets.windows(2))
            .map(|((name, shape), range)| NamedTensor {
                name: name.clone(),
                shape: *shape,
                data: self.parameters[range[0]..range[1]]
                    .iter()
                    .map(|&parameter| read(&self.graph, parameter))
                    .collect(),
            })
            .collect()
    }

    /// Builds the document's graph and runs backward, returning the loss; the gradients are then
    /// available from [`ScalarGpt::gradients`].
    ///
    /// As microgpt.py: with `n = min(block_size, tokens.len() - 1)`, position `p < n` reads
    /// `tokens[p]` and predicts `tokens[p + 1]`, `loss_p = -log(softmax(logits_p)[tokens[p + 1]])`, and
    /// the loss is `(1 / n) * sum(loss_p)`. Tokens past `n` are ignored.
    ///
    /// # Panics
    /// If `tokens` has fewer than 2 entries or holds a token `>= vocab_size` (anywhere, even past the
    /// truncation).
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let mut model = scalar::ScalarGpt::init(config, || 0.0).unwrap();
    /// assert!((model.loss(&[4, 0, 1, 2, 3, 4]) - 5f64.ln()).abs() < 1e-15);
    /// ```
    pub fn loss(&mut self, tokens: &[usize]) -> f64 {
        assert!(
            tokens.len() >= 2,
            "loss needs at least 2 tokens, got {}",
            tokens.len()
        );
        self.check_tokens(tokens);
        let n = self.config.block_size.min(tokens.len() - 1);
        self.start_document();
        for (pos, pair) in tokens[..=n].windows(2).enumerate() {
            self.forward_token(pair[0], pos);
            let Self {
                graph, activations, ..
            } = self;
            activations.probs.clear();
            crate::layers::softmax(graph, &activations.logits, &mut activations.probs);
            let log_prob = graph.log(activations.probs[pair[1]]);
            activations.losses.push(graph.neg(log_prob));
        }
        let Self {
            graph, activations, ..
        } = self;
        let total = graph.sum(&activations.losses);
        let loss = graph.mul_const(total, 1.0 / n as f64);
        graph.backward(loss);
        graph.data(loss)
    }

    /// The logits at every position of `tokens` (row `p` predicts the token after `tokens[p]`), by
    /// the same forward pass as [`ScalarGpt::loss`], without a backward pass. Gradients from the last
    /// [`ScalarGpt::loss`] are left as they were.
    ///
    /// # Panics
    /// If `tokens` is longer than `block_size` or holds a token `>= vocab_size`.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let mut model = scalar::ScalarGpt::init(config, || 0.0).unwrap();
    /// assert_eq!(model.logits(&[4, 0]), vec![vec![0.0; 5]; 2]);
    /// ```
    pub fn logits(&mut self, tokens: &[usize]) -> Vec<Vec<f64>> {
        assert!(
            tokens.len() <= self.config.block_size,
            "logits: {} tokens do not fit block_size {}",
            tokens.len(),
            self.config.block_size
        );
        self.check_tokens(tokens);
        self.start_document();
        let mut rows = Vec::with_capacity(tokens.len());
        for (pos, &token) in tokens.iter().enumerate() {
            self.forward_token(token, pos);
            let logits = &self.activations.logits;
            rows.push(logits.iter().map(|&logit| self.graph.data(logit)).collect());
        }
        rows
    }

    /// One Adam update of every parameter from the current gradients, at 0-based `step` of
    /// `num_steps` with base learning rate `lr` (see [`Adam`] for the exact formula); the gradients
    /// are zero afterwards, as in microgpt.py.
    ///
    /// # Panics
    /// If `num_steps` is 0.
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let mut model = scalar::ScalarGpt::init(config, || 0.1).unwrap();
    /// let before = model.loss(&[4, 0, 4]);
    /// model.adam_step(0, 10, 0.01);
    /// assert!(model.loss(&[4, 0, 4]) < before);
    /// ```
    pub fn adam_step(&mut self, step: usize, num_steps: usize, lr: f64) {
        let adam = &mut self.adam;
        self.graph
            .update_leading(self.parameters.len(), &mut self.scratch, |params, grads| {
                adam.update(params, grads, step, num_steps, lr)
            });
    }

    /// One microgpt.py training step on one document: [`ScalarGpt::loss`], then
    /// [`ScalarGpt::adam_step`]. Returns the loss before the update.
    ///
    /// # Panics
    /// As [`ScalarGpt::loss`] and [`ScalarGpt::adam_step`].
    ///
    /// ```
    /// let config = scalar::Config { n_layer: 1, n_embd: 4, n_head: 2, block_size: 3, vocab_size: 5 };
    /// let mut model = scalar::ScalarGpt::init(config, || 0.1).unwrap();
    /// let first = model.train_step(&[4, 0, 4], 0, 2, 0.01);
    /// let second = model.train_step(&[4, 0, 4], 1, 2, 0.01);
    /// assert!(second < first);
    /// ```
    pub fn train_step(&mut self, tokens: &[usize], step: usize, num_steps: usize, lr: f64) -> f64 {
        let loss = self.loss(tokens);
        self.adam_step(step, num_steps, lr);
        loss
    }

    fn check_tokens(&self, tokens: &[usize]) {
        if let Some(&token) = tokens
            .iter()
            .find(|&&token| token >= self.config.vocab_size)
        {
            panic!(
                "token {token} is out of range for vocab_size {}",
                self.config.vocab_size
            );
        }
    }

    /// Rewinds the graph to the parameters and empties the key/value caches.
    fn start_document(&mut self) {
        self.graph.truncate(self.parameters.len());
        self.activations.start_document(self.config.n_layer);
    }

    fn forward_token(&mut self, token: usize, pos: usize) {
        let weights = Weights {
            parameters: &self.parameters,
            offsets: &self.offsets,
        };
        self.activations
            .forward_token(&mut self.graph, &self.config, weights, token, pos);
    }
}
