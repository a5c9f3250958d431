//! The app: three steps (data, model, train) and the previous runs in one window, file drops
//! anywhere, settings that persist between launches, and a confirmation before closing during
//! a run.

use std::path::PathBuf;

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::train::TrainConfig;

use super::data_ui::{DataPanel, DataSettings};
use super::dialogs::{Dialogs, NativeDialogs};
use super::model_ui::{ModelPanel, ModelSettings, ModelSource};
use super::pretrain_ui::{PretrainCommand, PretrainPanel};
use super::results_ui::ResultsPanel;
use super::runs_ui::{RunsCommand, RunsPanel};
use super::train_ui::TrainPanel;

/// The eframe storage key of [`AppSettings`].
pub const SETTINGS_KEY: &str = "dnatune";

/// What persists between launches: the last project (files, classes, options) and settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    pub data: DataSettings,
    pub model: ModelSettings,
    /// Where runs are written; default: the app's data folder.
    pub runs_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Data,
    Model,
    Train,
    Results,
    /// Previous runs: reopen, rename, delete, compare.
    Runs,
    /// Optional: masked-language-model pretraining on the data step's files.
    Pretrain,
}

pub struct DnatuneApp {
    pub step: Step,
    pub data: DataPanel,
    pub model: ModelPanel,
    pub train: TrainPanel,
    pub results: ResultsPanel,
    pub runs: RunsPanel,
    pub pretrain: PretrainPanel,
    dialogs: Box<dyn Dialogs>,
    /// The user asked to close during a run: show the question.
    confirm_close: bool,
    /// The user confirmed: close once the run has stopped.
    closing: bool,
}

impl DnatuneApp {
    /// The app with the operating system's dialogs and the settings saved last time.
    pub fn new(cc: &eframe::CreationContext<'_>, files: Vec<PathBuf>) -> Self {
        let settings = cc
            .storage
            .and_then(|storage| eframe::get_value::<AppSettings>(storage, SETTINGS_KEY))
            .unwrap_or_default();
        Self::with_parts(&cc.egui_ctx, settings, files, Box::new(NativeDialogs))
    }

    /// The app from explicit parts (tests: scripted dialogs, a temporary runs folder).
    pub fn with_parts(
        ctx: &egui::Context,
        settings: AppSettings,
        files: Vec<PathBuf>,
        dialogs: Box<dyn Dialogs>,
    ) -> Self {
        let runs_dir = settings.runs_dir.clone().unwrap_or_else(default_runs_dir);
        let mut app = DnatuneApp {
            step: Step::Data,
            data: DataPanel::new(settings.data),
            model: ModelPanel::new(settings.model),
            train: TrainPanel::new(runs_dir),
            results: ResultsPanel::default(),
            runs: RunsPanel::new(),
            pretrain: PretrainPanel::default(),
            dialogs,
            confirm_close: false,
            closing: false,
        };
        app.data.add_files(files, ctx);
        app
    }

    /// Hides what changes from run to run or machine to machine (speed, ETA, dates, paths), so
    /// that snapshot images of the screens are reproducible.
    pub fn set_deterministic_display(&mut self) {
        self.train.show_timings_and_paths = false;
        self.results.hide_paths = true;
        self.runs.show_dates_and_paths = false;
    }

    /// Selects a model folder (an existing folder) or Hub id.
    pub fn select_model(&mut self, model: &str) {
        let path = PathBuf::from(model);
        self.model.settings.source = Some(if path.is_dir() {
            ModelSource::Local(path)
        } else {
            ModelSource::Catalog(model.to_string())
        });
    }

    pub fn settings(&self) -> AppSettings {
        AppSettings {
            data: self.data.settings.clone(),
            model: self.model.settings.clone(),
            runs_dir: Some(self.train.runs_dir.clone()),
        }
    }

    /// The run configuration from the data and model steps, or what is still missing.
    pub fn train_config(&self) -> Result<TrainConfig, String> {
        let (data, dataset) = self.data.training_data()?;
        let mut cfg = TrainConfig {
            data,
            seed: dataset.seed,
            dataset,
            ..TrainConfig::default()
        };
        self.model.apply(&mut cfg)?;
        Ok(cfg)
    }

    /// "Try the demo": the demo's files, split, model and settings go into the three steps
    /// (where the user sees them), and its run starts on the training screen.
    pub fn start_demo(&mut self, ctx: &egui::Context) {
        if self.train.is_running() || self.pretrain.is_running() {
            self.data.demo_error = Some(
                "A training or pretraining run is in progress: stop it or wait for it first."
                    .into(),
            );
            return;
        }
        let demo = match crate::bundled::demo_config(PathBuf::new()) {
            Ok(demo) => demo,
            Err(err) => {
                self.data.demo_error = Some(err.to_string());
                return;
            }
        };
        self.data.use_demo(&demo, ctx);
        self.model.use_demo(&demo);
        match self.train_config() {
            Ok(mut cfg) => {
                // Not among the app's settings.
                cfg.patience = demo.patience;
                self.data.demo_error = None;
                self.train.start(cfg, ctx);
                self.go_to(Step::Train);
            }
            Err(message) => self.data.demo_error = Some(message),
        }
    }

    /// The pretraining run for the data step's files and the model step's model, or what is
    /// missing.
    pub fn pretrain_config(&self) -> Result<crate::pretrain::PretrainConfig, String> {
        if self.train.is_running() {
            return Err("a training run is in progress: wait for it or stop it first".into());
        }
        let inputs: Vec<PathBuf> = self
            .data
            .settings
            .files
            .iter()
            .map(|f| f.path.clone())
            .collect();
        if inputs.is_empty() {
            return Err("add sequence files first (step 1)".into());
        }
        let model = self.model.model()?;
        Ok(self.pretrain.config(
            &model,
            inputs,
            self.model.settings.device,
            &self.train.runs_dir,
        ))
    }

    fn handle_drops(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if dropped.is_empty() {
            return;
        }
        // On the results screen, dropped files are sequences to predict.
        if self.step == Step::Results && self.results.run_dir.is_some() {
            self.results.predict_files(dropped, ctx);
        } else {
            self.data.add_files(dropped, ctx);
            self.step = Step::Data;
        }
    }

    fn drop_highlight_ui(&self, ctx: &egui::Context) {
        let hovered = ctx.input(|i| i.raw.hovered_files.len());
        if hovered == 0 {
            return;
        }
        let screen = ctx.content_rect();
        let painter = ctx.layer_painter(egui::LayerId::new(
            egui::Order::Foreground,
            egui::Id::unique("drop_highlight"),
        ));
        painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(160));
        painter.text(
            screen.center(),
            egui::Align2::CENTER_CENTER,
            format!(
                "Drop to add {hovered} file{}",
                if hovered == 1 { "" } else { "s" }
            ),
            egui::FontId::proportional(28.0),
            egui::Color32::WHITE,
        );
    }

    /// Keyboard shortcuts: Ctrl+1…Ctrl+5 (⌘ on macOS) switch steps, Ctrl+Q closes the window
    /// (asking first while a run is in progress). Tab and Shift+Tab move between controls and
    /// Space or Enter presses the focused one.
    fn shortcuts(&mut self, ctx: &egui::Context) {
        let pressed = |key: egui::Key| {
            ctx.input_mut(|i| {
                i.consume_shortcut(&egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, key))
            })
        };
        for (step, key) in STEP_KEYS {
            if pressed(key) {
                self.go_to(step);
            }
        }
        if pressed(egui::Key::Q) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    fn go_to(&mut self, step: Step) {
        if step == Step::Runs && self.step != Step::Runs {
            self.runs.mark_stale();
        }
        self.step = step;
    }

    fn close_ui(&mut self, ctx: &egui::Context) {
        let running = self.train.is_running() || self.pretrain.is_running();
        if ctx.input(|i| i.viewport().close_requested()) && running && !self.closing {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm_close = true;
        }
        if self.closing && !running {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        if !self.confirm_close {
            return;
        }
        egui::Modal::new(egui::Id::unique("confirm_close")).show(ctx, |ui| {
            ui.heading("A training run is in progress");
            ui.label("Stop it and close dnatune? The best checkpoint so far is kept.");
            ui.horizontal(|ui| {
                if ui.button("Stop and close").clicked() {
                    self.train.stop();
                    self.pretrain.stop();
                    self.closing = true;
                    self.confirm_close = false;
                }
                if ui.button("Keep training").clicked() {
                    self.confirm_close = false;
                }
            });
        });
    }
}

impl eframe::App for DnatuneApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.handle_drops(&ctx);
        self.shortcuts(&ctx);
        // A run's end (results or an error, taken in by `poll`) adds a folder to the runs list
        // and, when it produced results, shows them on the results screen.
        let outcome_before = self.train.summary.is_some() || self.train.error.is_some();
        self.train.poll();
        if !outcome_before && (self.train.summary.is_some() || self.train.error.is_some()) {
            self.runs.mark_stale();
            if let Some(summary) = &self.train.summary {
                let out_dir = summary.out_dir.clone();
                self.results.load(&out_dir);
            }
        }
        self.results.poll();
        self.data.poll();
        self.pretrain.poll();
        // The window length the data step suggests follows the model's context (a catalog
        // entry, or a local folder once it has been read).
        if let Some((max_tokens, context_bp)) = self.model.context() {
            self.data.set_model_context(max_tokens, context_bp);
        }
        egui::Panel::top("steps").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("dnatune");
                ui.separator();
                for ((step, name), (_, key)) in STEPS.into_iter().zip(STEP_KEYS) {
                    let shortcut = ui.ctx().format_shortcut(&egui::KeyboardShortcut::new(
                        egui::Modifiers::COMMAND,
                        key,
                    ));
                    if ui
                        .selectable_label(self.step == step, name)
                        .on_hover_text(shortcut)
                        .clicked()
                    {
                        self.go_to(step);
                    }
                }
            });
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| match self.step {
                Step::Data => self.data.ui(ui, self.dialogs.as_mut()),
                Step::Model => self.model.ui(ui, self.dialogs.as_mut()),
                Step::Train => {
                    let ready = if self.pretrain.is_running() {
                        Err(
                            "pretraining is in progress (Pretrain): wait for it or stop it first"
                                .to_string(),
                        )
                    } else {
                        self.train_config()
                    };
                    self.train.ui(ui, ready, self.dialogs.as_mut());
                }
                Step::Pretrain => {
                    let ready = self.pretrain_config();
                    if let Some(PretrainCommand::FineTune(checkpoint)) = self.pretrain.ui(ui, ready)
                    {
                        self.model.choose_folder(checkpoint);
                        self.step = Step::Model;
                    }
                }
                Step::Results => self.results.ui(ui, self.dialogs.as_mut()),
                Step::Runs => {
                    let training = self.train.is_running();
                    if let Some(RunsCommand::Open { history, summary }) =
                        self.runs.ui(ui, &self.train.runs_dir, training)
                    {
                        let out_dir = summary.out_dir.clone();
                        self.train.show_run(*history, *summary);
                        self.results.load(&out_dir);
                        self.step = Step::Train;
                    }
                }
            });
        });
        if self.data.take_demo_request() {
            self.start_demo(&ctx);
        }
        self.drop_highlight_ui(&ctx);
        self.close_ui(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings());
    }
}

/// The steps in the order of the bar at the top, with their names there.
const STEPS: [(Step, &str); 6] = [
    (Step::Data, "1 · Data"),
    (Step::Model, "2 · Model"),
    (Step::Train, "3 · Train"),
    (Step::Results, "4 · Results"),
    (Step::Runs, "Runs"),
    (Step::Pretrain, "Pretrain"),
];

/// Ctrl (⌘) + this key goes to the step.
const STEP_KEYS: [(Step, egui::Key); 6] = [
    (Step::Data, egui::Key::Num1),
    (Step::Model, egui::Key::Num2),
    (Step::Train, egui::Key::Num3),
    (Step::Results, egui::Key::Num4),
    (Step::Runs, egui::Key::Num5),
    (Step::Pretrain, egui::Key::Num6),
];

/// `<app data folder>/runs`, or `./dnatune-runs` when the platform has none.
pub fn default_runs_dir() -> PathBuf {
    eframe::storage_dir("dnatune")
        .map(|dir| dir.join("runs"))
        .unwrap_or_else(|| PathBuf::from("dnatune-runs"))
}
