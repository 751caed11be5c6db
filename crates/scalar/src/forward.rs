//! microgpt.py's `gpt(token_id, pos_id, keys, values)`: one token through the model, on scalars.
//!
//! All activations live in [`Activations`], whose vectors are cleared and refilled for every token,
//! so a warm model builds its graph without allocating.

use crate::Config;
use crate::graph::{Graph, Value};
use crate::layers::{linear, rmsnorm, softmax};

/// Index of `wte`, `wpe` and `lm_head` in the DESIGN.md order of tensors.
const WTE: usize = 0;
const WPE: usize = 1;
const LM_HEAD: usize = 2;
/// Index of layer 0's first tensor; each layer then holds six tensors in this order.
const FIRST_LAYER: usize = 3;
const PER_LAYER: usize = 6;
const ATTN_WQ: usize = 0;
const ATTN_WK: usize = 1;
const ATTN_WV: usize = 2;
const ATTN_WO: usize = 3;
const MLP_FC1: usize = 4;
const MLP_FC2: usize = 5;

/// The parameters as graph leaves, and where each tensor starts (DESIGN.md order).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Weights<'a> {
    /// One leaf per scalar parameter, all tensors back to back.
    pub(crate) parameters: &'a [Value],
    /// `offsets[i]..offsets[i + 1]` is tensor `i`; one more entry than there are tensors.
    pub(crate) offsets: &'a [usize],
}

impl<'a> Weights<'a> {
    fn tensor(self, index: usize) -> &'a [Value] {
        &self.parameters[self.offsets[index]..self.offsets[index + 1]]
    }

    fn layer(self, layer: usize, which: usize) -> &'a [Value] {
        self.tensor(FIRST_LAYER + PER_LAYER * layer + which)
    }

    /// Row `row` of a `[rows, cols]` tensor.
    fn row(self, index: usize, row: usize, cols: usize) -> &'a [Value] {
        &self.tensor(index)[row * cols..(row + 1) * cols]
    }
}

/// Reusable buffers for one document's forward pass, including each layer's key/value cache.
#[derive(Clone, Debug, Default)]
pub(crate) struct Activations {
    x: Vec<Value>,
    residual: Vec<Value>,
    q: Vec<Value>,
    /// Per layer, the keys of positions `0..=pos`, flat `[position][n_embd]`.
    keys: Vec<Vec<Value>>,
    /// Per layer, the values of positions `0..=pos`, flat `[position][n_embd]`.
    values: Vec<Vec<Value>>,
    attn_logits: Vec<Value>,
    attn_weights: Vec<Value>,
    x_attn: Vec<Value>,
    hidden: Vec<Value>,
    /// The logits of the last token fed to [`Activations::forward_token`].
    pub(crate) logits: Vec<Value>,
    /// Scratch for the caller: the softmax of the logits.
    pub(crate) probs: Vec<Value>,
    /// Scratch for the caller: the per-position losses of a document.
    pub(crate) losses: Vec<Value>,
}

impl Activations {
    /// Empties the key/value caches (and the caller's scratch) before a new document.
    pub(crate) fn start_document(&mut self, n_layer: usize) {
        self.keys.resize_with(n_layer, Vec::new);
        self.values.resize_with(n_layer, Vec::new);
        self.keys.iter_mut().for_each(Vec::clear);
        self.values.iter_mut().for_each(Vec::clear);
        self.losses.clear();
    }

    /// microgpt.py's `gpt(token, pos, keys, values)`: appends this position's keys and values to the
    /// caches and leaves the logits in `self.logits`. Positions must be fed in order `0, 1, ..` after
    /// [`Activations::start_document`].
    pub(crate) fn forward_token(
        &mut self,
        graph: &mut Graph,
        config: &Config,
        weights: Weights<'_>,
        token: usize,
        pos: usize,
    ) {
        let Self {
            x,
            residual,
            q,
            keys,
            values,
            attn_logits,
            attn_weights,
            x_attn,
            hidden,
            logits,
            ..
        } = self;
        let (n_embd, head_dim) = (config.n_embd, config.head_dim());
        // Python's `/ head_dim**0.5` is `* (head_dim**0.5) ** -1`, both powers taken on plain floats.
        let inverse_scale = (head_dim as f64).powf(0.5).powf(-1.0);

        // x = rmsnorm([t + p for t, p in zip(tok_emb, pos_emb)])
        let token_embedding = weights.row(WTE, token, n_embd);
        let position_embedding = weights.row(WPE, pos, n_embd);
        residual.clear();
        for (&t, &p) in token_embedding.iter().zip(position_embedding) {
            residual.push(graph.add(t, p));
        }
        x.clear();
        rmsnorm(graph, residual, x);

        for layer in 0..config.n_layer {
            let (keys, values) = (&mut keys[layer], &mut values[layer]);
            // 1) attention: x_residual = x; x = rmsnorm(x); q, k, v = linear(x, ...)
            std::mem::swap(x, residual);
            x.clear();
            rmsnorm(graph, residual, x);
            q.clear();
            linear(graph, x, weights.layer(layer, ATTN_WQ), q);
            linear(graph, x, weights.layer(layer, ATTN_WK), keys);
            linear(graph, x, weights.layer(layer, ATTN_WV), values);
            x_attn.clear();
            for head in 0..config.n_head {
                let start = head * head_dim;
                let q_head = &q[start..start + head_dim];
                attn_logits.clear();
                for position in 0..=pos {
                    let key = &keys[position * n_embd + start..][..head_dim];
                    let pairs = q_head.iter().copied().zip(key.iter().copied());
                    let dot = graph.sum_of_products(pairs);
                    attn_logits.push(graph.mul_const(dot, inverse_scale));
                }
                attn_weights.clear();
                softmax(graph, attn_logits, attn_weights);
                for j in 0..head_dim {
                    let column =
                        (0..=pos).map(|t| (attn_weights[t], values[t * n_embd + start + j]));
                    x_attn.push(graph.sum_of_products(column));
                }
            }
            x.clear();
            linear(graph, x_attn, weights.layer(layer, ATTN_WO), x);
            add_in_place(graph, x, residual);

            // 2) MLP: x_residual = x; x = fc2(relu(fc1(rmsnorm(x)))) + x_residual
            std::mem::swap(x, residual);
            x.clear();
            rmsnorm(graph, residual, x);
            hidden.clear();
            linear(graph, x, weights.layer(layer, MLP_FC1), hidden);
            for h in hidden.iter_mut() {
                *h = graph.relu(*h);
            }
            x.clear();
            linear(graph, hidden, weights.layer(layer, MLP_FC2), x);
            add_in_place(graph, x, residual);
        }

        logits.clear();
        linear(graph, x, weights.tensor(LM_HEAD), logits);
    }
}

/// `x = [a + b for a, b in zip(x, other)]`.
fn add_in_place(graph: &mut Graph, x: &mut [Value], other: &[Value]) {
    for (a, &b) in x.iter_mut().zip(other) {
        *a = graph.add(*a, b);
    }
}
