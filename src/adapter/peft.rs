//! Importing a Hugging Face PEFT LoRA adapter of a sequence classifier: the folder
//! `PeftModel.save_pretrained()` writes (`adapter_config.json` + `adapter_model.safetensors`),
//! with or without dnatune's own files beside it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::model::classifier::{
    runtime_name_to_adapter_key, ClassifierError, ClassifierSpec, SequenceClassifier,
};
use crate::model::config::{Family, ModelError};
use crate::model::encoder::load_encoder;
use crate::model::hub::{self, HubError};
use crate::model::load::read_weight_file;
use crate::model::lora::{LoraConfig, LoraError, TargetModules};

pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// Older PEFT versions saved a torch pickle instead.
pub const ADAPTER_WEIGHTS_BIN_FILE: &str = "adapter_model.bin";
/// The prefix PEFT puts before every module path in the weights file.
const PEFT_PREFIX: &str = "base_model.model.";

/// Errors of reading a PEFT adapter or applying it to a base model.
#[derive(Debug, thiserror::Error)]
pub enum PeftError {
    #[error(
        "{dir} is not a PEFT adapter folder: it has no adapter_config.json. Give the folder that \
         holds adapter_config.json and adapter_model.safetensors (what PEFT's save_pretrained \
         writes, or the adapter/ folder of a dnatune run)"
    )]
    MissingConfig { dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid PEFT adapter config: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error("{dir} has adapter_config.json but no adapter_model.safetensors (or adapter_model.bin); copy the complete adapter folder")]
    MissingWeights { dir: PathBuf },
    #[error("cannot read the adapter weights {path}: {message}")]
    WeightFile { path: PathBuf, message: String },
    #[error("{config} does not name its base model (base_model_name_or_path); give the base model folder or Hub id explicitly (--model)")]
    NoBaseModel { config: PathBuf },
    #[error(
        "the base model {given:?} named in {config} was not found (looked for the folder {tried}); \
         give the base model folder or Hub id explicitly (--model)"
    )]
    BaseModelNotFound {
        given: String,
        config: PathBuf,
        tried: PathBuf,
    },
    #[error("cannot resolve the base model named in {config}: {source}")]
    Hub {
        config: PathBuf,
        #[source]
        source: Box<HubError>,
    },
    #[error(
        "{file}: tensor {tensor} has shape {adapter_shape:?}, but the base model {base} needs \
         {model_shape:?}. The adapter was made for another base model; give the model it was \
         trained on (--model)"
    )]
    ShapeMismatch {
        file: PathBuf,
        tensor: String,
        adapter_shape: Box<[usize]>,
        model_shape: Box<[usize]>,
        base: PathBuf,
    },
    #[error(
        "{file}: tensor {tensor} {detail}. The adapter was made for another base model \
         ({base} is {family}); give the model it was trained on (--model)"
    )]
    WrongBaseModel {
        file: PathBuf,
        tensor: String,
        detail: String,
        base: PathBuf,
        family: Family,
    },
    #[error("{file} lacks the tensor {tensor}: {what}")]
    MissingTensor {
        file: PathBuf,
        tensor: String,
        what: String,
    },
    #[error(
        "{file} holds no classification head ({expected}); dnatune imports LoRA adapters of \
         sequence classifiers (PEFT task_type SEQ_CLS, modules_to_save including classifier)"
    )]
    NoClassifier { file: PathBuf, expected: String },
    #[error(
        "the adapter {config} does not fit the base model {base}: {source}. Was the adapter made \
         for another base model? Give the model it was trained on (--model)"
    )]
    Targets {
        config: PathBuf,
        base: PathBuf,
        #[source]
        source: Box<LoraError>,
    },
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn default_lora_alpha() -> f64 {
    8.0
}

/// The fields of PEFT's `adapter_config.json` that matter for a LoRA classifier (PEFT writes
/// many more; they are ignored unless they change the math, which is rejected).
#[derive(Debug, Clone, Deserialize)]
pub struct PeftAdapterConfig {
    #[serde(default)]
    pub peft_type: Option<String>,
    #[serde(default)]
    pub task_type: Option<String>,
    pub r: usize,
    #[serde(default = "default_lora_alpha")]
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    /// A list of names or one regular expression; `null` means PEFT's default for the model.
    #[serde(default)]
    pub target_modules: Option<TargetModules>,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub bias: Option<String>,
    #[serde(default)]
    pub rank_pattern: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub alpha_pattern: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    pub exclude_modules: Option<serde_json::Value>,
}

impl PeftAdapterConfig {
    /// Reads `dir/adapter_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, PeftError> {
        let path = dir.join(ADAPTER_CONFIG_FILE);
        if !path.is_file() {
            return Err(PeftError::MissingConfig {
                dir: dir.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| PeftError::Io {
            path: path.clone(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|source| PeftError::Json {
            path: path.clone(),
            source,
        })?;
        config.check_supported(&path)?;
        Ok(config)
    }

    /// Rejects settings whose math dnatune does not implement, rather than giving wrong logits.
    fn check_supported(&self, path: &Path) -> Result<(), PeftError> {
        let unsupported = |message: String| PeftError::Unsupported {
            path: path.to_path_buf(),
            message,
        };
        if let Some(peft_type) = &self.peft_type {
            if peft_type != "LORA" {
                return Err(unsupported(format!(
                    "peft_type {peft_type:?} is not supported; dnatune reads LoRA adapters (LORA)"
                )));
            }
        }
        if self.r == 0 {
            return Err(unsupported(LoraError::RankZero.to_string()));
        }
        if self.use_dora {
            return Err(unsupported(
                "DoRA adapters (use_dora) are not supported".into(),
            ));
        }
        if self.fan_in_fan_out {
            return Err(unsupported(
                "fan_in_fan_out (GPT-2 style Conv1D layers) is not supported".into(),
            ));
        }
        if let Some(bias) = &self.bias {
            if bias != "none" {
                return Err(unsupported(format!(
                    "bias {bias:?} is not supported (only \"none\")"
                )));
            }
        }
        let non_empty = |m: &Option<serde_json::Map<String, serde_json::Value>>| {
            m.as_ref().is_some_and(|m| !m.is_empty())
        };
        if non_empty(&self.rank_pattern) || non_empty(&self.alpha_pattern) {
            return Err(unsupported(
                "per-module ranks or alphas (rank_pattern / alpha_pattern) are not supported"
                    .into(),
            ));
        }
        let set = |v: &Option<serde_json::Value>| v.as_ref().is_some_and(|v| !v.is_null());
        if set(&self.layers_to_transform) || set(&self.exclude_modules) {
            return Err(unsupported(
                "layers_to_transform / exclude_modules are not supported".into(),
            ));
        }
        Ok(())
    }

    /// The LoRA settings this adapter was trained with; `family` supplies PEFT's default
    /// targets when the config has none.
    pub fn lora_config(&self, family: Family) -> LoraConfig {
        LoraConfig {
            rank: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets: self
                .target_modules
                .clone()
                .unwrap_or_else(|| TargetModules::default_for(family)),
            use_rslora: self.use_rslora,
            seed: 0,
        }
    }

    /// Whether a `modules_to_save` entry names the BERT pooler (`pooler`, `bert.pooler`).
    fn saves_pooler(&self) -> bool {
        self.modules_to_save
            .iter()
            .flatten()
            .any(|m| m == "pooler" || m.ends_with(".pooler"))
    }
}

/// A PEFT adapter folder read into memory.
#[derive(Debug, Clone)]
pub struct PeftAdapter {
    pub dir: PathBuf,
    pub config: PeftAdapterConfig,
    /// The weights file, named in errors.
    pub weights_path: PathBuf,
    /// Tensors by their key in the file (`base_model.model.<module path>.lora_A.weight`, …).
    pub tensors: HashMap<String, Tensor>,
}

impl PeftAdapter {
    /// Reads `adapter_config.json` and `adapter_model.safetensors` (or `.bin`) from `dir`.
    pub fn read(dir: &Path) -> Result<Self, PeftError> {
        let config = PeftAdapterConfig::from_dir(dir)?;
        let weights_path = [ADAPTER_WEIGHTS_FILE, ADAPTER_WEIGHTS_BIN_FILE]
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| PeftError::MissingWeights {
                dir: dir.to_path_buf(),
            })?;
        let tensors = read_weight_file(&weights_path).map_err(|e| PeftError::WeightFile {
            path: weights_path.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            weights_path,
            tensors,
        })
    }

    /// The base model folder: `base_model_name_or_path` resolved against the adapter folder
    /// when it is a relative path, else looked up as a folder or Hugging Face Hub id.
    pub fn base_model_dir(&self) -> Result<PathBuf, PeftError> {
        let config_path = self.dir.join(ADAPTER_CONFIG_FILE);
        let given = match self.config.base_model_name_or_path.as_deref() {
            Some(given) if !given.trim().is_empty() => given,
            _ => {
                return Err(PeftError::NoBaseModel {
                    config: config_path,
                })
            }
        };
        let as_path = Path::new(given);
        let beside_adapter = if as_path.is_absolute() {
            as_path.to_path_buf()
        } else {
            self.dir.join(as_path)
        };
        if beside_adapter.is_dir() {
            return Ok(beside_adapter);
        }
        hub::resolve_model(given, |_| {}).map_err(|source| match source {
            HubError::FolderNotFound { .. } | HubError::BadModelId { .. } => {
                PeftError::BaseModelNotFound {
                    given: given.to_string(),
                    config: config_path,
                    tried: beside_adapter,
                }
            }
            source => PeftError::Hub {
                config: config_path,
                source: Box::new(source),
            },
        })
    }

    /// The class count, from the shape of the head's output layer.
    fn num_labels(&self, family: Family, base: &Path) -> Result<usize, PeftError> {
        let (ours, other) = if family.is_bert_style() {
            ("classifier.weight", "classifier.out_proj.weight")
        } else {
            ("classifier.out_proj.weight", "classifier.weight")
        };
        let key = format!("{PEFT_PREFIX}{ours}");
        if let Some(tensor) = self.tensors.get(&key) {
            return Ok(tensor.dims().first().copied().unwrap_or(0));
        }
        let other_key = format!("{PEFT_PREFIX}{other}");
        if self.tensors.contains_key(&other_key) {
            return Err(PeftError::WrongBaseModel {
                file: self.weights_path.clone(),
                tensor: other_key,
                detail: format!("belongs to a head this model does not have (it expects {key})"),
                base: base.to_path_buf(),
                family,
            });
        }
        Err(PeftError::NoClassifier {
            file: self.weights_path.clone(),
            expected: key,
        })
    }

    /// Builds the base model (`model_dir`, else the one the adapter names) as a classifier and
    /// sets every LoRA and head tensor from the adapter.
    pub fn load_classifier(
        &self,
        model_dir: Option<&Path>,
        dtype: DType,
        device: &Device,
    ) -> Result<SequenceClassifier, PeftError> {
        let base = match model_dir {
            Some(dir) => dir.to_path_buf(),
            None => self.base_model_dir()?,
        };
        let config_path = self.dir.join(ADAPTER_CONFIG_FILE);
        let loaded = load_encoder(&base, dtype, device)?;
        let family = loaded.family;
        let num_labels = self.num_labels(family, &base)?;
        let spec = ClassifierSpec {
            num_labels,
            lora: Some(self.config.lora_config(family)),
            train_pooler: family.is_bert_style() && self.config.saves_pooler(),
            seed: 0,
        };
        let classifier = match SequenceClassifier::from_encoder(loaded, &spec) {
            Ok(classifier) => classifier,
            Err(ClassifierError::Lora(source)) => {
                return Err(PeftError::Targets {
                    config: config_path,
                    base,
                    source: Box::new(source),
                })
            }
            Err(ClassifierError::TooFewLabels(n)) => {
                return Err(PeftError::Unsupported {
                    path: self.weights_path.clone(),
                    message: format!("the classifier has {n} output(s); at least 2 are needed"),
                })
            }
            Err(other) => return Err(other.into()),
        };

        let mut consumed = BTreeSet::new();
        for (runtime_name, var) in classifier.trainable_vars() {
            let key = runtime_name_to_adapter_key(&runtime_name);
            let tensor = self
                .tensors
                .get(&key)
                .ok_or_else(|| PeftError::MissingTensor {
                    file: self.weights_path.clone(),
                    tensor: key.clone(),
                    what: missing_tensor_reason(&runtime_name, &spec, &base),
                })?;
            if tensor.dims() != var.dims() {
                return Err(PeftError::ShapeMismatch {
                    file: self.weights_path.clone(),
                    tensor: key,
                    adapter_shape: tensor.dims().into(),
                    model_shape: var.dims().into(),
                    base,
                });
            }
            classifier.set_trainable(&runtime_name, tensor)?;
            consumed.insert(key);
        }
        let mut leftover: Vec<&String> = self
            .tensors
            .keys()
            .filter(|key| !consumed.contains(*key))
            .collect();
        leftover.sort();
        let classifier_prefix = format!("{PEFT_PREFIX}classifier.");
        if let Some(key) = leftover
            .iter()
            .find(|key| key.starts_with(&classifier_prefix) && key.contains(".lora_"))
        {
            return Err(PeftError::Unsupported {
                path: self.weights_path.clone(),
                message: format!(
                    "{key} puts LoRA on the classification head; dnatune adapts encoder \
                     projections only (the head trains in full through modules_to_save)"
                ),
            });
        }
        if let Some(key) = leftover.first() {
            return Err(PeftError::WrongBaseModel {
                file: self.weights_path.clone(),
                tensor: (*key).clone(),
                detail: "has no counterpart in the base model".to_string(),
                base,
                family,
            });
        }
        Ok(classifier)
    }
}

/// Why the adapter should hold a tensor it lacks (for [`PeftError::MissingTensor`]).
fn missing_tensor_reason(runtime_name: &str, spec: &ClassifierSpec, base: &Path) -> String {
    if runtime_name.contains(".lora_") {
        let targets = spec
            .lora
            .as_ref()
            .map_or(String::new(), |cfg| cfg.targets.to_string());
        format!(
            "adapter_config.json's target_modules {targets} select this module on {}; the \
             adapter folder is incomplete or damaged",
            base.display()
        )
    } else if runtime_name.contains(".pooler.") {
        format!(
            "the base model {} has no bert.pooler.dense, so the adapter must carry it (PEFT \
             saves it when modules_to_save includes \"pooler\"); give the checkpoint the \
             adapter was trained on (--model)",
            base.display()
        )
    } else {
        "the classification head needs it; the adapter folder is incomplete or damaged".to_string()
    }
}

/// Reads the PEFT adapter in `adapter_dir` and applies it to `model_dir` (or the base model
/// the adapter names): a classifier ready for `forward`.
pub fn load_peft_classifier(
    adapter_dir: &Path,
    model_dir: Option<&Path>,
    dtype: DType,
    device: &Device,
) -> Result<SequenceClassifier, PeftError> {
    PeftAdapter::read(adapter_dir)?.load_classifier(model_dir, dtype, device)
}
