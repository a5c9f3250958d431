//! A sequence classifier over any family: the encoder (optionally with LoRA) plus the family's
//! classification head as transformers builds it:
//! - BERT-style (DNABERT, DNABERT-2, GENA-LM): `classifier(tanh(bert.pooler.dense(h[:, 0])))`;
//! - Nucleotide Transformer: `classifier.out_proj(tanh(classifier.dense(h[:, 0])))`.
//!
//! Trainable tensors carry PEFT's runtime names, so gradients and saved adapters line up with
//! a `PeftModelForSequenceClassification` of the same model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor, Var};

use super::config::{Family, ModelConfig, ModelError};
use super::encoder::{load_encoder, Encoder, LoadedEncoder};
use super::load::{LoadReport, Weights};
use super::lora::{self, LoraConfig, LoraError, LoraMode, SeededRng};
use super::ops::Linear;

/// Errors of building or running a [`SequenceClassifier`].
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Lora(#[from] LoraError),
    #[error("a classifier needs at least 2 classes (got {0})")]
    TooFewLabels(usize),
    #[error(
        "{source_desc}: the checkpoint's {name} has shape {found:?}, but a head for {num_labels} classes needs \
         {expected:?}; pass the number of classes the checkpoint was fine-tuned with, or start \
         from its base model"
    )]
    HeadShape {
        source_desc: String,
        name: String,
        num_labels: usize,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{name} has shape {found:?} but this model needs {expected:?}")]
    ParameterShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("this model has no trainable tensor named {0}")]
    UnknownParameter(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// How to build a [`SequenceClassifier`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSpec {
    pub num_labels: usize,
    /// `None`: no LoRA (the encoder stays frozen, only the head trains).
    pub lora: Option<LoraConfig>,
    /// Train the BERT pooler in full (PEFT: `pooler` in `modules_to_save`). It always trains
    /// when the checkpoint lacks it and it had to be initialised.
    pub train_pooler: bool,
    /// Seeds the initialisation of head tensors the checkpoint lacks.
    pub seed: u64,
}

impl ClassifierSpec {
    /// `num_labels` classes with the family's default LoRA.
    pub fn with_default_lora(family: Family, num_labels: usize) -> Self {
        Self {
            num_labels,
            lora: Some(LoraConfig::for_family(family)),
            train_pooler: false,
            seed: 42,
        }
    }
}

/// One projection of the head; `trainable` holds its weight and bias as `Var`s when it trains.
#[derive(Debug, Clone)]
struct HeadLinear {
    linear: Linear,
    /// PEFT's `modules_to_save` root this tensor belongs to (`classifier`, `bert.pooler`) and
    /// the rest of its path inside that module (`dense`, or empty).
    save_root: &'static str,
    sub_path: &'static str,
    trainable: Option<(Var, Var)>,
}

impl HeadLinear {
    fn new(
        linear: Linear,
        save_root: &'static str,
        sub_path: &'static str,
        trainable: bool,
    ) -> Result<Self, ClassifierError> {
        let mut linear = linear;
        let trainable = if trainable {
            let weight = Var::from_tensor(&linear.weight)?;
            let bias = match &linear.bias {
                Some(bias) => Var::from_tensor(bias)?,
                None => Var::zeros(
                    linear.weight.dim(0)?,
                    linear.weight.dtype(),
                    linear.weight.device(),
                )?,
            };
            // The Linear reads the Vars' storage, so optimizer updates show up in forward.
            linear.weight = weight.as_tensor().clone();
            linear.bias = Some(bias.as_tensor().clone());
            Some((weight, bias))
        } else {
            None
        };
        Ok(Self {
            linear,
            save_root,
            sub_path,
            trainable,
        })
    }

    /// PEFT runtime names of weight and bias, e.g.
    /// `base_model.model.classifier.modules_to_save.default.dense.weight`.
    fn runtime_names(&self) -> (String, String) {
        let stem = if self.sub_path.is_empty() {
            format!(
                "base_model.model.{}.modules_to_save.default",
                self.save_root
            )
        } else {
            format!(
                "base_model.model.{}.modules_to_save.default.{}",
                self.save_root, self.sub_path
            )
        };
        (format!("{stem}.weight"), format!("{stem}.bias"))
    }
}

#[derive(Debug, Clone)]
enum Head {
    /// `classifier(tanh(pooler(h[:, 0])))`.
    Bert {
        pooler: HeadLinear,
        classifier: HeadLinear,
    },
    /// `out_proj(tanh(dense(h[:, 0])))`.
    Esm {
        dense: HeadLinear,
        out_proj: HeadLinear,
    },
}

impl Head {
    fn linears(&self) -> [&HeadLinear; 2] {
        match self {
            Head::Bert { pooler, classifier } => [pooler, classifier],
            Head::Esm { dense, out_proj } => [dense, out_proj],
        }
    }
}

/// Encoder + classification head; see the module docs. Clones share the trainable tensors
/// and the train/eval switch (cheap handles, not copies).
#[derive(Debug, Clone)]
pub struct SequenceClassifier {
    pub dir: PathBuf,
    pub family: Family,
    pub encoder: Encoder,
    pub hidden_size: usize,
    pub num_labels: usize,
    head: Head,
    /// transformers' head dropout (`classifier_dropout`, else `hidden_dropout_prob`), active
    /// only in training mode.
    pub head_dropout: f64,
    /// The LoRA settings and the module paths that carry an adapter.
    lora: Option<(LoraConfig, Vec<String>)>,
    /// LoRA A and B of every adapted module, by PEFT runtime name, in model order.
    lora_vars: Vec<(String, Var)>,
    mode: Arc<LoraMode>,
    weights: Weights,
    /// Head tensors (Hugging Face names) the checkpoint lacked and that were initialised.
    initialized_head: Vec<String>,
}

impl SequenceClassifier {
    /// Reads the model folder `dir` and builds the classifier in `dtype` on `device`.
    pub fn load(
        dir: &Path,
        spec: &ClassifierSpec,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, ClassifierError> {
        if let Some(cfg) = &spec.lora {
            cfg.validate()?;
        }
        let loaded = load_encoder(dir, dtype, device)?;
        Self::from_encoder(loaded, spec)
    }

    /// Builds the head (from the checkpoint when it has one, else initialised like
    /// transformers: N(0, initializer_range²) weights, zero biases) and attaches LoRA.
    pub fn from_encoder(
        loaded: LoadedEncoder,
        spec: &ClassifierSpec,
    ) -> Result<Self, ClassifierError> {
        if spec.num_labels < 2 {
            return Err(ClassifierError::TooFewLabels(spec.num_labels));
        }
        let LoadedEncoder {
            dir,
            family,
            mut encoder,
            weights,
            hidden_size,
        } = loaded;
        let config_json = ModelConfig::from_dir(&dir)?.json;
        let number = |key: &str| config_json.get(key).and_then(serde_json::Value::as_f64);
        let initializer_range = number("initializer_range").unwrap_or(0.02);
        // ESM's head reads hidden_dropout_prob only; the BERT heads prefer classifier_dropout.
        let head_dropout = if family.is_bert_style() {
            number("classifier_dropout").or_else(|| number("hidden_dropout_prob"))
        } else {
            number("hidden_dropout_prob")
        }
        .unwrap_or(0.1);
        let (dtype, device) = encoder_dtype_device(&mut encoder)?;
        let mut builder = HeadBuilder {
            weights: &weights,
            rng: SeededRng::new(spec.seed ^ 0x4EAD),
            std: initializer_range,
            dtype,
            device: &device,
            initialized: Vec::new(),
        };
        let (hidden, labels) = (hidden_size, spec.num_labels);
        let head = if family.is_bert_style() {
            let (pooler, pooler_initialised) =
                builder.linear("bert.pooler.dense", hidden, hidden, None)?;
            let (classifier, _) = builder.linear("classifier", hidden, labels, Some(labels))?;
            Head::Bert {
                pooler: HeadLinear::new(
                    pooler,
                    "bert.pooler",
                    "dense",
                    spec.train_pooler || pooler_initialised,
                )?,
                classifier: HeadLinear::new(classifier, "classifier", "", true)?,
            }
        } else {
            let (dense, _) = builder.linear("classifier.dense", hidden, hidden, None)?;
            let (out_proj, _) =
                builder.linear("classifier.out_proj", hidden, labels, Some(labels))?;
            Head::Esm {
                dense: HeadLinear::new(dense, "classifier", "dense", true)?,
                out_proj: HeadLinear::new(out_proj, "classifier", "out_proj", true)?,
            }
        };
        let initialized_head = builder.initialized;
        let seed = spec.lora.as_ref().map_or(spec.seed, |cfg| cfg.seed);
        let mode = LoraMode::new(seed);
        let lora = match &spec.lora {
            Some(cfg) => {
                let modules = lora::attach(encoder.linears_mut(), cfg, &mode)?;
                Some((cfg.clone(), modules))
            }
            None => None,
        };
        let mut lora_vars = Vec::new();
        for linear in encoder.linears_mut() {
            if let Some(adapter) = &linear.lora {
                let (a_name, b_name) = lora::peft_runtime_names(&linear.name);
                lora_vars.push((a_name, adapter.a.clone()));
                lora_vars.push((b_name, adapter.b.clone()));
            }
        }
        Ok(Self {
            dir,
            family,
            encoder,
            hidden_size,
            num_labels: spec.num_labels,
            head,
            head_dropout,
            lora,
            lora_vars,
            mode,
            weights,
            initialized_head,
        })
    }

    /// Logits `[batch, num_labels]` for right-padded `input_ids` / `attention_mask`
    /// `[batch, tokens]`. `train` switches the LoRA and head dropouts on (the encoders have
    /// no internal dropout).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor, ClassifierError> {
        self.mode.set_training(train);
        let out = self.encoder.forward(input_ids, attention_mask)?;
        self.head_logits(&out.last_hidden_state, train)
    }

    /// The encoder, for running it in stages (gradient checkpointing).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Switches the LoRA and head dropouts on (training) or off.
    pub fn set_training(&self, train: bool) {
        self.mode.set_training(train);
    }

    /// The dropout generator shared by every adapter and the head.
    pub fn lora_mode(&self) -> &LoraMode {
        &self.mode
    }

    /// Logits `[batch, num_labels]` from the encoder's `last_hidden_state`: the head on the
    /// first token, with dropout when `train`.
    pub fn head_logits(
        &self,
        last_hidden_state: &Tensor,
        train: bool,
    ) -> Result<Tensor, ClassifierError> {
        let first_token = last_hidden_state.i((.., 0))?;
        let dropout = |x: Tensor| -> candle_core::Result<Tensor> {
            if train && self.head_dropout > 0.0 {
                self.mode.dropout(&x, self.head_dropout)
            } else {
                Ok(x)
            }
        };
        // Dropout placement as in BertForSequenceClassification / EsmClassificationHead.
        let logits = match &self.head {
            Head::Bert { pooler, classifier } => {
                let pooled = pooler.linear.forward(&first_token)?.tanh()?;
                classifier.linear.forward(&dropout(pooled)?)?
            }
            Head::Esm { dense, out_proj } => {
                let x = dense.linear.forward(&dropout(first_token)?)?.tanh()?;
                out_proj.linear.forward(&dropout(x)?)?
            }
        };
        Ok(logits)
    }

    /// Stores the encoder's frozen projection weights in `dtype` (bf16/f16 halve their memory
    /// and use the GPU's fast matrix units). Activations, biases, LayerNorms, embeddings, LoRA
    /// and the head stay as they are: each projection casts its input for the product and
    /// casts the result back (see `ops::frozen_linear`).
    pub fn store_frozen_weights_as(&mut self, dtype: DType) -> Result<(), ClassifierError> {
        for linear in self.encoder.linears_mut() {
            if linear.weight.dtype() != dtype {
                linear.weight = linear.weight.to_dtype(dtype)?;
            }
        }
        Ok(())
    }

    /// Every trainable tensor with its PEFT runtime name: LoRA A and B of each adapted module
    /// (model order), then the head. The base model's weights are never among them.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let mut vars = self.lora_vars.clone();
        for head in self.head.linears() {
            if let Some((weight, bias)) = &head.trainable {
                let (w_name, b_name) = head.runtime_names();
                vars.push((w_name, weight.clone()));
                vars.push((b_name, bias.clone()));
            }
        }
        vars
    }

    /// Sets the trainable tensor `runtime_name` (see [`Self::trainable_vars`]) to `value`.
    pub fn set_trainable(&self, runtime_name: &str, value: &Tensor) -> Result<(), ClassifierError> {
        let var = self
            .trainable_vars()
            .into_iter()
            .find(|(name, _)| name == runtime_name)
            .map(|(_, var)| var)
            .ok_or_else(|| ClassifierError::UnknownParameter(runtime_name.to_string()))?;
        if var.dims() != value.dims() {
            return Err(ClassifierError::ParameterShape {
                name: runtime_name.to_string(),
                expected: var.dims().to_vec(),
                found: value.dims().to_vec(),
            });
        }
        var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)?;
        Ok(())
    }

    /// The LoRA settings and the adapted module paths, when LoRA is attached.
    pub fn lora(&self) -> Option<(&LoraConfig, &[String])> {
        self.lora
            .as_ref()
            .map(|(cfg, modules)| (cfg, modules.as_slice()))
    }

    /// PEFT `modules_to_save` for this head: `classifier`, plus `pooler` when it trains.
    pub fn modules_to_save(&self) -> Vec<String> {
        let mut roots: Vec<String> = Vec::new();
        for head in self.head.linears() {
            if head.trainable.is_some() {
                let short = head.save_root.rsplit('.').next().unwrap_or(head.save_root);
                if !roots.iter().any(|r| r == short) {
                    roots.push(short.to_string());
                }
            }
        }
        roots
    }

    /// The base checkpoint's tensors as stored (for exporting a merged model).
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Every head tensor, trained or frozen, with its current value under its Hugging Face
    /// name (`classifier.weight`, `bert.pooler.dense.bias`, `classifier.out_proj.weight`, …).
    pub fn head_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = Vec::new();
        for head in self.head.linears() {
            let linear = &head.linear;
            tensors.push((format!("{}.weight", linear.name), linear.weight.clone()));
            if let Some(bias) = &linear.bias {
                tensors.push((format!("{}.bias", linear.name), bias.clone()));
            }
        }
        tensors
    }

    /// The checkpoint's load report, with the head tensors that had to be initialised.
    pub fn report(&self) -> LoadReport {
        let mut report = self.weights.report();
        for name in &self.initialized_head {
            if !report.initialized.contains(name) {
                report.initialized.push(name.clone());
            }
        }
        report.initialized.sort();
        report
    }
}

/// Maps a PEFT runtime name to the key PEFT writes in `adapter_model.safetensors`: drops
/// `.default` and `.modules_to_save`.
pub fn runtime_name_to_adapter_key(runtime_name: &str) -> String {
    runtime_name
        .replace(".modules_to_save.default.", ".")
        .replace(".default.", ".")
}

fn encoder_dtype_device(encoder: &mut Encoder) -> Result<(DType, Device), ClassifierError> {
    let linears = encoder.linears_mut();
    let first = linears.first().ok_or_else(|| {
        ModelError::InvalidInput("the encoder has no layers (num_hidden_layers is 0)".to_string())
    })?;
    Ok((first.weight.dtype(), first.weight.device().clone()))
}

/// Reads head projections from the checkpoint or initialises them.
struct HeadBuilder<'a> {
    weights: &'a Weights,
    rng: SeededRng,
    std: f64,
    dtype: DType,
    device: &'a Device,
    initialized: Vec<String>,
}

impl HeadBuilder<'_> {
    /// `name.weight` `[out, in]` and `name.bias` `[out]`; returns whether they were
    /// initialised. `num_labels` marks the output layer, whose stored shape must agree.
    fn linear(
        &mut self,
        name: &str,
        in_dim: usize,
        out_dim: usize,
        num_labels: Option<usize>,
    ) -> Result<(Linear, bool), ClassifierError> {
        let weight_name = format!("{name}.weight");
        let bias_name = format!("{name}.bias");
        if self.weights.contains(&weight_name) && self.weights.contains(&bias_name) {
            let weight = self.weights.get(&weight_name, self.dtype, self.device)?;
            let bias = self.weights.get(&bias_name, self.dtype, self.device)?;
            if weight.dims() != [out_dim, in_dim] || bias.dims() != [out_dim] {
                return Err(match num_labels {
                    Some(num_labels) => ClassifierError::HeadShape {
                        source_desc: self.weights.source().to_string(),
                        name: weight_name,
                        num_labels,
                        expected: vec![out_dim, in_dim],
                        found: weight.dims().to_vec(),
                    },
                    None => ModelError::ShapeMismatch {
                        name: weight_name,
                        expected: vec![out_dim, in_dim],
                        found: weight.dims().to_vec(),
                    }
                    .into(),
                });
            }
            return Ok((Linear::new(name, weight, Some(bias)), false));
        }
        let weight = self
            .rng
            .normal(&[out_dim, in_dim], self.std, self.dtype, self.device)?;
        let bias = Tensor::zeros(out_dim, self.dtype, self.device)?;
        self.initialized.push(weight_name);
        self.initialized.push(bias_name);
        Ok((Linear::new(name, weight, Some(bias)), true))
    }
}
