//! Step 2, model: which pretrained model, and the fine-tuning settings.

use std::path::PathBuf;

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::model::catalog;
use crate::train::{DeviceChoice, LoraSettings, TrainConfig};

use super::dialogs::Dialogs;

/// Where the pretrained model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// A Hub id from the catalog (downloaded into the Hugging Face cache).
    Catalog(String),
    /// A model folder on disk in Hub layout.
    Local(PathBuf),
}

/// What the model step remembers between launches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSettings {
    pub source: Option<ModelSource>,
    pub lora: LoraSettings,
    pub learning_rate: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub max_length: Option<usize>,
    pub device: DeviceChoice,
}

impl Default for ModelSettings {
    fn default() -> Self {
        let defaults = TrainConfig::default();
        ModelSettings {
            source: None,
            lora: defaults.lora,
            learning_rate: defaults.learning_rate,
            epochs: defaults.epochs,
            batch_size: defaults.batch_size,
            max_length: None,
            device: DeviceChoice::Auto,
        }
    }
}

pub struct ModelPanel {
    pub settings: ModelSettings,
}

impl ModelPanel {
    pub fn new(settings: ModelSettings) -> Self {
        ModelPanel { settings }
    }

    /// The model to train (folder or Hub id), or why none is chosen.
    pub fn model(&self) -> Result<String, String> {
        match &self.settings.source {
            Some(ModelSource::Catalog(id)) => Ok(id.clone()),
            Some(ModelSource::Local(path)) => Ok(path.display().to_string()),
            None => Err("choose a model first (step 2)".into()),
        }
    }

    /// Copies the model and fine-tuning settings into a run configuration.
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<(), String> {
        cfg.model = self.model()?;
        cfg.lora = self.settings.lora.clone();
        cfg.learning_rate = self.settings.learning_rate;
        cfg.epochs = self.settings.epochs;
        cfg.batch_size = self.settings.batch_size;
        cfg.max_length = self.settings.max_length;
        cfg.device = self.settings.device;
        Ok(())
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, dialogs: &mut dyn Dialogs) {
        ui.heading("2 · Model");
        ui.horizontal(|ui| {
            if ui.button("Use a local folder…").clicked() {
                if let Some(dir) = dialogs.pick_folder("Choose a model folder (Hub layout)") {
                    self.settings.source = Some(ModelSource::Local(dir));
                }
            }
            match &self.settings.source {
                Some(ModelSource::Local(dir)) => {
                    ui.label(format!("Local model: {}", dir.display()))
                }
                Some(ModelSource::Catalog(id)) => ui.label(format!("Hub model: {id}")),
                None => ui.label("No model chosen"),
            };
        });
        for entry in catalog::CATALOG {
            let selected =
                self.settings.source == Some(ModelSource::Catalog(entry.hub_id.to_string()));
            if ui.selectable_label(selected, entry.display_name).clicked() {
                self.settings.source = Some(ModelSource::Catalog(entry.hub_id.to_string()));
            }
        }
        ui.separator();
        egui::Grid::new("finetune").num_columns(2).show(ui, |ui| {
            let label = ui.label("LoRA rank");
            ui.add(egui::Slider::new(&mut self.settings.lora.rank, 1..=64))
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Learning rate");
            ui.add(
                egui::DragValue::new(&mut self.settings.learning_rate)
                    .speed(1e-5)
                    .range(1e-6..=1e-2),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Epochs");
            ui.add(egui::DragValue::new(&mut self.settings.epochs).range(1..=100))
                .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Batch size");
            ui.add(egui::DragValue::new(&mut self.settings.batch_size).range(1..=256))
                .labelled_by(label.id);
            ui.end_row();
        });
    }
}
