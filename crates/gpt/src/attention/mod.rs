//! Causal multi-head self-attention over documents laid end to end, as one fused op on the tape.
//!
//! Recording attention from primitive ops would take a slice, a dot and a softmax per head and per
//! position; fused, the attention of a whole chunk of documents is one node whose backward is
//! written out below.

mod head;
pub(crate) mod query;

use tape::{CustomOp, Float, InputGrads, Inputs, TapeError, Tensor};

pub(crate) use head::Head;
use head::{axpy, dot, with_head};

/// `out[t, head] = sum_{s <= t} softmax_s(q[t, head] . k[s, head] / sqrt(head_dim)) v[s, head]`,
/// with `s` running over the earlier positions of `t`'s own document only.
///
/// Input: `qkv` of shape `[rows, 3 n_embd]` holding each row's query, key and value side by side
/// (as [`Tape::linear_stacked`](tape::Tape::linear_stacked) makes them), each split into `n_head`
/// heads. Integer operands ([`Tape::custom_with_indices`](tape::Tape::custom_with_indices)): each
/// document's number of rows, in order, summing to `rows`. The output is `[rows, n_embd]`.
///
/// Laying a chunk's documents end to end makes every projection around the attention one matrix
/// product over all their rows; the lengths keep each document from seeing its neighbours.
///
/// The attention weights are saved for the backward pass: per document and head, the lower triangle
/// of its `[n, n]` weight matrix, row by row. Taking q, k and v as one value gives the backward pass
/// one gradient buffer to write all three into, in a single sweep.
pub(crate) struct CausalSelfAttention {
    pub(crate) n_head: usize,
}

impl CausalSelfAttention {
    /// The factor applied to each score: `(head_dim ** 0.5) ** -1`, computed as microgpt.py does
    /// (`x / head_dim**0.5` on a `Value` multiplies by the float's inverse).
    pub(crate) fn scale<F: Float>(head_dim: usize) -> F {
        F::from_f64((head_dim as f64).powf(0.5).powf(-1.0))
    }

    /// Checks the inputs' shapes; returns `(rows, width)`.
    fn check<F: Float>(&self, inputs: &Inputs<'_, F>) -> Result<(usize, usize), TapeError> {
        let fail = |detail: String| Err(TapeError::shape("causal_self_attention", detail));
        if inputs.len() != 1 {
            return fail(format!(
                "takes one qkv matrix (and the documents' lengths as integer operands), got {} inputs",
                inputs.len()
            ));
        }
        let qkv = inputs.get(0);
        if qkv.ndim() != 2 || !qkv.shape()[1].is_multiple_of(3 * self.n_head) {
            return fail(format!(
                "qkv must be a [rows, 3 n_embd] matrix with n_embd a multiple of {} heads, got {:?}",
                self.n_head,
                qkv.shape()
            ));
        }
        let rows = qkv.shape()[0];
        let lengths = inputs.indices();
        if lengths.contains(&0) || lengths.iter().sum::<usize>() != rows {
            return fail(format!(
                "document lengths {lengths:?} must be positive and sum to the {rows} rows"
            ));
        }
        Ok((rows, qkv.shape()[1] / 3))
    }
}

/// The saved weights of one head over a document of `n` rows: the lower triangle of `[n, n]`.
fn triangle(n: usize) -> usize {
    n * (n + 1) / 2
}

impl<F: Float> CustomOp<F> for CausalSelfAttention {
    fn name(&self) -> &'static str {
        "causal_self_attention"
    }

    fn forward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &mut Tensor<F>,
        saved: &mut Tensor<F>,
    ) -> Result<(), TapeError> {
        let (rows, width) = self.check(inputs)?;
        let lengths = inputs.indices();
        let head_dim = width / self.n_head;
        let scale = Self::scale::<F>(head_dim);
        let triangles: usize = lengths.iter().map(|&n| triangle(n)).sum();
        let out = output.resize(&[rows, width]);
        let weights = saved.resize(&[self.n_head * triangles]);
        let qkv = inputs.get(0).as_slice();
        // Every document's and head's scores first, then the exponentials of all of them in one call
        // (whole vectors of them in f32), then the weighted sums of the values.
        let (mut rest_qkv, mut rest_weights) = (qkv, &mut *weights);
        for &n in lengths {
            let document;
            (document, rest_qkv) = rest_qkv.split_at(n * 3 * width);
            for start in (0..width).step_by(head_dim) {
                let head_weights;
                (head_weights, rest_weights) =
                    std::mem::take(&mut rest_weights).split_at_mut(triangle(n));
                with_head!(width, head_dim, start, |head| head_scores(
                    head,
                    scale,
                    document,
                    head_weights
                ));
            }
        }
        F::exp_in_place(weights);
        let (mut rest_qkv, mut rest_out, mut rest_weights) = (qkv, out, weights);
        for &n in lengths {
            let (document, document_out);
            (document, rest_qkv) = rest_qkv.split_at(n * 3 * width);
            (document_out, rest_out) = std::mem::take(&mut rest_out).split_at_mut(n * width);
            for start in (0..width).step_by(head_dim) {
                let head_weights;
                (head_weights, rest_weights) =
                    std::mem::take(&mut rest_weights).split_at_mut(triangle(n));
                with_head!(width, head_dim, start, |head| head_mix(
                    head,
                    document,
                    document_out,
                    head_weights
                ));
            }
        }
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &Tensor<F>,
        saved: &Tensor<F>,
        output_grad: &Tensor<F>,
        grads: &mut InputGrads<'_, '_, F>,
    ) {
        let width = output.shape()[1];
        let head_dim = width / self.n_head;
        let scale = Self::scale::<F>(head_dim);
        let (mut qkv, mut weights, mut out, mut grad) = (
            inputs.get(0).as_slice(),
            saved.as_slice(),
            output.as_slice(),
            output_grad.as_slice(),
        );
        let mut grad_qkv = grads.get_mut(0).as_mut_slice();
        for &n in inputs.indices() {
            let (document, document_out, document_grad, document_grad_qkv);
            (document, qkv) = qkv.split_at(n * 3 * width);
            (document_out, out) = out.split_at(n * width);
            (document_grad, grad) = grad.split_at(n * width);
            (document_grad_qkv, grad_qkv) =
                std::mem::take(&mut grad_qkv).split_at_mut(n * 3 * width);
            for start in (0..width).step_by(head_dim) {
                let head_weights;
                (head_weights, weights) = weights.split_at(triangle(n));
                let document = Document {
                    qkv: document,
                    out: document_out,
                    grad: document_grad,
                    weights: head_weights,
                };
                with_head!(width, head_dim, start, |head| head_backward(
                    head,
                    scale,
                    &document,
                    document_grad_qkv
                ));
            }
        }
    }
}

/// One head's scores within one document (`qkv` is its `[n, 3 width]` rows) into the head's lower
/// triangle `weights`: row `t` gets [`query::shifted_scores`] over keys `0..=t`.
fn head_scores<F: Float, const D: usize>(
    head: Head<D>,
    scale: F,
    qkv: &[F],
    mut weights: &mut [F],
) {
    let stride = 3 * head.width;
    for (t, row) in qkv.chunks_exact(stride).enumerate() {
        let row_weights;
        (row_weights, weights) = std::mem::take(&mut weights).split_at_mut(t + 1);
        let keys = qkv.chunks_exact(stride).map(|key_row| head.key(key_row));
        query::shifted_scores(head.query(row), keys, scale, row_weights);
    }
}

/// One head's outputs within one document: `weights` holds the exponentials of its shifted scores,
/// which become the softmax weights here (what backward reads), and row `t` of `out` gets
/// [`query::mix`] of values `0..=t`.
fn head_mix<F: Float, const D: usize>(
    head: Head<D>,
    qkv: &[F],
    out: &mut [F],
    mut weights: &mut [F],
) {
    let stride = 3 * head.width;
    for (t, out_row) in out.chunks_exact_mut(head.width).enumerate() {
        let row_weights;
        (row_weights, weights) = std::mem::take(&mut weights).split_at_mut(t + 1);
        let values = qkv
            .chunks_exact(stride)
            .map(|value_row| head.value(value_row));
        query::mix(row_weights, values, head.output_mut(out_row));
    }
}

/// What one head's backward reads for one document: its qkv rows, output rows, the output's
/// gradient rows and the head's saved weights.
struct Document<'a, F> {
    qkv: &'a [F],
    out: &'a [F],
    grad: &'a [F],
    weights: &'a [F],
}

/// One head's backward within one document: adds the gradients of its queries, keys and values
/// into `grad_qkv` (the document's `[n, 3 width]` rows).
///
/// For query t, with dout = d loss / d out[t]: the weight of key s gets dw[s] = dout . v[s], and its
/// score dscore[s] = w[s] (dw[s] - sum_r w[r] dw[r]) (softmax's backward), where
/// sum_r w[r] dw[r] = dout . out[t]. Then dq[t] += dscore[s] k[s] / sqrt(d),
/// dk[s] += dscore[s] q[t] / sqrt(d) and dv[s] += w[s] dout.
fn head_backward<F: Float, const D: usize>(
    head: Head<D>,
    scale: F,
    document: &Document<'_, F>,
    grad_qkv: &mut [F],
) {
    let stride = 3 * head.width;
    let mut weights = document.weights;
    let rows = document
        .qkv
        .chunks_exact(stride)
        .zip(document.out.chunks_exact(head.width))
        .zip(document.grad.chunks_exact(head.width));
    for (t, ((row, out_row), grad_row)) in rows.enumerate() {
        let row_weights;
        (row_weights, weights) = weights.split_at(t + 1);
        let dout = head.query(grad_row);
        let query = Query {
            query: head.query(row),
            dout,
            inner: dot(dout, head.query(out_row)),
            scale,
        };
        // Row t's own gradient row holds dq[t] and, for s = t, dk[t] and dv[t]: split it apart from
        // the earlier rows.
        let (earlier, current) = grad_qkv.split_at_mut(t * stride);
        let (grad_query, grad_key_value) = current[..stride].split_at_mut(head.width);
        let grad_query = head.output_mut(grad_query);
        for ((&weight, key_row), grad_row) in row_weights
            .iter()
            .zip(document.qkv.chunks_exact(stride))
            .zip(earlier.chunks_exact_mut(stride))
        {
            let (grad_key, grad_value) = head.key_value_mut(&mut grad_row[head.width..]);
            query.pair_backward(
                weight,
                head.key(key_row),
                head.value(key_row),
                grad_query,
                grad_key,
                grad_value,
            );
        }
        let (grad_key, grad_value) = head.key_value_mut(grad_key_value);
        query.pair_backward(
            row_weights[t],
            head.key(row),
            head.value(row),
            grad_query,
            grad_key,
            grad_value,
        );
    }
}

/// What the backward of one query's attention needs besides the key it attends to.
struct Query<'a, F> {
    query: &'a [F],
    dout: &'a [F],
    /// `dout . out[t]`, the softmax backward's correction.
    inner: F,
    scale: F,
}

impl<F: Float> Query<'_, F> {
    /// The gradients through one attention weight `weight` of this query on `key` and `value`.
    fn pair_backward(
        &self,
        weight: F,
        key: &[F],
        value: &[F],
        grad_query: &mut [F],
        grad_key: &mut [F],
        grad_value: &mut [F],
    ) {
        let dw = dot(self.dout, value);
        let dscore = weight * (dw - self.inner) * self.scale;
        axpy(dscore, key, grad_query);
        axpy(dscore, self.query, grad_key);
        axpy(weight, self.dout, grad_value);
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn, s};
    use proptest::collection::vec;
    use proptest::prelude::*;
    use tape::{GradientCheck, Tape};

    use super::CausalSelfAttention;

    fn matrix(rows: usize, columns: usize) -> impl Strategy<Value = ArrayD<f64>> {
        vec(-1.5..1.5f64, rows * columns)
            .prop_map(move |data| ArrayD::from_shape_vec(IxDyn(&[rows, columns]), data).unwrap())
    }

    /// The attention of `qkv`'s rows split into documents of `lengths` rows.
    fn attend(n_head: usize, qkv: &ArrayD<f64>, lengths: &[usize]) -> ArrayD<f64> {
        let mut tape = Tape::<f64>::new();
        let attention = tape.register(CausalSelfAttention { n_head });
        let qkv = tape.constant(qkv.clone());
        let out = tape
            .custom_with_indices(attention, &[qkv], lengths)
            .unwrap();
        tape.value(out).to_array()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The fused backward against finite differences, through a random projection of the output,
        /// over one to three documents laid end to end.
        #[test]
        fn attention_gradients_match_finite_differences(
            (n_head, lengths, qkv, weights) in (1usize..4, prop::sample::select(vec![1usize, 2, 3, 4, 8, 16]), vec(1usize..5, 1..4)).prop_flat_map(|(n_head, head_dim, lengths)| {
                let (width, rows) = (n_head * head_dim, lengths.iter().sum());
                (Just(n_head), Just(lengths), matrix(rows, 3 * width), matrix(rows, width))
            })
        ) {
            let mut check = GradientCheck::new();
            let attention = check.register(CausalSelfAttention { n_head });
            let result = check.run(&[qkv], |tape, inputs| {
                let out = tape.custom_with_indices(attention, &[inputs[0]], &lengths)?;
                let weights = tape.constant(weights.clone());
                tape.dot(out, weights)
            });
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        }

        /// Documents laid end to end attend as if each were alone (the oracle: each document
        /// through the op by itself), bit for bit.
        #[test]
        fn documents_laid_end_to_end_do_not_see_each_other(
            (n_head, lengths, qkv) in (1usize..4, prop::sample::select(vec![1usize, 2, 3, 4, 8, 16]), vec(1usize..5, 1..4)).prop_flat_map(|(n_head, head_dim, lengths)| {
                let rows = lengths.iter().sum();
                (Just(n_head), Just(lengths), matrix(rows, 3 * n_head * head_dim))
            })
        ) {
            let together = attend(n_head, &qkv, &lengths);
            let mut start = 0;
            for &n in &lengths {
                let alone = attend(n_head, &qkv.slice(s![start..start + n, ..]).to_owned().into_dyn(), &[n]);
                prop_assert_eq!(together.slice(s![start..start + n, ..]).into_dyn(), alone.view());
                start += n;
            }
        }
    }

    #[test]
    fn the_first_position_attends_only_to_itself() {
        // With one key, softmax gives weight 1: out[0] = v[0] whatever q and k are.
        // Rows: q (4 columns), k (4), v (4) of positions 0 and 1.
        let qkv = ndarray::arr2(&[
            [1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0, 0.5, -0.5, 2.0, 1.0],
            [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0],
        ])
        .into_dyn();
        let out = attend(2, &qkv, &[2]);
        let first: Vec<f64> = out.iter().take(4).copied().collect();
        assert_eq!(first, vec![0.5, -0.5, 2.0, 1.0]);
        // Position 1, head 0: scores (q1 . k0, q1 . k1) / sqrt(2) = (3, 1) / sqrt(2).
        let (a, b) = (3.0 / 2f64.sqrt(), 1.0 / 2f64.sqrt());
        let w0 = (a - a).exp() / ((a - a).exp() + (b - a).exp());
        let expected = w0 * 0.5 + (1.0 - w0) * 3.0;
        assert!((out[[1, 0]] - expected).abs() < 1e-15);
    }

    #[test]
    fn lengths_must_cover_the_rows() {
        let mut tape = Tape::<f64>::new();
        let attention = tape.register(CausalSelfAttention { n_head: 1 });
        let qkv = tape.constant(ArrayD::zeros(IxDyn(&[3, 3])));
        for lengths in [&[1, 1][..], &[3, 0], &[]] {
            let error = tape
                .custom_with_indices(attention, &[qkv], lengths)
                .unwrap_err();
            assert!(error.to_string().contains("sum to the 3 rows"), "{error}");
        }
    }
}
