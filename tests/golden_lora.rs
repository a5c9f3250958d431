//! LoRA + classification head against the PEFT reference in `shared/fixtures/*/golden.*`:
//! loss and the gradient of every trainable tensor, for all five families; and a fresh LoRA
//! (B = 0) passes gradient to every B and head tensor after one backward pass.

mod golden;

use std::collections::BTreeSet;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use dnatune::model::classifier::{runtime_name_to_adapter_key, ClassifierSpec, SequenceClassifier};
use dnatune::model::lora::{LoraConfig, TargetModules};
use dnatune::train::step::batch_gradients;
use golden::{assert_close, fixtures_dir, on_cpu, test_device, Golden};

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
    build_with_dropout(family_dir, None)
}

/// The fixture's classifier; `dropout` replaces the fixture's LoRA dropout (0).
fn build_with_dropout(family_dir: &Path, dropout: Option<f64>) -> SequenceClassifier {
    let mut lora = fixture_lora(family_dir);
    if let Some(p) = dropout {
        lora.dropout = p;
    }
    let spec = ClassifierSpec {
        num_labels: 2,
        lora: Some(lora),
        train_pooler: false,
        seed: 7,
    };
    SequenceClassifier::load(&family_dir.join("model"), &spec, DType::F32, &test_device())
        .expect("classifier")
}

fn loss_of(logits: &Tensor, golden: &Golden) -> Tensor {
    let labels = golden
        .get("lora.labels")
        .to_dtype(DType::U32)
        .and_then(|l| l.to_device(logits.device()))
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
        // The reference ran in eval mode (dropout off).
        let logits = model
            .forward(golden.get("input_ids"), golden.get("attention_mask"), false)
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
        // Frozen base weights get no gradient at all (nothing computes or holds one).
        let mut encoder = model.encoder.clone();
        for linear in encoder.linears_mut() {
            assert!(
                grad_store.get(&linear.weight).is_none(),
                "{family}: the frozen {} received a gradient",
                linear.name
            );
        }
        let mut max_grad_diff = 0f32;
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
            let max_abs = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0f32, f32::max);
            max_grad_diff = max_grad_diff.max(max_abs);
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
        eprintln!(
            "{family}: {} gradients match, max |diff| = {max_grad_diff:.3e}",
            params.len()
        );
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

#[test]
fn missing_head_tensors_are_initialised_reported_and_trained() {
    let Some(fixtures) = fixtures_dir("missing_head_tensors_are_initialised_reported_and_trained")
    else {
        return;
    };
    // A DNABERT checkpoint without a pooler, as many Hub MaskedLM checkpoints are.
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
    tensors.retain(|name, _| !name.starts_with("bert.pooler."));
    candle_core::safetensors::save(&tensors, model_dir.path().join("model.safetensors"))
        .expect("write");

    let spec = ClassifierSpec {
        num_labels: 3,
        lora: Some(LoraConfig::for_family(
            dnatune::model::config::Family::Dnabert,
        )),
        train_pooler: false,
        seed: 11,
    };
    let build = || {
        SequenceClassifier::load(model_dir.path(), &spec, DType::F32, &test_device())
            .expect("classifier")
    };
    let model = build();
    let report = model.report();
    for name in [
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    ] {
        assert!(
            report.initialized.contains(&name.to_string()),
            "{name} should be reported as initialised: {:?}",
            report.initialized
        );
    }
    let names: Vec<String> = model.trainable_vars().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"base_model.model.bert.pooler.modules_to_save.default.dense.weight".into())
    );
    assert_eq!(model.modules_to_save(), vec!["pooler", "classifier"]);

    // The same seed gives the same initial model, so runs are reproducible.
    let again = build();
    let golden = Golden::open(&fixtures.join("dnabert1/golden.safetensors"));
    let first = model
        .forward(golden.get("input_ids"), golden.get("attention_mask"), false)
        .expect("forward");
    let second = again
        .forward(golden.get("input_ids"), golden.get("attention_mask"), false)
        .expect("forward");
    assert_eq!(first.dims(), [4, 3]);
    assert_close("same seed, same logits", &first, &second, 0.0);
}

#[test]
fn a_checkpoint_head_with_another_class_count_is_refused() {
    let Some(fixtures) = fixtures_dir("a_checkpoint_head_with_another_class_count_is_refused")
    else {
        return;
    };
    // An NT checkpoint that already holds a 2-class head, asked for 3 classes.
    let source = fixtures.join("nt_v2");
    let model_dir = tempfile::tempdir().expect("temp dir");
    for file in std::fs::read_dir(source.join("model")).expect("model dir") {
        let path = file.expect("entry").path();
        if path.file_name().is_some_and(|n| n != "model.safetensors") {
            std::fs::copy(&path, model_dir.path().join(path.file_name().unwrap())).expect("copy");
        }
    }
    let golden = Golden::open(&source.join("golden.safetensors"));
    let mut tensors =
        candle_core::safetensors::load(source.join("model/model.safetensors"), &Device::Cpu)
            .expect("read");
    for (name, tensor) in &golden.tensors {
        if let Some(head_name) = name.strip_prefix("cls2.head.") {
            tensors.insert(head_name.to_string(), tensor.clone());
        }
    }
    candle_core::safetensors::save(&tensors, model_dir.path().join("model.safetensors"))
        .expect("write");

    // With 2 classes the stored head is used: cls2 logits without any LoRA.
    let spec = ClassifierSpec {
        num_labels: 2,
        lora: None,
        train_pooler: false,
        seed: 1,
    };
    let model = SequenceClassifier::load(model_dir.path(), &spec, DType::F32, &test_device())
        .expect("classifier");
    assert!(model.report().initialized.is_empty());
    let logits = model
        .forward(golden.get("input_ids"), golden.get("attention_mask"), false)
        .expect("forward");
    assert_close(
        "nt_v2 cls2.logits from the checkpoint head",
        &logits,
        golden.get("cls2.logits"),
        1e-4,
    );

    let spec = ClassifierSpec {
        num_labels: 3,
        ..spec
    };
    let message = SequenceClassifier::load(model_dir.path(), &spec, DType::F32, &test_device())
        .unwrap_err()
        .to_string();
    eprintln!("{message}");
    assert!(
        message.contains("classifier.out_proj.weight")
            && message.contains("3 classes")
            && message.contains(&model_dir.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn runtime_names_map_to_the_adapter_file_keys_peft_writes() {
    let Some(fixtures) = fixtures_dir("runtime_names_map_to_the_adapter_file_keys_peft_writes")
    else {
        return;
    };
    for family in FAMILIES {
        let path = fixtures.join(family).join("golden.json");
        let text = std::fs::read_to_string(&path).expect("golden.json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        let mapping = json["lora"]["runtime_name_to_adapter_key"]
            .as_object()
            .expect("runtime_name_to_adapter_key");
        assert!(!mapping.is_empty());
        for (runtime, key) in mapping {
            assert_eq!(
                runtime_name_to_adapter_key(runtime),
                key.as_str().expect("key"),
                "{family}"
            );
        }
    }
}

#[test]
fn training_mode_applies_head_dropout_and_eval_mode_is_deterministic() {
    let Some(fixtures) =
        fixtures_dir("training_mode_applies_head_dropout_and_eval_mode_is_deterministic")
    else {
        return;
    };
    let dir = fixtures.join("dnabert2"); // hidden_dropout_prob 0.1, classifier_dropout null
    let golden = Golden::open(&dir.join("golden.safetensors"));
    let model = build(&dir);
    assert_eq!(model.head_dropout, 0.1);
    let run = |train| {
        model
            .forward(golden.get("input_ids"), golden.get("attention_mask"), train)
            .expect("forward")
    };
    let eval = run(false);
    assert_close("eval twice", &run(false), &eval, 0.0);
    let diff = golden::max_abs_diff(&run(true), &eval);
    assert!(
        diff > 1e-4,
        "dropout had no effect in training mode ({diff:.3e})"
    );
    assert_close("eval after training mode", &run(false), &eval, 0.0);
}

#[test]
fn a_few_optimizer_steps_lower_the_loss_and_leave_base_weights_alone() {
    use candle_nn::Optimizer;
    let Some(fixtures) =
        fixtures_dir("a_few_optimizer_steps_lower_the_loss_and_leave_base_weights_alone")
    else {
        return;
    };
    let dir = fixtures.join("nt_v2");
    let golden = Golden::open(&dir.join("golden.safetensors"));
    let model = build(&dir);
    let mut encoder = model.encoder.clone();
    let base_before: Vec<Tensor> = encoder
        .linears_mut()
        .iter()
        .map(|l| l.weight.copy().expect("copy"))
        .collect();
    let vars = model.trainable_vars().into_iter().map(|(_, v)| v).collect();
    let mut optimizer = candle_nn::AdamW::new(
        vars,
        candle_nn::ParamsAdamW {
            lr: 1e-2,
            ..Default::default()
        },
    )
    .expect("optimizer");
    let loss_now = || {
        let logits = model
            .forward(golden.get("input_ids"), golden.get("attention_mask"), false)
            .expect("forward");
        loss_of(&logits, &golden)
    };
    let first: f32 = loss_now().to_scalar().expect("loss");
    for _ in 0..5 {
        optimizer.backward_step(&loss_now()).expect("step");
    }
    let last: f32 = loss_now().to_scalar().expect("loss");
    assert!(last < first, "loss went from {first} to {last}");
    for (linear, before) in encoder.linears_mut().iter().zip(&base_before) {
        assert_close(&linear.name, &linear.weight, before, 0.0);
    }
    // LoRA B left zero: the updates reached the adapters.
    let b_moved = model
        .trainable_vars()
        .iter()
        .filter(|(name, _)| name.contains(".lora_B."))
        .all(|(_, var)| {
            var.abs()
                .and_then(|t| t.sum_all())
                .and_then(|t| t.to_scalar::<f32>())
                .expect("sum")
                > 0.0
        });
    assert!(b_moved, "some LoRA B stayed zero after training");
}

/// The golden classifier with PEFT's reference LoRA and head values loaded (B ≠ 0, so every
/// adapter changes the output).
fn with_reference_parameters(model: &SequenceClassifier, golden: &Golden) {
    for (name, _) in model.trainable_vars() {
        model
            .set_trainable(&name, golden.get(&format!("lora.param.{name}")))
            .expect("set parameter");
    }
}

/// Largest |a − b| relative to the largest |b| over a list of gradient tensors.
fn relative_grad_diff(ours: &[Tensor], reference: &[Tensor]) -> f32 {
    let mut worst_abs = 0f32;
    let mut scale = 0f32;
    for (a, b) in ours.iter().zip(reference) {
        let a: Vec<f32> = on_cpu(a)
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("grad");
        let b: Vec<f32> = on_cpu(b)
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("grad");
        for (x, y) in a.iter().zip(&b) {
            worst_abs = worst_abs.max((x - y).abs());
            scale = scale.max(y.abs());
        }
    }
    worst_abs / scale.max(1e-12)
}

fn golden_batch_gradients(
    model: &SequenceClassifier,
    golden: &Golden,
    checkpointing: bool,
) -> (Vec<Tensor>, f32) {
    let labels: Vec<u32> = golden
        .get("lora.labels")
        .to_dtype(DType::U32)
        .and_then(|l| l.to_vec1())
        .expect("labels");
    let weights = vec![1.0 / labels.len() as f32; labels.len()];
    let (grads, loss) = batch_gradients(
        model,
        &model.trainable_vars(),
        golden.get("input_ids"),
        golden.get("attention_mask"),
        &labels,
        &weights,
        checkpointing,
    )
    .expect("gradients");
    (grads, loss.to_scalar::<f32>().expect("loss"))
}

/// Gradient checkpointing recomputes each layer in the backward pass: the loss and every
/// gradient must be those of the plain backward pass, dropout masks included.
#[test]
fn gradient_checkpointing_gives_the_same_loss_and_gradients_for_all_families() {
    let Some(fixtures) =
        fixtures_dir("gradient_checkpointing_gives_the_same_loss_and_gradients_for_all_families")
    else {
        return;
    };
    for family in FAMILIES {
        let dir = fixtures.join(family);
        let golden = Golden::open(&dir.join("golden.safetensors"));
        // Dropout on, so that the recomputed layers must replay the first pass's masks.
        let model = build_with_dropout(&dir, Some(0.2));
        with_reference_parameters(&model, &golden);
        let start = model.lora_mode().rng_state();
        let (plain, plain_loss) = golden_batch_gradients(&model, &golden, false);
        let after_plain = model.lora_mode().rng_state();
        model.lora_mode().set_rng_state(start);
        let (checkpointed, checkpointed_loss) = golden_batch_gradients(&model, &golden, true);
        let diff = relative_grad_diff(&checkpointed, &plain);
        eprintln!("{family}: checkpointed vs plain gradients, max relative diff {diff:.2e}");
        assert!(
            (plain_loss - checkpointed_loss).abs() < 1e-6,
            "{family}: losses differ"
        );
        assert!(
            diff < 1e-5,
            "{family}: checkpointed gradients differ by {diff:.2e}"
        );
        assert!(
            plain.iter().all(|g| on_cpu(g)
                .abs()
                .and_then(|a| a.sum_all())
                .and_then(|s| s.to_scalar::<f32>())
                .expect("sum")
                > 0.0),
            "{family}: a gradient is all zero"
        );
        // The next batch draws the same dropout masks either way.
        assert_eq!(
            model.lora_mode().rng_state().next_u64(),
            after_plain.clone().next_u64(),
            "{family}: checkpointing changed the dropout sequence"
        );
        // And with dropout the masks matter: a different draw gives other gradients.
        let (other, _) = golden_batch_gradients(&model, &golden, true);
        assert!(
            relative_grad_diff(&other, &plain) > 1e-3,
            "{family}: dropout had no effect"
        );
    }
}

/// Frozen base weights in half precision (f16 here; bf16 too on a CUDA GPU of compute
/// capability ≥ 8.0 via DNATUNE_TEST_DEVICE): logits, loss and gradients within the
/// tolerances the README documents of the f32 reference values.
#[test]
fn half_precision_frozen_weights_stay_within_the_documented_tolerance() {
    let Some(fixtures) =
        fixtures_dir("half_precision_frozen_weights_stay_within_the_documented_tolerance")
    else {
        return;
    };
    let device = test_device();
    let mut dtypes = vec![DType::F16];
    if dnatune::device::compute_capability(&device).is_some_and(|(major, _)| major >= 8) {
        dtypes.push(DType::BF16);
    }
    for family in FAMILIES {
        let dir = fixtures.join(family);
        let golden = Golden::open(&dir.join("golden.safetensors"));
        let reference = build(&dir);
        with_reference_parameters(&reference, &golden);
        let (reference_grads, reference_loss) = golden_batch_gradients(&reference, &golden, false);
        for &dtype in &dtypes {
            let mut model = build(&dir);
            with_reference_parameters(&model, &golden);
            model.store_frozen_weights_as(dtype).expect("convert");
            let logits = model
                .forward(golden.get("input_ids"), golden.get("attention_mask"), false)
                .expect("forward");
            assert_eq!(logits.dtype(), DType::F32, "activations stay f32");
            let logits_diff = golden::max_abs_diff(&logits, golden.get("lora.logits"));
            let (grads, loss) = golden_batch_gradients(&model, &golden, false);
            let grad_diff = relative_grad_diff(&grads, &reference_grads);
            eprintln!(
                "{family} {dtype:?}: logits max |diff| {logits_diff:.2e}, loss diff {:.2e}, \
                 gradients max relative diff {grad_diff:.2e}",
                (loss - reference_loss).abs()
            );
            let (logits_tol, grad_tol) = match dtype {
                DType::BF16 => (BF16_LOGITS_TOLERANCE, BF16_GRADIENT_TOLERANCE),
                _ => (F16_LOGITS_TOLERANCE, F16_GRADIENT_TOLERANCE),
            };
            assert!(
                logits_diff <= logits_tol,
                "{family} {dtype:?}: logits off by {logits_diff:.2e}"
            );
            assert!(
                grad_diff <= grad_tol,
                "{family} {dtype:?}: gradients off by {grad_diff:.2e}"
            );
        }
    }
}

// The tolerances the README's "GPU and precision" section documents.
const F16_LOGITS_TOLERANCE: f32 = 1e-2;
const F16_GRADIENT_TOLERANCE: f32 = 2e-2;
const BF16_LOGITS_TOLERANCE: f32 = 8e-2;
const BF16_GRADIENT_TOLERANCE: f32 = 1e-1;
