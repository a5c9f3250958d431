//! The training loop: data → tokens → LoRA classifier → AdamW steps with evaluation, the best
//! checkpoint on disk at every moment, and a final test evaluation of the best checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use crate::adapter::bundle::{RunBundle, SplitMetrics, Versions};
use crate::adapter::export::{write_merged_model, write_peft_adapter};
use crate::data::manifest::write_atomically;
use crate::data::split::SPLITS;
use crate::data::{self, Dataset, Manifest, Split};
use crate::device::MemoryMeter;
use crate::model::classifier::{ClassifierSpec, SequenceClassifier};
use crate::model::config::ModelConfig;
use crate::model::hub::{self, HubProgress};
use crate::model::lora::SeededRng;
use crate::predict::logits as predict_logits;
use crate::tokenize::{Encoding, Tokenizer};

use super::config::{ClassWeights, DeviceChoice, TrainConfig};
use super::events::{Event, SplitCounts, StopReason};
use super::metrics::{aggregate, evaluate, group_labels, softmax_rows, AggregatedProbs, Metrics};
use super::optim::{clip_grad_norm, AdamW};
use super::schedule::{learning_rate, warmup_steps};
use super::step::{accumulate_gradients, MicroBatch};
use super::{Cancel, RunSummary, TrainError};

pub const ADAPTER_DIR: &str = "adapter";
pub const MERGED_DIR: &str = "merged";
pub const HISTORY_FILE: &str = "history.jsonl";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TEST_PREDICTIONS_FILE: &str = "test_predictions.csv";

/// The device a [`DeviceChoice`] names, or an error that says what this build supports.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, TrainError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available() {
                if let Ok(device) = Device::new_cuda(0) {
                    return Ok(device);
                }
            }
            if candle_core::utils::metal_is_available() {
                if let Ok(device) = Device::new_metal(0) {
                    return Ok(device);
                }
            }
            Ok(Device::Cpu)
        }
        DeviceChoice::Cuda(ordinal) => Device::new_cuda(ordinal).map_err(|e| {
            let message = e.to_string();
            let why = first_line(&message);
            TrainError::Device(if candle_core::utils::cuda_is_available() {
                format!(
                    "cannot use cuda:{ordinal}: {why}. No usable NVIDIA GPU with that number: is \
                     the NVIDIA driver installed and the GPU visible (nvidia-smi)? Use --device \
                     cpu, or --device auto to take a GPU only when there is one"
                )
            } else {
                format!(
                    "cannot use cuda:{ordinal}: this dnatune was built without CUDA support. Use \
                     --device cpu, or a build with the `cuda` feature (see \"Building with \
                     CUDA\" in the README) on a machine with an NVIDIA GPU"
                )
            })
        }),
        DeviceChoice::Metal => Device::new_metal(0).map_err(|e| {
            TrainError::Device(if candle_core::utils::metal_is_available() {
                format!(
                    "cannot use the Metal GPU: {}. Use --device cpu",
                    first_line(&e.to_string())
                )
            } else {
                "cannot use the Metal GPU: this dnatune was built without Metal support. Use \
                 --device cpu, or a build with the `metal` feature on a Mac"
                    .to_string()
            })
        }),
    }
}

/// The message of an error without the backtrace candle may append.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text).trim()
}

fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => "cuda".to_string(),
        Device::Metal(_) => "metal".to_string(),
    }
}

/// Tokenized windows of one split with their labels and records.
struct SplitItems {
    encodings: Vec<Encoding>,
    labels: Vec<u32>,
    /// Record index of each window (record-level aggregation).
    records: Vec<u32>,
}

/// Fine-tunes `cfg.model` on `cfg.data` and writes the run folder `cfg.out_dir`; see
/// [`TrainConfig`]. Blocks until the run ends; `on_event` sees every step and evaluation and
/// is never waited on by anything else. `cancel` stops the run between steps, keeping the
/// best checkpoint.
pub fn train(
    cfg: &TrainConfig,
    cancel: &Cancel,
    on_event: impl FnMut(Event),
) -> Result<RunSummary, TrainError> {
    train_on_device(cfg, cancel, on_event).map_err(|err| out_of_memory(err, cfg))
}

/// A device allocation failure, anywhere in a run, as an error that says what to change.
fn out_of_memory(err: TrainError, cfg: &TrainConfig) -> TrainError {
    let message = err.to_string();
    if !matches!(err, TrainError::OutOfMemory { .. }) && crate::device::is_out_of_memory(&message) {
        TrainError::OutOfMemory {
            batch_size: cfg.batch_size,
            max_length: cfg.max_length,
            gradient_checkpointing: cfg.gradient_checkpointing,
            message,
        }
    } else {
        err
    }
}

fn train_on_device(
    cfg: &TrainConfig,
    cancel: &Cancel,
    mut on_event: impl FnMut(Event),
) -> Result<RunSummary, TrainError> {
    let started = Instant::now();
    cfg.validate()?;
    let device = resolve_device(cfg.device)?;
    let frozen_dtype = crate::device::frozen_dtype(cfg.precision, &device).map_err(|why| {
        TrainError::Device(format!(
            "--precision {} on {}: {why}",
            cfg.precision,
            device_name(&device)
        ))
    })?;
    let mut memory = MemoryMeter::start(&device);
    let out_dir = cfg.out_dir.clone();
    std::fs::create_dir_all(&out_dir).map_err(|source| TrainError::Io {
        path: out_dir.clone(),
        source,
    })?;

    // Data first: it is what users get wrong most often, and it needs no download.
    let loaded = data::load(&cfg.data)?;
    let dataset = Dataset::build(loaded, &cfg.dataset)?;
    let classes = dataset.data.classes.clone();
    let num_labels = classes.len();
    if num_labels < 2 {
        return Err(TrainError::InvalidConfig(format!(
            "the data has only one class ({}); a classifier needs at least two — give one \
             --class NAME=PATH per class",
            classes.join(", ")
        )));
    }
    let manifest_json = Manifest::new(&dataset, &cfg.data).to_json();
    let manifest_path = out_dir.join(MANIFEST_FILE);
    write_atomically(&manifest_path, manifest_json.as_bytes()).map_err(|source| {
        TrainError::Io {
            path: manifest_path.clone(),
            source,
        }
    })?;
    let manifest_sha256 = hex(&Sha256::digest(manifest_json.as_bytes()));

    let model_dir = hub::resolve_model(&cfg.model, |progress| {
        if let Some(event) = download_event(progress) {
            on_event(event);
        }
    })?;
    let family = ModelConfig::from_dir(&model_dir)?.family;
    let tokenizer = Tokenizer::from_model_dir(&model_dir)?;
    let model_max = tokenizer.model_max_length();
    let max_length = cfg.max_length.unwrap_or(model_max);
    if max_length > model_max {
        return Err(TrainError::InvalidConfig(format!(
            "--max-length {max_length} is more than this model takes ({model_max} tokens); \
             lower it, or cut long records into windows (--window)"
        )));
    }

    let mut truncated = 0u64;
    let mut encode = |split: Split, with_rc: bool| -> Result<SplitItems, TrainError> {
        let windows = dataset.windows(split);
        let mut items = SplitItems {
            encodings: Vec::with_capacity(windows.len() * (1 + usize::from(with_rc))),
            labels: Vec::with_capacity(windows.len()),
            records: Vec::with_capacity(windows.len()),
        };
        for window in windows {
            let bases = dataset.bases(window);
            let text = std::str::from_utf8(bases).unwrap_or_default();
            let encoding = tokenizer.encode(text, Some(max_length))?;
            if covered_bp(&encoding) < bases.len() {
                truncated += 1;
            }
            items.encodings.push(encoding);
            items.labels.push(dataset.class_of(window));
            items.records.push(window.record);
            if with_rc {
                let rc = reverse_complement(bases);
                let text = std::str::from_utf8(&rc).unwrap_or_default();
                items
                    .encodings
                    .push(tokenizer.encode(text, Some(max_length))?);
                items.labels.push(dataset.class_of(window));
                items.records.push(window.record);
            }
        }
        Ok(items)
    };
    let train_items = encode(Split::Train, cfg.reverse_complement)?;
    let val_items = encode(Split::Validation, false)?;
    let test_items = encode(Split::Test, false)?;

    let mut counts = vec![
        SplitCounts {
            windows: [0; 3],
            records: [0; 3],
        };
        num_labels
    ];
    for split in SPLITS {
        let mut seen_records = std::collections::HashSet::new();
        for window in dataset.windows(split) {
            let class = dataset.class_of(window) as usize;
            counts[class].windows[split.index()] += 1;
            if seen_records.insert(window.record) {
                counts[class].records[split.index()] += 1;
            }
        }
    }
    on_event(Event::DataLoaded {
        classes: classes.clone(),
        counts,
        train_items: train_items.encodings.len() as u64,
        warnings: dataset.report.composition.warning.iter().cloned().collect(),
    });
    if train_items.encodings.is_empty() {
        return Err(TrainError::InvalidConfig(
            "the training split is empty; give more data or change --split".into(),
        ));
    }

    let spec = ClassifierSpec {
        num_labels,
        lora: Some(cfg.lora.to_config(family, cfg.seed)),
        train_pooler: cfg.train_pooler,
        seed: cfg.seed,
    };
    let mut classifier = SequenceClassifier::load(&model_dir, &spec, DType::F32, &device)?;
    classifier.store_frozen_weights_as(frozen_dtype)?;
    let vars = classifier.trainable_vars();
    let trainable_parameters: u64 = vars.iter().map(|(_, v)| v.elem_count() as u64).sum();
    let mut optimizer = AdamW::new(
        vars.clone(),
        cfg.adam_beta1,
        cfg.adam_beta2,
        cfg.adam_epsilon,
        cfg.weight_decay,
    )?;
    let class_weights = class_weights(&cfg.class_weights, &train_items.labels, num_labels)?;

    let sequences_per_step = cfg.batch_size * cfg.gradient_accumulation;
    let n_train = train_items.encodings.len();
    let steps_per_epoch = n_train.div_ceil(sequences_per_step) as u64;
    let total_steps = cfg
        .max_steps
        .map_or(cfg.epochs as u64 * steps_per_epoch, |s| s as u64);
    let warmup = warmup_steps(cfg.warmup_ratio, total_steps);
    on_event(Event::ModelLoaded {
        model_dir: model_dir.clone(),
        family: family.display_name().to_string(),
        device: crate::device::describe(&device),
        frozen_dtype: format!("{frozen_dtype:?}").to_lowercase(),
        gradient_checkpointing: cfg.gradient_checkpointing,
        trainable_parameters,
        initialized: classifier.report().initialized,
        max_length,
        truncated_windows: truncated,
        total_steps,
    });

    let base_model_name = base_model_name(&cfg.model, &model_dir);
    let adapter_dir = out_dir.join(ADAPTER_DIR);
    let mut run = Run {
        cfg,
        classifier: &classifier,
        tokenizer: &tokenizer,
        device: &device,
        classes: &classes,
        family,
        max_length,
        total_steps,
        base_model_name,
        manifest_sha256,
        adapter_dir,
        history: Vec::new(),
        best: None,
        evals_since_best: 0,
    };

    let mut step = 0u64;
    let mut epoch = 0u64;
    let mut last_eval_step = None;
    let mut stop_reason = StopReason::Completed;
    let mut train_seconds = 0f64;
    let mut sequences_seen = 0u64;
    let pad_id = tokenizer.pad_id();
    'epochs: while step < total_steps {
        let order = shuffled(n_train, cfg.seed, epoch);
        for step_items in order.chunks(sequences_per_step) {
            if cancel.is_cancelled() {
                stop_reason = StopReason::Cancelled;
                break 'epochs;
            }
            let step_started = Instant::now();
            let weight_total: f64 = step_items
                .iter()
                .map(|&i| f64::from(class_weights[train_items.labels[i] as usize]))
                .sum();
            let micro_batches = step_items.chunks(cfg.batch_size).map(|micro| {
                let labels: Vec<u32> = micro.iter().map(|&i| train_items.labels[i]).collect();
                let weights = labels
                    .iter()
                    .map(|&l| class_weights[l as usize] / weight_total as f32)
                    .collect();
                MicroBatch {
                    encodings: micro.iter().map(|&i| &train_items.encodings[i]).collect(),
                    labels,
                    weights,
                }
            });
            let (mut grads, step_loss) = accumulate_gradients(
                &classifier,
                &vars,
                micro_batches,
                pad_id,
                &device,
                cfg.gradient_checkpointing,
            )?;
            let lr = learning_rate(cfg.schedule, cfg.learning_rate, step, warmup, total_steps);
            let grad_norm = clip_grad_norm(&mut grads, cfg.max_grad_norm)?;
            if !step_loss.is_finite() || !grad_norm.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    step: step + 1,
                    loss: if step_loss.is_finite() {
                        f64::NAN
                    } else {
                        step_loss
                    },
                    learning_rate: lr,
                    suggested_lr: cfg.learning_rate / 10.0,
                    out_dir: out_dir.clone(),
                });
            }
            optimizer.step(&grads, lr)?;
            step += 1;
            sequences_seen += step_items.len() as u64;
            train_seconds += step_started.elapsed().as_secs_f64();
            memory.sample();
            let elapsed = started.elapsed().as_secs_f64();
            let per_step = elapsed / step as f64;
            let fractional_epoch = epoch as f64
                + (step - epoch * steps_per_epoch) as f64 / steps_per_epoch.max(1) as f64;
            let step_event = Event::Step {
                step,
                total_steps,
                epoch: fractional_epoch,
                loss: step_loss,
                learning_rate: lr,
                grad_norm,
                sequences_per_second: sequences_seen as f64 / train_seconds.max(1e-9),
                elapsed_s: elapsed,
                eta_s: per_step * total_steps.saturating_sub(step) as f64,
                peak_memory_mib: memory.run_peak_mib(),
            };
            run.history
                .push(serde_json::to_value(&step_event).unwrap_or_default());
            on_event(step_event);
            let due = cfg
                .eval_every
                .is_some_and(|every| step.is_multiple_of(every as u64));
            if due {
                last_eval_step = Some(step);
                if run.evaluate_and_checkpoint(&val_items, step, fractional_epoch, &mut on_event)? {
                    stop_reason = StopReason::EarlyStopped;
                    break 'epochs;
                }
            }
            if step >= total_steps {
                break 'epochs;
            }
        }
        epoch += 1;
        if last_eval_step != Some(step) {
            last_eval_step = Some(step);
            if run.evaluate_and_checkpoint(&val_items, step, epoch as f64, &mut on_event)? {
                stop_reason = StopReason::EarlyStopped;
                break 'epochs;
            }
        }
    }
    // A run that ended between evaluations (max_steps mid-epoch, or cancelled before any
    // evaluation) is evaluated once more so that it leaves a checkpoint.
    let needs_final_eval = match stop_reason {
        StopReason::Cancelled => run.best.is_none(),
        _ => last_eval_step != Some(step),
    };
    if needs_final_eval {
        let epoch_now = step as f64 / steps_per_epoch.max(1) as f64;
        run.evaluate_and_checkpoint(&val_items, step, epoch_now, &mut on_event)?;
    }

    // The final report is about the best checkpoint, not the last step.
    let best = run.best.take();
    if let Some(best) = &best {
        for ((name, _), value) in vars.iter().zip(&best.tensors) {
            classifier.set_trainable(name, value)?;
        }
    }
    let test = if test_items.encodings.is_empty() {
        None
    } else {
        let Scored {
            window,
            record,
            aggregated,
            record_labels,
        } = run.score(&test_items)?;
        write_test_predictions(
            &out_dir.join(TEST_PREDICTIONS_FILE),
            &dataset,
            &classes,
            &aggregated,
            &record_labels,
        )?;
        let epoch_now = step as f64 / steps_per_epoch.max(1) as f64;
        let best_step = best.as_ref().map_or(step, |b| b.step);
        let event = Event::Eval {
            step: best_step,
            epoch: epoch_now,
            split: Split::Test,
            window: window.clone(),
            record: record.clone(),
            is_best: false,
        };
        run.history
            .push(serde_json::to_value(&event).unwrap_or_default());
        on_event(event);
        Some(SplitMetrics { window, record })
    };

    let best_step = best.as_ref().map_or(step, |b| b.step);
    let validation = best.as_ref().map(|b| b.metrics.clone());
    let mut bundle = run.bundle(best_step, validation.clone(), Some(stop_reason));
    bundle.test = test.clone();
    bundle.write(&out_dir)?;
    bundle.write_model_card(&out_dir)?;
    if cfg.export_merged {
        write_merged_model(&classifier, &classes, &out_dir.join(MERGED_DIR))?;
    }
    run.write_history()?;
    let summary = RunSummary {
        out_dir: out_dir.clone(),
        adapter_dir: best.as_ref().map(|_| run.adapter_dir.clone()),
        stop_reason,
        classes: classes.clone(),
        steps: step,
        total_steps,
        best_step,
        metric: cfg.metric,
        best_value: best.as_ref().and_then(|b| b.value),
        validation,
        test,
        elapsed_s: started.elapsed().as_secs_f64(),
        device: crate::device::describe(&device),
        peak_memory_mib: memory.run_peak_mib(),
    };
    on_event(Event::Finished {
        summary: Box::new(summary.clone()),
    });
    Ok(summary)
}

/// Metrics of one split and the record probabilities behind them.
struct Scored {
    window: Metrics,
    record: Metrics,
    aggregated: AggregatedProbs,
    record_labels: Vec<u32>,
}

/// `test_predictions.csv`: every test record with its true label and the best checkpoint's
/// probabilities, in the columns `dnatune predict` writes (plus `true_label`).
fn write_test_predictions(
    path: &Path,
    dataset: &Dataset,
    classes: &[String],
    aggregated: &AggregatedProbs,
    record_labels: &[u32],
) -> Result<(), TrainError> {
    let num_labels = classes.len();
    let mut text = String::from("id");
    for class in classes {
        text.push_str(&format!(",prob_{}", csv_field(class)));
    }
    text.push_str(",predicted_label,n_windows,true_label\n");
    for (row, (&record, &windows)) in aggregated
        .groups
        .iter()
        .zip(&aggregated.windows)
        .enumerate()
    {
        let probs = &aggregated.probs[row * num_labels..(row + 1) * num_labels];
        text.push_str(&csv_field(dataset.data.records[record as usize].id()));
        for p in probs {
            text.push_str(&format!(",{p:.6}"));
        }
        let predicted = crate::predict::decide(probs, (num_labels == 2).then_some(0.5));
        text.push_str(&format!(
            ",{},{windows},{}\n",
            csv_field(&classes[predicted as usize]),
            csv_field(&classes[record_labels[row] as usize])
        ));
    }
    write_atomically(path, text.as_bytes()).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The best checkpoint so far, kept in memory for the final test evaluation.
struct Best {
    step: u64,
    value: Option<f64>,
    metrics: SplitMetrics,
    tensors: Vec<Tensor>,
}

/// What evaluation and checkpointing need during a run.
struct Run<'a> {
    cfg: &'a TrainConfig,
    classifier: &'a SequenceClassifier,
    tokenizer: &'a Tokenizer,
    device: &'a Device,
    classes: &'a [String],
    family: crate::model::config::Family,
    max_length: usize,
    total_steps: u64,
    base_model_name: String,
    manifest_sha256: String,
    adapter_dir: PathBuf,
    history: Vec<serde_json::Value>,
    best: Option<Best>,
    evals_since_best: usize,
}

impl Run<'_> {
    /// Window- and record-level metrics of `items` with the current weights.
    fn score(&self, items: &SplitItems) -> Result<Scored, TrainError> {
        let num_labels = self.classes.len();
        let logits = predict_logits(
            self.classifier,
            &items.encodings,
            self.tokenizer.pad_id(),
            self.cfg.batch_size.max(16),
            self.device,
        )?;
        let probs = softmax_rows(&logits, num_labels);
        let loss = super::metrics::cross_entropy(&logits, &items.labels, num_labels, None);
        let window = evaluate(&probs, &items.labels, num_labels, Some(loss));
        let aggregated = aggregate(&probs, num_labels, &items.records, self.cfg.aggregation);
        // Windows of one record share its label, so this cannot fail for dataset windows.
        let record_labels = group_labels(&items.labels, &items.records)
            .map_err(|e| TrainError::InvalidConfig(e.to_string()))?;
        let record_loss = log_loss(&aggregated.probs, &record_labels, num_labels);
        let record = evaluate(
            &aggregated.probs,
            &record_labels,
            num_labels,
            Some(record_loss),
        );
        Ok(Scored {
            window,
            record,
            aggregated,
            record_labels,
        })
    }

    /// Evaluates the validation split, saves the adapter when it is the best so far, and
    /// returns whether patience has run out.
    fn evaluate_and_checkpoint(
        &mut self,
        val_items: &SplitItems,
        step: u64,
        epoch: f64,
        on_event: &mut impl FnMut(Event),
    ) -> Result<bool, TrainError> {
        let metric = self.cfg.metric;
        let (window, record, value) = if val_items.encodings.is_empty() {
            {
                let empty = evaluate(&[], &[], self.classes.len(), None);
                (empty.clone(), empty, None)
            }
        } else {
            let scored = self.score(val_items)?;
            let value = metric.value(&scored.record);
            (scored.window, scored.record, value)
        };
        let is_best = match (&self.best, value) {
            (None, _) => true,
            (Some(best), Some(value)) => match best.value {
                Some(best_value) => metric.is_better(value, best_value),
                None => true,
            },
            (Some(_), None) => false,
        };
        let event = Event::Eval {
            step,
            epoch,
            split: Split::Validation,
            window: window.clone(),
            record: record.clone(),
            is_best,
        };
        self.history
            .push(serde_json::to_value(&event).unwrap_or_default());
        on_event(event);
        if is_best {
            self.evals_since_best = 0;
            let tensors = self
                .classifier
                .trainable_vars()
                .iter()
                .map(|(_, var)| var.as_tensor().copy())
                .collect::<candle_core::Result<Vec<_>>>()?;
            let metrics = SplitMetrics { window, record };
            write_peft_adapter(
                self.classifier,
                &self.base_model_name,
                None,
                &self.adapter_dir,
            )?;
            let bundle = self.bundle(step, Some(metrics.clone()), None);
            bundle.write(self.adapter_dir.parent().unwrap_or(Path::new(".")))?;
            self.best = Some(Best {
                step,
                value,
                metrics,
                tensors,
            });
            on_event(Event::CheckpointSaved {
                step,
                path: self.adapter_dir.clone(),
                metric: metric.to_string(),
                value: value.unwrap_or(f64::NAN),
            });
        } else {
            self.evals_since_best += 1;
        }
        self.write_history()?;
        Ok(self
            .cfg
            .patience
            .is_some_and(|patience| self.evals_since_best >= patience))
    }

    fn bundle(
        &self,
        best_step: u64,
        validation: Option<SplitMetrics>,
        stop_reason: Option<StopReason>,
    ) -> RunBundle {
        let label2id: BTreeMap<String, u32> = self
            .classes
            .iter()
            .enumerate()
            .map(|(id, label)| (label.clone(), id as u32))
            .collect();
        RunBundle {
            bundle_version: crate::adapter::bundle::BUNDLE_VERSION,
            base_model: self.base_model_name.clone(),
            family: self.family,
            labels: self.classes.to_vec(),
            label2id,
            tokenizer: self.tokenizer.kind(),
            max_length: self.max_length,
            window: self.cfg.dataset.window.clone(),
            aggregation: self.cfg.aggregation,
            threshold: (self.classes.len() == 2).then_some(0.5),
            metric: self.cfg.metric,
            best_step,
            total_steps: self.total_steps,
            stop_reason,
            validation,
            test: None,
            seed: self.cfg.seed,
            manifest_sha256: self.manifest_sha256.clone(),
            versions: Versions::current(),
            train_config: self.cfg.clone(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|since| since.as_secs()),
        }
    }

    /// `history.jsonl`: every step and evaluation so far, one JSON object per line.
    fn write_history(&self) -> Result<(), TrainError> {
        let mut text = String::new();
        for line in &self.history {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let path = self
            .adapter_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join(HISTORY_FILE);
        write_atomically(&path, text.as_bytes()).map_err(|source| TrainError::Io { path, source })
    }
}

/// Loss weight of each class.
fn class_weights(
    choice: &ClassWeights,
    train_labels: &[u32],
    num_labels: usize,
) -> Result<Vec<f32>, TrainError> {
    match choice {
        ClassWeights::None => Ok(vec![1.0; num_labels]),
        ClassWeights::Balanced => {
            let mut counts = vec![0u64; num_labels];
            for &label in train_labels {
                counts[label as usize] += 1;
            }
            let total = train_labels.len() as f64;
            Ok(counts
                .iter()
                .map(|&count| {
                    if count == 0 {
                        0.0
                    } else {
                        (total / (num_labels as f64 * count as f64)) as f32
                    }
                })
                .collect())
        }
        ClassWeights::Custom(weights) => {
            if weights.len() != num_labels {
                return Err(TrainError::InvalidConfig(format!(
                    "{} class weights given for {num_labels} classes; give one per class, in class order",
                    weights.len()
                )));
            }
            Ok(weights.clone())
        }
    }
}

/// A permutation of `0..n` for `epoch`, from the run's seed (SplitMix64 Fisher–Yates), so a
/// run repeats exactly.
fn shuffled(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SeededRng::new(seed ^ 0x5EED_0000_0000 ^ epoch.wrapping_mul(0x9E37_79B9));
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Reverse complement of normalised bases (`A C G T N`).
pub fn reverse_complement(bases: &[u8]) -> Vec<u8> {
    bases
        .iter()
        .rev()
        .map(|&base| match base {
            b'A' => b'T',
            b'T' => b'A',
            b'C' => b'G',
            b'G' => b'C',
            other => other,
        })
        .collect()
}

/// The number of input bases the tokens cover (the end of the last token's span).
fn covered_bp(encoding: &Encoding) -> usize {
    encoding
        .spans
        .iter()
        .rev()
        .find_map(|span| span.map(|(_, end)| end))
        .unwrap_or(0)
}

/// Mean −log p(true class) of probability rows.
fn log_loss(probs: &[f32], labels: &[u32], num_labels: usize) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(row, &label)| {
            let p = f64::from(probs[row * num_labels + label as usize]);
            -p.max(1e-12).ln()
        })
        .sum();
    total / labels.len() as f64
}

/// What `base_model_name_or_path` should say: the Hub id as given, or the absolute folder.
fn base_model_name(given: &str, resolved: &Path) -> String {
    if Path::new(given).is_dir() {
        std::fs::canonicalize(resolved)
            .unwrap_or_else(|_| resolved.to_path_buf())
            .display()
            .to_string()
    } else {
        given.to_string()
    }
}

fn download_event(progress: HubProgress) -> Option<Event> {
    match progress {
        HubProgress::FileBytes { file, done, total } => Some(Event::Downloading {
            file: Some(file),
            done,
            total,
        }),
        HubProgress::BatchBytes { done, total } => Some(Event::Downloading {
            file: None,
            done,
            total,
        }),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffling_is_a_seeded_permutation() {
        let a = shuffled(100, 7, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, shuffled(100, 7, 0));
        assert_ne!(a, shuffled(100, 7, 1));
        assert_ne!(a, shuffled(100, 8, 0));
    }

    #[test]
    fn reverse_complement_pairs_bases_and_keeps_n() {
        assert_eq!(reverse_complement(b"AACGTN"), b"NACGTT".to_vec());
    }

    #[test]
    fn balanced_weights_follow_scikit_learn() {
        // 3 of class 0, 1 of class 1: 4 / (2·3) and 4 / (2·1).
        let w = class_weights(&ClassWeights::Balanced, &[0, 0, 0, 1], 2).unwrap();
        assert!((w[0] - 4.0 / 6.0).abs() < 1e-6 && (w[1] - 2.0).abs() < 1e-6);
    }
}
