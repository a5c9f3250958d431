//! Snapshot images of every screen, rendered by wgpu on the CPU (Mesa's software Vulkan,
//! Debian `mesa-vulkan-drivers`) and compared with `tests/snapshots/*.png`. The data, the
//! seed and the model are fixed and the app hides speed, ETA, dates and paths, so the images
//! are the same on every run. Regenerate after a deliberate UI change with
//! `UPDATE_SNAPSHOTS=1 cargo test --test gui_snapshots`, then look at them.
#![cfg(feature = "gui")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dnatune::gui::data_ui::DataSettings;
use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::model_ui::ModelSettings;
use dnatune::gui::{AppSettings, DnatuneApp};
use dnatune::model::hub::HubSettings;
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, SnapshotOptions};

#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn step_until(
    harness: &mut Harness<'_, DnatuneApp>,
    what: &str,
    done: impl Fn(&Harness<'_, DnatuneApp>) -> bool,
) {
    let start = Instant::now();
    while !done(harness) {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "timed out waiting for {what}"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run();
}

/// Software rendering differs from one Mesa build to another by a few anti-aliased pixels.
fn snapshot(harness: &mut Harness<'_, DnatuneApp>, name: &str) {
    harness.snapshot_options(name, &SnapshotOptions::new().max_failed_pixels(200));
}

#[test]
fn every_screen_matches_its_snapshot() {
    let Some(model) = common::shared_path("fixtures/dnabert1/model") else {
        return;
    };
    let Some(data) = common::shared_path("data/promoters_cnnprom") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dialogs = ScriptedDialogs {
        folders: [model].into(),
        files: [vec![data.join("Bacillus_prom.fa.gz")]].into(),
        saves: [tmp.path().join("exported")].into(),
        ..ScriptedDialogs::default()
    };
    let settings = AppSettings {
        data: DataSettings::default(),
        model: ModelSettings {
            epochs: 2,
            learning_rate: 5e-3,
            eval_every: Some(20),
            ..ModelSettings::default()
        },
        runs_dir: Some(tmp.path().join("runs")),
    };
    let hub_dir = tmp.path().join("hub");
    let mut harness = Harness::builder()
        .with_size([1100.0, 800.0])
        .wgpu()
        .build_eframe(move |cc| {
            let mut app =
                DnatuneApp::with_parts(&cc.egui_ctx, settings, Vec::new(), Box::new(dialogs));
            app.set_deterministic_display();
            app.model.set_hub_settings(HubSettings {
                cache_dir: hub_dir,
                offline: true,
            });
            app
        });
    if let Err(reason) = harness.render() {
        eprintln!(
            "skipped: no wgpu adapter for snapshot images ({reason}); install Debian's mesa-vulkan-drivers"
        );
        return;
    }
    harness.run();

    // 1. Data: two files read, quality check done.
    for name in ["Bacillus_prom.fa.gz", "Bacillus_non_prom.fa.gz"] {
        harness
            .input_mut()
            .dropped_files
            .push(Arc::new(DroppedPath(data.join(name))));
    }
    harness.run();
    step_until(&mut harness, "the file summaries", |h| {
        h.query_by_label_contains("373 records").is_some()
            && h.query_by_label_contains("1,000 records").is_some()
    });
    harness.get_by_label("Check data").click();
    step_until(&mut harness, "the quality check", |h| {
        h.state().data.qc_result().is_some()
    });
    snapshot(&mut harness, "data");

    // 2. Model: a catalog entry's card (offline, not downloaded).
    harness.get_by_label("2 · Model").click();
    harness.run();
    harness
        .get_by_role_and_label(egui::Role::Button, "DNABERT-2 117M")
        .click();
    harness.run();
    snapshot(&mut harness, "model");

    // 3. Train on the fixture model (a local folder) until the run ends.
    harness.get_by_label("Use a local folder…").click();
    harness.run();
    harness.get_by_label("3 · Train").click();
    harness.run();
    harness.get_by_label("Start training").click();
    harness.step();
    step_until(&mut harness, "the training run", |h| {
        h.state().train.summary.is_some() || h.state().train.error.is_some()
    });
    assert_eq!(harness.state().train.error, None);
    snapshot(&mut harness, "train");

    // 4. Results.
    harness.get_by_label("4 · Results").click();
    harness.run();
    snapshot(&mut harness, "results");

    // 5. Predictions on a FASTA file: table and histogram of scores.
    harness.get_by_label("Predict on FASTA…").click();
    harness.step();
    step_until(&mut harness, "the prediction", |h| {
        h.state().results.predictions.is_some() || h.state().results.predict_error.is_some()
    });
    assert_eq!(harness.state().results.predict_error, None);
    harness.get_by_label("373 records predicted").scroll_to_me();
    harness.run();
    snapshot(&mut harness, "predict");

    // 6. A second run with another learning rate, then the runs list and their comparison.
    harness.state_mut().model.settings.learning_rate = 1e-3;
    harness.get_by_label("3 · Train").click();
    harness.run();
    harness.get_by_label("Start training").click();
    harness.step();
    step_until(&mut harness, "the second training run", |h| {
        let train = &h.state().train;
        train.error.is_some()
            || train
                .summary
                .as_ref()
                .is_some_and(|s| s.out_dir.ends_with("run-002"))
    });
    assert_eq!(harness.state().train.error, None);
    harness.get_by_label("Runs").click();
    harness.run();
    step_until(&mut harness, "the runs list", |h| {
        h.query_by_label("Compare run-002").is_some()
    });
    snapshot(&mut harness, "runs");
    harness.get_by_label("Compare run-001").click();
    harness.get_by_label("Compare run-002").click();
    harness.run();
    snapshot(&mut harness, "compare");
}
