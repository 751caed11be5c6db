//! Residual dropout while training: off it is the plain loss to the bit, on it is a fixed function
//! of the seed (its gradient checked against finite differences of that function), the same on any
//! number of threads, and evaluation never drops anything.

use gpt::{Config, Dropout, Model, NllSum, Params};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

fn config() -> Config {
    Config {
        n_layer: 2,
        n_embd: 8,
        n_head: 2,
        block_size: 6,
        vocab_size: 5,
    }
}

fn params() -> Params<f64> {
    Params::init(config(), &mut Xoshiro256PlusPlus::seed_from_u64(9)).unwrap()
}

/// 20 documents: three chunks of [`gpt::CHUNK`], so that masks of several chunks are drawn.
fn documents() -> Vec<Vec<usize>> {
    (0..20)
        .map(|i| {
            let letters = (0..1 + i % 6).map(|j| (i + j) % 4);
            std::iter::once(4).chain(letters).chain([4]).collect()
        })
        .collect()
}

const DROPOUT: Dropout = Dropout { p: 0.3, seed: 77 };

/// The loss and every gradient element, as bits.
fn loss_and_gradient(model: &mut Model<f64>, dropout: Option<Dropout>) -> (u64, Vec<u64>) {
    let step = model
        .batch_loss_with_dropout(&documents(), dropout)
        .unwrap();
    let gradient = (0..params().tensors().len())
        .flat_map(|index| step.gradient(index).as_slice().to_vec())
        .map(f64::to_bits)
        .collect();
    (step.loss().to_bits(), gradient)
}

#[test]
fn no_dropout_and_p_zero_are_the_plain_loss_to_the_bit() {
    let mut model = Model::new(params());
    let plain = model.batch_loss(&documents()).unwrap().loss().to_bits();
    let (none, _) = loss_and_gradient(&mut model, None);
    let (zero, _) = loss_and_gradient(&mut model, Some(Dropout { p: 0.0, seed: 1 }));
    assert_eq!((plain, plain), (none, zero));
    let (dropped, _) = loss_and_gradient(&mut model, Some(DROPOUT));
    assert_ne!(plain, dropped, "dropout 0.3 left the loss unchanged");
}

/// The masks depend on the seed and the chunk alone: the same seed gives the same bits on 1, 2
/// or 3 threads; another seed other masks.
#[test]
fn masks_are_a_function_of_the_seed_on_any_number_of_threads() {
    let on_threads = |threads: usize, dropout: Dropout| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| loss_and_gradient(&mut Model::new(params()), Some(dropout)))
    };
    let one = on_threads(1, DROPOUT);
    assert_eq!(one, on_threads(2, DROPOUT));
    assert_eq!(one, on_threads(3, DROPOUT));
    let other = on_threads(
        1,
        Dropout {
            seed: 78,
            ..DROPOUT
        },
    );
    assert_ne!(one.0, other.0, "another seed drew the same masks");
}

/// With its masks fixed by the seed, the loss is a smooth function of the weights: central finite
/// differences (h = 1e-6) of it agree with the backward pass through the masks to 1e-6 relative.
/// A backward pass that ignored the masks (or scaled them otherwise) would be off by far more.
#[test]
fn the_gradient_through_the_masks_matches_finite_differences() {
    let start = params();
    let mut model = Model::new(start.clone());
    let step = model
        .batch_loss_with_dropout(&documents(), Some(DROPOUT))
        .unwrap();
    let h = 1e-6;
    for index in 0..start.tensors().len() {
        let analytic = step.gradient(index).as_slice().to_vec();
        for element in [0, analytic.len() / 2, analytic.len() - 1] {
            let loss_at = |delta: f64| {
                let mut params = start.clone();
                let tensor = &mut params.tensors_mut()[index];
                tensor.as_slice_mut().unwrap()[element] += delta;
                Model::new(params)
                    .batch_loss_with_dropout(&documents(), Some(DROPOUT))
                    .unwrap()
                    .loss()
            };
            let numeric = (loss_at(h) - loss_at(-h)) / (2.0 * h);
            let exact = analytic[element];
            assert!(
                (numeric - exact).abs() <= 1e-6 * exact.abs().max(1e-3),
                "weight {index}[{element}]: finite differences {numeric:e}, backward {exact:e}"
            );
        }
    }
}

/// Evaluation drops nothing: a model's held-out loss is the same whether it was last trained with
/// dropout or not; a probability outside [0, 1) is refused.
#[test]
fn evaluation_drops_nothing_and_bad_probabilities_are_refused() {
    let nll = |dropout: Option<Dropout>| {
        let mut model = Model::new(params());
        model
            .batch_loss_with_dropout(&documents(), dropout)
            .unwrap();
        let mut sum = NllSum::default();
        model.add_nll(&documents(), &mut sum).unwrap();
        sum.total.to_bits()
    };
    assert_eq!(nll(None), nll(Some(DROPOUT)));
    let mut model = Model::new(params());
    for p in [1.0, -0.1, f64::NAN] {
        let error = model
            .batch_loss_with_dropout(&documents(), Some(Dropout { p, seed: 1 }))
            .err()
            .expect("the probability is refused");
        assert!(error.to_string().contains("dropout probability"), "{error}");
    }
}
