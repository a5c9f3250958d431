//! Helpers for the desktop-app tests (egui_kittest).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::{AppSettings, DnatuneApp};
use eframe::egui;
use egui_kittest::Harness;

/// The app in a 1200×900 window with these settings and scripted dialogs.
pub fn harness(settings: AppSettings, dialogs: ScriptedDialogs) -> Harness<'static, DnatuneApp> {
    Harness::builder()
        // Background results (file summaries, checks) can arrive mid-run and cost a few extra
        // layout frames before the UI settles.
        .with_max_steps(16)
        .with_size([1200.0, 900.0])
        .build_eframe(move |cc| {
            DnatuneApp::with_parts(&cc.egui_ctx, settings, Vec::new(), Box::new(dialogs))
        })
}

/// The app with default settings, no dialogs and its runs in `runs_dir`.
pub fn fresh_harness(runs_dir: PathBuf) -> Harness<'static, DnatuneApp> {
    let settings = AppSettings {
        runs_dir: Some(runs_dir),
        ..AppSettings::default()
    };
    harness(settings, ScriptedDialogs::default())
}

/// A file dropped onto the window (egui's own type is private to the integrations).
#[derive(Debug)]
pub struct DroppedPath(pub PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Drops `paths` onto the window in one go and lets the UI settle.
pub fn drop_files(harness: &mut Harness<'_, DnatuneApp>, paths: &[PathBuf]) {
    for path in paths {
        harness
            .input_mut()
            .dropped_files
            .push(Arc::new(DroppedPath(path.clone())));
    }
    harness.run();
}

/// Steps frames until `done` holds (background work: reading files, training, predicting),
/// failing after ten minutes; then lets the UI settle, which also checks that every input
/// widget has an accessible name.
pub fn step_until(
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
        // Give the background thread the CPU between frames.
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run();
}
