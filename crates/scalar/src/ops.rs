//! The ops of microgpt.py's `Value`, each with its forward value and its local gradient side by side.
//!
//! Where microgpt.py mixes a `Value` with a plain number (`x * -1`, `ms / len(x)`, `val - max_val`), it
//! wraps the number in a throwaway leaf that no gradient ever reaches; here those are the one-child ops
//! [`Graph::add_const`] and [`Graph::mul_const`], which compute the same value and pass the same
//! gradient to the `Value` operand without the extra node.

use crate::graph::{Graph, NO_CHILD, Value};

impl Graph {
    fn unary(&mut self, data: f64, child: Value, local_grad: f64) -> Value {
        self.push(data, [child.raw(), NO_CHILD], [local_grad, 0.0])
    }

    fn binary(&mut self, data: f64, children: [Value; 2], local_grads: [f64; 2]) -> Value {
        let children = children.map(Value::raw);
        self.push(data, children, local_grads)
    }

    /// `a + b`; local gradients (1, 1).
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let (a, b) = (graph.leaf(1.5), graph.leaf(2.0));
    /// let c = graph.add(a, b);
    /// assert_eq!(graph.data(c), 3.5);
    /// ```
    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.binary(self.data(a) + self.data(b), [a, b], [1.0, 1.0])
    }

    /// `a * b`; local gradients (b, a).
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let (a, b) = (graph.leaf(1.5), graph.leaf(2.0));
    /// let c = graph.mul(a, b);
    /// graph.backward(c);
    /// assert_eq!((graph.data(c), graph.grad(a), graph.grad(b)), (3.0, 2.0, 1.5));
    /// ```
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        let (a_data, b_data) = (self.data(a), self.data(b));
        self.binary(a_data * b_data, [a, b], [b_data, a_data])
    }

    /// `a + constant` (microgpt.py's `Value + number`); local gradient 1.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(1.0);
    /// let b = graph.add_const(a, 1e-5);
    /// assert_eq!(graph.data(b), 1.0 + 1e-5);
    /// ```
    pub fn add_const(&mut self, a: Value, constant: f64) -> Value {
        self.unary(self.data(a) + constant, a, 1.0)
    }

    /// `a * constant` (microgpt.py's `Value * number`); local gradient `constant`.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(3.0);
    /// let b = graph.mul_const(a, 0.5);
    /// graph.backward(b);
    /// assert_eq!((graph.data(b), graph.grad(a)), (1.5, 0.5));
    /// ```
    pub fn mul_const(&mut self, a: Value, constant: f64) -> Value {
        self.unary(self.data(a) * constant, a, constant)
    }

    /// `a ** exponent` for a constant exponent; local gradient `exponent * a ** (exponent - 1)`.
    ///
    /// Both powers use `f64::powf`, i.e. C `pow`, as Python's `float ** number` does.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(4.0);
    /// let b = graph.pow(a, -0.5);
    /// graph.backward(b);
    /// assert_eq!((graph.data(b), graph.grad(a)), (0.5, -0.0625)); // -0.5 * 4^-1.5
    /// ```
    pub fn pow(&mut self, a: Value, exponent: f64) -> Value {
        let a_data = self.data(a);
        let local_grad = exponent * a_data.powf(exponent - 1.0);
        self.unary(a_data.powf(exponent), a, local_grad)
    }

    /// Natural logarithm; local gradient `1 / a`.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(2.0);
    /// let b = graph.log(a);
    /// graph.backward(b);
    /// assert_eq!((graph.data(b), graph.grad(a)), (2f64.ln(), 0.5));
    /// ```
    pub fn log(&mut self, a: Value) -> Value {
        let a_data = self.data(a);
        self.unary(a_data.ln(), a, 1.0 / a_data)
    }

    /// `e ** a`; local gradient `e ** a`.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(0.0);
    /// let b = graph.exp(a);
    /// graph.backward(b);
    /// assert_eq!((graph.data(b), graph.grad(a)), (1.0, 1.0));
    /// ```
    pub fn exp(&mut self, a: Value) -> Value {
        let exp = self.data(a).exp();
        self.unary(exp, a, exp)
    }

    /// `max(0, a)`; local gradient 1 where `a > 0` and 0 elsewhere (so relu'(0) = 0, and a NaN input
    /// gives 0 as Python's `max(0, nan)` does).
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(-2.0);
    /// let b = graph.relu(a);
    /// graph.backward(b);
    /// assert_eq!((graph.data(b), graph.grad(a)), (0.0, 0.0));
    /// ```
    pub fn relu(&mut self, a: Value) -> Value {
        let a_data = self.data(a);
        let positive = a_data > 0.0;
        self.unary(
            if positive { a_data } else { 0.0 },
            a,
            f64::from(u8::from(positive)),
        )
    }

    /// `-a`, which microgpt.py computes as `a * -1`.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(2.0);
    /// let b = graph.neg(a);
    /// assert_eq!(graph.data(b), -2.0);
    /// ```
    pub fn neg(&mut self, a: Value) -> Value {
        self.mul_const(a, -1.0)
    }

    /// `a - b`, which microgpt.py computes as `a + (-b)` (two nodes).
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let (a, b) = (graph.leaf(5.0), graph.leaf(2.0));
    /// let c = graph.sub(a, b);
    /// graph.backward(c);
    /// assert_eq!((graph.data(c), graph.grad(b)), (3.0, -1.0));
    /// ```
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        let negated = self.neg(b);
        self.add(a, negated)
    }

    /// `a / b`, which microgpt.py computes as `a * b ** -1` (two nodes).
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let (a, b) = (graph.leaf(3.0), graph.leaf(4.0));
    /// let c = graph.div(a, b);
    /// graph.backward(c);
    /// assert_eq!((graph.data(c), graph.grad(a), graph.grad(b)), (0.75, 0.25, -0.1875));
    /// ```
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        let inverse = self.pow(b, -1.0);
        self.mul(a, inverse)
    }

    /// `a / constant`, which microgpt.py computes as `a * constant ** -1` with the power taken on the
    /// plain number (so `x / 3` multiplies by `pow(3, -1)`, not divides by 3).
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(6.0);
    /// let b = graph.div_const(a, 4.0);
    /// assert_eq!(graph.data(b), 1.5);
    /// ```
    pub fn div_const(&mut self, a: Value, constant: f64) -> Value {
        self.mul_const(a, constant.powf(-1.0))
    }

    /// Python's `sum(values)`: left to right, `((v0 + v1) + v2) + ..`, one `add` node per term after the
    /// first. Python starts from the integer 0, but `0 + v0` has exactly the value of `v0` and passes
    /// its gradient through unchanged, so that node is skipped. An empty slice gives a new leaf 0.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let values = [graph.leaf(1.0), graph.leaf(2.0), graph.leaf(3.0)];
    /// let total = graph.sum(&values);
    /// assert_eq!((graph.data(total), graph.len()), (6.0, 5)); // 3 leaves + 2 adds
    /// ```
    pub fn sum(&mut self, values: &[Value]) -> Value {
        match values.split_first() {
            None => self.leaf(0.0),
            Some((&first, rest)) => rest
                .iter()
                .fold(first, |total, &term| self.add(total, term)),
        }
    }

    /// Python's `sum(a * b for a, b in pairs)`: `((a0*b0 + a1*b1) + a2*b2) + ..`, one `mul` and one
    /// `add` node per term, left to right (the dot products of `linear` and attention).
    ///
    /// Python's `sum` starts from the integer 0; `0 + a0*b0` has exactly the value of `a0*b0` and
    /// passes its gradient through unchanged, so the accumulation starts from the first product.
    ///
    /// # Panics
    /// If `pairs` is empty.
    pub(crate) fn sum_of_products(
        &mut self,
        pairs: impl IntoIterator<Item = (Value, Value)>,
    ) -> Value {
        let mut pairs = pairs.into_iter();
        let (a, b) = pairs
            .next()
            .expect("sum of products needs at least one pair");
        let mut total = self.mul(a, b);
        for (a, b) in pairs {
            let product = self.mul(a, b);
            total = self.add(total, product);
        }
        total
    }
}
