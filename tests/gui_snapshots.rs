//! Snapshot images of every screen, rendered by wgpu on the CPU (Mesa's software Vulkan,
//! Debian `mesa-vulkan-drivers`) and compared with `tests/snapshots/*.png`. The data, the
//! seed and the model are fixed and the app hides speed, ETA, dates and paths, so the images
//! are the same on every run. Regenerate after a deliberate UI change with
//! `UPDATE_SNAPSHOTS=1 cargo test --test gui_snapshots`, then look at them.
#![cfg(feature = "gui")]

mod common;

use common::gui::{drop_files, step_until};

use dnatune::gui::data_ui::DataSettings;
use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::model_ui::ModelSettings;
use dnatune::gui::{AppSettings, DnatuneApp};
use dnatune::model::hub::HubSettings;
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, SnapshotOptions};

/// Software rendering differs from one Mesa build to another by a few anti-aliased pixels.
fn snapshot(harness: &mut Harness<'_, DnatuneApp>, name: &str) {
    harness.snapshot_options(name, &SnapshotOptions::new().max_failed_pixels(200));
}

/// Whether wgpu found an adapter. Without one the test is skipped with a message, except on
/// CI (`CI` set), where a missing renderer is a broken set-up.
fn can_render(harness: &mut Harness<'_, DnatuneApp>) -> bool {
    let Err(reason) = harness.render() else {
        return true;
    };
    let message = format!(
        "no wgpu adapter for snapshot images ({reason}); install Debian's mesa-vulkan-drivers"
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipped: {message}");
    false
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
    if !can_render(&mut harness) {
        return;
    }
    harness.run();

    // 0. The first screen: nothing added yet, the demo offered.
    harness.get_by_label("Try the demo");
    snapshot(&mut harness, "start");

    // 1. Data: two files read, quality check done.
    drop_files(
        &mut harness,
        &[
            data.join("Bacillus_prom.fa.gz"),
            data.join("Bacillus_non_prom.fa.gz"),
        ],
    );
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

/// The smallest supported window (1024×768) in the light theme on a HiDPI screen (2 pixels per
/// point), reached by keyboard only: Ctrl+1…Ctrl+5 switch steps.
#[test]
fn light_theme_small_hidpi_window_by_keyboard() {
    let Some(data) = common::shared_path("data/promoters_cnnprom") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let settings = AppSettings {
        runs_dir: Some(tmp.path().join("runs")),
        ..AppSettings::default()
    };
    let mut harness = Harness::builder()
        .with_size([1024.0, 768.0])
        .with_pixels_per_point(2.0)
        .with_theme(egui::Theme::Light)
        .wgpu()
        .build_eframe(move |cc| {
            let mut app = DnatuneApp::with_parts(
                &cc.egui_ctx,
                settings,
                Vec::new(),
                Box::new(ScriptedDialogs::default()),
            );
            app.set_deterministic_display();
            app
        });
    if !can_render(&mut harness) {
        return;
    }
    harness.run();
    let go = |harness: &mut Harness<'_, DnatuneApp>, key: egui::Key| {
        harness.key_press_modifiers(egui::Modifiers::COMMAND, key);
        harness.run();
    };
    go(&mut harness, egui::Key::Num5);
    harness.get_by_label("Tick two or more runs to compare them.");
    go(&mut harness, egui::Key::Num3);
    harness.get_by_label_contains("add sequence files first");
    go(&mut harness, egui::Key::Num2);
    harness.get_by_label("Use a local folder…");
    go(&mut harness, egui::Key::Num1);
    drop_files(
        &mut harness,
        &[
            data.join("Bacillus_prom.fa.gz"),
            data.join("Bacillus_non_prom.fa.gz"),
        ],
    );
    step_until(&mut harness, "the file summaries", |h| {
        h.query_by_label_contains("1,000 records").is_some()
    });
    // Tab moves the focus through the controls; Space presses the focused one. From a fresh
    // window, the steps bar comes first.
    harness.key_press(egui::Key::Tab);
    harness.run();
    harness.key_press(egui::Key::Tab);
    harness.run();
    harness.key_press(egui::Key::Space);
    harness.run();
    assert_eq!(
        harness.state().step,
        dnatune::gui::Step::Model,
        "Tab, Tab, Space should press the second step's button"
    );
    go(&mut harness, egui::Key::Num1);
    harness.get_by_label("Check data").click();
    step_until(&mut harness, "the quality check", |h| {
        h.state().data.qc_result().is_some()
    });
    snapshot(&mut harness, "data-light-1024x768-hidpi");
}
