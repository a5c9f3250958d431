//! LoRA + classification head against the PEFT reference in `shared/fixtures/*/golden.*`:
//! loss and the gradient of every trainable tensor, for all five families; and a fresh LoRA
//! (B = 0) passes gradient to every B and head tensor after one backward pass.

mod golden;

use std::collections::BTreeSet;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use dnatune::model::classifier::{ClassifierSpec, SequenceClassifier};
use dnatune::model::lora::{LoraConfig, TargetModules};
use golden::{assert_close, fixtures_dir, Golden};

const FAMILIES: [&str; 5] = ["dnabert1", "dnabert2", "nt_v1", "nt_v2", "gena_lm"];

/// The LoRA settings of the fixture (`golden.json → lora`): r 4, alpha 8, no dropout.
fn fixture_lora(family_dir: &Path) -> LoraConfig {
    let path = family_dir.join("golden.json");
    let text = std::fs::read_to_string(&path).expect("golden.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("golden.json is JSON");
    let lora = &json["lora"];
    let targets: Vec<String> = lora["target_modules"]
        .as_array()
        .expect("target_modules")
        .iter()
        .map(|t| t.as_str().expect("target name").to_string())
        .collect();
    LoraConfig {
        rank: lora["r"].as_u64().expect("r") as usize,
        alpha: lora["lora_alpha"].as_f64().expect("lora_alpha"),
        dropout: lora["lora_dropout"].as_f64().expect("lora_dropout"),
        targets: TargetModules::Names(targets),
        use_rslora: false,
        seed: 7,
    }
}

fn build(family_dir: &Path) -> SequenceClassifier {
    let spec = ClassifierSpec {
        num_labels: 2,
        lora: Some(fixture_lora(family_dir)),
        train_pooler: false,
        seed: 7,
    };
    SequenceClassifier::load(&family_dir.join("model"), &spec, DType::F32, &Device::Cpu)
        .expect("classifier")
}

fn loss_of(logits: &Tensor, golden: &Golden) -> Tensor {
    let labels = golden
        .get("lora.labels")
        .to_dtype(DType::U32)
        .expect("labels");
    candle_nn::loss::cross_entropy(logits, &labels).expect("cross entropy")
}

fn names_with_prefix(golden: &Golden, prefix: &str) -> BTreeSet<String> {
    golden
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
        .collect()
}

#[test]
fn loss_and_every_gradient_match_peft_for_all_families() {
    let Some(fixtures) = fixtures_dir("loss_and_every_gradient_match_peft_for_all_families") else {
        return;
    };
    for family in FAMILIES {
        let dir = fixtures.join(family);
        let golden = Golden::open(&dir.join("golden.safetensors"));
        let model = build(&dir);

        // Exactly the reference's trainable tensors: no base weight, no frozen pooler.
        let ours: BTreeSet<String> = model
            .trainable_vars()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let params = names_with_prefix(&golden, "lora.param.");
        let grads = names_with_prefix(&golden, "lora.grad.");
        assert_eq!(
            ours, params,
            "{family}: trainable tensors differ from PEFT's"
        );
        assert_eq!(
            ours, grads,
            "{family}: trainable tensors differ from the gradients"
        );

        for name in &params {
            model
                .set_trainable(name, golden.get(&format!("lora.param.{name}")))
                .expect("set parameter");
        }
        let logits = model
            .forward(golden.get("input_ids"), golden.get("attention_mask"), true)
            .expect("forward");
        assert_close(
            &format!("{family} lora.logits"),
            &logits,
            golden.get("lora.logits"),
            1e-4,
        );
        let loss = loss_of(&logits, &golden);
        assert_close(
            &format!("{family} lora.loss"),
            &loss.reshape(1).expect("reshape"),
            golden.get("lora.loss"),
            1e-5,
        );

        let grad_store = loss.backward().expect("backward");
        for (name, var) in model.trainable_vars() {
            let grad = grad_store
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{family}: no gradient reached {name}"));
            let expected = golden.get(&format!("lora.grad.{name}"));
            assert_eq!(grad.dims(), expected.dims(), "{family} {name}");
            let got: Vec<f32> = grad.flatten_all().and_then(|t| t.to_vec1()).expect("grad");
            let want: Vec<f32> = expected
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .expect("golden grad");
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs() - (1e-4 + 1e-3 * w.abs()))
                .fold(f32::NEG_INFINITY, f32::max);
            assert!(
                worst <= 0.0,
                "{family} {name}: gradient off by {worst:.3e} beyond 1e-4 + 1e-3·|ref|"
            );
        }
        eprintln!("{family}: {} gradients match", params.len());
    }
}

#[test]
fn fresh_lora_passes_gradient_to_every_b_and_head_tensor() {
    let Some(fixtures) = fixtures_dir("fresh_lora_passes_gradient_to_every_b_and_head_tensor")
    else {
        return;
    };
    for family in FAMILIES {
        let dir = fixtures.join(family);
        let golden = Golden::open(&dir.join("golden.safetensors"));
        let model = build(&dir);
        let logits = model
            .forward(golden.get("input_ids"), golden.get("attention_mask"), true)
            .expect("forward");
        let grads = loss_of(&logits, &golden).backward().expect("backward");
        let mut lora_b = 0;
        for (name, var) in model.trainable_vars() {
            let b_is_zero = name.contains(".lora_B.");
            if b_is_zero {
                let values: Vec<f32> = var.flatten_all().and_then(|t| t.to_vec1()).expect("B");
                assert!(
                    values.iter().all(|v| *v == 0.0),
                    "{family}: {name} starts at 0"
                );
                lora_b += 1;
            }
            let grad = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{family}: no gradient reached {name}"));
            let norm: f32 = grad
                .sqr()
                .and_then(|g| g.sum_all())
                .and_then(|g| g.to_scalar())
                .expect("norm");
            if name.contains(".lora_A.") {
                // dL/dA = Bᵀ(...) and B = 0.
                assert_eq!(
                    norm, 0.0,
                    "{family}: {name} should get no gradient while B = 0"
                );
            } else {
                assert!(norm > 0.0, "{family}: {name} got a zero gradient");
            }
        }
        assert!(lora_b > 0, "{family}: no LoRA B tensor");
    }
}
