//! The backward pass and the container it fills.

use crate::ops::{self, Backward, Op};
use crate::tape::Slot;
use crate::{Float, Tape, TapeError, Tensor, Var};

/// The gradients of one backward pass, keyed by [`Var`].
///
/// Gradients live here rather than in the tape, so a second backward (into a new container, or into
/// this one, which it overwrites) never adds to the first. Reusing one container across steps with
/// [`Tape::backward_into`] keeps its buffers: no allocation once warm.
#[derive(Default)]
pub struct Gradients<F: Float> {
    parameters: Vec<Tensor<F>>,
    nodes: Vec<Tensor<F>>,
    /// Whether any gradient reached node `i`; unreached nodes are skipped by the walk.
    reached: Vec<bool>,
    /// Whether any gradient reached parameter `i`.
    parameters_reached: Vec<bool>,
    /// How many nodes this pass covered, and the loss it started from (whose step they belong to).
    covered: usize,
    loss: Option<Var>,
}

impl<F: Float> Gradients<F> {
    /// An empty container, to be filled by [`Tape::backward_into`].
    pub fn new() -> Self {
        Gradients {
            parameters: Vec::new(),
            nodes: Vec::new(),
            reached: Vec::new(),
            parameters_reached: Vec::new(),
            covered: 0,
            loss: None,
        }
    }

    /// The gradient of the loss with respect to `var`: zeros if the loss does not depend on it, and
    /// `None` if `var` was not on the tape when the loss was (another tape, a later step, or
    /// recorded after it).
    pub fn get(&self, var: Var) -> Option<&Tensor<F>> {
        if !self.loss.is_some_and(|loss| loss.same_tape(var)) {
            return None;
        }
        match var.slot() {
            Slot::Parameter(index) => self.parameters.get(index),
            Slot::Node(index) => {
                let same_step = self.loss.is_some_and(|loss| loss.same_step(var));
                (same_step && index < self.covered).then(|| &self.nodes[index])
            }
        }
    }

    /// The gradient of a parameter (see [`Gradients::get`]).
    ///
    /// # Panics
    /// If `var` is not a parameter known to this pass.
    pub fn parameter(&self, var: Var) -> &Tensor<F> {
        assert!(var.is_parameter(), "{var:?} is not a parameter");
        self.get(var)
            .expect("the parameter existed when backward ran")
    }
}

/// Mutable access to the gradients of the nodes below the one being propagated, and of parameters.
///
/// A gradient buffer is zeroed when the first contribution reaches it, not before the walk: the
/// first contribution of a matrix product writes its buffer whole ([`GradSink::first`]), so most
/// buffers are never zeroed at all.
pub(crate) struct GradSink<'a, F: Float> {
    parameters: &'a mut [Tensor<F>],
    parameters_reached: &'a mut [bool],
    nodes: &'a mut [Tensor<F>],
    reached: &'a mut [bool],
}

impl<F: Float> GradSink<'_, F> {
    /// The gradient accumulator of an input (always recorded before the node that uses it), zero
    /// before its first contribution.
    pub(crate) fn of(&mut self, var: Var) -> &mut Tensor<F> {
        let (gradient, first) = self.first(var);
        if first {
            gradient.as_mut_slice().fill(F::zero());
        }
        gradient
    }

    /// The gradient buffer of an input, and whether this is its first contribution: then its
    /// elements are unspecified and the caller must write every one of them (it is sized already);
    /// otherwise it adds to them.
    pub(crate) fn first(&mut self, var: Var) -> (&mut Tensor<F>, bool) {
        let (gradient, reached) = match var.slot() {
            Slot::Parameter(index) => (
                &mut self.parameters[index],
                &mut self.parameters_reached[index],
            ),
            Slot::Node(index) => (&mut self.nodes[index], &mut self.reached[index]),
        };
        (gradient, !std::mem::replace(reached, true))
    }
}

impl<F: Float> Tape<F> {
    /// The gradients of the one-element value `loss` with respect to every parameter and every value
    /// recorded before it.
    pub fn backward(&self, loss: Var) -> Result<Gradients<F>, TapeError> {
        let mut gradients = Gradients::new();
        self.backward_into(loss, &mut gradients)?;
        Ok(gradients)
    }

    /// [`Tape::backward`] into an existing container, overwriting it and reusing its buffers.
    ///
    /// Nodes are stored in the order they were recorded, which is a topological order, so one reverse
    /// sweep over the tape visits every node after all its consumers: no recursion, no sorting.
    pub fn backward_into(&self, loss: Var, gradients: &mut Gradients<F>) -> Result<(), TapeError> {
        let loss_value = self.try_value(loss)?;
        if loss_value.len() != 1 {
            let shape = loss_value.shape().to_vec();
            return Err(TapeError::NotScalar { shape });
        }
        gradients
            .parameters
            .resize_with(self.parameters.len(), Tensor::empty);
        for (gradient, value) in gradients.parameters.iter_mut().zip(&self.parameters) {
            gradient.resize(value.shape());
        }
        gradients.parameters_reached.clear();
        gradients
            .parameters_reached
            .resize(self.parameters.len(), false);
        let Slot::Node(loss_index) = loss.slot() else {
            for gradient in &mut gradients.parameters {
                gradient.as_mut_slice().fill(F::zero());
            }
            // A parameter used directly as the loss: d loss / d loss = 1, nothing else to walk.
            gradients.parameters[loss_index_of(loss)]
                .as_mut_slice()
                .fill(F::one());
            gradients.covered = 0;
            gradients.loss = Some(loss);
            return Ok(());
        };
        let covered = loss_index + 1;
        if gradients.nodes.len() < covered {
            gradients.nodes.resize_with(covered, Tensor::empty);
        }
        gradients.reached.clear();
        gradients.reached.resize(covered, false);
        for (gradient, node) in gradients.nodes.iter_mut().zip(&self.nodes[..covered]) {
            gradient.resize(node.value.shape());
        }
        gradients.nodes[loss_index].as_mut_slice().fill(F::one());
        gradients.reached[loss_index] = true;
        gradients.covered = covered;
        gradients.loss = Some(loss);

        for index in (0..covered).rev() {
            let node = &self.nodes[index];
            if !gradients.reached[index] || matches!(node.op, Op::Leaf) {
                continue;
            }
            let (below, rest) = gradients.nodes.split_at_mut(index);
            let mut context = Backward {
                tape: self,
                node,
                grad: &rest[0],
                sink: GradSink {
                    parameters: &mut gradients.parameters,
                    parameters_reached: &mut gradients.parameters_reached,
                    nodes: below,
                    reached: &mut gradients.reached[..index],
                },
            };
            ops::backward(&mut context);
        }
        // What the loss does not depend on has gradient zero.
        let parameters = gradients.parameters.iter_mut();
        let nodes = gradients.nodes[..covered].iter_mut();
        let reached = gradients
            .parameters_reached
            .iter()
            .chain(&gradients.reached);
        for (gradient, _) in parameters.chain(nodes).zip(reached).filter(|(_, r)| !**r) {
            gradient.as_mut_slice().fill(F::zero());
        }
        Ok(())
    }
}

fn loss_index_of(var: Var) -> usize {
    match var.slot() {
        Slot::Parameter(index) | Slot::Node(index) => index,
    }
}
