//! The model step driven through `egui_kittest` (no display): the catalog with its card, a
//! model folder on disk (good and bad), downloading while offline, and the fine-tuning
//! settings. The Hugging Face cache is a temporary folder, so the machine's own cache and
//! network never matter.
#![cfg(feature = "gui")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::model_ui::{ModelSource, OFFLINE_MESSAGE};
use dnatune::gui::{AppSettings, DnatuneApp};
use dnatune::model::config::Family;
use dnatune::model::hub::HubSettings;
use dnatune::train::{DeviceChoice, Precision, TrainConfig};
use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

const NT_V2_50M: &str = "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species";
const DNABERT_6: &str = "zhihan1996/DNA_bert_6";

/// The app on the model step, with an offline Hugging Face cache in `cache_dir`.
fn model_step(cache_dir: &Path, dialogs: ScriptedDialogs) -> Harness<'static, DnatuneApp> {
    let runs_dir = cache_dir.join("runs");
    let mut harness = Harness::builder()
        // Background results (file summaries, checks) can arrive mid-run and cost a few extra
        // layout frames before the UI settles.
        .with_max_steps(16)
        .with_size([1400.0, 1600.0])
        .build_eframe(move |cc| {
            let settings = AppSettings {
                runs_dir: Some(runs_dir),
                ..AppSettings::default()
            };
            DnatuneApp::with_parts(&cc.egui_ctx, settings, Vec::new(), Box::new(dialogs))
        });
    harness.state_mut().model.set_hub_settings(HubSettings {
        cache_dir: cache_dir.join("hub"),
        offline: true,
    });
    harness.run();
    harness.get_by_label("2 · Model").click();
    harness.run();
    harness
}

fn choose(harness: &mut Harness<'_, DnatuneApp>, display_name: &str) {
    harness
        .get_by_role_and_label(egui::Role::Button, display_name)
        .click();
    harness.run();
}

/// A complete snapshot as the Hugging Face cache lays it out (empty files suffice for the
/// cache check).
fn fake_cached_model(hub_dir: &Path, model_id: &str) {
    let repo = hub_dir.join(format!("models--{}", model_id.replace('/', "--")));
    let snapshot = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&snapshot).expect("snapshot folder");
    std::fs::create_dir_all(repo.join("refs")).expect("refs folder");
    std::fs::write(repo.join("refs").join("main"), "0123abcd").expect("refs/main");
    for file in ["config.json", "vocab.txt", "model.safetensors"] {
        std::fs::write(snapshot.join(file), "").expect("snapshot file");
    }
}

#[test]
fn a_catalog_entry_shows_its_card() {
    let tmp = tempfile::tempdir().expect("temp dir");
    fake_cached_model(&tmp.path().join("hub"), DNABERT_6);
    let mut harness = model_step(tmp.path(), ScriptedDialogs::default());

    choose(&mut harness, "NT v2 50M multi-species");
    let model = &harness.state().model;
    assert_eq!(
        model.settings.source,
        Some(ModelSource::Catalog(NT_V2_50M.into()))
    );
    assert_eq!(model.context(), Some((2048, Some(12_282))));
    harness.get_by_label("2,048 tokens ≈ 12,282 bp");
    harness.get_by_label("about 50M");
    harness.get_by_label("6-mer (non-overlapping)");
    harness.get_by_label("CC BY-NC-SA 4.0");
    harness.get_by_label_contains("Non-commercial licence");
    harness.get_by_label_contains("Not downloaded yet");

    // A model whose snapshot is in the cache: no download offered, no licence warning.
    choose(&mut harness, "DNABERT 6-mer");
    assert_eq!(harness.state().model.context(), Some((512, Some(515))));
    harness.get_by_label("512 tokens ≈ 515 bp");
    harness.get_by_label_contains("Downloaded: in the Hugging Face cache");
    assert!(harness.query_by_label("Download").is_none());
    assert!(harness
        .query_by_label_contains("Non-commercial licence")
        .is_none());
    assert_eq!(harness.state().model.model(), Ok(DNABERT_6.to_string()));
}

#[test]
fn a_local_model_folder_shows_its_family() {
    let Some(folder) = common::shared_path("fixtures/nt_v2/model") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dialogs = ScriptedDialogs {
        folders: [folder.clone()].into(),
        ..ScriptedDialogs::default()
    };
    let mut harness = model_step(tmp.path(), dialogs);
    harness.get_by_label("Use a local folder…").click();
    harness.run();

    let model = &harness.state().model;
    assert_eq!(
        model.settings.source,
        Some(ModelSource::Local(folder.clone()))
    );
    assert_eq!(model.family(), Some(Family::NucleotideTransformerV2));
    assert_eq!(model.model(), Ok(folder.display().to_string()));
    harness.get_by_label(&folder.display().to_string());
    // Once as a heading of the catalog list, once on the card.
    assert_eq!(
        harness
            .query_all_by_label("Nucleotide Transformer v2")
            .count(),
        2
    );
    harness.get_by_label("Layers");
    harness.get_by_label("Hidden size");
    // The fixture's config.json: 2 layers of width 32.
    harness.get_by_label("32");
    // The family's layers are offered for LoRA, the defaults ticked.
    for module in ["query", "key", "value", "intermediate.dense"] {
        harness.get_by_label(module);
    }
    assert_eq!(harness.state().model.settings.lora.targets, None);
}

#[test]
fn a_folder_without_config_json_is_refused_inline() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let empty = tmp.path().join("not-a-model");
    std::fs::create_dir_all(&empty).expect("folder");
    let dialogs = ScriptedDialogs {
        folders: [empty.clone()].into(),
        ..ScriptedDialogs::default()
    };
    let mut harness = model_step(tmp.path(), dialogs);
    harness.get_by_label("Use a local folder…").click();
    harness.run();

    harness.get_by_label_contains("is not a model folder: it has no config.json");
    let error = harness
        .state()
        .model
        .model()
        .expect_err("an empty folder is no model");
    assert!(error.contains("config.json"), "{error}");

    // The train step says what is wrong instead of starting.
    let mut cfg = TrainConfig::default();
    assert!(harness.state().model.apply(&mut cfg).is_err());

    // Still usable: a catalog model replaces the bad folder.
    choose(&mut harness, "DNABERT 6-mer");
    assert_eq!(harness.state().model.model(), Ok(DNABERT_6.to_string()));
    assert!(harness
        .query_by_label_contains("is not a model folder")
        .is_none());
}

#[test]
fn downloading_while_offline_says_so_and_the_app_stays_usable() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut harness = model_step(tmp.path(), ScriptedDialogs::default());
    choose(&mut harness, "NT v2 50M multi-species");
    harness.get_by_label("Download").click();
    harness.step();
    let start = Instant::now();
    while harness.state().model.is_downloading() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for the download to fail"
        );
        harness.step();
        std::thread::yield_now();
    }
    harness.run();

    assert!(OFFLINE_MESSAGE
        .contains("the model is not in the cache; connect to the internet or use a local folder"));
    harness.get_by_label(OFFLINE_MESSAGE);
    harness.get_by_label("(HF_HUB_OFFLINE is set)");
    // The selection stays and the button can be tried again.
    assert_eq!(
        harness.state().model.settings.source,
        Some(ModelSource::Catalog(NT_V2_50M.into()))
    );
    assert!(!harness
        .get_by_label("Download")
        .accesskit_node()
        .is_disabled());

    // Other models and settings still respond.
    choose(&mut harness, "DNABERT 6-mer");
    assert_eq!(harness.state().model.model(), Ok(DNABERT_6.to_string()));
    assert!(harness.query_by_label(OFFLINE_MESSAGE).is_none());
    harness
        .get_by_role_and_label(egui::Role::Slider, "LoRA rank")
        .set_value_accesskit(4.0);
    harness.run();
    assert_eq!(harness.state().model.settings.lora.rank, 4);
}

#[test]
fn fine_tuning_settings_follow_the_controls() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut harness = model_step(tmp.path(), ScriptedDialogs::default());
    assert_eq!(harness.state().model.settings.lora.rank, 8);

    harness
        .get_by_role_and_label(egui::Role::Slider, "LoRA rank")
        .set_value_accesskit(32.0);
    harness.run();
    assert_eq!(harness.state().model.settings.lora.rank, 32);
    // The slider stops at 64.
    harness
        .get_by_role_and_label(egui::Role::Slider, "LoRA rank")
        .set_value_accesskit(500.0);
    harness.run();
    assert_eq!(harness.state().model.settings.lora.rank, 64);

    harness.get_by_label("LoRA alpha").set_value_accesskit(64.0);
    harness.get_by_label("Epochs").set_value_accesskit(5.0);
    harness.get_by_label("Batch size").set_value_accesskit(8.0);
    harness.run();
    let settings = &harness.state().model.settings;
    assert_eq!(settings.lora.alpha, 64.0);
    assert_eq!(settings.epochs, 5);
    assert_eq!(settings.batch_size, 8);

    // DNABERT-2's layers: tick one more, untick the default, return to the default.
    choose(&mut harness, "DNABERT-2 117M");
    harness.get_by_label("wo").click();
    harness.run();
    assert_eq!(
        harness.state().model.settings.lora.targets,
        Some(vec!["Wqkv".to_string(), "wo".to_string()])
    );
    harness.get_by_label("Wqkv").click();
    harness.run();
    assert_eq!(
        harness.state().model.settings.lora.targets,
        Some(vec!["wo".to_string()])
    );
    // The last adapted layer cannot be unticked.
    harness.get_by_label("wo").click();
    harness.run();
    assert_eq!(
        harness.state().model.settings.lora.targets,
        Some(vec!["wo".to_string()])
    );
    harness.get_by_label("Use the family's default").click();
    harness.run();
    assert_eq!(harness.state().model.settings.lora.targets, None);

    // A shorter token limit than the model's 512.
    harness.get_by_label("the model's maximum (512)").click();
    harness.run();
    harness
        .get_by_label("Max tokens")
        .set_value_accesskit(256.0);
    harness.run();
    assert_eq!(harness.state().model.settings.max_length, Some(256));

    // Only devices this build has: the CPU here unless built with CUDA or Metal.
    harness.get_by_label("Device").click();
    harness.run();
    if !candle_core::utils::cuda_is_available() && !candle_core::utils::metal_is_available() {
        assert!(harness.query_by_label_contains("CUDA GPU").is_none());
        assert!(harness.query_by_label_contains("Metal").is_none());
    }
    harness.get_by_label("CPU").click();
    harness.run();
    assert_eq!(harness.state().model.settings.device, DeviceChoice::Cpu);

    // Half-precision frozen weights and the memory saver.
    harness.get_by_label("Precision").click();
    harness.run();
    harness.get_by_label("f16").click();
    harness.run();
    harness.get_by_label("Save memory").click();
    harness.run();

    // The run configuration gets all of it.
    let mut cfg = TrainConfig::default();
    harness
        .state()
        .model
        .apply(&mut cfg)
        .expect("a model is chosen");
    assert_eq!(cfg.model, "zhihan1996/DNABERT-2-117M");
    assert_eq!(cfg.lora.rank, 64);
    assert_eq!(cfg.max_length, Some(256));
    assert_eq!(cfg.device, DeviceChoice::Cpu);
    assert_eq!(cfg.precision, Precision::F16);
    assert!(cfg.gradient_checkpointing);
}
