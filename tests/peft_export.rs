//! Exporting classifiers: PEFT adapters with the file layout of the genuine adapters in
//! `shared/fixtures/*/peft_adapter/`, that import back to the same logits; merged models that
//! load without LoRA and give the same logits; and the errors of bad output folders.
//!
//! With `DNATUNE_EXPORT_DIR` set, `inputs_for_the_python_check` also leaves, per case,
//! `<dir>/<case>/adapter/`, `<dir>/<case>/merged/` and `<dir>/<case>/expected_logits.safetensors`
//! (`logits`, `input_ids`, `attention_mask`) for `python/check_peft_adapter.py`.

mod golden;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use dnatune::adapter::{load_peft_classifier, write_merged_model, write_peft_adapter, ExportError};
use dnatune::model::classifier::{ClassifierSpec, SequenceClassifier};
use dnatune::model::lora::{LoraConfig, SeededRng, TargetModules};
use golden::{assert_close, fixtures_dir, Golden};

const FAMILIES: [&str; 5] = ["dnabert1", "dnabert2", "nt_v1", "nt_v2", "gena_lm"];

/// One export scenario: a fixture family with a LoRA setup.
struct Case {
    name: &'static str,
    family: &'static str,
    lora: LoraConfig,
    train_pooler: bool,
}

/// The LoRA settings of the fixture's genuine adapter (`golden.json → lora`): r 4, alpha 8.
fn fixture_lora(family_dir: &Path) -> LoraConfig {
    let text = std::fs::read_to_string(family_dir.join("golden.json")).expect("golden.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("golden.json is JSON");
    let lora = &json["lora"];
    let targets = lora["target_modules"]
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

/// Every family with the fixture's LoRA settings, plus DNABERT with rsLoRA, another rank,
/// dropout, three targets and a trained pooler (PEFT `modules_to_save` "pooler").
fn cases(fixtures: &Path) -> Vec<Case> {
    let mut cases: Vec<Case> = FAMILIES
        .iter()
        .map(|&family| Case {
            name: family,
            family,
            lora: fixture_lora(&fixtures.join(family)),
            train_pooler: false,
        })
        .collect();
    cases.push(Case {
        name: "dnabert1_rslora_pooler",
        family: "dnabert1",
        lora: LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: TargetModules::Names(vec!["query".into(), "key".into(), "value".into()]),
            use_rslora: true,
            seed: 3,
        },
        train_pooler: true,
    });
    cases
}

fn build(model_dir: &Path, case: &Case) -> SequenceClassifier {
    let spec = ClassifierSpec {
        num_labels: 2,
        lora: Some(case.lora.clone()),
        train_pooler: case.train_pooler,
        seed: 7,
    };
    SequenceClassifier::load(model_dir, &spec, DType::F32, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

/// Sets every LoRA and head tensor to seeded N(0, 0.2²) values, so that no B is zero and a
/// wrong key, transpose or scaling would change the logits.
fn randomise(model: &SequenceClassifier, seed: u64) {
    let mut rng = SeededRng::new(seed);
    for (name, var) in model.trainable_vars() {
        let value = rng
            .normal(var.dims(), 0.2, DType::F32, &Device::Cpu)
            .expect("random values");
        model.set_trainable(&name, &value).expect("set parameter");
    }
}

fn logits_of(model: &SequenceClassifier, golden: &Golden) -> Tensor {
    model
        .forward(golden.get("input_ids"), golden.get("attention_mask"), false)
        .expect("forward")
}

/// A classifier of `case` with random trained values, its golden inputs and its logits.
fn trained(fixtures: &Path, case: &Case, seed: u64) -> (SequenceClassifier, Golden, Tensor) {
    let dir = fixtures.join(case.family);
    let model = build(&dir.join("model"), case);
    randomise(&model, seed);
    let golden = Golden::open(&dir.join("golden.safetensors"));
    let logits = logits_of(&model, &golden);
    (model, golden, logits)
}

fn write_adapter(model: &SequenceClassifier, dir: &Path) -> Result<(), ExportError> {
    let base = model.dir.canonicalize().expect("base model folder");
    write_peft_adapter(model, &base.display().to_string(), None, dir)
}

/// What a safetensors file holds, without the values.
struct SafetensorsLayout {
    /// Tensor name -> (dtype, shape).
    tensors: BTreeMap<String, (String, Vec<usize>)>,
    metadata: Option<HashMap<String, String>>,
}

fn safetensors_layout(path: &Path) -> SafetensorsLayout {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, (format!("{:?}", view.dtype()), view.shape().to_vec())))
        .collect();
    SafetensorsLayout {
        tensors,
        metadata: metadata.metadata().clone(),
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// Files and folders of `dir` whose names start with a dot (temporary files of an export).
fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with('.'))
        .collect()
}

#[test]
fn adapter_files_have_the_layout_peft_writes_for_every_family() {
    let Some(fixtures) = fixtures_dir("adapter_files_have_the_layout_peft_writes_for_every_family")
    else {
        return;
    };
    for family in FAMILIES {
        let case = Case {
            name: family,
            family,
            lora: fixture_lora(&fixtures.join(family)),
            train_pooler: false,
        };
        let model = build(&fixtures.join(family).join("model"), &case);
        let out = tempfile::tempdir().expect("temp dir");
        write_peft_adapter(&model, "../model", None, out.path())
            .unwrap_or_else(|e| panic!("{family}: {e}"));

        let genuine = fixtures.join(family).join("peft_adapter");
        let ours = safetensors_layout(&out.path().join("adapter_model.safetensors"));
        let theirs = safetensors_layout(&genuine.join("adapter_model.safetensors"));
        assert_eq!(
            ours.tensors, theirs.tensors,
            "{family}: tensor names, dtypes or shapes differ from PEFT's"
        );
        assert_eq!(
            ours.metadata, theirs.metadata,
            "{family}: safetensors metadata"
        );

        // Every key we write is one PEFT writes, with the same value; PEFT adds "score" to
        // modules_to_save itself for SEQ_CLS.
        let our_config = read_json(&out.path().join("adapter_config.json"));
        let their_config = read_json(&genuine.join("adapter_config.json"));
        for (key, value) in our_config.as_object().expect("object") {
            let theirs = their_config
                .get(key)
                .unwrap_or_else(|| panic!("{family}: PEFT writes no key {key}"));
            if key == "modules_to_save" {
                assert_eq!(value, &serde_json::json!(["classifier"]), "{family}");
            } else {
                assert_eq!(value, theirs, "{family}: adapter_config.json {key}");
            }
        }
        for key in [
            "r",
            "lora_alpha",
            "target_modules",
            "peft_type",
            "task_type",
            "revision",
        ] {
            assert!(our_config.get(key).is_some(), "{family}: {key} missing");
        }
        assert!(
            hidden_entries(out.path()).is_empty(),
            "{family}: temporary files left"
        );
    }
}

#[test]
fn an_exported_adapter_imports_to_the_same_logits() {
    let Some(fixtures) = fixtures_dir("an_exported_adapter_imports_to_the_same_logits") else {
        return;
    };
    for (index, case) in cases(&fixtures).iter().enumerate() {
        let (model, golden, expected) = trained(&fixtures, case, 100 + index as u64);
        let out = tempfile::tempdir().expect("temp dir");
        let adapter_dir = out.path().join("adapter");
        write_adapter(&model, &adapter_dir).unwrap_or_else(|e| panic!("{}: {e}", case.name));

        // The base model comes from base_model_name_or_path, as it would for a user.
        let imported = load_peft_classifier(&adapter_dir, None, DType::F32, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            imported.modules_to_save(),
            model.modules_to_save(),
            "{}",
            case.name
        );
        let (lora, modules) = imported.lora().expect("LoRA");
        assert_eq!(lora.scaling(), case.lora.scaling(), "{}", case.name);
        assert_eq!(modules, model.lora().expect("LoRA").1, "{}", case.name);
        assert_close(
            &format!("{} logits after export and import", case.name),
            &logits_of(&imported, &golden),
            &expected,
            1e-5,
        );
    }
}

#[test]
fn exporting_again_replaces_the_adapter_and_keeps_other_files() {
    let Some(fixtures) = fixtures_dir("exporting_again_replaces_the_adapter_and_keeps_other_files")
    else {
        return;
    };
    let case = &cases(&fixtures)[0];
    let out = tempfile::tempdir().expect("temp dir");
    std::fs::write(out.path().join("labels.json"), "[\"neg\", \"pos\"]").expect("write");

    let (first, _, _) = trained(&fixtures, case, 1);
    write_adapter(&first, out.path()).expect("first export");
    let (second, golden, expected) = trained(&fixtures, case, 2);
    write_adapter(&second, out.path()).expect("second export");

    let imported =
        load_peft_classifier(out.path(), None, DType::F32, &Device::Cpu).expect("import");
    assert_close(
        "logits of the second export",
        &logits_of(&imported, &golden),
        &expected,
        1e-5,
    );
    assert!(
        out.path().join("labels.json").is_file(),
        "other files are kept"
    );
    assert!(
        hidden_entries(out.path()).is_empty(),
        "temporary files left"
    );
}

#[test]
fn a_merged_model_loads_without_lora_and_gives_the_same_logits() {
    let Some(fixtures) =
        fixtures_dir("a_merged_model_loads_without_lora_and_gives_the_same_logits")
    else {
        return;
    };
    let labels = vec!["non-promoter".to_string(), "promoter".to_string()];
    for (index, case) in cases(&fixtures).iter().enumerate() {
        let (model, golden, expected) = trained(&fixtures, case, 200 + index as u64);
        let out = tempfile::tempdir().expect("temp dir");
        write_merged_model(&model, &labels, out.path())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));

        let spec = ClassifierSpec {
            num_labels: 2,
            lora: None,
            train_pooler: false,
            seed: 0,
        };
        let merged = SequenceClassifier::load(out.path(), &spec, DType::F32, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(merged.family, model.family, "{}", case.name);
        assert!(
            merged.report().initialized.is_empty(),
            "{}: the merged checkpoint lacks {:?}",
            case.name,
            merged.report().initialized
        );
        assert_close(
            &format!("{} merged logits", case.name),
            &logits_of(&merged, &golden),
            &expected,
            1e-4,
        );

        let config = read_json(&out.path().join("config.json"));
        let class = if case.family.starts_with("nt_") {
            "EsmForSequenceClassification"
        } else {
            "BertForSequenceClassification"
        };
        assert_eq!(
            config["architectures"],
            serde_json::json!([class]),
            "{}",
            case.name
        );
        assert_eq!(config["num_labels"], 2, "{}", case.name);
        assert_eq!(config["id2label"]["1"], "promoter", "{}", case.name);
        assert_eq!(config["label2id"]["non-promoter"], 0, "{}", case.name);
        assert!(config["model_type"].is_string(), "{}", case.name);
        if let Some(auto_map) = config.get("auto_map") {
            assert!(
                auto_map["AutoModelForSequenceClassification"]
                    .as_str()
                    .is_some_and(|path| path.ends_with(class)),
                "{}: {auto_map}",
                case.name
            );
        }

        let SafetensorsLayout {
            tensors: layout,
            metadata,
        } = safetensors_layout(&out.path().join("model.safetensors"));
        assert_eq!(
            metadata.and_then(|m| m.get("format").cloned()).as_deref(),
            Some("pt"),
            "{}",
            case.name
        );
        assert!(
            !layout
                .keys()
                .any(|name| name.starts_with("cls.") || name.starts_with("lm_head.")),
            "{}: MLM head tensors were kept",
            case.name
        );
        assert!(
            layout.contains_key("classifier.weight")
                || layout.contains_key("classifier.out_proj.weight")
        );
        if case.family.starts_with("nt_") {
            // EsmForSequenceClassification keeps the contact head of EsmModel.
            assert!(layout.contains_key("esm.contact_head.regression.weight"));
        }
        for file in ["tokenizer.json", "vocab.txt", "tokenizer_config.json"] {
            let in_base = fixtures
                .join(case.family)
                .join("model")
                .join(file)
                .is_file();
            assert_eq!(
                out.path().join(file).is_file(),
                in_base,
                "{}: {file}",
                case.name
            );
        }
        assert!(
            hidden_entries(out.path()).is_empty(),
            "{}: temporary files left",
            case.name
        );
    }
}

#[test]
fn bad_output_folders_and_inputs_are_refused_with_clear_errors() {
    let Some(fixtures) =
        fixtures_dir("bad_output_folders_and_inputs_are_refused_with_clear_errors")
    else {
        return;
    };
    let case = &cases(&fixtures)[0];
    let (model, _, _) = trained(&fixtures, case, 5);
    let out = tempfile::tempdir().expect("temp dir");

    // A file where the output folder should be.
    let file = out.path().join("adapter");
    std::fs::write(&file, "not a folder").expect("write");
    let err = write_adapter(&model, &file).unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(matches!(err, ExportError::NotAFolder { .. }), "{err:?}");
    assert!(
        message.contains(&file.display().to_string()) && message.contains("not a folder"),
        "{message}"
    );
    let err = write_merged_model(&model, &["a".into(), "b".into()], &file).unwrap_err();
    assert!(matches!(err, ExportError::NotAFolder { .. }), "{err:?}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "not a folder"
    );

    // A folder inside a file cannot be created; the error names it.
    let nested = file.join("adapter");
    let message = write_adapter(&model, &nested).unwrap_err().to_string();
    eprintln!("{message}");
    assert!(message.contains(&nested.display().to_string()), "{message}");

    // Labels must name each class once.
    let merged_dir = out.path().join("merged");
    let err = write_merged_model(&model, &["only one".into()], &merged_dir).unwrap_err();
    eprintln!("{err}");
    assert!(
        matches!(
            err,
            ExportError::LabelCount {
                given: 1,
                expected: 2
            }
        ),
        "{err:?}"
    );
    let err = write_merged_model(&model, &["same".into(), "same".into()], &merged_dir).unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().contains("\"same\""), "{err}");
    assert!(!merged_dir.exists(), "nothing is written for refused input");

    // Without LoRA there is no adapter to write.
    let head_only = SequenceClassifier::load(
        &fixtures.join(case.family).join("model"),
        &ClassifierSpec {
            num_labels: 2,
            lora: None,
            train_pooler: false,
            seed: 0,
        },
        DType::F32,
        &Device::Cpu,
    )
    .expect("classifier");
    let err = write_adapter(&head_only, &out.path().join("head_only")).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, ExportError::NoLora), "{err:?}");

    // Never over the base checkpoint (a copy of it here).
    let base_copy = out.path().join("base");
    std::fs::create_dir(&base_copy).expect("mkdir");
    for entry in std::fs::read_dir(fixtures.join(case.family).join("model")).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), base_copy.join(entry.file_name())).expect("copy");
    }
    let from_copy = build(&base_copy, case);
    let err = write_merged_model(&from_copy, &["a".into(), "b".into()], &base_copy).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, ExportError::IntoBaseModel { .. }), "{err:?}");
}

#[test]
fn inputs_for_the_python_check() {
    let Some(export_dir) = std::env::var_os("DNATUNE_EXPORT_DIR").map(PathBuf::from) else {
        eprintln!(
            "skipped: set DNATUNE_EXPORT_DIR to a folder to write adapters and expected logits \
             for python/check_peft_adapter.py"
        );
        return;
    };
    let Some(fixtures) = fixtures_dir("inputs_for_the_python_check") else {
        return;
    };
    let labels = vec!["negative".to_string(), "positive".to_string()];
    for (index, case) in cases(&fixtures).iter().enumerate() {
        let (model, golden, logits) = trained(&fixtures, case, 300 + index as u64);
        let case_dir = export_dir.join(case.name);
        write_adapter(&model, &case_dir.join("adapter")).expect("adapter");
        write_merged_model(&model, &labels, &case_dir.join("merged")).expect("merged model");
        let expected = [
            ("logits", logits),
            ("input_ids", golden.get("input_ids").clone()),
            ("attention_mask", golden.get("attention_mask").clone()),
        ];
        candle_core::safetensors::save(
            &expected.into_iter().collect(),
            case_dir.join("expected_logits.safetensors"),
        )
        .expect("expected logits");
        eprintln!("wrote {}", case_dir.display());
    }
}
