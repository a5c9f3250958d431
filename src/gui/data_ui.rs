//! Step 1, data: the files and where their labels come from (one class per file, each
//! header, or a table's label column), windowing and split options, and a quality check.
//!
//! Every file is read on a background [`Job`] as soon as it is added (its row shows the
//! progress, then its record count or its error); the quality check loads and splits the
//! data on another. The UI thread never reads a file.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::data::feature_label::{feature_class_names, key_matches, parse_feature_keys};
use crate::data::summary::{
    named_like_table, preview_header_labels, summarize_file, FileSummary, HeaderLabelPreview,
    HEADER_SAMPLE,
};
use crate::data::{
    default_class_name, load_with_progress, ClassInput, Dataset, DatasetOptions, HeaderLabelRule,
    LoadOptions, LoadProgress, TableInput,
};

use super::dialogs::Dialogs;
use super::qc_ui::{qc_report_ui, qc_result, QcResult};
use super::run::Job;
use crate::train::TrainConfig;

/// One input file and the class its records belong to (unused for tables and for files
/// labelled by their headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: PathBuf,
    pub class: String,
}

/// Where the labels of FASTA/FASTQ files come from (tables always carry their own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Labelling {
    /// Every record of a file has the file's class.
    #[default]
    PerFile,
    /// Each record's label is found in its header by [`DataSettings::header_rule`].
    FromHeaders,
}

/// What the data step remembers between launches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataSettings {
    pub files: Vec<FileEntry>,
    pub dataset: DatasetOptions,
    pub labelling: Labelling,
    /// A regex with one capture group around the label, or `|` for `header|label`.
    pub header_rule: String,
    /// The user set the windowing; suggestions from the model no longer change it.
    pub window_chosen: bool,
    /// Windows of GenBank files labelled by their features (the overlap fraction is
    /// [`DatasetOptions::min_feature_overlap`]).
    pub feature_labels: FeatureLabelSettings,
}

/// "Label windows by feature": the feature keys (`CDS`, or `CDS,rRNA`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeatureLabelSettings {
    pub enabled: bool,
    pub keys: String,
}

/// What a file's background read has found so far.
enum Scan {
    Reading {
        job: Job<(u64, u64), Result<Option<FileSummary>, String>>,
        /// Bytes read and the file's size.
        progress: (u64, u64),
    },
    Done(FileSummary),
    Failed(String),
}

/// The model's input length, as the model step knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ModelContext {
    max_tokens: usize,
    context_bp: Option<usize>,
}

/// What the window suggestion for the current model and data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowSuggestion {
    /// Every record fits the model: one window per record.
    WholeRecords,
    /// Records longer than the model reads: cut them into windows of this many bp.
    Windows(u32),
}

enum QcMessage {
    Loading(LoadProgress),
    Splitting,
}

enum QcState {
    Idle,
    Running {
        job: Job<QcMessage, Result<QcResult, String>>,
        status: String,
        fraction: f32,
        inputs: (LoadOptions, DatasetOptions),
    },
    Done {
        result: Box<QcResult>,
        inputs: (LoadOptions, DatasetOptions),
    },
    Failed {
        message: String,
        inputs: Option<(LoadOptions, DatasetOptions)>,
    },
}

/// The header label preview for one rule and one set of read files.
struct PreviewCache {
    rule: String,
    generation: u64,
    preview: Result<HeaderLabelPreview, String>,
}

pub struct DataPanel {
    pub settings: DataSettings,
    path_input: String,
    scans: HashMap<PathBuf, Scan>,
    /// Goes up whenever a read finishes or a file goes, so cached previews know they are old.
    generation: u64,
    model_context: Option<ModelContext>,
    preview: Option<PreviewCache>,
    qc: QcState,
    demo_requested: bool,
    /// Why the demo could not start (shown under its button).
    pub demo_error: Option<String>,
}

const DEMO_TIP: &str = "Coding vs non-coding 120 bp windows of the Chlamydia trachomatis \
    genome, labelled from its annotation (1,214 windows, split 70/15/15 by gene), fine-tuned \
    with LoRA on dnatune mini, the 1.9 M-parameter model bundled with dnatune. Nothing is \
    downloaded.";

impl DataPanel {
    pub fn new(settings: DataSettings) -> Self {
        DataPanel {
            settings,
            path_input: String::new(),
            scans: HashMap::new(),
            generation: 0,
            model_context: None,
            preview: None,
            qc: QcState::Idle,
            demo_requested: false,
            demo_error: None,
        }
    }

    /// The demo's files (one class each), split and windows in place of the current data.
    pub fn use_demo(&mut self, demo: &TrainConfig, ctx: &egui::Context) {
        self.settings.files.clear();
        self.scans.clear();
        self.generation += 1;
        self.preview = None;
        self.qc = QcState::Idle;
        self.settings.labelling = Labelling::PerFile;
        self.settings.feature_labels.enabled = false;
        self.settings.dataset = demo.dataset.clone();
        self.settings.window_chosen = true;
        let paths = demo
            .data
            .class_inputs
            .iter()
            .map(|input| PathBuf::from(&input.path))
            .collect();
        self.add_files(paths, ctx);
        for (file, input) in self.settings.files.iter_mut().zip(&demo.data.class_inputs) {
            if let Some(class) = &input.class {
                file.class = class.clone();
            }
        }
    }

    /// Adds files (dropped, opened with the app, picked or typed) and starts reading them;
    /// the class defaults to the file name. Files already listed are not added twice.
    pub fn add_files(&mut self, paths: Vec<PathBuf>, ctx: &egui::Context) {
        for path in paths {
            if path.as_os_str().is_empty() || self.settings.files.iter().any(|f| f.path == path) {
                continue;
            }
            let class = default_class_name(&path);
            self.settings.files.push(FileEntry { path, class });
        }
        self.start_reads(ctx);
    }

    /// Collects what the background reads and the quality check have sent. Called every
    /// frame, whichever step is shown.
    pub fn poll(&mut self) {
        let mut finished = false;
        for scan in self.scans.values_mut() {
            let Scan::Reading { job, progress } = scan else {
                continue;
            };
            if let Some(last) = job.drain().pop() {
                *progress = last;
            }
            let Some(result) = job.take_result() else {
                continue;
            };
            *scan = match result {
                Ok(Ok(Some(summary))) => Scan::Done(summary),
                // Stopped: only happens to files that were removed.
                Ok(Ok(None)) => Scan::Failed("reading was stopped".into()),
                Ok(Err(message)) | Err(message) => Scan::Failed(message),
            };
            finished = true;
        }
        if finished {
            self.generation += 1;
            self.apply_window_suggestion();
        }
        self.poll_qc();
        self.refresh_preview();
    }

    /// Tells the data step how much sequence the chosen model reads: `max_tokens` tokens,
    /// covering about `context_bp` bp when known. The window length follows the model's
    /// context unless the user has set the windowing.
    pub fn set_model_context(&mut self, max_tokens: usize, context_bp: Option<usize>) {
        let context = ModelContext {
            max_tokens,
            context_bp,
        };
        if self.model_context == Some(context) {
            return;
        }
        self.model_context = Some(context);
        self.apply_window_suggestion();
    }

    /// The last quality check's report, if one has finished.
    pub fn qc_result(&self) -> Option<&QcResult> {
        match &self.qc {
            QcState::Done { result, .. } => Some(result),
            _ => None,
        }
    }

    /// True while a file is being read or the quality check runs.
    pub fn is_busy(&self) -> bool {
        matches!(self.qc, QcState::Running { .. })
            || self
                .scans
                .values()
                .any(|scan| matches!(scan, Scan::Reading { .. }))
    }

    /// The data to train on, or why it is not ready yet.
    pub fn training_data(&self) -> Result<(LoadOptions, DatasetOptions), String> {
        if self.settings.files.is_empty() {
            return Err("add sequence files first (step 1)".into());
        }
        let mut options = LoadOptions::default();
        let mut classes = BTreeSet::new();
        let by_features = self.settings.feature_labels.enabled;
        if by_features {
            options.label_by_feature = self.feature_keys()?;
        }
        // False while a table's or a header-labelled file's labels are not known yet.
        let mut classes_known = true;
        for file in &self.settings.files {
            if let Some(Scan::Failed(message)) = self.scans.get(&file.path) {
                return Err(format!(
                    "{} cannot be used: {message} — fix or remove it (step 1)",
                    file_name(&file.path)
                ));
            }
            let path = file.path.display().to_string();
            if self.is_table(&file.path) {
                match self.scans.get(&file.path) {
                    Some(Scan::Done(summary)) => {
                        classes.extend(summary.labels.iter().map(|(label, _)| label.clone()));
                    }
                    _ => classes_known = false,
                }
                options.tables.push(TableInput {
                    path,
                    ..TableInput::default()
                });
            } else if by_features && self.is_genbank(&file.path) {
                // Labelled by its features: the class name is not used.
                options.class_inputs.push(ClassInput { class: None, path });
            } else if self.settings.labelling == Labelling::FromHeaders {
                options.header_labelled.push(path);
            } else {
                let class = file.class.trim();
                if class.is_empty() {
                    return Err("every file needs a class name (step 1)".into());
                }
                classes.insert(class.to_string());
                options.class_inputs.push(ClassInput {
                    class: Some(class.to_string()),
                    path,
                });
            }
        }
        if !options.header_labelled.is_empty() {
            let rule = self.header_rule()?;
            match &self.preview {
                Some(cache) if cache.rule == self.settings.header_rule.trim() => {
                    match &cache.preview {
                        Ok(preview) => {
                            if let Some((header, problem)) = &preview.first_unlabelled {
                                return Err(format!(
                                    "the header '{header}' {problem}: change the label pattern (step 1)"
                                ));
                            }
                            classes.extend(preview.labels.iter().map(|(label, _)| label.clone()));
                        }
                        Err(message) => return Err(format!("{message} (step 1)")),
                    }
                    classes_known &= cache.generation == self.generation;
                }
                _ => classes_known = false,
            }
            options.header_label = Some(rule);
        }
        if by_features {
            self.check_feature_labels(&options.label_by_feature)?;
            let (positive, negative) = feature_class_names(&options.label_by_feature);
            classes.insert(positive);
            classes.insert(negative);
        }
        if classes_known && classes.len() < 2 {
            return Err("give the files at least two different classes (step 1)".into());
        }
        check_dataset_options(&self.settings.dataset)?;
        Ok((options, self.settings.dataset.clone()))
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, dialogs: &mut dyn Dialogs) {
        let ctx = ui.ctx().clone();
        self.poll();
        self.start_reads(&ctx);
        ui.heading("1 · Data");
        ui.label(
            "Drop FASTA, FASTQ, GenBank or CSV/TSV files (plain or compressed) anywhere on this \
             window, or add them here.",
        );
        self.demo_ui(ui);
        self.add_files_ui(ui, dialogs);
        ui.separator();
        self.labelling_ui(ui);
        self.files_ui(ui);
        if self.settings.labelling == Labelling::FromHeaders {
            self.header_rule_ui(ui);
        }
        if self.settings.feature_labels.enabled || self.has_genbank() {
            self.feature_labels_ui(ui);
        }
        ui.separator();
        egui::CollapsingHeader::new("Windows and split")
            .default_open(true)
            .show(ui, |ui| {
                self.windows_ui(ui);
                ui.add_space(6.0);
                self.split_ui(ui);
            });
        ui.separator();
        self.qc_ui(ui);
    }

    /// "Try the demo": shown while no file is listed (or its start failed).
    fn demo_ui(&mut self, ui: &mut egui::Ui) {
        if !self.settings.files.is_empty() && self.demo_error.is_none() {
            return;
        }
        ui.add_space(4.0);
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                if ui.button("Try the demo").on_hover_text(DEMO_TIP).clicked() {
                    self.demo_requested = true;
                }
                ui.label(
                    "New here? Fine-tune the small model that comes with dnatune on real \
                     bacterial DNA (coding vs non-coding), offline, in a few minutes.",
                );
            });
            if let Some(message) = &self.demo_error {
                ui.colored_label(ui.visuals().error_fg_color, message);
            }
        });
        ui.add_space(4.0);
    }

    /// Whether "Try the demo" was pressed since the last call.
    pub fn take_demo_request(&mut self) -> bool {
        std::mem::take(&mut self.demo_requested)
    }

    fn add_files_ui(&mut self, ui: &mut egui::Ui, dialogs: &mut dyn Dialogs) {
        ui.horizontal(|ui| {
            if ui.button("Add files…").clicked() {
                let picked = dialogs.pick_files();
                self.add_files(picked, &ui.ctx().clone());
            }
            let label = ui.label("Path:");
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut self.path_input)
                        .hint_text("/path/to/sequences.fa.gz")
                        .desired_width(360.0),
                )
                .labelled_by(label.id);
            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Add path").clicked() || entered) && !self.path_input.trim().is_empty() {
                // A pasted path may come quoted from a file manager.
                let path = PathBuf::from(self.path_input.trim().trim_matches(['"', '\'']));
                self.path_input.clear();
                self.add_files(vec![path], &ui.ctx().clone());
            }
        });
    }

    fn labelling_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label("Labels of FASTA/FASTQ records:");
            ui.radio_value(
                &mut self.settings.labelling,
                Labelling::PerFile,
                "One class per file",
            );
            ui.radio_value(
                &mut self.settings.labelling,
                Labelling::FromHeaders,
                "Found in each header",
            );
        });
        ui.weak("Tables (CSV/TSV) always use their own label column.");
    }

    fn files_ui(&mut self, ui: &mut egui::Ui) {
        if self.settings.files.is_empty() {
            ui.weak("No files yet.");
            return;
        }
        let known_classes = self.known_classes();
        let labelling = self.settings.labelling;
        let feature_classes = self
            .settings
            .feature_labels
            .enabled
            .then(|| parse_feature_keys(&self.settings.feature_labels.keys).ok())
            .map(|keys| keys.map(|keys| feature_class_names(&keys)));
        let mut remove = None;
        // Fixed column widths instead of a Grid: a row changes size when its file has been
        // read, and a Grid would then need an extra frame to re-measure every column.
        ui.horizontal(|ui| {
            cell_ui(ui, NAME_WIDTH, |ui| ui.strong("File"));
            cell_ui(ui, CONTENTS_WIDTH, |ui| ui.strong("Contents"));
            cell_ui(ui, LABELS_WIDTH, |ui| ui.strong("Labels"));
        });
        for (index, file) in self.settings.files.iter_mut().enumerate() {
            let name = file_name(&file.path);
            let scan = self.scans.get(&file.path);
            ui.horizontal(|ui| {
                cell_ui(ui, NAME_WIDTH, |ui| {
                    ui.add(egui::Label::new(&name).truncate())
                        .on_hover_text(file.path.display().to_string());
                });
                cell_ui(ui, CONTENTS_WIDTH, |ui| contents_ui(ui, scan));
                let is_table = match scan {
                    Some(Scan::Done(summary)) => summary.is_table(),
                    _ => named_like_table(&file.path),
                };
                let is_genbank = matches!(scan, Some(Scan::Done(summary)) if summary.is_genbank());
                cell_ui(ui, LABELS_WIDTH, |ui| {
                    if is_genbank && feature_classes.is_some() {
                        match feature_classes.as_ref().and_then(Option::as_ref) {
                            Some((positive, negative)) => {
                                ui.weak(format!("windows: {positive} / {negative}"))
                            }
                            None => ui.weak("windows: by feature"),
                        };
                    } else if is_table {
                        table_labels_ui(ui, scan);
                    } else if labelling == Labelling::FromHeaders {
                        ui.weak("from each header");
                    } else {
                        class_field_ui(ui, file, &name, &known_classes);
                    }
                });
                let remove_label = format!("Remove {name}");
                let button = ui
                    .button("Remove")
                    .on_hover_text("Remove this file from the data");
                button.widget_info(|| {
                    egui::WidgetInfo::labeled(egui::Role::Button, true, &remove_label)
                });
                if button.clicked() {
                    remove = Some(index);
                }
            });
            if let Some(Scan::Failed(message)) = scan {
                ui.horizontal(|ui| {
                    ui.add_space(NAME_WIDTH + ui.spacing().item_spacing.x);
                    ui.add(
                        egui::Label::new(
                            egui::RichText::new(message).color(ui.visuals().error_fg_color),
                        )
                        .wrap(),
                    );
                });
            }
        }
        if let Some(index) = remove {
            let file = self.settings.files.remove(index);
            if let Some(Scan::Reading { job, .. }) = self.scans.remove(&file.path) {
                job.cancel();
            }
            self.generation += 1;
            self.apply_window_suggestion();
        }
    }

    fn header_rule_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let label = ui.label("Label pattern:");
            ui.add(
                egui::TextEdit::singleline(&mut self.settings.header_rule)
                    .hint_text(r"label=(\w+)   or   |")
                    .desired_width(280.0),
            )
            .labelled_by(label.id);
        });
        ui.weak(
            "A regular expression whose one capture group is the label, e.g. `_(\\w+)$`, \
             or a lone | for headers that end in |LABEL.",
        );
        self.refresh_preview();
        let Some(cache) = &self.preview else {
            return;
        };
        match &cache.preview {
            Err(message) => {
                ui.colored_label(ui.visuals().error_fg_color, message);
            }
            Ok(preview) if preview.headers_checked == 0 => {
                ui.weak("The preview appears once a FASTA/FASTQ file has been read.");
            }
            Ok(preview) => {
                let found: Vec<String> = preview
                    .labels
                    .iter()
                    .map(|(label, count)| format!("{label}: {count}"))
                    .collect();
                if found.is_empty() {
                    ui.colored_label(ui.visuals().error_fg_color, "No labels found");
                } else {
                    ui.label(format!("Labels found: {}", found.join(", ")));
                }
                let sampled = self.scans.values().any(|scan| {
                    matches!(scan, Scan::Done(s) if s.records + s.empty_records > HEADER_SAMPLE as u64)
                });
                ui.weak(format!(
                    "Checked {} headers{}.",
                    preview.headers_checked,
                    if sampled {
                        format!(" (the first {HEADER_SAMPLE} of each file)")
                    } else {
                        String::new()
                    }
                ));
                if let Some((header, problem)) = &preview.first_unlabelled {
                    ui.colored_label(
                        ui.visuals().error_fg_color,
                        format!(
                            "Headers without a label: {}. The first: '{header}' {problem}",
                            preview.unlabelled
                        ),
                    );
                }
            }
        }
    }

    /// "Label windows by feature": the feature key (typed, or picked from the keys the GenBank
    /// files hold, with their counts) and the overlap a window needs.
    fn feature_labels_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(6.0);
        let found = self.feature_keys_found();
        let settings = &mut self.settings.feature_labels;
        ui.checkbox(&mut settings.enabled, "Label windows by feature")
            .on_hover_text(
                "Cut GenBank records into windows and label each by the features it overlaps, \
                 e.g. coding (CDS) vs non-coding",
            );
        if !settings.enabled {
            return;
        }
        ui.horizontal(|ui| {
            let label = ui.label("Feature key:");
            ui.add(
                egui::TextEdit::singleline(&mut settings.keys)
                    .hint_text("CDS   or   CDS,rRNA")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            if !found.is_empty() {
                let label = ui.label("Keys in the files:");
                egui::ComboBox::from_id_salt("feature_keys")
                    .selected_text("pick…")
                    .show_ui(ui, |ui| {
                        for (key, count) in &found {
                            let text = format!("{key} ({})", thousands(*count));
                            if ui.selectable_label(settings.keys == *key, text).clicked() {
                                settings.keys = key.clone();
                            }
                        }
                    })
                    .response
                    .labelled_by(label.id)
                    .on_hover_text("The feature keys of the GenBank files, with their counts");
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("Share of the window in the feature:");
            ui.add(
                egui::DragValue::new(&mut self.settings.dataset.min_feature_overlap)
                    .range(0.01..=1.0)
                    .speed(0.01)
                    .fixed_decimals(2),
            )
            .labelled_by(label.id)
            .on_hover_text("At least this fraction of a window must lie in the features");
        });
        let keys = parse_feature_keys(&self.settings.feature_labels.keys)
            .map(|keys| feature_class_names(&keys));
        let percent = self.settings.dataset.min_feature_overlap * 100.0;
        match keys {
            Ok((positive, negative)) => {
                ui.weak(format!(
                    "A window is {positive} when at least {percent:.0}% of it lies in such \
                     features (on either strand), {negative} when none of it does; windows in \
                     between are left out and counted in the quality check."
                ));
            }
            Err(_) => {
                ui.weak("Type a feature key, or pick one of the keys in the files.");
            }
        }
        // One message per problem (the missing-windows one included).
        if let Err(message) = self.check_feature_labels(&self.feature_keys().unwrap_or_default()) {
            ui.colored_label(ui.visuals().error_fg_color, message);
        }
    }

    fn windows_ui(&mut self, ui: &mut egui::Ui) {
        let suggestion = self.window_suggestion();
        let window = &mut self.settings.dataset.window;
        let mut chosen = false;
        let mut windowed = window.window_bp.is_some();
        ui.horizontal(|ui| {
            ui.label("Input to the model:");
            let whole = ui.radio_value(&mut windowed, false, "Whole records");
            let windows = ui.radio_value(&mut windowed, true, "Windows");
            if whole.changed() || windows.changed() {
                chosen = true;
                window.stride_bp = None;
                window.min_window_bp = None;
                window.window_bp = windowed.then_some(match suggestion {
                    Some(WindowSuggestion::Windows(bp)) => bp,
                    _ => 512,
                });
            }
        });
        egui::Grid::new("window_options")
            .num_columns(2)
            .show(ui, |ui| {
                if let Some(mut window_bp) = window.window_bp {
                    let label = ui.label("Window length (bp)");
                    if ui
                        .add(egui::DragValue::new(&mut window_bp).range(1..=100_000_000))
                        .labelled_by(label.id)
                        .changed()
                    {
                        window.window_bp = Some(window_bp);
                        chosen = true;
                    }
                    ui.end_row();
                    let mut stride = window.stride_bp.unwrap_or(window_bp);
                    let label = ui.label("Step between windows (bp)");
                    if ui
                        .add(egui::DragValue::new(&mut stride).range(1..=100_000_000))
                        .labelled_by(label.id)
                        .on_hover_text("Less than the window length makes windows overlap")
                        .changed()
                    {
                        window.stride_bp = Some(stride);
                        chosen = true;
                    }
                    ui.end_row();
                    let mut shortest = window.min_window_bp.unwrap_or(window_bp).min(window_bp);
                    let label = ui.label("Shortest window kept (bp)");
                    if ui
                        .add(egui::DragValue::new(&mut shortest).range(1..=window_bp))
                        .labelled_by(label.id)
                        .on_hover_text("Records and record ends shorter than this are left out")
                        .changed()
                    {
                        window.min_window_bp = Some(shortest);
                        chosen = true;
                    }
                    ui.end_row();
                }
                let label = ui.label("Most N allowed in a window");
                if ui
                    .add(
                        egui::DragValue::new(&mut window.max_n_fraction)
                            .range(0.0..=1.0)
                            .speed(0.01)
                            .fixed_decimals(2),
                    )
                    .labelled_by(label.id)
                    .changed()
                {
                    chosen = true;
                }
                ui.end_row();
            });
        if chosen {
            self.settings.window_chosen = true;
        }
        if let Some(suggestion) = suggestion {
            let text = match suggestion {
                WindowSuggestion::WholeRecords => {
                    "Suggested for this model: whole records (every record fits its input)"
                        .to_string()
                }
                WindowSuggestion::Windows(bp) => format!(
                    "Suggested for this model: windows of {} bp (about what it reads at once)",
                    thousands(u64::from(bp))
                ),
            };
            ui.horizontal(|ui| {
                ui.weak(text);
                if self.settings.window_chosen && ui.button("Use suggestion").clicked() {
                    self.settings.window_chosen = false;
                    self.apply_window_suggestion();
                }
            });
        }
        if let (Some(longest), Some(context_bp), None) = (
            self.longest_record(),
            self.model_context_bp(),
            self.settings.dataset.window.window_bp,
        ) {
            if longest > context_bp as u64 {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!(
                        "The longest record has {} bp but the model reads about {} bp: \
                         longer records are cut short. Windows keep all of them.",
                        thousands(longest),
                        thousands(context_bp as u64)
                    ),
                );
            }
        }
    }

    fn split_ui(&mut self, ui: &mut egui::Ui) {
        let dataset = &mut self.settings.dataset;
        egui::Grid::new("split_options")
            .num_columns(2)
            .show(ui, |ui| {
                for (name, value) in [
                    ("Train fraction", &mut dataset.split.train),
                    ("Validation fraction", &mut dataset.split.validation),
                    ("Test fraction", &mut dataset.split.test),
                ] {
                    let label = ui.label(name);
                    ui.add(
                        egui::DragValue::new(value)
                            .range(0.0..=1.0)
                            .speed(0.01)
                            .fixed_decimals(2),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                }
                let label = ui.label("Random seed");
                ui.add(egui::DragValue::new(&mut dataset.seed))
                    .labelled_by(label.id)
                    .on_hover_text("The same seed gives the same split");
                ui.end_row();
                let label = ui.label("Keep together (header regex)");
                let mut group_by = dataset.group_by.clone().unwrap_or_default();
                let field = ui
                    .add(
                        egui::TextEdit::singleline(&mut group_by)
                            .hint_text(r"optional, e.g. ^(chr\w+)")
                            .desired_width(220.0),
                    )
                    .labelled_by(label.id)
                    .on_hover_text(
                        "Records whose headers give the same capture (a genome, a chromosome) \
                         land in the same split",
                    );
                if field.changed() {
                    dataset.group_by = (!group_by.is_empty()).then_some(group_by);
                }
                ui.end_row();
            });
        if let Err(message) = check_split(dataset) {
            ui.colored_label(ui.visuals().error_fg_color, message);
        }
    }

    fn qc_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Quality check");
        let ready = self.training_data();
        let running = matches!(self.qc, QcState::Running { .. });
        ui.horizontal(|ui| {
            let button = ui.add_enabled(ready.is_ok() && !running, egui::Button::new("Check data"));
            let button = button.on_hover_text(
                "Read all files, cut windows, split and look for problems, as training will",
            );
            if button.clicked() {
                if let Ok(inputs) = &ready {
                    self.start_qc(inputs.clone(), ui.ctx());
                }
            }
            if let Err(reason) = &ready {
                ui.weak(reason);
            }
        });
        let stale = |inputs: &(LoadOptions, DatasetOptions)| match &ready {
            Ok(current) => current != inputs,
            Err(_) => true,
        };
        match &self.qc {
            QcState::Idle => {
                ui.weak("Check the data before training: counts per class and split, lengths, GC content and duplicates.");
            }
            QcState::Running {
                status, fraction, ..
            } => {
                ui.horizontal(|ui| {
                    busy_ui(ui);
                    ui.add(
                        egui::ProgressBar::new(*fraction)
                            .desired_width(240.0)
                            .text(status.as_str()),
                    );
                });
            }
            QcState::Failed { message, inputs } => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The data cannot be used yet: {message}"),
                );
                if inputs.as_ref().is_some_and(stale) {
                    ui.weak("The data or options changed since; check again.");
                }
            }
            QcState::Done { result, inputs } => {
                if stale(inputs) {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        "The data or options changed since this check; check again.",
                    );
                }
                qc_report_ui(ui, result);
            }
        }
    }

    /// Starts a background read for every listed file that has none.
    fn start_reads(&mut self, ctx: &egui::Context) {
        for file in &self.settings.files {
            if self.scans.contains_key(&file.path) {
                continue;
            }
            let path = file.path.clone();
            let job = Job::spawn(
                &format!("read {}", file_name(&path)),
                ctx,
                move |reporter, cancel| {
                    summarize_file(
                        &path,
                        |read, total| reporter.send((read, total)),
                        || cancel.is_cancelled(),
                    )
                    .map_err(|err| err.to_string())
                },
            );
            let scan = match job {
                Ok(job) => Scan::Reading {
                    job,
                    progress: (0, 0),
                },
                Err(err) => Scan::Failed(format!("could not start reading: {err}")),
            };
            self.scans.insert(file.path.clone(), scan);
        }
    }

    fn start_qc(&mut self, inputs: (LoadOptions, DatasetOptions), ctx: &egui::Context) {
        let (load_options, dataset_options) = inputs.clone();
        let job = Job::spawn("check data", ctx, move |reporter, _cancel| {
            let data = load_with_progress(&load_options, |progress| {
                reporter.send(QcMessage::Loading(progress));
            })
            .map_err(|err| err.to_string())?;
            reporter.send(QcMessage::Splitting);
            let dataset = Dataset::build(data, &dataset_options).map_err(|err| err.to_string())?;
            Ok(qc_result(&dataset))
        });
        self.qc = match job {
            Ok(job) => QcState::Running {
                job,
                status: "Reading…".into(),
                fraction: 0.0,
                inputs,
            },
            Err(err) => QcState::Failed {
                message: format!("could not start the check: {err}"),
                inputs: Some(inputs),
            },
        };
    }

    fn poll_qc(&mut self) {
        let QcState::Running {
            job,
            status,
            fraction,
            inputs,
        } = &mut self.qc
        else {
            return;
        };
        for message in job.drain() {
            match message {
                QcMessage::Loading(progress) => {
                    *fraction = if progress.bytes_total == 0 {
                        0.0
                    } else {
                        (progress.bytes_read as f64 / progress.bytes_total as f64) as f32
                    };
                    *status = format!(
                        "Reading {} of {} files",
                        (progress.files_done + 1).min(progress.files_total),
                        progress.files_total
                    );
                }
                QcMessage::Splitting => {
                    *fraction = 1.0;
                    *status = "Cutting windows and splitting…".into();
                }
            }
        }
        let Some(result) = job.take_result() else {
            return;
        };
        let inputs = inputs.clone();
        self.qc = match result {
            Ok(Ok(result)) => QcState::Done {
                result: Box::new(result),
                inputs,
            },
            Ok(Err(message)) | Err(message) => QcState::Failed {
                message,
                inputs: Some(inputs),
            },
        };
    }

    /// Recomputes the header label preview when the rule or the read files changed.
    fn refresh_preview(&mut self) {
        if self.settings.labelling != Labelling::FromHeaders {
            return;
        }
        let rule_text = self.settings.header_rule.trim();
        if self
            .preview
            .as_ref()
            .is_some_and(|c| c.rule == rule_text && c.generation == self.generation)
        {
            return;
        }
        let preview = if rule_text.is_empty() {
            Err("Give the label pattern.".to_string())
        } else {
            let headers = self
                .settings
                .files
                .iter()
                .filter_map(|file| match self.scans.get(&file.path) {
                    Some(Scan::Done(summary)) if !summary.is_table() => Some(summary),
                    _ => None,
                })
                .flat_map(|summary| summary.headers.iter().map(String::as_str));
            preview_header_labels(&HeaderLabelRule::from_cli(rule_text), headers)
                .map_err(|err| err.to_string())
        };
        self.preview = Some(PreviewCache {
            rule: rule_text.to_string(),
            generation: self.generation,
            preview,
        });
    }

    fn header_rule(&self) -> Result<HeaderLabelRule, String> {
        let text = self.settings.header_rule.trim();
        if text.is_empty() {
            return Err(
                "give the label pattern that finds the label in each header (step 1)".into(),
            );
        }
        let rule = HeaderLabelRule::from_cli(text);
        preview_header_labels(&rule, std::iter::empty())
            .map_err(|err| format!("{err} (step 1)"))?;
        Ok(rule)
    }

    fn is_genbank(&self, path: &Path) -> bool {
        matches!(self.scans.get(path), Some(Scan::Done(summary)) if summary.is_genbank())
    }

    fn has_genbank(&self) -> bool {
        self.settings.files.iter().any(|f| self.is_genbank(&f.path))
    }

    /// Every feature key of the GenBank files read so far, with its count, most common first.
    fn feature_keys_found(&self) -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = Vec::new();
        for file in &self.settings.files {
            if let Some(Scan::Done(summary)) = self.scans.get(&file.path) {
                for (key, count) in &summary.features {
                    match found.iter_mut().find(|(k, _)| k == key) {
                        Some((_, total)) => *total += count,
                        None => found.push((key.clone(), *count)),
                    }
                }
            }
        }
        found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        found
    }

    /// The feature keys typed, or why they cannot be used.
    fn feature_keys(&self) -> Result<Vec<String>, String> {
        let text = self.settings.feature_labels.keys.trim();
        if text.is_empty() {
            return Err("give the feature key that labels the windows, e.g. CDS (step 1)".into());
        }
        parse_feature_keys(text).map_err(|err| format!("{err} (step 1)"))
    }

    /// Labelling by feature needs windows and a key that some GenBank file read so far has.
    fn check_feature_labels(&self, keys: &[String]) -> Result<(), String> {
        if self.settings.dataset.window.window_bp.is_none() {
            return Err(
                "Labelling windows by feature needs windows: choose Windows under “Windows and \
                 split” (step 1)"
                    .into(),
            );
        }
        let found = self.feature_keys_found();
        let all_read = self.settings.files.iter().all(|f| {
            matches!(
                self.scans.get(&f.path),
                Some(Scan::Done(_) | Scan::Failed(_))
            )
        });
        if !keys.is_empty() && all_read && !found.iter().any(|(key, _)| key_matches(keys, key)) {
            let listed: Vec<String> = found
                .iter()
                .map(|(key, count)| format!("{key} ({count})"))
                .collect();
            return Err(format!(
                "no GenBank file has a {} feature; the keys in the files: {} (step 1)",
                keys.join(","),
                if listed.is_empty() {
                    "none".to_string()
                } else {
                    listed.join(", ")
                }
            ));
        }
        Ok(())
    }

    fn is_table(&self, path: &Path) -> bool {
        match self.scans.get(path) {
            Some(Scan::Done(summary)) => summary.is_table(),
            _ => named_like_table(path),
        }
    }

    /// Class names in use: per-file classes and the labels of read tables.
    fn known_classes(&self) -> Vec<String> {
        let mut classes = BTreeSet::new();
        for file in &self.settings.files {
            match self.scans.get(&file.path) {
                Some(Scan::Done(summary)) if summary.is_table() => {
                    classes.extend(summary.labels.iter().map(|(label, _)| label.clone()));
                }
                _ if !file.class.trim().is_empty() => {
                    classes.insert(file.class.trim().to_string());
                }
                _ => {}
            }
        }
        classes.into_iter().collect()
    }

    fn longest_record(&self) -> Option<u64> {
        self.settings
            .files
            .iter()
            .filter_map(|file| match self.scans.get(&file.path) {
                Some(Scan::Done(summary)) => summary.longest,
                _ => None,
            })
            .max()
    }

    fn model_context_bp(&self) -> Option<usize> {
        self.model_context
            .map(|c| c.context_bp.unwrap_or(c.max_tokens).max(1))
    }

    /// Whole records when every record read so far fits the model, else windows of its
    /// context; `None` without a model.
    fn window_suggestion(&self) -> Option<WindowSuggestion> {
        let context_bp = u32::try_from(self.model_context_bp()?).unwrap_or(u32::MAX);
        Some(match self.longest_record() {
            Some(longest) if longest > u64::from(context_bp) => {
                WindowSuggestion::Windows(context_bp)
            }
            _ => WindowSuggestion::WholeRecords,
        })
    }

    fn apply_window_suggestion(&mut self) {
        if self.settings.window_chosen {
            return;
        }
        let Some(suggestion) = self.window_suggestion() else {
            return;
        };
        let window = &mut self.settings.dataset.window;
        window.stride_bp = None;
        window.min_window_bp = None;
        window.window_bp = match suggestion {
            WindowSuggestion::WholeRecords => None,
            WindowSuggestion::Windows(bp) => Some(bp),
        };
    }
}

const NAME_WIDTH: f32 = 220.0;
const CONTENTS_WIDTH: f32 = 330.0;
const LABELS_WIDTH: f32 = 300.0;

/// A cell of the file list: exactly `width` wide, content left-aligned and centred vertically.
fn cell_ui<R>(ui: &mut egui::Ui, width: f32, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    let size = egui::vec2(width, ui.spacing().interact_size.y);
    ui.allocate_ui_with_layout(
        size,
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_min_width(width);
            ui.set_max_width(width);
            add(ui)
        },
    )
    .inner
}

/// The "Contents" cell of a file row: progress, a summary, or the error.
fn contents_ui(ui: &mut egui::Ui, scan: Option<&Scan>) {
    match scan {
        None => {
            ui.weak("waiting…");
        }
        Some(Scan::Reading { progress, .. }) => {
            ui.horizontal(|ui| {
                busy_ui(ui);
                let (read, total) = *progress;
                if total > 0 {
                    ui.add(
                        egui::ProgressBar::new((read as f64 / total as f64) as f32)
                            .desired_width(120.0)
                            .show_percentage(),
                    );
                } else {
                    ui.weak("reading…");
                }
            });
        }
        Some(Scan::Done(summary)) => {
            let mut text = format!(
                "{}, {} bp",
                count(summary.records, "record", "records"),
                thousands(summary.bases)
            );
            if let (Some(shortest), Some(longest)) = (summary.shortest, summary.longest) {
                if shortest == longest {
                    text.push_str(&format!(" ({} bp each)", thousands(longest)));
                } else {
                    text.push_str(&format!(
                        " ({}–{} bp)",
                        thousands(shortest),
                        thousands(longest)
                    ));
                }
            }
            if summary.is_genbank() {
                let features: u64 = summary.features.iter().map(|(_, n)| n).sum();
                text.push_str(&format!(
                    "; GenBank, {}",
                    count(features, "feature", "features")
                ));
            }
            if summary.empty_records > 0 {
                text.push_str(&format!(
                    "; {} empty records skipped",
                    thousands(summary.empty_records)
                ));
            }
            ui.label(text);
        }
        Some(Scan::Failed(_)) => {
            ui.colored_label(ui.visuals().error_fg_color, "cannot be read:");
        }
    }
}

/// The labels a table carries, with their row counts.
fn table_labels_ui(ui: &mut egui::Ui, scan: Option<&Scan>) {
    match scan {
        Some(Scan::Done(summary)) => {
            let labels: Vec<String> = summary
                .labels
                .iter()
                .map(|(label, count)| format!("{label} ({})", thousands(*count)))
                .collect();
            ui.label(format!("Table labels: {}", labels.join(", ")));
        }
        _ => {
            ui.weak("labels from the table");
        }
    }
}

/// The class of a FASTA/FASTQ file: a text field and a menu of the classes already used.
fn class_field_ui(ui: &mut egui::Ui, file: &mut FileEntry, name: &str, known: &[String]) {
    ui.horizontal(|ui| {
        let field_name = format!("Class of {name}");
        ui.add(egui::TextEdit::singleline(&mut file.class).desired_width(160.0))
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &field_name));
        let others: Vec<&String> = known.iter().filter(|c| **c != file.class.trim()).collect();
        if others.is_empty() {
            return;
        }
        let menu_name = format!("Existing classes for {name}");
        let menu = ui.menu_button("Use existing", |ui| {
            for class in others {
                if ui.button(class).clicked() {
                    file.class = class.clone();
                    ui.close();
                }
            }
        });
        menu.response
            .on_hover_text("Use a class name already given")
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &menu_name));
    });
}

/// A small spinner. Unlike [`egui::Spinner`] it asks for a repaint only every 80 ms, so a
/// long read keeps the window cheap (and a test harness can tell that the UI is idle).
fn busy_ui(ui: &mut egui::Ui) {
    let size = ui.spacing().interact_size.y * 0.7;
    let (rect, _) = ui.allocate_exact_size(egui::vec2(size, size), egui::Sense::hover());
    if ui.is_rect_visible(rect) {
        let time = ui.input(|i| i.time);
        let start = time * 4.0;
        let radius = rect.height() / 2.0 - 1.0;
        let points: Vec<egui::Pos2> = (0..=16)
            .map(|i| {
                let angle = start + f64::from(i) / 16.0 * 4.0;
                rect.center() + radius * egui::vec2(angle.cos() as f32, angle.sin() as f32)
            })
            .collect();
        ui.painter().add(egui::Shape::line(
            points,
            egui::Stroke::new(2.0, ui.visuals().strong_text_color()),
        ));
    }
    ui.ctx().request_repaint_after(Duration::from_millis(80));
}

fn check_split(dataset: &DatasetOptions) -> Result<(), String> {
    let fractions = dataset.split.as_array();
    let sum: f64 = fractions.iter().sum();
    if fractions.iter().any(|f| !f.is_finite() || *f < 0.0) || dataset.split.train <= 0.0 {
        return Err("the train fraction must be above 0 and none below 0".into());
    }
    if (sum - 1.0).abs() > 1e-6 {
        return Err(format!(
            "the split fractions add up to {sum:.2}; make them add up to 1"
        ));
    }
    Ok(())
}

fn check_dataset_options(dataset: &DatasetOptions) -> Result<(), String> {
    check_split(dataset).map_err(|message| format!("{message} (step 1)"))?;
    dataset
        .window
        .resolve()
        .map_err(|message| format!("{message} (step 1)"))?;
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `1 record`, `2,000 records`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}
