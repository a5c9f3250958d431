//! Step 1, data: the files and their classes, windowing and split options.

use std::path::{Path, PathBuf};

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::data::{default_class_name, ClassInput, DatasetOptions, LoadOptions};

use super::dialogs::Dialogs;

/// One input file and the class its records belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: PathBuf,
    pub class: String,
}

/// What the data step remembers between launches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataSettings {
    pub files: Vec<FileEntry>,
    pub dataset: DatasetOptions,
}

pub struct DataPanel {
    pub settings: DataSettings,
    path_input: String,
}

impl DataPanel {
    pub fn new(settings: DataSettings) -> Self {
        DataPanel {
            settings,
            path_input: String::new(),
        }
    }

    /// Adds files (dropped, opened with the app, picked or typed); the class defaults to the
    /// file name. Files already listed are not added twice.
    pub fn add_files(&mut self, paths: Vec<PathBuf>, _ctx: &egui::Context) {
        for path in paths {
            if self.settings.files.iter().any(|f| f.path == path) {
                continue;
            }
            let class = default_class_name(&path);
            self.settings.files.push(FileEntry { path, class });
        }
    }

    /// The data to train on, or why it is not ready yet.
    pub fn training_data(&self) -> Result<(LoadOptions, DatasetOptions), String> {
        if self.settings.files.is_empty() {
            return Err("add sequence files first (step 1)".into());
        }
        let mut classes: Vec<&str> = self
            .settings
            .files
            .iter()
            .map(|f| f.class.as_str())
            .collect();
        classes.sort_unstable();
        classes.dedup();
        if classes.iter().any(|c| c.trim().is_empty()) {
            return Err("every file needs a class name (step 1)".into());
        }
        if classes.len() < 2 {
            return Err("give the files at least two different classes (step 1)".into());
        }
        let options = LoadOptions {
            class_inputs: self
                .settings
                .files
                .iter()
                .map(|f| ClassInput {
                    class: Some(f.class.trim().to_string()),
                    path: f.path.display().to_string(),
                })
                .collect(),
            ..LoadOptions::default()
        };
        Ok((options, self.settings.dataset.clone()))
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, dialogs: &mut dyn Dialogs) {
        ui.heading("1 · Data");
        ui.label("Drop FASTA, FASTQ or CSV files anywhere on this window, or add them here. Give each file its class.");
        ui.horizontal(|ui| {
            if ui.button("Add files…").clicked() {
                let picked = dialogs.pick_files();
                self.add_files(picked, &ui.ctx().clone());
            }
            let label = ui.label("Path:");
            ui.add(
                egui::TextEdit::singleline(&mut self.path_input)
                    .hint_text("/path/to/sequences.fa.gz")
                    .desired_width(360.0),
            )
            .labelled_by(label.id);
            if ui.button("Add path").clicked() && !self.path_input.trim().is_empty() {
                let path = PathBuf::from(self.path_input.trim());
                self.path_input.clear();
                self.add_files(vec![path], &ui.ctx().clone());
            }
        });
        ui.separator();
        let mut remove = None;
        egui::Grid::new("files")
            .striped(true)
            .num_columns(3)
            .show(ui, |ui| {
                ui.strong("File");
                ui.strong("Class");
                ui.strong("");
                ui.end_row();
                for (index, file) in self.settings.files.iter_mut().enumerate() {
                    ui.label(file_name(&file.path));
                    let name = format!("Class of {}", file_name(&file.path));
                    ui.add(egui::TextEdit::singleline(&mut file.class).desired_width(160.0))
                        .widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::TextInput, true, &name)
                        });
                    if ui
                        .button("Remove")
                        .on_hover_text("Remove this file from the data")
                        .clicked()
                    {
                        remove = Some(index);
                    }
                    ui.end_row();
                }
            });
        if let Some(index) = remove {
            self.settings.files.remove(index);
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
