//! BERT-style families (DNABERT, GENA-LM) against the reference outputs in
//! `shared/fixtures/{dnabert1,gena_lm}/golden*.safetensors`.

mod golden;

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use dnatune::model::bert::LoadedBert;
use dnatune::model::config::ModelConfig;
use dnatune::model::heads::{BertClassificationHead, BertMlmHead, BertPooler};
use dnatune::model::load::{read_weight_file, Weights};
use golden::{assert_close, assert_close_valid, test_device, Golden};

const TOL: f32 = 1e-4;

fn mlm_logits_at(loaded: &LoadedBert, last_hidden_state: &Tensor, golden: &Golden) -> Tensor {
    let vb = loaded.var_builder();
    let head = BertMlmHead::load(
        &loaded.weights,
        &vb,
        &loaded.config,
        &loaded.model.embeddings.word_embeddings,
    )
    .expect("MLM head");
    let rows: Vec<Tensor> = golden
        .mlm_positions()
        .into_iter()
        .map(|(row, col)| last_hidden_state.i((row, col)).expect("position"))
        .collect();
    head.forward(&Tensor::stack(&rows, 0).expect("stack"))
        .expect("MLM forward")
}

fn classifier_logits(
    loaded: &LoadedBert,
    last_hidden_state: &Tensor,
    golden: &Golden,
    labels: usize,
) -> Tensor {
    let vb = loaded.var_builder();
    let pooler = BertPooler::load(&loaded.weights, &vb, &loaded.config).expect("pooler");
    let head = BertClassificationHead::with_classifier(
        pooler,
        golden.get(&format!("cls{labels}.head.classifier.weight")),
        golden.get(&format!("cls{labels}.head.classifier.bias")),
    )
    .expect("classifier");
    head.forward(last_hidden_state).expect("classifier forward")
}

/// Every golden quantity of one family's main fixture.
fn check_family(fixtures: &Path, family: &str) {
    let dir = fixtures.join(family);
    let golden = Golden::open(&dir.join("golden.safetensors"));
    let loaded = LoadedBert::from_dir(&dir.join("model"), DType::F32, &test_device())
        .unwrap_or_else(|e| panic!("{family}: {e}"));
    let mask = golden.get("attention_mask");
    let out = loaded
        .model
        .forward(golden.get("input_ids"), mask)
        .expect("forward");
    assert_eq!(out.hidden_states.len(), 3);
    for (i, hidden) in out.hidden_states.iter().enumerate() {
        let name = format!("hidden_states.{i}");
        assert_close_valid(
            &format!("{family} {name}"),
            hidden,
            golden.get(&name),
            mask,
            TOL,
        );
    }
    assert_close_valid(
        &format!("{family} last_hidden_state"),
        &out.last_hidden_state,
        golden.get("last_hidden_state"),
        mask,
        TOL,
    );
    let mlm = mlm_logits_at(&loaded, &out.last_hidden_state, &golden);
    assert_close(
        &format!("{family} mlm_logits"),
        &mlm,
        golden.get("mlm_logits"),
        TOL,
    );
    for labels in [2, 3] {
        let logits = classifier_logits(&loaded, &out.last_hidden_state, &golden, labels);
        assert_close(
            &format!("{family} cls{labels}.logits"),
            &logits,
            golden.get(&format!("cls{labels}.logits")),
            TOL,
        );
    }
    // The fixture stores the pooler and every tensor the model needs; nothing is made up.
    let report = loaded.weights.report();
    assert!(report.initialized.is_empty(), "{family}: {report:?}");
    assert!(report.unused.is_empty(), "{family}: {report:?}");
}

#[test]
fn dnabert1_matches_reference() {
    let Some(fixtures) = golden::fixtures_dir("dnabert1_matches_reference") else {
        return;
    };
    check_family(&fixtures, "dnabert1");
}

#[test]
fn gena_lm_matches_reference() {
    let Some(fixtures) = golden::fixtures_dir("gena_lm_matches_reference") else {
        return;
    };
    check_family(&fixtures, "gena_lm");
}

#[test]
fn gena_lm_last_layer_norm_variant_matches_reference() {
    let Some(fixtures) = golden::fixtures_dir("gena_lm_last_layer_norm_variant") else {
        return;
    };
    let dir = fixtures.join("gena_lm");
    let golden = Golden::open(&dir.join("golden.safetensors"));
    let variant = Golden::open(&dir.join("golden_lastln.safetensors"));
    let mut config = ModelConfig::from_dir(&dir.join("model"))
        .and_then(|c| c.bert())
        .expect("config");
    assert!(!config.uses_last_layer_norm(), "main fixture has it off");
    config.last_layer_norm = Some(true);
    let weights = Weights::from_dir(&dir.join("model")).expect("weights");
    for name in [
        "bert.encoder.last_layer_ln.weight",
        "bert.encoder.last_layer_ln.bias",
    ] {
        weights.insert(name, variant.get(name).clone());
    }
    let loaded =
        LoadedBert::from_weights(config, weights, DType::F32, &test_device()).expect("model");
    let mask = golden.get("attention_mask");
    let out = loaded
        .model
        .forward(golden.get("input_ids"), mask)
        .expect("forward");
    // The layer outputs are those of the main fixture: the final norm comes after them.
    assert_close_valid(
        "lastln hidden_states.2",
        &out.hidden_states[2],
        golden.get("hidden_states.2"),
        mask,
        TOL,
    );
    assert_close_valid(
        "lastln last_hidden_state",
        &out.last_hidden_state,
        variant.get("last_hidden_state"),
        mask,
        TOL,
    );
    let logits = classifier_logits(&loaded, &out.last_hidden_state, &golden, 2);
    assert_close(
        "lastln cls2.logits",
        &logits,
        variant.get("cls2.logits"),
        TOL,
    );
}

#[test]
fn dnabert1_pytorch_bin_equals_safetensors() {
    let Some(fixtures) = golden::fixtures_dir("dnabert1_pytorch_bin_equals_safetensors") else {
        return;
    };
    let model_dir = fixtures.join("dnabert1/model");
    let from_safetensors = read_weight_file(&model_dir.join("model.safetensors")).expect("st");
    let from_bin = read_weight_file(&model_dir.join("pytorch_model.bin")).expect("bin");
    // The .bin is the full state_dict: the safetensors keys plus the tied decoder copies.
    for (name, tensor) in &from_safetensors {
        let other = from_bin
            .get(name)
            .unwrap_or_else(|| panic!("pytorch_model.bin lacks {name}"));
        assert_eq!(golden::max_abs_diff(tensor, other), 0.0, "{name}");
    }
    let mut extra: Vec<&String> = from_bin
        .keys()
        .filter(|k| !from_safetensors.contains_key(*k))
        .collect();
    extra.sort();
    assert_eq!(
        extra,
        [
            "cls.predictions.decoder.bias",
            "cls.predictions.decoder.weight"
        ]
    );

    let golden = Golden::open(&fixtures.join("dnabert1/golden.safetensors"));
    let config = ModelConfig::from_dir(&model_dir)
        .and_then(|c| c.bert())
        .expect("config");
    let weights = Weights::from_tensors(from_bin, "pytorch_model.bin");
    let loaded =
        LoadedBert::from_weights(config, weights, DType::F32, &test_device()).expect("model");
    let mask = golden.get("attention_mask");
    let out = loaded
        .model
        .forward(golden.get("input_ids"), mask)
        .expect("forward");
    assert_close_valid(
        "bin last_hidden_state",
        &out.last_hidden_state,
        golden.get("last_hidden_state"),
        mask,
        TOL,
    );
    let mlm = mlm_logits_at(&loaded, &out.last_hidden_state, &golden);
    assert_close("bin mlm_logits", &mlm, golden.get("mlm_logits"), TOL);
    // The duplicated decoder tensors are recognised as tied copies, not unused leftovers.
    BertPooler::load(&loaded.weights, &loaded.var_builder(), &loaded.config).expect("pooler");
    assert!(loaded.weights.report().unused.is_empty());
}

/// Gradients must reach the first layer and the embeddings through every op of the encoder
/// and the classification head (a non-differentiable op would silently stop them).
fn check_gradients_flow(fixtures: &Path, family: &str) {
    let dir = fixtures.join(family);
    let golden = Golden::open(&dir.join("golden.safetensors"));
    let mut loaded =
        LoadedBert::from_dir(&dir.join("model"), DType::F32, &test_device()).expect("model");
    let embeddings = Var::from_tensor(&loaded.model.embeddings.word_embeddings).expect("var");
    let query0 = Var::from_tensor(&loaded.model.layers[0].query.weight).expect("var");
    loaded.model.embeddings.word_embeddings = embeddings.as_tensor().clone();
    loaded.model.layers[0].query.weight = query0.as_tensor().clone();

    let out = loaded
        .model
        .forward(golden.get("input_ids"), golden.get("attention_mask"))
        .expect("forward");
    let logits = classifier_logits(&loaded, &out.last_hidden_state, &golden, 2);
    let loss = logits.sqr().and_then(|l| l.sum_all()).expect("loss");
    let grads = loss.backward().expect("backward");
    for (name, var) in [("word_embeddings", &embeddings), ("layer 0 query", &query0)] {
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{family}: no gradient for {name}"));
        let norm = grad
            .sqr()
            .and_then(|g| g.sum_all())
            .and_then(|g| g.to_scalar::<f32>())
            .expect("norm");
        assert!(norm > 0.0, "{family}: gradient of {name} is zero");
    }
}

#[test]
fn gradients_flow_through_the_whole_encoder() {
    let Some(fixtures) = golden::fixtures_dir("gradients_flow_through_the_whole_encoder") else {
        return;
    };
    check_gradients_flow(&fixtures, "dnabert1");
    check_gradients_flow(&fixtures, "gena_lm");
}

#[test]
fn f16_and_bf16_stay_close_to_f32() {
    let Some(fixtures) = golden::fixtures_dir("f16_and_bf16_stay_close_to_f32") else {
        return;
    };
    let dir = fixtures.join("dnabert1");
    let golden = Golden::open(&dir.join("golden.safetensors"));
    // bf16 keeps 8 bits of mantissa, f16 11: their bounds differ accordingly.
    for (dtype, bound) in [(DType::BF16, 0.15), (DType::F16, 0.02)] {
        let loaded =
            LoadedBert::from_dir(&dir.join("model"), dtype, &test_device()).expect("model");
        let out = loaded
            .model
            .forward(golden.get("input_ids"), golden.get("attention_mask"))
            .expect("forward");
        assert_eq!(out.last_hidden_state.dtype(), dtype);
        // LayerNorm output is O(1); half precision keeps two to three significant digits.
        let diff = golden::max_abs_diff_valid(
            &out.last_hidden_state,
            golden.get("last_hidden_state"),
            golden.get("attention_mask"),
        );
        assert!(diff < bound, "{dtype:?}: max |diff| {diff}");
        eprintln!("{dtype:?} last_hidden_state max |diff| = {diff:.3e}");
    }
}

#[test]
fn bad_inputs_are_rejected_with_a_reason() {
    let Some(fixtures) = golden::fixtures_dir("bad_inputs_are_rejected_with_a_reason") else {
        return;
    };
    let loaded = LoadedBert::from_dir(&fixtures.join("dnabert1/model"), DType::F32, &test_device())
        .expect("model");
    let ids = |values: Vec<i64>| {
        let n = values.len();
        Tensor::from_vec(values, (1, n), &Device::Cpu).expect("ids")
    };
    // An id past the vocabulary (4101 entries), e.g. from another model's tokenizer.
    let mask = Tensor::ones((1, 3), DType::I64, &Device::Cpu).expect("mask");
    let err = loaded
        .model
        .forward(&ids(vec![2, 4101, 3]), &mask)
        .unwrap_err();
    assert!(err.to_string().contains("4101"), "{err}");
    // More tokens than position embeddings (512).
    let long = ids(vec![5; 513]);
    let long_mask = Tensor::ones((1, 513), DType::I64, &Device::Cpu).expect("mask");
    let err = loaded.model.forward(&long, &long_mask).unwrap_err();
    assert!(err.to_string().contains("512"), "{err}");
    // Mask and ids of different shapes.
    let err = loaded
        .model
        .forward(&ids(vec![2, 5, 3]), &long_mask)
        .unwrap_err();
    assert!(err.to_string().contains("attention_mask"), "{err}");
}

#[test]
fn weights_of_another_family_name_the_missing_tensor() {
    let Some(fixtures) = golden::fixtures_dir("weights_of_another_family") else {
        return;
    };
    // GENA-LM's pre-LN config over DNABERT's post-LN weights.
    let config = ModelConfig::from_dir(&fixtures.join("gena_lm/model"))
        .and_then(|c| c.bert())
        .expect("config");
    let weights = Weights::from_dir(&fixtures.join("dnabert1/model")).expect("weights");
    let err = LoadedBert::from_weights(config.clone(), weights.clone(), DType::F32, &test_device())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bert.embeddings.word_embeddings.weight") && msg.contains("[32000, 32]"),
        "{msg}"
    );
    // With matching sizes the first tensor only GENA-LM has is named.
    let mut config = config;
    config.vocab_size = 4101;
    let err = LoadedBert::from_weights(config, weights, DType::F32, &test_device()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bert.encoder.layer.0.pre_attention_ln.weight"),
        "{msg}"
    );
}
