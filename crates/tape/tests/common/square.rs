//! A custom op that the checker suites verify: `x^2`, correct or with the classic bug.

use tape::{CustomOp, Float, InputGrads, Inputs, TapeError, Tensor};

/// `x^2` elementwise, with a backward that adds its share of the input's gradient, or (the classic
/// mistake) writes it over whatever other uses of the input put there.
pub struct Square {
    /// Whether backward writes over the input's gradient instead of adding to it.
    pub overwrites: bool,
}

impl<F: Float> CustomOp<F> for Square {
    fn name(&self) -> &'static str {
        "square"
    }

    fn forward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &mut Tensor<F>,
        _saved: &mut Tensor<F>,
    ) -> Result<(), TapeError> {
        let x = inputs.get(0);
        let out = output.resize(x.shape());
        for (out, &x) in out.iter_mut().zip(x.as_slice()) {
            *out = x * x;
        }
        Ok(())
    }

    fn backward(
        &self,
        inputs: &Inputs<'_, F>,
        _output: &Tensor<F>,
        _saved: &Tensor<F>,
        output_grad: &Tensor<F>,
        grads: &mut InputGrads<'_, '_, F>,
    ) {
        let x = inputs.get(0).as_slice();
        let two = F::from_f64(2.0);
        let grad = grads.get_mut(0).as_mut_slice();
        for ((sum, &g), &x) in grad.iter_mut().zip(output_grad.as_slice()).zip(x) {
            if self.overwrites {
                *sum = two * x * g;
            } else {
                *sum += two * x * g;
            }
        }
    }
}
