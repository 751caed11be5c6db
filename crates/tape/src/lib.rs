//! Reverse-mode automatic differentiation on a tape of vectors and matrices.
//!
//! A [`Tape`] records every op as it runs, in an arena that hands out small `Copy` handles
//! ([`Var`]). [`Tape::backward`] walks the recording once, newest first, and returns the gradients in
//! a [`Gradients`] container keyed by `Var`. Parameters persist across steps; [`Tape::clear`] drops
//! the rest of a step but keeps its buffers, so a training loop on a warm tape allocates nothing.
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
//! Values and gradients are [`Tensor`]s: row-major buffers with a shape of up to [`MAX_AXES`] (six) axes, which a
//! new step reshapes in place. Parameters and constants come in as ndarray arrays, and
//! [`Tensor::view`] hands any value back as an ndarray view.
//!
//! Ops ([`Tape::add`], [`Tape::linear`], [`Tape::softmax_cross_entropy`], ...) check their input
//! shapes and return a [`TapeError`] naming the op and the shapes instead of panicking. Inside
//! [`Tape::without_grad`] they compute values only. New ops plug in through [`CustomOp`], and
//! [`check_gradients`] verifies any op's backward against finite differences.

mod broadcast;
mod check;
mod custom;
mod error;
mod exp;
mod float;
mod gradients;
mod kernels;
mod ops;
mod tape;
mod tensor;

pub use check::{GradientCheckError, GradientReport, Tolerance, check_gradients};
pub use custom::{CustomOp, CustomOpId, InputGrads, Inputs};
pub use error::TapeError;
pub use exp::EXP_LANES;
pub use float::Float;
pub use gradients::Gradients;
pub use tape::{Tape, Var};
pub use tensor::{MAX_AXES, Tensor};
