//! DNABERT-2 against the reference outputs in `shared/fixtures/dnabert2/golden.safetensors`
//! (the remote MosaicBERT `bert_layers.py`, pure-PyTorch attention, float32, eval mode).

mod golden;

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use dnatune::model::dnabert2::{alibi_slopes, LoadedDnabert2};
use dnatune::model::heads::BertClassificationHead;
use golden::{assert_close, assert_close_valid, test_device, Golden};

const TOL: f32 = 1e-4;

fn load(fixtures: &Path, dtype: DType) -> LoadedDnabert2 {
    LoadedDnabert2::from_dir(&fixtures.join("dnabert2/model"), dtype, &test_device())
        .unwrap_or_else(|e| panic!("dnabert2: {e}"))
}

fn golden_batch(fixtures: &Path) -> Golden {
    Golden::open(&fixtures.join("dnabert2/golden.safetensors"))
}

/// The pooler from the checkpoint and the golden `cls{labels}.head.classifier.*`.
fn golden_classification_head(
    loaded: &LoadedDnabert2,
    golden: &Golden,
    labels: usize,
) -> BertClassificationHead {
    for name in ["classifier.weight", "classifier.bias"] {
        let tensor = golden.get(&format!("cls{labels}.head.{name}"));
        loaded.weights.insert(name, tensor.clone());
    }
    loaded
        .classification_head(labels)
        .expect("classification head")
}

#[test]
fn dnabert2_matches_reference() {
    let Some(fixtures) = golden::fixtures_dir("dnabert2_matches_reference") else {
        return;
    };
    let golden = golden_batch(&fixtures);
    let loaded = load(&fixtures, DType::F32);
    let mask = golden.get("attention_mask");
    let out = loaded
        .model
        .forward(golden.get("input_ids"), mask)
        .expect("forward");

    assert_eq!(out.hidden_states.len(), loaded.config.num_hidden_layers + 1);
    for (i, hidden) in out.hidden_states.iter().enumerate() {
        let name = format!("hidden_states.{i}");
        assert_close_valid(
            &format!("dnabert2 {name}"),
            hidden,
            golden.get(&name),
            mask,
            TOL,
        );
    }
    assert_close_valid(
        "dnabert2 last_hidden_state",
        &out.last_hidden_state,
        golden.get("last_hidden_state"),
        mask,
        TOL,
    );

    let rows: Vec<Tensor> = golden
        .mlm_positions()
        .into_iter()
        .map(|(row, col)| out.last_hidden_state.i((row, col)).expect("position"))
        .collect();
    let mlm = loaded
        .mlm_head()
        .expect("MLM head")
        .forward(&Tensor::stack(&rows, 0).expect("stack"))
        .expect("MLM forward");
    assert_close("dnabert2 mlm_logits", &mlm, golden.get("mlm_logits"), TOL);

    for labels in [2, 3] {
        let logits = golden_classification_head(&loaded, &golden, labels)
            .forward(&out.last_hidden_state)
            .expect("classifier forward");
        let name = format!("cls{labels}.logits");
        assert_close(&format!("dnabert2 {name}"), &logits, golden.get(&name), TOL);
    }

    // The stored copy of the tied decoder counts as used; nothing else is left over.
    let report = loaded.weights.report();
    assert!(
        report.unused.is_empty(),
        "unused tensors {:?}",
        report.unused
    );
    assert!(
        report.initialized.is_empty(),
        "initialised {:?}",
        report.initialized
    );
}

/// The reference removes padding before the encoder, so every layer output is exactly 0 at
/// padded positions (what pooled embeddings of a padded batch rely on).
#[test]
fn dnabert2_layer_outputs_are_exactly_zero_at_padding() {
    let Some(fixtures) = golden::fixtures_dir("dnabert2_zero_at_padding") else {
        return;
    };
    let golden = golden_batch(&fixtures);
    let loaded = load(&fixtures, DType::F32);
    let mask = golden.get("attention_mask");
    let out = loaded
        .model
        .forward(golden.get("input_ids"), mask)
        .expect("forward");
    let padding = mask
        .to_dtype(DType::F32)
        .and_then(|m| m.affine(-1.0, 1.0))
        .and_then(|m| m.unsqueeze(2))
        .expect("padding mask");
    let padded = padding
        .sum_all()
        .and_then(|s| s.to_scalar::<f32>())
        .expect("count");
    assert!(padded > 0.0, "the golden batch has padding");
    for (name, hidden) in [
        ("hidden_states.1", &out.hidden_states[1]),
        ("hidden_states.2", &out.hidden_states[2]),
        ("last_hidden_state", &out.last_hidden_state),
    ] {
        let at_padding = hidden
            .abs()
            .and_then(|h| h.broadcast_mul(&padding))
            .and_then(|h| h.max_all())
            .and_then(|h| h.to_scalar::<f32>())
            .expect("max");
        assert_eq!(at_padding, 0.0, "{name} is not zero at padded positions");
    }
}

/// Gradients must reach the embeddings and every weight of layer 0 through ALiBi attention,
/// GEGLU and the post-LN blocks; the q and k thirds of `Wqkv` only get one through the softmax.
#[test]
fn gradients_flow_through_the_whole_dnabert2_encoder() {
    let Some(fixtures) = golden::fixtures_dir("gradients_flow_through_dnabert2") else {
        return;
    };
    let golden = golden_batch(&fixtures);
    let mut loaded = load(&fixtures, DType::F32);
    let head = golden_classification_head(&loaded, &golden, 2);

    let mut vars: Vec<(String, Var)> = Vec::new();
    let mut track = |name: &str, tensor: &mut Tensor| {
        let var = Var::from_tensor(tensor).expect("var");
        *tensor = var.as_tensor().clone();
        vars.push((name.to_string(), var));
    };
    let model = &mut loaded.model;
    track("word_embeddings", &mut model.word_embeddings);
    track("token_type_embedding", &mut model.token_type_embedding);
    track(
        "embedding LayerNorm",
        &mut model.embedding_layer_norm.weight,
    );
    let layer = &mut model.layers[0];
    track("layer 0 Wqkv", &mut layer.wqkv.weight);
    track(
        "layer 0 attention output",
        &mut layer.attention_output.weight,
    );
    track(
        "layer 0 attention LayerNorm",
        &mut layer.attention_layer_norm.weight,
    );
    track("layer 0 gated_layers", &mut layer.gated_layers.weight);
    track("layer 0 wo", &mut layer.wo.weight);
    track("layer 0 mlp LayerNorm", &mut layer.mlp_layer_norm.weight);

    let out = loaded
        .model
        .forward(golden.get("input_ids"), golden.get("attention_mask"))
        .expect("forward");
    let logits = head.forward(&out.last_hidden_state).expect("head");
    let loss = logits.sqr().and_then(|l| l.sum_all()).expect("loss");
    let grads = loss.backward().expect("backward");
    let norm = |t: &Tensor| {
        t.sqr()
            .and_then(|g| g.sum_all())
            .and_then(|g| g.to_scalar::<f32>())
            .expect("norm")
    };
    let hidden = loaded.config.hidden_size;
    for (name, var) in &vars {
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let total = norm(grad);
        assert!(
            total > 0.0 && total.is_finite(),
            "gradient of {name} is {total}"
        );
        if name.ends_with("Wqkv") {
            for (part, start) in [("query", 0), ("key", hidden), ("value", 2 * hidden)] {
                let rows = grad.narrow(0, start, hidden).expect("rows");
                assert!(
                    norm(&rows) > 0.0,
                    "gradient of the {part} rows of Wqkv is zero"
                );
            }
        }
    }
}

#[test]
fn dnabert2_alibi_slopes_match_the_reference_for_six_heads() {
    let Some(fixtures) = golden::fixtures_dir("dnabert2_alibi_slopes") else {
        return;
    };
    let text = std::fs::read_to_string(fixtures.join("dnabert2/golden.json")).expect("golden.json");
    let meta: serde_json::Value = serde_json::from_str(&text).expect("golden.json parses");
    let want: Vec<f64> = meta["alibi_slopes"]
        .as_array()
        .expect("alibi_slopes in golden.json")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect();
    let loaded = load(&fixtures, DType::F32);
    assert_eq!(
        loaded.config.num_attention_heads, 6,
        "the fixture exercises a head count that is not a power of two"
    );
    let got = alibi_slopes(loaded.config.num_attention_heads);
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
    let Some(fixtures) = golden::fixtures_dir("dnabert2_rejects_a_token_id") else {
        return;
    };
    let loaded = load(&fixtures, DType::F32);
    let out_of_range = loaded.config.vocab_size as i64;
    let ids = Tensor::new(&[[1i64, 5, out_of_range]], &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 3), DType::I64, &Device::Cpu).unwrap();
    let message = loaded.model.forward(&ids, &mask).unwrap_err().to_string();
    assert!(message.contains("vocabulary"), "{message}");
}

/// Loose bounds: bf16 weights alone shift the outputs by several hundredths; a broken mask
/// or an overflow gives errors of order 1.
#[test]
fn dnabert2_runs_in_f64_f16_and_bf16_close_to_the_reference() {
    let Some(fixtures) = golden::fixtures_dir("dnabert2_runs_in_other_dtypes") else {
        return;
    };
    let golden = golden_batch(&fixtures);
    let mask = golden.get("attention_mask");
    for (dtype, tol) in [(DType::F64, 1e-4), (DType::BF16, 0.3), (DType::F16, 0.05)] {
        let loaded = load(&fixtures, dtype);
        let out = loaded
            .model
            .forward(golden.get("input_ids"), mask)
            .expect("forward");
        assert_eq!(out.last_hidden_state.dtype(), dtype);
        assert_close_valid(
            &format!("dnabert2 {dtype:?} last_hidden_state"),
            &out.last_hidden_state,
            golden.get("last_hidden_state"),
            mask,
            tol,
        );
    }
}
