//! The desktop app (feature `gui`).

mod app;
pub mod data_ui;
pub mod dialogs;
pub mod history;
pub mod model_ui;
pub mod pretrain_ui;
pub mod qc_ui;
pub mod results_ui;
pub mod run;
pub mod runs_ui;
pub mod train_ui;

pub use app::{default_runs_dir, AppSettings, DnatuneApp, Step, SETTINGS_KEY};

use std::path::PathBuf;

use eframe::egui;

/// Opens the dnatune window with `files` already added (and `model`, a folder or Hub id,
/// selected); returns when the window closes. Tries the wgpu renderer first and, when it
/// cannot start (no usable GPU adapter), glow.
pub fn run(files: Vec<PathBuf>, model: Option<String>) -> anyhow::Result<()> {
    #[cfg(all(unix, not(target_os = "macos")))]
    if ["DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET"]
        .iter()
        .all(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
    {
        anyhow::bail!(
            "no graphical display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is \
             set): start dnatune from a desktop session, or use the command line (`dnatune --help`)"
        );
    }
    let start = |renderer: eframe::Renderer, files: Vec<PathBuf>| {
        let model = model.clone();
        let mut viewport = egui::ViewportBuilder::default()
            .with_title("dnatune")
            // The desktop entry's name, so that docks and task bars match the window to it.
            .with_app_id("dnatune")
            .with_inner_size([1100.0, 780.0])
            .with_drag_and_drop(true);
        match eframe::icon_data::from_png_bytes(crate::assets::ICON_PNG) {
            Ok(icon) => viewport = viewport.with_icon(std::sync::Arc::new(icon)),
            Err(err) => eprintln!("note: the window icon could not be read ({err})"),
        }
        let options = eframe::NativeOptions {
            viewport,
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

/// Colours of the plotted series, told apart in dark and light themes; a line and the markers
/// of the same series share one, so the legend shows it once.
pub fn series_color(index: usize) -> egui::Color32 {
    const PALETTE: [egui::Color32; 8] = [
        egui::Color32::from_rgb(0xe0, 0x6c, 0x5f), // red
        egui::Color32::from_rgb(0x4c, 0x9b, 0xe8), // blue
        egui::Color32::from_rgb(0x3f, 0xb9, 0x7a), // green
        egui::Color32::from_rgb(0xe3, 0xa0, 0x2f), // amber
        egui::Color32::from_rgb(0xa7, 0x7b, 0xe0), // violet
        egui::Color32::from_rgb(0x2c, 0xb5, 0xb5), // teal
        egui::Color32::from_rgb(0xd9, 0x6e, 0xb4), // pink
        egui::Color32::from_rgb(0x9a, 0x9a, 0x9a), // grey
    ];
    PALETTE[index % PALETTE.len()]
}
