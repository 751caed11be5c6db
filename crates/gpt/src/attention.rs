//! Causal multi-head self-attention over a whole sequence, as one fused op on the tape.
//!
//! Recording attention from primitive ops would take a slice, a dot and a softmax per head and per
//! position; fused, a document's attention is one node whose backward is written out below.

use ndarray::ArrayD;
use tape::{CustomOp, Float, InputGrads, Inputs, TapeError, resize};

/// `out[t, head] = sum_{s <= t} softmax_s(q[t, head] . k[s, head] / sqrt(head_dim)) v[s, head]`
/// for one input `qkv` of shape `[positions, 3 n_embd]` holding each position's query, key and value
/// side by side (as [`Tape::linear_stacked`](tape::Tape::linear_stacked) makes them), each split into
/// `n_head` heads. The output is `[positions, n_embd]`.
///
/// The attention weights are saved (`[n_head, positions, positions]`, zero above the diagonal) for
/// the backward pass. Taking q, k and v as one value gives the backward pass one gradient buffer to
/// write all three into, in a single sweep.
pub(crate) struct CausalSelfAttention {
    pub(crate) n_head: usize,
}

impl CausalSelfAttention {
    /// The factor applied to each score: `(head_dim ** 0.5) ** -1`, computed as microgpt.py does
    /// (`x / head_dim**0.5` on a `Value` multiplies by the float's inverse).
    fn scale<F: Float>(head_dim: usize) -> F {
        F::from_f64((head_dim as f64).powf(0.5).powf(-1.0))
    }
}

/// Where one head's slices of a `[positions, 3 width]` qkv row start: query, key and value.
struct Layout {
    width: usize,
    head_dim: usize,
}

impl Layout {
    fn query(&self, position: usize, head: usize) -> usize {
        position * 3 * self.width + head * self.head_dim
    }
    fn key(&self, position: usize, head: usize) -> usize {
        self.query(position, head) + self.width
    }
    fn value(&self, position: usize, head: usize) -> usize {
        self.query(position, head) + 2 * self.width
    }
    /// A head's slice of a `[positions, width]` row (the output and its gradient).
    fn output(&self, position: usize, head: usize) -> usize {
        position * self.width + head * self.head_dim
    }
}

fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    a.iter().zip(b).fold(F::zero(), |sum, (&x, &y)| sum + x * y)
}

/// `y += alpha * x`.
fn axpy<F: Float>(alpha: F, x: &[F], y: &mut [F]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

impl<F: Float> CustomOp<F> for CausalSelfAttention {
    fn name(&self) -> &'static str {
        "causal_self_attention"
    }

    fn forward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &mut ArrayD<F>,
        saved: &mut ArrayD<F>,
    ) -> Result<(), TapeError> {
        if inputs.len() != 1 {
            let detail = format!("takes one qkv matrix, got {} inputs", inputs.len());
            return Err(TapeError::shape("causal_self_attention", detail));
        }
        let qkv = inputs.get(0);
        if qkv.ndim() != 2 || !qkv.shape()[1].is_multiple_of(3 * self.n_head) {
            let detail = format!(
                "qkv must be a [positions, 3 n_embd] matrix with n_embd a multiple of {} heads, \
                 got {:?}",
                self.n_head,
                qkv.shape()
            );
            return Err(TapeError::shape("causal_self_attention", detail));
        }
        let (positions, width) = (qkv.shape()[0], qkv.shape()[1] / 3);
        let head_dim = width / self.n_head;
        let layout = Layout { width, head_dim };
        let scale = Self::scale::<F>(head_dim);
        resize(output, &[positions, width]);
        resize(saved, &[self.n_head, positions, positions]);
        let qkv = contiguous(qkv);
        let out = output
            .as_slice_mut()
            .expect("resized buffers are contiguous");
        let weights_all = saved
            .as_slice_mut()
            .expect("resized buffers are contiguous");
        for head in 0..self.n_head {
            for t in 0..positions {
                let query = &qkv[layout.query(t, head)..][..head_dim];
                let weights = &mut weights_all[(head * positions + t) * positions..][..positions];
                let mut max = F::neg_infinity();
                for (s, weight) in weights[..=t].iter_mut().enumerate() {
                    *weight = dot(query, &qkv[layout.key(s, head)..][..head_dim]) * scale;
                    max = max.max(*weight);
                }
                let mut total = F::zero();
                for weight in &mut weights[..=t] {
                    *weight = (*weight - max).exp();
                    total += *weight;
                }
                let inverse = total.recip();
                weights[..=t]
                    .iter_mut()
                    .for_each(|weight| *weight *= inverse);
                weights[t + 1..].fill(F::zero());
                let out_head = &mut out[layout.output(t, head)..][..head_dim];
                out_head.fill(F::zero());
                for (s, &weight) in weights[..=t].iter().enumerate() {
                    axpy(weight, &qkv[layout.value(s, head)..][..head_dim], out_head);
                }
            }
        }
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &ArrayD<F>,
        saved: &ArrayD<F>,
        output_grad: &ArrayD<F>,
        grads: &mut InputGrads<'_, '_, F>,
    ) {
        let qkv = contiguous(inputs.get(0));
        let (positions, width) = (output.shape()[0], output.shape()[1]);
        let head_dim = width / self.n_head;
        let layout = Layout { width, head_dim };
        let scale = Self::scale::<F>(head_dim);
        let (weights_all, out, grad) = (
            contiguous(saved),
            contiguous(output),
            contiguous(output_grad),
        );
        let grad_qkv = grads
            .get_mut(0)
            .as_slice_mut()
            .expect("gradients are contiguous");

        // For query t of a head, with dout = d loss / d out[t]: the weight of key s gets
        // dw[s] = dout . v[s], and its score dscore[s] = w[s] (dw[s] - sum_r w[r] dw[r]) (softmax's
        // backward), where sum_r w[r] dw[r] = dout . out[t]. Then dq[t] += dscore[s] k[s] / sqrt(d),
        // dk[s] += dscore[s] q[t] / sqrt(d) and dv[s] += w[s] dout.
        for head in 0..self.n_head {
            for t in 0..positions {
                let weights = &weights_all[(head * positions + t) * positions..][..=t];
                let dout = &grad[layout.output(t, head)..][..head_dim];
                let inner = dot(dout, &out[layout.output(t, head)..][..head_dim]);
                let query = layout.query(t, head);
                for (s, &w) in weights.iter().enumerate() {
                    let (key, value) = (layout.key(s, head), layout.value(s, head));
                    let dw = dot(dout, &qkv[value..][..head_dim]);
                    let dscore = w * (dw - inner) * scale;
                    axpy(
                        dscore,
                        &qkv[key..][..head_dim],
                        &mut grad_qkv[query..][..head_dim],
                    );
                    axpy(
                        dscore,
                        &qkv[query..][..head_dim],
                        &mut grad_qkv[key..][..head_dim],
                    );
                    axpy(w, dout, &mut grad_qkv[value..][..head_dim]);
                }
            }
        }
    }
}

fn contiguous<F: Float>(array: &ArrayD<F>) -> &[F] {
    array.as_slice().expect("tape values are contiguous")
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};
    use proptest::collection::vec;
    use proptest::prelude::*;
    use tape::{Tolerance, check_gradients};

    use super::CausalSelfAttention;

    fn matrix(rows: usize, columns: usize) -> impl Strategy<Value = ArrayD<f64>> {
        vec(-1.5..1.5f64, rows * columns)
            .prop_map(move |data| ArrayD::from_shape_vec(IxDyn(&[rows, columns]), data).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The fused backward against finite differences, through a random projection of the output.
        #[test]
        fn attention_gradients_match_finite_differences(
            (n_head, qkv, weights) in (1usize..4, 1usize..4, 1usize..6).prop_flat_map(|(n_head, head_dim, positions)| {
                let width = n_head * head_dim;
                (Just(n_head), matrix(positions, 3 * width), matrix(positions, width))
            })
        ) {
            let result = check_gradients(&[qkv], Tolerance::default(), |tape, inputs| {
                let attention = tape.register(CausalSelfAttention { n_head });
                let out = tape.custom(attention, inputs)?;
                let weights = tape.constant(weights.clone());
                tape.dot(out, weights)
            });
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        }
    }

    #[test]
    fn the_first_position_attends_only_to_itself() {
        // With one key, softmax gives weight 1: out[0] = v[0] whatever q and k are.
        let mut tape = tape::Tape::<f64>::new();
        let attention = tape.register(CausalSelfAttention { n_head: 2 });
        // Rows: q (4 columns), k (4), v (4) of positions 0 and 1.
        let qkv = tape.constant(
            ndarray::arr2(&[
                [1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0, 0.5, -0.5, 2.0, 1.0],
                [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0],
            ])
            .into_dyn(),
        );
        let out = tape.custom(attention, &[qkv]).unwrap();
        let first: Vec<f64> = tape.value(out).iter().take(4).copied().collect();
        assert_eq!(first, vec![0.5, -0.5, 2.0, 1.0]);
        // Position 1, head 0: scores (q1 . k0, q1 . k1) / sqrt(2) = (3, 1) / sqrt(2).
        let (a, b) = (3.0 / 2f64.sqrt(), 1.0 / 2f64.sqrt());
        let w0 = (a - a).exp() / ((a - a).exp() + (b - a).exp());
        let expected = w0 * 0.5 + (1.0 - w0) * 3.0;
        assert!((tape.value(out)[[1, 0]] - expected).abs() < 1e-15);
    }
}
