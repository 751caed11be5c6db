//! State dicts in safetensors files: exact round trips in f32 and f64, conversion between them,
//! loading by name (strictly or not), an error naming the tensor for every kind of bad input, a
//! file in `gpt`'s checkpoint layout, atomic writes, and no panic on any bytes.
//!
//! The oracles: files are written and read back with the `safetensors` crate directly (not with
//! the code under test), tensor names in `gpt`'s layout are written out by hand from DESIGN.md
//! section 3, and conversions are Rust's own `as f32` and `f64::from`.

use std::collections::HashMap;
use std::fs;
use std::sync::LazyLock;
use testdata::mutation::{apply, mutation};

use ndarray::{ArrayD, IxDyn, arr1, arr2};
use proptest::collection::vec;
use proptest::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use tape::{
    Float, LoadReport, NamedParameters, StateDict, StateDictError, Strictness, Tape, Tensor,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The bytes of a safetensors file holding `tensors` (name, dtype, shape, raw little-endian
/// bytes) and `metadata`, written by the `safetensors` crate itself.
fn raw_file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], metadata: &[(&str, &str)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).unwrap();
            (name.to_string(), view)
        })
        .collect();
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    safetensors::serialize(views, (!metadata.is_empty()).then_some(metadata)).unwrap()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// A two-parameter model, `fc.weight [2, 3]` and `fc.bias [2]`, on a tape of its own.
fn model<F: Float>(weight: [[f64; 3]; 2], bias: [f64; 2]) -> (Tape<F>, NamedParameters) {
    let mut tape = Tape::new();
    let mut names = NamedParameters::new();
    let weight = arr2(&weight).mapv(F::from_f64);
    let bias = arr1(&bias).mapv(F::from_f64);
    names.parameter(&mut tape, "fc.weight", weight).unwrap();
    names.parameter(&mut tape, "fc.bias", bias).unwrap();
    (tape, names)
}

fn value<F: Float>(tape: &Tape<F>, names: &NamedParameters, name: &str) -> Vec<F> {
    tape.value(names.get(name).unwrap()).as_slice().to_vec()
}

/// A path in a fresh temporary directory (removed when the directory is dropped).
fn temporary_file(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join(name);
    (directory, path)
}

/// Any shape a tensor can have: 0 to 6 axes (a scalar up to `MAX_AXES`), zero-length axes
/// included.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    vec(0usize..4, 0..=tape::MAX_AXES)
}

/// Random tensors of random shapes with random names, with elements from `element`.
fn state_dict<F: Float + std::fmt::Debug>(
    element: impl Strategy<Value = F> + Clone,
) -> impl Strategy<Value = StateDict<F>> {
    let tensor = shape().prop_flat_map(move |shape| {
        let len: usize = shape.iter().product();
        vec(element.clone(), len).prop_map(move |data| {
            Tensor::from(ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap())
        })
    });
    let tensors =
        proptest::collection::btree_map("[a-z]{1,3}(\\.[a-z0-9]{1,3}){0,2}", tensor, 0..5);
    let metadata = proptest::collection::btree_map("[a-z_]{1,6}", ".{0,8}", 0..3);
    (tensors, metadata).prop_map(|(tensors, metadata)| StateDict { tensors, metadata })
}

/// Every element's bits, tensor by tensor, for comparisons that `0.0 == -0.0` would fool.
fn bits<F: Float>(state: &StateDict<F>) -> Vec<(String, Vec<usize>, Vec<u64>)> {
    let bits = |value: F| Float::to_f64(value).to_bits();
    let tensors = state.tensors.iter();
    let each = tensors.map(|(name, t)| {
        (
            name.clone(),
            t.shape().to_vec(),
            t.as_slice().iter().map(|&v| bits(v)).collect(),
        )
    });
    each.collect()
}

/// Finite floats, zeros of both signs, infinities and subnormals, but no NaN: a NaN's payload may
/// change when widened and narrowed again, so bits cannot be its oracle.
fn any_f32() -> impl Strategy<Value = f32> + Clone {
    any::<f32>().prop_filter("not NaN", |value| !value.is_nan())
}

fn any_f64() -> impl Strategy<Value = f64> + Clone {
    any::<f64>().prop_filter("not NaN", |value| !value.is_nan())
}

// ---------------------------------------------------------------------------------------------
// Round trips and conversions

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// If this failed, saving an f32 model and loading it back would change its weights.
    #[test]
    fn f32_round_trips_to_the_bit(state in state_dict(any_f32())) {
        let bytes = state.to_bytes().unwrap();
        let loaded = StateDict::<f32>::from_bytes(&bytes).unwrap();
        prop_assert_eq!(bits(&loaded), bits(&state));
        prop_assert_eq!(&loaded.metadata, &state.metadata);
    }

    /// If this failed, saving an f64 model and loading it back would change its weights.
    #[test]
    fn f64_round_trips_to_the_bit(state in state_dict(any_f64())) {
        let bytes = state.to_bytes().unwrap();
        let loaded = StateDict::<f64>::from_bytes(&bytes).unwrap();
        prop_assert_eq!(bits(&loaded), bits(&state));
        prop_assert_eq!(&loaded.metadata, &state.metadata);
    }

    /// An f32 file into an f64 tape widens exactly (`f64::from`), and an f64 file into an f32
    /// tape rounds to nearest (`as f32`), as `gpt`'s loader does.
    #[test]
    fn files_convert_between_f32_and_f64(values in vec(any_f64(), 1..20)) {
        let narrow: Vec<f32> = values.iter().map(|&value| value as f32).collect();
        let shape = vec![values.len()];
        let file = raw_file(
            &[("narrow", Dtype::F32, shape.clone(), f32_bytes(&narrow)), ("wide", Dtype::F64, shape, f64_bytes(&values))],
            &[],
        );
        let as_f64 = StateDict::<f64>::from_bytes(&file).unwrap();
        let widened: Vec<u64> = narrow.iter().map(|&value| f64::from(value).to_bits()).collect();
        let loaded: Vec<u64> = as_f64.tensors["narrow"].as_slice().iter().map(|value| value.to_bits()).collect();
        prop_assert_eq!(loaded, widened);
        let as_f32 = StateDict::<f32>::from_bytes(&file).unwrap();
        let rounded: Vec<u32> = narrow.iter().map(|value| value.to_bits()).collect();
        let loaded: Vec<u32> = as_f32.tensors["wide"].as_slice().iter().map(|value| value.to_bits()).collect();
        prop_assert_eq!(loaded, rounded);
    }
}

/// The file layout itself, read with the `safetensors` crate: if this failed, Python's
/// `safetensors.torch.load_file` would see other names, dtypes, shapes or bytes than the tape's.
#[test]
fn the_file_holds_plain_names_the_tapes_dtype_and_row_major_little_endian_data() {
    let (tape, names) = model::<f32>([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [0.5, -0.25]);
    let mut state = names.state_dict(&tape).unwrap();
    state.metadata.insert("step".into(), "7".into());
    let bytes = state.to_bytes().unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names_in_file = file.names();
    names_in_file.sort();
    assert_eq!(names_in_file, ["fc.bias", "fc.weight"]);
    let weight = file.tensor("fc.weight").unwrap();
    assert_eq!((weight.dtype(), weight.shape()), (Dtype::F32, &[2, 3][..]));
    assert_eq!(weight.data(), f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    assert_eq!(metadata, HashMap::from([("step".into(), "7".into())]));

    let (tape, names) = model::<f64>([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [0.5, -0.25]);
    let bytes = names.state_dict(&tape).unwrap().to_bytes().unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let bias = file.tensor("fc.bias").unwrap();
    assert_eq!(
        (bias.dtype(), bias.data()),
        (Dtype::F64, &f64_bytes(&[0.5, -0.25])[..])
    );
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(header.metadata(), &None, "no empty __metadata__ entry");
}

// ---------------------------------------------------------------------------------------------
// Loading by name

/// Names, not order, decide where a tensor goes: if this failed, two models built in different
/// orders could not share a file.
#[test]
fn saving_then_loading_by_name_restores_every_parameter() {
    let (tape, names) = model::<f32>([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [0.5, -0.25]);
    let (_directory, path) = temporary_file("model.safetensors");
    names.save(&tape, &path).unwrap();

    let mut other = Tape::<f32>::new();
    let mut other_names = NamedParameters::new();
    let bias = other_names
        .parameter(&mut other, "fc.bias", arr1(&[0.0f32, 0.0]))
        .unwrap();
    let weight = tape::Tensor::<f32>::zeros(&[2, 3]);
    let weight = other_names
        .parameter(&mut other, "fc.weight", weight)
        .unwrap();
    let report = other_names
        .load(&mut other, &path, Strictness::Strict)
        .unwrap();
    assert_eq!(report, LoadReport::default());
    assert_eq!(
        other.value(weight).as_slice(),
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert_eq!(other.value(bias).as_slice(), &[0.5, -0.25]);

    // The same F32 file into an f64 model widens exactly.
    let (mut wide, wide_names) = model::<f64>([[0.0; 3]; 2], [0.0; 2]);
    wide_names
        .load(&mut wide, &path, Strictness::Strict)
        .unwrap();
    assert_eq!(value(&wide, &wide_names, "fc.bias"), [0.5, -0.25]);
}

#[test]
fn a_parameter_with_two_names_is_saved_under_both() {
    // Tied weights, as `lm_head.weight` and `wte.weight` in GPT-2's PyTorch state dict.
    let mut tape = Tape::<f64>::new();
    let shared = tape.parameter(arr1(&[1.0, 2.0]));
    let names = NamedParameters::from_pairs([("wte", shared), ("lm_head", shared)]).unwrap();
    let state = names.state_dict(&tape).unwrap();
    assert_eq!(state.tensors.keys().collect::<Vec<_>>(), ["lm_head", "wte"]);
    assert_eq!(state.tensors["wte"], state.tensors["lm_head"]);
}

/// If this failed, a file with extra or absent tensors would load silently under the default,
/// strict mode, or a non-strict load would not say what it skipped.
#[test]
fn strict_loading_refuses_missing_and_unexpected_tensors_and_non_strict_reports_them() {
    let (mut tape, names) = model::<f64>([[1.0; 3]; 2], [1.0; 2]);
    let mut state = StateDict::<f64>::new();
    state
        .tensors
        .insert("fc.weight".into(), Tensor::from(arr2(&[[2.0; 3]; 2])));
    state
        .tensors
        .insert("fc.scale".into(), Tensor::from(arr1(&[3.0])));

    let error = names
        .load_state_dict(&mut tape, &state, Strictness::Strict)
        .unwrap_err();
    assert!(
        matches!(&error, StateDictError::MissingTensors { names } if names == &["fc.bias"]),
        "{error:?}"
    );
    assert!(error.to_string().contains("\"fc.bias\""), "{error}");
    assert_eq!(
        value(&tape, &names, "fc.weight"),
        [1.0; 6],
        "a refused load changes nothing"
    );

    state
        .tensors
        .insert("fc.bias".into(), Tensor::from(arr1(&[4.0, 5.0])));
    let error = names
        .load_state_dict(&mut tape, &state, Strictness::Strict)
        .unwrap_err();
    assert!(
        matches!(&error, StateDictError::UnexpectedTensors { names } if names == &["fc.scale"]),
        "{error:?}"
    );
    assert!(error.to_string().contains("\"fc.scale\""), "{error}");
    assert_eq!(
        value(&tape, &names, "fc.bias"),
        [1.0; 2],
        "a refused load changes nothing"
    );

    state.tensors.remove("fc.bias");
    let report = names
        .load_state_dict(&mut tape, &state, Strictness::NonStrict)
        .unwrap();
    assert_eq!(
        report,
        LoadReport {
            missing: vec!["fc.bias".into()],
            unexpected: vec!["fc.scale".into()]
        }
    );
    assert_eq!(value(&tape, &names, "fc.weight"), [2.0; 6]);
    assert_eq!(
        value(&tape, &names, "fc.bias"),
        [1.0; 2],
        "a missing tensor keeps its value"
    );
}

/// Shapes are checked in both modes (as in PyTorch), before any value changes.
#[test]
fn a_shape_mismatch_names_the_tensor_and_both_shapes() {
    let (mut tape, names) = model::<f32>([[1.0; 3]; 2], [1.0; 2]);
    let mut state = StateDict::<f32>::new();
    state
        .tensors
        .insert("fc.bias".into(), Tensor::from(arr1(&[2.0, 2.0])));
    state.tensors.insert(
        "fc.weight".into(),
        Tensor::from(arr2(&[[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]])),
    );
    for strictness in [Strictness::Strict, Strictness::NonStrict] {
        let error = names
            .load_state_dict(&mut tape, &state, strictness)
            .unwrap_err();
        assert!(
            matches!(&error, StateDictError::ShapeMismatch { name, expected, found }
                if name == "fc.weight" && expected == &[2, 3] && found == &[3, 2]),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "tensor \"fc.weight\" has shape [3, 2], but the parameter it loads into has shape [2, 3]"
        );
        assert_eq!(
            value(&tape, &names, "fc.bias"),
            [1.0; 2],
            "nothing is loaded"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad files and bad names

#[test]
fn an_unsupported_dtype_names_the_tensor() {
    let file = raw_file(
        &[
            ("fc.bias", Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0])),
            ("steps", Dtype::I64, vec![1], 3i64.to_le_bytes().to_vec()),
        ],
        &[],
    );
    let error = StateDict::<f32>::from_bytes(&file).unwrap_err();
    assert!(
        matches!(&error, StateDictError::UnsupportedDtype { name, dtype } if name == "steps" && dtype == "I64"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "tensor \"steps\" is stored as I64; a state dict holds F32 or F64 tensors"
    );
}

#[test]
fn a_tensor_of_seven_axes_names_the_tensor() {
    // If this failed, the load would panic in `Tensor`, which holds at most six axes.
    let file = raw_file(&[("deep", Dtype::F64, vec![1; 7], f64_bytes(&[1.0]))], &[]);
    let error = StateDict::<f64>::from_bytes(&file).unwrap_err();
    assert!(
        matches!(&error, StateDictError::TooManyAxes { name, shape } if name == "deep" && shape == &[1; 7]),
        "{error:?}"
    );
}

#[test]
fn corrupt_and_unreadable_files_are_typed_errors() {
    let file = raw_file(&[("w", Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0]))], &[]);
    for cut in [0, 7, 8, file.len() / 2, file.len() - 1] {
        let error = StateDict::<f32>::from_bytes(&file[..cut]).unwrap_err();
        assert!(
            matches!(error, StateDictError::Corrupt { .. }),
            "cut at {cut}: {error:?}"
        );
    }
    let error = StateDict::<f32>::from_bytes(b"not a safetensors file at all").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("not a valid safetensors file"),
        "{error}"
    );

    let (directory, path) = temporary_file("absent.safetensors");
    let error = StateDict::<f32>::load(&path).unwrap_err();
    assert!(
        matches!(&error, StateDictError::Io { path: at, .. } if at == &path),
        "{error:?}"
    );
    assert!(error.to_string().contains("absent.safetensors"), "{error}");
    let (tape, names) = model::<f32>([[1.0; 3]; 2], [1.0; 2]);
    let error = names
        .save(
            &tape,
            directory.path().join("no/such/dir/model.safetensors"),
        )
        .unwrap_err();
    assert!(matches!(error, StateDictError::Io { .. }), "{error:?}");
}

#[test]
fn names_must_be_new_not_reserved_and_of_parameters_of_the_tape() {
    let mut tape = Tape::<f64>::new();
    let mut names = NamedParameters::new();
    names.parameter(&mut tape, "w", arr1(&[1.0])).unwrap();
    let error = names.parameter(&mut tape, "w", arr1(&[2.0])).unwrap_err();
    assert!(
        matches!(&error, StateDictError::DuplicateName { name } if name == "w"),
        "{error:?}"
    );
    assert_eq!(
        tape.parameters().len(),
        1,
        "a refused name adds no parameter"
    );
    let error = names
        .parameter(&mut tape, "__metadata__", arr1(&[2.0]))
        .unwrap_err();
    assert!(
        matches!(&error, StateDictError::ReservedName { name } if name == "__metadata__"),
        "{error:?}"
    );

    let constant = tape.constant(arr1(&[1.0]));
    let error = names.insert("c", constant).unwrap_err();
    assert!(
        matches!(&error, StateDictError::NotAParameter { name } if name == "c"),
        "{error:?}"
    );

    // A parameter of another tape is refused when used, not with a panic.
    let mut other = Tape::<f64>::new();
    let foreign = other.parameter(arr1(&[1.0]));
    let names = NamedParameters::from_pairs([("foreign", foreign)]).unwrap();
    let error = names.state_dict(&tape).unwrap_err();
    assert!(
        matches!(&error, StateDictError::NotAParameter { name } if name == "foreign"),
        "{error:?}"
    );
    let state = names.state_dict(&other).unwrap();
    let error = names
        .load_state_dict(&mut tape, &state, Strictness::Strict)
        .unwrap_err();
    assert!(
        matches!(&error, StateDictError::NotAParameter { name } if name == "foreign"),
        "{error:?}"
    );

    let mut state = StateDict::<f64>::new();
    state
        .tensors
        .insert("__metadata__".into(), Tensor::zeros(&[1]));
    assert!(matches!(
        state.to_bytes(),
        Err(StateDictError::ReservedName { .. })
    ));
}

#[test]
fn merging_refuses_a_taken_name_and_changes_nothing() {
    let mut state = StateDict::<f32>::new();
    state.tensors.insert("adam.m.w".into(), Tensor::zeros(&[1]));
    let mut moments = StateDict::new();
    moments.tensors.insert("v".into(), Tensor::zeros(&[1]));
    moments.tensors.insert("w".into(), Tensor::zeros(&[1]));
    let error = state.merge("adam.m.", moments).unwrap_err();
    assert!(
        matches!(&error, StateDictError::DuplicateName { name } if name == "adam.m.w"),
        "{error:?}"
    );
    assert_eq!(state.tensors.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Atomic writes

#[test]
fn saving_replaces_a_file_whole_and_leaves_no_temporary_file() {
    let (directory, path) = temporary_file("model.safetensors");
    fs::write(&path, b"old contents").unwrap();
    let (tape, names) = model::<f64>([[1.0; 3]; 2], [2.0; 2]);
    names.save(&tape, &path).unwrap();
    assert_eq!(
        StateDict::<f64>::load(&path).unwrap(),
        names.state_dict(&tape).unwrap()
    );
    let entries: Vec<_> = fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["model.safetensors"], "only the target remains");

    // A save that cannot complete (the target is a directory) leaves the directory's files alone.
    let target = directory.path().join("a_directory");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("inside"), b"kept").unwrap();
    assert!(matches!(
        names.save(&tape, &target),
        Err(StateDictError::Io { .. })
    ));
    assert_eq!(fs::read(target.join("inside")).unwrap(), b"kept");
    let mut entries: Vec<_> = fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["a_directory", "model.safetensors"],
        "the temporary file is removed"
    );
}

// ---------------------------------------------------------------------------------------------
// gpt's checkpoint layout

/// The weights of a `gpt` checkpoint (DESIGN.md section 3: `wte`, `wpe`, `lm_head` and per layer
/// `layer{i}.attn_wq`, `attn_wk`, `attn_wv`, `attn_wo`, `mlp_fc1`, `mlp_fc2`, shaped `[out, in]`)
/// with vocabulary 3, `n_embd` 2, `block_size` 2, one layer.
const GPT_SHAPES: [(&str, [usize; 2]); 9] = [
    ("wte", [3, 2]),
    ("wpe", [2, 2]),
    ("lm_head", [3, 2]),
    ("layer0.attn_wq", [2, 2]),
    ("layer0.attn_wk", [2, 2]),
    ("layer0.attn_wv", [2, 2]),
    ("layer0.attn_wo", [2, 2]),
    ("layer0.mlp_fc1", [8, 2]),
    ("layer0.mlp_fc2", [2, 8]),
];

/// Tensor `index`'s elements: `index + k / 64`, exact in F32 and distinct across tensors.
fn gpt_values(index: usize, len: usize) -> Vec<f32> {
    (0..len).map(|k| index as f32 + k as f32 / 64.0).collect()
}

/// A checkpoint file as `gpt` writes one, with Adam's moments, built with `safetensors` alone.
fn gpt_checkpoint() -> Vec<u8> {
    let mut tensors = Vec::new();
    for (index, (name, shape)) in GPT_SHAPES.iter().enumerate() {
        let bytes = f32_bytes(&gpt_values(index, shape[0] * shape[1]));
        tensors.push((name.to_string(), shape.to_vec(), bytes.clone()));
        tensors.push((format!("adam.m.{name}"), shape.to_vec(), bytes.clone()));
        tensors.push((format!("adam.v.{name}"), shape.to_vec(), bytes));
    }
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| (name.as_str(), Dtype::F32, shape.clone(), bytes.clone()))
        .collect();
    let metadata = [
        ("format", "microgpt"),
        ("vocab", "ab"),
        ("n_layer", "1"),
        ("n_embd", "2"),
        ("n_head", "1"),
        ("block_size", "2"),
        ("adam_step", "5"),
    ];
    raw_file(&tensors, &metadata)
}

/// If this failed, a model written with the tape could not start from a `gpt` checkpoint without
/// converting it first.
#[test]
fn a_gpt_checkpoint_loads_by_name_non_strictly_ignoring_adams_moments() {
    let mut tape = Tape::<f64>::new();
    let mut names = NamedParameters::new();
    for (name, shape) in GPT_SHAPES {
        names
            .parameter(&mut tape, name, Tensor::zeros(&shape))
            .unwrap();
    }
    let (_directory, path) = temporary_file("gpt.safetensors");
    fs::write(&path, gpt_checkpoint()).unwrap();

    let error = names
        .load(&mut tape, &path, Strictness::Strict)
        .unwrap_err();
    assert!(
        matches!(&error, StateDictError::UnexpectedTensors { names } if names.len() == 18),
        "{error:?}"
    );

    let report = names.load(&mut tape, &path, Strictness::NonStrict).unwrap();
    assert!(report.missing.is_empty());
    assert_eq!(report.unexpected.len(), 18);
    assert!(
        report
            .unexpected
            .iter()
            .all(|name| name.starts_with("adam.m.") || name.starts_with("adam.v."))
    );
    for (index, (name, shape)) in GPT_SHAPES.iter().enumerate() {
        let expected: Vec<f64> = gpt_values(index, shape[0] * shape[1])
            .into_iter()
            .map(f64::from)
            .collect();
        assert_eq!(value(&tape, &names, name), expected, "{name}");
    }

    // The moments and the metadata come out of the same file by prefix.
    let mut state = StateDict::<f64>::load(&path).unwrap();
    let moments = state.take_prefixed("adam.m.");
    assert_eq!(moments.tensors.len(), 9);
    assert_eq!(state.metadata["format"], "microgpt");
    assert_eq!(state.metadata["adam_step"], "5");
    state.take_prefixed("adam.v.");
    names
        .load_state_dict(&mut tape, &state, Strictness::Strict)
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// No panic on any bytes

/// A valid file with two dtypes, several shapes and metadata: the base the mutations start from.
static VALID: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut state = StateDict::<f64>::new();
    state.tensors.insert(
        "a.weight".into(),
        Tensor::from(arr2(&[[1.0, -2.0], [0.5, 3.0]])),
    );
    state
        .tensors
        .insert("a.bias".into(), Tensor::from(arr1(&[0.25])));
    state.tensors.insert("scalar".into(), Tensor::zeros(&[]));
    state.metadata.insert("step".into(), "12".into());
    let mut bytes = state.to_bytes().unwrap();
    // And one F32 tensor, so that both decoders are exercised.
    let mut raw = SafeTensors::deserialize(&bytes).unwrap().tensors();
    let extra = f32_bytes(&[1.5, 2.5, 3.5]);
    raw.push((
        "b".into(),
        TensorView::new(Dtype::F32, vec![3], &extra).unwrap(),
    ));
    let metadata = HashMap::from([("step".to_string(), "12".to_string())]);
    bytes = safetensors::serialize(raw, Some(metadata)).unwrap();
    bytes
});

/// Loads `bytes` in both precisions and into a model; whatever loads must save and load again,
/// and every error must be one line.
fn load_any(bytes: &[u8]) {
    match StateDict::<f64>::from_bytes(bytes) {
        Ok(state) => {
            let again = StateDict::<f64>::from_bytes(&state.to_bytes().unwrap()).unwrap();
            assert_eq!(bits(&again), bits(&state));
            let mut tape = Tape::<f64>::new();
            let mut names = NamedParameters::new();
            names
                .parameter(&mut tape, "a.weight", Tensor::zeros(&[2, 2]))
                .unwrap();
            let _ = names.load_state_dict(&mut tape, &state, Strictness::NonStrict);
        }
        Err(error) => assert!(!error.to_string().contains('\n'), "{error}"),
    }
    if let Err(error) = StateDict::<f32>::from_bytes(bytes) {
        assert!(!error.to_string().contains('\n'), "{error}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        load_any(&bytes);
    }

    #[test]
    fn random_bytes_after_a_plausible_length_never_panic(
        header_len in 0u64..4096,
        rest in vec(any::<u8>(), 0..2048),
    ) {
        // A sensible length prefix gets random bytes past the first check.
        let mut bytes = header_len.to_le_bytes().to_vec();
        bytes.extend(rest);
        load_any(&bytes);
    }

    #[test]
    fn truncated_and_mutated_files_never_panic(mutations in vec(mutation(), 1..6)) {
        let mut bytes = VALID.clone();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        load_any(&bytes);
    }
}

#[test]
fn the_unmutated_fuzzing_base_loads() {
    // Otherwise the mutation test above would only ever see errors.
    let state = StateDict::<f64>::from_bytes(&VALID).unwrap();
    assert_eq!(state.tensors.len(), 4);
    assert_eq!(state.tensors["b"].as_slice(), &[1.5, 2.5, 3.5]);
}

/// Eight U8 tensors of `2^61 - 1` bytes each declare data ending 8 bytes short of `2^64`; adding
/// the header's length to that overflowed inside safetensors 0.8 (a panic in debug builds). It
/// must be a corrupt file instead.
#[test]
fn a_header_whose_offsets_sum_past_the_largest_integer_is_corrupt() {
    let size: u64 = (1 << 61) - 1;
    let entries: Vec<String> = (0..8u64)
        .map(|i| {
            let (start, end) = (i * size, (i + 1) * size);
            format!(
                "\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{size}],\"data_offsets\":[{start},{end}]}}"
            )
        })
        .collect();
    let header = format!("{{{}}}", entries.join(","));
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    let error = StateDict::<f32>::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(&error, StateDictError::Corrupt { detail } if detail.contains("far beyond")),
        "{error:?}"
    );
}
