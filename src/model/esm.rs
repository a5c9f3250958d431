//! Nucleotide Transformer v1 and v2: the ESM encoder as transformers' `EsmModel` (v1) and
//! InstaDeep's remote `modeling_esm.py` (v2) compute it, plus the MLM head (`lm_head`) and the
//! ESM classification head (`classifier.dense → tanh → classifier.out_proj` on the first token).
//!
//! v1: learned positions with ESM's offsets, token dropout active in eval, GELU FFN.
//! v2: rotary positions (rotate-half layout), SwiGLU FFN without biases.
//! Both: pre-LN blocks, query scaled by `head_dim^-0.5`, final `emb_layer_norm_after`.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, VarBuilder};
use serde::Deserialize;

use super::bert::{check_token_ids, EncoderOutput, LayerNorm, Staged};
use super::config::{Family, ModelConfig, ModelError};
use super::load::Weights;
use super::ops::{self, Linear};

/// How positions enter the model (`position_embedding_type` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbeddingType {
    /// Learned table indexed by ESM position ids (NT v1).
    #[default]
    Absolute,
    /// Rotary embeddings on queries and keys (NT v2).
    Rotary,
    /// BERT-style relative positions; no Nucleotide Transformer uses them (rejected at load).
    RelativeKey,
    RelativeKeyQuery,
}

/// The feed-forward block of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedForwardKind {
    /// `output.dense(gelu(intermediate.dense(x)))` — transformers' native ESM (NT v1).
    Gelu,
    /// `output.dense(silu(a) * b)` with `[a | b] = intermediate.dense(x)` of width
    /// `2 * intermediate_size` — the NT v2 remote code.
    SwiGlu,
}

/// `config.json` of an ESM / Nucleotide Transformer checkpoint. Field names and defaults are
/// those of transformers' `EsmConfig` (and `add_bias_fnn` of the NT v2 `esm_config.py`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    #[serde(default = "default_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "default_num_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_num_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: PositionEmbeddingType,
    #[serde(default)]
    pub token_dropout: bool,
    /// `null` in most Hub configs, which means false.
    #[serde(default)]
    pub emb_layer_norm_before: Option<bool>,
    /// Biases of the FFN projections. Only the NT v2 config has the field (false on the Hub);
    /// absent means biases, as in transformers' ESM.
    #[serde(default)]
    pub add_bias_fnn: Option<bool>,
    #[serde(default)]
    pub mask_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// transformers' `PretrainedConfig` default is true; NT configs set false.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Standard deviation of the classification head's initial weights.
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Present when the checkpoint needs remote code (NT v2: `modeling_esm.*`).
    #[serde(default)]
    pub auto_map: Option<BTreeMap<String, serde_json::Value>>,
}

fn default_hidden_size() -> usize {
    768
}
fn default_num_layers() -> usize {
    12
}
fn default_num_heads() -> usize {
    12
}
fn default_intermediate_size() -> usize {
    3072
}
fn default_max_position_embeddings() -> usize {
    1026
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_true() -> bool {
    true
}
fn default_initializer_range() -> f64 {
    0.02
}

impl Config {
    /// True when `auto_map` points at the NT v2 remote `modeling_esm.py`.
    pub fn uses_nt_v2_code(&self) -> bool {
        let mentions = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.contains("modeling_esm"),
            serde_json::Value::Array(items) => items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| s.contains("modeling_esm"))),
            _ => false,
        };
        self.auto_map
            .as_ref()
            .is_some_and(|map| map.values().any(mentions))
    }

    /// SwiGLU for the NT v2 remote code (its `auto_map`, or the `add_bias_fnn` field only its
    /// config class has), GELU for transformers' native ESM (NT v1).
    pub fn feed_forward(&self) -> FeedForwardKind {
        if self.uses_nt_v2_code() || self.add_bias_fnn.is_some() {
            FeedForwardKind::SwiGlu
        } else {
            FeedForwardKind::Gelu
        }
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Whether the feed-forward projections have biases.
    pub fn ffn_bias(&self) -> bool {
        self.add_bias_fnn.unwrap_or(true)
    }

    /// Parses and validates the config of a Nucleotide Transformer folder.
    pub fn from_model_config(config: &ModelConfig) -> Result<Self, ModelError> {
        if !matches!(
            config.family,
            Family::NucleotideTransformerV1 | Family::NucleotideTransformerV2
        ) {
            return Err(ModelError::InvalidConfig {
                path: config.path.clone(),
                message: format!("this is a {} config, not an ESM one", config.family),
            });
        }
        let cfg: Self = config.parse()?;
        cfg.validate(&config.path)?;
        Ok(cfg)
    }

    /// Rejects configurations this implementation cannot run; `path` names the config.
    pub fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let invalid = |message: String| {
            Err(ModelError::InvalidConfig {
                path: path.to_path_buf(),
                message,
            })
        };
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return invalid(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        match self.position_embedding_type {
            PositionEmbeddingType::Absolute => {
                if self.pad_token_id.is_none() {
                    return invalid(
                        "absolute positions need pad_token_id, which is missing".to_string(),
                    );
                }
            }
            PositionEmbeddingType::Rotary => {
                if !self.head_dim().is_multiple_of(2) {
                    return invalid(format!(
                        "rotary positions need an even head dimension, got {}",
                        self.head_dim()
                    ));
                }
            }
            other => {
                return invalid(format!(
                    "position_embedding_type {other:?} is not supported \
                     (Nucleotide Transformer uses \"absolute\" or \"rotary\")"
                ))
            }
        }
        if self.token_dropout && self.mask_token_id.is_none() {
            return invalid("token_dropout is true but mask_token_id is missing".to_string());
        }
        Ok(())
    }
}

/// `[batch, seq, heads * head_dim]` → `[batch, heads, seq, head_dim]`.
fn split_heads(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (batch, seq, width) = x.dims3()?;
    x.reshape((batch, seq, heads, width / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// `[batch, heads, seq, head_dim]` → `[batch, seq, heads * head_dim]`.
fn merge_heads(x: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, heads, seq, head_dim) = x.dims4()?;
    x.transpose(1, 2)?
        .contiguous()?
        .reshape((batch, seq, heads * head_dim))
}

/// `input_ids` and `attention_mask` must both be `[batch, seq_len]`.
pub(crate) fn check_batch_shapes(
    input_ids: &Tensor,
    attention_mask: &Tensor,
) -> Result<(), ModelError> {
    if input_ids.rank() != 2 || input_ids.dims() != attention_mask.dims() {
        return Err(ModelError::InvalidInput(format!(
            "input_ids {:?} and attention_mask {:?} must both be [batch, tokens]",
            input_ids.dims(),
            attention_mask.dims()
        )));
    }
    Ok(())
}

/// One pre-LN block: `x += attn(LN(x))`, then `x += ffn(LN(x))`.
#[derive(Debug, Clone)]
pub struct EsmLayer {
    pub attention_layer_norm: LayerNorm,
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// Rotary inverse frequencies `[head_dim / 2]`, f32 (a buffer of each layer in NT v2).
    pub rotary_inv_freq: Option<Tensor>,
    pub attention_output: Linear,
    pub ffn_layer_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    feed_forward: FeedForwardKind,
    num_heads: usize,
    intermediate_size: usize,
}

impl EsmLayer {
    fn load(vb: &VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
        let hidden = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let feed_forward = cfg.feed_forward();
        let (intermediate_width, ffn_bias) = match feed_forward {
            FeedForwardKind::Gelu => (cfg.intermediate_size, true),
            FeedForwardKind::SwiGlu => (2 * cfg.intermediate_size, cfg.ffn_bias()),
        };
        let rotary_inv_freq = match cfg.position_embedding_type {
            PositionEmbeddingType::Rotary => {
                let name = "attention.self.rotary_embeddings.inv_freq";
                let half = cfg.head_dim() / 2;
                // A buffer, not a weight: read it in f32 whatever the model dtype; a checkpoint
                // without it gets the value the reference code computes.
                if vb.contains_tensor(name) {
                    Some(vb.get_with_hints_dtype(half, name, Init::Const(0.0), DType::F32)?)
                } else {
                    Some(default_inv_freq(cfg.head_dim(), vb.device())?)
                }
            }
            _ => None,
        };
        Ok(Self {
            attention_layer_norm: LayerNorm::load(vb, "attention.LayerNorm", hidden, eps)?,
            query: Linear::load(vb, "attention.self.query", hidden, hidden, true)?,
            key: Linear::load(vb, "attention.self.key", hidden, hidden, true)?,
            value: Linear::load(vb, "attention.self.value", hidden, hidden, true)?,
            rotary_inv_freq,
            attention_output: Linear::load(vb, "attention.output.dense", hidden, hidden, true)?,
            ffn_layer_norm: LayerNorm::load(vb, "LayerNorm", hidden, eps)?,
            intermediate: Linear::load(
                vb,
                "intermediate.dense",
                hidden,
                intermediate_width,
                ffn_bias,
            )?,
            output: Linear::load(vb, "output.dense", cfg.intermediate_size, hidden, ffn_bias)?,
            feed_forward,
            num_heads: cfg.num_attention_heads,
            intermediate_size: cfg.intermediate_size,
        })
    }

    fn forward(&self, x: &Tensor, additive_mask: &Tensor) -> candle_core::Result<Tensor> {
        let normed = self.attention_layer_norm.forward(x)?;
        let query = split_heads(&self.query.forward(&normed)?, self.num_heads)?;
        let key = split_heads(&self.key.forward(&normed)?, self.num_heads)?;
        let value = split_heads(&self.value.forward(&normed)?, self.num_heads)?;
        let head_dim = query.dim(D::Minus1)?;
        // ESM scales the query, not the scores; with rotary the order matters.
        let mut query = (query * (head_dim as f64).powf(-0.5))?;
        let mut key = key;
        if let Some(inv_freq) = &self.rotary_inv_freq {
            let (cos, sin) = ops::rotary_cos_sin(inv_freq, x.dim(1)?, x.dtype())?;
            query = ops::apply_rotary(&query, &cos, &sin)?;
            key = ops::apply_rotary(&key, &cos, &sin)?;
        }
        let scores = query
            .matmul(&key.transpose(2, 3)?.contiguous()?)?
            .broadcast_add(additive_mask)?;
        let probs = ops::attention_softmax(&scores)?;
        let context = merge_heads(&probs.matmul(&value)?)?;
        let x = (x + self.attention_output.forward(&context)?)?;

        let normed = self.ffn_layer_norm.forward(&x)?;
        let inner = self.intermediate.forward(&normed)?;
        let activated = match self.feed_forward {
            FeedForwardKind::Gelu => inner.gelu_erf()?,
            FeedForwardKind::SwiGlu => {
                let width = self.intermediate_size;
                let gate = inner.narrow(D::Minus1, 0, width)?;
                let up = inner.narrow(D::Minus1, width, width)?;
                (gate.silu()? * up)?
            }
        };
        x + self.output.forward(&activated)?
    }

    fn linears_mut(&mut self) -> [&mut Linear; 6] {
        [
            &mut self.query,
            &mut self.key,
            &mut self.value,
            &mut self.attention_output,
            &mut self.intermediate,
            &mut self.output,
        ]
    }
}

/// `1 / 10000^(2i / head_dim)`, what the reference computes when it builds the buffer.
fn default_inv_freq(head_dim: usize, device: &Device) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / head_dim as f32))
        .collect();
    Tensor::from_vec(values, head_dim / 2, device)
}

/// The ESM encoder (`esm.*` in an `EsmForMaskedLM` / `EsmForSequenceClassification` checkpoint).
#[derive(Debug, Clone)]
pub struct EsmModel {
    pub config: Config,
    /// `[vocab, hidden]`; also the MLM decoder when `tie_word_embeddings`.
    pub word_embeddings: Tensor,
    /// Only for absolute positions; NT v2's table exists in the checkpoint but is never used.
    pub position_embeddings: Option<Tensor>,
    pub emb_layer_norm_before: Option<LayerNorm>,
    pub layers: Vec<EsmLayer>,
    pub emb_layer_norm_after: LayerNorm,
}

impl EsmModel {
    /// Builds the encoder from `vb` rooted at the checkpoint root (tensors named `esm.…`).
    pub fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self, ModelError> {
        // Also when the config did not come through `from_model_config`.
        cfg.validate(Path::new("config.json"))?;
        let esm = vb.pp("esm");
        let hidden = cfg.hidden_size;
        let embeddings = esm.pp("embeddings");
        let word_embeddings = embeddings.get((cfg.vocab_size, hidden), "word_embeddings.weight")?;
        let position_embeddings = match cfg.position_embedding_type {
            PositionEmbeddingType::Absolute => Some(embeddings.get(
                (cfg.max_position_embeddings, hidden),
                "position_embeddings.weight",
            )?),
            _ => None,
        };
        let emb_layer_norm_before = if cfg.emb_layer_norm_before == Some(true) {
            Some(LayerNorm::load(
                &embeddings,
                "layer_norm",
                hidden,
                cfg.layer_norm_eps,
            )?)
        } else {
            None
        };
        let encoder = esm.pp("encoder");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EsmLayer::load(&encoder.pp(format!("layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let emb_layer_norm_after =
            LayerNorm::load(&encoder, "emb_layer_norm_after", hidden, cfg.layer_norm_eps)?;
        Ok(Self {
            config: cfg.clone(),
            word_embeddings,
            position_embeddings,
            emb_layer_norm_before,
            layers,
            emb_layer_norm_after,
        })
    }

    pub fn dtype(&self) -> DType {
        self.word_embeddings.dtype()
    }

    pub fn device(&self) -> &Device {
        self.word_embeddings.device()
    }

    /// Every projection, in layer order, for attaching adapters by `Linear::name`.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        self.layers
            .iter_mut()
            .flat_map(|layer| layer.linears_mut())
            .collect()
    }

    /// Runs the encoder. `input_ids` and `attention_mask` are `[batch, tokens]` integer tensors
    /// (1 = real token, 0 = padding), right-padded with `pad_token_id`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<EncoderOutput, ModelError> {
        self.begin(input_ids, attention_mask)?.run(
            self.layers.len(),
            |index, x, staged| self.layer(index, x, staged),
            |x| self.finish(x),
        )
    }

    /// Layer `index` on the hidden states `x`.
    pub fn layer(&self, index: usize, x: &Tensor, staged: &Staged) -> candle_core::Result<Tensor> {
        self.layers[index].forward(x, &staged.attention_bias)
    }

    /// The last layer's output into `last_hidden_state` (the final LayerNorm).
    pub fn finish(&self, x: Tensor) -> candle_core::Result<Tensor> {
        self.emb_layer_norm_after.forward(&x)
    }

    /// Checks the batch and embeds it: the first layer's input and what every layer needs.
    pub fn begin(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Staged, ModelError> {
        check_batch_shapes(input_ids, attention_mask)?;
        check_token_ids(input_ids, self.config.vocab_size)?;
        let (batch, seq_len) = input_ids.dims2()?;
        let input_ids = input_ids.to_device(self.device())?;
        let attention_mask = attention_mask.to_device(self.device())?;
        let hidden = self.config.hidden_size;
        let dtype = self.dtype();
        let mask_f32 = attention_mask.to_dtype(DType::F32)?;

        let mut x = self
            .word_embeddings
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((batch, seq_len, hidden))?;
        if self.config.token_dropout {
            x = self.token_dropout(&x, &input_ids, &mask_f32)?;
        }
        if let Some(table) = &self.position_embeddings {
            let positions = self.position_ids(&input_ids)?;
            let position_embeddings = table
                .index_select(&positions.flatten_all()?, 0)?
                .reshape((batch, seq_len, hidden))?;
            x = (x + position_embeddings)?;
        }
        if let Some(norm) = &self.emb_layer_norm_before {
            x = norm.forward(&x)?;
        }
        x = x.broadcast_mul(&mask_f32.to_dtype(dtype)?.unsqueeze(2)?)?;
        Ok(Staged {
            hidden: x,
            attention_bias: ops::additive_attention_mask(&attention_mask, dtype)?,
            keep: None,
        })
    }

    /// Token dropout as ESM applies it in eval too: `<mask>` embeddings are zeroed and each row
    /// is scaled by `(1 - 0.15 * 0.8) / (1 - n_mask / n_valid)`.
    fn token_dropout(
        &self,
        x: &Tensor,
        input_ids: &Tensor,
        mask_f32: &Tensor,
    ) -> Result<Tensor, ModelError> {
        let Some(mask_token_id) = self.config.mask_token_id else {
            return Err(ModelError::InvalidInput(
                "token_dropout is on but the config has no mask_token_id".to_string(),
            ));
        };
        let dtype = x.dtype();
        let is_mask = input_ids
            .to_dtype(DType::I64)?
            .eq(mask_token_id as i64)?
            .to_dtype(DType::F32)?;
        let keep = (is_mask.ones_like()? - &is_mask)?;
        let x = x.broadcast_mul(&keep.to_dtype(dtype)?.unsqueeze(2)?)?;
        let n_mask = is_mask.sum_keepdim(1)?;
        // An all-padding row would divide by zero; its output is masked anyway.
        let n_valid = mask_f32.sum_keepdim(1)?.clamp(1f64, f64::INFINITY)?;
        let observed_ratio = (n_mask / n_valid)?;
        let kept_fraction = (observed_ratio.ones_like()? - observed_ratio)?;
        let scale = kept_fraction.recip()?.to_dtype(dtype)?.unsqueeze(2)?;
        Ok((x * (1.0 - 0.15 * 0.8))?.broadcast_mul(&scale)?)
    }

    /// ESM position ids: `cumsum(ids != pad) * (ids != pad) + pad`, so the first token is at
    /// `pad + 1` and padding sits on the `pad` row.
    fn position_ids(&self, input_ids: &Tensor) -> Result<Tensor, ModelError> {
        let pad = self.config.pad_token_id.unwrap_or(0);
        let seq_len = input_ids.dim(1)?;
        if seq_len + pad as usize >= self.config.max_position_embeddings {
            return Err(ModelError::InvalidInput(format!(
                "{seq_len} tokens exceed the model's maximum of {} (max_position_embeddings {} \
                 minus the padding offset); truncate the input",
                self.config
                    .max_position_embeddings
                    .saturating_sub(pad as usize + 1),
                self.config.max_position_embeddings
            )));
        }
        // Counting is done in f32 (exact at these sizes) because candle's cumsum is a matmul.
        let not_pad = input_ids
            .to_dtype(DType::I64)?
            .ne(pad as i64)?
            .to_dtype(DType::F32)?;
        let positions = ((not_pad.cumsum(1)? * &not_pad)? + pad as f64)?;
        Ok(positions.to_dtype(DType::U32)?)
    }
}

/// A Nucleotide Transformer folder read into a model: the config, the weights (for the heads
/// and the load report) and the encoder.
#[derive(Debug, Clone)]
pub struct LoadedEsm {
    pub config: Config,
    pub weights: Weights,
    pub model: EsmModel,
}

impl LoadedEsm {
    /// Reads `dir/config.json` and the weights of an NT v1 or v2 folder.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self, ModelError> {
        let config = Config::from_model_config(&ModelConfig::from_dir(dir)?)?;
        let weights = Weights::from_dir(dir)?;
        Self::from_weights(config, weights, dtype, device)
    }

    pub fn from_weights(
        config: Config,
        weights: Weights,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, ModelError> {
        weights.add_base_prefix_if_missing("esm", "embeddings.word_embeddings.weight");
        let vb = weights.var_builder(dtype, device);
        let model = EsmModel::load(&vb, &config)?;
        Ok(Self {
            config,
            weights,
            model,
        })
    }

    pub fn var_builder(&self) -> VarBuilder<'static> {
        self.weights
            .var_builder(self.model.dtype(), self.model.device())
    }

    /// The MLM head `lm_head`.
    pub fn mlm_head(&self) -> Result<EsmLmHead, ModelError> {
        EsmLmHead::load(
            &self.weights,
            &self.var_builder(),
            &self.config,
            &self.model.word_embeddings,
        )
    }

    /// The classification head `classifier.{dense,out_proj}`, initialised when the checkpoint
    /// lacks it (listed in the load report).
    pub fn classification_head(
        &self,
        num_labels: usize,
    ) -> Result<EsmClassificationHead, ModelError> {
        EsmClassificationHead::load(&self.weights, &self.var_builder(), &self.config, num_labels)
    }
}

/// The masked-language-model head `lm_head`: `decoder(LN(gelu(dense(h)))) + bias`.
#[derive(Debug, Clone)]
pub struct EsmLmHead {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    /// `lm_head.decoder` with the bias `lm_head.bias`.
    pub decoder: Linear,
}

impl EsmLmHead {
    /// Loads `lm_head.*`; the decoder is `lm_head.decoder.weight`, or `word_embeddings` when
    /// the config ties them (NT configs do not).
    pub fn load(
        weights: &Weights,
        vb: &VarBuilder,
        cfg: &Config,
        word_embeddings: &Tensor,
    ) -> Result<Self, ModelError> {
        let hidden = cfg.hidden_size;
        let head = vb.pp("lm_head");
        let decoder_weight = if cfg.tie_word_embeddings {
            weights.mark_used("lm_head.decoder.weight");
            word_embeddings.clone()
        } else {
            head.get((cfg.vocab_size, hidden), "decoder.weight")?
        };
        Ok(Self {
            dense: Linear::load(vb, "lm_head.dense", hidden, hidden, true)?,
            layer_norm: LayerNorm::load(&head, "layer_norm", hidden, cfg.layer_norm_eps)?,
            decoder: Linear {
                name: "lm_head.decoder".to_string(),
                weight: decoder_weight,
                bias: Some(head.get(cfg.vocab_size, "bias")?),
                lora: None,
            },
        })
    }

    /// Logits `[..., vocab]` for hidden states `[..., hidden]` (the encoder's
    /// `last_hidden_state`).
    pub fn forward(&self, hidden_states: &Tensor) -> Result<Tensor, ModelError> {
        let x = self.dense.forward(hidden_states)?.gelu_erf()?;
        let x = self.layer_norm.forward(&x)?;
        Ok(self.decoder.forward(&x)?)
    }
}

/// `EsmClassificationHead`: `out_proj(tanh(dense(h[:, 0])))` (dropout is off in eval).
#[derive(Debug, Clone)]
pub struct EsmClassificationHead {
    /// `classifier.dense`, `[hidden, hidden]`.
    pub dense: Linear,
    /// `classifier.out_proj`, `[num_labels, hidden]`.
    pub out_proj: Linear,
}

impl EsmClassificationHead {
    /// Loads `classifier.dense` and `classifier.out_proj`; when the checkpoint has none (the
    /// usual case: it is what fine-tuning trains) they are initialised as transformers does
    /// (normal(0, initializer_range) weights, zero biases) and listed in the load report.
    pub fn load(
        weights: &Weights,
        vb: &VarBuilder,
        cfg: &Config,
        num_labels: usize,
    ) -> Result<Self, ModelError> {
        let hidden = cfg.hidden_size;
        let normal = Init::Randn {
            mean: 0.0,
            stdev: cfg.initializer_range,
        };
        weights.init_if_missing("classifier.dense.weight", (hidden, hidden), normal)?;
        weights.init_if_missing("classifier.dense.bias", hidden, Init::Const(0.0))?;
        weights.init_if_missing("classifier.out_proj.weight", (num_labels, hidden), normal)?;
        weights.init_if_missing("classifier.out_proj.bias", num_labels, Init::Const(0.0))?;
        Ok(Self {
            dense: Linear::load(vb, "classifier.dense", hidden, hidden, true)?,
            out_proj: Linear::load(vb, "classifier.out_proj", hidden, num_labels, true)?,
        })
    }

    pub fn num_labels(&self) -> usize {
        self.out_proj.weight.dims().first().copied().unwrap_or(0)
    }

    /// Logits `[batch, num_labels]` from `last_hidden_state` `[batch, tokens, hidden]`.
    pub fn forward(&self, last_hidden_state: &Tensor) -> Result<Tensor, ModelError> {
        let first_token = last_hidden_state.narrow(1, 0, 1)?.squeeze(1)?;
        let x = self.dense.forward(&first_token)?.tanh()?;
        Ok(self.out_proj.forward(&x)?)
    }

    pub fn linears_mut(&mut self) -> [&mut Linear; 2] {
        [&mut self.dense, &mut self.out_proj]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nt_v2_config_selects_swiglu_and_v1_config_gelu() {
        let v2: Config = serde_json::from_str(
            r#"{"vocab_size": 10, "position_embedding_type": "rotary", "add_bias_fnn": false,
                "auto_map": {"AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM"}}"#,
        )
        .unwrap();
        assert_eq!(v2.feed_forward(), FeedForwardKind::SwiGlu);
        assert!(!v2.ffn_bias());
        let v1: Config = serde_json::from_str(
            r#"{"vocab_size": 10, "pad_token_id": 1, "emb_layer_norm_before": null}"#,
        )
        .unwrap();
        assert_eq!(v1.feed_forward(), FeedForwardKind::Gelu);
        assert_eq!(v1.position_embedding_type, PositionEmbeddingType::Absolute);
        assert_eq!(v1.emb_layer_norm_before, None);
        assert_eq!(v1.max_position_embeddings, 1026);
        assert!(v1.tie_word_embeddings);
        v1.validate(Path::new("config.json")).unwrap();
    }

    #[test]
    fn unsupported_configs_are_rejected_with_the_reason() {
        let relative: Config = serde_json::from_str(
            r#"{"vocab_size": 10, "pad_token_id": 1, "position_embedding_type": "relative_key"}"#,
        )
        .unwrap();
        let message = relative
            .validate(Path::new("config.json"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("position_embedding_type"), "{message}");

        let no_mask_id: Config =
            serde_json::from_str(r#"{"vocab_size": 10, "pad_token_id": 1, "token_dropout": true}"#)
                .unwrap();
        let message = no_mask_id
            .validate(Path::new("config.json"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("mask_token_id"), "{message}");
    }

    #[test]
    fn rotary_matches_rotate_half_formula() {
        // x * cos + rotate_half(x) * sin written out by hand for one position and D = 4.
        let dev = candle_core::Device::Cpu;
        let x = Tensor::new(&[[[1f32, 2., 3., 4.]]], &dev).unwrap();
        let (cos, sin) =
            ops::rotary_cos_sin(&default_inv_freq(4, &dev).unwrap(), 2, DType::F32).unwrap();
        // Position 1: angles [1, 0.01, 1, 0.01].
        let cos1 = cos.narrow(0, 1, 1).unwrap();
        let sin1 = sin.narrow(0, 1, 1).unwrap();
        let out = ops::apply_rotary(&x, &cos1, &sin1).unwrap();
        let got = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (c0, s0, c1, s1) = (1f32.cos(), 1f32.sin(), 0.01f32.cos(), 0.01f32.sin());
        let want = [
            1.0 * c0 - 3.0 * s0,
            2.0 * c1 - 4.0 * s1,
            3.0 * c0 + 1.0 * s0,
            4.0 * c1 + 2.0 * s1,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}
