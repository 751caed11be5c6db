//! The arena's semantics: hand-computed gradients, reuse of a value, repeated backward, rewinding.

use scalar::{Graph, Value};

/// L = (a*b + c)^2 / a - b at a = 2, b = -3, c = 10, worked by hand (every number is exact in f64):
///   d = a*b = -6, e = d + c = 4, f = e^2 = 16, g = f / a = f * a^-1 = 8, L = g - b = 11.
///   dL/dg = 1 and dL/db gets -1 directly.
///   dL/df = a^-1 = 0.5, and a gets f * d(a^-1)/da = 16 * (-1 * a^-2) = -4 through the division.
///   dL/de = 0.5 * 2e = 4, so dL/dd = dL/dc = 4.
///   Through d, a gets 4 * b = -12 and b gets 4 * a = 8.
///   Totals: dL/da = -12 - 4 = -16, dL/db = 8 - 1 = 7, dL/dc = 4.
#[test]
fn hand_computed_expression() {
    let mut graph = Graph::new();
    let (a, b, c) = (graph.leaf(2.0), graph.leaf(-3.0), graph.leaf(10.0));
    let d = graph.mul(a, b);
    let e = graph.add(d, c);
    let f = graph.pow(e, 2.0);
    let g = graph.div(f, a);
    let loss = graph.sub(g, b);
    graph.backward(loss);
    let values = [d, e, f, g, loss].map(|node| graph.data(node));
    assert_eq!(values, [-6.0, 4.0, 16.0, 8.0, 11.0]);
    assert_eq!([a, b, c].map(|leaf| graph.grad(leaf)), [-16.0, 7.0, 4.0]);
    assert_eq!(
        [d, e, f, g].map(|node| graph.grad(node)),
        [4.0, 4.0, 0.5, 1.0]
    );
}

/// A value feeding two ops (or the same op twice) must receive the sum of both contributions;
/// keeping only the last one is the classic bug.
#[test]
fn value_used_twice_gets_the_sum_of_its_gradients() {
    let mut graph = Graph::new();
    let x = graph.leaf(3.0);
    let square = graph.mul(x, x);
    graph.backward(square);
    assert_eq!(graph.grad(x), 6.0, "d(x*x)/dx = x + x");

    // f = exp(x) + 3x at x = 0.5: f' = e^0.5 + 3.
    let y = graph.leaf(0.5);
    let exp = graph.exp(y);
    let triple = graph.mul_const(y, 3.0);
    let f = graph.add(exp, triple);
    graph.backward(f);
    assert_eq!(graph.grad(y), 0.5f64.exp() + 3.0);
}

/// backward overwrites: a second call on the same graph reproduces the first one's gradients
/// exactly, and a call from another root leaves nothing from the first.
#[test]
fn backward_twice_does_not_double() {
    let mut graph = Graph::new();
    let (a, b) = (graph.leaf(1.5), graph.leaf(-0.5));
    let product = graph.mul(a, b);
    let root = graph.exp(product);
    graph.backward(root);
    let first = [a, b, product, root].map(|node| graph.grad(node));
    graph.backward(root);
    let second = [a, b, product, root].map(|node| graph.grad(node));
    assert_eq!(first, second);
    assert_eq!(
        first[0],
        (-0.75f64).exp() * -0.5,
        "d exp(ab) / da = exp(ab) * b"
    );

    // From `product`, `root` is downstream: its gradient must be 0, not a leftover.
    graph.backward(product);
    assert_eq!(
        [a, b, product, root].map(|node| graph.grad(node)),
        [-0.5, 1.5, 1.0, 0.0]
    );
}

/// Nodes the root does not depend on, and nodes created after the last backward, have gradient 0.
#[test]
fn unrelated_and_later_nodes_have_zero_gradient() {
    let mut graph = Graph::new();
    let (x, unrelated) = (graph.leaf(2.0), graph.leaf(7.0));
    let y = graph.log(x);
    graph.backward(y);
    let later = graph.mul(x, unrelated);
    assert_eq!(graph.grad(x), 0.5);
    assert_eq!(graph.grad(unrelated), 0.0);
    assert_eq!(graph.grad(later), 0.0);
}

/// relu'(0) = 0 by convention (microgpt.py: `float(self.data > 0)`), and relu(0) = 0.
#[test]
fn relu_at_zero_has_zero_gradient() {
    let mut graph = Graph::new();
    let x = graph.leaf(0.0);
    let y = graph.relu(x);
    graph.backward(y);
    assert_eq!((graph.data(y), graph.grad(x)), (0.0, 0.0));
}

/// Rewinding to the parameters keeps them (values and gradients), and the next step's nodes reuse
/// the freed ids and compute exactly what a fresh graph computes.
#[test]
fn truncate_and_reuse() {
    let mut graph = Graph::with_capacity(16);
    let w = graph.leaf(0.5);
    let parameters = graph.len();

    let step = |graph: &mut Graph, input: f64| -> (Value, Value) {
        let x = graph.leaf(input);
        let wx = graph.mul(w, x);
        (x, graph.exp(wx))
    };

    let (_, first_root) = step(&mut graph, 2.0);
    graph.backward(first_root);
    let first_grad = graph.grad(w);
    let first_len = graph.len();
    graph.truncate(parameters);
    assert_eq!(graph.len(), parameters);
    assert_eq!(
        graph.grad(w),
        first_grad,
        "truncate keeps the parameters' gradients"
    );

    let (x, second_root) = step(&mut graph, -1.0);
    assert_eq!(graph.len(), first_len);
    assert_eq!(
        x.index(),
        parameters,
        "ids restart right after the parameters"
    );
    graph.backward(second_root);

    let mut fresh = Graph::new();
    let fresh_w = fresh.leaf(0.5);
    let fresh_x = fresh.leaf(-1.0);
    let wx = fresh.mul(fresh_w, fresh_x);
    let fresh_root = fresh.exp(wx);
    fresh.backward(fresh_root);
    assert_eq!(graph.data(second_root), fresh.data(fresh_root));
    assert_eq!(graph.grad(w), fresh.grad(fresh_w));
    assert_eq!(graph.grad(x), fresh.grad(fresh_x));
    assert_eq!(
        graph.grad(w),
        -(-0.5f64).exp(),
        "d exp(w x)/dw = x exp(w x)"
    );
}

/// Truncating to more nodes than the graph has is a no-op.
#[test]
fn truncate_beyond_len_keeps_everything() {
    let mut graph = Graph::new();
    let x = graph.leaf(1.0);
    graph.truncate(10);
    assert_eq!((graph.len(), graph.data(x)), (1, 1.0));
}

/// backward is a loop, not a recursion: a chain of a million nodes must not overflow the stack
/// (micrograd's recursive topological sort does).
#[test]
fn deep_chain_does_not_overflow() {
    let mut graph = Graph::new();
    let x = graph.leaf(0.0);
    let mut y = x;
    for _ in 0..1_000_000 {
        y = graph.add_const(y, 1.0);
    }
    graph.backward(y);
    assert_eq!((graph.data(y), graph.grad(x)), (1e6, 1.0));
}

#[test]
#[should_panic(expected = "not in this graph")]
fn backward_from_a_dropped_node_panics() {
    let mut graph = Graph::new();
    let x = graph.leaf(1.0);
    let y = graph.exp(x);
    graph.truncate(1);
    graph.backward(y);
}
