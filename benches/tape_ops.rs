//! Per-op overhead of the tape on 16-wide vectors, the width of microgpt's residual stream.
//!
//! At `n_embd = 16` an op does a few dozen flops, so what an op costs on the tape is mostly
//! bookkeeping: checking the inputs, reusing a node's buffers, dispatching its backward, zeroing
//! and accumulating a gradient. These benchmarks measure that cost on a warm tape (parameters
//! created once, `Tape::clear` per iteration, one reused `Gradients`), so nothing is allocated.
//!
//! Group `tape_op_16_f64`: every iteration records `op` on 16-wide parameters, reduces its result
//! to a scalar with `sum`, and runs `backward_into`. `baseline_sum` records only the `sum` (of a
//! 16-wide parameter). How to read it: **the per-op overhead of `op` (forward + its share of
//! backward) is `median(op) - median(baseline_sum)`**; the baseline also carries the per-step fixed
//! costs (clear, the scalar `sum`, zeroing the parameters' gradients, the backward loop), which
//! every op pays once per step, not once per op. `dot` is followed by a `sum` of its scalar result,
//! so it is measured the same way. `linear_16x16` is `W x` for a 16x16 parameter `W` (512
//! multiply-adds with backward).
//!
//! Group `matvec_16x16_with_backward`: `loss = sum(W x)` and its gradients for a 16x16 `W` and a
//! 16-wide `x`, on the tape (one `matvec` + one `sum`) and on the scalar engine (272 leaves kept
//! across iterations with `Graph::truncate`, `scalar::layers::linear`, `sum`, `backward`), side by
//! side, so the ratio of the two medians is the tape's speed-up on this shape.
//!
//! Group `linear_forward_backward`: `loss = sum(x W^T)` and its gradients for `x` of shape
//! `[rows, in]` and `W` of shape `[out, in]`, in `f32` and `f64`, at the shapes of microgpt's
//! layers (named `rows x in x out`): 8 rows is a document of batch 1, 64 a chunk of documents;
//! 16-wide is Karpathy's configuration (the stacked query, key and value projections are 16 x 48),
//! 128-wide the d128 workload. It times the product kernels (forward, input and weight gradients)
//! with the per-op costs above on top.
//!
//! Group `matmul_batched_forward_backward`: `loss = sum(a b)` and its gradients in `f32` for a
//! batch of inputs times one weight, `[B=32, T=8, C=16] @ [16, 64]` (a linear layer written with
//! `matmul`), next to the same numbers as one `[256, 16]` matrix (what the batched product must
//! cost) and as `linear` with the transposed `[64, 16]` weight (whose backward has faster kernels
//! than `matmul`'s), and attention's scores `[B=32, H=4, T=8, D=4] @ [32, 4, 4, 8]`, 128 small
//! products.
//!
//! Run with `cargo bench -p microgpt-rs --bench tape_ops` (add `-- --quick` for a fast check);
//! without `-p` cargo looks only in the workspace's default member, the CLI, and finds no bench.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use tape::{Float, Gradients, Tape, TapeError, Var};

const WIDTH: usize = 16;

/// A warm tape holding the parameters every benchmark of the group reads.
struct Fixture {
    tape: Tape<f64>,
    gradients: Gradients<f64>,
    a: Var,
    b: Var,
    w: Var,
}

impl Fixture {
    fn new() -> Self {
        let mut tape = Tape::new();
        // Values in (-1, 1) with both signs, so relu takes both branches and exp stays moderate.
        let vector = |offset: f64| {
            Array1::from_shape_fn(WIDTH, |i| ((i as f64 + offset) * 0.37).sin()).into_dyn()
        };
        let a = tape.parameter(vector(0.0));
        let b = tape.parameter(vector(5.0));
        let matrix = Array2::from_shape_fn((WIDTH, WIDTH), |(i, j)| {
            ((i * WIDTH + j) as f64 * 0.11).cos()
        });
        let w = tape.parameter(matrix.into_dyn());
        Fixture {
            tape,
            gradients: Gradients::new(),
            a,
            b,
            w,
        }
    }

    /// One step: clear, record `op` and a `sum` of its result, backward. Returns the loss.
    fn step(
        &mut self,
        op: impl Fn(&mut Tape<f64>, Var, Var, Var) -> Result<Var, TapeError>,
    ) -> f64 {
        self.tape.clear();
        let (a, b, w) = (black_box(self.a), black_box(self.b), black_box(self.w));
        let output = op(&mut self.tape, a, b, w).expect("valid shapes");
        let loss = self.tape.sum(output).expect("any shape sums");
        self.tape
            .backward_into(loss, &mut self.gradients)
            .expect("a scalar loss");
        self.tape.scalar(loss)
    }
}

type OpFn = fn(&mut Tape<f64>, Var, Var, Var) -> Result<Var, TapeError>;

fn tape_ops(c: &mut Criterion) {
    let ops: [(&str, OpFn); 9] = [
        ("baseline_sum", |_, a, _, _| Ok(a)),
        ("add", |tape, a, b, _| tape.add(a, b)),
        ("mul", |tape, a, b, _| tape.mul(a, b)),
        ("relu", |tape, a, _, _| tape.relu(a)),
        ("exp", |tape, a, _, _| tape.exp(a)),
        ("softmax", |tape, a, _, _| tape.softmax(a)),
        ("rms_norm", |tape, a, _, _| tape.rms_norm(a, None, 1e-5)),
        ("dot", |tape, a, b, _| tape.dot(a, b)),
        ("linear_16x16", |tape, a, _, w| tape.linear(a, w)),
    ];
    let mut group = c.benchmark_group("tape_op_16_f64");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut fixture = Fixture::new();
    for (name, op) in ops {
        group.bench_function(name, |bencher| bencher.iter(|| fixture.step(op)));
    }
    group.finish();
}

fn matvec_tape_vs_scalar(c: &mut Criterion) {
    let mut group = c.benchmark_group("matvec_16x16_with_backward");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let mut fixture = Fixture::new();
    group.bench_function("tape_f64", |bencher| {
        bencher.iter(|| fixture.step(|tape, a, _, w| tape.matvec(w, a)))
    });

    // The same numbers on the scalar engine: W row-major, then x, as leaves that outlive each step.
    let mut graph = scalar::Graph::new();
    let weight: Vec<scalar::Value> = (0..WIDTH * WIDTH)
        .map(|index| graph.leaf((index as f64 * 0.11).cos()))
        .collect();
    let input: Vec<scalar::Value> = (0..WIDTH)
        .map(|i| graph.leaf((i as f64 * 0.37).sin()))
        .collect();
    let leaves = graph.len();
    let mut output = Vec::with_capacity(WIDTH);
    group.bench_function("scalar_f64", |bencher| {
        bencher.iter(|| {
            graph.truncate(leaves);
            output.clear();
            scalar::layers::linear(&mut graph, black_box(&input), &weight, &mut output);
            let loss = graph.sum(&output);
            graph.backward(loss);
            graph.data(loss)
        })
    });
    group.finish();
}

/// A warm tape holding `x` `[rows, in]` and `W` `[out, in]` as parameters.
struct LinearFixture<F: Float> {
    tape: Tape<F>,
    gradients: Gradients<F>,
    x: Var,
    w: Var,
}

impl<F: Float> LinearFixture<F> {
    fn new((rows, inner, outputs): (usize, usize, usize)) -> Self {
        let mut tape = Tape::new();
        let matrix = |rows: usize, columns: usize, step: f64| {
            Array2::from_shape_fn((rows, columns), |(i, j)| {
                F::from_f64(((i * columns + j) as f64 * step).sin())
            })
            .into_dyn()
        };
        let x = tape.parameter(matrix(rows, inner, 0.37));
        let w = tape.parameter(matrix(outputs, inner, 0.11));
        LinearFixture {
            tape,
            gradients: Gradients::new(),
            x,
            w,
        }
    }

    fn step(&mut self) -> F {
        self.tape.clear();
        let output = self
            .tape
            .linear(black_box(self.x), black_box(self.w))
            .expect("valid shapes");
        let loss = self.tape.sum(output).expect("any shape sums");
        self.tape
            .backward_into(loss, &mut self.gradients)
            .expect("a scalar loss");
        self.tape.scalar(loss)
    }
}

fn linear_forward_backward(c: &mut Criterion) {
    let shapes = [
        (8, 16, 48),
        (8, 16, 64),
        (8, 64, 16),
        (8, 128, 384),
        (8, 512, 128),
        (64, 128, 512),
    ];
    let mut group = c.benchmark_group("linear_forward_backward");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for shape in shapes {
        let (rows, inner, outputs) = shape;
        let mut fixture = LinearFixture::<f32>::new(shape);
        let name = format!("f32_{rows}x{inner}x{outputs}");
        group.bench_function(name, |bencher| bencher.iter(|| fixture.step()));
        let mut fixture = LinearFixture::<f64>::new(shape);
        let name = format!("f64_{rows}x{inner}x{outputs}");
        group.bench_function(name, |bencher| bencher.iter(|| fixture.step()));
    }
    group.finish();
}

/// A warm tape holding both operands of a product as parameters.
struct MatmulFixture<F: Float> {
    tape: Tape<F>,
    gradients: Gradients<F>,
    a: Var,
    b: Var,
    product: ProductFn<F>,
}

type ProductFn<F> = fn(&mut Tape<F>, Var, Var) -> Result<Var, TapeError>;

/// A bench id, the shapes of the two operands, and the product.
type ProductCase = (
    &'static str,
    &'static [usize],
    &'static [usize],
    ProductFn<f32>,
);

impl<F: Float> MatmulFixture<F> {
    fn new(a_shape: &[usize], b_shape: &[usize], product: ProductFn<F>) -> Self {
        let mut tape = Tape::new();
        let operand = |shape: &[usize], step: f64| {
            let len = shape.iter().product();
            let data = (0..len)
                .map(|i| F::from_f64((i as f64 * step).sin()))
                .collect();
            ArrayD::from_shape_vec(IxDyn(shape), data).expect("the data fills the shape")
        };
        let a = tape.parameter(operand(a_shape, 0.37));
        let b = tape.parameter(operand(b_shape, 0.11));
        MatmulFixture {
            tape,
            gradients: Gradients::new(),
            a,
            b,
            product,
        }
    }

    fn step(&mut self) -> F {
        self.tape.clear();
        let (a, b) = (black_box(self.a), black_box(self.b));
        let output = (self.product)(&mut self.tape, a, b).expect("valid shapes");
        let loss = self.tape.sum(output).expect("any shape sums");
        self.tape
            .backward_into(loss, &mut self.gradients)
            .expect("a scalar loss");
        self.tape.scalar(loss)
    }
}

fn matmul_batched(c: &mut Criterion) {
    let matmul: ProductFn<f32> = |tape, a, b| tape.matmul(a, b);
    let linear: ProductFn<f32> = |tape, x, w| tape.linear(x, w);
    let cases: [ProductCase; 4] = [
        ("f32_32x8x16_by_16x64", &[32, 8, 16], &[16, 64], matmul),
        ("f32_256x16_by_16x64", &[256, 16], &[16, 64], matmul),
        (
            "linear_f32_32x8x16_by_64x16",
            &[32, 8, 16],
            &[64, 16],
            linear,
        ),
        (
            "f32_32x4x8x4_by_32x4x4x8",
            &[32, 4, 8, 4],
            &[32, 4, 4, 8],
            matmul,
        ),
    ];
    let mut group = c.benchmark_group("matmul_batched_forward_backward");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, a_shape, b_shape, product) in cases {
        let mut fixture = MatmulFixture::new(a_shape, b_shape, product);
        group.bench_function(name, |bencher| bencher.iter(|| fixture.step()));
    }
    group.finish();
}

criterion_group!(
    benches,
    tape_ops,
    matvec_tape_vs_scalar,
    linear_forward_backward,
    matmul_batched
);
criterion_main!(benches);
