//! BERT encoders: standard post-LayerNorm BERT (DNABERT) and GENA-LM's pre-LayerNorm variant
//! (remote `modeling_bert.py`, `pre_layer_norm` / `last_layer_norm`).
//!
//! Everything is composed from differentiable ops (see `ops`), so gradients reach every
//! projection and the embeddings.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::config::{Activation, BertConfig, ModelConfig, ModelError};
use super::load::Weights;
use super::ops;

/// Output of an encoder's forward pass.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// The embedding module's output, then each layer's output (before any final norm):
    /// `num_hidden_layers + 1` tensors `[batch, tokens, hidden]`, as `output_hidden_states`.
    pub hidden_states: Vec<Tensor>,
    /// The base model's output, after the final norm when the model has one.
    pub last_hidden_state: Tensor,
}

/// What every layer of an encoder needs besides the hidden states, computed once per batch
/// by the encoder's `begin` (see [`super::encoder::Encoder::begin`]).
#[derive(Debug, Clone)]
pub struct Staged {
    /// The embedding module's output `[batch, tokens, hidden]`: the first layer's input.
    pub hidden: Tensor,
    /// Added to the attention scores: the padding mask (and ALiBi for DNABERT-2).
    pub attention_bias: Tensor,
    /// `[batch, tokens, 1]` of 1/0: layer outputs are multiplied by it (DNABERT-2 zeroes
    /// padded positions after every layer).
    pub keep: Option<Tensor>,
}

impl Staged {
    /// The whole forward pass from here: `layers` calls of `layer`, then `finish`, keeping every
    /// layer's output as `output_hidden_states` does.
    pub fn run(
        self,
        layers: usize,
        layer: impl Fn(usize, &Tensor, &Staged) -> candle_core::Result<Tensor>,
        finish: impl FnOnce(Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<EncoderOutput, ModelError> {
        let mut x = self.hidden.clone();
        let mut hidden_states = Vec::with_capacity(layers + 1);
        hidden_states.push(x.clone());
        for index in 0..layers {
            x = layer(index, &x, &self)?;
            hidden_states.push(x.clone());
        }
        Ok(EncoderOutput {
            hidden_states,
            last_hidden_state: finish(x)?,
        })
    }
}

/// LayerNorm weights under a Hugging Face module path, applied with the differentiable
/// `ops::layer_norm` (differentiable in `x`; fused on the CPU).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub name: String,
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn load(vb: &VarBuilder, name: &str, dim: usize, eps: f64) -> candle_core::Result<Self> {
        let module = vb.pp(name);
        let full_name = if vb.prefix().is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", vb.prefix())
        };
        Ok(Self {
            name: full_name,
            weight: module.get(dim, "weight")?,
            bias: module.get(dim, "bias")?,
            eps,
        })
    }

    /// Half-precision inputs are normalised in f32 (as PyTorch's fused kernels do): mean and
    /// variance over hundreds of features lose too much in f16/bf16.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match x.dtype() {
            DType::F16 | DType::BF16 => {
                let weight = self.weight.to_dtype(DType::F32)?;
                let bias = self.bias.to_dtype(DType::F32)?;
                ops::layer_norm_composed(&x.to_dtype(DType::F32)?, &weight, &bias, self.eps)?
                    .to_dtype(x.dtype())
            }
            _ => ops::layer_norm(x, &self.weight, &self.bias, self.eps),
        }
    }
}

/// `LN(word + position + token_type[0])`.
#[derive(Debug, Clone)]
pub struct BertEmbeddings {
    /// `[vocab, hidden]`; also the tied MLM decoder weight.
    pub word_embeddings: Tensor,
    /// `[max_positions, hidden]`.
    pub position_embeddings: Tensor,
    /// `[type_vocab, hidden]`; only row 0 is used (token type ids are all 0).
    pub token_type_embeddings: Tensor,
    pub layer_norm: LayerNorm,
}

impl BertEmbeddings {
    fn load(vb: &VarBuilder, cfg: &BertConfig) -> candle_core::Result<Self> {
        let vb = vb.pp("embeddings");
        let hidden = cfg.hidden_size;
        Ok(Self {
            word_embeddings: vb.get((cfg.vocab_size, hidden), "word_embeddings.weight")?,
            position_embeddings: vb.get(
                (cfg.max_position_embeddings, hidden),
                "position_embeddings.weight",
            )?,
            token_type_embeddings: vb.get(
                (cfg.type_vocab_size, hidden),
                "token_type_embeddings.weight",
            )?,
            layer_norm: LayerNorm::load(&vb, "LayerNorm", hidden, cfg.layer_norm_eps)?,
        })
    }

    fn forward(&self, input_ids: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, tokens) = input_ids.dims2()?;
        let hidden = self.word_embeddings.dim(1)?;
        let words = self
            .word_embeddings
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((batch, tokens, hidden))?;
        // Positions 0..tokens for every row, as the reference's `position_ids` buffer.
        let positions = self.position_embeddings.narrow(0, 0, tokens)?;
        let token_type = self.token_type_embeddings.narrow(0, 0, 1)?;
        let summed = words
            .broadcast_add(&positions)?
            .broadcast_add(&token_type)?;
        self.layer_norm.forward(&summed)
    }
}

/// One encoder layer. Post-LN (standard BERT) holds `attention_output_ln` and `output_ln`;
/// pre-LN (GENA-LM) holds `pre_attention_ln` and `post_attention_ln` instead.
#[derive(Debug, Clone)]
pub struct BertLayer {
    pub query: ops::Linear,
    pub key: ops::Linear,
    pub value: ops::Linear,
    pub attention_output: ops::Linear,
    pub intermediate: ops::Linear,
    pub output: ops::Linear,
    pub attention_output_ln: Option<LayerNorm>,
    pub output_ln: Option<LayerNorm>,
    pub pre_attention_ln: Option<LayerNorm>,
    pub post_attention_ln: Option<LayerNorm>,
    num_heads: usize,
    head_dim: usize,
    activation: Activation,
}

impl BertLayer {
    fn load(
        vb: &VarBuilder,
        cfg: &BertConfig,
        activation: Activation,
    ) -> candle_core::Result<Self> {
        let hidden = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let (attention_output_ln, output_ln, pre_attention_ln, post_attention_ln) =
            if cfg.pre_layer_norm {
                (
                    None,
                    None,
                    Some(LayerNorm::load(vb, "pre_attention_ln", hidden, eps)?),
                    Some(LayerNorm::load(vb, "post_attention_ln", hidden, eps)?),
                )
            } else {
                (
                    Some(LayerNorm::load(
                        vb,
                        "attention.output.LayerNorm",
                        hidden,
                        eps,
                    )?),
                    Some(LayerNorm::load(vb, "output.LayerNorm", hidden, eps)?),
                    None,
                    None,
                )
            };
        Ok(Self {
            query: ops::Linear::load(vb, "attention.self.query", hidden, hidden, true)?,
            key: ops::Linear::load(vb, "attention.self.key", hidden, hidden, true)?,
            value: ops::Linear::load(vb, "attention.self.value", hidden, hidden, true)?,
            attention_output: ops::Linear::load(
                vb,
                "attention.output.dense",
                hidden,
                hidden,
                true,
            )?,
            intermediate: ops::Linear::load(
                vb,
                "intermediate.dense",
                hidden,
                cfg.intermediate_size,
                true,
            )?,
            output: ops::Linear::load(vb, "output.dense", cfg.intermediate_size, hidden, true)?,
            attention_output_ln,
            output_ln,
            pre_attention_ln,
            post_attention_ln,
            num_heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            activation,
        })
    }

    /// `[batch, tokens, heads * dim]` → `[batch, heads, tokens, dim]`.
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, tokens, _) = x.dims3()?;
        x.reshape((batch, tokens, self.num_heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Self-attention context `[batch, tokens, hidden]` before the output projection.
    fn attention_context(&self, x: &Tensor, additive_mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let query = self.split_heads(&self.query.forward(x)?)?;
        let key = self.split_heads(&self.key.forward(x)?)?;
        let value = self.split_heads(&self.value.forward(x)?)?;
        let scores = query.matmul(&key.t()?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let probs = ops::scaled_masked_softmax(&scores, additive_mask, scale)?;
        probs
            .matmul(&value)?
            .transpose(1, 2)?
            .reshape((batch, tokens, hidden))
    }

    fn forward(&self, x: &Tensor, additive_mask: &Tensor) -> candle_core::Result<Tensor> {
        match (&self.pre_attention_ln, &self.post_attention_ln) {
            (Some(pre_ln), Some(post_ln)) => {
                let context = self.attention_context(&pre_ln.forward(x)?, additive_mask)?;
                let attended = (x + self.attention_output.forward(&context)?)?;
                let inner = self
                    .activation
                    .forward(&self.intermediate.forward(&post_ln.forward(&attended)?)?)?;
                &attended + self.output.forward(&inner)?
            }
            _ => {
                let context = self.attention_context(x, additive_mask)?;
                let attended = (self.attention_output.forward(&context)? + x)?;
                let attended = match &self.attention_output_ln {
                    Some(ln) => ln.forward(&attended)?,
                    None => attended,
                };
                let inner = self
                    .activation
                    .forward(&self.intermediate.forward(&attended)?)?;
                let out = (self.output.forward(&inner)? + &attended)?;
                match &self.output_ln {
                    Some(ln) => ln.forward(&out),
                    None => Ok(out),
                }
            }
        }
    }
}

/// The BERT base model (`bert.*` tensors) of DNABERT and GENA-LM.
#[derive(Debug, Clone)]
pub struct BertModel {
    pub config: BertConfig,
    pub embeddings: BertEmbeddings,
    pub layers: Vec<BertLayer>,
    /// GENA-LM `bert.encoder.last_layer_ln`, present when `last_layer_norm` is on.
    pub last_layer_ln: Option<LayerNorm>,
    dtype: DType,
}

impl BertModel {
    /// Builds the encoder from `vb` rooted at the checkpoint root (tensors named `bert.…`).
    pub fn load(vb: &VarBuilder, cfg: &BertConfig) -> Result<Self, ModelError> {
        let activation = cfg.activation().ok_or_else(|| {
            ModelError::InvalidInput(format!("unsupported hidden_act \"{}\"", cfg.hidden_act))
        })?;
        let vb_bert = vb.pp("bert");
        let embeddings = BertEmbeddings::load(&vb_bert, cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| BertLayer::load(&vb_bert.pp(format!("encoder.layer.{i}")), cfg, activation))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let last_layer_ln = if cfg.uses_last_layer_norm() {
            Some(LayerNorm::load(
                &vb_bert,
                "encoder.last_layer_ln",
                cfg.hidden_size,
                cfg.layer_norm_eps,
            )?)
        } else {
            None
        };
        Ok(Self {
            config: cfg.clone(),
            embeddings,
            layers,
            last_layer_ln,
            dtype: vb.dtype(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        self.embeddings.word_embeddings.device()
    }

    /// Every projection, in layer order, for attaching adapters by `Linear::name`.
    pub fn linears_mut(&mut self) -> Vec<&mut ops::Linear> {
        self.layers
            .iter_mut()
            .flat_map(|layer| {
                [
                    &mut layer.query,
                    &mut layer.key,
                    &mut layer.value,
                    &mut layer.attention_output,
                    &mut layer.intermediate,
                    &mut layer.output,
                ]
            })
            .collect()
    }

    /// Checks the batch and embeds it: the first layer's input and what every layer needs.
    pub fn begin(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Staged, ModelError> {
        let (batch, tokens) = input_ids.dims2()?;
        if attention_mask.dims2()? != (batch, tokens) {
            return Err(ModelError::InvalidInput(format!(
                "attention_mask has shape {:?} but input_ids has [{batch}, {tokens}]",
                attention_mask.dims()
            )));
        }
        if tokens > self.config.max_position_embeddings {
            return Err(ModelError::InvalidInput(format!(
                "{tokens} tokens exceed the model's maximum of {} (max_position_embeddings); \
                 truncate the input",
                self.config.max_position_embeddings
            )));
        }
        check_token_ids(input_ids, self.config.vocab_size)?;
        let input_ids = input_ids.to_device(self.device())?;
        let attention_mask = attention_mask.to_device(self.device())?;
        Ok(Staged {
            hidden: self.embeddings.forward(&input_ids)?,
            attention_bias: ops::additive_attention_mask(&attention_mask, self.dtype)?,
            keep: None,
        })
    }

    /// Layer `index` on the hidden states `x`.
    pub fn layer(&self, index: usize, x: &Tensor, staged: &Staged) -> candle_core::Result<Tensor> {
        self.layers[index].forward(x, &staged.attention_bias)
    }

    /// The last layer's output into `last_hidden_state` (GENA-LM's final LayerNorm).
    pub fn finish(&self, x: Tensor) -> candle_core::Result<Tensor> {
        match &self.last_layer_ln {
            Some(ln) => ln.forward(&x),
            None => Ok(x),
        }
    }

    /// Runs the encoder. `input_ids` and `attention_mask` are `[batch, tokens]` integer tensors
    /// (1 = real token, 0 = padding), token type ids are all 0.
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
}

/// Token ids must index the embedding table; an out-of-range id (e.g. a tokenizer built for
/// another vocabulary) gets a clear error instead of an out-of-bounds read.
pub fn check_token_ids(input_ids: &Tensor, vocab_size: usize) -> Result<(), ModelError> {
    if input_ids.dtype().is_float() {
        return Err(ModelError::InvalidInput(format!(
            "input_ids must be integers, got {:?}",
            input_ids.dtype()
        )));
    }
    if input_ids.elem_count() == 0 {
        return Ok(());
    }
    let ids = input_ids.flatten_all()?.to_dtype(DType::I64)?;
    let max = ids.max(D::Minus1)?.to_scalar::<i64>()?;
    let min = ids.min(D::Minus1)?.to_scalar::<i64>()?;
    if min < 0 || max >= vocab_size as i64 {
        return Err(ModelError::InvalidInput(format!(
            "token id {} is outside the vocabulary of {vocab_size}; was the input tokenized \
             with this model's tokenizer?",
            if min < 0 { min } else { max }
        )));
    }
    Ok(())
}

/// A BERT-style checkpoint folder read into a model: the config, the weights (for the heads
/// and the load report) and the encoder.
#[derive(Debug, Clone)]
pub struct LoadedBert {
    pub config: BertConfig,
    pub weights: Weights,
    pub model: BertModel,
}

impl LoadedBert {
    /// Reads `dir/config.json` and the weights of a DNABERT or GENA-LM folder.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self, ModelError> {
        let config = ModelConfig::from_dir(dir)?.bert()?;
        let weights = Weights::from_dir(dir)?;
        Self::from_weights(config, weights, dtype, device)
    }

    pub fn from_weights(
        config: BertConfig,
        weights: Weights,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, ModelError> {
        weights.add_base_prefix_if_missing("bert", "embeddings.word_embeddings.weight");
        // A persistent buffer equal to 0..max_positions; the forward pass builds the same.
        weights.mark_used("bert.embeddings.position_ids");
        let vb = weights.var_builder(dtype, device);
        let model = BertModel::load(&vb, &config)?;
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
}
