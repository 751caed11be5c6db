//! microgpt.py's `linear`, `softmax` and `rmsnorm`, written on [`Graph`] scalars in Python's exact
//! order of operations, so that every forward value matches microgpt.py round-off for round-off.
//!
//! Each function appends its outputs to `out` (it does not clear it), so a caller can reuse buffers
//! and write straight into a growing key/value cache.

use crate::graph::{Graph, Value};

/// microgpt.py's `linear(x, w)`: for each row of `weight` (row-major `[out, in]`, `in = input.len()`),
/// `sum(w_i * x_i)` left to right. Appends `out` values to `out`.
///
/// # Panics
/// If `input` is empty or `weight.len()` is not a multiple of `input.len()`.
///
/// ```
/// let mut graph = scalar::Graph::new();
/// let input = [graph.leaf(1.0), graph.leaf(2.0)];
/// let weight = [3.0, 4.0, 5.0, 6.0].map(|w| graph.leaf(w)); // [[3, 4], [5, 6]]
/// let mut out = Vec::new();
/// scalar::layers::linear(&mut graph, &input, &weight, &mut out);
/// assert_eq!(out.iter().map(|&y| graph.data(y)).collect::<Vec<_>>(), [11.0, 17.0]);
/// ```
pub fn linear(graph: &mut Graph, input: &[Value], weight: &[Value], out: &mut Vec<Value>) {
    assert!(
        !input.is_empty() && weight.len().is_multiple_of(input.len()),
        "linear: a weight of {} numbers is not [out, {}]",
        weight.len(),
        input.len()
    );
    for row in weight.chunks_exact(input.len()) {
        let y = graph.sum_of_products(row.iter().copied().zip(input.iter().copied()));
        out.push(y);
    }
}

/// microgpt.py's `softmax(logits)`: `max_val` is a plain number (no gradient flows through it),
/// `exps = [(l - max_val).exp()]`, `total = sum(exps)`, `probs = [e / total]`, where each `e / total`
/// is `e * total ** -1` with its own `pow` node, as in Python. Appends the probabilities to `out`.
///
/// # Panics
/// If `logits` is empty.
///
/// ```
/// let mut graph = scalar::Graph::new();
/// let logits = [graph.leaf(0.0), graph.leaf(0.0)];
/// let mut probs = Vec::new();
/// scalar::layers::softmax(&mut graph, &logits, &mut probs);
/// assert_eq!((graph.data(probs[0]), graph.data(probs[1])), (0.5, 0.5));
/// ```
pub fn softmax(graph: &mut Graph, logits: &[Value], out: &mut Vec<Value>) {
    assert!(!logits.is_empty(), "softmax of no logits");
    // Python's `max` keeps the first element and replaces it only by a strictly greater one.
    let max_val = logits[1..].iter().map(|&logit| graph.data(logit)).fold(
        graph.data(logits[0]),
        |max, data| if data > max { data } else { max },
    );
    let start = out.len();
    for &logit in logits {
        // `val - max_val` is `val + (-max_val)` in Python.
        let shifted = graph.add_const(logit, -max_val);
        out.push(graph.exp(shifted));
    }
    let total = graph.sum(&out[start..]);
    for prob in &mut out[start..] {
        *prob = graph.div(*prob, total);
    }
}

/// microgpt.py's `rmsnorm(x)`: `ms = sum(x_i * x_i) / len(x)` (a multiplication by the plain number
/// `len(x) ** -1`), `scale = (ms + 1e-5) ** -0.5`, `[x_i * scale]`. Appends the result to `out`.
///
/// # Panics
/// If `input` is empty.
///
/// ```
/// let mut graph = scalar::Graph::new();
/// let input = [graph.leaf(3.0), graph.leaf(4.0)];
/// let mut out = Vec::new();
/// scalar::layers::rmsnorm(&mut graph, &input, &mut out);
/// // mean square 12.5, so each entry is divided by sqrt(12.5 + 1e-5)
/// assert!((graph.data(out[1]) - 4.0 / (12.5f64 + 1e-5).sqrt()).abs() < 1e-15);
/// ```
pub fn rmsnorm(graph: &mut Graph, input: &[Value], out: &mut Vec<Value>) {
    let sum_of_squares = graph.sum_of_products(input.iter().map(|&x| (x, x)));
    let ms = graph.div_const(sum_of_squares, input.len() as f64);
    let shifted = graph.add_const(ms, 1e-5);
    let scale = graph.pow(shifted, -0.5);
    for &x in input {
        out.push(graph.mul(x, scale));
    }
}
