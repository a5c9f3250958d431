//! What a run reports while it goes: a typed enum the trainer hands to its caller's callback.
//! The trainer knows nothing of how events are shown (progress bar, JSON lines, plots).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::Split;

use super::metrics::Metrics;
use super::RunSummary;

/// Windows and records of one class in one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitCounts {
    pub windows: [u64; 3],
    pub records: [u64; 3],
}

/// One event of a run, in the order they happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Bytes of the model download so far (only when the model is not cached yet).
    Downloading {
        file: Option<String>,
        done: u64,
        total: u64,
    },
    /// The data is read, labelled, windowed and split.
    DataLoaded {
        classes: Vec<String>,
        /// Per class, indexed train / validation / test.
        counts: Vec<SplitCounts>,
        /// Training items per epoch (windows, doubled with reverse-complement augmentation).
        train_items: u64,
        /// QC warnings (e.g. classes separable by GC content alone).
        warnings: Vec<String>,
    },
    /// The model is loaded and LoRA attached.
    ModelLoaded {
        model_dir: PathBuf,
        family: String,
        /// `cpu`, `cuda:N (card, compute capability)` or `metal`.
        device: String,
        /// The dtype of the frozen base weights (`f32`, `bf16` or `f16`).
        #[serde(default)]
        frozen_dtype: String,
        #[serde(default)]
        gradient_checkpointing: bool,
        trainable_parameters: u64,
        /// Head tensors the checkpoint lacked (initialised, then trained).
        initialized: Vec<String>,
        max_length: usize,
        /// Windows longer than `max_length` tokens, truncated (all splits).
        truncated_windows: u64,
        total_steps: u64,
    },
    /// One optimizer step.
    Step {
        step: u64,
        total_steps: u64,
        /// Fractional epoch, e.g. 1.5 halfway through the second epoch.
        epoch: f64,
        /// Mean training loss of this step's sequences.
        loss: f64,
        learning_rate: f64,
        grad_norm: f64,
        sequences_per_second: f64,
        elapsed_s: f64,
        eta_s: f64,
        /// The most memory the run has held so far, in MiB: on a GPU the card's memory in use
        /// above what was in use when the run started, on the CPU the growth of the process's
        /// resident set. `None` where it cannot be read (Metal).
        #[serde(default)]
        peak_memory_mib: Option<f64>,
    },
    /// An evaluation of the validation split (during training) or the test split (at the end,
    /// with the best checkpoint).
    Eval {
        step: u64,
        epoch: f64,
        split: Split,
        /// Every window scored on its own.
        window: Metrics,
        /// Window probabilities aggregated per record.
        record: Metrics,
        /// This evaluation is the best so far (validation only).
        is_best: bool,
    },
    /// The best adapter so far was written.
    CheckpointSaved {
        step: u64,
        path: PathBuf,
        metric: String,
        value: f64,
    },
    /// The run ended (completed, stopped early or cancelled); the summary is also returned.
    Finished { summary: Box<RunSummary> },
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All epochs (or `max_steps`) done.
    Completed,
    /// `patience` evaluations without improvement.
    EarlyStopped,
    /// Cancelled by the user.
    Cancelled,
}
