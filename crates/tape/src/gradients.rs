//! The backward pass and the container it fills.

use crate::ops::{self, Backward, Op};
use crate::tape::{Node, Slot};
use crate::{Float, Tape, TapeError, Tensor, Var};

/// The gradients of one backward pass, keyed by [`Var`].
///
/// Gradients live here rather than in the tape, so a second backward (into a new container, or into
/// this one, which it overwrites) never adds to the first. Reusing one container across steps with
/// [`Tape::backward_into`] or [`Tape::backward_parameters_into`] keeps its buffers: no allocation
/// once warm.
#[derive(Default)]
pub struct Gradients<F: Float> {
    parameters: Vec<Tensor<F>>,
    /// Whether any gradient reached parameter `i`.
    parameters_reached: Vec<bool>,
    /// The nodes' gradient buffers. A pass that keeps every gradient gives node `i` buffer `i`; one
    /// that keeps the parameters' only lends them out as a pool (see
    /// [`Tape::backward_parameters_into`]).
    buffers: Vec<Tensor<F>>,
    /// For each node of the pass, the buffer holding its gradient, or [`UNREACHED`]: unreached
    /// nodes are skipped by the walk.
    holders: Vec<usize>,
    /// The pool's buffers free for the next node a gradient reaches first.
    free: Vec<usize>,
    /// Whether the last pass kept the nodes' gradients (not only the parameters').
    keeps_nodes: bool,
    /// How many nodes this pass covered, and the loss it started from (whose step they belong to).
    covered: usize,
    loss: Option<Var>,
}

/// The holder of a node no gradient has reached.
const UNREACHED: usize = usize::MAX;

impl<F: Float> Gradients<F> {
    /// An empty container, to be filled by [`Tape::backward_into`] or
    /// [`Tape::backward_parameters_into`].
    pub fn new() -> Self {
        Gradients {
            parameters: Vec::new(),
            parameters_reached: Vec::new(),
            buffers: Vec::new(),
            holders: Vec::new(),
            free: Vec::new(),
            keeps_nodes: false,
            covered: 0,
            loss: None,
        }
    }

    /// The gradient of the loss with respect to `var`: zeros if the loss does not depend on it, and
    /// `None` if `var` was not on the tape when the loss was (another tape, a later step, or
    /// recorded after it), or is not a parameter after [`Tape::backward_parameters_into`].
    pub fn get(&self, var: Var) -> Option<&Tensor<F>> {
        if !self.loss.is_some_and(|loss| loss.same_tape(var)) {
            return None;
        }
        match var.slot() {
            Slot::Parameter(index) => self.parameters.get(index),
            Slot::Node(index) => {
                let same_step = self.loss.is_some_and(|loss| loss.same_step(var));
                (self.keeps_nodes && same_step && index < self.covered)
                    .then(|| &self.buffers[index])
            }
        }
    }

    /// Where a backward rule writes the gradients of the parameters and of `below`, the nodes
    /// recorded before the one being propagated.
    fn sink<'a>(&'a mut self, below: &'a [Node<F>]) -> GradSink<'a, F> {
        GradSink {
            parameters: &mut self.parameters,
            parameters_reached: &mut self.parameters_reached,
            nodes: below,
            buffers: &mut self.buffers,
            holders: &mut self.holders[..below.len()],
            free: &mut self.free,
            pooled: !self.keeps_nodes,
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
/// A gradient buffer is sized and handed out when the first contribution reaches it, not before
/// the walk, and it is not zeroed then: the first contribution of a matrix product writes it whole
/// ([`GradSink::first`]), so most buffers are never zeroed at all.
pub(crate) struct GradSink<'a, F: Float> {
    parameters: &'a mut [Tensor<F>],
    parameters_reached: &'a mut [bool],
    /// The recorded nodes below the one being propagated, whose shapes their gradients take.
    nodes: &'a [Node<F>],
    buffers: &'a mut Vec<Tensor<F>>,
    holders: &'a mut [usize],
    free: &'a mut Vec<usize>,
    pooled: bool,
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
        match var.slot() {
            Slot::Parameter(index) => {
                let reached = &mut self.parameters_reached[index];
                (
                    &mut self.parameters[index],
                    !std::mem::replace(reached, true),
                )
            }
            Slot::Node(index) => match self.holders[index] {
                UNREACHED => {
                    let buffer = self.reach(index);
                    (buffer, true)
                }
                holder => (&mut self.buffers[holder], false),
            },
        }
    }

    /// Gives node `index`, reached for the first time, its buffer (its own, or one from the pool),
    /// sized to its value and with unspecified elements.
    fn reach(&mut self, index: usize) -> &mut Tensor<F> {
        let holder = if !self.pooled {
            index
        } else if let Some(free) = self.free.pop() {
            free
        } else {
            self.buffers.push(Tensor::empty());
            // Every buffer can be free at once: releasing one never allocates.
            self.free.reserve(self.buffers.len());
            self.buffers.len() - 1
        };
        self.holders[index] = holder;
        let buffer = &mut self.buffers[holder];
        buffer.resize(self.nodes[index].value.shape());
        buffer
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
    pub fn backward_into(&self, loss: Var, gradients: &mut Gradients<F>) -> Result<(), TapeError> {
        self.backward_keeping(loss, gradients, true)
    }

    /// The gradients of `loss` with respect to the parameters alone, into an existing container,
    /// overwriting it and reusing its buffers: what a training step needs. The parameters'
    /// gradients are the same bits as [`Tape::backward_into`]'s, but no node's gradient is kept
    /// ([`Gradients::get`] returns `None` for one), so the nodes' gradients take the memory of those
    /// alive at once during the walk rather than one buffer per node: a node's buffer returns to a
    /// pool as soon as its backward rule has run, and a node that a gradient reaches first takes one
    /// from it.
    ///
    /// ```
    /// use ndarray::arr1;
    /// use tape::{Gradients, Tape};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let w = tape.parameter(arr1(&[1.0, 2.0]));
    /// let squared = tape.square(w)?;
    /// let loss = tape.sum(squared)?;
    /// let mut gradients = Gradients::new();
    /// tape.backward_parameters_into(loss, &mut gradients)?;
    /// // d/dw sum(w^2) = 2w.
    /// assert_eq!(*gradients.parameter(w), arr1(&[2.0, 4.0]));
    /// assert!(gradients.get(squared).is_none(), "no node's gradient is kept");
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn backward_parameters_into(
        &self,
        loss: Var,
        gradients: &mut Gradients<F>,
    ) -> Result<(), TapeError> {
        self.backward_keeping(loss, gradients, false)
    }

    /// The backward pass, keeping the nodes' gradients or only the parameters'.
    ///
    /// Nodes are stored in the order they were recorded, which is a topological order, so one reverse
    /// sweep over the tape visits every node after all its consumers: no recursion, no sorting.
    fn backward_keeping(
        &self,
        loss: Var,
        gradients: &mut Gradients<F>,
        keep_nodes: bool,
    ) -> Result<(), TapeError> {
        let loss_value = self.try_value(loss)?;
        if loss_value.len() != 1 {
            let shape = loss_value.shape().to_vec();
            return Err(TapeError::NotScalar { shape });
        }
        gradients
            .parameters
            .resize_with(self.parameters.len(), Tensor::empty);
        for (gradient, value) in gradients.parameters.iter_mut().zip(self.parameters.iter()) {
            gradient.resize(value.shape());
        }
        gradients.parameters_reached.clear();
        gradients
            .parameters_reached
            .resize(self.parameters.len(), false);
        gradients.keeps_nodes = keep_nodes;
        gradients.loss = Some(loss);
        let Slot::Node(loss_index) = loss.slot() else {
            for gradient in &mut gradients.parameters {
                gradient.as_mut_slice().fill(F::zero());
            }
            // A parameter used directly as the loss: d loss / d loss = 1, nothing else to walk.
            gradients.parameters[loss_index_of(loss)]
                .as_mut_slice()
                .fill(F::one());
            gradients.covered = 0;
            return Ok(());
        };
        let covered = loss_index + 1;
        gradients.covered = covered;
        if keep_nodes && gradients.buffers.len() < covered {
            gradients.buffers.resize_with(covered, Tensor::empty);
        }
        gradients.holders.clear();
        gradients.holders.resize(covered, UNREACHED);
        // Every buffer starts free, taken in the same order by every pass over the same recording,
        // so a warm pass finds each buffer big enough for the nodes it serves.
        gradients.free.clear();
        if !keep_nodes {
            gradients.free.extend((0..gradients.buffers.len()).rev());
        }
        let nodes = &self.nodes[..covered];
        gradients
            .sink(nodes)
            .reach(loss_index)
            .as_mut_slice()
            .fill(F::one());

        for (index, node) in nodes.iter().enumerate().rev() {
            let holder = gradients.holders[index];
            if holder == UNREACHED {
                continue;
            }
            if !matches!(node.op, Op::Leaf) {
                // Lent out while the rule writes the inputs' gradients (which are other buffers).
                let grad = std::mem::replace(&mut gradients.buffers[holder], Tensor::empty());
                let mut context = Backward {
                    tape: self,
                    node,
                    grad: &grad,
                    sink: gradients.sink(&nodes[..index]),
                };
                ops::backward(&mut context);
                gradients.buffers[holder] = grad;
            }
            if !keep_nodes {
                gradients.free.push(holder);
            }
        }
        // What the loss does not depend on has gradient zero.
        let parameters = gradients.parameters.iter_mut();
        for (gradient, _) in parameters
            .zip(&gradients.parameters_reached)
            .filter(|(_, reached)| !**reached)
        {
            gradient.as_mut_slice().fill(F::zero());
        }
        if keep_nodes {
            for (index, node) in nodes.iter().enumerate() {
                if gradients.holders[index] == UNREACHED {
                    gradients.buffers[index]
                        .resize(node.value.shape())
                        .fill(F::zero());
                }
            }
        }
        Ok(())
    }
}

fn loss_index_of(var: Var) -> usize {
    match var.slot() {
        Slot::Parameter(index) | Slot::Node(index) => index,
    }
}
