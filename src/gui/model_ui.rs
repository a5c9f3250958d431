//! Step 2, model: the catalog of known models with a card for the selection (or a model
//! folder on disk), downloading into the Hugging Face cache with progress, and the
//! fine-tuning settings with their jargon explained in tooltips.

use std::path::{Path, PathBuf};

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::model::catalog::{self, CatalogEntry, CATALOG};
use crate::model::config::{Family, ModelConfig};
use crate::model::hub::{self, HubError, HubProgress, HubSettings};
use crate::tokenize::{Tokenizer, TokenizerKind};
use crate::train::{DeviceChoice, LoraSettings, Precision, TrainConfig};

use super::dialogs::Dialogs;
use super::run::Job;

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
    /// Evaluate on the validation split every this many steps as well as after each epoch.
    pub eval_every: Option<usize>,
    pub device: DeviceChoice,
    pub precision: Precision,
    pub gradient_checkpointing: bool,
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
            eval_every: defaults.eval_every,
            device: DeviceChoice::Auto,
            precision: defaults.precision,
            gradient_checkpointing: defaults.gradient_checkpointing,
        }
    }
}

/// What the app says when a model is neither cached nor downloadable.
pub const OFFLINE_MESSAGE: &str =
    "Offline: the model is not in the cache; connect to the internet or use a local folder.";

const RANK_TIP: &str = "LoRA rank: how many directions each adapted layer may learn. LoRA \
    freezes the pretrained weights and trains two small matrices per layer instead; the rank is \
    their inner size. Higher ranks can fit more but train more parameters: 4–16 is typical.";
const ALPHA_TIP: &str = "LoRA alpha: how strongly the learned update is added to the frozen \
    weights (scaled by alpha ÷ rank). A common choice is twice the rank.";
const DROPOUT_TIP: &str = "LoRA dropout: the fraction of inputs to the adapters randomly \
    zeroed during training, which guards against over-fitting small data sets. 0 turns it off.";
const TARGETS_TIP: &str = "Target modules: which layers of every transformer block get LoRA \
    adapters. The family's default (the attention projections) works well; adding the other \
    layers trains more parameters and may fit better.";
const LEARNING_RATE_TIP: &str = "Learning rate: the size of each optimisation step (AdamW, \
    after a short warm-up, then decaying). Too high and training diverges, too low and it \
    barely moves; 1e-4 to 5e-4 is usual for LoRA.";
const EPOCHS_TIP: &str = "Epochs: how many times training goes over every training window. \
    After each epoch the model is evaluated on the validation split and the best checkpoint \
    (by MCC) is kept.";
const BATCH_TIP: &str = "Batch size: sequences processed together in one step. Larger \
    batches give smoother steps but need more memory; lower it if memory runs out.";
const MAX_TOKENS_TIP: &str = "Max tokens: the longest input the model reads, special tokens \
    included. Longer sequences are cut. Shorter limits train faster and use less memory; the \
    default is the model's maximum.";
const EVAL_TIP: &str = "Validation: how often the model is scored on the validation split \
    (loss, F1, MCC). After every epoch always; also every N steps when ticked, which draws the \
    validation curves in more detail and can keep a better checkpoint, at the cost of time.";
const DEVICE_TIP: &str = "Device: where training runs. Only devices this build of dnatune \
    supports and this machine has are listed; a GPU is usually many times faster than the CPU.";
const PRECISION_TIP: &str = "Precision: the number format of the frozen pretrained weights. \
    Automatic keeps full precision (f32) on the CPU and uses half-size formats on a GPU (bf16 on \
    recent NVIDIA cards, f16 otherwise): half the memory and much faster, with results within \
    about 1 % of f32. The trained adapter, the head and the optimizer always stay f32.";
const CHECKPOINTING_TIP: &str = "Save memory: recompute each layer's intermediate results \
    while learning instead of keeping all of them. Needs much less memory for long sequences \
    or large batches, and takes about a third longer.";
const MCC_TIP: &str = "MCC (Matthews correlation coefficient): a score from -1 to 1 that \
    compares predictions with the true classes. 0 is guessing and 1 is perfect. Unlike accuracy \
    it stays honest when one class is much more common than the others.";

/// Whether a catalog model is complete in the Hugging Face cache.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheState {
    Cached(PathBuf),
    Missing,
    /// The cache folder could not be read.
    Unreadable(String),
}

/// A model folder on disk, read once when chosen.
#[derive(Debug, Clone)]
struct LocalModel {
    path: PathBuf,
    /// What the folder holds, or why it is not a model folder.
    info: Result<LocalInfo, String>,
}

#[derive(Debug, Clone)]
struct LocalInfo {
    family: Family,
    layers: Option<u64>,
    hidden_size: Option<u64>,
    max_positions: Option<u64>,
    /// Tokenizer kind, maximum tokens and the approximate bp they cover.
    tokenizer: Option<(TokenizerKind, usize, Option<usize>)>,
    /// What would stop training (missing weights or tokenizer).
    problems: Vec<String>,
}

type DownloadJob = Job<HubProgress, Result<PathBuf, HubError>>;

/// A download in progress.
struct Download {
    model_id: String,
    job: DownloadJob,
    /// Per file in the order they started: name, bytes done, total bytes (0 = unknown).
    files: Vec<(String, u64, u64)>,
    current: Option<String>,
    /// Bytes of a batched ("xet") transfer: done, total.
    batch: Option<(u64, u64)>,
}

impl Download {
    fn apply(&mut self, progress: HubProgress) {
        match progress {
            HubProgress::Cached { .. } => {}
            HubProgress::FileStarted { file } => {
                self.file_entry(&file);
                self.current = Some(file);
            }
            HubProgress::FileBytes { file, done, total } => {
                let entry = self.file_entry(&file);
                entry.1 = done;
                entry.2 = total;
            }
            HubProgress::BatchBytes { done, total } => self.batch = Some((done, total)),
            HubProgress::FileDone { file } => {
                let entry = self.file_entry(&file);
                entry.1 = entry.1.max(entry.2);
            }
        }
    }

    fn file_entry(&mut self, file: &str) -> &mut (String, u64, u64) {
        let index = match self.files.iter().position(|f| f.0 == file) {
            Some(index) => index,
            None => {
                self.files.push((file.to_owned(), 0, 0));
                self.files.len() - 1
            }
        };
        &mut self.files[index]
    }
}

/// How the last download ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadEnd {
    Done,
    Cancelled,
    /// The message to show and, for offline errors, the underlying reason.
    Failed {
        message: String,
        detail: Option<String>,
    },
}

/// Which devices can train, found once on a background thread (creating a GPU device can take
/// seconds).
enum Devices {
    NotChecked,
    Checking(Job<(), Vec<DeviceChoice>>),
    Ready(Vec<DeviceChoice>),
}

pub struct ModelPanel {
    pub settings: ModelSettings,
    /// The Hugging Face cache and whether downloads are allowed (from the environment).
    hub: HubSettings,
    /// Cache state of each catalog entry, in catalog order; `None` until first needed. Reading
    /// it touches the disk, so it is refreshed on request and after downloads, not every frame.
    cache: Option<Vec<CacheState>>,
    local: Option<LocalModel>,
    download: Option<Download>,
    /// Cancelled downloads whose threads are still running: hf-hub's blocking transfers cannot
    /// be interrupted, so a cancelled job is only ignored and left to end on its own.
    abandoned: Vec<(String, DownloadJob)>,
    /// The model id and end of the last download.
    pub download_end: Option<(String, DownloadEnd)>,
    devices: Devices,
}

impl ModelPanel {
    pub fn new(settings: ModelSettings) -> Self {
        let mut panel = ModelPanel {
            settings,
            hub: HubSettings::from_env(),
            cache: None,
            local: None,
            download: None,
            abandoned: Vec::new(),
            download_end: None,
            devices: Devices::NotChecked,
        };
        panel.refresh_local();
        panel
    }

    /// Uses another Hugging Face cache or offline setting (tests: a temporary cache, offline).
    pub fn set_hub_settings(&mut self, hub: HubSettings) {
        self.hub = hub;
        self.cache = None;
    }

    /// The model to train (folder or Hub id), or why none is chosen.
    pub fn model(&self) -> Result<String, String> {
        match &self.settings.source {
            Some(ModelSource::Catalog(id)) => Ok(id.clone()),
            Some(ModelSource::Local(path)) => match &self.local {
                Some(local) if local.path == *path => match &local.info {
                    Ok(info) if info.problems.is_empty() => Ok(path.display().to_string()),
                    Ok(info) => Err(format!(
                        "the model folder {} cannot be used: {}",
                        path.display(),
                        info.problems.join("; ")
                    )),
                    Err(message) => Err(message.clone()),
                },
                _ => Ok(path.display().to_string()),
            },
            None => Err("choose a model first (step 2)".into()),
        }
    }

    /// The selected model's longest input in tokens and the approximate DNA length it covers
    /// in bp (`None` when unknown, e.g. a BPE tokenizer in a local folder).
    pub fn context(&self) -> Option<(usize, Option<usize>)> {
        match self.settings.source.as_ref()? {
            ModelSource::Catalog(id) => {
                catalog::find(id).map(|entry| (entry.max_tokens, Some(entry.context_bp)))
            }
            ModelSource::Local(_) => {
                let (_, max_tokens, bp) = self.local_info()?.tokenizer?;
                Some((max_tokens, bp))
            }
        }
    }

    /// The selected model's family, when known.
    pub fn family(&self) -> Option<Family> {
        match self.settings.source.as_ref()? {
            ModelSource::Catalog(id) => catalog::find(id).map(|entry| entry.family),
            ModelSource::Local(_) => self.local_info().map(|info| info.family),
        }
    }

    /// Whether a catalog model is complete in the cache; `None` before the cache was read.
    pub fn cache_state(&self, hub_id: &str) -> Option<&CacheState> {
        let index = CATALOG.iter().position(|e| e.hub_id == hub_id)?;
        self.cache.as_ref()?.get(index)
    }

    pub fn is_downloading(&self) -> bool {
        self.download.is_some()
    }

    /// Copies the model and fine-tuning settings into a run configuration.
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<(), String> {
        cfg.model = self.model()?;
        cfg.lora = self.settings.lora.clone();
        cfg.learning_rate = self.settings.learning_rate;
        cfg.epochs = self.settings.epochs;
        cfg.batch_size = self.settings.batch_size;
        cfg.max_length = self.settings.max_length;
        cfg.eval_every = self.settings.eval_every;
        cfg.device = self.settings.device;
        cfg.precision = self.settings.precision;
        cfg.gradient_checkpointing = self.settings.gradient_checkpointing;
        Ok(())
    }

    /// Reads the cache state of every catalog entry again.
    pub fn refresh_cache(&mut self) {
        self.cache = Some(
            CATALOG
                .iter()
                .map(
                    |entry| match hub::cached_snapshot(&self.hub.cache_dir, entry.hub_id) {
                        Ok(Some(path)) => CacheState::Cached(path),
                        Ok(None) => CacheState::Missing,
                        Err(err) => CacheState::Unreadable(err.to_string()),
                    },
                )
                .collect(),
        );
    }

    /// Reads the chosen local folder when it is not the one read last.
    fn refresh_local(&mut self) {
        let Some(ModelSource::Local(path)) = &self.settings.source else {
            return;
        };
        if self.local.as_ref().is_some_and(|l| l.path == *path) {
            return;
        }
        self.local = Some(LocalModel {
            path: path.clone(),
            info: read_local(path),
        });
    }

    fn local_info(&self) -> Option<&LocalInfo> {
        match (&self.settings.source, &self.local) {
            (Some(ModelSource::Local(path)), Some(local)) if local.path == *path => {
                local.info.as_ref().ok()
            }
            _ => None,
        }
    }

    /// Chooses a model; LoRA targets and a token limit that do not fit it fall back to its
    /// defaults.
    /// Chooses a model folder (a pretraining checkpoint, say) as if picked with "Use a local
    /// folder…".
    pub fn choose_folder(&mut self, path: PathBuf) {
        self.select(ModelSource::Local(path));
    }

    /// The demo's model and settings (see [`crate::bundled::demo_config`]).
    pub fn use_demo(&mut self, demo: &TrainConfig) {
        self.select(ModelSource::Catalog(demo.model.clone()));
        self.settings.lora = demo.lora.clone();
        self.settings.learning_rate = demo.learning_rate;
        self.settings.epochs = demo.epochs;
        self.settings.batch_size = demo.batch_size;
        self.settings.max_length = demo.max_length;
        self.settings.eval_every = demo.eval_every;
    }

    fn select(&mut self, source: ModelSource) {
        self.settings.source = Some(source);
        // A folder chosen again is read again: its files may have changed.
        self.local = None;
        self.refresh_local();
        if let Some(family) = self.family() {
            let (_, options) = target_options(family);
            if let Some(targets) = &self.settings.lora.targets {
                if targets.iter().any(|t| !options.contains(&t.as_str())) {
                    self.settings.lora.targets = None;
                }
            }
        }
        if let (Some(limit), Some((max_tokens, _))) = (self.settings.max_length, self.context()) {
            if limit > max_tokens {
                self.settings.max_length = None;
            }
        }
    }

    fn start_download(&mut self, model_id: &str, ctx: &egui::Context) {
        if self.download.is_some() {
            return;
        }
        self.download_end = None;
        let hub = self.hub.clone();
        let id = model_id.to_owned();
        let job = Job::spawn("dnatune-download", ctx, move |reporter, _cancel| {
            hub::resolve_model_with(&id, &hub, |progress| reporter.send(progress))
        });
        match job {
            Ok(job) => {
                self.download = Some(Download {
                    model_id: model_id.to_owned(),
                    job,
                    files: Vec::new(),
                    current: None,
                    batch: None,
                })
            }
            Err(err) => {
                self.download_end = Some((
                    model_id.to_owned(),
                    DownloadEnd::Failed {
                        message: format!("could not start the download thread: {err}"),
                        detail: None,
                    },
                ))
            }
        }
    }

    /// Stops showing the download and ignores its result. The thread itself cannot be stopped:
    /// hf-hub's blocking transfers cannot be interrupted and `resolve_model_with` has no
    /// cancellation point, so it runs until the download ends (kept in `abandoned` meanwhile).
    fn cancel_download(&mut self) {
        if let Some(download) = self.download.take() {
            download.job.cancel();
            self.abandoned
                .push((download.model_id.clone(), download.job));
            self.download_end = Some((download.model_id, DownloadEnd::Cancelled));
        }
    }

    /// Takes the background jobs' news. Call every frame the panel is shown.
    fn poll(&mut self) {
        if let Some(download) = &mut self.download {
            for progress in download.job.drain() {
                download.apply(progress);
            }
            if let Some(result) = download.job.take_result() {
                let end = match result {
                    Ok(Ok(_)) => DownloadEnd::Done,
                    Ok(Err(HubError::Offline { reason, .. })) => DownloadEnd::Failed {
                        message: OFFLINE_MESSAGE.to_owned(),
                        detail: Some(reason),
                    },
                    Ok(Err(err)) => DownloadEnd::Failed {
                        message: format!("The download failed: {err}"),
                        detail: None,
                    },
                    Err(message) => DownloadEnd::Failed {
                        message,
                        detail: None,
                    },
                };
                self.download_end = Some((download.model_id.clone(), end));
                self.download = None;
                self.refresh_cache();
            }
        }
        let before = self.abandoned.len();
        self.abandoned.retain(|(_, job)| job.is_running());
        if self.abandoned.len() != before {
            // A cancelled download may still have completed the snapshot.
            self.refresh_cache();
        }
        if let Devices::Checking(job) = &mut self.devices {
            if let Some(result) = job.take_result() {
                self.devices = Devices::Ready(result.unwrap_or_else(|_| cpu_devices()));
            }
        }
    }

    fn check_devices(&mut self, ctx: &egui::Context) {
        if !matches!(self.devices, Devices::NotChecked) {
            return;
        }
        if !candle_core::utils::cuda_is_available() && !candle_core::utils::metal_is_available() {
            self.devices = Devices::Ready(cpu_devices());
            return;
        }
        self.devices = match Job::spawn("dnatune-devices", ctx, |_reporter, _cancel| {
            detect_devices()
        }) {
            Ok(job) => Devices::Checking(job),
            Err(_) => Devices::Ready(cpu_devices()),
        };
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, dialogs: &mut dyn Dialogs) {
        let ctx = ui.ctx().clone();
        self.refresh_local();
        if self.cache.is_none() {
            self.refresh_cache();
        }
        self.check_devices(&ctx);
        self.poll();

        ui.heading("2 · Model");
        ui.horizontal(|ui| {
            if ui
                .button("Use a local folder…")
                .on_hover_text("A model folder in Hugging Face layout: config.json, the tokenizer files and the weights")
                .clicked()
            {
                if let Some(dir) = dialogs.pick_folder("Choose a model folder (Hub layout)") {
                    self.select(ModelSource::Local(dir));
                }
            }
            ui.label("or choose a pretrained model from the list.");
        });
        ui.add_space(4.0);
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(300.0);
                self.catalog_ui(ui);
            });
            // A vertical separator would stretch to the whole scroll area's height.
            ui.add_space(24.0);
            ui.vertical(|ui| {
                ui.set_max_width(600.0);
                self.card_ui(ui, &ctx);
                ui.separator();
                ui.heading("Fine-tuning");
                self.settings_ui(ui);
            });
        });
    }

    fn catalog_ui(&mut self, ui: &mut egui::Ui) {
        let mut chosen = None;
        let mut family = None;
        for (index, entry) in CATALOG.iter().enumerate() {
            let bundled = crate::bundled::is_model_id(entry.hub_id);
            if bundled {
                ui.strong("Bundled with dnatune");
            } else if family != Some(entry.family) {
                family = Some(entry.family);
                ui.add_space(4.0);
                ui.strong(entry.family.display_name());
            }
            let selected =
                self.settings.source == Some(ModelSource::Catalog(entry.hub_id.to_string()));
            ui.horizontal(|ui| {
                if ui
                    .selectable_label(selected, entry.display_name)
                    .on_hover_text(entry.hub_id)
                    .clicked()
                {
                    chosen = Some(entry.hub_id);
                }
                ui.weak(catalog::format_parameters(entry.parameters));
                if let Some(CacheState::Cached(_)) = self.cache.as_ref().and_then(|c| c.get(index))
                {
                    ui.weak(if bundled { "offline" } else { "cached" });
                }
            });
        }
        if let Some(id) = chosen {
            self.select(ModelSource::Catalog(id.to_string()));
        }
    }

    fn card_ui(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) {
        match self.settings.source.clone() {
            None => {
                ui.label("No model chosen yet.");
                ui.weak("Smaller models train faster; the Nucleotide Transformer v2 models read the longest sequences.");
            }
            Some(ModelSource::Catalog(id)) => match catalog::find(&id) {
                Some(entry) => self.catalog_card_ui(ui, entry, ctx),
                None => {
                    ui.strong(&id);
                    ui.label("This Hub model is not in dnatune's catalog; it is downloaded when training starts.");
                }
            },
            Some(ModelSource::Local(path)) => self.local_card_ui(ui, &path),
        }
    }

    fn catalog_card_ui(&mut self, ui: &mut egui::Ui, entry: &CatalogEntry, ctx: &egui::Context) {
        ui.heading(entry.display_name);
        ui.weak(entry.hub_id);
        egui::Grid::new("model_card")
            .num_columns(2)
            .spacing([16.0, 4.0])
            .show(ui, |ui| {
                ui.label("Family");
                if crate::bundled::is_model_id(entry.hub_id) {
                    ui.label("ESM with rotary positions (pretrained by dnatune)");
                } else {
                    ui.label(entry.family.display_name());
                }
                ui.end_row();
                ui.label("Parameters");
                ui.label(format!(
                    "about {}",
                    catalog::format_parameters(entry.parameters)
                ));
                ui.end_row();
                ui.label("Context");
                ui.label(context_text(
                    entry.max_tokens,
                    Some(entry.context_bp),
                    entry.context_is_estimate,
                ));
                ui.end_row();
                ui.label("Tokenizer");
                ui.label(entry.tokenizer.label());
                ui.end_row();
                ui.label("Licence");
                ui.label(entry.licence);
                ui.end_row();
            });
        if entry.non_commercial {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "Non-commercial licence ({}): the Nucleotide Transformer weights may not \
                     be used commercially, and models fine-tuned from them inherit this.",
                    entry.licence
                ),
            );
        }
        ui.add_space(6.0);
        self.cache_ui(ui, entry, ctx);
    }

    /// Cached or not, and the download with its progress.
    fn cache_ui(&mut self, ui: &mut egui::Ui, entry: &CatalogEntry, ctx: &egui::Context) {
        if let Some(download) = &self.download {
            if download.model_id == entry.hub_id {
                if download_progress_ui(ui, download) {
                    self.cancel_download();
                }
                return;
            }
        }
        if crate::bundled::is_model_id(entry.hub_id) {
            match crate::bundled::model_dir() {
                Ok(path) => {
                    ui.label(
                        "Bundled with dnatune: works offline, nothing to download. Small and \
                         quick to fine-tune; the larger models below learn more.",
                    )
                    .on_hover_text(path.display().to_string());
                }
                Err(err) => {
                    ui.colored_label(ui.visuals().error_fg_color, err.to_string());
                }
            }
            return;
        }
        match self.cache_state(entry.hub_id).cloned() {
            Some(CacheState::Cached(path)) => {
                ui.label("Downloaded: in the Hugging Face cache")
                    .on_hover_text(path.display().to_string());
            }
            state => {
                if let Some(CacheState::Unreadable(message)) = state {
                    ui.colored_label(ui.visuals().warn_fg_color, message);
                }
                ui.label("Not downloaded yet. It is downloaded when training starts, or now:");
                let still_running = self.abandoned.iter().any(|(id, _)| id == entry.hub_id);
                ui.horizontal(|ui| {
                    let busy = self.download.is_some() || still_running;
                    let button = ui
                        .add_enabled(!busy, egui::Button::new("Download"))
                        .on_hover_text(format!(
                            "Into the Hugging Face cache: {}",
                            self.hub.cache_dir.display()
                        ));
                    if button.clicked() {
                        self.start_download(entry.hub_id, ctx);
                    }
                    if ui
                        .button("Check the cache again")
                        .on_hover_text("For a model downloaded outside dnatune")
                        .clicked()
                    {
                        self.refresh_cache();
                    }
                });
                if still_running {
                    ui.weak(
                        "A cancelled download of this model is still ending in the background.",
                    );
                } else if let Some(other) = &self.download {
                    ui.weak(format!("Downloading {} first.", other.model_id));
                }
                if self.hub.offline {
                    ui.weak("Downloads are turned off (HF_HUB_OFFLINE): only models already in the cache can be used.");
                }
            }
        }
        if let Some((id, end)) = &self.download_end {
            if id == entry.hub_id {
                download_end_ui(ui, end);
            }
        }
    }

    fn local_card_ui(&self, ui: &mut egui::Ui, path: &Path) {
        ui.heading("Model folder");
        ui.label(path.display().to_string());
        let Some(local) = self.local.as_ref().filter(|l| l.path == path) else {
            return;
        };
        let info = match &local.info {
            Ok(info) => info,
            Err(message) => {
                ui.colored_label(ui.visuals().error_fg_color, message);
                return;
            }
        };
        egui::Grid::new("local_card")
            .num_columns(2)
            .spacing([16.0, 4.0])
            .show(ui, |ui| {
                ui.label("Family");
                ui.label(info.family.display_name());
                ui.end_row();
                let facts = [
                    ("Layers", info.layers),
                    ("Hidden size", info.hidden_size),
                    ("Max positions", info.max_positions),
                ];
                for (name, value) in facts {
                    if let Some(value) = value {
                        ui.label(name);
                        ui.label(value.to_string());
                        ui.end_row();
                    }
                }
                if let Some((kind, max_tokens, bp)) = info.tokenizer {
                    ui.label("Context");
                    ui.label(context_text(max_tokens, bp, false));
                    ui.end_row();
                    ui.label("Tokenizer");
                    ui.label(kind.label());
                    ui.end_row();
                }
            });
        if matches!(
            info.family,
            Family::NucleotideTransformerV1 | Family::NucleotideTransformerV2
        ) {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "Licence: if these are InstaDeep's Nucleotide Transformer weights, their licence \
                 (CC BY-NC-SA 4.0) forbids commercial use, also of models fine-tuned from them.",
            );
        }
        for problem in &info.problems {
            ui.colored_label(ui.visuals().error_fg_color, problem);
        }
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let family = self.family();
        let context = self.context();
        egui::Grid::new("finetune")
            .num_columns(2)
            .spacing([16.0, 6.0])
            .show(ui, |ui| {
                let label = ui.label("LoRA rank").on_hover_text(RANK_TIP);
                ui.add(egui::Slider::new(&mut self.settings.lora.rank, 1..=64))
                    .labelled_by(label.id)
                    .on_hover_text(RANK_TIP);
                ui.end_row();

                let label = ui.label("LoRA alpha").on_hover_text(ALPHA_TIP);
                ui.add(
                    egui::DragValue::new(&mut self.settings.lora.alpha)
                        .speed(0.5)
                        .range(0.5..=512.0),
                )
                .labelled_by(label.id)
                .on_hover_text(ALPHA_TIP);
                ui.end_row();

                let label = ui.label("LoRA dropout").on_hover_text(DROPOUT_TIP);
                ui.add(egui::Slider::new(
                    &mut self.settings.lora.dropout,
                    0.0..=0.5,
                ))
                .labelled_by(label.id)
                .on_hover_text(DROPOUT_TIP);
                ui.end_row();

                ui.label("Target modules").on_hover_text(TARGETS_TIP);
                ui.vertical(|ui| self.targets_ui(ui, family));
                ui.end_row();

                let label = ui.label("Learning rate").on_hover_text(LEARNING_RATE_TIP);
                let rate = self.settings.learning_rate;
                ui.add(
                    egui::DragValue::new(&mut self.settings.learning_rate)
                        .speed(rate * 0.02)
                        .range(1e-6..=1e-2)
                        .custom_formatter(|value, _| format!("{value:.1e}")),
                )
                .labelled_by(label.id)
                .on_hover_text(LEARNING_RATE_TIP);
                ui.end_row();

                let label = ui.label("Epochs").on_hover_text(EPOCHS_TIP);
                ui.add(egui::DragValue::new(&mut self.settings.epochs).range(1..=100))
                    .labelled_by(label.id)
                    .on_hover_text(EPOCHS_TIP);
                ui.end_row();

                let label = ui.label("Batch size").on_hover_text(BATCH_TIP);
                ui.add(egui::DragValue::new(&mut self.settings.batch_size).range(1..=256))
                    .labelled_by(label.id)
                    .on_hover_text(BATCH_TIP);
                ui.end_row();

                let label = ui.label("Max tokens").on_hover_text(MAX_TOKENS_TIP);
                ui.horizontal(|ui| self.max_tokens_ui(ui, label.id, context));
                ui.end_row();

                let label = ui.label("Validation").on_hover_text(EVAL_TIP);
                ui.horizontal(|ui| self.eval_ui(ui, label.id));
                ui.end_row();

                let label = ui.label("Device").on_hover_text(DEVICE_TIP);
                self.device_ui(ui, label.id);
                ui.end_row();

                let label = ui.label("Precision").on_hover_text(PRECISION_TIP);
                self.precision_ui(ui, label.id);
                ui.end_row();
            });
        ui.add_space(4.0);
        ui.label("The checkpoint with the best validation MCC is kept.")
            .on_hover_text(MCC_TIP);
    }

    fn targets_ui(&mut self, ui: &mut egui::Ui, family: Option<Family>) {
        let Some(family) = family else {
            ui.weak("The family's default; choose a model to pick its layers.");
            return;
        };
        let (defaults, options) = target_options(family);
        let current: Vec<String> = match &self.settings.lora.targets {
            Some(names) => names.clone(),
            None => defaults.iter().map(|s| s.to_string()).collect(),
        };
        let mut next = current.clone();
        ui.horizontal_wrapped(|ui| {
            for option in &options {
                let mut on = current.iter().any(|t| t == option);
                if ui
                    .checkbox(&mut on, *option)
                    .on_hover_text(module_tip(option))
                    .changed()
                {
                    if on {
                        next.push(option.to_string());
                    } else {
                        next.retain(|t| t != option);
                    }
                }
            }
        });
        // Keep at least one adapted layer; keep the family's order.
        if next != current && !next.is_empty() {
            next.sort_by_key(|t| options.iter().position(|o| o == t).unwrap_or(usize::MAX));
            let is_default =
                next.len() == defaults.len() && next.iter().zip(&defaults).all(|(a, b)| a == b);
            self.settings.lora.targets = (!is_default).then_some(next);
        }
        let unknown: Vec<&String> = current
            .iter()
            .filter(|t| !options.contains(&t.as_str()))
            .collect();
        if !unknown.is_empty() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "Also chosen, but not layers of {}: {}",
                    family.display_name(),
                    unknown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        ui.horizontal(|ui| {
            if self.settings.lora.targets.is_none() {
                ui.weak("(the family's default)");
            } else if ui.button("Use the family's default").clicked() {
                self.settings.lora.targets = None;
            }
        });
    }

    fn eval_ui(&mut self, ui: &mut egui::Ui, label: egui::Id) {
        let mut by_steps = self.settings.eval_every.is_some();
        if ui
            .checkbox(&mut by_steps, "also every")
            .on_hover_text(EVAL_TIP)
            .changed()
        {
            self.settings.eval_every = by_steps.then_some(100);
        }
        match &mut self.settings.eval_every {
            Some(steps) => {
                ui.add(egui::DragValue::new(steps).range(1..=100_000).speed(1))
                    .labelled_by(label)
                    .on_hover_text(EVAL_TIP);
                ui.label("steps and after each epoch");
            }
            None => {
                ui.weak("(after each epoch)");
            }
        }
    }

    fn max_tokens_ui(
        &mut self,
        ui: &mut egui::Ui,
        label: egui::Id,
        context: Option<(usize, Option<usize>)>,
    ) {
        let model_max = context.map(|(max_tokens, _)| max_tokens);
        let mut use_max = self.settings.max_length.is_none();
        let text = match model_max {
            Some(max) => format!("the model's maximum ({max})"),
            None => "the model's maximum".to_string(),
        };
        if ui
            .checkbox(&mut use_max, text)
            .on_hover_text(MAX_TOKENS_TIP)
            .changed()
        {
            self.settings.max_length = if use_max {
                None
            } else {
                Some(model_max.unwrap_or(512).min(512))
            };
        }
        if let Some(limit) = &mut self.settings.max_length {
            let upper = model_max.unwrap_or(100_000).max(8);
            ui.add(egui::DragValue::new(limit).range(8..=upper).speed(4))
                .labelled_by(label)
                .on_hover_text(MAX_TOKENS_TIP);
            if let Some(bp) =
                context.and_then(|(max_tokens, bp)| (bp? * *limit).checked_div(max_tokens))
            {
                ui.weak(format!("≈ {} bp", thousands(bp)));
            }
        }
    }

    fn precision_ui(&mut self, ui: &mut egui::Ui, label: egui::Id) {
        ui.horizontal(|ui| {
            egui::ComboBox::from_id_salt("precision")
                .selected_text(precision_name(self.settings.precision))
                .show_ui(ui, |ui| {
                    for option in [
                        Precision::Auto,
                        Precision::F32,
                        Precision::Bf16,
                        Precision::F16,
                    ] {
                        ui.selectable_value(
                            &mut self.settings.precision,
                            option,
                            precision_name(option),
                        );
                    }
                })
                .response
                .labelled_by(label)
                .on_hover_text(PRECISION_TIP);
            ui.checkbox(&mut self.settings.gradient_checkpointing, "Save memory")
                .on_hover_text(CHECKPOINTING_TIP);
        });
    }

    fn device_ui(&mut self, ui: &mut egui::Ui, label: egui::Id) {
        let mut options = match &self.devices {
            Devices::Ready(devices) => devices.clone(),
            _ => cpu_devices(),
        };
        let chosen = self.settings.device;
        let missing = !options.contains(&chosen);
        if missing {
            options.push(chosen);
        }
        ui.horizontal(|ui| {
            egui::ComboBox::from_id_salt("device")
                .selected_text(device_name(chosen, missing))
                .show_ui(ui, |ui| {
                    for option in options {
                        let missing = option == chosen && missing;
                        ui.selectable_value(
                            &mut self.settings.device,
                            option,
                            device_name(option, missing),
                        );
                    }
                })
                .response
                .labelled_by(label)
                .on_hover_text(DEVICE_TIP);
            if matches!(self.devices, Devices::Checking(_)) {
                ui.spinner();
                ui.weak("looking for GPUs");
            }
        });
    }
}

/// Shows a running download; true when the user cancels it.
fn download_progress_ui(ui: &mut egui::Ui, download: &Download) -> bool {
    ui.label("Downloading into the Hugging Face cache…");
    let current = download
        .current
        .as_ref()
        .and_then(|name| download.files.iter().find(|f| &f.0 == name));
    match (download.batch, current) {
        (Some((done, total)), _) if total > 0 => {
            ui.add(
                egui::ProgressBar::new(done as f32 / total as f32).text(format!(
                    "{} of {}",
                    bytes(done),
                    bytes(total)
                )),
            );
        }
        (_, Some((name, done, total))) if *total > 0 => {
            ui.add(
                egui::ProgressBar::new(*done as f32 / *total as f32).text(format!(
                    "{name}: {} of {}",
                    bytes(*done),
                    bytes(*total)
                )),
            );
        }
        (_, Some((name, done, _))) => {
            ui.label(format!("{name}: {}", bytes(*done)));
        }
        _ => {
            ui.label("Asking the Hugging Face Hub…");
        }
    }
    let received: u64 = download.files.iter().map(|f| f.1).sum();
    ui.weak(format!(
        "{} received in {} file{}",
        bytes(received),
        download.files.len(),
        if download.files.len() == 1 { "" } else { "s" }
    ));
    ui.button("Cancel download")
        .on_hover_text(
            "Stop waiting for this download. A started download cannot be interrupted, so it \
             may go on in the background until it ends; dnatune ignores it.",
        )
        .clicked()
}

fn download_end_ui(ui: &mut egui::Ui, end: &DownloadEnd) {
    match end {
        DownloadEnd::Done => {
            ui.label("Download complete.");
        }
        DownloadEnd::Cancelled => {
            ui.label(
                "Download cancelled. A started download cannot be interrupted, so it may go on \
                 in the background until it ends; dnatune ignores it.",
            );
        }
        DownloadEnd::Failed { message, detail } => {
            ui.colored_label(ui.visuals().error_fg_color, message);
            if let Some(detail) = detail {
                ui.weak(format!("({detail})"));
            }
        }
    }
}

/// Reads a model folder: `config.json` and its family, the architecture's sizes, the tokenizer
/// and whether weights are there.
fn read_local(path: &Path) -> Result<LocalInfo, String> {
    if !path.is_dir() {
        return Err(format!("{} is not a folder", path.display()));
    }
    if !path.join("config.json").is_file() {
        return Err(HubError::NotAModelFolder {
            path: path.to_owned(),
        }
        .to_string());
    }
    let config = ModelConfig::from_dir(path).map_err(|e| e.to_string())?;
    let number = |key: &str| config.json.get(key).and_then(|v| v.as_u64());
    let mut problems = Vec::new();
    let tokenizer = match Tokenizer::from_model_dir(path) {
        Ok(tokenizer) => {
            let max_tokens = tokenizer.model_max_length();
            let bp = match &tokenizer {
                // [CLS] and [SEP] around overlapping k-mers.
                Tokenizer::Kmer(kmer) => Some(max_tokens.saturating_sub(2) + kmer.k() - 1),
                // <cls> then non-overlapping 6-mers.
                Tokenizer::Nt(_) => Some(max_tokens.saturating_sub(1) * 6),
                // BPE: the length varies with the sequence.
                Tokenizer::Hf(_) => None,
            };
            Some((tokenizer.kind(), max_tokens, bp))
        }
        Err(err) => {
            problems.push(err.to_string());
            None
        }
    };
    match hub::weights_complete(path) {
        Ok(true) => {}
        Ok(false) => problems.push(format!(
            "{} holds no complete weights (model.safetensors or pytorch_model.bin, or all \
             shards of their index)",
            path.display()
        )),
        Err(err) => problems.push(err.to_string()),
    }
    Ok(LocalInfo {
        family: config.family,
        layers: number("num_hidden_layers"),
        hidden_size: number("hidden_size"),
        max_positions: number("max_position_embeddings"),
        tokenizer,
        problems,
    })
}

/// The family's default LoRA targets and every layer LoRA can target, from the catalog.
fn target_options(family: Family) -> (Vec<&'static str>, Vec<&'static str>) {
    match CATALOG.iter().find(|e| e.family == family) {
        Some(entry) => {
            let defaults = entry.default_lora_targets.to_vec();
            let mut all = defaults.clone();
            all.extend_from_slice(entry.other_lora_targets);
            (defaults, all)
        }
        None => (Vec::new(), Vec::new()),
    }
}

fn module_tip(module: &str) -> &'static str {
    match module {
        "query" | "key" | "value" => "An attention projection: how positions look at each other",
        "Wqkv" => "The fused query, key and value projection of attention",
        "attention.output.dense" => "The projection after attention",
        "intermediate.dense" | "gated_layers" => "The first layer of the feed-forward block",
        "output.dense" | "wo" => "The last layer of the feed-forward block",
        _ => "A linear layer of every transformer block",
    }
}

fn precision_name(precision: Precision) -> &'static str {
    match precision {
        Precision::Auto => "Automatic (f32 on the CPU, half size on a GPU)",
        Precision::F32 => "f32 (full)",
        Precision::Bf16 => "bf16 (NVIDIA, Ampere or newer)",
        Precision::F16 => "f16",
    }
}

fn cpu_devices() -> Vec<DeviceChoice> {
    vec![DeviceChoice::Auto, DeviceChoice::Cpu]
}

/// The CPU, then every CUDA GPU and the Metal GPU that this build supports and that start.
fn detect_devices() -> Vec<DeviceChoice> {
    let mut devices = cpu_devices();
    if candle_core::utils::cuda_is_available() {
        for ordinal in 0..16 {
            if candle_core::Device::new_cuda(ordinal).is_err() {
                break;
            }
            devices.push(DeviceChoice::Cuda(ordinal));
        }
    }
    if candle_core::utils::metal_is_available() && candle_core::Device::new_metal(0).is_ok() {
        devices.push(DeviceChoice::Metal);
    }
    devices
}

fn device_name(device: DeviceChoice, missing: bool) -> String {
    let name = match device {
        DeviceChoice::Auto => "Automatic (a GPU when there is one, else the CPU)".to_string(),
        DeviceChoice::Cpu => "CPU".to_string(),
        DeviceChoice::Cuda(ordinal) => format!("CUDA GPU {ordinal}"),
        DeviceChoice::Metal => "Metal (Apple GPU)".to_string(),
    };
    if missing {
        format!("{name} (not found here)")
    } else {
        name
    }
}

/// `512 tokens ≈ 3,066 bp`, with "on average" for BPE estimates.
fn context_text(max_tokens: usize, bp: Option<usize>, estimate: bool) -> String {
    match bp {
        Some(bp) if estimate => format!(
            "{} tokens ≈ {} bp on average",
            thousands(max_tokens),
            thousands(bp)
        ),
        Some(bp) => format!("{} tokens ≈ {} bp", thousands(max_tokens), thousands(bp)),
        None => format!("{} tokens", thousands(max_tokens)),
    }
}

fn thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if count < 1000 {
        return format!("{count} B");
    }
    let mut value = count as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(thousands(12_282), "12,282");
        assert_eq!(thousands(512), "512");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(2_300_000_000), "2.3 GB");
        assert_eq!(context_text(512, Some(515), false), "512 tokens ≈ 515 bp");
        assert_eq!(
            context_text(512, Some(4_500), true),
            "512 tokens ≈ 4,500 bp on average"
        );
    }

    #[test]
    fn targets_follow_the_family() {
        let (defaults, all) = target_options(Family::Dnabert2);
        assert_eq!(defaults, ["Wqkv"]);
        assert_eq!(
            all,
            ["Wqkv", "attention.output.dense", "gated_layers", "wo"]
        );
        let (defaults, all) = target_options(Family::NucleotideTransformerV2);
        assert_eq!(defaults, ["query", "value"]);
        assert_eq!(all.len(), 6);
        assert!(all.contains(&"intermediate.dense"));
    }

    #[test]
    fn download_progress_adds_up_per_file() {
        let ctx = egui::Context::default();
        let job = Job::spawn("test", &ctx, |_reporter, _cancel| {
            Err(HubError::BadModelId { given: "x".into() })
        })
        .expect("thread");
        let mut download = Download {
            model_id: "a/b".into(),
            job,
            files: Vec::new(),
            current: None,
            batch: None,
        };
        download.apply(HubProgress::FileStarted {
            file: "config.json".into(),
        });
        download.apply(HubProgress::FileDone {
            file: "config.json".into(),
        });
        download.apply(HubProgress::FileStarted {
            file: "model.safetensors".into(),
        });
        download.apply(HubProgress::FileBytes {
            file: "model.safetensors".into(),
            done: 50,
            total: 200,
        });
        assert_eq!(download.current.as_deref(), Some("model.safetensors"));
        assert_eq!(download.files.len(), 2);
        assert_eq!(download.files[1], ("model.safetensors".into(), 50, 200));
    }
}
