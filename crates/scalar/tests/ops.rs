//! Every op's gradient against central finite differences of its own forward value, on random inputs.
//!
//! Oracle: `(f(x + h) - f(x - h)) / 2h` in f64 with `h = 1e-6 * max(1, |x|)`. Its error is about
//! `h^2 |f'''| / 6 + eps |f| / h`, below `1e-7 * max(1, |f'|)` on the input ranges used here (they
//! keep away from relu's kink and from log's and pow's singularity at 0). A wrong local gradient (a
//! missing factor, a wrong sign, `x^e` for `e x^(e-1)`) is off by O(1) relative and fails.

use proptest::prelude::*;
use scalar::{Graph, Value};

type Unary = fn(&mut Graph, Value) -> Value;
type Binary = fn(&mut Graph, Value, Value) -> Value;

fn step(x: f64) -> f64 {
    1e-6 * x.abs().max(1.0)
}

fn assert_close(analytic: f64, numeric: f64, what: &str) -> Result<(), TestCaseError> {
    let tolerance = 1e-7 * analytic.abs().max(1.0);
    prop_assert!(
        (analytic - numeric).abs() <= tolerance,
        "{what}: backward gave {analytic}, finite differences {numeric}"
    );
    Ok(())
}

fn eval_unary(op: Unary, x: f64) -> f64 {
    let mut graph = Graph::new();
    let a = graph.leaf(x);
    let y = op(&mut graph, a);
    graph.data(y)
}

fn check_unary(op: Unary, x: f64, what: &str) -> Result<(), TestCaseError> {
    let mut graph = Graph::new();
    let a = graph.leaf(x);
    let y = op(&mut graph, a);
    graph.backward(y);
    let h = step(x);
    let numeric = (eval_unary(op, x + h) - eval_unary(op, x - h)) / (2.0 * h);
    assert_close(graph.grad(a), numeric, what)
}

fn eval_binary(op: Binary, x: f64, y: f64) -> f64 {
    let mut graph = Graph::new();
    let (a, b) = (graph.leaf(x), graph.leaf(y));
    let z = op(&mut graph, a, b);
    graph.data(z)
}

fn check_binary(op: Binary, x: f64, y: f64, what: &str) -> Result<(), TestCaseError> {
    let mut graph = Graph::new();
    let (a, b) = (graph.leaf(x), graph.leaf(y));
    let z = op(&mut graph, a, b);
    graph.backward(z);
    let (hx, hy) = (step(x), step(y));
    let numeric_x = (eval_binary(op, x + hx, y) - eval_binary(op, x - hx, y)) / (2.0 * hx);
    let numeric_y = (eval_binary(op, x, y + hy) - eval_binary(op, x, y - hy)) / (2.0 * hy);
    assert_close(graph.grad(a), numeric_x, &format!("{what} d/da"))?;
    assert_close(graph.grad(b), numeric_y, &format!("{what} d/db"))
}

/// Keeps a value at least `margin` away from 0: relu's kink (any margin above the step `h` will
/// do) or a divisor (where the error of the differences grows like `h^2 / y^4`).
fn away_from_zero(margin: f64) -> impl Strategy<Value = f64> {
    prop_oneof![-5.0..-margin, margin..5.0]
}

proptest! {
    #[test]
    fn add_matches_finite_differences(x in -5.0..5.0, y in -5.0..5.0) {
        check_binary(Graph::add, x, y, "add")?;
    }

    #[test]
    fn mul_matches_finite_differences(x in -5.0..5.0, y in -5.0..5.0) {
        check_binary(Graph::mul, x, y, "mul")?;
    }

    #[test]
    fn sub_matches_finite_differences(x in -5.0..5.0, y in -5.0..5.0) {
        check_binary(Graph::sub, x, y, "sub")?;
    }

    #[test]
    fn div_matches_finite_differences(x in -5.0..5.0, y in away_from_zero(0.1)) {
        check_binary(Graph::div, x, y, "div")?;
    }

    #[test]
    fn exp_matches_finite_differences(x in -5.0..5.0) {
        check_unary(Graph::exp, x, "exp")?;
    }

    #[test]
    fn log_matches_finite_differences(x in 0.1..10.0) {
        check_unary(Graph::log, x, "log")?;
    }

    #[test]
    fn relu_matches_finite_differences(x in away_from_zero(1e-3)) {
        check_unary(Graph::relu, x, "relu")?;
    }

    #[test]
    fn neg_matches_finite_differences(x in -5.0..5.0) {
        check_unary(Graph::neg, x, "neg")?;
    }

    #[test]
    fn pow_matches_finite_differences(x in 0.2..5.0, exponent in -3.0..3.0) {
        let mut graph = Graph::new();
        let a = graph.leaf(x);
        let y = graph.pow(a, exponent);
        graph.backward(y);
        let h = step(x);
        let numeric = ((x + h).powf(exponent) - (x - h).powf(exponent)) / (2.0 * h);
        assert_close(graph.grad(a), numeric, "pow")?;
        // The forward value is C pow, as Python's `float ** float`.
        prop_assert_eq!(graph.data(y), x.powf(exponent));
    }

    #[test]
    fn constant_ops_match_finite_differences(x in -5.0..5.0, constant in away_from_zero(0.1)) {
        let mut graph = Graph::new();
        let a = graph.leaf(x);
        let sum = graph.add_const(a, constant);
        let product = graph.mul_const(a, constant);
        let quotient = graph.div_const(a, constant);
        let h = step(x);
        for (node, f, what) in [
            (sum, (x + h + constant - (x - h + constant)) / (2.0 * h), "add_const"),
            (product, ((x + h) * constant - (x - h) * constant) / (2.0 * h), "mul_const"),
            (quotient, ((x + h) / constant - (x - h) / constant) / (2.0 * h), "div_const"),
        ] {
            graph.backward(node);
            assert_close(graph.grad(a), f, what)?;
        }
    }

    #[test]
    fn sum_passes_one_to_every_term(values in prop::collection::vec(-5.0f64..5.0, 1..8)) {
        let mut graph = Graph::new();
        let leaves: Vec<Value> = values.iter().map(|&x| graph.leaf(x)).collect();
        let total = graph.sum(&leaves);
        graph.backward(total);
        // Left to right, as Python's sum.
        prop_assert_eq!(graph.data(total), values[1..].iter().fold(values[0], |acc, &x| acc + x));
        for &leaf in &leaves {
            prop_assert_eq!(graph.grad(leaf), 1.0);
        }
    }

    /// The chain rule through several ops and a reused value:
    /// f(x, y) = exp((x*y - x) / (y^2 + 1)) + log(x*x + 1) + relu(y - x).
    #[test]
    fn composite_expression_matches_finite_differences(
        x in -2.0f64..2.0,
        y in -2.0f64..2.0,
    ) {
        prop_assume!((y - x).abs() > 1e-3);
        fn composite(graph: &mut Graph, x: Value, y: Value) -> Value {
            let xy = graph.mul(x, y);
            let numerator = graph.sub(xy, x);
            let y_squared = graph.pow(y, 2.0);
            let denominator = graph.add_const(y_squared, 1.0);
            let ratio = graph.div(numerator, denominator);
            let first = graph.exp(ratio);
            let x_squared = graph.mul(x, x);
            let shifted = graph.add_const(x_squared, 1.0);
            let second = graph.log(shifted);
            let difference = graph.sub(y, x);
            let third = graph.relu(difference);
            let partial = graph.add(first, second);
            graph.add(partial, third)
        }
        check_binary(composite, x, y, "composite")?;
    }
}
