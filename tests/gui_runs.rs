//! The runs step driven through `egui_kittest` (no display): two real (short) runs written by
//! the library into a runs folder are listed with their metrics, one is reopened into the train
//! step, renamed, compared with the other, and the other deleted after a confirmation.
#![cfg(feature = "gui")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dnatune::adapter::bundle::RunBundle;
use dnatune::data::{ClassInput, LoadOptions};
use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::{AppSettings, DnatuneApp, Step};
use dnatune::train::{train, Cancel, DeviceChoice, TrainConfig};
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn harness(runs_dir: PathBuf) -> Harness<'static, DnatuneApp> {
    let settings = AppSettings {
        runs_dir: Some(runs_dir),
        ..AppSettings::default()
    };
    Harness::builder()
        // Background results (file summaries, checks) can arrive mid-run and cost a few extra
        // layout frames before the UI settles.
        .with_max_steps(16)
        .with_size([1400.0, 1000.0])
        .build_eframe(move |cc| {
            let mut app = DnatuneApp::with_parts(
                &cc.egui_ctx,
                settings,
                Vec::new(),
                Box::new(ScriptedDialogs::default()),
            );
            // No wall-clock values on screen: what is shown depends on the runs alone.
            app.runs.show_dates_and_paths = false;
            app
        })
}

/// A four-step CPU run of the DNABERT fixture on the B. subtilis promoter sets.
fn short_config(model: &Path, data: &Path, out_dir: PathBuf, learning_rate: f64) -> TrainConfig {
    let class = |name: &str, file: &str| ClassInput {
        class: Some(name.to_string()),
        path: data.join(file).display().to_string(),
    };
    TrainConfig {
        model: model.display().to_string(),
        data: LoadOptions {
            class_inputs: vec![
                class("promoter", "Bacillus_prom.fa.gz"),
                class("non_promoter", "Bacillus_non_prom.fa.gz"),
            ],
            ..LoadOptions::default()
        },
        batch_size: 16,
        max_steps: Some(4),
        eval_every: Some(2),
        learning_rate,
        device: DeviceChoice::Cpu,
        out_dir,
        ..TrainConfig::default()
    }
}

fn short_run(model: &Path, data: &Path, out_dir: PathBuf, learning_rate: f64) {
    let cfg = short_config(model, data, out_dir, learning_rate);
    train(&cfg, &Cancel::new(), |_| {}).expect("a short training run");
}

fn validation_mcc(run_dir: &Path) -> f64 {
    let bundle = RunBundle::read(&run_dir.join("dnatune.json")).expect("dnatune.json");
    bundle.validation.expect("validation metrics").record.mcc
}

/// The readable runs in list order.
fn listed(app: &DnatuneApp) -> Vec<String> {
    app.runs
        .rows
        .iter()
        .filter(|row| row.run.is_ok())
        .map(|row| row.name.clone())
        .collect()
}

#[test]
fn runs_are_listed_reopened_renamed_compared_and_deleted() {
    let Some(model) = common::shared_path("fixtures/dnabert1/model") else {
        return;
    };
    let Some(data) = common::shared_path("data/promoters_cnnprom") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let runs_dir = tmp.path().join("runs");
    short_run(&model, &data, runs_dir.join("run-001"), 2e-3);
    short_run(&model, &data, runs_dir.join("run-002"), 1e-3);
    // A folder without results (e.g. a run that was killed) is listed with the reason.
    std::fs::create_dir_all(runs_dir.join("interrupted")).expect("folder");

    let mut harness = harness(runs_dir.clone());
    harness.run();
    harness.get_by_label("Runs").click();
    harness.run();

    // 1. Both runs are listed, newest first, with their validation MCC.
    assert_eq!(listed(harness.state()), ["run-002", "run-001"]);
    for name in ["run-001", "run-002"] {
        harness.get_by_label(name);
        let mcc = format!("{:.3}", validation_mcc(&runs_dir.join(name)));
        assert!(
            harness.query_all_by_label(&mcc).count() >= 1,
            "the MCC {mcc} of {name} is not shown"
        );
    }
    harness.get_by_label_contains("no dnatune.json");
    assert!(harness.query_by_label_contains("UTC").is_none());

    // 2. Open one: the train step shows its curves and results.
    harness.get_by_label("Open run-001").click();
    harness.run();
    let app = harness.state();
    assert_eq!(app.step, Step::Train);
    assert_eq!(app.train.history.train_loss.len(), 4);
    assert_eq!(app.train.history.val_mcc.len(), 2);
    assert!(app.train.history.test.is_some());
    let summary = app.train.summary.as_ref().expect("the run's results");
    assert_eq!(summary.out_dir, runs_dir.join("run-001"));
    assert_eq!(summary.steps, 4);
    harness.get_by_label_contains("best checkpoint at step");
    harness.get_by_label("Export adapter…");

    // 3. Rename it; a name that is taken is refused.
    harness.get_by_label("Runs").click();
    harness.run();
    harness.get_by_label("Rename run-001").click();
    harness.run();
    let rename_to = |harness: &mut Harness<'_, DnatuneApp>, name: &str| {
        harness.get_by_label("New name for run-001").focus();
        harness.run();
        harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        harness.get_by_label("New name for run-001").type_text(name);
        harness.run();
        harness.get_by_label("Rename").click();
        harness.run();
    };
    rename_to(&mut harness, "run-002");
    harness.get_by_label_contains("already exists");
    assert!(runs_dir.join("run-001").is_dir());
    rename_to(&mut harness, "promoters-lr2e-3");
    assert!(!runs_dir.join("run-001").exists());
    assert!(runs_dir
        .join("promoters-lr2e-3")
        .join("dnatune.json")
        .is_file());
    assert_eq!(listed(harness.state()), ["run-002", "promoters-lr2e-3"]);
    harness.get_by_label("Renamed run-001 to promoters-lr2e-3");

    // 4. Compare the two: both names head the table and name a line in each plot's legend.
    harness.get_by_label("Tick two or more runs to compare them.");
    harness.get_by_label("Compare promoters-lr2e-3").click();
    harness.get_by_label("Compare run-002").click();
    harness.run();
    harness.get_by_label("validation MCC");
    harness.get_by_label("test AUROC");
    for name in ["promoters-lr2e-3", "run-002"] {
        // The list's label and the table's header.
        assert_eq!(
            harness
                .query_all_by_role_and_label(egui::Role::Label, name)
                .count(),
            2,
            "{name} heads no column of the comparison"
        );
        // One legend entry in the MCC plot and one in the F1 plot.
        assert_eq!(
            harness
                .query_all_by_role_and_label(egui::Role::CheckBox, name)
                .count(),
            2,
            "{name} is missing from the plot legends"
        );
    }

    // 5. Delete one: nothing happens until the question is answered.
    harness.get_by_label("Delete run-002").click();
    harness.run();
    harness.get_by_label("Delete run-002?");
    assert!(runs_dir.join("run-002").is_dir());
    harness.get_by_label("Cancel").click();
    harness.run();
    assert!(runs_dir.join("run-002").is_dir());
    harness.get_by_label("Delete run-002").click();
    harness.run();
    harness.get_by_label("Delete").click();
    harness.run();
    assert!(!runs_dir.join("run-002").exists());
    assert_eq!(listed(harness.state()), ["promoters-lr2e-3"]);
    harness.get_by_label("Deleted run-002");
    // One run left: nothing to compare.
    harness.get_by_label("Tick two or more runs to compare them.");
}

#[test]
fn the_list_shows_a_run_once_it_ends() {
    let Some(model) = common::shared_path("fixtures/dnabert1/model") else {
        return;
    };
    let Some(data) = common::shared_path("data/promoters_cnnprom") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let runs_dir = tmp.path().join("runs");
    let mut harness = harness(runs_dir.clone());
    harness.run();
    harness.get_by_label("Runs").click();
    harness.run();
    harness.get_by_label_contains("No runs yet");

    // A run started from the train step (its folder is chosen there) while the list is shown.
    let ctx = harness.ctx.clone();
    let cfg = short_config(&model, &data, PathBuf::new(), 2e-3);
    harness.state_mut().train.start(cfg, &ctx);
    assert!(harness.state().train.is_running());
    let start = Instant::now();
    while harness.state().train.is_running() || harness.state().train.summary.is_none() {
        assert!(
            harness.state().train.error.is_none(),
            "{:?}",
            harness.state().train.error
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "timed out waiting for the run to end"
        );
        harness.step();
        std::thread::yield_now();
    }
    harness.run();
    // Listed without pressing Refresh.
    assert_eq!(listed(harness.state()), ["run-001"]);
    harness.get_by_label("Open run-001");
}

#[test]
fn an_empty_runs_folder_says_so() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(tmp.path().join("no-runs-yet"));
    harness.run();
    harness.get_by_label("Runs").click();
    harness.run();
    harness.get_by_label_contains("No runs yet");
    assert!(harness.state().runs.rows.is_empty());
    assert_eq!(harness.state().runs.scan_error, None);
}
