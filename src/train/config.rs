//! One serde [`TrainConfig`]: everything a fine-tuning run needs, saved with the run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{DatasetOptions, LoadOptions};
use crate::model::config::Family;
use crate::model::lora::{LoraConfig, TargetModules};

use super::metrics::{Aggregation, MetricName};
use super::TrainError;

/// The LoRA choices a user makes; the targets default to the family's (PEFT's) defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraSettings {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Module names (`query`, `value`, `key`, `attention.output.dense`, `intermediate.dense`,
    /// `output.dense`, `Wqkv`, `gated_layers`, `wo`, …); `None`: the family's default.
    pub targets: Option<Vec<String>>,
    pub use_rslora: bool,
}

impl Default for LoraSettings {
    fn default() -> Self {
        LoraSettings {
            rank: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: None,
            use_rslora: false,
        }
    }
}

impl LoraSettings {
    pub fn to_config(&self, family: Family, seed: u64) -> LoraConfig {
        LoraConfig {
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            targets: match &self.targets {
                Some(names) => TargetModules::Names(names.clone()),
                None => TargetModules::default_for(family),
            },
            use_rslora: self.use_rslora,
            seed,
        }
    }
}

/// Learning-rate schedule after the linear warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear decay to 0 at the last step (transformers' default).
    #[default]
    Linear,
    /// Half a cosine from the peak to 0 at the last step.
    Cosine,
    /// Constant after warm-up.
    Constant,
}

/// Per-class weights of the cross-entropy loss.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    /// Every class weighs 1.
    #[default]
    None,
    /// `n_train / (n_classes · n_class)`, as scikit-learn's `class_weight="balanced"`: for
    /// imbalanced data.
    Balanced,
    /// One weight per class, in class order.
    Custom(Vec<f32>),
}

/// Where to train: `auto` picks a GPU when this build has one and it is present, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "metal" | "mps" => Ok(Self::Metal),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => lower
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| {
                    format!(
                        "unknown device {s:?}; use auto, cpu, cuda, cuda:N (e.g. cuda:1) or metal"
                    )
                }),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => write!(f, "metal"),
        }
    }
}

/// The dtype of the frozen base-model projections. LoRA weights, the head, LayerNorms,
/// embeddings, activations and the optimizer state stay f32 whatever is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 on the CPU, bf16 on CUDA GPUs of compute capability ≥ 8.0 (Ampere and newer),
    /// f16 on older CUDA GPUs and on Metal.
    #[default]
    Auto,
    F32,
    /// bfloat16: CUDA, compute capability ≥ 8.0.
    Bf16,
    /// float16: any GPU; also the CPU (slower than f32 there, half the memory).
    F16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

/// A fine-tuning run: data, model, LoRA, optimisation, evaluation and output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// A model folder in Hub layout or a Hub id (downloaded into the Hub cache when needed).
    pub model: String,
    /// Which files to read and how they are labelled.
    pub data: LoadOptions,
    /// Windows, blocks, groups, split fractions and the split seed.
    pub dataset: DatasetOptions,
    pub lora: LoraSettings,
    /// Also train the BERT pooler in full (it always trains when the checkpoint lacks it).
    pub train_pooler: bool,
    /// Peak learning rate of AdamW.
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay; never applied to biases.
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Fraction of the optimizer steps spent warming up linearly from 0.
    pub warmup_ratio: f64,
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Sequences per forward pass.
    pub batch_size: usize,
    /// Forward passes per optimizer step (effective batch = batch_size × this).
    pub gradient_accumulation: usize,
    /// Passes over the training windows.
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides `epochs` for the schedule).
    pub max_steps: Option<usize>,
    /// Tokens per window, special tokens included; longer windows are truncated as Hugging
    /// Face tokenizers truncate. `None`: the model's maximum.
    pub max_length: Option<usize>,
    /// Evaluate on the validation split every this many optimizer steps (and always at the
    /// end of each epoch).
    pub eval_every: Option<usize>,
    /// The validation metric (record level) that picks the best checkpoint.
    pub metric: MetricName,
    /// Stop after this many evaluations without improvement (`None`: never stop early).
    pub patience: Option<usize>,
    pub class_weights: ClassWeights,
    /// Also train on the reverse complement of every training window (same label).
    pub reverse_complement: bool,
    /// How window probabilities make a record's probabilities.
    pub aggregation: Aggregation,
    /// Seeds shuffling, LoRA initialisation, dropout and new head weights.
    pub seed: u64,
    pub device: DeviceChoice,
    /// The dtype of the frozen base weights (see [`Precision`]).
    pub precision: Precision,
    /// Recompute each layer's activations during the backward pass instead of keeping them:
    /// activation memory of one layer instead of all, for about a third more compute.
    pub gradient_checkpointing: bool,
    /// The run folder: `adapter/`, `dnatune.json`, `README.md`, `history.jsonl`, …
    pub out_dir: PathBuf,
    /// Also write the merged model (base + LoRA folded in) to `out_dir/merged/`.
    pub export_merged: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: String::new(),
            data: LoadOptions::default(),
            dataset: DatasetOptions::default(),
            lora: LoraSettings::default(),
            train_pooler: false,
            learning_rate: 2e-4,
            weight_decay: 0.01,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            warmup_ratio: 0.05,
            schedule: Schedule::Linear,
            max_grad_norm: Some(1.0),
            batch_size: 16,
            gradient_accumulation: 1,
            epochs: 3,
            max_steps: None,
            max_length: None,
            eval_every: None,
            metric: MetricName::Mcc,
            patience: Some(3),
            class_weights: ClassWeights::None,
            reverse_complement: false,
            aggregation: Aggregation::Mean,
            seed: crate::data::dataset::DEFAULT_SEED,
            device: DeviceChoice::Auto,
            precision: Precision::Auto,
            gradient_checkpointing: false,
            out_dir: PathBuf::from("dnatune-run"),
            export_merged: false,
        }
    }
}

impl TrainConfig {
    /// Checks what can be checked before reading anything; the message names the option.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |message: String| Err(TrainError::InvalidConfig(message));
        if self.model.trim().is_empty() {
            return bad("no model given; pass a model folder or a Hub id (--model)".into());
        }
        if self.lora.rank == 0 {
            return bad(
                "--lora-rank must be at least 1 (got 0); 8 is a common choice, 4–64 the usual range"
                    .into(),
            );
        }
        if !(0.0..1.0).contains(&self.lora.dropout) {
            return bad(format!(
                "--lora-dropout must be in [0, 1) (got {})",
                self.lora.dropout
            ));
        }
        if !(self.lora.alpha.is_finite() && self.lora.alpha > 0.0) {
            return bad(format!(
                "--lora-alpha must be positive (got {})",
                self.lora.alpha
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "--lr must be a positive number (got {}); 1e-4 to 5e-4 is usual for LoRA",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "--weight-decay must be 0 or more (got {})",
                self.weight_decay
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(format!(
                "--warmup-ratio must be in [0, 1) (got {})",
                self.warmup_ratio
            ));
        }
        if let Some(norm) = self.max_grad_norm {
            if !(norm.is_finite() && norm > 0.0) {
                return bad(format!("--max-grad-norm must be positive (got {norm})"));
            }
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        if self.gradient_accumulation == 0 {
            return bad("--grad-accum must be at least 1".into());
        }
        if self.epochs == 0 && self.max_steps.is_none() {
            return bad("--epochs must be at least 1 (or give --max-steps)".into());
        }
        if self.max_steps == Some(0) {
            return bad("--max-steps must be at least 1".into());
        }
        if self.eval_every == Some(0) {
            return bad("--eval-every must be at least 1 step".into());
        }
        if self.patience == Some(0) {
            return bad("--patience must be at least 1 evaluation".into());
        }
        if let Some(max_length) = self.max_length {
            if max_length < 3 {
                return bad(format!(
                    "--max-length must leave room for the special tokens and at least one token of sequence (got {max_length})"
                ));
            }
        }
        if let ClassWeights::Custom(weights) = &self.class_weights {
            if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
                return bad(format!(
                    "class weights must be positive numbers (got {weights:?})"
                ));
            }
        }
        Ok(())
    }
}
