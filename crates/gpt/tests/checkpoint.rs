//! Checkpoint files: exact round trips, conversions between F32 and F64, the file layout of
//! DESIGN.md section 3, atomic writes, a specific error for each kind of corrupt file, and no panic
//! on any input bytes.
//!
//! The oracle for the layout is the `safetensors` crate read directly (not gpt's loader) and the
//! tensor names written out by hand from DESIGN.md; the oracle for conversions is Rust's own `as f32`
//! and `f64::from`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::sync::LazyLock;
use testdata::mutation::{apply, mutation};

use gpt::{AdamState, Checkpoint, CheckpointError, Config, ConfigError, Dtype, Params, Tokenizer};
use ndarray::Array2;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;
use tape::Float;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A small two-layer configuration (two layers, so that `layer1.*` names are exercised).
fn config(tokenizer: &Tokenizer) -> Config {
    Config {
        n_layer: 2,
        n_embd: 8,
        n_head: 2,
        block_size: 4,
        vocab_size: tokenizer.vocab_size(),
    }
}

/// A checkpoint with random weights, optionally random Adam moments at step 17, and free metadata.
fn checkpoint<F: Float>(vocab: &str, seed: u64, with_adam: bool) -> Checkpoint<F> {
    let tokenizer = Tokenizer::from_vocab(vocab);
    let config = config(&tokenizer);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let params = Params::<F>::init(config, &mut rng).unwrap();
    let adam = with_adam.then(|| AdamState {
        m: Params::<F>::init(config, &mut rng)
            .unwrap()
            .tensors()
            .to_vec(),
        v: Params::<F>::init(config, &mut rng)
            .unwrap()
            .tensors()
            .iter()
            .map(|tensor| tensor.mapv(|x| x * x))
            .collect(),
        step: 17,
    });
    let metadata = BTreeMap::from([
        ("best_val_loss".to_string(), "2.3456".to_string()),
        ("lr".to_string(), "0.01".to_string()),
        ("seed".to_string(), seed.to_string()),
    ]);
    Checkpoint {
        params,
        tokenizer,
        adam,
        metadata,
    }
}

/// Asserts that two lists of tensors are equal bit for bit (`==` would let 0.0 equal -0.0).
fn assert_bits_equal<F: Float, G: Float>(left: &[Array2<F>], right: &[Array2<G>], what: &str) {
    assert_eq!(left.len(), right.len(), "{what}: tensor count");
    for (index, (left, right)) in left.iter().zip(right).enumerate() {
        assert_eq!(
            left.shape(),
            right.shape(),
            "{what}: shape of tensor {index}"
        );
        for (&x, &y) in left.iter().zip(right) {
            assert_eq!(
                x.to_f64().to_bits(),
                y.to_f64().to_bits(),
                "{what}: tensor {index} has {x} where {y} was expected"
            );
        }
    }
}

/// A directory of its own for one test: tests run in parallel threads of one process.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let directory = std::env::temp_dir().join(format!(
            "microgpt-checkpoint-test-{}-{test}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&directory);
        fs::create_dir_all(&directory).unwrap();
        Scratch(directory)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names in the directory, sorted.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A safetensors file taken apart with the `safetensors` crate, to be edited and put back together.
struct RawFile {
    tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    metadata: Option<HashMap<String, String>>,
}

impl RawFile {
    fn parse(bytes: &[u8]) -> Self {
        let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
        let file = SafeTensors::deserialize(bytes).unwrap();
        let mut tensors: Vec<_> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let (dtype, shape, data) = (view.dtype(), view.shape().to_vec(), view.data());
                (name, dtype, shape, data.to_vec())
            })
            .collect();
        tensors.sort_by(|left, right| left.0.cmp(&right.0));
        RawFile {
            tensors,
            metadata: header.metadata().clone(),
        }
    }

    /// A valid checkpoint with Adam state, saved as F64, taken apart.
    fn valid() -> Self {
        RawFile::parse(
            &checkpoint::<f64>("abc", 5, true)
                .to_bytes(Dtype::F64)
                .unwrap(),
        )
    }

    fn to_bytes(&self) -> Vec<u8> {
        let views: Vec<(String, TensorView)> = self
            .tensors
            .iter()
            .map(|(name, dtype, shape, data)| {
                (
                    name.clone(),
                    TensorView::new(*dtype, shape.clone(), data).unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, self.metadata.clone()).unwrap()
    }

    fn tensor(&self, name: &str) -> &(String, safetensors::Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter().find(|tensor| tensor.0 == name).unwrap()
    }

    fn remove(&mut self, name: &str) {
        let before = self.tensors.len();
        self.tensors.retain(|tensor| tensor.0 != name);
        assert_eq!(self.tensors.len(), before - 1, "no tensor {name}");
    }

    fn replace(&mut self, name: &str, dtype: safetensors::Dtype, shape: Vec<usize>, data: Vec<u8>) {
        self.remove(name);
        self.tensors.push((name.to_string(), dtype, shape, data));
    }

    fn set(&mut self, key: &str, value: &str) {
        let metadata = self.metadata.get_or_insert_with(HashMap::new);
        metadata.insert(key.to_string(), value.to_string());
    }

    fn unset(&mut self, key: &str) {
        assert!(self.metadata.as_mut().unwrap().remove(key).is_some());
    }

    /// What gpt makes of the file, which must be an error that displays as one line.
    fn error(&self) -> CheckpointError {
        error_of(&self.to_bytes())
    }
}

fn error_of(bytes: &[u8]) -> CheckpointError {
    let error = Checkpoint::<f64>::from_bytes(bytes).expect_err("a corrupt file loaded");
    let message = error.to_string();
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{message:?}"
    );
    error
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn f64_round_trip_is_bit_exact() {
    let scratch = Scratch::new("f64-round-trip");
    let path = scratch.path("model.safetensors");
    let original = checkpoint::<f64>("abcdefghijklmnopqrstuvwxyz", 1, true);
    gpt::save(&original, &path, Dtype::F64).unwrap();
    let loaded: Checkpoint<f64> = gpt::load(&path).unwrap();

    assert_eq!(loaded.params.config(), original.params.config());
    assert_eq!(loaded.params.names(), original.params.names());
    assert_bits_equal(
        loaded.params.tensors(),
        original.params.tensors(),
        "weights",
    );
    assert_eq!(loaded.tokenizer, original.tokenizer);
    assert_eq!(loaded.metadata, original.metadata);
    let (loaded_adam, original_adam) = (loaded.adam.unwrap(), original.adam.unwrap());
    assert_bits_equal(&loaded_adam.m, &original_adam.m, "first moments");
    assert_bits_equal(&loaded_adam.v, &original_adam.v, "second moments");
    assert_eq!(loaded_adam.step, 17);
    assert_eq!(
        scratch.entries(),
        ["model.safetensors"],
        "a temporary file was left behind"
    );
}

#[test]
fn f32_round_trip_is_bit_exact() {
    let scratch = Scratch::new("f32-round-trip");
    let path = scratch.path("model.safetensors");
    let original = checkpoint::<f32>("abc", 2, true);
    gpt::save(&original, &path, Dtype::F32).unwrap();
    let loaded: Checkpoint<f32> = gpt::load(&path).unwrap();

    assert_bits_equal(
        loaded.params.tensors(),
        original.params.tensors(),
        "weights",
    );
    let (loaded_adam, original_adam) = (loaded.adam.unwrap(), original.adam.as_ref().unwrap());
    assert_bits_equal(&loaded_adam.m, &original_adam.m, "first moments");
    assert_bits_equal(&loaded_adam.v, &original_adam.v, "second moments");
    assert_eq!(loaded_adam.step, original_adam.step);
    assert_eq!(loaded.tokenizer, original.tokenizer);
    assert_eq!(loaded.metadata, original.metadata);
    // An f32 model saved as F64 also comes back exactly: widening loses nothing.
    let widened = Checkpoint::<f32>::from_bytes(&original.to_bytes(Dtype::F64).unwrap()).unwrap();
    assert_bits_equal(
        widened.params.tensors(),
        original.params.tensors(),
        "via F64",
    );
}

#[test]
fn f64_saved_as_f32_is_rounded_to_nearest() {
    let original = checkpoint::<f64>("abc", 3, true);
    let bytes = original.to_bytes(Dtype::F32).unwrap();
    let rounded: Vec<Array2<f32>> = original
        .params
        .tensors()
        .iter()
        .map(|tensor| tensor.mapv(|x| x as f32))
        .collect();

    let as_f32 = Checkpoint::<f32>::from_bytes(&bytes).unwrap();
    assert_bits_equal(as_f32.params.tensors(), &rounded, "loaded as f32");
    let m_rounded: Vec<Array2<f32>> = (original.adam.as_ref().unwrap().m.iter())
        .map(|tensor| tensor.mapv(|x| x as f32))
        .collect();
    assert_bits_equal(&as_f32.adam.unwrap().m, &m_rounded, "first moments as f32");

    // Loaded as f64, the same file gives the f32 values widened, not the original f64 ones.
    let as_f64 = Checkpoint::<f64>::from_bytes(&bytes).unwrap();
    let widened: Vec<Array2<f64>> = rounded
        .iter()
        .map(|tensor| tensor.mapv(f64::from))
        .collect();
    assert_bits_equal(as_f64.params.tensors(), &widened, "loaded as f64");
    assert_ne!(
        as_f64.params, original.params,
        "F32 storage should have rounded"
    );
}

#[test]
fn f32_file_loads_as_f64_exactly() {
    let original = checkpoint::<f32>("abc", 4, true);
    let loaded = Checkpoint::<f64>::from_bytes(&original.to_bytes(Dtype::F32).unwrap()).unwrap();
    let widened: Vec<Array2<f64>> = (original.params.tensors().iter())
        .map(|tensor| tensor.mapv(f64::from))
        .collect();
    assert_bits_equal(loaded.params.tensors(), &widened, "weights");
    let v_widened: Vec<Array2<f64>> = (original.adam.as_ref().unwrap().v.iter())
        .map(|tensor| tensor.mapv(f64::from))
        .collect();
    assert_bits_equal(&loaded.adam.unwrap().v, &v_widened, "second moments");
}

#[test]
fn non_ascii_vocabulary_round_trips() {
    let vocab = "aé漢🙂";
    let original = checkpoint::<f64>(vocab, 5, false);
    let bytes = original.to_bytes(Dtype::F64).unwrap();
    // Stored as one string of the characters, read back by the safetensors crate itself.
    let raw = RawFile::parse(&bytes);
    assert_eq!(raw.metadata.as_ref().unwrap()["vocab"], vocab);

    let loaded = Checkpoint::<f64>::from_bytes(&bytes).unwrap();
    assert_eq!(loaded.tokenizer.vocab(), vocab);
    // Four characters and BOS, counted in characters rather than the string's 10 bytes.
    assert_eq!(loaded.params.config().vocab_size, 5);
    assert_eq!(loaded.tokenizer.encode("漢🙂").unwrap(), vec![4, 2, 3, 4]);
    assert_eq!(loaded, original);
}

#[test]
fn without_adam_state_none_comes_back() {
    let original = checkpoint::<f64>("abc", 6, false);
    let bytes = original.to_bytes(Dtype::F64).unwrap();
    let raw = RawFile::parse(&bytes);
    assert!(
        raw.tensors
            .iter()
            .all(|tensor| !tensor.0.starts_with("adam"))
    );
    assert!(!raw.metadata.as_ref().unwrap().contains_key("adam_step"));
    let loaded = Checkpoint::<f64>::from_bytes(&bytes).unwrap();
    assert_eq!(loaded.adam, None);
    assert_eq!(loaded, original);
}

#[test]
fn file_layout_follows_design() {
    let original = checkpoint::<f64>("abc", 7, true);
    for dtype in [Dtype::F32, Dtype::F64] {
        let raw = RawFile::parse(&original.to_bytes(dtype).unwrap());
        // The names and shapes of DESIGN.md section 1, written out by hand for n_layer = 2,
        // n_embd = 8, block_size = 4 and 4 tokens.
        let mut expected: Vec<(String, Vec<usize>)> = vec![
            ("wte".into(), vec![4, 8]),
            ("wpe".into(), vec![4, 8]),
            ("lm_head".into(), vec![4, 8]),
        ];
        for layer in ["layer0", "layer1"] {
            for (name, shape) in [
                ("attn_wq", vec![8, 8]),
                ("attn_wk", vec![8, 8]),
                ("attn_wv", vec![8, 8]),
                ("attn_wo", vec![8, 8]),
                ("mlp_fc1", vec![32, 8]),
                ("mlp_fc2", vec![8, 32]),
            ] {
                expected.push((format!("{layer}.{name}"), shape));
            }
        }
        for (name, shape) in expected.clone() {
            expected.push((format!("adam.m.{name}"), shape.clone()));
            expected.push((format!("adam.v.{name}"), shape));
        }
        expected.sort();
        let found: Vec<(String, Vec<usize>)> = (raw.tensors.iter())
            .map(|(name, _, shape, _)| (name.clone(), shape.clone()))
            .collect();
        assert_eq!(found, expected);

        let stored = match dtype {
            Dtype::F32 => safetensors::Dtype::F32,
            Dtype::F64 => safetensors::Dtype::F64,
        };
        assert!(raw.tensors.iter().all(|tensor| tensor.1 == stored));

        let metadata = raw.metadata.clone().unwrap();
        let expected_metadata = HashMap::from(
            [
                ("format", "microgpt"),
                ("vocab", "abc"),
                ("n_layer", "2"),
                ("n_embd", "8"),
                ("n_head", "2"),
                ("block_size", "4"),
                ("adam_step", "17"),
                ("best_val_loss", "2.3456"),
                ("lr", "0.01"),
                ("seed", "7"),
            ]
            .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        assert_eq!(metadata, expected_metadata);

        // Row-major little-endian values: element [r, c] of `layer1.mlp_fc1 [32, 8]` is number r*8+c.
        let (_, _, _, data) = raw.tensor("layer1.mlp_fc1");
        let weights = original.params.get("layer1.mlp_fc1").unwrap();
        for ((row, column), &weight) in weights.indexed_iter() {
            let index = row * 8 + column;
            let value = match dtype {
                Dtype::F32 => {
                    let bytes = data[4 * index..4 * index + 4].try_into().unwrap();
                    f64::from(f32::from_le_bytes(bytes))
                }
                Dtype::F64 => {
                    f64::from_le_bytes(data[8 * index..8 * index + 8].try_into().unwrap())
                }
            };
            let expected = match dtype {
                Dtype::F32 => f64::from(weight as f32),
                Dtype::F64 => weight,
            };
            assert_eq!(value.to_bits(), expected.to_bits(), "[{row}, {column}]");
        }
    }
}

#[test]
fn reserved_metadata_keys_come_from_the_typed_fields() {
    let mut original = checkpoint::<f64>("abc", 8, false);
    for (key, value) in [
        ("format", "pytorch"),
        ("vocab", "xyz"),
        ("n_layer", "99"),
        ("n_head", "1"),
        ("adam_step", "5"),
    ] {
        original.metadata.insert(key.to_string(), value.to_string());
    }
    let bytes = original.to_bytes(Dtype::F64).unwrap();
    let metadata = RawFile::parse(&bytes).metadata.unwrap();
    assert_eq!(metadata["format"], "microgpt");
    assert_eq!(metadata["vocab"], "abc");
    assert_eq!(metadata["n_layer"], "2");
    assert_eq!(metadata["n_head"], "2");
    assert!(!metadata.contains_key("adam_step"), "adam is None");

    let loaded = Checkpoint::<f64>::from_bytes(&bytes).unwrap();
    assert_eq!(loaded.adam, None);
    assert_eq!(loaded.params, original.params);
    let free: Vec<&str> = loaded.metadata.keys().map(String::as_str).collect();
    assert_eq!(free, ["best_val_loss", "lr", "seed"]);
}

#[test]
fn big_numbers_inside_metadata_strings_are_fine() {
    // The loader refuses headers declaring huge offsets (see `huge_offsets_are_refused...`); a
    // number inside a string is not an offset and must not trip that guard.
    let mut original = checkpoint::<f64>("abc", 9, false);
    let seed = u64::MAX.to_string();
    original.metadata.insert("seed".into(), seed.clone());
    original
        .metadata
        .insert("note".into(), "say \"99999999999999999999999\"".into());
    let loaded = Checkpoint::<f64>::from_bytes(&original.to_bytes(Dtype::F64).unwrap()).unwrap();
    assert_eq!(loaded.metadata["seed"], seed);
    assert_eq!(loaded, original);
}

#[test]
fn dtype_parses_and_displays() {
    assert_eq!("f32".parse::<Dtype>(), Ok(Dtype::F32));
    assert_eq!("F64".parse::<Dtype>(), Ok(Dtype::F64));
    for dtype in [Dtype::F32, Dtype::F64] {
        assert_eq!(dtype.to_string().parse::<Dtype>(), Ok(dtype));
    }
    let error = "bf16".parse::<Dtype>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown dtype \"bf16\"; expected f32 or f64"
    );
}

// ---------------------------------------------------------------------------------------------
// Saving

#[test]
fn save_refuses_an_inconsistent_checkpoint_and_writes_nothing() {
    let scratch = Scratch::new("save-inconsistent");
    let path = scratch.path("model.safetensors");

    let mut wrong_vocab = checkpoint::<f64>("abc", 10, false);
    wrong_vocab.tokenizer = Tokenizer::from_vocab("abcd");
    let error = gpt::save(&wrong_vocab, &path, Dtype::F64).unwrap_err();
    assert!(
        matches!(
            error,
            CheckpointError::VocabMismatch {
                tokenizer: 5,
                config: 4
            }
        ),
        "{error:?}"
    );

    let mut short_adam = checkpoint::<f64>("abc", 11, true);
    short_adam.adam.as_mut().unwrap().v.pop();
    let error = gpt::save(&short_adam, &path, Dtype::F64).unwrap_err();
    assert!(
        matches!(error, CheckpointError::InconsistentAdam(_)),
        "{error:?}"
    );

    let mut misshapen_adam = checkpoint::<f64>("abc", 12, true);
    misshapen_adam.adam.as_mut().unwrap().m[3] = Array2::zeros((2, 2));
    let error = gpt::save(&misshapen_adam, &path, Dtype::F64).unwrap_err();
    assert!(
        matches!(error, CheckpointError::InconsistentAdam(_)),
        "{error:?}"
    );

    assert!(scratch.entries().is_empty());
}

#[test]
fn save_into_a_missing_directory_is_an_io_error_and_creates_nothing() {
    let scratch = Scratch::new("missing-directory");
    let path = scratch.path("no/such/directory/model.safetensors");
    let error = gpt::save(&checkpoint::<f64>("abc", 13, false), &path, Dtype::F64).unwrap_err();
    match &error {
        CheckpointError::Io { path: named, .. } => assert_eq!(named, &path),
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("no/such/directory/model.safetensors"),
        "{error}"
    );
    assert!(scratch.entries().is_empty());
}

#[test]
fn save_replaces_an_existing_checkpoint() {
    let scratch = Scratch::new("replace");
    let path = scratch.path("model.safetensors");
    gpt::save(&checkpoint::<f64>("abc", 14, true), &path, Dtype::F64).unwrap();
    let second = checkpoint::<f64>("xyz", 15, false);
    gpt::save(&second, &path, Dtype::F64).unwrap();
    assert_eq!(gpt::load::<f64>(&path).unwrap(), second);
    assert_eq!(scratch.entries(), ["model.safetensors"]);
}

#[test]
fn failed_rename_removes_the_temporary_file() {
    // Here the temporary file is created and fully written, and the last step fails: renaming a
    // file over a directory is refused (EISDIR). Without the clean-up the written temporary file
    // would stay behind.
    let scratch = Scratch::new("failed-rename");
    let path = scratch.path("model.safetensors");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep"), b"inside").unwrap();

    let error = gpt::save(&checkpoint::<f64>("abc", 18, false), &path, Dtype::F64).unwrap_err();
    assert!(
        matches!(&error, CheckpointError::Io { path: named, .. } if named == &path),
        "{error:?}"
    );
    assert_eq!(
        scratch.entries(),
        ["model.safetensors"],
        "the temporary file was left behind"
    );
    assert_eq!(fs::read(path.join("keep")).unwrap(), b"inside");
}

// ---------------------------------------------------------------------------------------------
// Loading corrupt files: each kind has its own error

#[test]
fn loading_a_missing_file_is_an_io_error_naming_it() {
    let scratch = Scratch::new("missing-file");
    let path = scratch.path("absent.safetensors");
    let error = gpt::load::<f64>(&path).unwrap_err();
    assert!(
        matches!(&error, CheckpointError::Io { path: named, .. } if named == &path),
        "{error:?}"
    );
    assert!(error.to_string().contains("absent.safetensors"), "{error}");
}

#[test]
fn truncated_files_are_not_safetensors() {
    let bytes = checkpoint::<f64>("abc", 19, true)
        .to_bytes(Dtype::F64)
        .unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cuts = [
        0,
        1,
        7,
        8,
        9,
        header_end / 2,
        header_end - 1,
        header_end,
        header_end + 1,
        bytes.len() / 2,
        bytes.len() - 8,
        bytes.len() - 1,
    ];
    for cut in cuts {
        let error = error_of(&bytes[..cut]);
        assert!(
            matches!(error, CheckpointError::NotSafetensors(_)),
            "cut at {cut}: {error:?}"
        );
    }
    // Extra bytes after the last tensor are as wrong as missing ones.
    let mut extended = bytes.clone();
    extended.push(0);
    assert!(matches!(
        error_of(&extended),
        CheckpointError::NotSafetensors(_)
    ));
}

#[test]
fn random_bytes_are_not_safetensors() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(20);
    let mut inputs: Vec<Vec<u8>> = vec![
        b"hello, world".to_vec(),
        vec![0; 8],
        vec![0xff; 64],
        b"{\"__metadata__\": {\"format\": \"microgpt\"}}".to_vec(),
    ];
    for len in [3, 100, 4096] {
        inputs.push(
            (0..len)
                .map(|_| rand::RngExt::random::<u8>(&mut rng))
                .collect(),
        );
    }
    for bytes in inputs {
        let error = error_of(&bytes);
        assert!(
            matches!(error, CheckpointError::NotSafetensors(_)),
            "{error:?}"
        );
    }
}

#[test]
fn huge_offsets_are_refused_without_panicking() {
    // safetensors 0.8.0 adds the declared end of the data to the header length unchecked, so this
    // header (eight U8 tensors whose offsets reach 2^64 - 8) panics inside it in debug builds
    // unless the loader refuses it first.
    let size: u64 = (1 << 61) - 1;
    let entries: Vec<String> = (0..8u64)
        .map(|index| {
            let (start, end) = (index * size, (index + 1) * size);
            format!("\"t{index}\":{{\"dtype\":\"U8\",\"shape\":[{size}],\"data_offsets\":[{start},{end}]}}")
        })
        .collect();
    let header = format!("{{{}}}", entries.join(","));
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    let error = error_of(&bytes);
    assert!(
        matches!(error, CheckpointError::NotSafetensors(_)),
        "{error:?}"
    );
}

#[test]
fn safetensors_without_microgpt_metadata_is_not_microgpt() {
    let mut raw = RawFile::valid();
    raw.metadata = None;
    assert!(matches!(
        raw.error(),
        CheckpointError::NotMicrogpt { format: None }
    ));

    let mut raw = RawFile::valid();
    raw.unset("format");
    assert!(matches!(
        raw.error(),
        CheckpointError::NotMicrogpt { format: None }
    ));

    let mut raw = RawFile::valid();
    raw.set("format", "pt");
    let error = raw.error();
    assert!(
        matches!(&error, CheckpointError::NotMicrogpt { format: Some(format) } if format == "pt"),
        "{error:?}"
    );
}

#[test]
fn a_missing_tensor_is_named() {
    for name in ["wte", "layer1.mlp_fc2"] {
        let mut raw = RawFile::valid();
        raw.remove(name);
        let error = raw.error();
        assert!(
            matches!(&error, CheckpointError::MissingTensor(missing) if missing == name),
            "{error:?}"
        );
    }
}

#[test]
fn a_wrong_shape_is_reported_with_both_shapes() {
    // `wpe` with 3 positions where block_size is 4; `mlp_fc1` transposed; `wte` flattened.
    let cases: [(&str, Vec<usize>, [usize; 2]); 3] = [
        ("wpe", vec![3, 8], [4, 8]),
        ("layer0.mlp_fc1", vec![8, 32], [32, 8]),
        ("wte", vec![32], [4, 8]),
    ];
    for (name, shape, expected_shape) in cases {
        let mut raw = RawFile::valid();
        let elements: usize = shape.iter().product();
        raw.replace(
            name,
            safetensors::Dtype::F64,
            shape.clone(),
            vec![0; 8 * elements],
        );
        let error = raw.error();
        assert!(
            matches!(&error, CheckpointError::WrongShape { name: found_name, expected, found }
                if found_name == name && *expected == expected_shape && *found == shape),
            "{error:?}"
        );
    }
}

#[test]
fn a_tensor_neither_f32_nor_f64_is_wrong_dtype() {
    for (dtype, width) in [(safetensors::Dtype::I32, 4), (safetensors::Dtype::F16, 2)] {
        let mut raw = RawFile::valid();
        raw.replace("lm_head", dtype, vec![4, 8], vec![0; 32 * width]);
        let error = raw.error();
        assert!(
            matches!(&error, CheckpointError::WrongDtype { name, dtype: found }
                if name == "lm_head" && *found == dtype.to_string()),
            "{error:?}"
        );
    }
}

#[test]
fn bad_numbers_in_metadata_are_bad_metadata() {
    for value in [
        "eight",
        "",
        "-8",
        "+8",
        " 8",
        "8.0",
        "0x8",
        "99999999999999999999999",
    ] {
        let mut raw = RawFile::valid();
        raw.set("n_embd", value);
        let error = raw.error();
        assert!(
            matches!(&error, CheckpointError::BadMetadata { key, value: Some(found) }
                if key == "n_embd" && found == value),
            "{value:?}: {error:?}"
        );
    }
    for key in ["vocab", "n_layer", "n_embd", "n_head", "block_size"] {
        let mut raw = RawFile::valid();
        raw.unset(key);
        let error = raw.error();
        assert!(
            matches!(&error, CheckpointError::BadMetadata { key: found, value: None } if found == key),
            "{key}: {error:?}"
        );
    }
    let mut raw = RawFile::valid();
    raw.set("adam_step", "seventeen");
    let error = raw.error();
    assert!(
        matches!(&error, CheckpointError::BadMetadata { key, .. } if key == "adam_step"),
        "{error:?}"
    );
}

#[test]
fn an_invalid_configuration_is_bad_config() {
    let mut raw = RawFile::valid();
    raw.set("n_head", "3");
    let error = raw.error();
    assert!(
        matches!(
            error,
            CheckpointError::BadConfig(ConfigError::HeadsDoNotDivide {
                n_embd: 8,
                n_head: 3
            })
        ),
        "{error:?}"
    );
    let mut raw = RawFile::valid();
    raw.set("n_layer", "0");
    let error = raw.error();
    assert!(
        matches!(
            error,
            CheckpointError::BadConfig(ConfigError::Zero("n_layer"))
        ),
        "{error:?}"
    );
}

#[test]
fn absurd_sizes_in_metadata_are_refused_before_allocating() {
    // Taken at face value these would make the loader build a name for each of 6 * 10^15 tensors,
    // or overflow `4 * n_embd`; no file of this size can hold such a model.
    let huge = (usize::MAX / 2).to_string();
    for (key, value) in [
        ("n_layer", "1000000000000000"),
        ("n_embd", huge.as_str()),
        ("block_size", huge.as_str()),
    ] {
        let mut raw = RawFile::valid();
        raw.set(key, value);
        raw.set("n_head", "1");
        let error = raw.error();
        assert!(
            matches!(&error, CheckpointError::BadMetadata { key: found, .. } if found == key),
            "{key}: {error:?}"
        );
    }
}

#[test]
fn partial_adam_state_is_inconsistent() {
    let mut one_moment_missing = RawFile::valid();
    one_moment_missing.remove("adam.v.layer0.attn_wk");
    let mut no_step = RawFile::valid();
    no_step.unset("adam_step");
    let mut step_without_moments = RawFile::valid();
    step_without_moments
        .tensors
        .retain(|tensor| !tensor.0.starts_with("adam."));
    for raw in [one_moment_missing, no_step, step_without_moments] {
        let error = raw.error();
        assert!(
            matches!(error, CheckpointError::InconsistentAdam(_)),
            "{error:?}"
        );
    }

    // A moment of the wrong shape is a shape error, named as the moment.
    let mut raw = RawFile::valid();
    raw.replace(
        "adam.m.wpe",
        safetensors::Dtype::F64,
        vec![4, 4],
        vec![0; 128],
    );
    let error = raw.error();
    assert!(
        matches!(&error, CheckpointError::WrongShape { name, .. } if name == "adam.m.wpe"),
        "{error:?}"
    );
}

#[test]
fn weights_load_alone_whatever_state_the_optimizer_is_in() {
    // What --init and sampling rely on: a damaged optimizer state (a missing or misshapen moment,
    // a bad step) must not keep the weights from loading, and must not be passed on as if valid.
    let expected = checkpoint::<f64>("abc", 5, true);
    let mut missing = RawFile::valid();
    missing.remove("adam.v.layer0.attn_wk");
    let mut misshapen = RawFile::valid();
    misshapen.replace(
        "adam.m.wpe",
        safetensors::Dtype::F64,
        vec![4, 4],
        vec![0; 128],
    );
    let mut bad_step = RawFile::valid();
    bad_step.set("adam_step", "-3");
    for raw in [RawFile::valid(), missing, misshapen, bad_step] {
        let loaded = Checkpoint::<f64>::weights_from_bytes(&raw.to_bytes()).unwrap();
        assert_eq!(loaded.params, expected.params);
        assert_eq!(loaded.tokenizer, expected.tokenizer);
        assert_eq!(loaded.metadata, expected.metadata);
        assert_eq!(loaded.adam, None);
    }
    // The weights themselves are still checked.
    let mut weights_missing = RawFile::valid();
    weights_missing.remove("layer0.attn_wk");
    let error = Checkpoint::<f64>::weights_from_bytes(&weights_missing.to_bytes()).unwrap_err();
    assert!(
        matches!(&error, CheckpointError::MissingTensor(name) if name == "layer0.attn_wk"),
        "{error:?}"
    );
}

#[test]
fn unknown_extra_tensors_are_ignored() {
    let mut raw = RawFile::valid();
    raw.tensors.push((
        "notes".into(),
        safetensors::Dtype::U8,
        vec![3],
        b"hi!".to_vec(),
    ));
    let loaded = Checkpoint::<f64>::from_bytes(&raw.to_bytes()).unwrap();
    assert_eq!(loaded.params, checkpoint::<f64>("abc", 5, true).params);
}

// ---------------------------------------------------------------------------------------------
// No panic on any input

/// A small valid checkpoint with Adam state, whose bytes the mutations start from.
static VALID: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let tokenizer = Tokenizer::from_vocab("ab");
    let config = Config {
        n_layer: 1,
        n_embd: 4,
        n_head: 2,
        block_size: 2,
        vocab_size: tokenizer.vocab_size(),
    };
    let params = Params::<f32>::init(config, &mut Xoshiro256PlusPlus::seed_from_u64(21)).unwrap();
    let adam = Some(AdamState::zeros(&params));
    let metadata = BTreeMap::from([("seed".to_string(), "21".to_string())]);
    let checkpoint = Checkpoint {
        params,
        tokenizer,
        adam,
        metadata,
    };
    checkpoint.to_bytes(Dtype::F32).unwrap()
});

/// An edit that keeps the file valid safetensors, so the loader's own checks are what is exercised.
#[derive(Clone, Debug)]
enum Edit {
    SetMetadata {
        key: usize,
        value: String,
    },
    RemoveMetadata {
        key: usize,
    },
    RemoveTensor {
        which: usize,
    },
    ReplaceTensor {
        which: usize,
        dtype: usize,
        shape: Vec<usize>,
    },
}

const KEYS: [&str; 8] = [
    "format",
    "vocab",
    "n_layer",
    "n_embd",
    "n_head",
    "block_size",
    "adam_step",
    "seed",
];
const DTYPES: [safetensors::Dtype; 7] = [
    safetensors::Dtype::F32,
    safetensors::Dtype::F64,
    safetensors::Dtype::I32,
    safetensors::Dtype::F16,
    safetensors::Dtype::BF16,
    safetensors::Dtype::U8,
    safetensors::Dtype::I64,
];

fn edit() -> impl Strategy<Value = Edit> {
    let value = prop_oneof!["[0-9]{0,22}", ".{0,6}", Just("microgpt".to_string())];
    prop_oneof![
        (0..KEYS.len(), value).prop_map(|(key, value)| Edit::SetMetadata { key, value }),
        (0..KEYS.len()).prop_map(|key| Edit::RemoveMetadata { key }),
        any::<usize>().prop_map(|which| Edit::RemoveTensor { which }),
        (
            any::<usize>(),
            0..DTYPES.len(),
            proptest::collection::vec(0usize..12, 0..4)
        )
            .prop_map(|(which, dtype, shape)| Edit::ReplaceTensor {
                which,
                dtype,
                shape
            }),
    ]
}

fn apply_edit(raw: &mut RawFile, edit: &Edit) {
    let count = raw.tensors.len();
    match edit {
        Edit::SetMetadata { key, value } => raw.set(KEYS[*key], value),
        Edit::RemoveMetadata { key } => {
            if let Some(metadata) = raw.metadata.as_mut() {
                metadata.remove(KEYS[*key]);
            }
        }
        Edit::RemoveTensor { which } if count > 0 => {
            raw.tensors.remove(which % count);
        }
        Edit::ReplaceTensor {
            which,
            dtype,
            shape,
        } if count > 0 => {
            let dtype = DTYPES[*dtype];
            let len = shape.iter().product::<usize>() * dtype.bitsize() / 8;
            let tensor = &mut raw.tensors[which % count];
            (tensor.1, tensor.2, tensor.3) = (dtype, shape.clone(), vec![0x3f; len]);
        }
        _ => {}
    }
}

/// Loads `bytes` both ways; whatever loads must be usable: consistent, and savable again.
fn load_any(bytes: &[u8]) {
    if let Ok(checkpoint) = Checkpoint::<f64>::from_bytes(bytes) {
        assert_eq!(
            checkpoint.tokenizer.vocab_size(),
            checkpoint.params.config().vocab_size
        );
        let again = checkpoint.to_bytes(Dtype::F64).unwrap();
        Checkpoint::<f64>::from_bytes(&again).unwrap();
    }
    if let Err(error) = Checkpoint::<f32>::from_bytes(bytes) {
        assert!(!error.to_string().contains('\n'));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        load_any(&bytes);
    }

    #[test]
    fn random_bytes_after_a_plausible_length_never_panic(
        header_len in 0u64..4096,
        rest in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        // A sensible length prefix gets random bytes past the first check.
        let mut bytes = header_len.to_le_bytes().to_vec();
        bytes.extend(rest);
        load_any(&bytes);
    }

    #[test]
    fn structurally_corrupted_checkpoints_never_panic(
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let mut raw = RawFile::parse(&VALID);
        for edit in &edits {
            apply_edit(&mut raw, edit);
        }
        load_any(&raw.to_bytes());
    }

    #[test]
    fn mutated_checkpoints_never_panic(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = VALID.clone();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        load_any(&bytes);
    }
}

#[test]
fn the_unmutated_proptest_base_loads() {
    // Otherwise the mutation test above would only ever see errors.
    let checkpoint = Checkpoint::<f32>::from_bytes(&VALID).unwrap();
    assert!(checkpoint.adam.is_some());
}

#[test]
fn casting_a_checkpoint_is_what_loading_in_the_other_precision_gives() {
    // Oracle: the loader's own conversion of the saved bytes.
    let original = checkpoint::<f64>("abc", 11, true);
    let bytes = original.to_bytes(Dtype::F64).unwrap();
    let loaded_as_f32 = Checkpoint::<f32>::from_bytes(&bytes).unwrap();
    assert_eq!(original.cast::<f32>(), loaded_as_f32);
    // And an f32 checkpoint survives a trip through f64 bit for bit.
    assert_eq!(loaded_as_f32.cast::<f64>().cast::<f32>(), loaded_as_f32);
}
