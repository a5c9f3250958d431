//! The desktop app driven through `egui_kittest` (no display): drop two real FASTA files,
//! name their classes, choose a fixture model folder, train briefly on the CPU, watch the
//! plots fill, and export the adapter. Every control is found by its accessible label.
#![cfg(feature = "gui")]

mod common;

use common::gui::{drop_files, fresh_harness, harness, step_until};

use dnatune::gui::data_ui::DataSettings;
use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::model_ui::ModelSettings;
use dnatune::gui::AppSettings;
use eframe::egui;
use egui_kittest::kittest::Queryable;

#[test]
fn drop_label_train_and_export_through_the_app() {
    let Some(model) = common::shared_path("fixtures/dnabert1/model") else {
        return;
    };
    let Some(data) = common::shared_path("data/promoters_cnnprom") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let export = tmp.path().join("exported");
    let predictions = tmp.path().join("predictions.csv");
    let dialogs = ScriptedDialogs {
        folders: [model.clone()].into(),
        saves: [export.clone(), predictions.clone()].into(),
        files: [vec![data.join("Bacillus_prom.fa.gz")]].into(),
        ..ScriptedDialogs::default()
    };
    let settings = AppSettings {
        data: DataSettings::default(),
        model: ModelSettings {
            epochs: 1,
            learning_rate: 2e-3,
            ..ModelSettings::default()
        },
        runs_dir: Some(tmp.path().join("runs")),
    };
    let mut harness = harness(settings, dialogs);
    harness.run();

    // 1. Drop the two class files anywhere on the window.
    drop_files(
        &mut harness,
        &[
            data.join("Bacillus_prom.fa.gz"),
            data.join("Bacillus_non_prom.fa.gz"),
        ],
    );
    let files = &harness.state().data.settings.files;
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].class, "Bacillus_prom");

    // Rename the first class by typing into its field.
    let field = harness.get_by_label("Class of Bacillus_prom.fa.gz");
    field.focus();
    harness.run();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness
        .get_by_label("Class of Bacillus_prom.fa.gz")
        .type_text("promoter");
    harness.run();
    assert_eq!(harness.state().data.settings.files[0].class, "promoter");

    // 2. A model folder on disk (the dialog is scripted).
    harness.get_by_label("2 · Model").click();
    harness.run();
    harness.get_by_label("Use a local folder…").click();
    harness.run();
    assert!(harness.state().model.model().is_ok());

    // 3. Train on the CPU until the run finishes.
    harness.get_by_label("3 · Train").click();
    harness.run();
    harness.get_by_label("Start training").click();
    harness.step();
    step_until(&mut harness, "the training run to finish", |h| {
        let app = h.state();
        app.train.summary.is_some() || app.train.error.is_some()
    });
    let app = harness.state();
    assert_eq!(app.train.error, None);
    let history = &app.train.history;
    assert!(
        history.train_loss.len() > 10,
        "{} loss points",
        history.train_loss.len()
    );
    assert!(!history.val_mcc.is_empty() && !history.val_f1.is_empty());
    assert!(history.test.is_some());
    assert_eq!(history.classes, ["promoter", "Bacillus_non_prom"]);

    // 4. Export the adapter (the save dialog is scripted).
    harness.get_by_label("Export adapter…").click();
    harness.run();
    for file in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "dnatune.json",
        "README.md",
    ] {
        assert!(export.join(file).is_file(), "{file} was not exported");
    }
    harness.get_by_label_contains("Adapter exported to");

    // 5. Results: metrics, confusion matrix, and prediction on a FASTA file.
    harness.get_by_label("4 · Results").click();
    harness.run();
    harness.get_by_label("Metrics of the best checkpoint");
    harness.get_by_label("Confusion matrix (test records)");
    harness.get_by_label_contains("ROC curve");
    harness.get_by_label("Predict on FASTA…").click();
    harness.step();
    step_until(&mut harness, "the prediction", |h| {
        let app = h.state();
        app.results.predictions.is_some() || app.results.predict_error.is_some()
    });
    assert_eq!(harness.state().results.predict_error, None);
    harness.get_by_label("373 records predicted");
    harness.get_by_label("Save CSV…").click();
    harness.run();
    let csv = std::fs::read_to_string(&predictions).expect("predictions CSV");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,prob_promoter,prob_Bacillus_non_prom,predicted_label,n_windows")
    );
    assert_eq!(lines.count(), 373);
}

#[test]
fn train_is_disabled_until_data_and_model_are_chosen() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut harness = fresh_harness(tmp.path().join("runs"));
    harness.run();
    harness.get_by_label("3 · Train").click();
    harness.run();
    harness.get_by_label_contains("add sequence files first");
    // Clicking the disabled button starts nothing.
    harness.get_by_label("Start training").click();
    harness.run();
    assert!(!harness.state().train.is_running());
    assert!(harness.state().train.summary.is_none());
}
