//! Causal multi-head self-attention over a whole sequence, as one fused op on the tape.
//!
//! Recording attention from primitive ops would take a slice, a dot and a softmax per head and per
//! position; fused, a document's attention is one node whose backward is written out below.

use ndarray::ArrayD;
use tape::{CustomOp, Float, InputGrads, Inputs, TapeError, resize};

/// `out[t, head] = sum_{s <= t} softmax_s(q[t, head] . k[s, head] / sqrt(head_dim)) v[s, head]`
/// for inputs `q`, `k`, `v` of shape `[positions, n_embd]`, each row split into `n_head` heads.
///
/// The attention weights are saved (`[n_head, positions, positions]`, zero above the diagonal) for
/// the backward pass.
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

/// The slice of row `position` that belongs to head `head`.
fn head_of<F>(matrix: &[F], width: usize, head_dim: usize, position: usize, head: usize) -> &[F] {
    let start = position * width + head * head_dim;
    &matrix[start..start + head_dim]
}

fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    a.iter().zip(b).fold(F::zero(), |sum, (&x, &y)| sum + x * y)
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
        if inputs.len() != 3 {
            let detail = format!("takes q, k and v, got {} inputs", inputs.len());
            return Err(TapeError::shape("causal_self_attention", detail));
        }
        let (q, k, v) = (inputs.get(0), inputs.get(1), inputs.get(2));
        if q.ndim() != 2 || q.shape() != k.shape() || q.shape() != v.shape() {
            let detail = format!(
                "q, k, v must be equal [positions, n_embd] matrices, got {:?}, {:?}, {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            );
            return Err(TapeError::shape("causal_self_attention", detail));
        }
        let (positions, width) = (q.shape()[0], q.shape()[1]);
        if !width.is_multiple_of(self.n_head) {
            let detail = format!("n_embd {width} does not split into {} heads", self.n_head);
            return Err(TapeError::shape("causal_self_attention", detail));
        }
        let head_dim = width / self.n_head;
        let scale = Self::scale::<F>(head_dim);
        resize(output, q.shape());
        resize(saved, &[self.n_head, positions, positions]);
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let out = output
            .as_slice_mut()
            .expect("resized buffers are contiguous");
        let weights_all = saved
            .as_slice_mut()
            .expect("resized buffers are contiguous");
        for head in 0..self.n_head {
            for t in 0..positions {
                let query = head_of(q, width, head_dim, t, head);
                let weights = &mut weights_all[(head * positions + t) * positions..][..positions];
                let mut max = F::neg_infinity();
                for (s, weight) in weights[..=t].iter_mut().enumerate() {
                    *weight = dot(query, head_of(k, width, head_dim, s, head)) * scale;
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
                let out_head = &mut out[t * width + head * head_dim..][..head_dim];
                out_head.fill(F::zero());
                for (s, &weight) in weights[..=t].iter().enumerate() {
                    for (o, &x) in out_head
                        .iter_mut()
                        .zip(head_of(v, width, head_dim, s, head))
                    {
                        *o += weight * x;
                    }
                }
            }
        }
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, F>,
        _output: &ArrayD<F>,
        saved: &ArrayD<F>,
        output_grad: &ArrayD<F>,
        grads: &mut InputGrads<'_, '_, F>,
    ) {
        let (q, k, v) = (
            contiguous(inputs.get(0)),
            contiguous(inputs.get(1)),
            contiguous(inputs.get(2)),
        );
        let (positions, width) = (inputs.get(0).shape()[0], inputs.get(0).shape()[1]);
        let head_dim = width / self.n_head;
        let scale = Self::scale::<F>(head_dim);
        let weights_all = contiguous(saved);
        let grad = contiguous(output_grad);

        // For query t of a head: dw[s] = dout[t] . v[s]; dscore[s] = w[s] (dw[s] - sum_r w[r] dw[r]).
        // The three inputs' gradients are written in three passes (one mutable borrow at a time),
        // recomputing the cheap dot products rather than keeping a scratch buffer.
        let each_score_gradient = |visit: &mut dyn FnMut(usize, usize, usize, F)| {
            for head in 0..self.n_head {
                for t in 0..positions {
                    let weights = &weights_all[(head * positions + t) * positions..][..=t];
                    let dout = head_of(grad, width, head_dim, t, head);
                    let inner = weights.iter().enumerate().fold(F::zero(), |sum, (s, &w)| {
                        sum + w * dot(dout, head_of(v, width, head_dim, s, head))
                    });
                    for (s, &w) in weights.iter().enumerate() {
                        let dw = dot(dout, head_of(v, width, head_dim, s, head));
                        visit(head, t, s, w * (dw - inner) * scale);
                    }
                }
            }
        };

        let grad_q = grads
            .get_mut(0)
            .as_slice_mut()
            .expect("gradients are contiguous");
        each_score_gradient(&mut |head, t, s, dscore| {
            let target = &mut grad_q[t * width + head * head_dim..][..head_dim];
            axpy(dscore, head_of(k, width, head_dim, s, head), target);
        });
        let grad_k = grads
            .get_mut(1)
            .as_slice_mut()
            .expect("gradients are contiguous");
        each_score_gradient(&mut |head, t, s, dscore| {
            let target = &mut grad_k[s * width + head * head_dim..][..head_dim];
            axpy(dscore, head_of(q, width, head_dim, t, head), target);
        });
        // dv[s] += w[s] dout[t]
        let grad_v = grads
            .get_mut(2)
            .as_slice_mut()
            .expect("gradients are contiguous");
        for head in 0..self.n_head {
            for t in 0..positions {
                let weights = &weights_all[(head * positions + t) * positions..][..=t];
                let dout = head_of(grad, width, head_dim, t, head);
                for (s, &w) in weights.iter().enumerate() {
                    let target = &mut grad_v[s * width + head * head_dim..][..head_dim];
                    axpy(w, dout, target);
                }
            }
        }
    }
}

fn axpy<F: Float>(alpha: F, x: &[F], y: &mut [F]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
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
            (n_head, q, k, v, weights) in (1usize..4, 1usize..4, 1usize..6).prop_flat_map(|(n_head, head_dim, positions)| {
                let width = n_head * head_dim;
                (Just(n_head), matrix(positions, width), matrix(positions, width), matrix(positions, width), matrix(positions, width))
            })
        ) {
            let result = check_gradients(&[q, k, v], Tolerance::default(), |tape, inputs| {
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
        let q =
            tape.constant(ndarray::arr2(&[[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]]).into_dyn());
        let k =
            tape.constant(ndarray::arr2(&[[4.0, 3.0, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0]]).into_dyn());
        let v =
            tape.constant(ndarray::arr2(&[[0.5, -0.5, 2.0, 1.0], [3.0, 3.0, 3.0, 3.0]]).into_dyn());
        let out = tape.custom(attention, &[q, k, v]).unwrap();
        let first: Vec<f64> = tape.value(out).iter().take(4).copied().collect();
        assert_eq!(first, vec![0.5, -0.5, 2.0, 1.0]);
        // Position 1, head 0: scores (q1 . k0, q1 . k1) / sqrt(2) = (3, 1) / sqrt(2).
        let (a, b) = (3.0 / 2f64.sqrt(), 1.0 / 2f64.sqrt());
        let w0 = (a - a).exp() / ((a - a).exp() + (b - a).exp());
        let expected = w0 * 0.5 + (1.0 - w0) * 3.0;
        assert!((tape.value(out)[[1, 0]] - expected).abs() < 1e-15);
    }
}
