//! A two-layer perceptron learns XOR: parameters, a training loop on a reused tape, cross-entropy,
//! and a plain gradient-descent update. Run it with `cargo run -p tape --example 01_xor_mlp`.

use ndarray::arr2;
use tape::{Gradients, Tape, TapeError};

fn main() -> Result<(), TapeError> {
    let mut tape = Tape::<f64>::new();
    // Fixed, asymmetric starting weights, so the example prints the same thing every run.
    let hidden = tape.parameter(
        arr2(&[
            [0.5, -0.4, 0.1],
            [-0.3, 0.6, -0.2],
            [0.8, 0.7, 0.3],
            [-0.6, -0.5, 0.4],
        ])
        .into_dyn(),
    );
    let output = tape.parameter(arr2(&[[0.3, -0.2, 0.5, 0.1], [-0.4, 0.6, -0.1, 0.2]]).into_dyn());
    // The third input is always 1: the layers have no biases of their own.
    let inputs = [
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [1.0, 0.0, 1.0],
        [1.0, 1.0, 1.0],
    ];
    let targets = [0, 1, 1, 0];
    let flat_inputs: Vec<f64> = inputs.iter().flatten().copied().collect();

    let mut gradients = Gradients::new();
    for step in 0..=300 {
        // One step: the whole batch as a [4, 3] matrix, logits [4, 2], mean cross-entropy.
        tape.clear();
        let x = tape.constant_from_slice(&[4, 3], &flat_inputs)?;
        let h = tape.linear(x, hidden)?;
        let h = tape.relu(h)?;
        let logits = tape.linear(h, output)?;
        let loss = tape.softmax_cross_entropy(logits, &targets)?;
        tape.backward_into(loss, &mut gradients)?;
        if step % 50 == 0 {
            println!("step {step:3}: loss {:.4}", tape.scalar(loss));
        }
        for parameter in [hidden, output] {
            let gradient = gradients.parameter(parameter).view();
            tape.parameter_mut(parameter)
                .view_mut()
                .scaled_add(-0.5, &gradient);
        }
    }

    println!(
        "d loss / d output weights at the end:\n{:.5}",
        gradients.parameter(output)
    );
    tape.clear();
    let x = tape.constant_from_slice(&[4, 3], &flat_inputs)?;
    let probabilities = tape.without_grad(|tape| {
        let h = tape.linear(x, hidden)?;
        let h = tape.relu(h)?;
        let logits = tape.linear(h, output)?;
        tape.softmax(logits)
    })?;
    for (input, p) in inputs.iter().zip(tape.value(probabilities).view().rows()) {
        println!("{:?} -> p(1) = {:.3}", &input[..2], p[1]);
    }
    Ok(())
}
