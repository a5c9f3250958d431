//! The Pretrain screen driven through `egui_kittest`: real phage genomes as the data step's
//! file, the NT v2 fixture as the model, a short continued-pretraining run with its live
//! curves, and its checkpoint chosen for fine-tuning.
#![cfg(feature = "gui")]

mod common;

use common::gui::{drop_files, harness, step_until};

use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::model_ui::ModelSource;
use dnatune::gui::{AppSettings, Step};
use egui_kittest::kittest::Queryable;

#[test]
fn pretrain_the_chosen_model_on_the_data_files_then_fine_tune_its_checkpoint() {
    let Some(model) = common::shared_path("fixtures/nt_v2/model") else {
        return;
    };
    let Some(genomes) =
        common::shared_path("data/genomes/phage/pharokka_hundred_microviruses.fasta")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dialogs = ScriptedDialogs {
        folders: [model].into(),
        ..ScriptedDialogs::default()
    };
    let settings = AppSettings {
        runs_dir: Some(tmp.path().join("runs")),
        ..AppSettings::default()
    };
    let mut harness = harness(settings, dialogs);
    harness.run();

    // Nothing to pretrain on yet.
    harness.get_by_label("Pretrain").click();
    harness.run();
    harness.get_by_label_contains("add sequence files first");

    drop_files(&mut harness, &[genomes]);
    harness.get_by_label("2 · Model").click();
    harness.run();
    harness.get_by_label("Use a local folder…").click();
    harness.run();

    harness.get_by_label("Pretrain").click();
    harness.run();
    {
        let settings = &mut harness.state_mut().pretrain.settings;
        settings.window_bp = 300;
        settings.steps = 4;
        settings.batch_size = 4;
        settings.eval_every = 2;
        settings.checkpoint_every = 2;
    }
    harness.get_by_label("Start pretraining").click();
    harness.step();
    assert!(harness.state().pretrain.is_running());
    step_until(&mut harness, "the pretraining run to finish", |h| {
        h.state().pretrain.summary.is_some() || h.state().pretrain.error.is_some()
    });
    let app = harness.state();
    assert_eq!(app.pretrain.error, None);
    let history = &app.pretrain.history;
    assert_eq!(history.train_loss.len(), 4);
    assert_eq!(history.val_loss.len(), 2);
    assert!(history.train_loss.iter().all(|[_, loss]| loss.is_finite()));
    let checkpoint = app
        .pretrain
        .summary
        .as_ref()
        .expect("summary")
        .checkpoint
        .clone();
    assert!(checkpoint.starts_with(tmp.path().join("runs/pretrain-001")));
    assert!(checkpoint.join("model.safetensors").is_file());

    harness.get_by_label("Fine-tune this checkpoint").click();
    harness.run();
    let app = harness.state();
    assert_eq!(app.step, Step::Model);
    assert_eq!(
        app.model.settings.source,
        Some(ModelSource::Local(checkpoint))
    );
    assert!(app.model.model().is_ok(), "{:?}", app.model.model());
}
