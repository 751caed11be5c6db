//! The arena: one node per scalar, in creation order, with its children and local gradients inline.
//!
//! The ops themselves (forward value and local gradient side by side) live in `ops.rs`; this file only
//! knows how to store nodes, how to run the backward pass, and how to rewind the arena between steps.

/// A handle to one scalar node of a [`Graph`]: a leaf (a parameter or an input) or the result of an op.
///
/// It is `Copy` and 4 bytes: the node's index in the arena, which is also its creation order. A handle
/// is only meaningful for the graph that made it, and only until [`Graph::truncate`] removes its node;
/// after that the index may name a newer node, so do not keep handles to per-step nodes across steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Value(u32);

impl Value {
    /// The node's position in the arena, i.e. how many nodes were created before it.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let a = graph.leaf(1.0);
    /// let b = graph.exp(a);
    /// assert_eq!((a.index(), b.index()), (0, 1));
    /// ```
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The raw index, as stored in a node's edges.
    pub(crate) const fn raw(self) -> u32 {
        self.0
    }
}

/// A node's forward value and how it was made: up to two children and d(node)/d(child) for each,
/// computed at creation time.
///
/// A missing child is [`NO_CHILD`]: a leaf has none, a unary op uses slot 0 only. Marking missing
/// children (instead of padding with a dummy edge of local gradient 0) keeps backward exact even when
/// an upstream gradient is infinite, where `0 * inf` would inject a NaN microgpt.py never computes;
/// marking them in the ids (instead of an arity field) keeps a node at 32 bytes, which backward streams.
#[derive(Clone, Copy, Debug)]
struct Node {
    data: f64,
    local_grads: [f64; 2],
    children: [u32; 2],
}

/// The child id of an empty slot; [`Graph::push`] never hands out this id.
pub(crate) const NO_CHILD: u32 = u32::MAX;

/// A reverse-mode autodiff arena of scalars: the `Value` engine of microgpt.py without a heap object per
/// node.
///
/// Nodes (value and edges, 32 bytes) are appended to one vector and named by [`Value`] ids, so making
/// a node is a single push (three parallel vectors for values, gradients and edges made the forward
/// pass about 1.5x slower); gradients live in a second vector that only [`Graph::backward`] sizes and
/// fills. Every op records its children and its local gradients when it is created, so [`Graph::backward`] is
/// a single reverse sweep over the arena: creation order is a topological order, because a node's
/// children always exist before it.
///
/// Typical use keeps the parameters as the first leaves and rewinds to them after each step with
/// [`Graph::truncate`], which keeps the vectors' capacity, so a warm graph allocates nothing.
///
/// ```
/// use scalar::Graph;
///
/// let mut graph = Graph::new();
/// let w = graph.leaf(0.5); // a parameter
/// let parameters = graph.len();
/// for step in 0..2 {
///     let x = graph.leaf(3.0); // per-step input
///     let y = graph.mul(w, x);
///     graph.backward(y);
///     assert_eq!(graph.grad(w), 3.0); // not 6.0 on the second step: backward starts from zero
///     graph.truncate(parameters); // drop x and y, keep w (and its gradient)
///     assert_eq!(graph.len(), 1, "step {step}");
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    /// Gradients of the first `grad.len()` nodes; nodes past the end have gradient 0.
    grad: Vec<f64>,
}

impl Graph {
    /// An empty graph.
    ///
    /// ```
    /// assert!(scalar::Graph::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty graph with room for `capacity` nodes before it reallocates.
    ///
    /// ```
    /// let graph = scalar::Graph::with_capacity(1024);
    /// assert_eq!(graph.len(), 0);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            nodes: Vec::with_capacity(capacity),
            grad: Vec::with_capacity(capacity),
        }
    }

    /// The number of nodes in the arena.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// graph.leaf(1.0);
    /// assert_eq!(graph.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the arena holds no node.
    ///
    /// ```
    /// assert!(scalar::Graph::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A new leaf: a node with no children (a parameter, an input, or a constant one wants a gradient
    /// for), with gradient 0.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let x = graph.leaf(2.5);
    /// assert_eq!((graph.data(x), graph.grad(x)), (2.5, 0.0));
    /// ```
    pub fn leaf(&mut self, data: f64) -> Value {
        self.push(data, [NO_CHILD; 2], [0.0; 2])
    }

    /// The forward value of `value`.
    ///
    /// # Panics
    /// If `value` does not name a node of this graph (for example after [`Graph::truncate`]).
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let x = graph.leaf(4.0);
    /// let y = graph.pow(x, 0.5);
    /// assert_eq!(graph.data(y), 2.0);
    /// ```
    pub fn data(&self, value: Value) -> f64 {
        self.nodes[value.index()].data
    }

    /// d(root)/d(`value`) from the most recent [`Graph::backward`], or 0 for a node created after it
    /// (and for every node before any backward).
    ///
    /// # Panics
    /// If `value` does not name a node of this graph.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let x = graph.leaf(3.0);
    /// let y = graph.mul(x, x);
    /// graph.backward(y);
    /// assert_eq!(graph.grad(x), 6.0); // x used twice: 3 + 3
    /// ```
    pub fn grad(&self, value: Value) -> f64 {
        let index = value.index();
        assert!(
            index < self.len(),
            "grad: node {index} is not in this graph ({} nodes)",
            self.len()
        );
        self.grad.get(index).copied().unwrap_or(0.0)
    }

    /// Overwrites the forward value of a leaf, e.g. a parameter between steps.
    ///
    /// Nodes that were computed from it are not recomputed: set leaves, then build the expression.
    ///
    /// # Panics
    /// If `value` does not name a node of this graph.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let w = graph.leaf(1.0);
    /// graph.set_data(w, -1.0);
    /// assert_eq!(graph.data(w), -1.0);
    /// ```
    pub fn set_data(&mut self, value: Value, data: f64) {
        self.nodes[value.index()].data = data;
    }

    /// Reverse-mode sweep from `root`: afterwards [`Graph::grad`] of every node is d(root)/d(node).
    ///
    /// Semantics: gradients are *overwritten*, never accumulated across calls. Every gradient in the
    /// arena is first reset to 0, then `grad(root) = 1`, then the nodes `root, root-1, .., 0` are visited
    /// in reverse creation order (a topological order) and each does
    /// `grad(child) += local_grad * grad(node)` for its children, as microgpt.py's `Value.backward`.
    /// Calling it twice therefore gives the same gradients as calling it once. Nodes that `root` does
    /// not depend on end with gradient 0. (microgpt.py sums a node's incoming contributions in the
    /// order of its depth-first topological sort; the reverse creation order used here can add the same
    /// terms in another order, so gradients agree with it to round-off, not bit for bit.)
    ///
    /// # Panics
    /// If `root` does not name a node of this graph.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let x = graph.leaf(2.0);
    /// let y = graph.exp(x);
    /// graph.backward(y);
    /// graph.backward(y);
    /// assert_eq!(graph.grad(x), 2f64.exp()); // once, not twice
    /// ```
    pub fn backward(&mut self, root: Value) {
        let root = root.index();
        assert!(
            root < self.len(),
            "backward: node {root} is not in this graph ({} nodes)",
            self.len()
        );
        self.grad.clear();
        self.grad.resize(self.nodes.len(), 0.0);
        self.grad[root] = 1.0;
        for (index, node) in self.nodes[..=root].iter().enumerate().rev() {
            let upstream = self.grad[index];
            let [first, second] = node.children;
            if first == NO_CHILD {
                continue;
            }
            self.grad[first as usize] += node.local_grads[0] * upstream;
            if second != NO_CHILD {
                self.grad[second as usize] += node.local_grads[1] * upstream;
            }
        }
    }

    /// Drops every node created at or after position `len`, keeping the capacity (and the values and
    /// gradients of the nodes that stay). Does nothing if the graph has `len` nodes or fewer.
    ///
    /// Handles to dropped nodes become invalid; the indices are reused by the next nodes created.
    ///
    /// ```
    /// let mut graph = scalar::Graph::new();
    /// let w = graph.leaf(2.0);
    /// let keep = graph.len();
    /// let y = graph.mul(w, w);
    /// graph.backward(y);
    /// graph.truncate(keep);
    /// assert_eq!((graph.len(), graph.grad(w)), (1, 4.0));
    /// ```
    pub fn truncate(&mut self, len: usize) {
        self.nodes.truncate(len);
        self.grad.truncate(len);
    }

    /// Appends a node (children ids, [`NO_CHILD`] for an empty slot); the single place where the
    /// arena grows.
    pub(crate) fn push(&mut self, data: f64, children: [u32; 2], local_grads: [f64; 2]) -> Value {
        let index = self.nodes.len();
        assert!(
            index < NO_CHILD as usize,
            "graph is full: a Value id is a u32"
        );
        self.nodes.push(Node {
            data,
            local_grads,
            children,
        });
        Value(index as u32)
    }

    /// Hands the values and gradients of the first `count` nodes (the parameters) to `update`, e.g.
    /// an optimizer step; the values are copied out and back because they are stored inside nodes.
    ///
    /// # Panics
    /// If the graph has fewer than `count` nodes.
    pub(crate) fn update_leading(
        &mut self,
        count: usize,
        values: &mut Vec<f64>,
        update: impl FnOnce(&mut [f64], &mut [f64]),
    ) {
        if self.grad.len() < count {
            self.grad.resize(count, 0.0);
        }
        values.clear();
        values.extend(self.nodes[..count].iter().map(|node| node.data));
        update(values, &mut self.grad[..count]);
        for (node, &value) in self.nodes[..count].iter_mut().zip(values.iter()) {
            node.data = value;
        }
    }
}
