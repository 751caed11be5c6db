//! A user-defined op: the squared distance of each point to a learned centre, the loss of a
//! k-means step or of a "centre loss" on embeddings. It is written once through the `CustomOp`
//! trait (forward and backward side by side), used to learn a centre, and verified with
//! `GradientCheck`.
//!
//! Then the classic mistake: a backward that writes (`=`) its input's gradient instead of adding to
//! it (`+=`). Used once, the input's gradient starts at zero and the mistake is invisible; used
//! twice, the second use's share is overwritten. A gradient check catches it only if the test uses
//! the input twice, which is what the last check does.
//!
//! Run it with `cargo run -p tape --example 04_custom_op`; it exits with an error if a check does
//! not come out as described.

use std::process::ExitCode;

use ndarray::{ArrayD, arr1, arr2};
use tape::{
    CustomOp, Float, GradientCheck, GradientCheckError, InputGrads, Inputs, Tape, TapeError,
    Tensor, Var,
};

/// `d[i] = sum_j (x[i, j] - c[j])^2` for points `x` of shape `[.., D]` and a centre `c` of shape
/// `[D]`; `d` has the shape of `x` without its last axis.
struct SquaredDistance {
    /// The deliberate bug: the backward overwrites the gradients of its inputs.
    overwrites_gradients: bool,
}

impl<F: Float> CustomOp<F> for SquaredDistance {
    fn name(&self) -> &'static str {
        "squared_distance"
    }

    fn forward(
        &self,
        inputs: &Inputs<'_, F>,
        output: &mut Tensor<F>,
        _saved: &mut Tensor<F>,
    ) -> Result<(), TapeError> {
        let (x, c) = (inputs.get(0), inputs.get(1));
        if x.ndim() == 0 || c.ndim() != 1 || x.row_len() != c.len() {
            let detail = format!(
                "points {:?} and centre {:?}: the centre must be a vector as long as a point",
                x.shape(),
                c.shape()
            );
            return Err(TapeError::shape("squared_distance", detail));
        }
        let out = output.resize(&x.shape()[..x.ndim() - 1]);
        let points = x.as_slice().chunks_exact(c.len().max(1));
        for (out, point) in out.iter_mut().zip(points) {
            *out = point
                .iter()
                .zip(c.as_slice())
                .map(|(&x, &c)| (x - c) * (x - c))
                .fold(F::zero(), |sum, term| sum + term);
        }
        Ok(())
    }

    /// `d d[i] / d x[i, j] = 2 (x[i, j] - c[j])` and `d d[i] / d c[j] = -2 (x[i, j] - c[j])`.
    fn backward(
        &self,
        inputs: &Inputs<'_, F>,
        _output: &Tensor<F>,
        _saved: &Tensor<F>,
        output_grad: &Tensor<F>,
        grads: &mut InputGrads<'_, '_, F>,
    ) {
        let (x, c) = (inputs.get(0).as_slice(), inputs.get(1).as_slice());
        let (grad, width, two) = (output_grad.as_slice(), c.len().max(1), F::from_f64(2.0));
        // Add into the gradients (`+=`): another op may already have put its share of an input's
        // gradient there. The wrong variant writes over it (`=`).
        let update = |sum: &mut F, value: F| {
            if self.overwrites_gradients {
                *sum = value;
            } else {
                *sum += value;
            }
        };
        let dx = grads.get_mut(0).as_mut_slice();
        for ((dx, point), &g) in dx
            .chunks_exact_mut(width)
            .zip(x.chunks_exact(width))
            .zip(grad)
        {
            for ((dx, &x), &c) in dx.iter_mut().zip(point).zip(c) {
                update(dx, two * g * (x - c));
            }
        }
        let dc = grads.get_mut(1).as_mut_slice();
        for (j, dc) in dc.iter_mut().enumerate() {
            let points = x.chunks_exact(width).zip(grad);
            let total = points.fold(F::zero(), |sum, (point, &g)| {
                sum - two * g * (point[j] - c[j])
            });
            update(dc, total);
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let points = arr2(&[[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]).into_dyn();

    // 1. The forward value, worked by hand for the centre (1, 0): (0 + 4, 1 + 1, 4 + 0.25).
    let mut tape = Tape::<f64>::new();
    let distance = tape.register(SquaredDistance {
        overwrites_gradients: false,
    });
    let x = tape.constant(points.clone());
    let centre = tape.parameter(arr1(&[1.0, 0.0]));
    let d = tape
        .custom(distance, &[x, centre])
        .map_err(|e| e.to_string())?;
    println!("1. distances to (1, 0): {}", tape.value(d));
    expect(
        tape.value(d) == &arr1(&[4.0, 2.0, 4.25]),
        "the distances are 4, 2, 4.25",
    )?;

    // 2. Learning the centre by gradient descent on the mean distance: it must end at the mean of
    //    the points, (4/3, 1/2), the minimiser of a sum of squared distances.
    for _ in 0..50 {
        tape.clear();
        let x = tape.constant(points.clone());
        let d = tape
            .custom(distance, &[x, centre])
            .map_err(|e| e.to_string())?;
        let loss = tape.mean(d).map_err(|e| e.to_string())?;
        let gradients = tape.backward(loss).map_err(|e| e.to_string())?;
        let step = gradients.parameter(centre).view().to_owned();
        tape.parameter_mut(centre)
            .view_mut()
            .scaled_add(-0.25, &step);
    }
    let learned = tape.value(centre).as_slice().to_vec();
    println!("2. learned centre: {learned:.6?} (the mean of the points is [1.333333, 0.500000])");
    let at_mean = (learned[0] - 4.0 / 3.0).abs() < 1e-9 && (learned[1] - 0.5).abs() < 1e-9;
    expect(at_mean, "the learned centre is the mean of the points")?;

    // 3-6. Gradient checks against finite differences. The checker has a tape of its own, on which
    //      the op is registered once before the checked function runs.
    let inputs = [
        points.clone(),
        arr1(&[0.5, -0.25]).into_dyn(),
        arr1(&[-1.0, 1.5]).into_dyn(),
    ];
    let weights = [
        arr1(&[0.7, -0.3, 1.1]).into_dyn(),
        arr1(&[-0.4, 0.9, 0.2]).into_dyn(),
    ];
    for (step, overwrites_gradients) in [(3, false), (5, true)] {
        let variant = if overwrites_gradients {
            "overwriting"
        } else {
            "correct"
        };
        let once = check(&inputs, &weights, overwrites_gradients, false);
        println!(
            "{step}. {variant} backward, points used once: {}",
            describe(&once)
        );
        // Used once, every gradient starts at zero, so writing equals adding: the bug hides.
        expect(once.is_ok(), "a single use passes the check")?;
        let twice = check(&inputs, &weights, overwrites_gradients, true);
        println!(
            "{}. {variant} backward, points used twice (two centres): {}",
            step + 1,
            describe(&twice)
        );
        if overwrites_gradients {
            expect(
                matches!(twice, Err(GradientCheckError::Mismatch { input: 0, .. })),
                "the overwriting backward fails on the points' gradient",
            )?;
        } else {
            expect(twice.is_ok(), "the correct backward passes")?;
        }
    }
    println!("every check came out as expected");
    Ok(())
}

/// Checks the gradients of `sum_i w1[i] d(x, c1)[i]` and, when `twice`, plus
/// `sum_i w2[i] d(x, c2)[i]`, with respect to the points `x` and both centres.
fn check(
    inputs: &[ArrayD<f64>; 3],
    weights: &[ArrayD<f64>; 2],
    overwrites_gradients: bool,
    twice: bool,
) -> Result<tape::GradientReport, GradientCheckError> {
    let mut check = GradientCheck::new();
    let distance = check.register(SquaredDistance {
        overwrites_gradients,
    });
    check.run(inputs, |tape, vars| {
        let weighted = |tape: &mut Tape<f64>, centre: Var, weights: &ArrayD<f64>| {
            let d = tape.custom(distance, &[vars[0], centre])?;
            let weights = tape.constant(weights.clone());
            tape.dot(d, weights)
        };
        let first = weighted(tape, vars[1], &weights[0])?;
        if !twice {
            return Ok(first);
        }
        let second = weighted(tape, vars[2], &weights[1])?;
        tape.add(first, second)
    })
}

fn describe(result: &Result<tape::GradientReport, GradientCheckError>) -> String {
    match result {
        Ok(report) => format!(
            "passes ({} elements, largest error {:.1e})",
            report.elements, report.max_abs_error
        ),
        Err(error) => format!("caught: {error}"),
    }
}

fn expect(condition: bool, claim: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!("expected: {claim}"))
    }
}
