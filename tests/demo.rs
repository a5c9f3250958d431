//! The bundled model and the offline demo: found where dnatune looks for its files, loadable
//! by every part of dnatune, `train --demo` runs and ends on its `test MCC:` line, the data set
//! is what its script makes from the Debian package, and "Try the demo" in the app fills the
//! three steps and starts the run.

mod common;

use std::path::PathBuf;
use std::process::Command;

use dnatune::bundled;
use dnatune::model::config::{Family, ModelConfig};
use dnatune::tokenize::Tokenizer;

const BIN: &str = env!("CARGO_BIN_EXE_dnatune");

#[test]
fn the_bundled_model_is_a_small_esm_with_the_nt_v2_vocabulary() {
    let dir = bundled::model_dir().expect("the bundled model is found");
    assert!(dir.ends_with("models/dnatune-mini"), "{}", dir.display());
    let config = ModelConfig::from_dir(&dir).expect("config.json");
    assert_eq!(config.family, Family::NucleotideTransformerV2);
    assert_eq!(config.json["position_embedding_type"], "rotary");
    // GELU (transformers' own ESM), not NT v2's SwiGLU remote code.
    assert!(config.json.get("auto_map").is_none());
    assert!(config.json.get("add_bias_fnn").is_none());
    let weights = std::fs::metadata(dir.join("model.safetensors")).expect("weights");
    assert!(weights.len() <= 10_000_000, "{} bytes", weights.len());

    let tokenizer = Tokenizer::from_model_dir(&dir).expect("tokenizer");
    let ids = tokenizer
        .encode("ACGTACGGGTTTN", None)
        .expect("encodes")
        .input_ids;
    // <cls>, two 6-mers, then N alone.
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[0], 3);

    // The catalog id resolves to the folder without the network or the cache.
    let settings = dnatune::model::hub::HubSettings {
        cache_dir: tempfile::tempdir().expect("temp dir").path().to_path_buf(),
        offline: true,
    };
    let resolved = dnatune::model::hub::resolve_model_with(bundled::MODEL_ID, &settings, |_| {})
        .expect("resolves offline");
    assert_eq!(resolved, dir);
}

#[test]
fn train_demo_fine_tunes_the_bundled_model_and_ends_on_the_test_mcc() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("demo-run");
    let output = Command::new(BIN)
        .args(["train", "--demo", "--max-steps", "6", "--out"])
        .arg(&out)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", tmp.path().join("no-cache"))
        .output()
        .expect("runs dnatune");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let value = last
        .strip_prefix("test MCC: ")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("last line {last:?}"));
    assert!((-1.0..=1.0).contains(&value));
    assert!(stderr.contains("models/dnatune-mini"), "{stderr}");
    // 1,214 windows, split 70/15/15 by gene: 91 test windows per class.
    assert!(stderr.contains("850 training inputs per epoch"), "{stderr}");
    for file in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "manifest.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let adapter: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("adapter/adapter_config.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(adapter["r"], 8);
    assert_eq!(adapter["target_modules"].as_array().map(Vec::len), Some(6));
}

#[test]
fn train_demo_refuses_data_options_and_takes_other_settings() {
    let output = Command::new(BIN)
        .args(["train", "--demo", "--class", "a=b.fa"])
        .output()
        .expect("runs dnatune");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("leave out --class"), "{stderr}");

    // A model given with --demo replaces the bundled one (here: a fixture, same family).
    let Some(model) = common::shared_path("fixtures/nt_v2/model") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let output = Command::new(BIN)
        .args([
            "train",
            "--demo",
            "--max-steps",
            "2",
            "--lora-rank",
            "2",
            "--model",
        ])
        .arg(&model)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .output()
        .expect("runs dnatune");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("from {}", model.display())),
        "{stderr}"
    );
    let adapter = std::fs::read_to_string(tmp.path().join("run/adapter/adapter_config.json"))
        .expect("adapter config");
    assert!(adapter.contains("\"r\": 2"), "{adapter}");
}

/// The committed demo files are exactly what `scripts/demo-data/build.py` makes from the
/// Debian package's ct.gbk.gz.
#[test]
fn the_demo_data_is_what_its_script_makes_from_the_debian_package() {
    let Some(gbk) = common::fetched_genbank("ct.gbk.gz") else {
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = Command::new("python3")
        .arg(root.join("scripts/demo-data/build.py"))
        .arg(&gbk)
        .arg("--out")
        .arg(tmp.path())
        .output();
    let output = match run {
        Ok(output) => output,
        Err(err) => {
            eprintln!("skipped: python3 cannot be run ({err})");
            return;
        }
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files = bundled::demo_files().expect("demo files");
    for (class, path) in files {
        let made = std::fs::read(tmp.path().join(path.file_name().expect("name"))).expect("made");
        let shipped = std::fs::read(&path).expect("shipped");
        assert!(
            made == shipped,
            "{class}: {} differs from the script's output",
            path.display()
        );
        let text = String::from_utf8(shipped).expect("text");
        assert_eq!(text.matches('>').count(), 607, "{class}");
    }
}

#[cfg(feature = "gui")]
#[test]
fn try_the_demo_fills_the_steps_and_starts_training() {
    use common::gui::{fresh_harness, step_until};
    use dnatune::gui::model_ui::ModelSource;
    use dnatune::gui::Step;
    use egui_kittest::kittest::Queryable;

    let tmp = tempfile::tempdir().expect("temp dir");
    let mut harness = fresh_harness(tmp.path().join("runs"));
    harness.run();
    harness.get_by_label("Try the demo").click();
    harness.step();
    {
        let app = harness.state();
        assert_eq!(app.data.demo_error, None);
        assert_eq!(app.step, Step::Train);
        let classes: Vec<&str> = app
            .data
            .settings
            .files
            .iter()
            .map(|f| f.class.as_str())
            .collect();
        assert_eq!(classes, ["coding", "noncoding"]);
        assert_eq!(
            app.model.settings.source,
            Some(ModelSource::Catalog(bundled::MODEL_ID.to_string()))
        );
        assert!(app.train.is_running());
    }
    step_until(&mut harness, "the first training steps", |h| {
        h.state().train.history.train_loss.len() >= 2 || h.state().train.error.is_some()
    });
    assert_eq!(harness.state().train.error, None);
    harness.get_by_label("Stop").click();
    harness.step();
    step_until(&mut harness, "the stopped run to end", |h| {
        !h.state().train.is_running()
    });
    assert_eq!(harness.state().train.error, None);
    // The demo's run is in the runs folder, and the data step shows its files.
    assert!(tmp.path().join("runs/run-001/dnatune.json").is_file());
    harness.get_by_label("1 · Data").click();
    harness.run();
    harness.get_by_label("Class of coding.fa");
}
