//! `linear`, `softmax` and `rmsnorm` against plain-f64 transcriptions of microgpt.py's formulas.
//!
//! Oracle: the same formulas written on `f64` in microgpt.py's order of operations (`sum` left to
//! right, `a / b` as `a * b ** -1`). The forward values must agree bit for bit: that is what makes the
//! scalar model a round-off-exact port. Gradients of the layers are checked against finite
//! differences through the model in `tests/model.rs`.

use proptest::prelude::*;
use scalar::Graph;
use scalar::layers::{linear, rmsnorm, softmax};

fn python_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |total, x| total + x)
}

proptest! {
    #[test]
    fn linear_is_left_to_right_dot_products(
        input in prop::collection::vec(-2.0f64..2.0, 1..6),
        rows in 1usize..4,
        seed in prop::collection::vec(-2.0f64..2.0, 24),
    ) {
        let weight = &seed[..rows * input.len()];
        let mut graph = Graph::new();
        let input_nodes: Vec<_> = input.iter().map(|&x| graph.leaf(x)).collect();
        let weight_nodes: Vec<_> = weight.iter().map(|&w| graph.leaf(w)).collect();
        let mut out = vec![graph.leaf(99.0)]; // appends, keeps what was there
        linear(&mut graph, &input_nodes, &weight_nodes, &mut out);
        prop_assert_eq!(out.len(), rows + 1);
        prop_assert_eq!(graph.data(out[0]), 99.0);
        for (row, &y) in weight.chunks(input.len()).zip(&out[1..]) {
            let expected = python_sum(row.iter().zip(&input).map(|(w, x)| w * x));
            prop_assert_eq!(graph.data(y), expected);
        }
    }

    #[test]
    fn softmax_matches_microgpt_formula(logits in prop::collection::vec(-30.0f64..30.0, 1..10)) {
        let mut graph = Graph::new();
        let nodes: Vec<_> = logits.iter().map(|&x| graph.leaf(x)).collect();
        let mut probs = Vec::new();
        softmax(&mut graph, &nodes, &mut probs);
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = logits.iter().map(|&x| (x + -max).exp()).collect();
        let total = python_sum(exps.iter().copied());
        for (&p, &e) in probs.iter().zip(&exps) {
            prop_assert_eq!(graph.data(p), e * total.powf(-1.0));
        }
        let mass: f64 = probs.iter().map(|&p| graph.data(p)).sum();
        prop_assert!((mass - 1.0).abs() < 1e-14);
    }

    #[test]
    fn rmsnorm_matches_microgpt_formula(input in prop::collection::vec(-3.0f64..3.0, 1..10)) {
        let mut graph = Graph::new();
        let nodes: Vec<_> = input.iter().map(|&x| graph.leaf(x)).collect();
        let mut out = Vec::new();
        rmsnorm(&mut graph, &nodes, &mut out);
        let ms = python_sum(input.iter().map(|x| x * x)) * (input.len() as f64).powf(-1.0);
        let scale = (ms + 1e-5).powf(-0.5);
        for (&y, &x) in out.iter().zip(&input) {
            prop_assert_eq!(graph.data(y), x * scale);
        }
    }
}

/// The max subtracted in softmax is a plain number: shifting every logit by the same amount changes
/// neither the probabilities' gradients' sum (always 0) nor lets a gradient leak through the max.
#[test]
fn softmax_gradients_sum_to_zero() {
    let mut graph = Graph::new();
    let logits = [1.0, 3.0, -2.0, 3.0].map(|x| graph.leaf(x));
    let mut probs = Vec::new();
    softmax(&mut graph, &logits, &mut probs);
    // d p_1 / d logits = p_1 (e_1 - p): its entries sum to 0.
    graph.backward(probs[1]);
    let total: f64 = logits.iter().map(|&l| graph.grad(l)).sum();
    assert!(total.abs() < 1e-16, "gradients sum to {total}");
    let p1 = graph.data(probs[1]);
    assert!((graph.grad(logits[1]) - p1 * (1.0 - p1)).abs() < 1e-16);
}
