//! The model's weights: named matrices in DESIGN.md's order.

use ndarray::Array2;
use tape::Float;

use crate::random::Randomness;
use crate::{Config, ConfigError};

/// The standard deviation of the initial weights, as in microgpt.py.
pub const INIT_STD: f64 = 0.08;

/// One transformer block's matrices, in their order within the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerWeight {
    /// `attn_wq [n_embd, n_embd]`
    Query = 0,
    /// `attn_wk [n_embd, n_embd]`
    Key = 1,
    /// `attn_wv [n_embd, n_embd]`
    Value = 2,
    /// `attn_wo [n_embd, n_embd]`
    Output = 3,
    /// `mlp_fc1 [4 n_embd, n_embd]`
    Expand = 4,
    /// `mlp_fc2 [n_embd, 4 n_embd]`
    Contract = 5,
}

/// Where each weight sits in [`Params::tensors`]: `wte`, `wpe`, `lm_head`, then six per layer.
pub(crate) const WTE: usize = 0;
pub(crate) const WPE: usize = 1;
pub(crate) const LM_HEAD: usize = 2;

/// The index of a block's matrix in [`Params::tensors`].
pub(crate) fn layer_index(layer: usize, weight: LayerWeight) -> usize {
    3 + 6 * layer + weight as usize
}

/// The weights of a model of a given [`Config`], each a row-major `[out, in]` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<F> {
    config: Config,
    names: Vec<String>,
    tensors: Vec<Array2<F>>,
}

/// Why a set of tensors does not make the weights of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The configuration itself is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tensor the configuration needs is absent.
    #[error("tensor {0:?} is missing")]
    Missing(String),
    /// A tensor has the wrong shape.
    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// The shape the configuration needs.
        expected: [usize; 2],
        /// The shape given.
        found: Vec<usize>,
    },
}

impl<F: Float> Params<F> {
    /// Fresh weights: every element drawn from N(0, 0.08), tensor by tensor in DESIGN.md's order and
    /// row by row, exactly the sequence of draws microgpt.py makes.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(42);
    /// let params = gpt::Params::<f64>::init(gpt::Config::default(), &mut rng).unwrap();
    /// assert_eq!(params.num_params(), 4064);
    /// ```
    pub fn init(config: Config, rng: &mut impl Randomness) -> Result<Self, ConfigError> {
        config.validate()?;
        let (names, tensors) = config
            .parameter_shapes()
            .into_iter()
            .map(|(name, [rows, columns])| {
                let tensor = Array2::from_shape_simple_fn((rows, columns), || {
                    F::from_f64(rng.normal(0.0, INIT_STD))
                });
                (name, tensor)
            })
            .unzip();
        Ok(Params {
            config,
            names,
            tensors,
        })
    }

    /// Weights from named tensors (in any order; extra names are ignored), checked against `config`.
    pub fn from_named(
        config: Config,
        mut named: Vec<(String, Array2<F>)>,
    ) -> Result<Self, ParamsError> {
        config.validate()?;
        let mut names = Vec::new();
        let mut tensors = Vec::new();
        for (name, expected) in config.parameter_shapes() {
            let position = named
                .iter()
                .position(|(candidate, _)| *candidate == name)
                .ok_or_else(|| ParamsError::Missing(name.clone()))?;
            let (_, tensor) = named.swap_remove(position);
            if tensor.shape() != expected {
                let found = tensor.shape().to_vec();
                return Err(ParamsError::Shape {
                    name,
                    expected,
                    found,
                });
            }
            names.push(name);
            tensors.push(tensor);
        }
        Ok(Params {
            config,
            names,
            tensors,
        })
    }

    /// The configuration these weights belong to.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `(name, tensor)` pairs in DESIGN.md's order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Array2<F>)> {
        self.names.iter().map(String::as_str).zip(&self.tensors)
    }

    /// The names in DESIGN.md's order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The tensors in DESIGN.md's order.
    pub fn tensors(&self) -> &[Array2<F>] {
        &self.tensors
    }

    /// The tensors in DESIGN.md's order, for an optimizer or a loader to write.
    pub fn tensors_mut(&mut self) -> &mut [Array2<F>] {
        &mut self.tensors
    }

    /// The tensor called `name`, such as `"layer0.attn_wq"`.
    pub fn get(&self, name: &str) -> Option<&Array2<F>> {
        self.names
            .iter()
            .position(|candidate| candidate == name)
            .map(|index| &self.tensors[index])
    }

    /// The token embedding table `wte [vocab_size, n_embd]`.
    pub fn wte(&self) -> &Array2<F> {
        &self.tensors[WTE]
    }

    /// The position embedding table `wpe [block_size, n_embd]`.
    pub fn wpe(&self) -> &Array2<F> {
        &self.tensors[WPE]
    }

    /// The output projection `lm_head [vocab_size, n_embd]`.
    pub fn lm_head(&self) -> &Array2<F> {
        &self.tensors[LM_HEAD]
    }

    /// One matrix of block `layer`.
    pub fn layer(&self, layer: usize, weight: LayerWeight) -> &Array2<F> {
        &self.tensors[layer_index(layer, weight)]
    }

    /// The number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.tensors.iter().map(Array2::len).sum()
    }

    /// The same weights in another precision (`f64` to `f32` rounds to nearest).
    pub fn cast<G: Float>(&self) -> Params<G> {
        Params {
            config: self.config,
            names: self.names.clone(),
            tensors: self
                .tensors
                .iter()
                .map(|tensor| tensor.mapv(|x| G::from_f64(x.to_f64())))
                .collect(),
        }
    }
}
