//! Differentiable building blocks shared by the model families.
//!
//! candle's fused LayerNorm, its layer-norm and last-dim softmax helpers and
//! `rotary_emb::rope*` have no backward pass: gradients would silently stop there. Everything
//! on a training path uses the compositions below instead, or for f32 on the CPU the fused
//! kernels of [`super::fused`], which have hand-written backward passes.

use candle_core::{DType, Result, Tensor, D};

use super::fused;

/// A tensor no gradient is asked of (a frozen weight, not a `Var` or a result of one).
fn is_frozen(t: &Tensor) -> bool {
    !t.track_op()
}

/// LayerNorm over the last dimension: the fused kernel for f32 CPU inputs with frozen
/// weights, else [`layer_norm_composed`].
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if fused::applies(x) && is_frozen(weight) && is_frozen(bias) {
        return x.contiguous()?.apply_op1(fused::FrozenLayerNorm {
            weight: weight.contiguous()?,
            bias: bias.contiguous()?,
            eps,
        });
    }
    layer_norm_composed(x, weight, bias, eps)
}

/// `softmax(scores · scale + additive_mask)` over the keys, for scores `[batch, heads,
/// queries, keys]` and a mask `[batch, 1, 1, keys]` (see [`additive_attention_mask`]).
pub fn scaled_masked_softmax(
    scores: &Tensor,
    additive_mask: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    if fused::applies(scores) && fused::applies(additive_mask) && is_frozen(additive_mask) {
        return scores.contiguous()?.apply_op1(fused::ScaledMaskedSoftmax {
            mask: additive_mask.contiguous()?,
            scale,
        });
    }
    attention_softmax(&(scores * scale)?.broadcast_add(additive_mask)?)
}

/// HF's `"gelu"` (erf form), fused for f32 on the CPU.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if fused::applies(x) {
        return x.contiguous()?.apply_op1(fused::GeluErf);
    }
    x.gelu_erf()
}

/// LayerNorm over the last dimension, composed from differentiable ops.
pub fn layer_norm_composed(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed.broadcast_mul(weight)?.broadcast_add(bias)
}

/// Softmax over the last dimension, composed from differentiable ops (unlike candle's fused one).
pub fn attention_softmax(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(x, D::Minus1)
}

/// `x · Wᵀ + b` for a PyTorch-layout weight `[out, in]` and any number of leading dims.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    // A frozen projection needs no weight gradient; candle's matmul backward would compute
    // one anyway (a third of the backward FLOPs, and a model-sized buffer).
    if fused::applies(x)
        && weight.dtype() == DType::F32
        && is_frozen(weight)
        && bias.is_none_or(|b| b.dtype() == DType::F32 && is_frozen(b))
    {
        return x.contiguous()?.apply_op1(fused::FrozenLinear {
            weight: weight.contiguous()?,
            bias: bias.map(Tensor::contiguous).transpose()?,
        });
    }
    let y = x.broadcast_matmul(&weight.t()?)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// The additive attention mask `(1 - mask) * finfo(f32).min`, shaped `[batch, 1, 1, keys]`,
/// as the reference implementations add it to the scaled scores.
pub fn additive_attention_mask(attention_mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (batch, keys) = attention_mask.dims2()?;
    let mask = attention_mask.to_dtype(DType::F32)?;
    let inverted = (mask.ones_like()? - mask)?;
    (inverted * f32::MIN as f64)?
        .reshape((batch, 1, 1, keys))?
        .to_dtype(dtype)
}

/// A projection of a pretrained model, frozen during fine-tuning. Every family builds its
/// projections from this type, named by the Hugging Face module path (e.g.
/// `bert.encoder.layer.0.attention.self.query`), so that LoRA can later be attached to any of
/// them by name in one place.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Hugging Face module path, without `.weight`.
    pub name: String,
    /// `[out, in]`, PyTorch layout.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// A trainable low-rank update added to the frozen projection (see [`super::lora`]).
    pub lora: Option<super::lora::LoraAdapter>,
}

impl Linear {
    /// Reads `{name}.weight` `[out, in]` and, when `with_bias`, `{name}.bias` from `vb`.
    pub fn load(
        vb: &candle_nn::VarBuilder,
        name: &str,
        in_dim: usize,
        out_dim: usize,
        with_bias: bool,
    ) -> Result<Self> {
        let module = vb.pp(name);
        let weight = module.get((out_dim, in_dim), "weight")?;
        let bias = if with_bias {
            Some(module.get(out_dim, "bias")?)
        } else {
            None
        };
        let prefix = vb.prefix();
        let name = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        Ok(Self {
            name,
            weight,
            bias,
            lora: None,
        })
    }

    /// A projection without LoRA from tensors already in memory.
    pub fn new(name: impl Into<String>, weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            name: name.into(),
            weight,
            bias,
            lora: None,
        }
    }

    /// `x · Wᵀ + b`, plus the LoRA update when an adapter is attached.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = linear(x, &self.weight, self.bias.as_ref())?;
        match &self.lora {
            Some(adapter) => y + adapter.delta(x)?,
            None => Ok(y),
        }
    }
}

/// `cos` and `sin` tables `[seq_len, head_dim]` for non-interleaved rotary embeddings at
/// positions `0..seq_len`, from the inverse frequencies `[head_dim / 2]` (computed in f32, then
/// cast to `dtype`, so reduced-precision models keep accurate angles).
pub fn rotary_cos_sin(inv_freq: &Tensor, seq_len: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
    let inv_freq = inv_freq.to_dtype(DType::F32)?.flatten_all()?;
    let positions =
        Tensor::arange(0u32, seq_len as u32, inv_freq.device())?.to_dtype(DType::F32)?;
    let freqs = positions
        .unsqueeze(1)?
        .broadcast_mul(&inv_freq.unsqueeze(0)?)?;
    let angles = Tensor::cat(&[&freqs, &freqs], D::Minus1)?;
    Ok((
        angles.cos()?.to_dtype(dtype)?,
        angles.sin()?.to_dtype(dtype)?,
    ))
}

/// Rotary position embedding in the "rotate half" layout (`x * cos + rotate_half(x) * sin`)
/// for `x` shaped `[..., seq_len, head_dim]`. Built from `narrow`/`cat`/`mul`, so unlike
/// candle's `rotary_emb::rope*` it has a backward pass.
pub fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let head_dim = x.dim(D::Minus1)?;
    let half = head_dim / 2;
    let first = x.narrow(D::Minus1, 0, half)?;
    let second = x.narrow(D::Minus1, half, head_dim - half)?;
    let rotated = Tensor::cat(&[&second.neg()?, &first], D::Minus1)?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}
