//! Nucleotide Transformer v1 and v2 against the reference outputs in
//! `shared/fixtures/nt_v{1,2}/golden.safetensors` (transformers `EsmForMaskedLM` /
//! `EsmForSequenceClassification` and the NT v2 remote code, float32, eval mode).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dnatune::model::esm::{Config, EsmClassificationHead, EsmLmHead, EsmModel};

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
    serde_json::from_str(&text).expect("config.json parses as an ESM config")
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

fn check_family_against_golden(family: &str) {
    let Some(dir) = fixture_dir(family) else {
        return;
    };
    let cfg = read_config(&dir);
    let golden = load_golden(&dir);
    let vb = model_vb(&dir, DType::F32);
    let model = EsmModel::load(vb.clone(), &cfg).expect("load ESM model");
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
        check_close(diff, &format!("{family} hidden_states.{i}"));
    }
    let diff = max_abs_diff_valid(
        &output.last_hidden_state,
        &golden["last_hidden_state"],
        attention_mask,
    );
    check_close(diff, &format!("{family} last_hidden_state"));

    let lm_head = EsmLmHead::load(vb, &cfg, &model).expect("load lm_head");
    let logits = lm_head
        .forward(&output.last_hidden_state)
        .expect("MLM logits");
    let picked = logits_at_positions(&logits, &golden["mlm_positions"]);
    let diff = max_abs_diff(&picked, &golden["mlm_logits"]);
    check_close(diff, &format!("{family} mlm_logits"));

    for num_labels in [2, 3] {
        let head = EsmClassificationHead::load(
            classification_head_vb(&golden, num_labels),
            &cfg,
            num_labels,
        )
        .expect("load classification head");
        let logits = head
            .forward(&output.last_hidden_state)
            .expect("classification logits");
        let diff = max_abs_diff(&logits, &golden[&format!("cls{num_labels}.logits")]);
        check_close(diff, &format!("{family} cls{num_labels}.logits"));
    }
}

#[test]
fn nt_v1_matches_reference_hidden_states_mlm_and_classification_logits() {
    check_family_against_golden("nt_v1");
}

#[test]
fn nt_v2_matches_reference_hidden_states_mlm_and_classification_logits() {
    check_family_against_golden("nt_v2");
}

/// A model whose every checkpoint tensor is a trainable `Var`, so gradients can be inspected.
fn model_with_vars(dir: &Path, cfg: &Config) -> (EsmModel, VarMap) {
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
    (
        EsmModel::load(vb, cfg).expect("load ESM model from vars"),
        varmap,
    )
}

fn check_gradients_reach_layer_zero(family: &str) {
    let Some(dir) = fixture_dir(family) else {
        return;
    };
    let cfg = read_config(&dir);
    let golden = load_golden(&dir);
    let (model, varmap) = model_with_vars(&dir, &cfg);
    let head = EsmClassificationHead::load(classification_head_vb(&golden, 2), &cfg, 2).unwrap();
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

    let mut names = vec!["esm.embeddings.word_embeddings.weight".to_string()];
    for module in [
        "attention.LayerNorm.weight",
        "attention.self.query.weight",
        "attention.self.key.weight",
        "attention.self.value.weight",
        "attention.output.dense.weight",
        "LayerNorm.weight",
        "intermediate.dense.weight",
        "output.dense.weight",
    ] {
        names.push(format!("esm.encoder.layer.0.{module}"));
    }
    if cfg.position_embedding_type == dnatune::model::esm::PositionEmbeddingType::Absolute {
        names.push("esm.embeddings.position_embeddings.weight".to_string());
    }
    let vars = varmap.data().lock().unwrap();
    for name in names {
        let var = vars
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not in checkpoint"));
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{family}: no gradient reached {name}"));
        let magnitude = grad
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(magnitude > 0.0, "{family}: gradient of {name} is zero");
        assert!(
            magnitude.is_finite(),
            "{family}: gradient of {name} is not finite"
        );
    }
}

#[test]
fn nt_v1_gradients_flow_through_the_whole_encoder() {
    check_gradients_reach_layer_zero("nt_v1");
}

#[test]
fn nt_v2_gradients_flow_through_the_whole_encoder() {
    check_gradients_reach_layer_zero("nt_v2");
}

#[test]
fn nt_v1_rejects_a_token_id_without_an_embedding_row() {
    let Some(dir) = fixture_dir("nt_v1") else {
        return;
    };
    let cfg = read_config(&dir);
    let model = EsmModel::load(model_vb(&dir, DType::F32), &cfg).unwrap();
    // 4105 is <eos> in the v1 vocab.txt, which has no embedding row (vocab_size 4105).
    let ids = Tensor::new(&[[3u32, 10, 4105]], &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 3), DType::U32, &Device::Cpu).unwrap();
    let message = model.forward(&ids, &mask).unwrap_err().to_string();
    assert!(
        message.contains("4105") && message.contains("vocabulary"),
        "{message}"
    );
}

#[test]
fn nt_v1_rejects_inputs_longer_than_its_position_table() {
    let Some(dir) = fixture_dir("nt_v1") else {
        return;
    };
    let cfg = read_config(&dir);
    let model = EsmModel::load(model_vb(&dir, DType::F32), &cfg).unwrap();
    let too_long = cfg.max_position_embeddings - 1; // + pad offset 1 reaches the table end
    let ids = Tensor::full(10u32, (1, too_long), &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, too_long), DType::U32, &Device::Cpu).unwrap();
    let message = model.forward(&ids, &mask).unwrap_err().to_string();
    assert!(message.contains("truncate"), "{message}");
    // One token fewer fits.
    let ids = ids.narrow(1, 0, too_long - 1).unwrap();
    let mask = mask.narrow(1, 0, too_long - 1).unwrap();
    model
        .forward(&ids, &mask)
        .expect("the longest input the table allows");
}

/// Reduced precision is not covered by the golden file. Rounding only the weights to bf16
/// already moves `last_hidden_state` by about 0.06 (f16: 0.007), so the bounds are loose; they
/// still catch a broken mask or overflow in reduced precision, which give errors of order 1.
#[test]
fn nt_v2_runs_in_f16_bf16_and_f64_close_to_the_reference() {
    let Some(dir) = fixture_dir("nt_v2") else {
        return;
    };
    let cfg = read_config(&dir);
    let golden = load_golden(&dir);
    let attention_mask = &golden["attention_mask"];
    for (dtype, tolerance) in [
        (DType::F64, 1e-4f32),
        (DType::BF16, 0.3),
        (DType::F16, 0.05),
    ] {
        let model = EsmModel::load(model_vb(&dir, dtype), &cfg).unwrap();
        let output = model.forward(&golden["input_ids"], attention_mask).unwrap();
        assert_eq!(output.last_hidden_state.dtype(), dtype);
        let diff = max_abs_diff_valid(
            &output.last_hidden_state,
            &golden["last_hidden_state"],
            attention_mask,
        );
        eprintln!("nt_v2 {dtype:?} last_hidden_state: max |diff| {diff:e}");
        assert!(
            diff <= tolerance,
            "{dtype:?} last_hidden_state: max |diff| {diff:e}"
        );
    }
}
