//! Fine-tuning: one blocking [`train`] call that the command line, the desktop app, the
//! tests and the benchmarks all drive; they differ only in what they do with its events.

pub mod config;
pub mod events;
pub mod metrics;
pub mod optim;
pub mod schedule;
pub mod step;
mod trainer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use config::{ClassWeights, DeviceChoice, LoraSettings, Precision, Schedule, TrainConfig};
pub use events::{Event, SplitCounts, StopReason};
pub use metrics::{Aggregation, MetricName, Metrics};
pub use trainer::{
    resolve_device, train, ADAPTER_DIR, HISTORY_FILE, MANIFEST_FILE, MERGED_DIR,
    TEST_PREDICTIONS_FILE,
};

use crate::adapter::bundle::{BundleError, SplitMetrics};
use crate::adapter::export::ExportError;
use crate::data::{DataError, DatasetError};
use crate::model::classifier::ClassifierError;
use crate::model::config::ModelError;
use crate::model::hub::HubError;
use crate::tokenize::TokenizerError;

/// Stops a run between optimizer steps; clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a finished (or stopped, or cancelled) run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub out_dir: PathBuf,
    /// The best adapter (PEFT format); `None` only when no step was evaluated.
    pub adapter_dir: Option<PathBuf>,
    pub stop_reason: StopReason,
    pub classes: Vec<String>,
    pub steps: u64,
    pub total_steps: u64,
    pub best_step: u64,
    pub metric: MetricName,
    /// The best validation value of `metric` (record level).
    pub best_value: Option<f64>,
    /// Validation metrics of the best checkpoint.
    pub validation: Option<SplitMetrics>,
    /// Test metrics of the best checkpoint.
    pub test: Option<SplitMetrics>,
    pub elapsed_s: f64,
    /// Where it ran (see [`Event::ModelLoaded`]).
    #[serde(default)]
    pub device: String,
    /// The run's peak memory in MiB (see [`Event::Step`]).
    #[serde(default)]
    pub peak_memory_mib: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Device(String),
    #[error(
        "the device ran out of memory ({message}). Use a smaller batch (--batch-size {half_batch}, \
         with --grad-accum to keep the effective batch){length_hint}{checkpoint_hint}",
        half_batch = (batch_size / 2).max(1),
        length_hint = match max_length {
            Some(n) => format!(", shorter inputs (--max-length {})", (n / 2).max(16)),
            None => ", shorter inputs (--max-length, e.g. half the model's maximum)".to_string(),
        },
        checkpoint_hint = if *gradient_checkpointing {
            ""
        } else {
            " or --gradient-checkpointing"
        }
    )]
    OutOfMemory {
        batch_size: usize,
        max_length: Option<usize>,
        gradient_checkpointing: bool,
        message: String,
    },
    #[error(
        "the training loss became {loss} at step {step} (learning rate {learning_rate:.3e}); \
         the run stopped. Try a lower learning rate (--lr, e.g. {suggested_lr:.1e}), \
         gradient clipping (--max-grad-norm 1) or a longer warm-up (--warmup-ratio 0.1). \
         The best adapter so far, if any, is kept in {out_dir}"
    )]
    NonFiniteLoss {
        step: u64,
        loss: f64,
        learning_rate: f64,
        suggested_lr: f64,
        out_dir: PathBuf,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
