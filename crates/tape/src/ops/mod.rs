//! The ops a tape records. Each file holds a family of ops: the `Tape` method that checks shapes and
//! computes the forward value, and right beside it the function that propagates its gradient.

mod activation;
mod axis;
mod axis_split;
mod cross_entropy;
mod dropout;
mod elementwise;
mod gather;
mod layer_norm;
mod mask;
mod matmul;
mod normalize;
mod permute;
mod reduce;
mod shape;
mod unary;

use std::ops::Range;

use crate::custom::{self, CustomOpId};
use crate::gradients::GradSink;
use crate::tape::Node;
use crate::tensor::MAX_AXES;
use crate::{Float, Tape, Tensor, Var};

/// How a node was computed: the op and its operands (ranges point into the tape's operand lists).
pub(crate) enum Op<F> {
    /// A parameter or constant: nothing to propagate further.
    Leaf,
    Binary(elementwise::Binary, Var, Var),
    Scale(Var, F),
    Relu(Var),
    Exp(Var),
    Log(Var),
    // Elementwise family: unary math (unary.rs) and whole-buffer activations (activation.rs).
    Unary(unary::Unary<F>, Var),
    Activation(activation::Activation, Var),
    Linear {
        x: Var,
        w: Var,
    },
    LinearStacked {
        x: Var,
        weights: Range<usize>,
    },
    MatMul(Var, Var),
    Gather {
        table: Var,
        rows: Range<usize>,
    },
    Row {
        table: Var,
        row: usize,
    },
    // Reductions, normalisations, losses and dropout.
    Dot(Var, Var),
    Sum(Var),
    Mean(Var),
    AxisReduction {
        kind: reduce::Reduction,
        input: Var,
        axis: usize,
    },
    SoftmaxAxis {
        input: Var,
        axis: usize,
    },
    LogSoftmax {
        input: Var,
        axis: usize,
    },
    RmsNorm {
        input: Var,
        gain: Option<Var>,
    },
    LayerNorm {
        input: Var,
        gain: Option<Var>,
        bias: Option<Var>,
    },
    Dropout(Var),
    CrossEntropy {
        logits: Var,
        targets: Range<usize>,
        /// The rows of each segment, in order (one segment for the plain op).
        lengths: Range<usize>,
    },
    RowCrossEntropy {
        logits: Var,
        targets: Range<usize>,
    },
    /// Targets of ignored rows are stored as `usize::MAX`.
    CrossEntropyIgnoring {
        logits: Var,
        targets: Range<usize>,
    },
    Custom {
        op: CustomOpId,
        inputs: Range<usize>,
        indices: Range<usize>,
    },
    // Shape and selection: reshape, broadcast_to, permute, slicing and joining along any axis,
    // masking (embedding records a `Gather`).
    Reshape(Var),
    BroadcastTo(Var),
    Permute {
        input: Var,
        /// The input axis each output axis reads, for the input's first `ndim` axes.
        axes: [u8; MAX_AXES],
    },
    SliceAxis {
        input: Var,
        axis: usize,
        start: usize,
    },
    /// `concat_axis` and `stack`: both lay each part's blocks from `axis` on side by side.
    Join {
        parts: Range<usize>,
        axis: usize,
    },
    MaskedFill {
        input: Var,
        mask: Var,
    },
}

/// What an op's backward sees: the tape (for input values), its own node, and the gradient of the
/// loss with respect to its output; it adds its inputs' gradients into `sink`.
pub(crate) struct Backward<'a, F: Float> {
    pub(crate) tape: &'a Tape<F>,
    pub(crate) node: &'a Node<F>,
    pub(crate) grad: &'a Tensor<F>,
    pub(crate) sink: GradSink<'a, F>,
}

impl<'a, F: Float> Backward<'a, F> {
    /// The value of an input (borrowed from the tape, not from `self`, so `sink` stays usable).
    pub(crate) fn value(&self, var: Var) -> &'a Tensor<F> {
        self.tape.value(var)
    }

    /// Adds `scale * grad` (the output's gradient) into the gradient of `var`.
    pub(crate) fn accumulate_scaled(&mut self, var: Var, scale: F) {
        let grad = self.grad.as_slice();
        let target = self.sink.of(var).as_mut_slice();
        for (sum, &grad) in target.iter_mut().zip(grad) {
            *sum += scale * grad;
        }
    }

    /// Adds `grad * factor(input, output)` elementwise into the gradient of `var`.
    pub(crate) fn accumulate_with(&mut self, var: Var, factor: impl Fn(F, F) -> F) {
        let input = self.tape.value(var).as_slice();
        let (grad, output) = (self.grad.as_slice(), self.node.value.as_slice());
        let target = self.sink.of(var).as_mut_slice();
        for (((sum, &grad), &input), &output) in target.iter_mut().zip(grad).zip(input).zip(output)
        {
            *sum += grad * factor(input, output);
        }
    }
}

/// Propagates the gradient of one node to its inputs.
pub(crate) fn backward<F: Float>(context: &mut Backward<'_, F>) {
    match context.node.op {
        Op::Leaf => {}
        Op::Binary(kind, a, b) => elementwise::binary_backward(context, kind, a, b),
        Op::Scale(a, factor) => context.accumulate_scaled(a, factor),
        Op::Relu(a) => activation::relu_backward(context, a),
        Op::Exp(a) => activation::exp_backward(context, a),
        Op::Log(a) => activation::log_backward(context, a),
        // Elementwise family.
        Op::Unary(kind, a) => unary::unary_backward(context, kind, a),
        Op::Activation(kind, a) => activation::activation_backward(context, kind, a),
        Op::Linear { x, w } => matmul::linear_backward(context, x, &[w]),
        Op::LinearStacked { x, ref weights } => {
            let weights = &context.tape.operands[weights.clone()];
            matmul::linear_backward(context, x, weights)
        }
        Op::MatMul(a, b) => matmul::matmul_backward(context, a, b),
        Op::Gather { table, ref rows } => gather::gather_backward(context, table, rows.clone()),
        Op::Row { table, row } => gather::row_backward(context, table, row),
        // Reductions, normalisations, losses and dropout.
        Op::Dot(a, b) => reduce::dot_backward(context, a, b),
        Op::Sum(a) => reduce::sum_backward(context, a),
        Op::Mean(a) => reduce::mean_backward(context, a),
        Op::AxisReduction { kind, input, axis } => {
            reduce::axis_reduction_backward(context, kind, input, axis)
        }
        Op::SoftmaxAxis { input, axis } => normalize::softmax_backward(context, input, axis),
        Op::LogSoftmax { input, axis } => normalize::log_softmax_backward(context, input, axis),
        Op::RmsNorm { input, gain } => normalize::rms_norm_backward(context, input, gain),
        Op::LayerNorm { input, gain, bias } => {
            layer_norm::layer_norm_backward(context, input, gain, bias)
        }
        Op::Dropout(a) => dropout::dropout_backward(context, a),
        Op::CrossEntropy {
            logits,
            ref targets,
            ref lengths,
        } => {
            cross_entropy::cross_entropy_backward(context, logits, targets.clone(), lengths.clone())
        }
        Op::RowCrossEntropy {
            logits,
            ref targets,
        } => cross_entropy::row_cross_entropy_backward(context, logits, targets.clone()),
        Op::CrossEntropyIgnoring {
            logits,
            ref targets,
        } => cross_entropy::cross_entropy_ignoring_backward(context, logits, targets.clone()),
        Op::Custom {
            op,
            ref inputs,
            ref indices,
        } => custom::custom_backward(context, op, inputs.clone(), indices.clone()),
        // Shape and selection.
        Op::Reshape(a) => shape::reshape_backward(context, a),
        Op::BroadcastTo(a) => shape::broadcast_to_backward(context, a),
        Op::Permute { input, axes } => permute::permute_backward(context, input, axes),
        Op::SliceAxis { input, axis, start } => {
            axis::slice_axis_backward(context, input, axis, start)
        }
        Op::Join { ref parts, axis } => axis::join_backward(context, parts.clone(), axis),
        Op::MaskedFill { input, mask } => mask::masked_fill_backward(context, input, mask),
    }
}

/// Formats a shape for error messages: `[3, 4]`.
pub(crate) fn shape_of<F: Float>(array: &Tensor<F>) -> String {
    format!("{:?}", array.shape())
}
