//! The scalar-autograd baseline and oracle: microgpt.py's `Value` engine and model, ported to Rust.
//!
//! One graph node per scalar, as in Karpathy's microgpt.py: every op records its children and its
//! local gradients when it is created, and backward walks the nodes in reverse creation order doing
//! `child.grad += local_grad * node.grad`. Nodes live in an arena ([`Graph`]) and are named by `Copy`
//! ids ([`Value`]); the parameters stay at the front of the arena and everything after them is dropped
//! (keeping the capacity) before the next step.
//!
//! The model ([`ScalarGpt`]) follows microgpt.py's order of operations exactly (`sum` left to right,
//! `a / b` as `a * b ** -1`, `softmax` with a plain-number max, ...), so its forward values match
//! microgpt.py's round-off for round-off. It serves as the oracle of the parity tests for the tensor
//! engine and as the baseline of the benchmarks. It depends on no other crate of the workspace.
//!
//! ```
//! use scalar::{Config, Graph, ScalarGpt};
//!
//! // The engine: f(a, b) = a * b + a at a = 2, b = -3.
//! let mut graph = Graph::new();
//! let (a, b) = (graph.leaf(2.0), graph.leaf(-3.0));
//! let product = graph.mul(a, b);
//! let f = graph.add(product, a);
//! graph.backward(f);
//! assert_eq!(graph.data(f), -4.0);
//! assert_eq!(graph.grad(a), -2.0); // b + 1
//! assert_eq!(graph.grad(b), 2.0); // a
//!
//! // The model: a tiny GPT trained for a few steps on one document.
//! let config = Config { n_layer: 1, n_embd: 8, n_head: 2, block_size: 8, vocab_size: 4 };
//! let mut seed = 1u64;
//! let mut draw = || {
//!     // Any generator will do; a real run draws N(0, 0.08).
//!     seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
//!     ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.2
//! };
//! let mut model = ScalarGpt::init(config, &mut draw).unwrap();
//! let document = [3, 0, 1, 2, 3]; // BOS = 3 at both ends
//! let first = model.train_step(&document, 0, 20, 0.01);
//! for step in 1..20 {
//!     model.train_step(&document, step, 20, 0.01);
//! }
//! assert!(model.loss(&document) < first);
//! ```

mod adam;
mod config;
mod error;
mod forward;
mod graph;
pub mod layers;
mod model;
mod ops;
mod tensor;

pub use adam::Adam;
pub use config::Config;
pub use error::Error;
pub use graph::{Graph, Value};
pub use model::ScalarGpt;
pub use tensor::NamedTensor;
