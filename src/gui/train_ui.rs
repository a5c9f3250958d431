//! Step 3, train: start and stop a run on a background thread, live plots of loss, F1 and
//! MCC, the results, and exporting the adapter.

use std::path::{Path, PathBuf};

use eframe::egui;
use egui_plot::{Corner, Legend, Line, Plot, PlotPoints, Points};

use crate::train::{train, Event, Metrics, RunSummary, StopReason, TrainConfig};

use super::dialogs::Dialogs;
use super::history::{downsample, RunHistory, MAX_PLOT_POINTS};
use super::run::{poll_run, Job};
use super::series_color;

type TrainJob = Job<Event, Result<RunSummary, String>>;

pub struct TrainPanel {
    /// Each run gets a new folder here.
    pub runs_dir: PathBuf,
    job: Option<TrainJob>,
    pub history: RunHistory,
    pub error: Option<String>,
    pub summary: Option<RunSummary>,
    /// Where the last export went, or why it failed.
    pub export_result: Option<Result<PathBuf, String>>,
    /// Show speed, ETA and paths; off for snapshot images, which must not change between runs.
    pub show_timings_and_paths: bool,
}

impl TrainPanel {
    pub fn new(runs_dir: PathBuf) -> Self {
        TrainPanel {
            runs_dir,
            job: None,
            history: RunHistory::default(),
            error: None,
            summary: None,
            export_result: None,
            show_timings_and_paths: true,
        }
    }

    pub fn is_running(&self) -> bool {
        self.job.as_ref().is_some_and(Job::is_running)
    }

    /// Starts `cfg` (its `out_dir` is replaced by a new folder under `runs_dir`).
    pub fn start(&mut self, mut cfg: TrainConfig, ctx: &egui::Context) {
        if self.is_running() {
            return;
        }
        self.history = RunHistory::default();
        self.error = None;
        self.summary = None;
        self.export_result = None;
        cfg.out_dir = next_run_dir(&self.runs_dir);
        self.history.status = "reading the data".to_string();
        let job = Job::spawn("dnatune-train", ctx, move |reporter, cancel| {
            train(&cfg, &cancel, |event| reporter.send(event)).map_err(|e| e.to_string())
        });
        match job {
            Ok(job) => self.job = Some(job),
            Err(e) => self.error = Some(format!("could not start the training thread: {e}")),
        }
    }

    /// Shows a finished run (reopened from its folder): its curves and results, as if it had
    /// just ended. Ignored while a run is in progress, whose live curves would be replaced.
    pub fn show_run(&mut self, history: RunHistory, summary: RunSummary) {
        if self.is_running() {
            return;
        }
        self.history = history;
        self.summary = Some(summary);
        self.error = None;
        self.export_result = None;
    }

    /// Asks the run to stop after the current step; the best checkpoint is kept.
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

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        ready: Result<TrainConfig, String>,
        dialogs: &mut dyn Dialogs,
    ) {
        ui.heading("3 · Train");
        ui.horizontal(|ui| {
            let running = self.is_running();
            let can_start = ready.is_ok() && !running;
            let start = ui.add_enabled(can_start, egui::Button::new("Start training"));
            if let Err(reason) = &ready {
                start.clone().on_disabled_hover_text(reason.as_str());
                ui.label(reason.as_str());
            }
            if start.clicked() {
                if let Ok(cfg) = ready {
                    self.start(cfg, &ui.ctx().clone());
                }
            }
            if ui
                .add_enabled(running, egui::Button::new("Stop"))
                .on_hover_text("Stop after the current step; the best checkpoint so far is kept")
                .clicked()
            {
                self.stop();
            }
        });
        if self.is_running() || self.history.step > 0 {
            let h = &self.history;
            // Speed and time left only while the run goes on.
            let text = if self.show_timings_and_paths && self.is_running() {
                let memory = h
                    .peak_memory_mib
                    .map(|mib| format!(" · peak memory {mib:.0} MiB"))
                    .unwrap_or_default();
                format!(
                    "step {}/{} · {:.1} seq/s · ETA {}{memory}",
                    h.step,
                    h.total_steps,
                    h.sequences_per_second,
                    duration(h.eta_s)
                )
            } else {
                format!("step {}/{}", h.step, h.total_steps)
            };
            ui.add(egui::ProgressBar::new(h.progress()).text(text));
        }
        if !self.history.status.is_empty() {
            ui.label(&self.history.status);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        self.plots_ui(ui);
        if let Some(summary) = self.summary.clone() {
            self.results_ui(ui, &summary, dialogs);
        }
    }

    fn plots_ui(&self, ui: &mut egui::Ui) {
        let h = &self.history;
        let height = (ui.available_height() / 3.0).clamp(120.0, 260.0);
        let link = egui::Id::unique("dnatune-steps");
        // Both plots span step 0 to the latest step, so the curves line up before the first
        // evaluation too.
        let last_step = h.step.max(1) as f64;
        ui.label("Loss");
        Plot::new("loss_plot")
            .height(height)
            .legend(Legend::default())
            .link_axis(link, [true, false])
            .x_axis_label("step")
            // The same axis width on both plots keeps their steps aligned.
            .y_axis_min_width(36.0)
            .include_x(0.0)
            .include_x(last_step)
            .show(ui, |plot| {
                let series = [
                    ("training loss", &h.train_loss, false),
                    ("training loss (smoothed)", &h.train_loss_smoothed, false),
                    ("validation loss", &h.val_loss, true),
                ];
                for (i, (name, values, marked)) in series.into_iter().enumerate() {
                    series_ui(plot, name, values, series_color(i), marked);
                }
            });
        ui.label("Validation F1 and MCC");
        Plot::new("metrics_plot")
            .height(height)
            // Scores rise from the left: the top-left corner is where the legend hides nothing.
            .legend(Legend::default().position(Corner::LeftTop))
            .link_axis(link, [true, false])
            .x_axis_label("step")
            // The same axis width on both plots keeps their steps aligned.
            .y_axis_min_width(36.0)
            .include_x(0.0)
            .include_x(last_step)
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |plot| {
                series_ui(plot, "F1", &h.val_f1, series_color(0), true);
                series_ui(plot, "MCC", &h.val_mcc, series_color(1), true);
            });
    }

    fn results_ui(&mut self, ui: &mut egui::Ui, summary: &RunSummary, dialogs: &mut dyn Dialogs) {
        ui.separator();
        let how = match summary.stop_reason {
            StopReason::Completed => "Training finished",
            StopReason::EarlyStopped => "Training stopped early (no more improvement)",
            StopReason::Cancelled => "Training stopped",
        };
        ui.strong(format!(
            "{how}: best checkpoint at step {} of {}",
            summary.best_step, summary.steps
        ));
        egui::Grid::new("results").striped(true).show(ui, |ui| {
            for header in ["", "n", "accuracy", "F1", "MCC", "AUROC"] {
                ui.strong(header);
            }
            ui.end_row();
            let rows = [
                ("validation", summary.validation.as_ref().map(|m| &m.record)),
                ("test", summary.test.as_ref().map(|m| &m.record)),
            ];
            for (name, metrics) in rows {
                if let Some(m) = metrics {
                    metric_row(ui, name, m);
                }
            }
        });
        if let Some(adapter) = &summary.adapter_dir {
            if ui.button("Export adapter…").clicked() {
                if let Some(dest) = dialogs.save_folder("Export the adapter", "dnatune-adapter") {
                    self.export_result =
                        Some(export_run(&summary.out_dir, adapter, &dest).map(|()| dest.clone()));
                }
            }
        }
        match &self.export_result {
            Some(Ok(dest)) => {
                if self.show_timings_and_paths {
                    ui.label(format!("Adapter exported to {}", dest.display()));
                } else {
                    ui.label("Adapter exported to the chosen folder");
                }
            }
            Some(Err(message)) => {
                ui.colored_label(ui.visuals().error_fg_color, message);
            }
            None => {}
        }
    }
}

fn metric_row(ui: &mut egui::Ui, name: &str, m: &Metrics) {
    ui.label(name);
    ui.label(m.n.to_string());
    ui.label(format!("{:.3}", m.accuracy));
    ui.label(format!("{:.3}", m.f1));
    ui.label(format!("{:.3}", m.mcc));
    ui.label(m.auroc.map_or("–".to_string(), |a| format!("{a:.3}")));
    ui.end_row();
}

/// Copies the adapter (PEFT files), `dnatune.json` and the model card into a new folder
/// `dest`, written beside it first and renamed, so an interrupted export leaves nothing.
pub fn export_run(run_dir: &Path, adapter_dir: &Path, dest: &Path) -> Result<(), String> {
    if dest.exists() {
        return Err(format!(
            "{} already exists; choose a new folder name",
            dest.display()
        ));
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest.file_name().ok_or("the export needs a folder name")?;
    let staging = parent.join(format!(".{}.partial", name.to_string_lossy()));
    let result = (|| -> std::io::Result<()> {
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        for entry in std::fs::read_dir(adapter_dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), staging.join(entry.file_name()))?;
            }
        }
        for file in ["dnatune.json", "README.md"] {
            let source = run_dir.join(file);
            if source.is_file() {
                std::fs::copy(&source, staging.join(file))?;
            }
        }
        std::fs::rename(&staging, dest)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        format!("could not export the adapter to {}: {e}", dest.display())
    })
}

/// `runs_dir/run-001`, `run-002`, … (the first free one).
fn next_run_dir(runs_dir: &Path) -> PathBuf {
    (1..)
        .map(|n| runs_dir.join(format!("run-{n:03}")))
        .find(|dir| !dir.exists())
        .unwrap_or_else(|| runs_dir.join("run"))
}

fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// One curve in one colour; evaluations are few, so `marked` adds a marker at each one (a
/// single evaluation shows as a dot).
pub(crate) fn series_ui(
    plot: &mut egui_plot::PlotUi<'_>,
    name: &str,
    values: &[[f64; 2]],
    color: egui::Color32,
    marked: bool,
) {
    let values = downsample(values, MAX_PLOT_POINTS);
    plot.line(Line::new(name, PlotPoints::from(values.clone())).color(color));
    if marked {
        plot.points(
            Points::new(name, PlotPoints::from(values))
                .color(color)
                .radius(3.0),
        );
    }
}
