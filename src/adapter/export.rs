//! Exporting a fine-tuned classifier:
//! - as a Hugging Face PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`,
//!   the folder `PeftModel.save_pretrained()` writes), to load with transformers + PEFT;
//! - as a merged model: the base checkpoint with every LoRA update folded into its weight and
//!   the trained head, a complete model folder that needs no PEFT.
//!
//! Every file is written to a hidden temporary name in the output folder first and renamed into
//! place at the end, the file that marks the folder as complete (`adapter_config.json`,
//! `config.json`) last, so an interrupted export never leaves a folder that loads wrongly.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::model::classifier::{runtime_name_to_adapter_key, SequenceClassifier};
use crate::model::config::{ModelConfig, ModelError};
use crate::model::load::SAFETENSORS_FILE;

use super::peft::{ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE};

/// The file that makes a folder a Hugging Face model.
pub const MODEL_CONFIG_FILE: &str = "config.json";

/// Tokenizer files a Hub model folder may hold; whichever the base model has are copied.
const TOKENIZER_FILES: [&str; 9] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
];

/// Checkpoint tensors of the MLM heads, which a sequence classifier does not have
/// (transformers would report them as unexpected). ESM's contact head stays: `EsmModel` has it.
const DROPPED_PREFIXES: [&str; 2] = ["cls.", "lm_head."];

/// Errors of exporting a classifier.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "cannot write into {path}: it exists and is not a folder; give a folder path (it is \
         created when missing)"
    )]
    NotAFolder { path: PathBuf },
    #[error("cannot write {path}: {source}; check the path and that you may write there")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {message}")]
    WeightFile { path: PathBuf, message: String },
    #[error("cannot copy {from} into {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "this classifier has no LoRA adapter, so there is no PEFT adapter to write; export the \
         merged model instead"
    )]
    NoLora,
    #[error(
        "{given} label name(s) were given but the classifier has {expected} classes; give one \
         name per class, in class order"
    )]
    LabelCount { given: usize, expected: usize },
    #[error("the label name {0:?} is given twice; every class needs its own name")]
    DuplicateLabel(String),
    #[error(
        "{dir} is the base model folder; writing the merged model there would overwrite the \
         base checkpoint. Choose another output folder"
    )]
    IntoBaseModel { dir: PathBuf },
    #[error(
        "the base checkpoint {source_desc} has no {name}, which LoRA adapts; the classifier does \
         not match its own base model files (were they changed after loading?)"
    )]
    MissingBaseTensor { name: String, source_desc: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Writes `model`'s LoRA adapter and head into `dir` (created when missing) as PEFT saves
/// them: `adapter_config.json` and `adapter_model.safetensors`, tensors named
/// `base_model.model.<module path>.lora_A.weight`, `base_model.model.classifier.weight`, ….
/// `base_model_name_or_path` (a Hub id or folder) and `revision` tell PEFT which base model
/// to load. An adapter already in `dir` is replaced; other files there are kept.
pub fn write_peft_adapter(
    model: &SequenceClassifier,
    base_model_name_or_path: &str,
    revision: Option<&str>,
    dir: &Path,
) -> Result<(), ExportError> {
    let config = peft_adapter_config(model, base_model_name_or_path, revision)?;
    let mut tensors = Vec::new();
    for (runtime_name, var) in model.trainable_vars() {
        let tensor = cpu_contiguous(var.as_tensor(), DType::F32)?;
        tensors.push((runtime_name_to_adapter_key(&runtime_name), tensor));
    }

    let mut staged = StagedFiles::new(dir)?;
    staged.write_safetensors(ADAPTER_WEIGHTS_FILE, tensors)?;
    staged.write_json(ADAPTER_CONFIG_FILE, &config)?;
    staged.commit(ADAPTER_CONFIG_FILE)
}

/// The `adapter_config.json` PEFT writes for this classifier (its classic keys; PEFT fills in
/// defaults for the rest).
pub fn peft_adapter_config(
    model: &SequenceClassifier,
    base_model_name_or_path: &str,
    revision: Option<&str>,
) -> Result<Value, ExportError> {
    let (lora, _) = model.lora().ok_or(ExportError::NoLora)?;
    Ok(json!({
        "peft_type": "LORA",
        "task_type": "SEQ_CLS",
        "r": lora.rank,
        "lora_alpha": json_number(lora.alpha),
        "lora_dropout": lora.dropout,
        "target_modules": lora.targets,
        "modules_to_save": model.modules_to_save(),
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": lora.use_rslora,
        "init_lora_weights": true,
        "inference_mode": true,
        "base_model_name_or_path": base_model_name_or_path,
        "revision": revision,
    }))
}

/// Writes `model` into `dir` as a complete Hugging Face model folder that needs no PEFT:
/// `model.safetensors` (the base checkpoint with `W + scaling · B·A` folded into every adapted
/// weight, the trained head under its plain name, MLM heads left out), `config.json` (the
/// base config as a `*ForSequenceClassification` with `labels` as `id2label`/`label2id`), and
/// the base model's tokenizer files and remote code.
pub fn write_merged_model(
    model: &SequenceClassifier,
    labels: &[String],
    dir: &Path,
) -> Result<(), ExportError> {
    if labels.len() != model.num_labels {
        return Err(ExportError::LabelCount {
            given: labels.len(),
            expected: model.num_labels,
        });
    }
    if let Some(repeated) = labels
        .iter()
        .enumerate()
        .find_map(|(i, label)| labels[..i].contains(label).then_some(label))
    {
        return Err(ExportError::DuplicateLabel(repeated.clone()));
    }
    if same_folder(dir, &model.dir) {
        return Err(ExportError::IntoBaseModel {
            dir: dir.to_path_buf(),
        });
    }
    let tensors = merged_tensors(model)?;
    let config = merged_config(model, labels)?;

    let mut staged = StagedFiles::new(dir)?;
    staged.write_safetensors(SAFETENSORS_FILE, tensors)?;
    for name in base_model_extra_files(&model.dir)? {
        staged.copy_file(&name, &model.dir.join(&name))?;
    }
    staged.write_json(MODEL_CONFIG_FILE, &config)?;
    staged.commit(MODEL_CONFIG_FILE)
}

/// The merged checkpoint: base tensors in their stored dtype, adapted weights with the LoRA
/// update folded in (computed in f32), the head in the dtype of the base weights.
fn merged_tensors(model: &SequenceClassifier) -> Result<Vec<(String, Tensor)>, ExportError> {
    let weights = model.weights();
    let head = model.head_tensors();
    let mut deltas: HashMap<String, Tensor> = HashMap::new();
    let mut encoder = model.encoder.clone();
    for linear in encoder.linears_mut() {
        if let Some(adapter) = &linear.lora {
            let a = adapter.a.as_tensor().to_dtype(DType::F32)?;
            let b = adapter.b.as_tensor().to_dtype(DType::F32)?;
            let delta = (b.matmul(&a)? * adapter.scaling)?.to_device(&Device::Cpu)?;
            deltas.insert(format!("{}.weight", linear.name), delta);
        }
    }

    let mut base_dtype = None;
    let mut tensors = Vec::new();
    for name in weights.names() {
        let is_head = head.iter().any(|(head_name, _)| *head_name == name);
        if is_head || DROPPED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let Some(stored) = weights.peek(&name) else {
            continue;
        };
        let tensor = match deltas.remove(&name) {
            Some(delta) => {
                base_dtype.get_or_insert(stored.dtype());
                let merged = (stored.to_dtype(DType::F32)? + delta)?;
                merged.to_dtype(stored.dtype())?
            }
            None => stored,
        };
        tensors.push((name, cpu_contiguous(&tensor, tensor.dtype())?));
    }
    if let Some(name) = deltas.into_keys().next() {
        return Err(ExportError::MissingBaseTensor {
            name,
            source_desc: weights.source().to_string(),
        });
    }
    let head_dtype = base_dtype
        .or_else(|| head.first().map(|(_, t)| t.dtype()))
        .unwrap_or(DType::F32);
    for (name, tensor) in head {
        tensors.push((name, cpu_contiguous(&tensor, head_dtype)?));
    }
    Ok(tensors)
}

/// The base `config.json` turned into the config of a `*ForSequenceClassification`.
fn merged_config(model: &SequenceClassifier, labels: &[String]) -> Result<Value, ExportError> {
    let mut config = ModelConfig::from_dir(&model.dir)?.json;
    let (model_type, class) = if model.family.is_bert_style() {
        ("bert", "BertForSequenceClassification")
    } else {
        ("esm", "EsmForSequenceClassification")
    };
    let Some(object) = config.as_object_mut() else {
        // ModelConfig only parses JSON objects; nothing to extend otherwise.
        return Ok(config);
    };
    object.insert("architectures".into(), json!([class]));
    // DNABERT's config has no model_type; transformers would then guess from the folder name.
    object
        .entry("model_type")
        .or_insert_with(|| json!(model_type));
    object.insert("num_labels".into(), json!(labels.len()));
    let id2label: BTreeMap<String, &String> = labels
        .iter()
        .enumerate()
        .map(|(id, label)| (id.to_string(), label))
        .collect();
    let label2id: BTreeMap<&String, usize> = labels
        .iter()
        .enumerate()
        .map(|(id, label)| (label, id))
        .collect();
    object.insert("id2label".into(), json!(id2label));
    object.insert("label2id".into(), json!(label2id));
    if let Some(auto_map) = object.get_mut("auto_map").and_then(Value::as_object_mut) {
        add_sequence_classification_auto_map(auto_map, class);
        if let Some(repo_id) = hub_repo_of_snapshot(&model.dir) {
            point_auto_map_at_repo(auto_map, &model.dir, &repo_id);
        }
    }
    Ok(config)
}

/// The Hub repository id (`org/name`) of a Hugging Face cache snapshot folder
/// (`…/models--org--name/snapshots/<revision>`).
fn hub_repo_of_snapshot(dir: &Path) -> Option<String> {
    let snapshots = dir.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let repo_folder = snapshots.parent()?.file_name()?.to_str()?;
    let (org, name) = repo_folder.strip_prefix("models--")?.split_once("--")?;
    Some(format!("{org}/{name}"))
}

/// Rewrites `module.Class` to `org/name--module.Class` for modules whose `.py` file the
/// snapshot lacks (dnatune downloads no code), so transformers fetches the code from the Hub.
fn point_auto_map_at_repo(
    auto_map: &mut serde_json::Map<String, Value>,
    dir: &Path,
    repo_id: &str,
) {
    for value in auto_map.values_mut() {
        let Some(path) = value.as_str() else { continue };
        let Some((module, _)) = path.rsplit_once('.') else {
            continue;
        };
        if !path.contains("--") && !dir.join(format!("{module}.py")).is_file() {
            *value = json!(format!("{repo_id}--{path}"));
        }
    }
}

/// Remote-code models (`auto_map`) need an `AutoModelForSequenceClassification` entry in the
/// module of their other model classes, e.g. GENA-LM maps only `AutoModel`.
fn add_sequence_classification_auto_map(
    auto_map: &mut serde_json::Map<String, Value>,
    class: &str,
) {
    const KEY: &str = "AutoModelForSequenceClassification";
    if auto_map.contains_key(KEY) {
        return;
    }
    // "module.Class" or "org/repo--module.Class": keep everything before the class name.
    let module = auto_map
        .iter()
        .filter(|(key, _)| key.starts_with("AutoModel"))
        .filter_map(|(_, value)| value.as_str())
        .find_map(|path| path.rsplit_once('.').map(|(module, _)| module.to_string()));
    if let Some(module) = module {
        auto_map.insert(KEY.into(), json!(format!("{module}.{class}")));
    }
}

/// The tokenizer files and remote-code modules (`*.py`) of the base model folder.
fn base_model_extra_files(base: &Path) -> Result<Vec<String>, ExportError> {
    let mut names: Vec<String> = TOKENIZER_FILES
        .iter()
        .filter(|name| base.join(name).is_file())
        .map(|name| name.to_string())
        .collect();
    let entries = fs::read_dir(base).map_err(|source| ExportError::Io {
        path: base.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".py") && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// `tensor` as a contiguous CPU tensor of `dtype`, the layout safetensors stores.
fn cpu_contiguous(tensor: &Tensor, dtype: DType) -> Result<Tensor, ExportError> {
    Ok(tensor
        .detach()
        .to_dtype(dtype)?
        .to_device(&Device::Cpu)?
        .contiguous()?)
}

/// PEFT writes `lora_alpha` as an int; keep whole numbers whole.
fn json_number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Output files written under hidden temporary names in the output folder and renamed into
/// place by [`StagedFiles::commit`]; temporary files still there when dropped are removed.
struct StagedFiles {
    dir: PathBuf,
    /// (temporary path, final name), in writing order.
    files: Vec<(PathBuf, String)>,
}

impl StagedFiles {
    /// Creates `dir` when missing.
    fn new(dir: &Path) -> Result<Self, ExportError> {
        if dir.exists() && !dir.is_dir() {
            return Err(ExportError::NotAFolder {
                path: dir.to_path_buf(),
            });
        }
        fs::create_dir_all(dir).map_err(|source| ExportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files: Vec::new(),
        })
    }

    /// A fresh temporary path for the file `name`, registered for commit and clean-up.
    fn stage(&mut self, name: &str) -> PathBuf {
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = self.dir.join(temp_name);
        self.files.push((temp.clone(), name.to_string()));
        temp
    }

    fn io_error(&self, name: &str) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = self.dir.join(name);
        move |source| ExportError::Io { path, source }
    }

    fn write_json(&mut self, name: &str, value: &Value) -> Result<(), ExportError> {
        let mut text = serde_json::to_string_pretty(value).map_err(|e| ExportError::Io {
            path: self.dir.join(name),
            source: e.into(),
        })?;
        text.push('\n');
        let temp = self.stage(name);
        write_synced(&temp, text.as_bytes()).map_err(self.io_error(name))
    }

    /// A safetensors file with the metadata `{"format": "pt"}` that transformers and PEFT
    /// expect of PyTorch checkpoints.
    fn write_safetensors(
        &mut self,
        name: &str,
        tensors: Vec<(String, Tensor)>,
    ) -> Result<(), ExportError> {
        let temp = self.stage(name);
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(tensors, Some(metadata), &temp).map_err(|e| {
            ExportError::WeightFile {
                path: self.dir.join(name),
                message: e.to_string(),
            }
        })?;
        sync_file(&temp).map_err(self.io_error(name))
    }

    fn copy_file(&mut self, name: &str, from: &Path) -> Result<(), ExportError> {
        let temp = self.stage(name);
        fs::copy(from, &temp)
            .and_then(|_| sync_file(&temp))
            .map_err(|source| ExportError::Copy {
                from: from.to_path_buf(),
                to: self.dir.clone(),
                source,
            })
    }

    /// Renames every staged file into place, `marker` (the file that makes the folder
    /// usable) last. An old `marker` is removed first, so that between the renames the
    /// folder is incomplete rather than a mix of old and new files.
    fn commit(mut self, marker: &str) -> Result<(), ExportError> {
        let marker_path = self.dir.join(marker);
        match fs::remove_file(&marker_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ExportError::Io {
                    path: marker_path,
                    source,
                })
            }
        }
        let mut files = std::mem::take(&mut self.files);
        // Stable sort: the marker moves to the end, the rest keep their order.
        files.sort_by_key(|(_, name)| name == marker);
        for (index, (temp, name)) in files.iter().enumerate() {
            let target = self.dir.join(name);
            if let Err(source) = fs::rename(temp, &target) {
                // Let Drop remove the temporary files not yet renamed.
                self.files = files[index..].to_vec();
                return Err(ExportError::Io {
                    path: target,
                    source,
                });
            }
        }
        sync_file(&self.dir).map_err(|source| ExportError::Io {
            path: self.dir.clone(),
            source,
        })
    }
}

impl Drop for StagedFiles {
    fn drop(&mut self) {
        for (temp, _) in &self.files {
            let _ = fs::remove_file(temp);
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::write(path, bytes)?;
    sync_file(path)
}

/// Flushes a file (or, on Unix, a folder's entries) to disk, so a rename never exposes a
/// file whose contents are still in the page cache when the machine crashes.
fn sync_file(path: &Path) -> std::io::Result<()> {
    match fs::File::open(path).and_then(|file| file.sync_all()) {
        Ok(()) => Ok(()),
        // Folders cannot be opened for syncing everywhere (Windows); the renames still stand.
        Err(_) if path.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_snapshot_names_its_hub_repo_and_code_is_fetched_from_it() {
        let snapshot = Path::new("/cache/hub/models--zhihan1996--DNABERT-2-117M/snapshots/abc123");
        assert_eq!(
            hub_repo_of_snapshot(snapshot).as_deref(),
            Some("zhihan1996/DNABERT-2-117M")
        );
        assert_eq!(hub_repo_of_snapshot(Path::new("/models/dnabert2")), None);

        let mut auto_map = serde_json::Map::new();
        auto_map.insert("AutoModel".into(), json!("bert_layers.BertModel"));
        auto_map.insert(
            "AutoConfig".into(),
            json!("other/repo--configuration_bert.BertConfig"),
        );
        add_sequence_classification_auto_map(&mut auto_map, "BertForSequenceClassification");
        point_auto_map_at_repo(&mut auto_map, snapshot, "zhihan1996/DNABERT-2-117M");
        assert_eq!(
            auto_map["AutoModelForSequenceClassification"],
            "zhihan1996/DNABERT-2-117M--bert_layers.BertForSequenceClassification"
        );
        assert_eq!(
            auto_map["AutoModel"],
            "zhihan1996/DNABERT-2-117M--bert_layers.BertModel"
        );
        assert_eq!(
            auto_map["AutoConfig"],
            "other/repo--configuration_bert.BertConfig"
        );
    }
}
