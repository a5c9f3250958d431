//! The desktop app (feature `gui`).

mod app;

pub use app::DnatuneApp;

use std::path::PathBuf;

/// Opens the dnatune window with `files` already added; returns when the window closes.
pub fn run(files: Vec<PathBuf>) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("dnatune")
            .with_inner_size([1100.0, 750.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "dnatune",
        options,
        Box::new(move |cc| Ok(Box::new(DnatuneApp::new(cc, files)))),
    )
    .map_err(|err| anyhow::anyhow!("{err}"))
}
