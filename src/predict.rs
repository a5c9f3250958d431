//! Applying a fine-tuned classifier: batched window probabilities (shared with the trainer's
//! evaluation) and [`Predictor`], which treats new records exactly as the training data was
//! treated (truncation, windowing, aggregation) using the run's `dnatune.json`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::adapter::bundle::{BundleError, RunBundle, BUNDLE_FILE};
use crate::adapter::peft::{PeftAdapter, PeftError, ADAPTER_CONFIG_FILE};
use crate::data::window::Windowing;
use crate::data::WindowOptions;
use crate::model::classifier::{ClassifierError, SequenceClassifier};
use crate::model::hub::{self, HubError};
use crate::tokenize::{Encoding, Tokenizer, TokenizerError};
use crate::train::metrics::{aggregate, softmax_rows, Aggregation};

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Peft(#[from] PeftError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    #[error("{path}: {message}")]
    Inconsistent { path: PathBuf, message: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Right-pads `encodings` to their longest and stacks them into `input_ids` / `attention_mask`
/// tensors `[batch, tokens]`.
pub fn batch_tensors(
    encodings: &[&Encoding],
    pad_id: u32,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let longest = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(encodings.len() * longest);
    let mut mask = Vec::with_capacity(encodings.len() * longest);
    for encoding in encodings {
        ids.extend_from_slice(&encoding.input_ids);
        mask.extend_from_slice(&encoding.attention_mask);
        let pad = longest - encoding.len();
        ids.extend(std::iter::repeat_n(pad_id, pad));
        mask.extend(std::iter::repeat_n(0u32, pad));
    }
    Ok((
        Tensor::from_vec(ids, (encodings.len(), longest), device)?,
        Tensor::from_vec(mask, (encodings.len(), longest), device)?,
    ))
}

/// Logits `n × num_labels` (row-major, f32) of `encodings` in eval mode, `batch_size` at a
/// time. Inputs are batched in order of length (less padding) and returned in input order.
pub fn logits(
    model: &SequenceClassifier,
    encodings: &[Encoding],
    pad_id: u32,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>, ClassifierError> {
    let num_labels = model.num_labels;
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|&i| encodings[i].len());
    let mut out = vec![0f32; encodings.len() * num_labels];
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
        let (ids, mask) = batch_tensors(&batch, pad_id, device)?;
        let rows = model
            .forward(&ids, &mask, false)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        for (&i, row) in chunk.iter().zip(rows) {
            out[i * num_labels..(i + 1) * num_labels].copy_from_slice(&row);
        }
    }
    Ok(out)
}

/// The windows of one record for prediction: as in training, except that a record shorter
/// than the shortest window, or one whose windows all hold too many N, is still scored (as
/// one window of the whole record) so every input gets a prediction.
pub fn record_windows(windowing: Option<&Windowing>, len: u32) -> Vec<(u32, u32)> {
    let spans = match windowing {
        Some(windowing) => windowing.spans(0, len),
        None => Vec::new(),
    };
    if spans.is_empty() {
        vec![(0, len)]
    } else {
        spans
    }
}

/// One input record's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPrediction {
    pub id: String,
    /// Per class, in class-id order; sums to 1.
    pub probs: Vec<f32>,
    pub predicted: u32,
    pub n_windows: u32,
}

/// A fine-tuned classifier with its labels and preprocessing, ready for new sequences.
pub struct Predictor {
    pub classifier: SequenceClassifier,
    pub tokenizer: Tokenizer,
    /// Class names in class-id order (`0, 1, …` for a plain PEFT adapter).
    pub labels: Vec<String>,
    pub max_length: usize,
    /// `None`: each record is one input, truncated to `max_length` tokens.
    pub windowing: Option<Windowing>,
    pub aggregation: Aggregation,
    /// Binary: the second class wins when its probability exceeds this.
    pub threshold: Option<f64>,
    pub batch_size: usize,
    pub device: Device,
    pub adapter_dir: PathBuf,
    pub base_model_dir: PathBuf,
    /// The run's `dnatune.json`, when the adapter came from dnatune.
    pub bundle: Option<RunBundle>,
}

impl Predictor {
    /// Loads `dir` — a dnatune run folder (holding `adapter/`) or an adapter folder (dnatune's
    /// or a plain PEFT one) — onto `model` (default: the base model the adapter names).
    pub fn load(dir: &Path, model: Option<&str>, device: &Device) -> Result<Self, PredictError> {
        let (adapter_dir, bundle_path) = locate(dir);
        let adapter = PeftAdapter::read(&adapter_dir)?;
        let bundle = match &bundle_path {
            Some(path) => Some(RunBundle::read(path)?),
            None => None,
        };
        let base_model_dir = match model {
            Some(given) => hub::resolve_model(given, |_| {})?,
            None => adapter.base_model_dir()?,
        };
        let classifier = adapter.load_classifier(Some(&base_model_dir), DType::F32, device)?;
        let tokenizer = Tokenizer::from_model_dir(&base_model_dir)?;
        let model_max = tokenizer.model_max_length();
        let (labels, max_length, windowing, aggregation, threshold) = match &bundle {
            Some(bundle) => {
                let path = bundle_path.clone().unwrap_or_default();
                if bundle.labels.len() != classifier.num_labels {
                    return Err(PredictError::Inconsistent {
                        path,
                        message: format!(
                            "lists {} labels but the adapter's classifier has {} outputs; the \
                             folder mixes files of two runs",
                            bundle.labels.len(),
                            classifier.num_labels
                        ),
                    });
                }
                let windowing = resolve_windowing(&bundle.window)
                    .map_err(|message| PredictError::Inconsistent { path, message })?;
                (
                    bundle.labels.clone(),
                    bundle.max_length,
                    windowing,
                    bundle.aggregation,
                    bundle.threshold,
                )
            }
            // A plain PEFT adapter: labels 0, 1, …, no windowing, truncation to the model's
            // maximum.
            None => (
                (0..classifier.num_labels).map(|i| i.to_string()).collect(),
                model_max,
                None,
                Aggregation::Mean,
                (classifier.num_labels == 2).then_some(0.5),
            ),
        };
        Ok(Predictor {
            classifier,
            tokenizer,
            labels,
            max_length,
            windowing,
            aggregation,
            threshold,
            batch_size: 16,
            device: device.clone(),
            adapter_dir,
            base_model_dir,
            bundle,
        })
    }

    /// Tokenized windows of `records` and, per window, the index of its record.
    pub fn encode_records<'a>(
        &self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(Vec<Encoding>, Vec<u32>), PredictError> {
        let mut encodings = Vec::new();
        let mut owner = Vec::new();
        for (index, bases) in records.into_iter().enumerate() {
            for (start, len) in record_windows(self.windowing.as_ref(), bases.len() as u32) {
                let window = &bases[start as usize..(start + len) as usize];
                // Normalised bases are ASCII.
                let text = std::str::from_utf8(window).unwrap_or_default();
                encodings.push(self.tokenizer.encode(text, Some(self.max_length))?);
                owner.push(index as u32);
            }
        }
        Ok((encodings, owner))
    }

    /// Class probabilities per record (window probabilities aggregated), in input order.
    pub fn predict<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Vec<RecordPrediction>, PredictError> {
        let (ids, bases): (Vec<&str>, Vec<&[u8]>) = records.into_iter().unzip();
        let (encodings, owner) = self.encode_records(bases.iter().copied())?;
        let num_labels = self.classifier.num_labels;
        let logits = logits(
            &self.classifier,
            &encodings,
            self.tokenizer.pad_id(),
            self.batch_size,
            &self.device,
        )?;
        let probs = softmax_rows(&logits, num_labels);
        let aggregated = aggregate(&probs, num_labels, &owner, self.aggregation);
        let mut out = Vec::with_capacity(ids.len());
        for (row, (&group, &windows)) in aggregated
            .groups
            .iter()
            .zip(&aggregated.windows)
            .enumerate()
        {
            let probs = aggregated.probs[row * num_labels..(row + 1) * num_labels].to_vec();
            out.push(RecordPrediction {
                id: ids[group as usize].to_string(),
                predicted: decide(&probs, self.threshold),
                probs,
                n_windows: windows,
            });
        }
        Ok(out)
    }
}

/// The predicted class: the most probable (ties: the lower id), or for two classes with a
/// threshold, class 1 when its probability exceeds the threshold.
pub fn decide(probs: &[f32], threshold: Option<f64>) -> u32 {
    if let (Some(threshold), 2) = (threshold, probs.len()) {
        return u32::from(f64::from(probs[1]) > threshold);
    }
    let mut best = 0;
    for (class, &p) in probs.iter().enumerate() {
        if p > probs[best] {
            best = class;
        }
    }
    best as u32
}

fn resolve_windowing(options: &WindowOptions) -> Result<Option<Windowing>, String> {
    if options.window_bp.is_none() {
        return Ok(None);
    }
    options.resolve().map(Some)
}

/// The adapter folder and, when there is one, the `dnatune.json` that goes with it: `dir`
/// may be a run folder (`dir/adapter/`, `dir/dnatune.json`) or an adapter folder (its
/// `dnatune.json` beside it or, for `run/adapter`, in the run folder).
fn locate(dir: &Path) -> (PathBuf, Option<PathBuf>) {
    let nested = dir.join("adapter");
    if !dir.join(ADAPTER_CONFIG_FILE).is_file() && nested.join(ADAPTER_CONFIG_FILE).is_file() {
        let bundle = dir.join(BUNDLE_FILE);
        return (nested, bundle.is_file().then_some(bundle));
    }
    let inside = dir.join(BUNDLE_FILE);
    if inside.is_file() {
        return (dir.to_path_buf(), Some(inside));
    }
    let beside = dir.parent().map(|parent| parent.join(BUNDLE_FILE));
    let beside = beside
        .filter(|path| path.is_file() && dir.file_name().is_some_and(|name| name == "adapter"));
    (dir.to_path_buf(), beside)
}

/// The CSV `dnatune predict` writes: `id, prob_<label>… (class-id order), predicted_label,
/// n_windows`, one row per record in input order.
pub fn predictions_csv(labels: &[String], rows: &[RecordPrediction]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["id".to_string()];
    header.extend(labels.iter().map(|label| format!("prob_{label}")));
    header.push("predicted_label".to_string());
    header.push("n_windows".to_string());
    // Writing into a Vec cannot fail.
    let _ = writer.write_record(&header);
    for row in rows {
        let mut fields = vec![row.id.clone()];
        fields.extend(row.probs.iter().map(|p| format!("{p:.6}")));
        fields.push(
            labels
                .get(row.predicted as usize)
                .cloned()
                .unwrap_or_else(|| row.predicted.to_string()),
        );
        fields.push(row.n_windows.to_string());
        let _ = writer.write_record(&fields);
    }
    writer.into_inner().unwrap_or_default()
}
