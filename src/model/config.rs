//! `config.json` of a Hugging Face model folder: which family it belongs to, and the serde
//! mirror of the BERT-style configs (DNABERT, GENA-LM). The ESM (Nucleotide Transformer) and
//! MosaicBERT (DNABERT-2) config structs live beside their models; they parse the same JSON
//! through [`ModelConfig::parse`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors of model configuration, weight loading and the forward pass.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON for this model: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: unsupported model ({found}). Supported families: {supported}. \
         Pick one of those models or check that the folder holds the right config.json"
    )]
    UnsupportedModel {
        path: PathBuf,
        /// What the config said, e.g. `model_type "roberta", architectures ["RobertaForMaskedLM"]`.
        found: String,
        supported: String,
    },
    #[error("{path}: {message}")]
    InvalidConfig { path: PathBuf, message: String },
    #[error(
        "{dir} holds no weights: expected model.safetensors, model.safetensors.index.json, \
         pytorch_model.bin or pytorch_model.bin.index.json"
    )]
    NoWeights { dir: PathBuf },
    #[error(
        "{path} is a legacy (non-zip) PyTorch pickle, which dnatune does not read. Convert it once \
         with Python (pip install torch safetensors):\n  import torch; from safetensors.torch import save_file\n  \
         save_file({{k: v.contiguous() for k, v in torch.load('{path}', map_location='cpu').items()}}, 'model.safetensors')\n\
         then put model.safetensors beside config.json"
    )]
    LegacyPickle { path: PathBuf },
    #[error("{index} names the shard {shard}, which is missing; download the complete checkpoint")]
    MissingShard { index: PathBuf, shard: PathBuf },
    #[error("cannot read weights from {path}: {message}")]
    WeightFile { path: PathBuf, message: String },
    #[error(
        "the checkpoint {source_desc} lacks the tensor {name}; check that the folder holds \
         the complete checkpoint of a supported model"
    )]
    MissingTensor { name: String, source_desc: String },
    #[error("tensor {name} has shape {found:?} but the config implies {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("invalid model input: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The model families dnatune runs. Each maps to one architecture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// DNABERT (v1): standard post-LayerNorm BERT over overlapping k-mers.
    Dnabert,
    /// DNABERT-2: MosaicBERT (ALiBi, fused Wqkv, GEGLU), remote code `bert_layers.py`.
    Dnabert2,
    /// Nucleotide Transformer v1: ESM with learned absolute positions and token dropout.
    NucleotideTransformerV1,
    /// Nucleotide Transformer v2: ESM with rotary positions and SwiGLU.
    NucleotideTransformerV2,
    /// GENA-LM: BERT with optional pre-LayerNorm (`pre_layer_norm`), remote code `modeling_bert.py`.
    GenaLm,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::Dnabert,
        Family::Dnabert2,
        Family::NucleotideTransformerV1,
        Family::NucleotideTransformerV2,
        Family::GenaLm,
    ];

    /// The name people use for the family.
    pub fn display_name(self) -> &'static str {
        match self {
            Family::Dnabert => "DNABERT",
            Family::Dnabert2 => "DNABERT-2",
            Family::NucleotideTransformerV1 => "Nucleotide Transformer v1",
            Family::NucleotideTransformerV2 => "Nucleotide Transformer v2",
            Family::GenaLm => "GENA-LM",
        }
    }

    /// Families whose checkpoints use `bert.*` names and the BERT pooler + classifier head.
    pub fn is_bert_style(self) -> bool {
        matches!(self, Family::Dnabert | Family::Dnabert2 | Family::GenaLm)
    }

    /// Prefix of the base-model tensors in a `*ForMaskedLM` checkpoint.
    pub fn base_prefix(self) -> &'static str {
        if self.is_bert_style() {
            "bert"
        } else {
            "esm"
        }
    }

    fn supported_list() -> String {
        let names: Vec<&str> = Family::ALL.iter().map(|f| f.display_name()).collect();
        format!(
            "{} (config.json with model_type \"bert\" or \"esm\")",
            names.join(", ")
        )
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// Does any `auto_map` entry point into the given remote-code module (e.g. `bert_layers`)?
fn auto_map_mentions(json: &Value, module: &str) -> bool {
    json.get("auto_map")
        .and_then(Value::as_object)
        .is_some_and(|map| {
            map.values().any(|v| {
                let mentions = |s: &str| {
                    // "bert_layers.BertModel" or "org/repo--bert_layers.BertModel"
                    let class_path = s.rsplit("--").next().unwrap_or(s);
                    class_path.split('.').next() == Some(module)
                };
                match v {
                    Value::String(s) => mentions(s),
                    Value::Array(items) => items.iter().filter_map(Value::as_str).any(mentions),
                    _ => false,
                }
            })
        })
}

/// Detects the family from a parsed `config.json`. `path` only names the file in errors.
pub fn detect_family(json: &Value, path: &Path) -> Result<Family, ModelError> {
    let model_type = json.get("model_type").and_then(Value::as_str);
    let architectures: Vec<&str> = json
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let arch_starts = |prefix: &str| architectures.iter().any(|a| a.starts_with(prefix));

    let is_esm = match model_type {
        Some(t) => t == "esm",
        None => arch_starts("Esm"),
    };
    // DNABERT's config.json has no model_type; transformers then guesses from the folder
    // name, we go by the architecture instead.
    let is_bert = match model_type {
        Some(t) => t == "bert",
        None => arch_starts("Bert"),
    };

    if is_esm {
        let position = json
            .get("position_embedding_type")
            .and_then(Value::as_str)
            .unwrap_or("absolute");
        return match position {
            "rotary" => Ok(Family::NucleotideTransformerV2),
            "absolute" => Ok(Family::NucleotideTransformerV1),
            other => Err(ModelError::UnsupportedModel {
                path: path.to_path_buf(),
                found: format!("ESM with position_embedding_type \"{other}\""),
                supported: Family::supported_list(),
            }),
        };
    }
    if is_bert {
        if auto_map_mentions(json, "bert_layers") || json.get("alibi_starting_size").is_some() {
            return Ok(Family::Dnabert2);
        }
        if auto_map_mentions(json, "modeling_bert") || json.get("pre_layer_norm").is_some() {
            return Ok(Family::GenaLm);
        }
        return Ok(Family::Dnabert);
    }
    let found = format!(
        "model_type {}, architectures [{}]",
        model_type.map_or("(none)".to_string(), |t| format!("\"{t}\"")),
        architectures
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Err(ModelError::UnsupportedModel {
        path: path.to_path_buf(),
        found,
        supported: Family::supported_list(),
    })
}

/// A model folder's `config.json`, parsed once, with its detected family.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub family: Family,
    /// The file it came from (named in errors).
    pub path: PathBuf,
    /// The whole JSON, for the family-specific structs.
    pub json: Value,
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        Self::from_file(&dir.join("config.json"))
    }

    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses config text; `path` only names the source in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, ModelError> {
        let json: Value = serde_json::from_str(text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let family = detect_family(&json, path)?;
        Ok(Self {
            family,
            path: path.to_path_buf(),
            json,
        })
    }

    /// Deserialises the JSON into a family's config struct.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ModelError> {
        T::deserialize(&self.json).map_err(|source| ModelError::Json {
            path: self.path.clone(),
            source,
        })
    }

    /// The BERT config (DNABERT, GENA-LM), validated.
    pub fn bert(&self) -> Result<BertConfig, ModelError> {
        if !matches!(self.family, Family::Dnabert | Family::GenaLm) {
            return Err(ModelError::InvalidConfig {
                path: self.path.clone(),
                message: format!(
                    "this is a {} config, not a standard/GENA-LM BERT",
                    self.family
                ),
            });
        }
        let cfg: BertConfig = self.parse()?;
        cfg.validate(&self.path)?;
        Ok(cfg)
    }
}

/// Activation functions named by `hidden_act` in Hugging Face configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `"gelu"`: the exact erf form.
    GeluErf,
    /// `"gelu_new"`, `"gelu_pytorch_tanh"`: the tanh approximation.
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "gelu" | "gelu_python" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }

    /// Applies the activation with differentiable ops.
    pub fn forward(self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        match self {
            Self::GeluErf => super::ops::gelu_erf(x),
            Self::GeluTanh => x.gelu(),
            Self::Relu => x.relu(),
            Self::Silu => x.silu(),
        }
    }
}

fn default_hidden_act() -> String {
    "gelu".to_string()
}
fn default_max_position_embeddings() -> usize {
    512
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".to_string()
}
fn default_true() -> bool {
    true
}
fn default_initializer_range() -> f64 {
    0.02
}

/// `config.json` of a BERT or GENA-LM BERT checkpoint, with the field names and defaults of
/// transformers' `BertConfig` (and GENA's `pre_layer_norm` / `last_layer_norm`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// GENA-LM: LayerNorm before attention and before the MLP instead of after the residual.
    #[serde(default)]
    pub pre_layer_norm: bool,
    /// GENA-LM: `bert.encoder.last_layer_ln` after the last layer. Absent means "same as
    /// `pre_layer_norm`" (GENA's `BertConfig`); read it through [`BertConfig::uses_last_layer_norm`].
    #[serde(default)]
    pub last_layer_norm: Option<bool>,
    /// The MLM decoder shares the word-embedding matrix (transformers' default).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

impl BertConfig {
    pub fn uses_last_layer_norm(&self) -> bool {
        self.last_layer_norm.unwrap_or(self.pre_layer_norm)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    pub fn activation(&self) -> Option<Activation> {
        Activation::from_hf_name(&self.hidden_act)
    }

    /// Checks what the forward pass relies on; `path` names the config in errors.
    pub fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let invalid = |message: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            message,
        };
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(invalid(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.activation().is_none() {
            return Err(invalid(format!(
                "hidden_act \"{}\" is not supported (supported: gelu, gelu_new, relu, silu)",
                self.hidden_act
            )));
        }
        if self.position_embedding_type != "absolute" {
            return Err(invalid(format!(
                "position_embedding_type \"{}\" is not supported for BERT models (only \"absolute\")",
                self.position_embedding_type
            )));
        }
        if self.type_vocab_size == 0 {
            return Err(invalid("type_vocab_size is 0".to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detect(v: Value) -> Result<Family, ModelError> {
        detect_family(&v, Path::new("config.json"))
    }

    #[test]
    fn detects_each_family_from_hub_style_configs() {
        // The DNABERT config has no model_type at all.
        assert_eq!(
            detect(json!({"architectures": ["BertForMaskedLM"], "hidden_size": 768})).unwrap(),
            Family::Dnabert
        );
        assert_eq!(
            detect(
                json!({"model_type": "bert", "architectures": ["BertForMaskedLM"],
                "auto_map": {"AutoModel": "bert_layers.BertModel"}})
            )
            .unwrap(),
            Family::Dnabert2
        );
        assert_eq!(
            detect(json!({"model_type": "bert", "auto_map": {"AutoModel": "modeling_bert.BertForMaskedLM"},
                "pre_layer_norm": true}))
            .unwrap(),
            Family::GenaLm
        );
        assert_eq!(
            detect(json!({"model_type": "esm", "position_embedding_type": "absolute"})).unwrap(),
            Family::NucleotideTransformerV1
        );
        assert_eq!(
            detect(json!({"model_type": "esm", "position_embedding_type": "rotary"})).unwrap(),
            Family::NucleotideTransformerV2
        );
    }

    #[test]
    fn unsupported_model_type_names_it_and_lists_families() {
        let err = detect(json!({"model_type": "roberta", "architectures": ["RobertaForMaskedLM"]}))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"roberta\""), "{msg}");
        assert!(msg.contains("RobertaForMaskedLM"), "{msg}");
        for family in Family::ALL {
            assert!(msg.contains(family.display_name()), "{msg}");
        }
    }

    #[test]
    fn bert_defaults_follow_transformers() {
        let cfg = ModelConfig::from_json_str(
            r#"{"architectures": ["BertForMaskedLM"], "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 4101}"#,
            Path::new("config.json"),
        )
        .unwrap()
        .bert()
        .unwrap();
        assert_eq!(cfg.layer_norm_eps, 1e-12);
        assert_eq!(cfg.pad_token_id, 0);
        assert!(!cfg.pre_layer_norm);
        assert!(!cfg.uses_last_layer_norm());
        assert_eq!(cfg.activation(), Some(Activation::GeluErf));
    }

    #[test]
    fn gena_last_layer_norm_defaults_to_pre_layer_norm() {
        let base = r#""model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 10, "pre_layer_norm": true"#;
        let parse = |extra: &str| {
            ModelConfig::from_json_str(&format!("{{{base}{extra}}}"), Path::new("c.json"))
                .unwrap()
                .bert()
                .unwrap()
        };
        assert!(parse("").uses_last_layer_norm());
        assert!(!parse(r#", "last_layer_norm": false"#).uses_last_layer_norm());
    }
}
