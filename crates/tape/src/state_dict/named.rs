//! Names for a tape's parameters, and the copies between them and a state dict.

use std::collections::HashMap;
use std::path::Path;

use super::{METADATA_KEY, StateDict, StateDictError};
use crate::{Float, Tape, Tensor, Var};

/// Whether loading needs every parameter and every tensor accounted for (PyTorch's
/// `load_state_dict(strict=True)`, the default) or leaves unmatched ones alone (`strict=False`).
///
/// Shapes must match either way, as in PyTorch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strictness {
    /// A parameter without a tensor is [`StateDictError::MissingTensors`], a tensor without a
    /// parameter [`StateDictError::UnexpectedTensors`], and nothing is loaded.
    #[default]
    Strict,
    /// Parameters without a tensor keep their values and tensors without a parameter are ignored
    /// (an optimizer's state in the same file, say); [`LoadReport`] lists both.
    NonStrict,
}

/// What a load left unmatched: PyTorch's `missing_keys` and `unexpected_keys` (both empty after a
/// strict load).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters the state dict had no tensor for, which kept their values, in naming order.
    pub missing: Vec<String>,
    /// Tensors of the state dict that named no parameter, which were ignored, in sorted order.
    pub unexpected: Vec<String>,
}

/// Names for parameters of a [`Tape`]: what a PyTorch module's `named_parameters()` yields, and
/// what saving and loading by name go through.
///
/// Names are plain strings, conventionally dotted paths (`"layer0.attn_wq"`, `"fc1.weight"`), so
/// that a saved file loads into a PyTorch module whose attributes have those names. A name is
/// given once; one parameter may have two names (tied weights), as in PyTorch's state dicts.
///
/// ```
/// use ndarray::{arr1, arr2};
/// use tape::{NamedParameters, Strictness, Tape};
///
/// let mut tape = Tape::<f64>::new();
/// let mut names = NamedParameters::new();
/// let w = names.parameter(&mut tape, "linear.weight", arr2(&[[1.0, 2.0]]))?;
/// // A parameter made without a name can be named afterwards.
/// let b = tape.parameter(arr1(&[0.0]));
/// names.insert("linear.bias", b)?;
///
/// let saved = names.state_dict(&tape)?;
/// tape.parameter_mut(w).as_mut_slice().fill(0.0);
/// let report = names.load_state_dict(&mut tape, &saved, Strictness::Strict)?;
/// assert_eq!(tape.value(w), &arr2(&[[1.0, 2.0]]));
/// assert!(report.missing.is_empty() && report.unexpected.is_empty());
/// # Ok::<(), tape::StateDictError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct NamedParameters {
    /// Names and parameters in the order they were named.
    entries: Vec<(String, Var)>,
    /// The position of each name in `entries`.
    positions: HashMap<String, usize>,
}

impl NamedParameters {
    /// No names yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the parameters of `pairs`, in order: [`NamedParameters::insert`] for each.
    ///
    /// ```
    /// use ndarray::arr1;
    /// use tape::{NamedParameters, Tape};
    ///
    /// let mut tape = Tape::<f32>::new();
    /// let w = tape.parameter(arr1(&[1.0]));
    /// let b = tape.parameter(arr1(&[2.0]));
    /// let names = NamedParameters::from_pairs([("w", w), ("b", b)])?;
    /// assert_eq!(names.get("b"), Some(b));
    /// # Ok::<(), tape::StateDictError>(())
    /// ```
    pub fn from_pairs<S: Into<String>>(
        pairs: impl IntoIterator<Item = (S, Var)>,
    ) -> Result<Self, StateDictError> {
        let mut names = Self::new();
        for (name, var) in pairs {
            names.insert(name, var)?;
        }
        Ok(names)
    }

    /// Adds a parameter to `tape` ([`Tape::parameter`]) and names it: the one call a model's
    /// constructor makes per weight. On an error (a name taken or reserved) nothing is added.
    ///
    /// # Panics
    /// If `value` has more than [`MAX_AXES`](crate::MAX_AXES) axes, as [`Tape::parameter`].
    pub fn parameter<F: Float>(
        &mut self,
        tape: &mut Tape<F>,
        name: impl Into<String>,
        value: impl Into<Tensor<F>>,
    ) -> Result<Var, StateDictError> {
        let name = name.into();
        self.check_new(&name)?;
        let var = tape.parameter(value);
        self.insert(name, var)?;
        Ok(var)
    }

    /// Names the parameter `var`. Fails if the name is taken or is `__metadata__`, or if `var` is
    /// not a parameter (a constant or an op's result).
    pub fn insert(&mut self, name: impl Into<String>, var: Var) -> Result<(), StateDictError> {
        let name = name.into();
        self.check_new(&name)?;
        if !var.is_parameter() {
            return Err(StateDictError::NotAParameter { name });
        }
        self.positions.insert(name.clone(), self.entries.len());
        self.entries.push((name, var));
        Ok(())
    }

    fn check_new(&self, name: &str) -> Result<(), StateDictError> {
        if name == METADATA_KEY {
            let name = name.to_string();
            return Err(StateDictError::ReservedName { name });
        }
        if self.positions.contains_key(name) {
            let name = name.to_string();
            return Err(StateDictError::DuplicateName { name });
        }
        Ok(())
    }

    /// The parameter named `name`.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.positions
            .get(name)
            .map(|&position| self.entries[position].1)
    }

    /// Every name and its parameter, in the order they were named.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, Var)> + '_ {
        self.entries.iter().map(|(name, var)| (name.as_str(), *var))
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no parameter is named.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A copy of every named parameter's value, by name (PyTorch's `model.state_dict()`), with no
    /// metadata. Fails if a parameter belongs to another tape.
    pub fn state_dict<F: Float>(&self, tape: &Tape<F>) -> Result<StateDict<F>, StateDictError> {
        let mut state = StateDict::new();
        for (name, var) in self.iter() {
            let value = value_of(tape, name, var)?;
            state.tensors.insert(name.to_string(), value.clone());
        }
        Ok(state)
    }

    /// Copies the tensors of `state` into the parameters of the same names (PyTorch's
    /// `model.load_state_dict(state, strict)`), all or nothing: every check (shapes, then missing
    /// and unexpected names under [`Strictness::Strict`]) passes before any value changes.
    pub fn load_state_dict<F: Float>(
        &self,
        tape: &mut Tape<F>,
        state: &StateDict<F>,
        strictness: Strictness,
    ) -> Result<LoadReport, StateDictError> {
        let mut report = LoadReport::default();
        for (name, var) in self.iter() {
            let expected = value_of(tape, name, var)?.shape();
            match state.tensors.get(name) {
                None => report.missing.push(name.to_string()),
                Some(tensor) if tensor.shape() != expected => {
                    return Err(StateDictError::ShapeMismatch {
                        name: name.to_string(),
                        expected: expected.to_vec(),
                        found: tensor.shape().to_vec(),
                    });
                }
                Some(_) => {}
            }
        }
        report.unexpected = state
            .tensors
            .keys()
            .filter(|name| !self.positions.contains_key(name.as_str()))
            .cloned()
            .collect();
        if strictness == Strictness::Strict {
            if !report.missing.is_empty() {
                let names = report.missing;
                return Err(StateDictError::MissingTensors { names });
            }
            if !report.unexpected.is_empty() {
                let names = report.unexpected;
                return Err(StateDictError::UnexpectedTensors { names });
            }
        }
        for (name, var) in self.iter() {
            if let Some(tensor) = state.tensors.get(name) {
                // Same shape, checked above, so the same number of elements.
                let value = tape.parameter_mut(var).as_mut_slice();
                value.copy_from_slice(tensor.as_slice());
            }
        }
        Ok(report)
    }

    /// Saves the named parameters of `tape` to a safetensors file at `path`, atomically
    /// ([`NamedParameters::state_dict`], then [`StateDict::save`]). To add metadata or an
    /// optimizer's state, take the state dict, add to it and save that.
    pub fn save<F: Float>(
        &self,
        tape: &Tape<F>,
        path: impl AsRef<Path>,
    ) -> Result<(), StateDictError> {
        self.state_dict(tape)?.save(path)
    }

    /// Loads the safetensors file at `path` into the named parameters of `tape`
    /// ([`StateDict::load`], then [`NamedParameters::load_state_dict`]). F32 and F64 files both
    /// load, converted to the tape's type.
    pub fn load<F: Float>(
        &self,
        tape: &mut Tape<F>,
        path: impl AsRef<Path>,
        strictness: Strictness,
    ) -> Result<LoadReport, StateDictError> {
        self.load_state_dict(tape, &StateDict::load(path)?, strictness)
    }
}

/// The value of the parameter `name` names, or an error if it is not one of `tape`'s.
fn value_of<'a, F: Float>(
    tape: &'a Tape<F>,
    name: &str,
    var: Var,
) -> Result<&'a Tensor<F>, StateDictError> {
    tape.try_value(var)
        .map_err(|_| StateDictError::NotAParameter {
            name: name.to_string(),
        })
}
