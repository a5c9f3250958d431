//! DNABERT-2 (MosaicBERT, remote `bert_layers.py`): BERT without position embeddings, ALiBi
//! attention biases, a fused `Wqkv` projection, a GEGLU feed-forward (`gated_layers` → `wo`)
//! and post-LN blocks; plus its MLM head and the BERT pooler + classifier.
//!
//! The reference removes padding before the encoder ("unpadding"), so its padded positions are
//! exactly 0 in every layer output; this implementation runs the padded batch (same math for
//! real tokens) and zeroes padded positions after each layer to give the same tensors.

use candle_core::{bail, DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::model::esm::{check_batch_shapes, check_token_ids, EncoderOutput};
use crate::model::ops::{self, Linear};

/// `config.json` of a DNABERT-2 checkpoint: transformers' `BertConfig` fields and defaults plus
/// MosaicBERT's `alibi_starting_size`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

impl Config {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Rejects configurations this implementation cannot run, with the reason.
    pub fn validate(&self) -> Result<()> {
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            bail!(
                "DNABERT-2 config: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if self.type_vocab_size == 0 {
            bail!("DNABERT-2 config: type_vocab_size must be at least 1");
        }
        Activation::from_hf_name(&self.hidden_act)?;
        Ok(())
    }
}

/// Activations that transformers' `ACT2FN` maps the `hidden_act` names of BERT configs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `"gelu"`: the exact erf form.
    GeluErf,
    /// `"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`: the tanh approximation.
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    pub fn from_hf_name(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Self::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            other => bail!(
                "hidden_act \"{other}\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, \
                 gelu_fast, relu, silu)"
            ),
        })
    }

    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::GeluErf => x.gelu_erf(),
            Self::GeluTanh => x.gelu(),
            Self::Relu => x.relu(),
            Self::Silu => x.silu(),
        }
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
fn alibi_bias(num_heads: usize, seq_len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
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

#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(vb: &VarBuilder, name: &str, dim: usize, eps: f64) -> Result<Self> {
        let module = vb.pp(name);
        Ok(Self {
            weight: module.get(dim, "weight")?,
            bias: module.get(dim, "bias")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Mean and variance in f16/bf16 lose too much; normalise in f32 as PyTorch does.
        match x.dtype() {
            DType::F16 | DType::BF16 => ops::layer_norm(
                &x.to_dtype(DType::F32)?,
                &self.weight.to_dtype(DType::F32)?,
                &self.bias.to_dtype(DType::F32)?,
                self.eps,
            )?
            .to_dtype(x.dtype()),
            _ => ops::layer_norm(x, &self.weight, &self.bias, self.eps),
        }
    }
}

fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (batch, seq, width) = x.dims3()?;
    x.reshape((batch, seq, heads, width / heads))?
        .transpose(1, 2)?
        .contiguous()
}

fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (batch, heads, seq, head_dim) = x.dims4()?;
    x.transpose(1, 2)?
        .contiguous()?
        .reshape((batch, seq, heads * head_dim))
}

#[derive(Debug, Clone)]
struct Dnabert2Layer {
    /// Fused `[3 * hidden, hidden]` projection; rows are q, then k, then v, each `(head, dim)`.
    wqkv: Linear,
    attention_output: Linear,
    attention_layer_norm: LayerNorm,
    gated_layers: Linear,
    wo: Linear,
    mlp_layer_norm: LayerNorm,
    num_heads: usize,
    intermediate_size: usize,
}

impl Dnabert2Layer {
    fn load(vb: &VarBuilder, cfg: &Config) -> Result<Self> {
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
    fn forward(&self, x: &Tensor, attention_bias: &Tensor) -> Result<Tensor> {
        let qkv = self.wqkv.forward(x)?;
        let hidden = x.dim(D::Minus1)?;
        let query = split_heads(&qkv.narrow(D::Minus1, 0, hidden)?, self.num_heads)?;
        let key = split_heads(&qkv.narrow(D::Minus1, hidden, hidden)?, self.num_heads)?;
        let value = split_heads(&qkv.narrow(D::Minus1, 2 * hidden, hidden)?, self.num_heads)?;
        let head_dim = query.dim(D::Minus1)?;
        let scores = (query.matmul(&key.transpose(2, 3)?.contiguous()?)?
            / (head_dim as f64).sqrt())?
        .broadcast_add(attention_bias)?;
        let probs = ops::softmax_last_dim(&scores)?;
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
    config: Config,
    word_embeddings: Tensor,
    /// Row 0 of `token_type_embeddings`: token types are never passed, so all are 0.
    token_type_embedding: Tensor,
    embedding_layer_norm: LayerNorm,
    layers: Vec<Dnabert2Layer>,
}

impl Dnabert2Model {
    /// Loads the encoder from a checkpoint named as the remote code names it
    /// (`bert.embeddings.word_embeddings.weight`, …); `vb` points at the checkpoint root.
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        cfg.validate()?;
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
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: cfg.clone(),
            word_embeddings,
            token_type_embedding,
            embedding_layer_norm,
            layers,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The token embedding table `[vocab, hidden]`, which is also the MLM decoder weight.
    pub fn word_embeddings(&self) -> &Tensor {
        &self.word_embeddings
    }

    /// Every projection of the encoder, named by its Hugging Face module path.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        self.layers
            .iter_mut()
            .flat_map(|layer| layer.linears_mut())
            .collect()
    }

    /// Runs the encoder. `input_ids` (u32 or i64) and `attention_mask` (1 = token, 0 = padding,
    /// any dtype) are `[batch, seq_len]`. Layer outputs are exactly 0 at padded positions, as
    /// in the reference; `hidden_states[0]` (the embeddings) is not masked.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<EncoderOutput> {
        check_batch_shapes(input_ids, attention_mask)?;
        check_token_ids(input_ids, self.config.vocab_size)?;
        let (batch, seq_len) = input_ids.dims2()?;
        let hidden = self.config.hidden_size;
        let dtype = self.word_embeddings.dtype();

        let words = self
            .word_embeddings
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((batch, seq_len, hidden))?;
        let mut x = self
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

        let mut hidden_states = Vec::with_capacity(self.layers.len() + 1);
        hidden_states.push(x.clone());
        for layer in &self.layers {
            x = layer.forward(&x, &attention_bias)?.broadcast_mul(&keep)?;
            hidden_states.push(x.clone());
        }
        Ok(EncoderOutput {
            hidden_states,
            last_hidden_state: x,
        })
    }
}

/// The MLM head `cls.predictions`: `LN(act(transform.dense(h))) · word_embeddingsᵀ + bias`.
#[derive(Debug, Clone)]
pub struct Dnabert2MlmHead {
    transform: Linear,
    activation: Activation,
    layer_norm: LayerNorm,
    decoder: Linear,
}

impl Dnabert2MlmHead {
    /// The decoder weight is the word embeddings of `model` (the reference ties them by
    /// assignment); its bias is `cls.predictions.decoder.bias` or, in checkpoints saved
    /// without it, `cls.predictions.bias`.
    pub fn load(vb: VarBuilder, cfg: &Config, model: &Dnabert2Model) -> Result<Self> {
        let hidden = cfg.hidden_size;
        let predictions = vb.pp("cls").pp("predictions");
        let bias_name = if predictions.contains_tensor("decoder.bias") {
            "decoder.bias"
        } else {
            "bias"
        };
        Ok(Self {
            transform: Linear::load(&predictions, "transform.dense", hidden, hidden, true)?,
            activation: Activation::from_hf_name(&cfg.hidden_act)?,
            // Hard-coded to 1e-12 in the reference, whatever layer_norm_eps says.
            layer_norm: LayerNorm::load(&predictions, "transform.LayerNorm", hidden, 1e-12)?,
            decoder: Linear {
                name: "cls.predictions.decoder".to_string(),
                weight: model.word_embeddings().clone(),
                bias: Some(predictions.get(cfg.vocab_size, bias_name)?),
                lora: None,
            },
        })
    }

    /// Logits `[..., vocab]` for hidden states `[..., hidden]`.
    pub fn forward(&self, hidden_states: &Tensor) -> Result<Tensor> {
        let x = self
            .activation
            .forward(&self.transform.forward(hidden_states)?)?;
        self.decoder.forward(&self.layer_norm.forward(&x)?)
    }
}

/// `BertForSequenceClassification`'s head: `classifier(tanh(bert.pooler.dense(h[:, 0])))`.
#[derive(Debug, Clone)]
pub struct Dnabert2Classifier {
    pub pooler: Linear,
    pub classifier: Linear,
}

impl Dnabert2Classifier {
    /// Reads `bert.pooler.dense` from `pooler_vb` (the checkpoint) and `classifier` with
    /// `num_labels` outputs from `head_vb` (a fine-tuned head or adapter).
    pub fn load(
        pooler_vb: VarBuilder,
        head_vb: VarBuilder,
        cfg: &Config,
        num_labels: usize,
    ) -> Result<Self> {
        let hidden = cfg.hidden_size;
        Ok(Self {
            pooler: Linear::load(&pooler_vb, "bert.pooler.dense", hidden, hidden, true)?,
            classifier: Linear::load(&head_vb, "classifier", hidden, num_labels, true)?,
        })
    }

    /// Logits `[batch, num_labels]` from `last_hidden_state` `[batch, seq, hidden]`.
    pub fn forward(&self, last_hidden_state: &Tensor) -> Result<Tensor> {
        let first_token = last_hidden_state.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.pooler.forward(&first_token)?.tanh()?;
        self.classifier.forward(&pooled)
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
    fn unknown_activation_is_rejected_by_name() {
        let cfg: Config = serde_json::from_str(r#"{"hidden_act": "mish"}"#).unwrap();
        let message = cfg.validate().unwrap_err().to_string();
        assert!(message.contains("mish"), "{message}");
    }
}
