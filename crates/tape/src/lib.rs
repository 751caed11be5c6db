//! Reverse-mode automatic differentiation on a tape of tensors (f32 or f64, up to six axes).
//!
//! A [`Tape`] records every op as it runs, in an arena that hands out small `Copy` handles
//! ([`Var`]). [`Tape::backward`] walks the recording once, newest first, and returns the gradients in
//! a [`Gradients`] container keyed by `Var` ([`Tape::backward_parameters_into`] keeps only the
//! parameters', in the memory of the gradients alive at once during the walk). Parameters persist
//! across steps; [`Tape::clear`] drops the rest of a step but keeps its buffers, so a training loop
//! on a warm tape allocates nothing.
//!
//! Fitting `y = w x` to one point by gradient descent, and printing the gradient:
//!
//! ```
//! use ndarray::{arr1, arr2};
//! use tape::Tape;
//!
//! let mut tape = Tape::<f64>::new();
//! let w = tape.parameter(arr2(&[[0.5, -0.5], [0.25, 1.0]]).into_dyn());
//! let x = arr1(&[1.0, 2.0]).into_dyn();
//! let target = arr1(&[1.0, 0.0]).into_dyn();
//! let mut losses = Vec::new();
//! for _ in 0..50 {
//!     tape.clear();
//!     let x = tape.constant(x.clone());
//!     let target = tape.constant(target.clone());
//!     let y = tape.matvec(w, x)?;
//!     let error = tape.sub(y, target)?;
//!     let loss = tape.dot(error, error)?;
//!     losses.push(tape.scalar(loss));
//!     let gradients = tape.backward(loss)?;
//!     let gradient = gradients.parameter(w);
//!     println!("loss {:.6}, d loss / d W = {gradient}", tape.scalar(loss));
//!     tape.parameter_mut(w).view_mut().scaled_add(-0.05, &gradient.view());
//! }
//! assert!(losses[49] < 1e-6 * losses[0], "the fit converges: {losses:?}");
//! # Ok::<(), tape::TapeError>(())
//! ```
//!
//! Values and gradients are [`Tensor`]s: row-major buffers with a shape of up to [`MAX_AXES`] (six)
//! axes, which a new step reshapes in place. Parameters and constants come in as ndarray arrays,
//! and [`Tensor::view`] hands any value back as an ndarray view.
//!
//! # The ops
//!
//! Every op is a method of [`Tape`] that checks its inputs and returns a [`TapeError`] naming the
//! op, the shapes and the rule broken instead of panicking. Inside [`Tape::without_grad`] ops
//! compute values only.
//!
//! | family | ops |
//! | --- | --- |
//! | elementwise, broadcasting by NumPy's rules | [`add`](Tape::add), [`sub`](Tape::sub), [`mul`](Tape::mul), [`div`](Tape::div), [`maximum`](Tape::maximum), [`minimum`](Tape::minimum) |
//! | elementwise, one input | [`scale`](Tape::scale), [`neg`](Tape::neg), [`square`](Tape::square), [`sqrt`](Tape::sqrt), [`powf`](Tape::powf), [`abs`](Tape::abs), [`clamp`](Tape::clamp), [`exp`](Tape::exp), [`log`](Tape::log) |
//! | activations | [`relu`](Tape::relu), [`tanh`](Tape::tanh), [`sigmoid`](Tape::sigmoid), [`gelu`](Tape::gelu) (tanh form), [`silu`](Tape::silu) |
//! | shape | [`reshape`](Tape::reshape), [`flatten`](Tape::flatten), [`squeeze`](Tape::squeeze), [`unsqueeze`](Tape::unsqueeze), [`broadcast_to`](Tape::broadcast_to), [`transpose`](Tape::transpose), [`permute`](Tape::permute), [`slice_axis`](Tape::slice_axis), [`concat_axis`](Tape::concat_axis), [`stack`](Tape::stack), [`slice`](Tape::slice) and [`concat`](Tape::concat) (last axis) |
//! | selection | [`embedding`](Tape::embedding) (ids of any shape), [`gather`](Tape::gather) and [`row`](Tape::row) (rows of a matrix), [`masked_fill`](Tape::masked_fill), [`causal_mask`](Tape::causal_mask) |
//! | reductions | [`sum`](Tape::sum), [`mean`](Tape::mean), [`dot`](Tape::dot); along an axis with keepdim: [`sum_axis`](Tape::sum_axis), [`mean_axis`](Tape::mean_axis), [`max_axis`](Tape::max_axis) |
//! | matrix products | [`matmul`](Tape::matmul) (batch axes broadcast: `[B, H, T, D] @ [B, H, D, T]`), [`linear`](Tape::linear) (`x W^T` over any leading axes), [`matvec`](Tape::matvec), [`vecmat`](Tape::vecmat) |
//! | normalisation | [`softmax`](Tape::softmax) (last axis), [`softmax_axis`](Tape::softmax_axis), [`log_softmax`](Tape::log_softmax), [`layer_norm`](Tape::layer_norm) and [`rms_norm`](Tape::rms_norm) (optional gain and bias), [`dropout`](Tape::dropout) (with the caller's RNG) |
//! | losses | [`cross_entropy`](Tape::cross_entropy) (logits `[.., C]`, with an ignore index), [`softmax_cross_entropy`](Tape::softmax_cross_entropy), [`row_cross_entropy`](Tape::row_cross_entropy) (one loss per row) |
//! | fused, for speed | [`linear_stacked`](Tape::linear_stacked) (several weights, one product), [`segmented_cross_entropy`](Tape::segmented_cross_entropy) (documents laid end to end); each is tested equal to its composition from the ops above |
//! | optimizers, in [`optim`] | [`Sgd`](optim::Sgd) (momentum, Nesterov, weight decay), [`Adam`](optim::Adam) and [`AdamW`](optim::AdamW) (decoupled weight decay), each with a per-step learning rate and its state exposed for checkpoints |
//! | saving and loading | [`NamedParameters`] names a tape's parameters; [`save`](NamedParameters::save) and [`load`](NamedParameters::load) (strict or not) go through a [`StateDict`] in a safetensors file of plain names and row-major tensors, the layout PyTorch's `load_state_dict` expects |
//! | without a tape | [`rows`]: the linear op's packed weight ([`rows::Linear`]), [`rows::rms_norm`] and [`rows::relu_in_place`] on plain slices, the ops' own arithmetic, for an inference pass that must match them to the bit |
//! | your own | [`CustomOp`], registered once with [`Tape::register`] and recorded with [`Tape::custom`]; [`check_gradients`] verifies any op's backward against finite differences |
//! | data parallelism | [`DataParallel`]: a batch's chunks recorded on one tape each, on rayon's threads, their gradients added in chunk order, the same bits for any number of threads |
//!
//! The examples in `crates/tape/examples/` teach the crate in order: an XOR perceptron, makemore's
//! MLP on names (AdamW, weights saved and reloaded by name), microgpt written from these
//! primitives, a custom op, and training on every core with the same bits as on one.

mod broadcast;
mod check;
mod custom;
mod error;
mod exp;
mod float;
mod gemm;
mod gradients;
mod kernels;
mod ops;
pub mod optim;
mod parallel;
mod parameters;
pub mod rows;
mod state_dict;
mod tape;
mod tensor;

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use check::{GradientCheck, GradientCheckError, GradientReport, Tolerance, check_gradients};
pub use custom::{CustomOp, CustomOpId, InputGrads, Inputs};
pub use error::TapeError;
pub use exp::EXP_LANES;
pub use float::Float;
pub use gradients::Gradients;
pub use parallel::{BatchGradients, DataParallel};
pub use state_dict::{
    LoadReport, NamedParameters, StateDict, StateDictError, Strictness, read_safetensors,
};
pub use tape::{Tape, Var};
pub use tensor::{MAX_AXES, Tensor};
