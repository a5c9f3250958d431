//! DNABERT-2 (MosaicBERT, remote `bert_layers.py`): BERT without position embeddings, ALiBi
//! attention biases, a fused `Wqkv` projection, a GEGLU feed-forward (`gated_layers` → `wo`)
//! and post-LN blocks; plus its MLM head and the BERT pooler + classifier.
//!
//! The reference removes padding before the encoder ("unpadding"), so its padded positions are
//! exactly 0 in every layer output; this implementation runs the padded batch (same math for
//! real tokens) and zeroes padded positions after each layer to give the same tensors.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::bert::{check_token_ids, EncoderOutput, LayerNorm, Staged};
use super::config::{Activation, BertConfig, Family, ModelConfig, ModelError};
use super::esm::check_batch_shapes;
use super::heads::{BertClassificationHead, BertMlmHead};
use super::load::Weights;
use super::ops::{self, Linear};

/// `config.json` of a DNABERT-2 checkpoint: transformers' `BertConfig` fields and defaults plus
/// MosaicBERT's `alibi_starting_size`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "default_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "default_num_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_num_heads")]
    pub num_attention_heads: usize,
    /// Width of one GEGLU half; `gated_layers` projects to twice this.
    #[serde(default = "default_intermediate_size")]
    pub intermediate_size: usize,
    /// Activation of the MLM head transform (the GEGLU always uses erf GELU).
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Only the `padding_idx` of the embedding in the reference; padding never reaches the
    /// outputs, so the tokenizer's pad id is what batches are padded with.
    #[serde(default)]
    pub pad_token_id: u32,
    /// Size of the precomputed ALiBi table in the reference; it grows on demand, so it does not
    /// limit the sequence length.
    #[serde(default = "default_alibi_starting_size")]
    pub alibi_starting_size: usize,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// Standard deviation of initial head weights (pooler, classifier) when a checkpoint lacks
    /// them.
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
}

fn default_vocab_size() -> usize {
    30522
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
fn default_hidden_act() -> String {
    "gelu".to_string()
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_alibi_starting_size() -> usize {
    512
}
fn default_max_position_embeddings() -> usize {
    512
}
fn default_initializer_range() -> f64 {
    0.02
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Parses and validates the config of a DNABERT-2 folder.
    pub fn from_model_config(config: &ModelConfig) -> Result<Self, ModelError> {
        if config.family != Family::Dnabert2 {
            return Err(ModelError::InvalidConfig {
                path: config.path.clone(),
                message: format!("this is a {} config, not a DNABERT-2 one", config.family),
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
        if self.type_vocab_size == 0 {
            return invalid("type_vocab_size is 0".to_string());
        }
        if Activation::from_hf_name(&self.hidden_act).is_none() {
            return invalid(format!(
                "hidden_act \"{}\" is not supported (supported: gelu, gelu_new, relu, silu)",
                self.hidden_act
            ));
        }
        Ok(())
    }

    /// The same fields as a standard [`BertConfig`], for the BERT heads (pooler, classifier,
    /// MLM head), whose tensor names DNABERT-2 shares.
    pub fn bert_config(&self) -> Result<BertConfig, ModelError> {
        let invalid = |e: serde_json::Error| {
            ModelError::InvalidInput(format!("DNABERT-2 config as BERT config: {e}"))
        };
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .map_err(invalid)
    }
}

/// ALiBi slopes as MosaicBERT computes them: the geometric series for a power-of-two head
/// count, otherwise that of the closest lower power of two followed by every other slope of
/// the next power of two.
pub fn alibi_slopes(num_heads: usize) -> Vec<f64> {
    fn power_of_two_slopes(n: usize) -> Vec<f64> {
        let start = 2f64.powf(-(2f64.powf(-((n as f64).log2() - 3.0))));
        (0..n).map(|i| start * start.powi(i as i32)).collect()
    }
    if num_heads == 0 {
        return Vec::new();
    }
    if num_heads.is_power_of_two() {
        return power_of_two_slopes(num_heads);
    }
    let closest = 1usize << num_heads.ilog2();
    let mut slopes = power_of_two_slopes(closest);
    slopes.extend(
        alibi_slopes(2 * closest)
            .into_iter()
            .step_by(2)
            .take(num_heads - closest),
    );
    slopes
}

/// `-slope_h * |i - j|`, shaped `[1, heads, seq_len, seq_len]`.
fn alibi_bias(
    num_heads: usize,
    seq_len: usize,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let slopes: Vec<f32> = alibi_slopes(num_heads)
        .into_iter()
        .map(|s| -s as f32)
        .collect();
    let slopes = Tensor::from_vec(slopes, (num_heads, 1, 1), device)?;
    let positions = Tensor::arange(0u32, seq_len as u32, device)?.to_dtype(DType::F32)?;
    let distance = positions
        .unsqueeze(0)?
        .broadcast_sub(&positions.unsqueeze(1)?)?
        .abs()?;
    slopes
        .broadcast_mul(&distance.unsqueeze(0)?)?
        .unsqueeze(0)?
        .to_dtype(dtype)
}

fn split_heads(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (batch, seq, width) = x.dims3()?;
    x.reshape((batch, seq, heads, width / heads))?
        .transpose(1, 2)?
        .contiguous()
}

fn merge_heads(x: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, heads, seq, head_dim) = x.dims4()?;
    x.transpose(1, 2)?
        .contiguous()?
        .reshape((batch, seq, heads * head_dim))
}

/// One post-LN MosaicBERT block: `a = LN(x + attn(x))`, `LN(a + wo(gelu(g₁) * g₂))`.
#[derive(Debug, Clone)]
pub struct Dnabert2Layer {
    /// Fused `[3 * hidden, hidden]` projection; rows are q, then k, then v, each `(head, dim)`.
    pub wqkv: Linear,
    pub attention_output: Linear,
    pub attention_layer_norm: LayerNorm,
    /// `[2 * intermediate, hidden]`, no bias: the gated half, then the linear half.
    pub gated_layers: Linear,
    pub wo: Linear,
    pub mlp_layer_norm: LayerNorm,
    num_heads: usize,
    intermediate_size: usize,
}

impl Dnabert2Layer {
    fn load(vb: &VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
        let hidden = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let inner = cfg.intermediate_size;
        Ok(Self {
            wqkv: Linear::load(vb, "attention.self.Wqkv", hidden, 3 * hidden, true)?,
            attention_output: Linear::load(vb, "attention.output.dense", hidden, hidden, true)?,
            attention_layer_norm: LayerNorm::load(vb, "attention.output.LayerNorm", hidden, eps)?,
            gated_layers: Linear::load(vb, "mlp.gated_layers", hidden, 2 * inner, false)?,
            wo: Linear::load(vb, "mlp.wo", inner, hidden, true)?,
            mlp_layer_norm: LayerNorm::load(vb, "mlp.layernorm", hidden, eps)?,
            num_heads: cfg.num_attention_heads,
            intermediate_size: inner,
        })
    }

    /// `attention_bias` is ALiBi plus the key padding mask, `[batch, heads, seq, seq]`.
    fn forward(&self, x: &Tensor, attention_bias: &Tensor) -> candle_core::Result<Tensor> {
        let qkv = self.wqkv.forward(x)?;
        let hidden = x.dim(D::Minus1)?;
        let query = split_heads(&qkv.narrow(D::Minus1, 0, hidden)?, self.num_heads)?;
        let key = split_heads(&qkv.narrow(D::Minus1, hidden, hidden)?, self.num_heads)?;
        let value = split_heads(&qkv.narrow(D::Minus1, 2 * hidden, hidden)?, self.num_heads)?;
        let head_dim = query.dim(D::Minus1)?;
        let scores = (query.matmul(&key.transpose(2, 3)?.contiguous()?)?
            / (head_dim as f64).sqrt())?
        .broadcast_add(attention_bias)?;
        let probs = ops::attention_softmax(&scores)?;
        let context = merge_heads(&probs.matmul(&value)?)?;
        let attended = self
            .attention_layer_norm
            .forward(&(self.attention_output.forward(&context)? + x)?)?;

        let gated = self.gated_layers.forward(&attended)?;
        let width = self.intermediate_size;
        let activated = (gated.narrow(D::Minus1, 0, width)?.gelu_erf()?
            * gated.narrow(D::Minus1, width, width)?)?;
        self.mlp_layer_norm
            .forward(&(self.wo.forward(&activated)? + attended)?)
    }

    fn linears_mut(&mut self) -> [&mut Linear; 4] {
        [
            &mut self.wqkv,
            &mut self.attention_output,
            &mut self.gated_layers,
            &mut self.wo,
        ]
    }
}

/// The DNABERT-2 encoder (`bert.*` in the checkpoint).
#[derive(Debug, Clone)]
pub struct Dnabert2Model {
    pub config: Config,
    /// `[vocab, hidden]`; also the MLM decoder weight (tied by assignment in the reference).
    pub word_embeddings: Tensor,
    /// Row 0 of `token_type_embeddings` `[1, hidden]`: token types are never passed.
    pub token_type_embedding: Tensor,
    pub embedding_layer_norm: LayerNorm,
    pub layers: Vec<Dnabert2Layer>,
}

impl Dnabert2Model {
    /// Builds the encoder from `vb` rooted at the checkpoint root (tensors named `bert.…`).
    pub fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self, ModelError> {
        // Also when the config did not come through `from_model_config`.
        cfg.validate(Path::new("config.json"))?;
        let hidden = cfg.hidden_size;
        let embeddings = vb.pp("bert").pp("embeddings");
        let word_embeddings = embeddings.get((cfg.vocab_size, hidden), "word_embeddings.weight")?;
        let token_type_embedding = embeddings
            .get(
                (cfg.type_vocab_size, hidden),
                "token_type_embeddings.weight",
            )?
            .narrow(0, 0, 1)?;
        let embedding_layer_norm =
            LayerNorm::load(&embeddings, "LayerNorm", hidden, cfg.layer_norm_eps)?;
        let encoder = vb.pp("bert").pp("encoder");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Dnabert2Layer::load(&encoder.pp(format!("layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            config: cfg.clone(),
            word_embeddings,
            token_type_embedding,
            embedding_layer_norm,
            layers,
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
    /// (1 = real token, 0 = padding). Layer outputs are exactly 0 at padded positions, as in
    /// the reference; `hidden_states[0]` (the embeddings) is not masked.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<EncoderOutput, ModelError> {
        self.begin(input_ids, attention_mask)?.run(
            self.layers.len(),
            |index, x, staged| self.layer(index, x, staged),
            Ok,
        )
    }

    /// Layer `index` on the hidden states `x`, padded positions zeroed after it.
    pub fn layer(&self, index: usize, x: &Tensor, staged: &Staged) -> candle_core::Result<Tensor> {
        let y = self.layers[index].forward(x, &staged.attention_bias)?;
        match &staged.keep {
            Some(keep) => y.broadcast_mul(keep),
            None => Ok(y),
        }
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

        let words = self
            .word_embeddings
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((batch, seq_len, hidden))?;
        let x = self
            .embedding_layer_norm
            .forward(&words.broadcast_add(&self.token_type_embedding)?)?;

        let mask = attention_mask.to_dtype(DType::F32)?;
        // MosaicBERT's key mask is (1 - mask) * -10000, added to ALiBi.
        let key_mask = ((mask.ones_like()? - &mask)? * -10000.0)?
            .reshape((batch, 1, 1, seq_len))?
            .to_dtype(dtype)?;
        let attention_bias =
            alibi_bias(self.config.num_attention_heads, seq_len, dtype, x.device())?
                .broadcast_add(&key_mask)?;
        let keep = mask.to_dtype(dtype)?.unsqueeze(2)?;
        Ok(Staged {
            hidden: x,
            attention_bias,
            keep: Some(keep),
        })
    }
}

/// A DNABERT-2 folder read into a model: the config, the weights (for the heads and the load
/// report) and the encoder.
#[derive(Debug, Clone)]
pub struct LoadedDnabert2 {
    pub config: Config,
    pub weights: Weights,
    pub model: Dnabert2Model,
}

impl LoadedDnabert2 {
    /// Reads `dir/config.json` and the weights of a DNABERT-2 folder.
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
        weights.add_base_prefix_if_missing("bert", "embeddings.word_embeddings.weight");
        let vb = weights.var_builder(dtype, device);
        let model = Dnabert2Model::load(&vb, &config)?;
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

    /// The MLM head `cls.predictions`, its decoder tied to the word embeddings and its
    /// transform LayerNorm eps fixed at 1e-12 as in the reference.
    pub fn mlm_head(&self) -> Result<BertMlmHead, ModelError> {
        let mut bert = self.config.bert_config()?;
        bert.layer_norm_eps = 1e-12;
        bert.tie_word_embeddings = true;
        BertMlmHead::load(
            &self.weights,
            &self.var_builder(),
            &bert,
            &self.model.word_embeddings,
        )
    }

    /// `classifier(tanh(bert.pooler.dense(h[:, 0])))`; pooler and classifier are initialised
    /// when the checkpoint lacks them (listed in the load report).
    pub fn classification_head(
        &self,
        num_labels: usize,
    ) -> Result<BertClassificationHead, ModelError> {
        BertClassificationHead::load(
            &self.weights,
            &self.var_builder(),
            &self.config.bert_config()?,
            num_labels,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alibi_slopes_for_power_of_two_heads_halve_geometrically() {
        // 8 heads: 2^-1, 2^-2, …, 2^-8 (ALiBi paper).
        let want: Vec<f64> = (1..=8).map(|i| 2f64.powi(-i)).collect();
        assert_eq!(alibi_slopes(8), want);
    }

    #[test]
    fn alibi_slopes_for_twelve_heads_interleave_the_next_power_of_two() {
        // DNABERT-2-117M has 12 heads: the 8-head series, then slopes 1, 3, 5, 7 (0-based
        // even positions) of the 16-head series 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
        let mut want: Vec<f64> = (1..=8).map(|i| 2f64.powi(-i)).collect();
        want.extend([0.5, 1.5, 2.5, 3.5].map(|e: f64| 2f64.powf(-e)));
        let got = alibi_slopes(12);
        assert_eq!(got.len(), 12);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn converts_to_a_bert_config_for_the_shared_heads() {
        let cfg: Config =
            serde_json::from_str(r#"{"vocab_size": 309, "hidden_size": 48, "hidden_act": "gelu"}"#)
                .unwrap();
        let bert = cfg.bert_config().unwrap();
        assert_eq!((bert.vocab_size, bert.hidden_size), (309, 48));
        assert_eq!(bert.initializer_range, 0.02);
    }

    #[test]
    fn unknown_activation_is_rejected_by_name() {
        let cfg: Config = serde_json::from_str(r#"{"hidden_act": "mish"}"#).unwrap();
        let message = cfg
            .validate(Path::new("config.json"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("mish"), "{message}");
    }
}
