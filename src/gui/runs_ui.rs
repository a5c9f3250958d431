//! The runs folder: previous runs listed newest first (date, model, data, best validation MCC
//! and F1, test MCC), reopened into the train step, renamed, deleted after a confirmation,
//! and compared side by side (a metrics table and overlaid validation curves).
//!
//! The folder is read on demand (when the step is shown, after a run, on Refresh), never
//! every frame. A folder that cannot be read is listed with the reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use eframe::egui;
use egui_plot::{Corner, Legend, Plot};
use serde::Deserialize;

use crate::adapter::bundle::{RunBundle, BUNDLE_FILE};
use crate::train::{Event, Metrics, RunSummary, StopReason};

use super::history::RunHistory;
use super::series_color;
use super::train_ui::series_ui;

/// Files the trainer writes beside `dnatune.json` (the same names as in `crate::train`).
const HISTORY_FILE: &str = "history.jsonl";
const MANIFEST_FILE: &str = "manifest.json";
const ADAPTER_DIR: &str = "adapter";

/// One run folder, read back: what the list shows and what reopening it needs.
#[derive(Debug, Clone)]
pub struct RunEntry {
    /// The folder's name (what the list shows and renaming changes).
    pub name: String,
    pub dir: PathBuf,
    pub bundle: RunBundle,
    /// The curves, rebuilt from `history.jsonl`.
    pub history: RunHistory,
    pub summary: RunSummary,
    /// Seconds since 1970 (UTC): when `dnatune.json` was written, else the folder's
    /// modification time.
    pub created_unix: Option<u64>,
    /// Records per class in class order (from `manifest.json`); empty when unknown.
    pub records_per_class: Vec<u64>,
    /// The input files (from `manifest.json`).
    pub input_files: Vec<PathBuf>,
    /// What could be read only in part, e.g. a damaged line of the history.
    pub note: Option<String>,
}

/// The parts of `manifest.json` the list needs (the windows are skipped).
#[derive(Deserialize)]
struct ManifestSummary {
    files: Vec<ManifestFile>,
    records: Vec<ManifestRecordClass>,
}

#[derive(Deserialize)]
struct ManifestFile {
    path: PathBuf,
}

#[derive(Deserialize)]
struct ManifestRecordClass {
    class: u32,
}

impl RunEntry {
    /// Reads the run folder `dir`; the error says what is missing or damaged.
    pub fn read(dir: &Path) -> Result<RunEntry, String> {
        let name = folder_name(dir);
        let bundle_path = dir.join(BUNDLE_FILE);
        if !bundle_path.is_file() {
            return Err(format!(
                "no {BUNDLE_FILE}: the run is still in progress, or it stopped before its \
                 first checkpoint"
            ));
        }
        let bundle = RunBundle::read(&bundle_path).map_err(|e| e.to_string())?;
        let history_path = dir.join(HISTORY_FILE);
        let (history, note) = match std::fs::read_to_string(&history_path) {
            Ok(text) => history_from_jsonl(&text),
            Err(e) => (
                RunHistory::default(),
                Some(format!(
                    "no curves: cannot read {}: {e}",
                    history_path.display()
                )),
            ),
        };
        let adapter_dir = dir.join(ADAPTER_DIR);
        let adapter_dir = adapter_dir.is_dir().then_some(adapter_dir);
        let summary = summary_from_bundle(dir, &bundle, &history, adapter_dir);
        let (records_per_class, input_files) = read_manifest(&dir.join(MANIFEST_FILE))
            .map(|manifest| {
                let mut counts = vec![0u64; bundle.labels.len()];
                for record in &manifest.records {
                    if let Some(count) = counts.get_mut(record.class as usize) {
                        *count += 1;
                    }
                }
                let files = manifest.files.into_iter().map(|f| f.path).collect();
                (counts, files)
            })
            .unwrap_or_default();
        let mut history = history;
        history.status = format!("Reopened {name} ({})", dir.display());
        if bundle.stop_reason.is_some() {
            // The run has ended: nothing is left to wait for.
            history.eta_s = 0.0;
        }
        history.summary = Some(summary.clone());
        Ok(RunEntry {
            created_unix: bundle.created_unix.or_else(|| modified_unix(dir)),
            name,
            dir: dir.to_path_buf(),
            bundle,
            history,
            summary,
            records_per_class,
            input_files,
            note,
        })
    }

    /// Validation metrics of the best checkpoint (record level).
    pub fn validation(&self) -> Option<&Metrics> {
        self.bundle.validation.as_ref().map(|m| &m.record)
    }

    /// Test metrics of the best checkpoint (record level).
    pub fn test(&self) -> Option<&Metrics> {
        self.bundle.test.as_ref().map(|m| &m.record)
    }

    /// The Hub model's name ("DNA_bert_6" of "zhihan1996/DNA_bert_6"), or "DNABERT (local
    /// folder)" for a model on disk, whose folder name rarely says much.
    pub fn model_text(&self) -> String {
        let base = self.bundle.base_model.as_str();
        let local = Path::new(base).is_absolute() || base.starts_with('.') || base.contains('\\');
        if local {
            format!("{} (local folder)", self.bundle.family.display_name())
        } else {
            shorten_front(base.rsplit('/').next().unwrap_or(base), 28)
        }
    }

    /// "promoter 373 · non_promoter 1000" (records per class), or the class names when the
    /// manifest is missing.
    pub fn data_text(&self) -> String {
        if self.records_per_class.len() == self.bundle.labels.len()
            && !self.records_per_class.is_empty()
        {
            let parts: Vec<String> = self
                .bundle
                .labels
                .iter()
                .zip(&self.records_per_class)
                .map(|(label, n)| format!("{label} {n}"))
                .collect();
            parts.join(" · ")
        } else {
            self.bundle.labels.join(" · ")
        }
    }

    /// "finished", "stopped early", "stopped" or "incomplete" (no final results written).
    pub fn ending_text(&self) -> &'static str {
        match self.bundle.stop_reason {
            Some(StopReason::Completed) => "finished",
            Some(StopReason::EarlyStopped) => "stopped early",
            Some(StopReason::Cancelled) => "stopped",
            None => "incomplete",
        }
    }
}

/// The curves of a run from its `history.jsonl` (one event per line). Reading stops at the
/// first line that is not an event; the note says which.
pub fn history_from_jsonl(text: &str) -> (RunHistory, Option<String>) {
    let mut history = RunHistory::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(event) => history.apply(&event),
            Err(e) => {
                let note = format!(
                    "{HISTORY_FILE} line {} could not be read ({e}); the curves stop there",
                    index + 1
                );
                return (history, Some(note));
            }
        }
    }
    (history, None)
}

/// The [`RunSummary`] that `train` returned for this run, rebuilt from its bundle and
/// history (the elapsed time and the last step come from the history).
pub fn summary_from_bundle(
    out_dir: &Path,
    bundle: &RunBundle,
    history: &RunHistory,
    adapter_dir: Option<PathBuf>,
) -> RunSummary {
    RunSummary {
        out_dir: out_dir.to_path_buf(),
        adapter_dir,
        // A bundle without a stop reason was written at a checkpoint of a run that never
        // reached its end.
        stop_reason: bundle.stop_reason.unwrap_or(StopReason::Cancelled),
        classes: bundle.labels.clone(),
        steps: history.step.max(bundle.best_step),
        total_steps: bundle.total_steps,
        best_step: bundle.best_step,
        metric: bundle.metric,
        best_value: bundle
            .validation
            .as_ref()
            .and_then(|m| bundle.metric.value(&m.record)),
        validation: bundle.validation.clone(),
        test: bundle.test.clone(),
        elapsed_s: history.elapsed_s,
        device: history.device.clone(),
        peak_memory_mib: history.peak_memory_mib,
    }
}

/// One folder of the runs folder: read, or why not.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub name: String,
    pub dir: PathBuf,
    pub run: Result<Box<RunEntry>, String>,
}

impl RunRow {
    fn created_unix(&self) -> Option<u64> {
        match &self.run {
            Ok(entry) => entry.created_unix,
            Err(_) => modified_unix(&self.dir),
        }
    }
}

/// The folders of `runs_dir`, newest first (hidden ones, whose names start with a dot, are
/// skipped). A missing folder has no runs yet.
pub fn scan_runs(runs_dir: &Path) -> Result<Vec<RunRow>, String> {
    let listing = match std::fs::read_dir(runs_dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", runs_dir.display())),
    };
    let mut rows: Vec<(Option<u64>, RunRow)> = Vec::new();
    for item in listing {
        let item = item.map_err(|e| format!("cannot list {}: {e}", runs_dir.display()))?;
        let dir = item.path();
        let name = folder_name(&dir);
        if name.starts_with('.') || !dir.is_dir() {
            continue;
        }
        let run = RunEntry::read(&dir).map(Box::new);
        let row = RunRow { name, dir, run };
        rows.push((row.created_unix(), row));
    }
    rows.sort_by(|(a_time, a), (b_time, b)| b_time.cmp(a_time).then_with(|| b.name.cmp(&a.name)));
    Ok(rows.into_iter().map(|(_, row)| row).collect())
}

/// What the runs step asks the app to do.
#[derive(Debug, Clone)]
pub enum RunsCommand {
    /// Show this run in the train step.
    Open {
        history: Box<RunHistory>,
        summary: Box<RunSummary>,
    },
}

/// A rename being typed.
#[derive(Debug, Clone)]
struct Rename {
    from: String,
    to: String,
    focus_requested: bool,
}

/// A delete waiting for its confirmation.
#[derive(Debug, Clone)]
struct PendingDelete {
    name: String,
    /// The question was on screen in an earlier frame. The click that opened it must not
    /// count as a click outside it, which would close it at once.
    shown: bool,
}

/// The runs step.
pub struct RunsPanel {
    pub rows: Vec<RunRow>,
    /// Why the runs folder could not be listed.
    pub scan_error: Option<String>,
    /// Names of the runs ticked for comparison.
    pub compare: BTreeSet<String>,
    /// Show the dates (off for snapshots, which must not depend on the clock).
    pub show_dates_and_paths: bool,
    /// What the last rename or delete did, or why it failed.
    pub message: Option<Result<String, String>>,
    stale: bool,
    rename: Option<Rename>,
    confirm_delete: Option<PendingDelete>,
}

impl Default for RunsPanel {
    fn default() -> Self {
        RunsPanel {
            rows: Vec::new(),
            scan_error: None,
            compare: BTreeSet::new(),
            show_dates_and_paths: true,
            message: None,
            stale: true,
            rename: None,
            confirm_delete: None,
        }
    }
}

impl RunsPanel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the runs folder again the next time the list is shown (and forgets the last
    /// rename or delete message).
    pub fn mark_stale(&mut self) {
        self.stale = true;
        self.message = None;
    }

    /// Reads the runs folder now.
    pub fn refresh(&mut self, runs_dir: &Path) {
        self.stale = false;
        match scan_runs(runs_dir) {
            Ok(rows) => {
                self.rows = rows;
                self.scan_error = None;
            }
            Err(message) => {
                self.rows.clear();
                self.scan_error = Some(message);
            }
        }
        let readable: BTreeSet<&str> = self
            .rows
            .iter()
            .filter(|row| row.run.is_ok())
            .map(|row| row.name.as_str())
            .collect();
        self.compare.retain(|name| readable.contains(name.as_str()));
    }

    /// Renames the run folder `from` to `to` (a plain folder name that is not taken yet).
    pub fn rename(&mut self, runs_dir: &Path, from: &str, to: &str) -> Result<(), String> {
        let to = to.trim();
        check_run_name(to)?;
        let source = runs_dir.join(from);
        let target = runs_dir.join(to);
        if to == from {
            return Ok(());
        }
        if target.exists() {
            return Err(format!(
                "a run called “{to}” already exists in {}; choose another name",
                runs_dir.display()
            ));
        }
        std::fs::rename(&source, &target)
            .map_err(|e| format!("could not rename {from} to {to}: {e}"))?;
        if self.compare.remove(from) {
            self.compare.insert(to.to_string());
        }
        self.refresh(runs_dir);
        Ok(())
    }

    /// Deletes the run folder `name` and everything in it.
    pub fn delete(&mut self, runs_dir: &Path, name: &str) -> Result<(), String> {
        check_run_name(name)?;
        let dir = runs_dir.join(name);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("could not delete {}: {e}", dir.display()))?;
        self.compare.remove(name);
        self.refresh(runs_dir);
        Ok(())
    }

    /// The ticked runs that could be read, in list order.
    pub fn compared(&self) -> Vec<&RunEntry> {
        self.rows
            .iter()
            .filter(|row| self.compare.contains(&row.name))
            .filter_map(|row| row.run.as_ref().ok().map(|entry| &**entry))
            .collect()
    }

    /// The list, its actions and the comparison. `training`: a run is in progress, so
    /// nothing may be reopened, renamed or deleted (its folder is being written).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        runs_dir: &Path,
        training: bool,
    ) -> Option<RunsCommand> {
        if self.stale {
            self.refresh(runs_dir);
        }
        ui.heading("Runs");
        ui.horizontal(|ui| {
            if self.show_dates_and_paths {
                ui.label(format!("Runs folder: {}", runs_dir.display()));
            } else {
                ui.label("Runs folder");
            }
            if ui
                .button("Refresh")
                .on_hover_text("Read the runs folder again")
                .clicked()
            {
                self.message = None;
                self.refresh(runs_dir);
            }
        });
        if let Some(error) = &self.scan_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        match &self.message {
            Some(Ok(text)) => {
                ui.label(text);
            }
            Some(Err(text)) => {
                ui.colored_label(ui.visuals().error_fg_color, text);
            }
            None => {}
        }
        if training {
            ui.label("A training run is in progress: runs can be reopened, renamed or deleted once it ends.");
        }
        ui.separator();
        let command = if self.rows.is_empty() {
            if self.scan_error.is_none() {
                ui.label("No runs yet. Each training run is saved here when it ends.");
            }
            None
        } else {
            self.list_ui(ui, runs_dir, training)
        };
        self.delete_modal_ui(ui, runs_dir);
        ui.separator();
        self.compare_ui(ui);
        command
    }

    fn list_ui(
        &mut self,
        ui: &mut egui::Ui,
        runs_dir: &Path,
        training: bool,
    ) -> Option<RunsCommand> {
        let mut command = None;
        let mut start_rename = None;
        let mut confirm_rename = false;
        let mut cancel_rename = false;
        let busy_reason = "Not while a training run is in progress";
        // A narrow window scrolls the list sideways rather than hiding its buttons.
        egui::ScrollArea::horizontal()
            .id_salt("runs_list_scroll")
            .show(ui, |ui| {
                egui::Grid::new("runs_list")
                    .striped(true)
                    .spacing([10.0, 6.0])
                    .show(ui, |ui| {
                        let mut headers = vec!["Compare", "Run"];
                        if self.show_dates_and_paths {
                            headers.push("Date (UTC)");
                        }
                        headers.extend([
                            "Model",
                            "Data (records)",
                            "Val MCC",
                            "Val F1",
                            "Test MCC",
                            "",
                        ]);
                        for header in headers {
                            ui.strong(header);
                        }
                        ui.end_row();
                        for row in &self.rows {
                            let name = row.name.as_str();
                            let entry = row.run.as_ref().ok();
                            let mut ticked = self.compare.contains(name);
                            let tick = ui
                                .add_enabled(
                                    entry.is_some(),
                                    egui::Checkbox::without_text(&mut ticked),
                                )
                                .accessible_name(format!("Compare {name}"));
                            if tick.changed() {
                                if ticked {
                                    self.compare.insert(name.to_string());
                                } else {
                                    self.compare.remove(name);
                                }
                            }
                            let renaming = self.rename.as_mut().filter(|r| r.from == name);
                            if let Some(rename) = renaming {
                                let field = ui
                                    .add(
                                        egui::TextEdit::singleline(&mut rename.to)
                                            .desired_width(160.0),
                                    )
                                    .accessible_name(format!("New name for {name}"));
                                if !rename.focus_requested {
                                    field.request_focus();
                                    rename.focus_requested = true;
                                }
                                if field.lost_focus()
                                    && ui.input(|i| i.key_pressed(egui::Key::Enter))
                                {
                                    confirm_rename = true;
                                }
                            } else {
                                ui.horizontal(|ui| {
                                    ui.label(name).on_hover_text(row.dir.display().to_string());
                                    // Only the unusual endings are worth the space.
                                    if let Some(entry) =
                                        entry.filter(|e| e.ending_text() != "finished")
                                    {
                                        ui.weak(entry.ending_text());
                                    }
                                });
                            }
                            if self.show_dates_and_paths {
                                ui.label(
                                    row.created_unix().map_or("–".to_string(), format_unix_utc),
                                );
                            }
                            match entry {
                                Some(entry) => {
                                    ui.label(entry.model_text())
                                        .on_hover_text(&entry.bundle.base_model);
                                    let files: Vec<String> = entry
                                        .input_files
                                        .iter()
                                        .map(|p| p.display().to_string())
                                        .collect();
                                    let data = ui.label(entry.data_text());
                                    if !files.is_empty() {
                                        data.on_hover_text(files.join("\n"));
                                    }
                                    let mcc =
                                        ui.label(metric_text(entry.validation().map(|m| m.mcc)));
                                    if let Some(note) = &entry.note {
                                        mcc.on_hover_text(note);
                                    }
                                    ui.label(metric_text(entry.validation().map(|m| m.f1)));
                                    ui.label(metric_text(entry.test().map(|m| m.mcc)));
                                }
                                None => {
                                    let error = row.run.as_ref().err().map_or("", String::as_str);
                                    ui.colored_label(
                                        ui.visuals().error_fg_color,
                                        "cannot be read (below)",
                                    )
                                    .on_hover_text(error);
                                    for _ in 0..4 {
                                        ui.label("");
                                    }
                                }
                            }
                            ui.horizontal(|ui| {
                                if self.rename.as_ref().is_some_and(|r| r.from == name) {
                                    if ui.button("Rename").clicked() {
                                        confirm_rename = true;
                                    }
                                    if ui.button("Cancel").clicked() {
                                        cancel_rename = true;
                                    }
                                    return;
                                }
                                let open = ui
                                    .add_enabled(
                                        entry.is_some() && !training,
                                        egui::Button::new("Open"),
                                    )
                                    .accessible_name(format!("Open {name}"))
                                    .on_hover_text("Show its curves and results in the train step")
                                    .on_disabled_hover_text(if entry.is_none() {
                                        "This folder cannot be read"
                                    } else {
                                        busy_reason
                                    });
                                if open.clicked() {
                                    if let Some(entry) = entry {
                                        command = Some(RunsCommand::Open {
                                            history: Box::new(entry.history.clone()),
                                            summary: Box::new(entry.summary.clone()),
                                        });
                                    }
                                }
                                let rename = ui
                                    .add_enabled(!training, egui::Button::new("Rename…"))
                                    .accessible_name(format!("Rename {name}"))
                                    .on_disabled_hover_text(busy_reason);
                                if rename.clicked() {
                                    start_rename = Some(name.to_string());
                                }
                                let delete = ui
                                    .add_enabled(!training, egui::Button::new("Delete…"))
                                    .accessible_name(format!("Delete {name}"))
                                    .on_disabled_hover_text(busy_reason);
                                if delete.clicked() {
                                    self.confirm_delete = Some(PendingDelete {
                                        name: name.to_string(),
                                        shown: false,
                                    });
                                }
                            });
                            ui.end_row();
                        }
                    });
            });
        for row in &self.rows {
            if let Err(error) = &row.run {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("{} cannot be read: {error}", row.name),
                );
            }
        }
        if let Some(from) = start_rename {
            self.rename = Some(Rename {
                to: from.clone(),
                from,
                focus_requested: false,
            });
        }
        let unchanged = self.rename.as_ref().is_some_and(|r| r.to.trim() == r.from);
        if cancel_rename || (confirm_rename && unchanged) {
            self.rename = None;
        } else if confirm_rename {
            if let Some(rename) = self.rename.take() {
                match self.rename(runs_dir, &rename.from, &rename.to) {
                    Ok(()) => {
                        self.message = Some(Ok(format!(
                            "Renamed {} to {}",
                            rename.from,
                            rename.to.trim()
                        )));
                    }
                    Err(message) => {
                        self.message = Some(Err(message));
                        // Keep the field open so the name can be corrected.
                        self.rename = Some(Rename {
                            focus_requested: false,
                            ..rename
                        });
                    }
                }
            }
        }
        command
    }

    fn delete_modal_ui(&mut self, ui: &mut egui::Ui, runs_dir: &Path) {
        let Some(PendingDelete { name, shown }) = self.confirm_delete.clone() else {
            return;
        };
        let dir = runs_dir.join(&name);
        let mut decided = None;
        let modal = egui::Modal::new(egui::Id::unique("confirm_delete_run")).show(ui.ctx(), |ui| {
            ui.heading(format!("Delete {name}?"));
            ui.label(format!(
                "This removes the folder {} with its adapter and results. It cannot be undone.",
                dir.display()
            ));
            ui.horizontal(|ui| {
                if ui.button("Delete").clicked() {
                    decided = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    decided = Some(false);
                }
            });
        });
        if shown && decided.is_none() && modal.should_close() {
            decided = Some(false);
        }
        match decided {
            Some(true) => {
                self.confirm_delete = None;
                self.message = Some(
                    self.delete(runs_dir, &name)
                        .map(|()| format!("Deleted {name}")),
                );
            }
            Some(false) => self.confirm_delete = None,
            None => {
                if let Some(pending) = &mut self.confirm_delete {
                    pending.shown = true;
                }
            }
        }
    }

    fn compare_ui(&mut self, ui: &mut egui::Ui) {
        let runs = self.compared();
        if runs.len() < 2 {
            ui.label("Tick two or more runs to compare them.");
            return;
        }
        ui.heading("Compare");
        let columns: Vec<Vec<String>> = runs.iter().map(|run| compare_column(run)).collect();
        egui::ScrollArea::horizontal()
            .id_salt("runs_compare_scroll")
            .show(ui, |ui| {
                egui::Grid::new("runs_compare")
                    .striped(true)
                    .spacing([18.0, 4.0])
                    .show(ui, |ui| {
                        ui.strong("");
                        for run in &runs {
                            ui.strong(&run.name);
                        }
                        ui.end_row();
                        for (index, what) in COMPARE_ROWS.iter().enumerate() {
                            ui.label(*what);
                            for column in &columns {
                                ui.label(column.get(index).map_or("", String::as_str));
                            }
                            ui.end_row();
                        }
                    });
            });
        ui.label("Record-level metrics of each run's best checkpoint.");
        let link = egui::Id::unique("dnatune-compare-steps");
        for (title, id, mcc) in [
            ("Validation MCC", "compare_mcc_plot", true),
            ("Validation F1", "compare_f1_plot", false),
        ] {
            ui.label(title);
            Plot::new(id)
                .height(220.0)
                .legend(Legend::default().position(Corner::LeftTop))
                .link_axis(link, [true, false])
                .x_axis_label("step")
                .include_y(0.0)
                .include_y(1.0)
                // The wheel scrolls the page here; the plots are short and seldom panned.
                .allow_scroll(false)
                .show(ui, |plot| {
                    for (i, run) in runs.iter().enumerate() {
                        let curve = if mcc {
                            &run.history.val_mcc
                        } else {
                            &run.history.val_f1
                        };
                        series_ui(plot, &run.name, curve, series_color(i), true);
                    }
                });
        }
    }
}

/// The rows of the comparison table; [`compare_column`] gives one run's values in this order.
const COMPARE_ROWS: [&str; 12] = [
    "model",
    "LoRA rank",
    "learning rate",
    "epochs",
    "validation accuracy",
    "validation F1",
    "validation MCC",
    "validation AUROC",
    "test accuracy",
    "test F1",
    "test MCC",
    "test AUROC",
];

/// One run's settings and record-level metrics, in the order of [`COMPARE_ROWS`].
fn compare_column(run: &RunEntry) -> Vec<String> {
    let cfg = &run.bundle.train_config;
    let epochs = match cfg.max_steps {
        Some(steps) => format!("{} (at most {steps} steps)", cfg.epochs),
        None => cfg.epochs.to_string(),
    };
    let mut column = vec![
        format!(
            "{}: {}",
            run.bundle.family.display_name(),
            model_short_name(&run.bundle.base_model)
        ),
        cfg.lora.rank.to_string(),
        format!("{:e}", cfg.learning_rate),
        epochs,
    ];
    for metrics in [run.validation(), run.test()] {
        column.push(metric_text(metrics.map(|m| m.accuracy)));
        column.push(metric_text(metrics.map(|m| m.f1)));
        column.push(metric_text(metrics.map(|m| m.mcc)));
        column.push(metric_text(metrics.and_then(|m| m.auroc)));
    }
    column
}

/// A new run name must be a plain folder name.
fn check_run_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("type a name for the run".to_string());
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." || name.starts_with('.') {
        return Err(format!(
            "“{name}” cannot be a run name: use a plain folder name without / or \\ that does \
             not start with a dot"
        ));
    }
    Ok(())
}

/// Input files and records of `manifest.json`; `None` when it is missing or unreadable
/// (the list then shows the class names alone).
fn read_manifest(path: &Path) -> Option<ManifestSummary> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn folder_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn modified_unix(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

fn metric_text(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |v| format!("{v:.3}"))
}

/// The last `max` characters of `text`, with "…" in front when cut.
/// A Hub id as it is; a local folder by its last two path components (`…/dnabert1/model`),
/// which tell runs apart without the machine's directory layout.
fn model_short_name(model: &str) -> String {
    let path = Path::new(model);
    if !path.is_absolute() {
        return shorten_front(model, 48);
    }
    let parts: Vec<String> = path
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let tail: Vec<&str> = parts.iter().rev().map(String::as_str).collect();
    shorten_front(&format!("…/{}", tail.join("/")), 48)
}

fn shorten_front(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - (max - 1)).collect();
    format!("…{tail}")
}

/// "2026-11-03 14:05" (UTC) from seconds since 1970.
pub fn format_unix_utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let minute_of_day = (seconds % 86_400) / 60;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(format_unix_utc(0), "1970-01-01 00:00");
        assert_eq!(format_unix_utc(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(format_unix_utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_unix_utc(1_798_761_599), "2026-12-31 23:59");
    }

    #[test]
    fn run_names_must_be_plain_folder_names() {
        assert!(check_run_name("promoters-lr2e-3").is_ok());
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b"] {
            assert!(check_run_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_damaged_history_line_keeps_the_curves_before_it() {
        let step = Event::Step {
            step: 1,
            total_steps: 4,
            epoch: 0.25,
            loss: 0.7,
            learning_rate: 1e-3,
            grad_norm: 1.0,
            sequences_per_second: 10.0,
            elapsed_s: 0.5,
            eta_s: 1.5,
            peak_memory_mib: Some(300.0),
        };
        let line = serde_json::to_string(&step).expect("event JSON");
        let (history, note) = history_from_jsonl(&format!("{line}\n\n{{\"event\":\n"));
        assert_eq!(history.train_loss, vec![[1.0, 0.7]]);
        assert!(note.is_some_and(|n| n.contains("line 3")));
        let (history, note) = history_from_jsonl(&format!("{line}\n"));
        assert_eq!(history.step, 1);
        assert_eq!(note, None);
    }

    #[test]
    fn long_model_names_keep_their_end() {
        assert_eq!(shorten_front("abc", 5), "abc");
        assert_eq!(shorten_front("abcdefgh", 5), "…efgh");
    }
}
