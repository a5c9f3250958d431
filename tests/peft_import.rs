//! Importing PEFT adapters written by Python (`shared/fixtures/*/peft_adapter/`) and the errors
//! for adapters that do not fit.

mod golden;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use dnatune::adapter::peft::{load_peft_classifier, PeftError};
use dnatune::model::classifier::{ClassifierError, ClassifierSpec, SequenceClassifier};
use dnatune::model::lora::{LoraConfig, LoraError, TargetModules};
use golden::{assert_close, fixtures_dir, Golden};

const FAMILIES: [&str; 5] = ["dnabert1", "dnabert2", "nt_v1", "nt_v2", "gena_lm"];

fn load(adapter: &Path, model: Option<&Path>) -> Result<SequenceClassifier, PeftError> {
    load_peft_classifier(adapter, model, DType::F32, &Device::Cpu)
}

/// A writable copy of a fixture adapter whose config is edited by `edit` and whose base model
/// path is made absolute (the copy no longer sits beside `../model`).
fn edited_adapter(
    fixtures: &Path,
    family: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> tempfile::TempDir {
    let source = fixtures.join(family).join("peft_adapter");
    let copy = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(source.join("adapter_config.json")).expect("config");
    let mut config: serde_json::Value = serde_json::from_str(&text).expect("json");
    config["base_model_name_or_path"] =
        serde_json::Value::String(fixtures.join(family).join("model").display().to_string());
    edit(&mut config);
    std::fs::write(
        copy.path().join("adapter_config.json"),
        serde_json::to_string_pretty(&config).expect("json"),
    )
    .expect("write config");
    std::fs::copy(
        source.join("adapter_model.safetensors"),
        copy.path().join("adapter_model.safetensors"),
    )
    .expect("copy weights");
    copy
}

fn logits_of(model: &SequenceClassifier, golden: &Golden) -> Tensor {
    model
        .forward(golden.get("input_ids"), golden.get("attention_mask"), false)
        .expect("forward")
}

#[test]
fn every_fixture_adapter_reproduces_the_peft_logits() {
    let Some(fixtures) = fixtures_dir("every_fixture_adapter_reproduces_the_peft_logits") else {
        return;
    };
    for family in FAMILIES {
        let dir = fixtures.join(family);
        let golden = Golden::open(&dir.join("golden.safetensors"));
        // base_model_name_or_path is "../model", relative to the adapter folder.
        let model =
            load(&dir.join("peft_adapter"), None).unwrap_or_else(|e| panic!("{family}: {e}"));
        assert_eq!(
            model.num_labels, 2,
            "{family}: class count from the classifier"
        );
        let (lora, modules) = model.lora().expect("LoRA attached");
        assert_eq!((lora.rank, lora.scaling()), (4, 2.0), "{family}");
        assert_eq!(
            modules.len(),
            if family == "dnabert2" { 2 } else { 4 },
            "{family}"
        );
        assert_close(
            &format!("{family} lora.logits"),
            &logits_of(&model, &golden),
            golden.get("lora.logits"),
            1e-4,
        );
    }
}

#[test]
fn a_regex_target_selects_the_same_modules() {
    let Some(fixtures) = fixtures_dir("a_regex_target_selects_the_same_modules") else {
        return;
    };
    let adapter = edited_adapter(&fixtures, "nt_v2", |config| {
        config["target_modules"] = r".*\.attention\.self\.(query|value)".into();
    });
    let golden = Golden::open(&fixtures.join("nt_v2/golden.safetensors"));
    let model = load(adapter.path(), None).expect("regex targets");
    assert_close(
        "nt_v2 lora.logits (regex targets)",
        &logits_of(&model, &golden),
        golden.get("lora.logits"),
        1e-4,
    );
}

#[test]
fn a_folder_without_adapter_config_is_refused_by_name() {
    let Some(fixtures) = fixtures_dir("a_folder_without_adapter_config_is_refused_by_name") else {
        return;
    };
    let model_dir = fixtures.join("dnabert1/model");
    let err = load(&model_dir, None).unwrap_err();
    assert!(matches!(err, PeftError::MissingConfig { .. }), "{err:?}");
    let message = err.to_string();
    eprintln!("{message}");
    assert!(message.contains("adapter_config.json"), "{message}");
    assert!(
        message.contains(&model_dir.display().to_string()),
        "{message}"
    );
}

#[test]
fn an_adapter_of_another_family_names_the_tensor() {
    let Some(fixtures) = fixtures_dir("an_adapter_of_another_family_names_the_tensor") else {
        return;
    };
    // NT's head (dense + out_proj) on a DNABERT model.
    let err = load(
        &fixtures.join("nt_v1/peft_adapter"),
        Some(&fixtures.join("dnabert1/model")),
    )
    .unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(matches!(err, PeftError::WrongBaseModel { .. }), "{err:?}");
    assert!(
        message.contains("base_model.model.classifier.out_proj.weight")
            && message.contains("another base model"),
        "{message}"
    );

    // DNABERT's query/value targets on DNABERT-2, whose attention is one fused Wqkv.
    let err = load(
        &fixtures.join("dnabert1/peft_adapter"),
        Some(&fixtures.join("dnabert2/model")),
    )
    .unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(matches!(err, PeftError::Targets { .. }), "{err:?}");
    assert!(
        message.contains("query") && message.contains("attention.self.Wqkv"),
        "{message}"
    );
}

#[test]
fn a_shape_mismatch_names_the_tensor_and_both_shapes() {
    let Some(fixtures) = fixtures_dir("a_shape_mismatch_names_the_tensor_and_both_shapes") else {
        return;
    };
    // A DNABERT adapter made for a wider model (hidden 48 instead of 32).
    let adapter = edited_adapter(&fixtures, "dnabert1", |_| {});
    let weights_path = adapter.path().join("adapter_model.safetensors");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&weights_path, &Device::Cpu).expect("read");
    let key = "base_model.model.bert.encoder.layer.1.attention.self.value.lora_A.weight";
    assert!(tensors.contains_key(key), "fixture layout changed");
    tensors.insert(
        key.to_string(),
        Tensor::zeros((4, 48), DType::F32, &Device::Cpu).expect("zeros"),
    );
    candle_core::safetensors::save(&tensors, &weights_path).expect("write");

    let err = load(adapter.path(), None).unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(matches!(err, PeftError::ShapeMismatch { .. }), "{err:?}");
    assert!(
        message.contains(key)
            && message.contains("[4, 48]")
            && message.contains("[4, 32]")
            && message.contains("another base model"),
        "{message}"
    );
}

#[test]
fn rank_zero_is_refused() {
    let Some(fixtures) = fixtures_dir("rank_zero_is_refused") else {
        return;
    };
    let adapter = edited_adapter(&fixtures, "dnabert1", |config| config["r"] = 0.into());
    let message = load(adapter.path(), None).unwrap_err().to_string();
    eprintln!("{message}");
    assert!(
        message.contains("adapter_config.json") && message.contains("rank"),
        "{message}"
    );

    let mut lora = LoraConfig::for_family(dnatune::model::config::Family::Dnabert);
    lora.rank = 0;
    let spec = ClassifierSpec {
        num_labels: 2,
        lora: Some(lora),
        train_pooler: false,
        seed: 1,
    };
    let err = SequenceClassifier::load(
        &fixtures.join("dnabert1/model"),
        &spec,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(
        matches!(err, ClassifierError::Lora(LoraError::RankZero)),
        "{err:?}"
    );
}

#[test]
fn a_target_that_matches_nothing_lists_the_modules() {
    let Some(fixtures) = fixtures_dir("a_target_that_matches_nothing_lists_the_modules") else {
        return;
    };
    let adapter = edited_adapter(&fixtures, "gena_lm", |config| {
        config["target_modules"] = serde_json::json!(["q_proj", "v_proj"]);
    });
    let message = load(adapter.path(), None).unwrap_err().to_string();
    eprintln!("{message}");
    assert!(
        message.contains("q_proj")
            && message.contains("bert.encoder.layer.N.attention.self.query")
            && message.contains("intermediate.dense"),
        "{message}"
    );

    let mut lora = LoraConfig::for_family(dnatune::model::config::Family::NucleotideTransformerV1);
    lora.targets = TargetModules::Names(vec!["Wqkv".into()]);
    let spec = ClassifierSpec {
        num_labels: 3,
        lora: Some(lora),
        train_pooler: false,
        seed: 1,
    };
    let err = SequenceClassifier::load(
        &fixtures.join("nt_v1/model"),
        &spec,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(
        message.contains("Wqkv") && message.contains("esm.encoder.layer.N.attention.self.query"),
        "{message}"
    );
}

#[test]
fn a_missing_relative_base_model_is_reported_with_the_folder_tried() {
    let Some(fixtures) = fixtures_dir("a_missing_relative_base_model_is_reported") else {
        return;
    };
    let adapter = edited_adapter(&fixtures, "dnabert1", |config| {
        config["base_model_name_or_path"] = "../model".into();
    });
    let err = load(adapter.path(), None).unwrap_err();
    assert!(
        matches!(err, PeftError::BaseModelNotFound { .. }),
        "{err:?}"
    );
    let tried: PathBuf = adapter.path().join("../model");
    let message = err.to_string();
    eprintln!("{message}");
    assert!(
        message.contains(&tried.display().to_string()) && message.contains("--model"),
        "{message}"
    );
}

#[test]
fn a_base_model_without_pooler_needs_the_pooler_in_the_adapter() {
    let Some(fixtures) =
        fixtures_dir("a_base_model_without_pooler_needs_the_pooler_in_the_adapter")
    else {
        return;
    };
    // Many Hub MaskedLM checkpoints lack bert.pooler; PEFT's adapter then cannot reproduce the
    // logits it was trained with unless it saved the pooler too.
    let source = fixtures.join("dnabert1/model");
    let model_dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        source.join("config.json"),
        model_dir.path().join("config.json"),
    )
    .expect("copy config");
    let mut tensors =
        candle_core::safetensors::load(source.join("model.safetensors"), &Device::Cpu)
            .expect("read");
    let pooler: HashMap<String, Tensor> = tensors
        .iter()
        .filter(|(name, _)| name.starts_with("bert.pooler."))
        .map(|(name, t)| (format!("base_model.model.{name}"), t.clone()))
        .collect();
    assert_eq!(pooler.len(), 2, "fixture layout changed");
    tensors.retain(|name, _| !name.starts_with("bert.pooler."));
    candle_core::safetensors::save(&tensors, model_dir.path().join("model.safetensors"))
        .expect("write");

    let err = load(
        &fixtures.join("dnabert1/peft_adapter"),
        Some(model_dir.path()),
    )
    .unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(matches!(err, PeftError::MissingTensor { .. }), "{err:?}");
    assert!(
        message.contains("base_model.model.bert.pooler.dense.weight")
            && message.contains(&model_dir.path().display().to_string()),
        "{message}"
    );

    // The same adapter saved with the pooler (modules_to_save ["classifier", "pooler"]) loads
    // and gives the reference logits.
    let adapter = edited_adapter(&fixtures, "dnabert1", |config| {
        config["modules_to_save"] = serde_json::json!(["classifier", "pooler", "score"]);
    });
    let weights_path = adapter.path().join("adapter_model.safetensors");
    let mut adapter_tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&weights_path, &Device::Cpu).expect("read");
    adapter_tensors.extend(pooler);
    candle_core::safetensors::save(&adapter_tensors, &weights_path).expect("write");
    let model = load(adapter.path(), Some(model_dir.path())).expect("adapter with pooler");
    assert_eq!(model.modules_to_save(), vec!["pooler", "classifier"]);
    let golden = Golden::open(&fixtures.join("dnabert1/golden.safetensors"));
    assert_close(
        "dnabert1 lora.logits (pooler from the adapter)",
        &logits_of(&model, &golden),
        golden.get("lora.logits"),
        1e-4,
    );
}
