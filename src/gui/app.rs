use std::path::PathBuf;

use eframe::egui;

/// The app's live state.
pub struct DnatuneApp {
    files: Vec<PathBuf>,
}

impl DnatuneApp {
    pub fn new(_cc: &eframe::CreationContext<'_>, files: Vec<PathBuf>) -> Self {
        Self { files }
    }
}

impl eframe::App for DnatuneApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let dropped: Vec<PathBuf> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        self.files.extend(dropped);
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("dnatune");
            ui.label("Drop FASTA, FASTQ or CSV files onto this window.");
            for file in &self.files {
                ui.label(file.display().to_string());
            }
        });
    }
}
