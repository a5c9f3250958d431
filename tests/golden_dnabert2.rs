//! DNABERT-2 against the reference outputs in `shared/fixtures/dnabert2/golden.safetensors`
//! (the remote MosaicBERT `bert_layers.py`, pure-PyTorch attention, float32, eval mode).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dnatune::model::dnabert2::{Config, Dnabert2Classifier, Dnabert2MlmHead, Dnabert2Model};

const TOLERANCE: f32 = 1e-4;

/// `shared/` via `DNATUNE_SHARED` or `../shared` beside the crate; `None` (with the reason
/// printed) when neither exists.
fn shared_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DNATUNE_SHARED") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "DNATUNE_SHARED={} is not a directory",
            dir.display()
        );
        return Some(dir);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if beside.is_dir() {
        return Some(beside);
    }
    eprintln!("skipping: shared/ not found (set DNATUNE_SHARED or place it at ../shared)");
    None
}

fn fixture_dir(family: &str) -> Option<PathBuf> {
    let dir = shared_dir()?.join("fixtures").join(family);
    assert!(
        dir.is_dir(),
        "fixture {} is missing from shared/",
        dir.display()
    );
    Some(dir)
}

fn read_config(dir: &Path) -> Config {
    let text = std::fs::read_to_string(dir.join("model/config.json")).expect("config.json");
    serde_json::from_str(&text).expect("config.json parses as a DNABERT-2 config")
}

fn load_golden(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)
        .expect("golden.safetensors")
}

fn model_vb(dir: &Path, dtype: DType) -> VarBuilder<'static> {
    let path = dir.join("model/model.safetensors");
    // SAFETY: the fixture file is not modified while the test maps it.
    unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, &Device::Cpu) }
        .expect("model.safetensors")
}

/// The `cls{n}.head.*` tensors of the golden file under their Hugging Face names.
fn classification_head_vb(
    golden: &HashMap<String, Tensor>,
    num_labels: usize,
) -> VarBuilder<'static> {
    let prefix = format!("cls{num_labels}.head.");
    let tensors: HashMap<String, Tensor> = golden
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&prefix)
                .map(|name| (name.to_string(), v.clone()))
        })
        .collect();
    assert!(
        !tensors.is_empty(),
        "no {prefix}* tensors in golden.safetensors"
    );
    VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
}

/// Largest |a - b| over positions where `attention_mask == 1` (`a`, `b`: `[batch, seq, hidden]`).
fn max_abs_diff_valid(a: &Tensor, b: &Tensor, attention_mask: &Tensor) -> f32 {
    let mask = attention_mask
        .to_dtype(DType::F32)
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    let a = a.to_dtype(DType::F32).unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .broadcast_mul(&mask)
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Fails when `diff` exceeds [`TOLERANCE`]; prints it either way so runs show the margin.
fn check_close(diff: f32, what: &str) {
    eprintln!("{what}: max |diff| {diff:.3e}");
    assert!(
        diff <= TOLERANCE,
        "{what}: max |diff| {diff:e} > {TOLERANCE:e}"
    );
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a.to_dtype(DType::F32).unwrap() - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Logits at the golden `mlm_positions` (row, column) pairs, `[n, vocab]`.
fn logits_at_positions(logits: &Tensor, positions: &Tensor) -> Tensor {
    let pairs = positions.to_vec2::<i64>().unwrap();
    let rows: Vec<Tensor> = pairs
        .iter()
        .map(|p| logits.i((p[0] as usize, p[1] as usize)).unwrap())
        .collect();
    Tensor::stack(&rows, 0).unwrap()
}

fn dnabert2_fixture() -> Option<PathBuf> {
    fixture_dir("dnabert2")
}

#[test]
fn dnabert2_matches_reference_hidden_states_mlm_and_classification_logits() {
    let Some(dir) = dnabert2_fixture() else {
        return;
    };
    let cfg = read_config(&dir);
    let golden = load_golden(&dir);
    let vb = model_vb(&dir, DType::F32);
    let model = Dnabert2Model::load(vb.clone(), &cfg).expect("load DNABERT-2 model");
    let input_ids = &golden["input_ids"];
    let attention_mask = &golden["attention_mask"];
    let output = model.forward(input_ids, attention_mask).expect("forward");

    assert_eq!(output.hidden_states.len(), cfg.num_hidden_layers + 1);
    for (i, hidden) in output.hidden_states.iter().enumerate() {
        let diff = max_abs_diff_valid(
            hidden,
            &golden[&format!("hidden_states.{i}")],
            attention_mask,
        );
        check_close(diff, &format!("dnabert2 hidden_states.{i}"));
    }
    let diff = max_abs_diff_valid(
        &output.last_hidden_state,
        &golden["last_hidden_state"],
        attention_mask,
    );
    check_close(diff, "dnabert2 last_hidden_state");

    let mlm_head = Dnabert2MlmHead::load(vb.clone(), &cfg, &model).expect("load MLM head");
    let logits = mlm_head
        .forward(&output.last_hidden_state)
        .expect("MLM logits");
    let picked = logits_at_positions(&logits, &golden["mlm_positions"]);
    check_close(
        max_abs_diff(&picked, &golden["mlm_logits"]),
        "dnabert2 mlm_logits",
    );

    for num_labels in [2, 3] {
        let head = Dnabert2Classifier::load(
            vb.clone(),
            classification_head_vb(&golden, num_labels),
            &cfg,
            num_labels,
        )
        .expect("load pooler and classifier");
        let logits = head
            .forward(&output.last_hidden_state)
            .expect("classification logits");
        let diff = max_abs_diff(&logits, &golden[&format!("cls{num_labels}.logits")]);
        check_close(diff, &format!("dnabert2 cls{num_labels}.logits"));
    }
}

/// The reference removes padding before the encoder, so every layer output is exactly 0 at
/// padded positions (what pooled embeddings of a padded batch rely on).
#[test]
fn dnabert2_layer_outputs_are_exactly_zero_at_padding() {
    let Some(dir) = dnabert2_fixture() else {
        return;
    };
    let cfg = read_config(&dir);
    let golden = load_golden(&dir);
    let model = Dnabert2Model::load(model_vb(&dir, DType::F32), &cfg).unwrap();
    let attention_mask = &golden["attention_mask"];
    let output = model.forward(&golden["input_ids"], attention_mask).unwrap();
    let padding = attention_mask
        .to_dtype(DType::F32)
        .unwrap()
        .affine(-1.0, 1.0)
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    let padded_positions = padding.sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(padded_positions > 0.0, "the golden batch has padding");
    for (name, hidden) in [
        ("hidden_states.1", &output.hidden_states[1]),
        ("hidden_states.2", &output.hidden_states[2]),
        ("last_hidden_state", &output.last_hidden_state),
    ] {
        let at_padding = hidden
            .abs()
            .unwrap()
            .broadcast_mul(&padding)
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(at_padding, 0.0, "{name} is not zero at padded positions");
    }
}

#[test]
fn dnabert2_gradients_flow_through_the_whole_encoder() {
    let Some(dir) = dnabert2_fixture() else {
        return;
    };
    let cfg = read_config(&dir);
    let golden = load_golden(&dir);
    let tensors = candle_core::safetensors::load(dir.join("model/model.safetensors"), &Device::Cpu)
        .expect("model.safetensors");
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().unwrap();
        for (name, tensor) in tensors {
            data.insert(name, Var::from_tensor(&tensor).unwrap());
        }
    }
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Dnabert2Model::load(vb.clone(), &cfg).unwrap();
    let head = Dnabert2Classifier::load(vb, classification_head_vb(&golden, 2), &cfg, 2).unwrap();
    let output = model
        .forward(&golden["input_ids"], &golden["attention_mask"])
        .unwrap();
    let loss = head
        .forward(&output.last_hidden_state)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();

    let mut names = vec![
        "bert.embeddings.word_embeddings.weight".to_string(),
        "bert.embeddings.token_type_embeddings.weight".to_string(),
        "bert.embeddings.LayerNorm.weight".to_string(),
    ];
    for module in [
        "attention.self.Wqkv.weight",
        "attention.self.Wqkv.bias",
        "attention.output.dense.weight",
        "attention.output.LayerNorm.weight",
        "mlp.gated_layers.weight",
        "mlp.wo.weight",
        "mlp.layernorm.weight",
    ] {
        names.push(format!("bert.encoder.layer.0.{module}"));
    }
    let vars = varmap.data().lock().unwrap();
    for name in names {
        let var = vars
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not in checkpoint"));
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient reached {name}"));
        let magnitude = grad
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(magnitude > 0.0, "gradient of {name} is zero");
        assert!(magnitude.is_finite(), "gradient of {name} is not finite");
        if name.ends_with("Wqkv.weight") {
            // q and k rows only get a gradient through the softmax: check each third.
            let hidden = cfg.hidden_size;
            for (part, start) in [("query", 0), ("key", hidden), ("value", 2 * hidden)] {
                let rows = grad.narrow(0, start, hidden).unwrap();
                let magnitude = rows
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    magnitude > 0.0,
                    "gradient of the {part} rows of {name} is zero"
                );
            }
        }
    }
}

#[test]
fn dnabert2_alibi_slopes_match_the_reference_for_six_heads() {
    let Some(dir) = dnabert2_fixture() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("golden.json")).expect("golden.json");
    let meta: serde_json::Value = serde_json::from_str(&text).expect("golden.json parses");
    let want: Vec<f64> = meta["alibi_slopes"]
        .as_array()
        .expect("alibi_slopes in golden.json")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect();
    let cfg = read_config(&dir);
    assert_eq!(
        cfg.num_attention_heads, 6,
        "the fixture exercises a non-power-of-two head count"
    );
    let got = dnatune::model::dnabert2::alibi_slopes(cfg.num_attention_heads);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() < 1e-12,
            "slopes {got:?} vs reference {want:?}"
        );
    }
}

#[test]
fn dnabert2_rejects_a_token_id_outside_the_vocabulary() {
    let Some(dir) = dnabert2_fixture() else {
        return;
    };
    let cfg = read_config(&dir);
    let model = Dnabert2Model::load(model_vb(&dir, DType::F32), &cfg).unwrap();
    let ids = Tensor::new(&[[1i64, 5, cfg.vocab_size as i64]], &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 3), DType::I64, &Device::Cpu).unwrap();
    let message = model.forward(&ids, &mask).unwrap_err().to_string();
    assert!(message.contains("vocabulary"), "{message}");
}

#[test]
fn dnabert2_runs_in_f16_and_bf16_close_to_the_reference() {
    let Some(dir) = dnabert2_fixture() else {
        return;
    };
    let cfg = read_config(&dir);
    let golden = load_golden(&dir);
    let attention_mask = &golden["attention_mask"];
    // Loose bounds: bf16 weights alone shift outputs by several hundredths; a broken mask or
    // an overflow gives errors of order 1.
    for (dtype, tolerance) in [
        (DType::F64, 1e-4f32),
        (DType::BF16, 0.3),
        (DType::F16, 0.05),
    ] {
        let model = Dnabert2Model::load(model_vb(&dir, dtype), &cfg).unwrap();
        let output = model.forward(&golden["input_ids"], attention_mask).unwrap();
        assert_eq!(output.last_hidden_state.dtype(), dtype);
        let diff = max_abs_diff_valid(
            &output.last_hidden_state,
            &golden["last_hidden_state"],
            attention_mask,
        );
        eprintln!("dnabert2 {dtype:?} last_hidden_state: max |diff| {diff:e}");
        assert!(
            diff <= tolerance,
            "{dtype:?} last_hidden_state: max |diff| {diff:e}"
        );
    }
}
