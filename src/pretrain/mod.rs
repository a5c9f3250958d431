//! Masked-language-model pretraining: from scratch, or continued pretraining of any supported
//! model, on unlabelled sequences. One blocking [`pretrain`] call with typed events, periodic
//! checkpoints in Hub layout and resumption from the newest one.
//!
//! The run folder holds `pretrain.json` (the configuration), `history.jsonl` (every event),
//! `checkpoint-NNNNNNN/` folders — each a model folder in Hugging Face layout (`config.json`,
//! `model.safetensors`, the tokenizer files) plus `optimizer.safetensors` and
//! `trainer_state.json` — and `latest`, the name of the newest checkpoint.

pub mod masking;
pub mod model;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::data::manifest::write_atomically;
use crate::data::{read_sequences, DataError};
use crate::model::config::ModelError;
use crate::model::hub::{self, HubError};
use crate::model::lora::SeededRng;
use crate::tokenize::{Tokenizer, TokenizerError, TokenizerKind};
use crate::train::optim::{clip_grad_norm, AdamW};
use crate::train::schedule::{learning_rate, warmup_steps};
use crate::train::{resolve_device, Cancel, DeviceChoice, Schedule, TrainError};

use masking::{MaskRule, MaskUnit, Masked, IGNORE};
use model::MaskedLm;

pub const CONFIG_FILE: &str = "pretrain.json";
pub const LATEST_FILE: &str = "latest";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
const HISTORY_FILE: &str = "history.jsonl";
/// Files copied from the starting model folder into every checkpoint (those that exist).
const MODEL_FILES: [&str; 7] = [
    "config.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "merges.txt",
    "README.md",
];

/// A pretraining run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PretrainConfig {
    /// The starting model: a folder in Hub layout or a Hub id. With `from_scratch` only its
    /// `config.json` and tokenizer files are used.
    pub model: String,
    pub from_scratch: bool,
    /// Unlabelled sequences: FASTA/FASTQ (any compression) or one sequence per line.
    pub inputs: Vec<PathBuf>,
    /// Window length in bp; records are cut into non-overlapping windows of this length (the
    /// last, shorter piece is kept when at least half as long).
    pub window_bp: usize,
    /// Tokens per window, special tokens included (default: the model's maximum).
    pub max_length: Option<usize>,
    /// Windows with more than this fraction of non-ACGT bases are left out.
    pub max_n_fraction: f64,
    pub mask_probability: f64,
    pub batch_size: usize,
    pub max_steps: u64,
    pub learning_rate: f64,
    pub warmup_ratio: f64,
    pub schedule: Schedule,
    pub weight_decay: f64,
    pub max_grad_norm: Option<f64>,
    /// Fraction of the windows held out for the validation loss (never trained on).
    pub validation_fraction: f64,
    /// At most this many validation windows are scored at each evaluation.
    pub max_validation_windows: usize,
    pub eval_every: u64,
    pub checkpoint_every: u64,
    /// Checkpoints kept besides the newest (older ones are deleted).
    pub keep_checkpoints: usize,
    pub seed: u64,
    pub device: DeviceChoice,
    pub out_dir: PathBuf,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            model: String::new(),
            from_scratch: false,
            inputs: Vec::new(),
            window_bp: 1000,
            max_length: None,
            max_n_fraction: 0.1,
            mask_probability: 0.15,
            batch_size: 16,
            max_steps: 1000,
            learning_rate: 5e-4,
            warmup_ratio: 0.05,
            schedule: Schedule::Linear,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
            validation_fraction: 0.02,
            max_validation_windows: 256,
            eval_every: 100,
            checkpoint_every: 200,
            keep_checkpoints: 1,
            seed: 42,
            device: DeviceChoice::Auto,
            out_dir: PathBuf::from("dnatune-pretrain"),
        }
    }
}

impl PretrainConfig {
    fn validate(&self) -> Result<(), PretrainError> {
        let bad = |m: String| Err(PretrainError::InvalidConfig(m));
        if self.model.trim().is_empty() {
            return bad(
                "no model given (--model): a model folder or Hub id, or with \
                        --from-scratch a folder with config.json and the tokenizer files"
                    .into(),
            );
        }
        if self.inputs.is_empty() {
            return bad("no input files; give one or more FASTA files".into());
        }
        if !(0.0..0.5).contains(&self.mask_probability) || self.mask_probability == 0.0 {
            return bad(format!(
                "--mask-probability must be in (0, 0.5) (got {}); 0.15 is BERT's",
                self.mask_probability
            ));
        }
        if self.batch_size == 0 || self.max_steps == 0 || self.window_bp < 10 {
            return bad(
                "--batch-size and --max-steps must be at least 1, --window at least 10 bp".into(),
            );
        }
        if !(0.0..0.5).contains(&self.validation_fraction) {
            return bad(format!(
                "--validation-fraction must be in [0, 0.5) (got {})",
                self.validation_fraction
            ));
        }
        if self.eval_every == 0 || self.checkpoint_every == 0 {
            return bad("--eval-every and --checkpoint-every must be at least 1".into());
        }
        Ok(())
    }
}

/// What a pretraining run reports while it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PretrainEvent {
    DataLoaded {
        files: usize,
        records: usize,
        train_windows: u64,
        validation_windows: u64,
        /// Windows left out for too many non-ACGT bases.
        skipped_windows: u64,
    },
    ModelReady {
        family: String,
        device: String,
        parameters: u64,
        from_scratch: bool,
        /// The step the run continues from (0 for a new run).
        start_step: u64,
        total_steps: u64,
        max_length: usize,
        /// `token` or `span of k tokens` (overlapping k-mers).
        masking: String,
    },
    Step {
        step: u64,
        total_steps: u64,
        /// Mean cross-entropy over the masked tokens of this step.
        loss: f64,
        /// Masked tokens predicted exactly.
        masked_accuracy: f64,
        learning_rate: f64,
        grad_norm: f64,
        sequences_per_second: f64,
        elapsed_s: f64,
        eta_s: f64,
    },
    /// Loss and accuracy on the held-out windows (same masks at every evaluation).
    Eval {
        step: u64,
        loss: f64,
        masked_accuracy: f64,
    },
    CheckpointSaved {
        step: u64,
        path: PathBuf,
    },
    Finished {
        summary: PretrainSummary,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainSummary {
    pub steps: u64,
    pub cancelled: bool,
    pub checkpoint: PathBuf,
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub elapsed_s: f64,
}

/// Resumption state saved with each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    step: u64,
    /// Sequences trained on so far (the position in the shuffled window order).
    sequences_seen: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    #[error("{0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The device could not be had, and the like (boxed: a large error).
    #[error(transparent)]
    Train(Box<TrainError>),
    #[error("cannot resume from {path}: {message}")]
    Resume { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<TrainError> for PretrainError {
    fn from(err: TrainError) -> Self {
        Self::Train(Box::new(err))
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PretrainError + '_ {
    move |source| PretrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The windows of a run, split into training and held-out sets.
struct Windows {
    train: Vec<String>,
    validation: Vec<String>,
    records: usize,
    skipped: u64,
}

/// Cuts every record into non-overlapping windows and holds out a seeded random
/// `validation_fraction` of them (non-overlapping windows share no bases).
fn load_windows(cfg: &PretrainConfig) -> Result<Windows, PretrainError> {
    let mut all = Vec::new();
    let mut records = 0;
    let mut skipped = 0u64;
    for path in &cfg.inputs {
        for record in read_sequences(path)? {
            records += 1;
            let bases = record.bases.to_ascii_uppercase();
            let mut start = 0;
            while start < bases.len() {
                let end = (start + cfg.window_bp).min(bases.len());
                let piece = &bases[start..end];
                start = end;
                if piece.len() * 2 < cfg.window_bp {
                    continue;
                }
                let other = piece
                    .iter()
                    .filter(|b| !matches!(b, b'A' | b'C' | b'G' | b'T'))
                    .count();
                if other as f64 > cfg.max_n_fraction * piece.len() as f64 {
                    skipped += 1;
                    continue;
                }
                all.push(String::from_utf8_lossy(piece).into_owned());
            }
        }
    }
    if all.is_empty() {
        return Err(PretrainError::InvalidConfig(format!(
            "the inputs hold no window of at least {} bp with ≤ {:.0} % non-ACGT bases; give \
             longer sequences or a smaller --window",
            cfg.window_bp.div_ceil(2),
            cfg.max_n_fraction * 100.0
        )));
    }
    let order = permutation(all.len(), cfg.seed ^ 0x005E_ED0F_DA7A);
    let n_validation = if cfg.validation_fraction > 0.0 {
        ((all.len() as f64 * cfg.validation_fraction).round() as usize).clamp(1, all.len() - 1)
    } else {
        0
    };
    if all.len() < 2 && n_validation > 0 {
        return Err(PretrainError::InvalidConfig(
            "only one window: too little data for a validation split; give more sequences or \
             --validation-fraction 0"
                .into(),
        ));
    }
    let mut validation = Vec::with_capacity(n_validation);
    let mut train = Vec::with_capacity(all.len() - n_validation);
    let mut taken: Vec<Option<String>> = all.into_iter().map(Some).collect();
    for (rank, &index) in order.iter().enumerate() {
        let window = taken[index].take().unwrap_or_default();
        if rank < n_validation {
            validation.push(window);
        } else {
            train.push(window);
        }
    }
    Ok(Windows {
        train,
        validation,
        records,
        skipped,
    })
}

/// A seeded permutation of `0..n` (Fisher–Yates).
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SeededRng::new(seed);
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// A tokenized, masked batch on `device`.
struct Batch {
    ids: Tensor,
    mask: Tensor,
    /// Flat positions (`row · tokens + column`) of the masked tokens, and their labels.
    positions: Tensor,
    labels: Tensor,
    sequences: usize,
}

fn make_batch(
    windows: &[&str],
    tokenizer: &Tokenizer,
    max_length: usize,
    rule: &MaskRule,
    seeds: &[u64],
    device: &Device,
) -> Result<Batch, PretrainError> {
    let encodings = windows
        .iter()
        .map(|w| tokenizer.encode(w, Some(max_length)))
        .collect::<Result<Vec<_>, _>>()?;
    let longest = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
    // Random replacements come from the ordinary tokens of this batch (never a special token).
    let replacements: Vec<u32> = encodings
        .iter()
        .flat_map(|e| {
            e.input_ids
                .iter()
                .zip(&e.spans)
                .filter(|(_, span)| span.is_some())
                .map(|(&id, _)| id)
        })
        .collect();
    let (mut ids, mut mask, mut positions, mut labels) = (vec![], vec![], vec![], vec![]);
    for (row, (encoding, &seed)) in encodings.iter().zip(seeds).enumerate() {
        let maskable: Vec<bool> = encoding.spans.iter().map(Option::is_some).collect();
        let Masked {
            input_ids,
            labels: row_labels,
        } = rule.apply(
            &encoding.input_ids,
            &maskable,
            &replacements,
            &mut SeededRng::new(seed),
        );
        for (column, &label) in row_labels.iter().enumerate() {
            if label != IGNORE {
                positions.push((row * longest + column) as u32);
                labels.push(label as u32);
            }
        }
        let pad = longest - input_ids.len();
        ids.extend(input_ids);
        ids.extend(std::iter::repeat_n(tokenizer.pad_id(), pad));
        mask.extend(encoding.attention_mask.iter().copied());
        mask.extend(std::iter::repeat_n(0u32, pad));
    }
    let n = windows.len();
    Ok(Batch {
        ids: Tensor::from_vec(ids, (n, longest), device)?,
        mask: Tensor::from_vec(mask, (n, longest), device)?,
        positions: Tensor::from_vec(positions.clone(), positions.len(), device)?,
        labels: Tensor::from_vec(labels, positions.len(), device)?,
        sequences: n,
    })
}

/// Mean cross-entropy over the masked positions, and how many of them the argmax gets right.
fn masked_loss(model: &MaskedLm, batch: &Batch) -> Result<(Tensor, f64), PretrainError> {
    let picked = model
        .forward_at(&batch.ids, &batch.mask, &batch.positions)?
        .to_dtype(DType::F32)?;
    let loss = candle_nn::loss::cross_entropy(&picked, &batch.labels)?;
    let predicted = picked.argmax(D::Minus1)?;
    let correct = predicted
        .eq(&batch.labels)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok((
        loss,
        f64::from(correct) / batch.labels.elem_count().max(1) as f64,
    ))
}

/// Per-window masking seeds: fixed for validation windows (comparable evaluations), per
/// step for training (a resumed run masks as the uninterrupted one would).
fn window_seed(seed: u64, salt: u64, index: u64) -> u64 {
    let mut rng = SeededRng::new(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
    rng.next_u64()
}

/// Runs (or resumes, when `cfg.out_dir` holds a checkpoint and `resume` is set) a
/// pretraining run; see the module docs for what it writes.
pub fn pretrain(
    cfg: &PretrainConfig,
    resume: bool,
    cancel: &Cancel,
    mut on_event: impl FnMut(PretrainEvent),
) -> Result<PretrainSummary, PretrainError> {
    let started = Instant::now();
    cfg.validate()?;
    let device = resolve_device(cfg.device)?;
    let out_dir = cfg.out_dir.clone();
    let resume_from = if resume {
        Some(latest_checkpoint(&out_dir)?)
    } else {
        if out_dir.join(LATEST_FILE).exists() {
            return Err(PretrainError::InvalidConfig(format!(
                "{} already holds a pretraining run; continue it with --resume {0}, or choose \
                 another --out",
                out_dir.display()
            )));
        }
        None
    };
    std::fs::create_dir_all(&out_dir).map_err(io_error(&out_dir))?;

    let windows = load_windows(cfg)?;
    on_event(PretrainEvent::DataLoaded {
        files: cfg.inputs.len(),
        records: windows.records,
        train_windows: windows.train.len() as u64,
        validation_windows: windows.validation.len() as u64,
        skipped_windows: windows.skipped,
    });

    let source_dir = hub::resolve_model(&cfg.model, |_| {})?;
    let (model, state) = match &resume_from {
        Some(checkpoint) => {
            let model = MaskedLm::load(checkpoint, &device, None)?;
            let state: TrainerState = read_json(&checkpoint.join(TRAINER_STATE_FILE))?;
            (model, Some(state))
        }
        None => {
            let seed = cfg.from_scratch.then_some(cfg.seed);
            (MaskedLm::load(&source_dir, &device, seed)?, None)
        }
    };
    let model_files_dir = resume_from.clone().unwrap_or_else(|| source_dir.clone());
    let tokenizer = Tokenizer::from_model_dir(&model_files_dir)?;
    let max_length = cfg
        .max_length
        .unwrap_or_else(|| tokenizer.model_max_length())
        .min(tokenizer.model_max_length());
    let unit = match (&tokenizer, tokenizer.kind()) {
        (Tokenizer::Kmer(kmer), TokenizerKind::Kmer) => MaskUnit::Span(kmer.k()),
        _ => MaskUnit::Token,
    };
    let rule = MaskRule {
        probability: cfg.mask_probability,
        unit,
        mask_id: tokenizer.mask_id(),
    };
    let vars = model.vars();
    let parameters: u64 = vars.iter().map(|(_, v)| v.elem_count() as u64).sum();
    let mut optimizer = AdamW::new(vars.clone(), 0.9, 0.999, 1e-8, cfg.weight_decay)?;
    let (mut step, mut sequences_seen) = (0u64, 0u64);
    if let (Some(checkpoint), Some(state)) = (&resume_from, &state) {
        let path = checkpoint.join(OPTIMIZER_FILE);
        let tensors =
            candle_core::safetensors::load(&path, &device).map_err(|e| PretrainError::Resume {
                path: path.clone(),
                message: e.to_string(),
            })?;
        optimizer
            .load_state(state.step, &tensors)
            .map_err(|message| PretrainError::Resume { path, message })?;
        step = state.step;
        sequences_seen = state.sequences_seen;
    }
    let total_steps = cfg.max_steps;
    on_event(PretrainEvent::ModelReady {
        family: model.family.display_name().to_string(),
        device: crate::device::describe(&device),
        parameters,
        from_scratch: cfg.from_scratch,
        start_step: step,
        total_steps,
        max_length,
        masking: match unit {
            MaskUnit::Token => "token".to_string(),
            MaskUnit::Span(k) => format!("span of {k} tokens"),
        },
    });
    if resume_from.is_none() {
        let text = serde_json::to_string_pretty(cfg).unwrap_or_default();
        let path = out_dir.join(CONFIG_FILE);
        write_atomically(&path, text.as_bytes()).map_err(io_error(&path))?;
    }
    let history_path = out_dir.join(HISTORY_FILE);
    let mut history = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&history_path)
        .map_err(io_error(&history_path))?;
    let mut record = |event: &PretrainEvent| {
        use std::io::Write;
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(history, "{line}");
        }
    };

    let n_train = windows.train.len() as u64;
    let warmup = warmup_steps(cfg.warmup_ratio, total_steps);
    let evaluate = |model: &MaskedLm| -> Result<Option<(f64, f64)>, PretrainError> {
        let count = windows.validation.len().min(cfg.max_validation_windows);
        if count == 0 {
            return Ok(None);
        }
        let (mut loss_sum, mut correct_sum, mut masked_sum) = (0f64, 0f64, 0f64);
        for (chunk_index, chunk) in windows.validation[..count]
            .chunks(cfg.batch_size)
            .enumerate()
        {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let seeds: Vec<u64> = (0..chunk.len())
                .map(|i| window_seed(cfg.seed, 1, (chunk_index * cfg.batch_size + i) as u64))
                .collect();
            let batch = make_batch(&refs, &tokenizer, max_length, &rule, &seeds, &device)?;
            let (loss, accuracy) = masked_loss(model, &batch)?;
            let n = batch.labels.elem_count() as f64;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * n;
            correct_sum += accuracy * n;
            masked_sum += n;
        }
        Ok(Some((
            loss_sum / masked_sum.max(1.0),
            correct_sum / masked_sum.max(1.0),
        )))
    };

    let checkpoint = |optimizer: &AdamW, step: u64, sequences_seen: u64| {
        let state = TrainerState {
            step,
            sequences_seen,
        };
        save_checkpoint(
            &out_dir,
            &model_files_dir,
            &model,
            optimizer,
            &state,
            cfg.keep_checkpoints,
        )
    };
    let mut last_validation = None;
    let mut train_seconds = 0f64;
    let mut trained_now = 0u64;
    let mut cancelled = false;
    let mut last_checkpoint = resume_from.clone();
    let mut order: Option<(u64, Vec<usize>)> = None;
    while step < total_steps {
        if cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        let step_started = Instant::now();
        let mut refs: Vec<&str> = Vec::with_capacity(cfg.batch_size);
        for i in 0..cfg.batch_size as u64 {
            let position = sequences_seen + i;
            let epoch = position / n_train;
            if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                order = Some((epoch, epoch_order(n_train as usize, cfg.seed, epoch)));
            }
            if let Some((_, order)) = &order {
                refs.push(windows.train[order[(position % n_train) as usize]].as_str());
            }
        }
        let seeds: Vec<u64> = (0..refs.len() as u64)
            .map(|i| window_seed(cfg.seed, 2 + step, i))
            .collect();
        let batch = make_batch(&refs, &tokenizer, max_length, &rule, &seeds, &device)?;
        let (loss, accuracy) = masked_loss(&model, &batch)?;
        let loss_value = f64::from(loss.to_scalar::<f32>()?);
        let store = loss.backward()?;
        let mut grads = vars
            .iter()
            .map(|(_, var)| match store.get(var.as_tensor()) {
                Some(grad) => Ok(grad.clone()),
                None => var.zeros_like(),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        drop(store);
        let lr = learning_rate(cfg.schedule, cfg.learning_rate, step, warmup, total_steps);
        let grad_norm = clip_grad_norm(&mut grads, cfg.max_grad_norm)?;
        if !loss_value.is_finite() || !grad_norm.is_finite() {
            return Err(PretrainError::InvalidConfig(format!(
                "the loss became {loss_value} at step {} (learning rate {lr:.2e}); lower \
                 --lr (e.g. {:.1e}) and resume from the last checkpoint",
                step + 1,
                cfg.learning_rate / 10.0
            )));
        }
        optimizer.step(&grads, lr)?;
        step += 1;
        sequences_seen += batch.sequences as u64;
        trained_now += batch.sequences as u64;
        train_seconds += step_started.elapsed().as_secs_f64();
        let elapsed = started.elapsed().as_secs_f64();
        let steps_now = step - state.as_ref().map_or(0, |s| s.step);
        let event = PretrainEvent::Step {
            step,
            total_steps,
            loss: loss_value,
            masked_accuracy: accuracy,
            learning_rate: lr,
            grad_norm,
            sequences_per_second: trained_now as f64 / train_seconds.max(1e-9),
            elapsed_s: elapsed,
            eta_s: elapsed / steps_now.max(1) as f64 * (total_steps - step) as f64,
        };
        record(&event);
        on_event(event);
        if step % cfg.eval_every == 0 || step == total_steps {
            if let Some((loss, masked_accuracy)) = evaluate(&model)? {
                last_validation = Some((loss, masked_accuracy));
                let event = PretrainEvent::Eval {
                    step,
                    loss,
                    masked_accuracy,
                };
                record(&event);
                on_event(event);
            }
        }
        if step % cfg.checkpoint_every == 0 || step == total_steps {
            let path = checkpoint(&optimizer, step, sequences_seen)?;
            let event = PretrainEvent::CheckpointSaved {
                step,
                path: path.clone(),
            };
            record(&event);
            on_event(event);
            last_checkpoint = Some(path);
        }
    }
    // A cancelled run keeps what it learned since the last checkpoint.
    if cancelled
        && last_checkpoint
            .as_ref()
            .is_none_or(|p| !p.ends_with(checkpoint_name(step)))
    {
        let path = checkpoint(&optimizer, step, sequences_seen)?;
        last_checkpoint = Some(path);
    }
    let summary = PretrainSummary {
        steps: step,
        cancelled,
        checkpoint: last_checkpoint.unwrap_or_else(|| out_dir.clone()),
        validation_loss: last_validation.map(|v| v.0),
        validation_accuracy: last_validation.map(|v| v.1),
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    let event = PretrainEvent::Finished {
        summary: summary.clone(),
    };
    record(&event);
    on_event(event);
    Ok(summary)
}

/// The shuffled order of the training windows in `epoch` (seeded, so resumable).
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    permutation(n, seed ^ epoch.wrapping_mul(0xA24B_AED4_963E_E407))
}

fn checkpoint_name(step: u64) -> String {
    format!("checkpoint-{step:07}")
}

/// The newest checkpoint of the run folder `out_dir`.
pub fn latest_checkpoint(out_dir: &Path) -> Result<PathBuf, PretrainError> {
    let latest = out_dir.join(LATEST_FILE);
    let name = std::fs::read_to_string(&latest).map_err(|e| PretrainError::Resume {
        path: out_dir.to_path_buf(),
        message: format!(
            "no {LATEST_FILE} file ({e}); it is written with the first checkpoint — start the \
             run again without --resume"
        ),
    })?;
    let dir = out_dir.join(name.trim());
    if !dir.join("model.safetensors").is_file() {
        return Err(PretrainError::Resume {
            path: dir,
            message: "the checkpoint folder has no model.safetensors".into(),
        });
    }
    Ok(dir)
}

/// The configuration a run folder was started with.
pub fn read_run_config(out_dir: &Path) -> Result<PretrainConfig, PretrainError> {
    read_json(&out_dir.join(CONFIG_FILE))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PretrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| PretrainError::Resume {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| PretrainError::Resume {
        path: path.to_path_buf(),
        message: format!("not valid: {e}"),
    })
}

/// Writes `checkpoint-NNNNNNN/` (into a temporary folder, renamed when complete), points
/// `latest` at it and deletes checkpoints beyond `keep` older ones.
fn save_checkpoint(
    out_dir: &Path,
    model_files_dir: &Path,
    model: &MaskedLm,
    optimizer: &AdamW,
    state: &TrainerState,
    keep: usize,
) -> Result<PathBuf, PretrainError> {
    let name = checkpoint_name(state.step);
    let final_dir = out_dir.join(&name);
    let tmp_dir = out_dir.join(format!("{name}.tmp"));
    if tmp_dir.exists() {
        std::fs::remove_dir_all(&tmp_dir).map_err(io_error(&tmp_dir))?;
    }
    std::fs::create_dir_all(&tmp_dir).map_err(io_error(&tmp_dir))?;
    for file in MODEL_FILES {
        let from = model_files_dir.join(file);
        if from.is_file() {
            let to = tmp_dir.join(file);
            std::fs::copy(&from, &to).map_err(io_error(&to))?;
        }
    }
    let weights = model.state_dict()?;
    let path = tmp_dir.join("model.safetensors");
    candle_core::safetensors::save(&weights, &path)?;
    let moments: std::collections::HashMap<String, Tensor> = optimizer
        .state_tensors()
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_device(&Device::Cpu)?)))
        .collect::<candle_core::Result<_>>()?;
    candle_core::safetensors::save(&moments, tmp_dir.join(OPTIMIZER_FILE))?;
    let path = tmp_dir.join(TRAINER_STATE_FILE);
    let text = serde_json::to_string(state).unwrap_or_default();
    std::fs::write(&path, text).map_err(io_error(&path))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(io_error(&final_dir))?;
    }
    std::fs::rename(&tmp_dir, &final_dir).map_err(io_error(&final_dir))?;
    let latest = out_dir.join(LATEST_FILE);
    write_atomically(&latest, name.as_bytes()).map_err(io_error(&latest))?;

    let mut older: Vec<PathBuf> = std::fs::read_dir(out_dir)
        .map_err(io_error(out_dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("checkpoint-") && !n.ends_with(".tmp"))
                && *p != final_dir
        })
        .collect();
    older.sort();
    while older.len() > keep {
        let oldest = older.remove(0);
        std::fs::remove_dir_all(&oldest).map_err(io_error(&oldest))?;
    }
    Ok(final_dir)
}
