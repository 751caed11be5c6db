//! The tape: an arena of recorded values, handed out as small `Copy` ids.

use std::sync::atomic::{AtomicU32, Ordering};

use ndarray::{Array, Dimension};

use crate::custom::{CustomOp, CustomOpId};
use crate::ops::Op;
use crate::parameters::Parameters;
use crate::tensor::MAX_AXES;
use crate::{Float, TapeError, Tensor};

/// A handle to a value on a [`Tape`]: a parameter, a constant or the result of an op.
///
/// It is `Copy` and 12 bytes: the identity of its tape, an index into it and the step it was
/// recorded in, so a handle passed to another tape ([`TapeError::ForeignVar`]) or kept past
/// [`Tape::clear`] ([`TapeError::StaleVar`]) is caught instead of silently reading another value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Var {
    tape: u32,
    index: u32,
    step: u32,
}

/// The identity of the next tape created: every tape gets its own, so its handles are told apart.
static NEXT_TAPE: AtomicU32 = AtomicU32::new(0);

/// The `step` of parameters, which outlive every clear.
const PARAMETER: u32 = u32::MAX;

/// Where a [`Var`] lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Parameter(usize),
    Node(usize),
}

impl Var {
    pub(crate) fn slot(self) -> Slot {
        if self.step == PARAMETER {
            Slot::Parameter(self.index as usize)
        } else {
            Slot::Node(self.index as usize)
        }
    }

    /// Whether both variables were recorded on the same tape in the same step (parameters share
    /// one "step").
    pub(crate) fn same_step(self, other: Var) -> bool {
        self.tape == other.tape && self.step == other.step
    }

    /// Whether both variables belong to the same tape.
    pub(crate) fn same_tape(self, other: Var) -> bool {
        self.tape == other.tape
    }

    /// Whether this is a parameter (a value that persists across [`Tape::clear`]).
    pub fn is_parameter(self) -> bool {
        self.step == PARAMETER
    }
}

/// One recorded value: what it is, how it was made, and what its op kept for the backward pass.
pub(crate) struct Node<F> {
    pub(crate) value: Tensor<F>,
    /// Forward results the op's backward needs (softmax probabilities, inverse norms, ...).
    pub(crate) saved: Tensor<F>,
    pub(crate) op: Op<F>,
}

impl<F: Float> Node<F> {
    fn empty() -> Self {
        Node {
            value: Tensor::empty(),
            saved: Tensor::empty(),
            op: Op::Leaf,
        }
    }
}

/// A reverse-mode automatic-differentiation tape over vectors and matrices.
///
/// Parameters ([`Tape::parameter`]) persist; everything recorded after them (constants and op results)
/// belongs to the current step and is dropped by [`Tape::clear`], whose buffers the next step reuses,
/// so a warm tape records without allocating. Ops are methods (`tape.add(a, b)`, `tape.linear(x, w)`,
/// ...) that check shapes, compute the value at once and return a [`Var`].
pub struct Tape<F: Float> {
    /// This tape's identity, carried by every [`Var`] it hands out.
    id: u32,
    pub(crate) parameters: Parameters<F>,
    /// Nodes of the current step are `nodes[..len]`; the rest are spare buffers of earlier steps.
    pub(crate) nodes: Vec<Node<F>>,
    pub(crate) len: usize,
    step: u32,
    recording: bool,
    /// Integer operands of the current step (gather rows, cross-entropy targets), referenced by range.
    pub(crate) indices: Vec<usize>,
    /// Variable-length operand lists of the current step (concat, custom ops), referenced by range.
    pub(crate) operands: Vec<Var>,
    pub(crate) custom_ops: Vec<Box<dyn CustomOp<F>>>,
}

/// What an op being recorded may read: the parameters, the values recorded before it in this step
/// and their operand lists. (The node being written is borrowed separately.)
pub(crate) struct Recorded<'a, F: Float> {
    id: u32,
    parameters: &'a [Tensor<F>],
    nodes: &'a [Node<F>],
    step: u32,
    pub(crate) indices: &'a [usize],
    pub(crate) operands: &'a [Var],
    pub(crate) custom_ops: &'a [Box<dyn CustomOp<F>>],
}

impl<F: Float> Clone for Recorded<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Float> Copy for Recorded<'_, F> {}

impl<'a, F: Float> Recorded<'a, F> {
    /// The value of `var`, or [`TapeError::ForeignVar`] if it belongs to another tape, or
    /// [`TapeError::StaleVar`] if it is not (or no longer) on this one.
    pub(crate) fn try_value(&self, var: Var) -> Result<&'a Tensor<F>, TapeError> {
        if var.tape != self.id {
            return Err(TapeError::ForeignVar(var));
        }
        match var.slot() {
            Slot::Parameter(index) => self.parameters.get(index),
            Slot::Node(index) if var.step == self.step => self.nodes.get(index).map(|n| &n.value),
            Slot::Node(_) => None,
        }
        .ok_or(TapeError::StaleVar(var))
    }

    /// The value of `var`.
    ///
    /// # Panics
    /// If `var` is stale.
    pub(crate) fn value(&self, var: Var) -> &'a Tensor<F> {
        self.try_value(var)
            .unwrap_or_else(|error| panic!("{error}"))
    }
}

impl<F: Float> Default for Tape<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Float> Tape<F> {
    /// An empty tape that records gradients.
    pub fn new() -> Self {
        Tape {
            id: NEXT_TAPE.fetch_add(1, Ordering::Relaxed),
            parameters: Parameters::new(),
            nodes: Vec::new(),
            len: 0,
            step: 0,
            recording: true,
            indices: Vec::new(),
            operands: Vec::new(),
            custom_ops: Vec::new(),
        }
    }

    /// Adds a parameter: a value that survives [`Tape::clear`] and receives a gradient. It may be
    /// an ndarray array of any dimension or a [`Tensor`].
    ///
    /// # Panics
    /// If `value` has more than [`MAX_AXES`] axes.
    pub fn parameter(&mut self, value: impl Into<Tensor<F>>) -> Var {
        self.parameters.make_mut().push(value.into());
        self.parameter_var(self.parameters.len() - 1)
    }

    /// Records a constant of the current step (a leaf that receives a gradient but is not a
    /// parameter), copied into a buffer of an earlier step.
    ///
    /// # Panics
    /// If `value` has more than [`MAX_AXES`] axes.
    pub fn constant<D: Dimension>(&mut self, value: Array<F, D>) -> Var {
        self.record(Op::Leaf, |_, node| {
            node.value.assign(&value.view().into_dyn());
            Ok(())
        })
        .expect("recording a constant cannot fail")
    }

    /// Records a constant copied from `data` with shape `shape`, reusing a buffer of an earlier step.
    pub fn constant_from_slice(&mut self, shape: &[usize], data: &[F]) -> Result<Var, TapeError> {
        self.record(Op::Leaf, |_, node| {
            if shape.len() > MAX_AXES {
                let detail = format!("shape {shape:?} has more than {MAX_AXES} axes");
                return Err(TapeError::shape("constant", detail));
            }
            if shape.iter().product::<usize>() != data.len() {
                let detail = format!("{} values do not fill shape {shape:?}", data.len());
                return Err(TapeError::shape("constant", detail));
            }
            let target = node.value.resize(shape);
            target.copy_from_slice(data);
            Ok(())
        })
    }

    /// Ends the current step: forgets every value recorded since the parameters, keeping their
    /// buffers for the next step. Parameters, registered custom ops and their ids stay valid.
    pub fn clear(&mut self) {
        self.len = 0;
        self.step = (self.step + 1) % PARAMETER;
        self.indices.clear();
        self.operands.clear();
    }

    /// Runs `body` with recording switched off: ops still compute their values, but each result is
    /// kept as a constant, with no link to its inputs and no saved state for a backward pass.
    pub fn without_grad<R>(&mut self, body: impl FnOnce(&mut Self) -> R) -> R {
        let was_recording = std::mem::replace(&mut self.recording, false);
        let result = body(self);
        self.recording = was_recording;
        result
    }

    /// Whether ops record what backward needs (false inside [`Tape::without_grad`]).
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// The value of `var`.
    ///
    /// # Panics
    /// If `var` is stale (recorded before the last [`Tape::clear`]); [`Tape::try_value`] returns an
    /// error instead.
    pub fn value(&self, var: Var) -> &Tensor<F> {
        self.try_value(var)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// The value of `var`, or [`TapeError::ForeignVar`] or [`TapeError::StaleVar`].
    pub fn try_value(&self, var: Var) -> Result<&Tensor<F>, TapeError> {
        self.recorded().try_value(var)
    }

    /// The single element of a one-element value such as a loss.
    ///
    /// # Panics
    /// If `var` is stale or does not hold exactly one element.
    pub fn scalar(&self, var: Var) -> F {
        let value = self.value(var);
        assert_eq!(
            value.len(),
            1,
            "scalar() of a value with shape {:?}",
            value.shape()
        );
        value.as_slice()[0]
    }

    /// Mutable access to a parameter's value, for optimizers.
    ///
    /// # Panics
    /// If `var` is not a parameter of this tape.
    pub fn parameter_mut(&mut self, var: Var) -> &mut Tensor<F> {
        match var.slot() {
            Slot::Parameter(index) if var.tape == self.id => &mut self.parameters.make_mut()[index],
            _ => panic!("{var:?} is not a parameter of this tape"),
        }
    }

    /// Every parameter in the order it was added, as the ids [`Tape::parameter`] returned.
    pub fn parameters(&self) -> impl ExactSizeIterator<Item = Var> + '_ {
        (0..self.parameters.len()).map(|index| self.parameter_var(index))
    }

    /// Every parameter with mutable access to its value, in the order they were added (for
    /// optimizers, which pair each with its gradient).
    pub fn parameters_mut(&mut self) -> impl ExactSizeIterator<Item = (Var, &mut Tensor<F>)> + '_ {
        let tape = self.id;
        self.parameters
            .make_mut()
            .iter_mut()
            .enumerate()
            .map(move |(index, value)| {
                let var = Var {
                    tape,
                    index: index as u32,
                    step: PARAMETER,
                };
                (var, value)
            })
    }

    /// The handle of parameter `index`.
    fn parameter_var(&self, index: usize) -> Var {
        Var {
            tape: self.id,
            index: index as u32,
            step: PARAMETER,
        }
    }

    /// The number of values recorded in the current step (parameters not counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been recorded since the last clear.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Registers a custom op once; the returned id records it with [`Tape::custom`] in any step.
    pub fn register(&mut self, op: impl CustomOp<F> + 'static) -> CustomOpId {
        self.custom_ops.push(Box::new(op));
        CustomOpId(self.custom_ops.len() - 1)
    }

    /// Records one op: `forward` fills the new node's value (and saved state) from the values
    /// recorded before it.
    ///
    /// The node reuses the buffers of the node that stood at the same position in an earlier step,
    /// in place: `forward` sees the earlier values through a [`Recorded`] view while it writes the
    /// new node. If `forward` fails nothing is recorded.
    pub(crate) fn record(
        &mut self,
        op: Op<F>,
        forward: impl FnOnce(&Recorded<'_, F>, &mut Node<F>) -> Result<(), TapeError>,
    ) -> Result<Var, TapeError> {
        if self.len == self.nodes.len() {
            self.nodes.push(Node::empty());
        }
        let (before, rest) = self.nodes.split_at_mut(self.len);
        let recorded = Recorded {
            id: self.id,
            parameters: &self.parameters,
            nodes: before,
            step: self.step,
            indices: &self.indices,
            operands: &self.operands,
            custom_ops: &self.custom_ops,
        };
        let node = &mut rest[0];
        forward(&recorded, node)?;
        node.op = if self.recording { op } else { Op::Leaf };
        self.len += 1;
        Ok(Var {
            tape: self.id,
            index: (self.len - 1) as u32,
            step: self.step,
        })
    }

    /// A view of everything recorded so far (what the backward pass of custom ops reads).
    pub(crate) fn recorded(&self) -> Recorded<'_, F> {
        Recorded {
            id: self.id,
            parameters: &self.parameters,
            nodes: &self.nodes[..self.len],
            step: self.step,
            indices: &self.indices,
            operands: &self.operands,
            custom_ops: &self.custom_ops,
        }
    }

    /// Stores integer operands for the op being recorded; returns their range in `indices`.
    pub(crate) fn push_indices(&mut self, values: &[usize]) -> std::ops::Range<usize> {
        let start = self.indices.len();
        self.indices.extend_from_slice(values);
        start..self.indices.len()
    }

    /// Stores variable operands for the op being recorded; returns their range in `operands`.
    pub(crate) fn push_operands(&mut self, vars: &[Var]) -> std::ops::Range<usize> {
        let start = self.operands.len();
        self.operands.extend_from_slice(vars);
        start..self.operands.len()
    }

    /// Validates several variables at once (an error names the first stale one).
    pub(crate) fn check(&self, vars: &[Var]) -> Result<(), TapeError> {
        vars.iter()
            .try_for_each(|&var| self.try_value(var).map(|_| ()))
    }
}
