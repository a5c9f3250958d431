//! `dnatune train`: fine-tune a model with LoRA on labelled data; a progress line with ETA and a
//! metrics table on standard error, or one JSON event per line on standard output.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::train::metrics::{Aggregation, MetricName, Metrics};
use crate::train::{
    train, Cancel, ClassWeights, DeviceChoice, Event, LoraSettings, Precision, RunSummary,
    Schedule, StopReason, TrainConfig,
};

use super::data_cmd::DataArgs;

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The offline demo: fine-tune the bundled model on the bundled data set (coding vs
    /// non-coding windows of Chlamydia trachomatis) in a few minutes on a laptop CPU. Other
    /// options (--model, --epochs, --lr, --device, …) change the demo's settings; the data
    /// options cannot be given. The last line printed is `test MCC: <value>`.
    #[arg(long)]
    pub demo: bool,

    /// A model folder in Hugging Face Hub layout, or a Hub id such as zhihan1996/DNABERT-2-117M
    /// (dnatune/dnatune-mini: the bundled model).
    #[arg(long, value_name = "DIR_OR_ID", required_unless_present = "demo")]
    pub model: Option<String>,

    #[command(flatten)]
    pub data: DataArgs,

    /// The run folder: the best adapter is at OUT/adapter/ during and after training (with
    /// --demo: a new demo-NNN folder among the app's runs).
    #[arg(long, value_name = "DIR", required_unless_present = "demo")]
    pub out: Option<PathBuf>,

    /// LoRA rank r (the adapter's size).
    #[arg(long, default_value_t = 8, help_heading = "LoRA")]
    pub lora_rank: usize,
    /// LoRA alpha (updates are scaled by alpha / r).
    #[arg(long, default_value_t = 16.0, help_heading = "LoRA")]
    pub lora_alpha: f64,
    /// Dropout on the LoRA input during training.
    #[arg(long, default_value_t = 0.1, help_heading = "LoRA")]
    pub lora_dropout: f64,
    /// Comma-separated module names that get LoRA (default: query,value; Wqkv for
    /// DNABERT-2). Others: key, attention.output.dense, intermediate.dense, output.dense,
    /// gated_layers, wo.
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        help_heading = "LoRA"
    )]
    pub lora_targets: Option<Vec<String>>,
    /// Scale by alpha / √r (rsLoRA) instead of alpha / r.
    #[arg(long, help_heading = "LoRA")]
    pub rslora: bool,
    /// Also train the BERT pooler in full.
    #[arg(long, help_heading = "LoRA")]
    pub train_pooler: bool,

    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 2e-4, help_heading = "Optimisation")]
    pub lr: f64,
    /// Passes over the training data.
    #[arg(long, default_value_t = 3, help_heading = "Optimisation")]
    pub epochs: usize,
    /// Stop after this many optimizer steps instead.
    #[arg(long, value_name = "N", help_heading = "Optimisation")]
    pub max_steps: Option<usize>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 16, help_heading = "Optimisation")]
    pub batch_size: usize,
    /// Forward passes per optimizer step (effective batch = batch size × this).
    #[arg(long, default_value_t = 1, help_heading = "Optimisation")]
    pub grad_accum: usize,
    /// Tokens per input, special tokens included (default: the model's maximum). Longer
    /// inputs are truncated as Hugging Face tokenizers truncate.
    #[arg(long, value_name = "N", help_heading = "Optimisation")]
    pub max_length: Option<usize>,
    /// AdamW weight decay (never on biases).
    #[arg(long, default_value_t = 0.01, help_heading = "Optimisation")]
    pub weight_decay: f64,
    /// Fraction of the steps spent warming the learning rate up from 0.
    #[arg(long, default_value_t = 0.05, help_heading = "Optimisation")]
    pub warmup_ratio: f64,
    /// Learning-rate decay after warm-up.
    #[arg(
        long,
        value_enum,
        default_value = "linear",
        help_heading = "Optimisation"
    )]
    pub schedule: Schedule,
    /// Clip the gradient norm to this value (0: no clipping).
    #[arg(long, default_value_t = 1.0, help_heading = "Optimisation")]
    pub max_grad_norm: f64,
    /// Loss weights per class: none, balanced (for imbalanced data), or one number per class
    /// in class order (e.g. 1,3).
    #[arg(long, default_value = "none", help_heading = "Optimisation")]
    pub class_weights: String,
    /// Also train on the reverse complement of every training window.
    #[arg(long, help_heading = "Optimisation")]
    pub reverse_complement: bool,

    /// Evaluate on the validation split every N steps (and at the end of every epoch).
    #[arg(long, value_name = "N", help_heading = "Evaluation")]
    pub eval_every: Option<usize>,
    /// The validation metric that picks the best checkpoint.
    #[arg(long, value_enum, default_value = "mcc", help_heading = "Evaluation")]
    pub metric: MetricName,
    /// Stop after N evaluations without improvement (0: never stop early).
    #[arg(long, default_value_t = 3, help_heading = "Evaluation")]
    pub patience: usize,
    /// How a record's window probabilities are combined.
    #[arg(long, value_enum, default_value = "mean", help_heading = "Evaluation")]
    pub aggregation: Aggregation,

    /// Where to train: auto (a GPU when this build supports one and it is present, else the
    /// CPU), cpu, cuda, cuda:N or metal. A GPU that is asked for but absent is an error.
    #[arg(long, default_value = "auto", help_heading = "Hardware")]
    pub device: DeviceChoice,
    /// Dtype of the frozen base weights: auto (f32 on the CPU, bf16 on CUDA compute
    /// capability ≥ 8.0, else f16), f32, bf16 or f16. LoRA, head and optimizer stay f32.
    #[arg(long, value_enum, default_value = "auto", help_heading = "Hardware")]
    pub precision: Precision,
    /// Recompute each layer's activations in the backward pass instead of keeping them all:
    /// much less memory for long inputs, about a third more compute.
    #[arg(long, help_heading = "Hardware")]
    pub gradient_checkpointing: bool,
    /// Also write the merged model (LoRA folded into the base weights) to OUT/merged/.
    #[arg(long)]
    pub merged: bool,
    /// Print one JSON event per line on standard output instead of the progress display.
    #[arg(long)]
    pub json_events: bool,
}

impl TrainArgs {
    pub fn to_config(&self) -> anyhow::Result<TrainConfig> {
        let class_weights = match self.class_weights.trim() {
            "none" | "" => ClassWeights::None,
            "balanced" => ClassWeights::Balanced,
            list => ClassWeights::Custom(
                list.split(',')
                    .map(|w| w.trim().parse::<f32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "--class-weights {list:?}: give none, balanced, or numbers separated by commas (e.g. 1,3)"
                        )
                    })?,
            ),
        };
        Ok(TrainConfig {
            model: self.model.clone().unwrap_or_default(),
            data: self.data.load_options()?,
            dataset: self.data.dataset_options(),
            lora: LoraSettings {
                rank: self.lora_rank,
                alpha: self.lora_alpha,
                dropout: self.lora_dropout,
                targets: self.lora_targets.clone(),
                use_rslora: self.rslora,
            },
            train_pooler: self.train_pooler,
            learning_rate: self.lr,
            weight_decay: self.weight_decay,
            warmup_ratio: self.warmup_ratio,
            schedule: self.schedule,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            batch_size: self.batch_size,
            gradient_accumulation: self.grad_accum,
            epochs: self.epochs,
            max_steps: self.max_steps,
            max_length: self.max_length,
            eval_every: self.eval_every,
            metric: self.metric,
            patience: (self.patience > 0).then_some(self.patience),
            class_weights,
            reverse_complement: self.reverse_complement,
            aggregation: self.aggregation,
            seed: self.data.seed,
            device: self.device,
            precision: self.precision,
            gradient_checkpointing: self.gradient_checkpointing,
            out_dir: self.out.clone().unwrap_or_default(),
            export_merged: self.merged,
            ..TrainConfig::default()
        })
    }
}

/// Which options were given on the command line (not left at their defaults).
#[derive(Debug, Default)]
pub struct GivenArgs(Vec<String>);

impl GivenArgs {
    pub fn from_matches(matches: &clap::ArgMatches) -> Self {
        GivenArgs(
            matches
                .ids()
                .filter(|id| {
                    matches.value_source(id.as_str())
                        == Some(clap::parser::ValueSource::CommandLine)
                })
                .map(|id| id.as_str().to_string())
                .collect(),
        )
    }

    fn has(&self, id: &str) -> bool {
        self.0.iter().any(|given| given == id)
    }
}

/// The data options (argument id, flag), which the demo brings itself.
const DATA_OPTIONS: [(&str, &str); 16] = [
    ("class", "--class"),
    ("input", "--input"),
    ("labels_from_header", "--labels-from-header"),
    ("table", "--table"),
    ("sequence_column", "--sequence-column"),
    ("label_column", "--label-column"),
    ("window_bp", "--window"),
    ("stride_bp", "--stride"),
    ("min_window_bp", "--min-window"),
    ("max_n_fraction", "--max-n-fraction"),
    ("block_bp", "--block"),
    ("split", "--split"),
    ("group_by", "--group-by"),
    ("test_class", "--test-class"),
    ("test_regex", "--test-regex"),
    ("label_by_feature", "--label-by-feature"),
];

/// `train --demo`: the demo's data, model and settings, with the settings given on the
/// command line in place of the demo's own.
fn demo_config(args: &TrainArgs, given: &GivenArgs) -> anyhow::Result<TrainConfig> {
    if let Some((_, flag)) = DATA_OPTIONS.iter().find(|(id, _)| given.has(id)) {
        anyhow::bail!(
            "--demo brings its own data set and split; leave out {flag} (or drop --demo to \
             train on your own data)"
        );
    }
    let out_dir = match &args.out {
        Some(out) => out.clone(),
        None => crate::bundled::new_demo_run_dir(&runs_dir()),
    };
    let demo = crate::bundled::demo_config(out_dir)?;
    let mut cfg = args.to_config()?;
    cfg.data = demo.data;
    cfg.dataset = crate::data::dataset::DatasetOptions {
        seed: cfg.dataset.seed,
        ..demo.dataset
    };
    cfg.out_dir = demo.out_dir;
    if !given.has("model") {
        cfg.model = demo.model;
    }
    if !given.has("lora_rank") {
        cfg.lora.rank = demo.lora.rank;
    }
    if !given.has("lora_alpha") {
        cfg.lora.alpha = demo.lora.alpha;
    }
    if !given.has("lora_targets") {
        cfg.lora.targets = demo.lora.targets;
    }
    if !given.has("lr") {
        cfg.learning_rate = demo.learning_rate;
    }
    if !given.has("epochs") {
        cfg.epochs = demo.epochs;
    }
    if !given.has("batch_size") {
        cfg.batch_size = demo.batch_size;
    }
    if !given.has("patience") {
        cfg.patience = demo.patience;
    }
    Ok(cfg)
}

/// Where the app keeps its runs (the demo's run shows up in its Runs screen).
#[cfg(feature = "gui")]
fn runs_dir() -> PathBuf {
    crate::gui::default_runs_dir()
}

#[cfg(not(feature = "gui"))]
fn runs_dir() -> PathBuf {
    PathBuf::from("dnatune-runs")
}

pub fn run(args: TrainArgs, given: &GivenArgs) -> anyhow::Result<ExitCode> {
    let cfg = if args.demo {
        let cfg = demo_config(&args, given)?;
        eprintln!(
            "demo: fine-tuning {} on coding vs non-coding 120 bp windows of Chlamydia \
             trachomatis (bundled with dnatune); run folder {}",
            cfg.model,
            cfg.out_dir.display()
        );
        cfg
    } else {
        args.to_config()?
    };
    let cancel = Cancel::new();
    let summary = if args.json_events {
        let stdout = std::io::stdout();
        train(&cfg, &cancel, |event| {
            if let Ok(line) = serde_json::to_string(&event) {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        })?
    } else {
        let mut display = Display::new();
        let summary = train(&cfg, &cancel, |event| display.show(&event))?;
        print_summary(&summary);
        if args.demo {
            // Standard output, after everything else: the demo's one-line result.
            match &summary.test {
                Some(test) => println!("test MCC: {:.4}", test.record.mcc),
                None => println!("test MCC: none (the run ended before its test evaluation)"),
            }
        }
        summary
    };
    let _ = summary;
    Ok(ExitCode::SUCCESS)
}

/// The human display on standard error: a progress line (redrawn in place on a terminal,
/// printed every few percent otherwise) and one table row per evaluation.
struct Display {
    terminal: bool,
    last_percent: u64,
    classes: Vec<String>,
    progress_shown: bool,
}

impl Display {
    fn new() -> Self {
        Display {
            terminal: std::io::stderr().is_terminal(),
            last_percent: u64::MAX,
            classes: Vec::new(),
            progress_shown: false,
        }
    }

    fn clear_progress(&mut self) {
        if self.terminal && self.progress_shown {
            eprint!("\r\x1b[2K");
            self.progress_shown = false;
        }
    }

    fn show(&mut self, event: &Event) {
        match event {
            Event::Downloading { file, done, total } => {
                if self.terminal {
                    eprint!(
                        "\r\x1b[2Kdownloading {} {:.1}/{:.1} MB",
                        file.as_deref().unwrap_or("model"),
                        *done as f64 / 1e6,
                        *total as f64 / 1e6
                    );
                    self.progress_shown = true;
                }
            }
            Event::DataLoaded {
                classes,
                counts,
                train_items,
                warnings,
            } => {
                self.clear_progress();
                self.classes = classes.clone();
                eprintln!("data: {} classes", classes.len());
                eprintln!(
                    "  {:<20} {:>18} {:>18} {:>18}",
                    "class", "train (records)", "validation", "test"
                );
                for (class, count) in classes.iter().zip(counts) {
                    let cell = |i: usize| format!("{} ({})", count.windows[i], count.records[i]);
                    eprintln!(
                        "  {:<20} {:>18} {:>18} {:>18}",
                        class,
                        cell(0),
                        cell(1),
                        cell(2)
                    );
                }
                eprintln!("  {train_items} training inputs per epoch");
                for warning in warnings {
                    eprintln!("warning: {warning}");
                }
            }
            Event::ModelLoaded {
                model_dir,
                family,
                device,
                frozen_dtype,
                gradient_checkpointing,
                trainable_parameters,
                initialized,
                max_length,
                truncated_windows,
                total_steps,
            } => {
                self.clear_progress();
                eprintln!(
                    "model: {family} from {} on {device}, frozen weights in {frozen_dtype}{}; \
                     {trainable_parameters} trainable parameters; {total_steps} steps; max \
                     {max_length} tokens",
                    model_dir.display(),
                    if *gradient_checkpointing {
                        ", gradient checkpointing"
                    } else {
                        ""
                    }
                );
                if !initialized.is_empty() {
                    eprintln!(
                        "note: the checkpoint lacks {}, initialised and trained",
                        initialized.join(", ")
                    );
                }
                if *truncated_windows > 0 {
                    eprintln!(
                        "note: {truncated_windows} inputs are longer than {max_length} tokens and were truncated; \
                         use --window to cut long records into windows instead"
                    );
                }
                eprintln!(
                    "{:>7} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    "step", "split", "loss", "acc", "F1", "MCC", "AUROC", ""
                );
            }
            Event::Step {
                step,
                total_steps,
                loss,
                learning_rate,
                sequences_per_second,
                eta_s,
                ..
            } => {
                let percent = step * 100 / (*total_steps).max(1);
                let line = format!(
                    "step {step}/{total_steps} [{}] loss {loss:.4} lr {learning_rate:.2e} {sequences_per_second:.1} seq/s ETA {}",
                    bar(*step, *total_steps, 20),
                    duration(*eta_s)
                );
                if self.terminal {
                    eprint!("\r\x1b[2K{line}");
                    self.progress_shown = true;
                } else if percent / 5 != self.last_percent / 5 || step == total_steps {
                    eprintln!("{line}");
                }
                self.last_percent = percent;
            }
            Event::Eval {
                step,
                split,
                record,
                is_best,
                ..
            } => {
                self.clear_progress();
                let name = match split {
                    crate::data::Split::Validation => "val",
                    crate::data::Split::Test => "test",
                    crate::data::Split::Train => "train",
                };
                eprintln!(
                    "{:>7} {:>6} {} {}",
                    step,
                    name,
                    metric_cells(record),
                    if *is_best { "best" } else { "" }
                );
            }
            Event::CheckpointSaved { .. } => {}
            Event::Finished { .. } => self.clear_progress(),
        }
    }
}

fn metric_cells(m: &Metrics) -> String {
    format!(
        "{:>10} {:>8.4} {:>8.4} {:>8.4} {:>8}",
        m.loss.map_or("-".to_string(), |l| format!("{l:.4}")),
        m.accuracy,
        m.f1,
        m.mcc,
        m.auroc.map_or("-".to_string(), |a| format!("{a:.4}"))
    )
}

fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = (done as f64 / total.max(1) as f64 * width as f64).round() as usize;
    format!(
        "{}{}",
        "#".repeat(filled.min(width)),
        "-".repeat(width - filled.min(width))
    )
}

fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn print_summary(summary: &RunSummary) {
    let how = match summary.stop_reason {
        StopReason::Completed => "finished",
        StopReason::EarlyStopped => "stopped early (no improvement)",
        StopReason::Cancelled => "cancelled",
    };
    eprintln!(
        "\n{how} after {} of {} steps in {}; best checkpoint: step {} ({} {})",
        summary.steps,
        summary.total_steps,
        duration(summary.elapsed_s),
        summary.best_step,
        summary.metric,
        summary
            .best_value
            .map_or("-".to_string(), |v| format!("{v:.4}"))
    );
    for (name, metrics) in [("validation", &summary.validation), ("test", &summary.test)] {
        if let Some(metrics) = metrics {
            eprintln!("{name} (best checkpoint):");
            super::eval_cmd::print_metrics(&summary.classes, &metrics.window, &metrics.record);
        }
    }
    if let Some(mib) = summary.peak_memory_mib {
        let what = if summary.device.starts_with("cuda") {
            "GPU memory"
        } else {
            "memory (resident set growth)"
        };
        eprintln!("peak {what} of the run: {mib:.0} MiB on {}", summary.device);
    }
    if let Some(dir) = &summary.adapter_dir {
        eprintln!("adapter: {}", dir.display());
    }
    eprintln!("run folder: {}", summary.out_dir.display());
}
