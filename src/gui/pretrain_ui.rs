//! Pretrain (optional): masked-language-model pretraining of the chosen model on the data
//! step's files — adapting a model to one's own organism before fine-tuning — on a background
//! thread, with live loss and masked-token accuracy, stop, and "Fine-tune this checkpoint".

use std::path::{Path, PathBuf};

use eframe::egui;
use egui_plot::{Corner, Legend, Plot};

use crate::pretrain::{pretrain, PretrainConfig, PretrainEvent, PretrainSummary};
use crate::train::DeviceChoice;

use super::run::{poll_run, Job};
use super::series_color;
use super::train_ui::series_ui;

type PretrainJob = Job<PretrainEvent, Result<PretrainSummary, String>>;

/// The settings a user can change; the rest are `dnatune pretrain`'s defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainSettings {
    pub window_bp: usize,
    pub steps: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub eval_every: u64,
    pub checkpoint_every: u64,
    /// Random weights instead of the model's own (its architecture and tokenizer only).
    pub from_scratch: bool,
}

impl Default for PretrainSettings {
    fn default() -> Self {
        let defaults = PretrainConfig::default();
        PretrainSettings {
            window_bp: defaults.window_bp,
            steps: defaults.max_steps,
            batch_size: defaults.batch_size,
            learning_rate: defaults.learning_rate,
            eval_every: defaults.eval_every,
            checkpoint_every: defaults.checkpoint_every,
            from_scratch: false,
        }
    }
}

/// What a pretraining run has reported so far, from its events alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PretrainHistory {
    /// `[step, value]` of every training step and of every evaluation.
    pub train_loss: Vec<[f64; 2]>,
    pub train_accuracy: Vec<[f64; 2]>,
    pub val_loss: Vec<[f64; 2]>,
    pub val_accuracy: Vec<[f64; 2]>,
    pub step: u64,
    pub total_steps: u64,
    pub sequences_per_second: f64,
    pub eta_s: f64,
    pub status: String,
    /// The newest checkpoint saved.
    pub checkpoint: Option<PathBuf>,
}

impl PretrainHistory {
    pub fn apply(&mut self, event: &PretrainEvent) {
        match event {
            PretrainEvent::DataLoaded {
                train_windows,
                validation_windows,
                skipped_windows,
                ..
            } => {
                self.status = format!(
                    "{train_windows} training and {validation_windows} held-out windows \
                     ({skipped_windows} left out: too many non-ACGT bases); loading the model"
                );
            }
            PretrainEvent::ModelReady {
                family,
                device,
                parameters,
                start_step,
                total_steps,
                ..
            } => {
                self.step = *start_step;
                self.total_steps = *total_steps;
                self.status = format!("pretraining {family} ({parameters} parameters) on {device}");
            }
            PretrainEvent::Step {
                step,
                total_steps,
                loss,
                masked_accuracy,
                sequences_per_second,
                eta_s,
                ..
            } => {
                let x = *step as f64;
                self.train_loss.push([x, *loss]);
                self.train_accuracy.push([x, *masked_accuracy]);
                self.step = *step;
                self.total_steps = *total_steps;
                self.sequences_per_second = *sequences_per_second;
                self.eta_s = *eta_s;
            }
            PretrainEvent::Eval {
                step,
                loss,
                masked_accuracy,
            } => {
                let x = *step as f64;
                self.val_loss.push([x, *loss]);
                self.val_accuracy.push([x, *masked_accuracy]);
            }
            PretrainEvent::CheckpointSaved { path, .. } => self.checkpoint = Some(path.clone()),
            PretrainEvent::Finished { summary } => {
                self.checkpoint = Some(summary.checkpoint.clone());
                self.status = if summary.cancelled {
                    format!("stopped at step {}", summary.steps)
                } else {
                    format!("finished {} steps", summary.steps)
                };
            }
        }
    }

    pub fn progress(&self) -> f32 {
        if self.total_steps == 0 {
            0.0
        } else {
            (self.step as f32 / self.total_steps as f32).min(1.0)
        }
    }
}

/// What the panel asks of the app after a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum PretrainCommand {
    /// Use this checkpoint as the model to fine-tune.
    FineTune(PathBuf),
}

#[derive(Default)]
pub struct PretrainPanel {
    pub settings: PretrainSettings,
    job: Option<PretrainJob>,
    pub history: PretrainHistory,
    pub error: Option<String>,
    pub summary: Option<PretrainSummary>,
}

impl PretrainPanel {
    pub fn is_running(&self) -> bool {
        self.job.as_ref().is_some_and(Job::is_running)
    }

    /// The run for this model and these files, into a new `pretrain-NNN` under `runs_dir`.
    pub fn config(
        &self,
        model: &str,
        inputs: Vec<PathBuf>,
        device: DeviceChoice,
        runs_dir: &Path,
    ) -> PretrainConfig {
        let s = &self.settings;
        PretrainConfig {
            model: model.to_string(),
            from_scratch: s.from_scratch,
            inputs,
            window_bp: s.window_bp,
            batch_size: s.batch_size,
            max_steps: s.steps,
            learning_rate: s.learning_rate,
            eval_every: s.eval_every,
            checkpoint_every: s.checkpoint_every,
            device,
            out_dir: next_pretrain_dir(runs_dir),
            ..PretrainConfig::default()
        }
    }

    pub fn start(&mut self, cfg: PretrainConfig, ctx: &egui::Context) {
        if self.is_running() {
            return;
        }
        self.history = PretrainHistory {
            status: "reading the sequences".to_string(),
            ..PretrainHistory::default()
        };
        self.error = None;
        self.summary = None;
        let job = Job::spawn("dnatune-pretrain", ctx, move |reporter, cancel| {
            pretrain(&cfg, false, &cancel, |event| reporter.send(event)).map_err(|e| e.to_string())
        });
        match job {
            Ok(job) => self.job = Some(job),
            Err(e) => self.error = Some(format!("could not start the pretraining thread: {e}")),
        }
    }

    pub fn stop(&self) {
        if let Some(job) = &self.job {
            job.cancel();
        }
    }

    /// Takes the run's new events and, when it has ended, its result. Call every frame.
    pub fn poll(&mut self) {
        let history = &mut self.history;
        match poll_run(&mut self.job, |event| history.apply(event)) {
            Some(Ok(summary)) => self.summary = Some(summary),
            Some(Err(message)) => {
                self.history.status = "stopped with an error".to_string();
                self.error = Some(message);
            }
            None => {}
        }
    }

    /// `ready`: the run to start, or what is missing (no files, no model).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        ready: Result<PretrainConfig, String>,
    ) -> Option<PretrainCommand> {
        let mut command = None;
        ui.heading("Pretrain (optional)");
        ui.label(
            "Adapt the chosen model (step 2) to your organism before fine-tuning: \
             masked-language-model training on the sequences of step 1, whose classes are not \
             used. Afterwards, fine-tune the new checkpoint as usual.",
        );
        ui.add_enabled_ui(!self.is_running(), |ui| self.settings_ui(ui));
        ui.horizontal(|ui| {
            let running = self.is_running();
            let start = ui.add_enabled(
                ready.is_ok() && !running,
                egui::Button::new("Start pretraining"),
            );
            if let Err(reason) = &ready {
                ui.label(reason.as_str());
            }
            if start.clicked() {
                if let Ok(cfg) = ready {
                    self.start(cfg, &ui.ctx().clone());
                }
            }
            if ui
                .add_enabled(running, egui::Button::new("Stop pretraining"))
                .on_hover_text("Stop after the current step and save a checkpoint of it")
                .clicked()
            {
                self.stop();
            }
        });
        let h = &self.history;
        if self.is_running() || h.step > 0 {
            let text = if self.is_running() {
                format!(
                    "step {}/{} · {:.1} windows/s · ETA {:.0} s",
                    h.step, h.total_steps, h.sequences_per_second, h.eta_s
                )
            } else {
                format!("step {}/{}", h.step, h.total_steps)
            };
            ui.add(egui::ProgressBar::new(h.progress()).text(text));
        }
        if !h.status.is_empty() {
            ui.label(&h.status);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        self.plots_ui(ui);
        if let Some(summary) = &self.summary {
            ui.separator();
            if let (Some(loss), Some(accuracy)) =
                (summary.validation_loss, summary.validation_accuracy)
            {
                ui.label(format!(
                    "Held-out windows: loss {loss:.4}, masked-token accuracy {:.1} %",
                    accuracy * 100.0
                ));
            }
            ui.label(format!(
                "Newest checkpoint: {}",
                summary.checkpoint.display()
            ));
            if ui
                .button("Fine-tune this checkpoint")
                .on_hover_text("Choose it as the model of step 2")
                .clicked()
            {
                command = Some(PretrainCommand::FineTune(summary.checkpoint.clone()));
            }
        }
        command
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        egui::Grid::new("pretrain_settings")
            .num_columns(2)
            .spacing([16.0, 4.0])
            .show(ui, |ui| {
                let rows: [(&str, egui::DragValue<'_>, &str); 5] = [
                    (
                        "Window (bp)",
                        egui::DragValue::new(&mut s.window_bp).range(60..=100_000),
                        "Records are cut into non-overlapping windows this long",
                    ),
                    (
                        "Steps",
                        egui::DragValue::new(&mut s.steps).range(1..=10_000_000),
                        "Optimizer steps of one batch each",
                    ),
                    (
                        "Batch size",
                        egui::DragValue::new(&mut s.batch_size).range(1..=4096),
                        "Windows per step",
                    ),
                    (
                        "Evaluate every (steps)",
                        egui::DragValue::new(&mut s.eval_every).range(1..=1_000_000),
                        "Loss and accuracy on the held-out windows (2 %), never trained on",
                    ),
                    (
                        "Checkpoint every (steps)",
                        egui::DragValue::new(&mut s.checkpoint_every).range(1..=1_000_000),
                        "A model folder you can fine-tune, and where a stopped run continues",
                    ),
                ];
                for (name, value, tip) in rows {
                    let label = ui.label(name);
                    ui.add(value).on_hover_text(tip).labelled_by(label.id);
                    ui.end_row();
                }
                let label = ui.label("Learning rate");
                ui.add(
                    egui::DragValue::new(&mut s.learning_rate)
                        .range(1e-7..=1e-1)
                        .speed(1e-5)
                        .custom_formatter(|v, _| format!("{v:.1e}")),
                )
                .labelled_by(label.id);
                ui.end_row();
            });
        ui.checkbox(&mut s.from_scratch, "Start from random weights")
            .on_hover_text(
                "Keep only the model's architecture and tokenizer: pretraining from scratch \
                 needs far more sequences and steps than adapting a pretrained model",
            );
    }

    fn plots_ui(&self, ui: &mut egui::Ui) {
        let h = &self.history;
        let height = (ui.available_height() / 3.0).clamp(120.0, 240.0);
        let link = egui::Id::unique("dnatune-pretrain-steps");
        let last_step = h.step.max(1) as f64;
        ui.label("Masked-language-model loss");
        Plot::new("pretrain_loss_plot")
            .height(height)
            .legend(Legend::default())
            .link_axis(link, [true, false])
            .x_axis_label("step")
            .y_axis_min_width(36.0)
            .include_x(last_step)
            .show(ui, |plot| {
                series_ui(plot, "training", &h.train_loss, series_color(0), false);
                series_ui(plot, "held out", &h.val_loss, series_color(2), true);
            });
        ui.label("Masked-token accuracy");
        Plot::new("pretrain_accuracy_plot")
            .height(height)
            .legend(Legend::default().position(Corner::LeftTop))
            .link_axis(link, [true, false])
            .x_axis_label("step")
            .y_axis_min_width(36.0)
            .include_x(last_step)
            .include_y(0.0)
            .include_y(0.1)
            .show(ui, |plot| {
                series_ui(plot, "training", &h.train_accuracy, series_color(0), false);
                series_ui(plot, "held out", &h.val_accuracy, series_color(2), true);
            });
    }
}

/// `runs_dir/pretrain-001`, `pretrain-002`, … (the first free one).
fn next_pretrain_dir(runs_dir: &Path) -> PathBuf {
    let mut n = 1;
    loop {
        let dir = runs_dir.join(format!("pretrain-{n:03}"));
        if !dir.exists() {
            return dir;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_follows_the_events() {
        let mut h = PretrainHistory::default();
        h.apply(&PretrainEvent::ModelReady {
            family: "ESM".into(),
            device: "cpu".into(),
            parameters: 10,
            from_scratch: false,
            start_step: 0,
            total_steps: 4,
            max_length: 8,
            masking: "token".into(),
        });
        for step in 1..=2 {
            h.apply(&PretrainEvent::Step {
                step,
                total_steps: 4,
                loss: 8.0 - step as f64,
                masked_accuracy: 0.1 * step as f64,
                learning_rate: 1e-3,
                grad_norm: 1.0,
                sequences_per_second: 5.0,
                elapsed_s: 1.0,
                eta_s: 2.0,
            });
        }
        h.apply(&PretrainEvent::Eval {
            step: 2,
            loss: 6.5,
            masked_accuracy: 0.25,
        });
        assert_eq!(h.train_loss, [[1.0, 7.0], [2.0, 6.0]]);
        assert_eq!(h.val_accuracy, [[2.0, 0.25]]);
        assert_eq!(h.progress(), 0.5);
        assert_eq!(h.checkpoint, None);
    }
}
