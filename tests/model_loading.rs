//! Checkpoint layouts a Hub model folder may have, written by the test from the dnabert1
//! fixture weights: sharded safetensors, sharded PyTorch `.bin`, f16/bf16, a checkpoint without
//! the pooler, a bare `BertModel` checkpoint; and the errors for a legacy pickle, a missing
//! shard, a folder without weights and an unsupported model.

mod golden;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use dnatune::model::bert::LoadedBert;
use dnatune::model::config::{Family, ModelConfig, ModelError};
use dnatune::model::heads::BertClassificationHead;
use dnatune::model::load::{read_model_dir, read_weight_file, Weights};
use golden::{assert_close_valid, Golden};

fn fixture_tensors(fixtures: &Path) -> HashMap<String, Tensor> {
    read_weight_file(&fixtures.join("dnabert1/model/model.safetensors")).expect("fixture weights")
}

/// A fresh model folder holding the fixture's `config.json` (and nothing else yet).
fn model_dir_with_config(fixtures: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixtures.join("dnabert1/model/config.json"),
        dir.path().join("config.json"),
    )
    .expect("copy config");
    dir
}

/// The fixture's names split into two shards, alternately, so each shard holds part of every layer.
fn split_names(tensors: &HashMap<String, Tensor>) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for (i, name) in names.into_iter().enumerate() {
        if i % 2 == 0 {
            first.push(name)
        } else {
            second.push(name)
        }
    }
    (first, second)
}

fn write_index(path: &Path, shards: &[(&str, &[String])]) {
    let weight_map: serde_json::Map<String, serde_json::Value> = shards
        .iter()
        .flat_map(|(file, names)| {
            names
                .iter()
                .map(move |n| (n.clone(), serde_json::Value::from(*file)))
        })
        .collect();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(path, serde_json::to_string_pretty(&index).expect("json")).expect("index");
}

fn assert_same_tensors(loaded: &HashMap<String, Tensor>, expected: &HashMap<String, Tensor>) {
    let mut loaded_names: Vec<&String> = loaded.keys().collect();
    let mut expected_names: Vec<&String> = expected.keys().collect();
    loaded_names.sort();
    expected_names.sort();
    assert_eq!(loaded_names, expected_names);
    for (name, tensor) in expected {
        assert_eq!(loaded[name].dtype(), tensor.dtype(), "{name}");
        assert_eq!(golden::max_abs_diff(&loaded[name], tensor), 0.0, "{name}");
    }
}

/// Runs the model folder on the golden batch and compares `last_hidden_state`.
fn assert_matches_golden(fixtures: &Path, dir: &Path, dtype: DType, tol: f32) {
    let golden = Golden::open(&fixtures.join("dnabert1/golden.safetensors"));
    let loaded = LoadedBert::from_dir(dir, dtype, &Device::Cpu).expect("model");
    let mask = golden.get("attention_mask");
    let out = loaded
        .model
        .forward(golden.get("input_ids"), mask)
        .expect("forward");
    assert_close_valid(
        "last_hidden_state",
        &out.last_hidden_state,
        golden.get("last_hidden_state"),
        mask,
        tol,
    );
}

#[test]
fn sharded_safetensors_load_like_the_single_file() {
    let Some(fixtures) = golden::fixtures_dir("sharded_safetensors") else {
        return;
    };
    let tensors = fixture_tensors(&fixtures);
    let dir = model_dir_with_config(&fixtures);
    let (first, second) = split_names(&tensors);
    let shard_names = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    for (file, names) in shard_names.iter().zip([&first, &second]) {
        let part: HashMap<&String, Tensor> =
            names.iter().map(|n| (n, tensors[n].clone())).collect();
        candle_core::safetensors::save(&part, dir.path().join(file)).expect("save shard");
    }
    write_index(
        &dir.path().join("model.safetensors.index.json"),
        &[(shard_names[0], &first), (shard_names[1], &second)],
    );
    assert_same_tensors(&read_model_dir(dir.path()).expect("sharded"), &tensors);
    assert_matches_golden(&fixtures, dir.path(), DType::F32, 1e-4);
}

#[test]
fn sharded_pytorch_bin_loads_like_the_single_file() {
    let Some(fixtures) = golden::fixtures_dir("sharded_pytorch_bin") else {
        return;
    };
    let tensors = fixture_tensors(&fixtures);
    let dir = model_dir_with_config(&fixtures);
    let (first, second) = split_names(&tensors);
    let shard_names = [
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
    ];
    for (file, names) in shard_names.iter().zip([&first, &second]) {
        let part: Vec<(&str, &Tensor)> = names.iter().map(|n| (n.as_str(), &tensors[n])).collect();
        torch_zip::write_state_dict(&dir.path().join(file), &part);
    }
    write_index(
        &dir.path().join("pytorch_model.bin.index.json"),
        &[(shard_names[0], &first), (shard_names[1], &second)],
    );
    assert_same_tensors(&read_model_dir(dir.path()).expect("sharded"), &tensors);
    assert_matches_golden(&fixtures, dir.path(), DType::F32, 1e-4);

    // A missing shard is named in the error.
    std::fs::remove_file(dir.path().join(shard_names[1])).expect("remove");
    let err = read_model_dir(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::MissingShard { .. }), "{err}");
    assert!(err.to_string().contains(shard_names[1]), "{err}");
}

#[test]
fn half_precision_checkpoints_convert_to_the_requested_dtype() {
    let Some(fixtures) = golden::fixtures_dir("half_precision_checkpoints") else {
        return;
    };
    let tensors = fixture_tensors(&fixtures);
    for stored in [DType::F16, DType::BF16] {
        let dir = model_dir_with_config(&fixtures);
        let converted: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.to_dtype(stored).expect("convert")))
            .collect();
        candle_core::safetensors::save(&converted, dir.path().join("model.safetensors"))
            .expect("save");
        let weights = Weights::from_dir(dir.path()).expect("weights");
        let name = "bert.encoder.layer.0.attention.self.query.weight";
        let as_f32 = weights.get(name, DType::F32, &Device::Cpu).expect("get");
        assert_eq!(as_f32.dtype(), DType::F32);
        // Exactly the half-precision values, widened.
        assert_eq!(
            golden::max_abs_diff(&as_f32, &converted[name].to_dtype(DType::F32).expect("f32")),
            0.0
        );
        // Rounded weights still give nearly the reference output when run in f32.
        assert_matches_golden(&fixtures, dir.path(), DType::F32, 0.05);
    }
}

#[test]
fn pytorch_bin_in_zip_format_loads_f16() {
    let Some(fixtures) = golden::fixtures_dir("pytorch_bin_f16") else {
        return;
    };
    let tensors = fixture_tensors(&fixtures);
    let dir = model_dir_with_config(&fixtures);
    let half: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_dtype(DType::F16).expect("f16")))
        .collect();
    let refs: Vec<(&str, &Tensor)> = half.iter().map(|(n, t)| (n.as_str(), t)).collect();
    torch_zip::write_state_dict(&dir.path().join("pytorch_model.bin"), &refs);
    let loaded = read_model_dir(dir.path()).expect("bin");
    for (name, tensor) in &half {
        assert_eq!(loaded[name].dtype(), DType::F16, "{name}");
        assert_eq!(golden::max_abs_diff(&loaded[name], tensor), 0.0, "{name}");
    }
}

#[test]
fn legacy_pickle_gets_a_conversion_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pytorch_model.bin");
    // The start of a pre-1.6 torch.save file: pickle protocol 2, then torch's magic number.
    let mut legacy = vec![0x80, 0x02, 0x8a, 0x0a];
    legacy.extend_from_slice(&0x1950a86a20f9469cfc6c_u128.to_le_bytes()[..10]);
    legacy.extend_from_slice(b".");
    std::fs::write(&path, legacy).expect("write");
    let err = read_model_dir(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::LegacyPickle { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("legacy"), "{msg}");
    assert!(
        msg.contains("torch.load") && msg.contains("save_file"),
        "{msg}"
    );
}

#[test]
fn folder_without_weights_says_what_it_looked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = read_model_dir(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("model.safetensors") && msg.contains("pytorch_model.bin"),
        "{msg}"
    );
}

#[test]
fn missing_pooler_is_initialized_and_reported() {
    let Some(fixtures) = golden::fixtures_dir("missing_pooler") else {
        return;
    };
    let mut tensors = fixture_tensors(&fixtures);
    tensors.remove("bert.pooler.dense.weight");
    tensors.remove("bert.pooler.dense.bias");
    let dir = model_dir_with_config(&fixtures);
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).expect("save");

    let loaded = LoadedBert::from_dir(dir.path(), DType::F32, &Device::Cpu).expect("model");
    let head =
        BertClassificationHead::load(&loaded.weights, &loaded.var_builder(), &loaded.config, 2)
            .expect("head");
    assert_eq!(head.num_labels(), 2);
    let report = loaded.weights.report();
    assert_eq!(
        report.initialized,
        [
            "bert.pooler.dense.bias",
            "bert.pooler.dense.weight",
            "classifier.bias",
            "classifier.weight"
        ]
    );
    // Initialised like transformers: normal(0, initializer_range) weights, zero biases.
    let weight = &head.pooler.dense.weight;
    let std = weight
        .sqr()
        .and_then(|w| w.mean_all())
        .and_then(|w| w.to_scalar::<f32>())
        .expect("std")
        .sqrt();
    assert!((0.01..0.03).contains(&std), "pooler std {std}");
    let bias_max = head
        .pooler
        .dense
        .bias
        .as_ref()
        .expect("bias")
        .abs()
        .and_then(|b| b.max(0))
        .and_then(|b| b.to_scalar::<f32>())
        .expect("max");
    assert_eq!(bias_max, 0.0);
    // The initialised tensors are there to be saved with the adapter.
    assert!(loaded.weights.contains("bert.pooler.dense.weight"));
}

#[test]
fn bare_base_model_checkpoint_gets_the_bert_prefix() {
    let Some(fixtures) = golden::fixtures_dir("bare_base_model") else {
        return;
    };
    let tensors: HashMap<String, Tensor> = fixture_tensors(&fixtures)
        .into_iter()
        .filter_map(|(n, t)| n.strip_prefix("bert.").map(|bare| (bare.to_string(), t)))
        .collect();
    assert!(tensors.contains_key("embeddings.word_embeddings.weight"));
    let dir = model_dir_with_config(&fixtures);
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).expect("save");
    assert_matches_golden(&fixtures, dir.path(), DType::F32, 1e-4);
}

#[test]
fn unsupported_model_type_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 32}"#,
    )
    .expect("write");
    let err = LoadedBert::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::UnsupportedModel { .. }), "{msg}");
    assert!(
        msg.contains("gpt2") && msg.contains("GPT2LMHeadModel"),
        "{msg}"
    );
    assert!(msg.contains("config.json"), "{msg}");
    assert!(msg.contains("DNABERT") && msg.contains("GENA-LM"), "{msg}");
}

#[test]
fn every_fixture_config_is_detected_as_its_family() {
    let Some(fixtures) = golden::fixtures_dir("fixture_families") else {
        return;
    };
    for (dir, family) in [
        ("dnabert1", Family::Dnabert),
        ("dnabert2", Family::Dnabert2),
        ("nt_v1", Family::NucleotideTransformerV1),
        ("nt_v2", Family::NucleotideTransformerV2),
        ("gena_lm", Family::GenaLm),
    ] {
        let config = ModelConfig::from_dir(&fixtures.join(dir).join("model")).expect(dir);
        assert_eq!(config.family, family, "{dir}");
    }
}

/// A minimal writer of PyTorch's zip checkpoint format (what `torch.save(state_dict)` writes
/// since 1.6), enough to write shards of float tensors in the test.
mod torch_zip {
    use super::*;
    use candle_core::DType;

    fn unicode(out: &mut Vec<u8>, s: &str) {
        out.push(b'X');
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn int(out: &mut Vec<u8>, v: usize) {
        out.push(b'J');
        out.extend_from_slice(&(v as i32).to_le_bytes());
    }

    fn global(out: &mut Vec<u8>, module: &str, name: &str) {
        out.push(b'c');
        out.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn int_tuple(out: &mut Vec<u8>, values: &[usize]) {
        out.push(b'(');
        for &v in values {
            int(out, v);
        }
        out.push(b't');
    }

    /// The pickle of `{name: _rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())}`.
    fn state_dict_pickle(tensors: &[(&str, &Tensor)]) -> Vec<u8> {
        let mut out = vec![0x80, 2, b'}', b'('];
        for (key, (name, tensor)) in tensors.iter().enumerate() {
            let storage = match tensor.dtype() {
                DType::F32 => "FloatStorage",
                DType::F16 => "HalfStorage",
                DType::BF16 => "BFloat16Storage",
                other => panic!("no storage type for {other:?}"),
            };
            let dims = tensor.dims();
            let strides: Vec<usize> = (0..dims.len())
                .map(|i| dims[i + 1..].iter().product())
                .collect();
            unicode(&mut out, name);
            global(&mut out, "torch._utils", "_rebuild_tensor_v2");
            out.push(b'(');
            out.push(b'(');
            unicode(&mut out, "storage");
            global(&mut out, "torch", storage);
            unicode(&mut out, &key.to_string());
            unicode(&mut out, "cpu");
            int(&mut out, tensor.elem_count());
            out.push(b't');
            out.push(b'Q');
            int(&mut out, 0);
            int_tuple(&mut out, dims);
            int_tuple(&mut out, &strides);
            out.push(0x89); // False: requires_grad
            global(&mut out, "collections", "OrderedDict");
            out.push(b')');
            out.push(b'R');
            out.push(b't');
            out.push(b'R');
        }
        out.push(b'u');
        out.push(b'.');
        out
    }

    fn little_endian_bytes(tensor: &Tensor) -> Vec<u8> {
        let flat = tensor.flatten_all().expect("flatten");
        match tensor.dtype() {
            DType::F32 => flat
                .to_vec1::<f32>()
                .expect("f32")
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            DType::F16 => flat
                .to_vec1::<half::f16>()
                .expect("f16")
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            DType::BF16 => flat
                .to_vec1::<half::bf16>()
                .expect("bf16")
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            other => panic!("unsupported {other:?}"),
        }
    }

    pub fn write_state_dict(path: &Path, tensors: &[(&str, &Tensor)]) {
        let file = std::fs::File::create(path).expect("create");
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut entry = |name: &str, bytes: &[u8]| {
            zip.start_file(format!("archive/{name}"), options)
                .expect("zip entry");
            zip.write_all(bytes).expect("zip write");
        };
        entry("data.pkl", &state_dict_pickle(tensors));
        entry("byteorder", b"little");
        for (key, (_, tensor)) in tensors.iter().enumerate() {
            entry(&format!("data/{key}"), &little_endian_bytes(tensor));
        }
        entry("version", b"3\n");
        zip.finish().expect("zip finish");
    }
}
