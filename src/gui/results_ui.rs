//! Step 4, results: the finished run's metrics (window and record level), the confusion matrix
//! as a heat map, per-class precision and recall, the ROC curve (binary), the run's settings
//! and data, and prediction on new FASTA files with the trained adapter.

use std::path::{Path, PathBuf};

use eframe::egui;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

use crate::adapter::bundle::{RunBundle, BUNDLE_FILE};
use crate::data::manifest::{write_atomically, ClassCounts};
use crate::data::{read_sequences, Manifest};
use crate::predict::{predictions_csv, Predictor, RecordPrediction};
use crate::train::metrics::{ConfusionMatrix, Metrics};
use crate::train::resolve_device;

use super::dialogs::Dialogs;
use super::run::Job;

/// Records per progress message while predicting.
const PREDICT_CHUNK: usize = 64;

type PredictJob = Job<(usize, usize), Result<(Vec<String>, Vec<RecordPrediction>), String>>;

/// How the prediction table is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Input order.
    Input,
    Id,
    /// Probability of the class with this id.
    Prob(usize),
    Predicted,
}

#[derive(Default)]
pub struct ResultsPanel {
    pub run_dir: Option<PathBuf>,
    pub bundle: Option<RunBundle>,
    pub load_error: Option<String>,
    class_counts: Vec<ClassCounts>,
    /// Test records: true class id and probabilities (from `test_predictions.csv`).
    test_records: Vec<(u32, Vec<f64>)>,
    predict_job: Option<PredictJob>,
    pub predict_progress: (usize, usize),
    pub predict_error: Option<String>,
    /// Labels and per-record predictions of the last prediction.
    pub predictions: Option<(Vec<String>, Vec<RecordPrediction>)>,
    sort: Option<(SortBy, bool)>,
    /// Indices into `predictions` in display order.
    order: Vec<usize>,
    pub saved: Option<Result<PathBuf, String>>,
    /// Hide file paths (snapshot images must not depend on where the test runs).
    pub hide_paths: bool,
}

impl ResultsPanel {
    /// Shows the run in `run_dir` (its `dnatune.json`, test predictions and manifest).
    pub fn load(&mut self, run_dir: &Path) {
        *self = ResultsPanel {
            run_dir: Some(run_dir.to_path_buf()),
            hide_paths: self.hide_paths,
            ..ResultsPanel::default()
        };
        match RunBundle::read(&run_dir.join(BUNDLE_FILE)) {
            Ok(bundle) => {
                self.test_records = read_test_predictions(
                    &run_dir.join(crate::train::TEST_PREDICTIONS_FILE),
                    &bundle.labels,
                );
                self.bundle = Some(bundle);
            }
            Err(e) => self.load_error = Some(e.to_string()),
        }
        // The manifest holds per-class counts per split; a missing one only hides them.
        if let Ok(manifest) = Manifest::read(&run_dir.join(crate::train::MANIFEST_FILE)) {
            self.class_counts = manifest.counts;
        }
    }

    pub fn is_predicting(&self) -> bool {
        self.predict_job.as_ref().is_some_and(Job::is_running)
    }

    /// Predicts the records of `files` with the run's adapter, off the UI thread.
    pub fn predict_files(&mut self, files: Vec<PathBuf>, ctx: &egui::Context) {
        let Some(run_dir) = self.run_dir.clone() else {
            self.predict_error = Some("finish or open a run first".into());
            return;
        };
        if files.is_empty() || self.is_predicting() {
            return;
        }
        self.predict_error = None;
        self.predictions = None;
        self.saved = None;
        self.predict_progress = (0, 0);
        let job = Job::spawn("dnatune-predict", ctx, move |reporter, cancel| {
            let device =
                resolve_device(crate::train::DeviceChoice::Auto).map_err(|e| e.to_string())?;
            let predictor = Predictor::load(&run_dir, None, &device).map_err(|e| e.to_string())?;
            let mut records = Vec::new();
            for file in &files {
                let read = read_sequences(file).map_err(|e| e.to_string())?;
                if read.is_empty() {
                    return Err(format!("{} holds no sequences", file.display()));
                }
                records.extend(read);
            }
            let total = records.len();
            let mut out = Vec::with_capacity(total);
            for chunk in records.chunks(PREDICT_CHUNK) {
                if cancel.is_cancelled() {
                    return Err("prediction stopped".into());
                }
                let predicted = predictor
                    .predict(chunk.iter().map(|r| (r.id.as_str(), r.bases.as_slice())))
                    .map_err(|e| e.to_string())?;
                out.extend(predicted);
                reporter.send((out.len(), total));
            }
            Ok((predictor.labels.clone(), out))
        });
        match job {
            Ok(job) => self.predict_job = Some(job),
            Err(e) => self.predict_error = Some(format!("could not start prediction: {e}")),
        }
    }

    /// Takes prediction progress and results. Call every frame.
    pub fn poll(&mut self) {
        let Some(job) = &mut self.predict_job else {
            return;
        };
        if let Some(progress) = job.drain().into_iter().last() {
            self.predict_progress = progress;
        }
        if let Some(result) = job.take_result() {
            match result {
                Ok(Ok(predictions)) => {
                    self.order = (0..predictions.1.len()).collect();
                    self.sort = None;
                    self.predictions = Some(predictions);
                }
                Ok(Err(message)) | Err(message) => self.predict_error = Some(message),
            }
            self.predict_job = None;
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, dialogs: &mut dyn Dialogs) {
        ui.heading("4 · Results");
        let Some(run_dir) = self.run_dir.clone() else {
            ui.label("No run yet: train a model (step 3) or open a previous run.");
            return;
        };
        ui.horizontal(|ui| {
            if !self.hide_paths {
                ui.label(format!("Run folder: {}", run_dir.display()));
            }
            if ui.button("Open run folder").clicked() {
                if let Err(e) = dialogs.open_path(&run_dir) {
                    self.load_error = Some(e);
                }
            }
        });
        if let Some(error) = &self.load_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if let Some(bundle) = self.bundle.clone() {
            self.metrics_ui(ui, &bundle);
            self.settings_ui(ui, &bundle);
        }
        ui.separator();
        self.predict_ui(ui, dialogs);
    }

    fn metrics_ui(&self, ui: &mut egui::Ui, bundle: &RunBundle) {
        ui.strong("Metrics of the best checkpoint");
        egui::Grid::new("results_metrics")
            .striped(true)
            .show(ui, |ui| {
                for header in [
                    "split",
                    "level",
                    "n",
                    "loss",
                    "accuracy",
                    "precision",
                    "recall",
                    "F1",
                    "MCC",
                    "AUROC",
                ] {
                    ui.strong(header);
                }
                ui.end_row();
                for (split, metrics) in [("validation", &bundle.validation), ("test", &bundle.test)]
                {
                    let Some(metrics) = metrics else { continue };
                    for (level, m) in [("record", &metrics.record), ("window", &metrics.window)] {
                        ui.label(split);
                        ui.label(level);
                        ui.label(m.n.to_string());
                        ui.label(m.loss.map_or("–".into(), |l| format!("{l:.4}")));
                        for value in [m.accuracy, m.precision, m.recall, m.f1, m.mcc] {
                            ui.label(format!("{value:.3}"));
                        }
                        ui.label(m.auroc.map_or("–".into(), |a| format!("{a:.3}")));
                        ui.end_row();
                    }
                }
            });
        let Some(test) = &bundle.test else {
            ui.label("The run has no test split.");
            return;
        };
        ui.add_space(8.0);
        ui.columns(2, |columns| {
            columns[0].strong("Confusion matrix (test records)");
            confusion_ui(&mut columns[0], &bundle.labels, &test.record.confusion);
            columns[0].add_space(6.0);
            per_class_ui(&mut columns[0], &bundle.labels, &test.record);
            if bundle.labels.len() == 2 && !self.test_records.is_empty() {
                columns[1].strong(format!(
                    "ROC curve (test records, positive class `{}`)",
                    bundle.labels[1]
                ));
                let points = roc_curve(&self.test_records);
                Plot::new("roc_plot")
                    .height(220.0)
                    .data_aspect(1.0)
                    .x_axis_label("false positive rate")
                    .y_axis_label("true positive rate")
                    .legend(Legend::default())
                    .show(&mut columns[1], |plot| {
                        plot.line(Line::new("ROC", PlotPoints::from(points)));
                        plot.line(Line::new(
                            "chance",
                            PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]),
                        ));
                    });
            }
        });
    }

    fn settings_ui(&self, ui: &mut egui::Ui, bundle: &RunBundle) {
        ui.add_space(8.0);
        ui.collapsing("Run settings and data", |ui| {
            let cfg = &bundle.train_config;
            egui::Grid::new("run_settings").show(ui, |ui| {
                let mut row = |name: &str, value: String| {
                    ui.label(name);
                    ui.label(value);
                    ui.end_row();
                };
                row(
                    "model",
                    format!("{} ({})", bundle.base_model, bundle.family.display_name()),
                );
                row(
                    "LoRA",
                    format!(
                        "rank {}, alpha {}, dropout {}",
                        cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout
                    ),
                );
                row(
                    "training",
                    format!(
                        "learning rate {}, batch {}, {} steps planned, best checkpoint at step {}",
                        cfg.learning_rate, cfg.batch_size, bundle.total_steps, bundle.best_step
                    ),
                );
                row("max tokens", bundle.max_length.to_string());
                row(
                    "windows",
                    match bundle.window.window_bp {
                        Some(bp) => format!(
                            "{bp} bp, stride {} bp, {:?} aggregation",
                            bundle.window.stride_bp.unwrap_or(bp),
                            bundle.aggregation
                        ),
                        None => "one per record".into(),
                    },
                );
                row("seed", bundle.seed.to_string());
            });
            if !self.class_counts.is_empty() {
                ui.add_space(4.0);
                egui::Grid::new("class_counts")
                    .striped(true)
                    .show(ui, |ui| {
                        for header in ["class", "train", "validation", "test"] {
                            ui.strong(header);
                        }
                        ui.end_row();
                        for counts in &self.class_counts {
                            ui.label(&counts.class);
                            ui.label(counts.train.to_string());
                            ui.label(counts.validation.to_string());
                            ui.label(counts.test.to_string());
                            ui.end_row();
                        }
                    });
            }
        });
    }

    fn predict_ui(&mut self, ui: &mut egui::Ui, dialogs: &mut dyn Dialogs) {
        ui.strong("Predict");
        ui.horizontal(|ui| {
            let busy = self.is_predicting();
            if ui
                .add_enabled(!busy, egui::Button::new("Predict on FASTA…"))
                .on_hover_text("Choose FASTA/FASTQ files (or drop them here) to classify with this run's adapter")
                .clicked()
            {
                let files = dialogs.pick_files();
                self.predict_files(files, &ui.ctx().clone());
            }
            if busy {
                let (done, total) = self.predict_progress;
                let fraction = if total == 0 { 0.0 } else { done as f32 / total as f32 };
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(240.0)
                        .text(format!("{done} of {total} records")),
                );
                if ui.button("Stop prediction").clicked() {
                    if let Some(job) = &self.predict_job {
                        job.cancel();
                    }
                }
            }
        });
        if let Some(error) = &self.predict_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let Some((labels, rows)) = self.predictions.clone() else {
            return;
        };
        ui.horizontal(|ui| {
            ui.label(format!("{} records predicted", rows.len()));
            if ui.button("Save CSV…").clicked() {
                if let Some(path) = dialogs.save_file("Save predictions", "predictions.csv") {
                    let bytes = predictions_csv(&labels, &rows);
                    self.saved = Some(
                        write_atomically(&path, &bytes)
                            .map(|()| path.clone())
                            .map_err(|e| format!("could not write {}: {e}", path.display())),
                    );
                }
            }
            match &self.saved {
                Some(Ok(path)) => {
                    if self.hide_paths {
                        ui.label("Saved");
                    } else {
                        ui.label(format!("Saved {}", path.display()));
                    }
                }
                Some(Err(message)) => {
                    ui.colored_label(ui.visuals().error_fg_color, message);
                }
                None => {}
            }
        });
        score_histogram_ui(ui, &labels, &rows);
        self.prediction_table_ui(ui, &labels, &rows);
    }

    fn prediction_table_ui(
        &mut self,
        ui: &mut egui::Ui,
        labels: &[String],
        rows: &[RecordPrediction],
    ) {
        let mut clicked = None;
        let column_width = 110.0;
        ui.horizontal(|ui| {
            let mut header = |ui: &mut egui::Ui, name: String, key: SortBy| {
                let arrow = match self.sort {
                    Some((by, ascending)) if by == key => {
                        if ascending {
                            " ^"
                        } else {
                            " v"
                        }
                    }
                    _ => "",
                };
                if ui
                    .add_sized(
                        [column_width, 18.0],
                        egui::Button::new(format!("{name}{arrow}")),
                    )
                    .on_hover_text("Sort by this column")
                    .clicked()
                {
                    clicked = Some(key);
                }
            };
            header(ui, "#".into(), SortBy::Input);
            header(ui, "id".into(), SortBy::Id);
            for (class, label) in labels.iter().enumerate() {
                header(ui, format!("prob_{label}"), SortBy::Prob(class));
            }
            header(ui, "predicted".into(), SortBy::Predicted);
        });
        if let Some(key) = clicked {
            let ascending = match self.sort {
                Some((by, ascending)) if by == key => !ascending,
                _ => !matches!(key, SortBy::Prob(_)),
            };
            self.sort = Some((key, ascending));
            self.order = sorted_order(rows, labels, key, ascending);
        }
        if self.order.len() != rows.len() {
            self.order = (0..rows.len()).collect();
        }
        let row_height = ui.text_style_height(&egui::TextStyle::Body);
        egui::ScrollArea::vertical()
            .id_salt("predictions_table")
            .max_height(300.0)
            .show_rows(ui, row_height, rows.len(), |ui, range| {
                for &index in &self.order[range] {
                    let row = &rows[index];
                    ui.horizontal(|ui| {
                        let cell = |ui: &mut egui::Ui, text: String| {
                            ui.add_sized(
                                [column_width, row_height],
                                egui::Label::new(text).truncate(),
                            );
                        };
                        cell(ui, (index + 1).to_string());
                        cell(ui, row.id.clone());
                        for p in &row.probs {
                            cell(ui, format!("{p:.4}"));
                        }
                        cell(
                            ui,
                            labels
                                .get(row.predicted as usize)
                                .cloned()
                                .unwrap_or_default(),
                        );
                    });
                }
            });
    }
}

/// Display order of `rows` sorted by `key`.
pub fn sorted_order(
    rows: &[RecordPrediction],
    labels: &[String],
    key: SortBy,
    ascending: bool,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    match key {
        SortBy::Input => {}
        SortBy::Id => order.sort_by(|&a, &b| rows[a].id.cmp(&rows[b].id)),
        SortBy::Prob(class) => order.sort_by(|&a, &b| {
            let pa = rows[a].probs.get(class).copied().unwrap_or(0.0);
            let pb = rows[b].probs.get(class).copied().unwrap_or(0.0);
            pa.total_cmp(&pb)
        }),
        SortBy::Predicted => order.sort_by(|&a, &b| {
            let la = labels.get(rows[a].predicted as usize);
            let lb = labels.get(rows[b].predicted as usize);
            la.cmp(&lb)
        }),
    }
    if !ascending {
        order.reverse();
    }
    order
}

/// Counts in cells shaded by their share of the row (the true class).
fn confusion_ui(ui: &mut egui::Ui, labels: &[String], confusion: &ConfusionMatrix) {
    let strong = ui.visuals().selection.bg_fill;
    egui::Grid::new("confusion_heatmap")
        .spacing([2.0, 2.0])
        .show(ui, |ui| {
            ui.label("true \\ predicted");
            for label in labels {
                ui.strong(label);
            }
            ui.end_row();
            for (row, label) in labels.iter().enumerate() {
                ui.strong(label);
                let row_total: u64 = (0..labels.len())
                    .map(|col| confusion.get(row as u32, col as u32))
                    .sum();
                for col in 0..labels.len() {
                    let count = confusion.get(row as u32, col as u32);
                    let share = if row_total == 0 {
                        0.0
                    } else {
                        count as f32 / row_total as f32
                    };
                    let fill = strong.gamma_multiply(0.15 + 0.85 * share);
                    egui::Frame::new()
                        .fill(fill)
                        .inner_margin(egui::Margin::symmetric(12, 6))
                        .show(ui, |ui| {
                            ui.label(count.to_string());
                        });
                }
                ui.end_row();
            }
        });
}

fn per_class_ui(ui: &mut egui::Ui, labels: &[String], metrics: &Metrics) {
    egui::Grid::new("per_class").striped(true).show(ui, |ui| {
        for header in ["class", "precision", "recall", "F1"] {
            ui.strong(header);
        }
        ui.end_row();
        for (class, label) in labels.iter().enumerate() {
            ui.label(label);
            ui.label(format!("{:.3}", metrics.confusion.precision(class as u32)));
            ui.label(format!("{:.3}", metrics.confusion.recall(class as u32)));
            ui.label(format!("{:.3}", metrics.confusion.f1(class as u32)));
            ui.end_row();
        }
    });
}

/// Histogram (20 bins) of the records' scores: for two classes the probability of the second
/// class (what a threshold acts on), otherwise the probability of the predicted class.
fn score_histogram_ui(ui: &mut egui::Ui, labels: &[String], rows: &[RecordPrediction]) {
    const BINS: usize = 20;
    let (title, scores): (String, Vec<f32>) = if labels.len() == 2 {
        (
            format!("probability of `{}`", labels[1]),
            rows.iter().map(|r| r.probs[1]).collect(),
        )
    } else {
        (
            "probability of the predicted class".to_string(),
            rows.iter().map(|r| r.probs[r.predicted as usize]).collect(),
        )
    };
    let mut counts = [0u64; BINS];
    for score in scores {
        let bin = ((score * BINS as f32) as usize).min(BINS - 1);
        counts[bin] += 1;
    }
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(bin, &count)| {
            Bar::new((bin as f64 + 0.5) / BINS as f64, count as f64).width(1.0 / BINS as f64)
        })
        .collect();
    Plot::new("score_histogram")
        .height(140.0)
        .x_axis_label(title)
        .y_axis_label("records")
        .show(ui, |plot| plot.bar_chart(BarChart::new("records", bars)));
}

/// `test_predictions.csv` as (true class id, probabilities); empty when it cannot be read.
fn read_test_predictions(path: &Path, labels: &[String]) -> Vec<(u32, Vec<f64>)> {
    let Ok(mut reader) = csv::Reader::from_path(path) else {
        return Vec::new();
    };
    let Ok(header) = reader.headers().cloned() else {
        return Vec::new();
    };
    let prob_columns: Vec<Option<usize>> = labels
        .iter()
        .map(|label| header.iter().position(|h| h == format!("prob_{label}")))
        .collect();
    let truth_column = header.iter().position(|h| h == "true_label");
    let mut out = Vec::new();
    for record in reader.records().map_while(Result::ok) {
        let Some(truth) = truth_column
            .and_then(|c| record.get(c))
            .and_then(|t| labels.iter().position(|l| l == t))
        else {
            continue;
        };
        let probs: Option<Vec<f64>> = prob_columns
            .iter()
            .map(|c| c.and_then(|c| record.get(c)).and_then(|v| v.parse().ok()))
            .collect();
        if let Some(probs) = probs {
            out.push((truth as u32, probs));
        }
    }
    out
}

/// ROC points `[false positive rate, true positive rate]` for class 1's probability, from
/// (0, 0) to (1, 1), ties moving diagonally.
pub fn roc_curve(records: &[(u32, Vec<f64>)]) -> Vec<[f64; 2]> {
    let mut scored: Vec<(f64, bool)> = records
        .iter()
        .filter_map(|(truth, probs)| probs.get(1).map(|&p| (p, *truth == 1)))
        .collect();
    let positives = scored.iter().filter(|(_, p)| *p).count() as f64;
    let negatives = scored.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return Vec::new();
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut points = vec![[0.0, 0.0]];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < scored.len() {
        let score = scored[i].0;
        while i < scored.len() && scored[i].0 == score {
            if scored[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push([fp / negatives, tp / positives]);
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_of_a_perfect_and_a_tied_scorer() {
        let perfect = vec![(1, vec![0.1, 0.9]), (0, vec![0.8, 0.2])];
        assert_eq!(
            roc_curve(&perfect),
            vec![[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
        );
        let tied = vec![(1, vec![0.5, 0.5]), (0, vec![0.5, 0.5])];
        assert_eq!(roc_curve(&tied), vec![[0.0, 0.0], [1.0, 1.0]]);
        assert!(roc_curve(&[(1, vec![0.5, 0.5])]).is_empty());
    }

    #[test]
    fn sorting_by_probability_descending_puts_the_highest_first() {
        let row = |id: &str, p: f32| RecordPrediction {
            id: id.into(),
            probs: vec![1.0 - p, p],
            predicted: u32::from(p > 0.5),
            n_windows: 1,
        };
        let rows = vec![row("a", 0.2), row("b", 0.9), row("c", 0.5)];
        let labels = vec!["x".to_string(), "y".to_string()];
        assert_eq!(
            sorted_order(&rows, &labels, SortBy::Prob(1), false),
            vec![1, 2, 0]
        );
        assert_eq!(
            sorted_order(&rows, &labels, SortBy::Id, true),
            vec![0, 1, 2]
        );
    }
}
