//! The extension point: ops written outside this crate, with their own forward and backward.
//!
//! A custom op is registered once ([`Tape::register`]) and recorded as often as needed
//! ([`Tape::custom`]); like the built-in ops it writes into buffers the tape reuses across steps, so a
//! fused op (attention over a cached K/V block, say) costs one node instead of dozens.

use std::ops::Range;

use crate::gradients::GradSink;
use crate::ops::{Backward, Op};
use crate::tape::Recorded;
use crate::{Float, Tape, TapeError, Tensor, Var};

/// The id of a registered custom op, valid on the tape that returned it for its whole life.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CustomOpId(pub(crate) usize);

/// An op with a user-written backward pass.
///
/// `forward` sizes `output` with [`Tensor::resize`] and fills it; it may also keep whatever
/// its backward needs in `saved` (which it owns in the same way). `backward` adds the gradient of the
/// loss with respect to each input into `grads` (add, do not overwrite: an input may feed other ops).
/// Check a new op with [`check_gradients`](crate::check_gradients).
///
/// Ops are `Send + Sync` so that a tape can move to another thread (one tape per thread is how a
/// batch is spread over cores).
pub trait CustomOp<F: Float>: Send + Sync {
    /// A short name for error messages.
    fn name(&self) -> &'static str;

    /// Computes the output from the inputs, or explains why their shapes do not fit.
    fn forward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &mut Tensor<F>,
        saved: &mut Tensor<F>,
    ) -> Result<(), TapeError>;

    /// Adds `d loss / d input` for every input into `grads`, given `output_grad = d loss / d output`.
    fn backward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &Tensor<F>,
        saved: &Tensor<F>,
        output_grad: &Tensor<F>,
        grads: &mut InputGrads<'_, '_, F>,
    );
}

/// The input values of a custom op, in the order they were passed to [`Tape::custom`], and its
/// integer operands ([`Tape::custom_with_indices`]).
pub struct Inputs<'a, F: Float> {
    tape: Recorded<'a, F>,
    vars: &'a [Var],
    indices: &'a [usize],
}

impl<'a, F: Float> Inputs<'a, F> {
    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether the op has no inputs.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The value of input `index`.
    ///
    /// # Panics
    /// If `index >= self.len()`.
    pub fn get(&self, index: usize) -> &'a Tensor<F> {
        self.tape.value(self.vars[index])
    }

    /// The integer operands the op was recorded with (empty for [`Tape::custom`]): counts, lengths
    /// or positions that parameterise the op and receive no gradient.
    pub fn indices(&self) -> &'a [usize] {
        self.indices
    }
}

/// Where a custom op's backward adds the gradients of its inputs.
pub struct InputGrads<'a, 'b, F: Float> {
    sink: &'a mut GradSink<'b, F>,
    vars: &'a [Var],
}

impl<F: Float> InputGrads<'_, '_, F> {
    /// The gradient accumulator of input `index`, shaped like that input; add into it.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn get_mut(&mut self, index: usize) -> &mut Tensor<F> {
        self.sink.of(self.vars[index])
    }
}

impl<F: Float> Tape<F> {
    /// Records the registered custom op `op` on `inputs`.
    pub fn custom(&mut self, op: CustomOpId, inputs: &[Var]) -> Result<Var, TapeError> {
        self.custom_with_indices(op, inputs, &[])
    }

    /// Records the registered custom op `op` on `inputs`, with integer operands `indices` that its
    /// forward and backward read through [`Inputs::indices`] (the lengths of the documents an
    /// attention op must keep apart, say).
    pub fn custom_with_indices(
        &mut self,
        op: CustomOpId,
        inputs: &[Var],
        indices: &[usize],
    ) -> Result<Var, TapeError> {
        self.check(inputs)?;
        let inputs = self.push_operands(inputs);
        let indices = self.push_indices(indices);
        let record = Op::Custom {
            op,
            inputs: inputs.clone(),
            indices: indices.clone(),
        };
        self.record(record, |tape, node| {
            let inputs = Inputs {
                tape: *tape,
                vars: &tape.operands[inputs],
                indices: &tape.indices[indices],
            };
            tape.custom_ops[op.0].forward(&inputs, &mut node.value, &mut node.saved)
        })
    }
}

pub(crate) fn custom_backward<F: Float>(
    context: &mut Backward<'_, F>,
    op: CustomOpId,
    inputs: Range<usize>,
    indices: Range<usize>,
) {
    let tape = context.tape.recorded();
    let vars = &tape.operands[inputs];
    let indices = &tape.indices[indices];
    let mut grads = InputGrads {
        sink: &mut context.sink,
        vars,
    };
    tape.custom_ops[op.0].backward(
        &Inputs {
            tape,
            vars,
            indices,
        },
        &context.node.value,
        &context.node.saved,
        context.grad,
        &mut grads,
    );
}
