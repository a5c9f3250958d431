//! The desktop app (feature `gui`).

mod app;
pub mod data_ui;
pub mod dialogs;
pub mod history;
pub mod model_ui;
pub mod qc_ui;
pub mod results_ui;
pub mod run;
pub mod runs_ui;
pub mod train_ui;

pub use app::{AppSettings, DnatuneApp, Step, SETTINGS_KEY};

use std::path::PathBuf;

use eframe::egui;

/// Opens the dnatune window with `files` already added (and `model`, a folder or Hub id,
/// selected); returns when the window closes. Tries the wgpu renderer first and, when it
/// cannot start (no usable GPU adapter), glow.
pub fn run(files: Vec<PathBuf>, model: Option<String>) -> anyhow::Result<()> {
    let start = |renderer: eframe::Renderer, files: Vec<PathBuf>| {
        let model = model.clone();
        let options = eframe::NativeOptions {
            viewport: egui::ViewportBuilder::default()
                .with_title("dnatune")
                .with_app_id("dnatune")
                .with_inner_size([1100.0, 780.0])
                .with_drag_and_drop(true),
            renderer,
            ..Default::default()
        };
        eframe::run_native(
            "dnatune",
            options,
            Box::new(move |cc| {
                let mut app = DnatuneApp::new(cc, files);
                if let Some(model) = model {
                    app.select_model(&model);
                }
                Ok(Box::new(app))
            }),
        )
    };
    match start(eframe::Renderer::Wgpu, files.clone()) {
        Ok(()) => Ok(()),
        Err(wgpu_error) => {
            eprintln!("note: the wgpu renderer could not start ({wgpu_error}); trying OpenGL");
            start(eframe::Renderer::Glow, files).map_err(|glow_error| {
                anyhow::anyhow!("no renderer could start: wgpu: {wgpu_error}; OpenGL: {glow_error}")
            })
        }
    }
}
