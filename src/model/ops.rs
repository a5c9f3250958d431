//! Differentiable building blocks shared by the model families.
//!
//! candle's fused LayerNorm, its layer-norm and last-dim softmax helpers and
//! `rotary_emb::rope*` have no backward pass: gradients would silently stop there. Everything
//! on a training path uses the compositions below instead, or for f32 on the CPU the fused
//! kernels of [`super::fused`], which have hand-written backward passes.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, DType, Layout, MetalStorage, Result, Shape, Storage,
    Tensor, D,
};

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
    if is_frozen(weight) && bias.is_none_or(is_frozen) {
        return frozen_linear(x, weight, bias);
    }
    let y = x.broadcast_matmul(&weight.t()?)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `x · Wᵀ + b` for a frozen weight on any device and in any dtype: the product in the
/// weight's dtype (bf16/f16 weights: `x` is cast for the product, the result cast back, as
/// PyTorch's autocast does), then the bias in `x`'s dtype. Only `x` gets a gradient.
pub fn frozen_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let compute = if x.dtype() == weight.dtype() {
        x.contiguous()?
    } else {
        x.to_dtype(weight.dtype())?.contiguous()?
    };
    let y = compute.apply_op1(FrozenMatmul {
        weight: weight.contiguous()?,
    })?;
    let y = if y.dtype() == x.dtype() {
        y
    } else {
        y.to_dtype(x.dtype())?
    };
    match bias {
        Some(b) if b.dtype() == x.dtype() => y.broadcast_add(b),
        Some(b) => y.broadcast_add(&b.to_dtype(x.dtype())?),
        None => Ok(y),
    }
}

/// `x · Wᵀ` for a frozen `W` `[out, in]` on whatever device holds both, through the backend's
/// own matmul (cuBLAS on CUDA, MPS on Metal, gemm on the CPU). Its backward returns only the
/// input gradient: candle's matmul backward would also compute — and keep until the end of
/// the backward pass — a gradient for every frozen weight.
struct FrozenMatmul {
    /// `[out, in]`, contiguous.
    weight: Tensor,
}

/// The forward of [`FrozenMatmul`] over any backend's storage; `x` is contiguous `[..., in]`.
fn frozen_matmul_storage<S: BackendStorage>(
    x: &S,
    x_layout: &Layout,
    weight: &S,
    weight_layout: &Layout,
) -> Result<(S, Shape)> {
    let dims = x_layout.dims();
    let in_dim = dims.last().copied().unwrap_or(0);
    let (out_dim, weight_in) = weight_layout.shape().dims2()?;
    if in_dim != weight_in || !x_layout.is_contiguous() || !weight_layout.is_contiguous() {
        candle_core::bail!(
            "frozen matmul: input {:?} does not match weight [{out_dim}, {weight_in}] (or is not \
             contiguous)",
            dims
        );
    }
    let rows = x_layout.shape().elem_count() / in_dim.max(1);
    let lhs = Layout::contiguous_with_offset((rows, in_dim), x_layout.start_offset());
    // Wᵀ as a strided view of the row-major weight: no copy.
    let rhs = Layout::new(
        Shape::from((in_dim, out_dim)),
        vec![1, in_dim],
        weight_layout.start_offset(),
    );
    let y = x.matmul(weight, (1, rows, out_dim, in_dim), &lhs, &rhs)?;
    let mut out_dims = dims.to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = out_dim;
    }
    Ok((y, Shape::from(out_dims)))
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (weight, weight_layout) = self.weight.storage_and_layout();
        match &*weight {
            Storage::Cpu(weight) => frozen_matmul_storage(storage, layout, weight, weight_layout),
            _ => candle_core::bail!("frozen matmul: the weight is not on the CPU"),
        }
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
        let (weight, weight_layout) = self.weight.storage_and_layout();
        match &*weight {
            Storage::Cuda(weight) => frozen_matmul_storage(storage, layout, weight, weight_layout),
            _ => candle_core::bail!("frozen matmul: the weight is not on the CUDA device"),
        }
    }

    fn metal_fwd(&self, storage: &MetalStorage, layout: &Layout) -> Result<(MetalStorage, Shape)> {
        let (weight, weight_layout) = self.weight.storage_and_layout();
        match &*weight {
            Storage::Metal(weight) => frozen_matmul_storage(storage, layout, weight, weight_layout),
            _ => candle_core::bail!("frozen matmul: the weight is not on the Metal device"),
        }
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // d(x·Wᵀ)/dx = grad · W, in the weight's dtype like the forward.
        let grad = grad_res.to_dtype(self.weight.dtype())?;
        Ok(Some(grad.broadcast_matmul(&self.weight)?))
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn tensor(values: impl Iterator<Item = f32>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.collect::<Vec<_>>(), shape, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The backend-generic frozen projection (the one CUDA and Metal run) gives candle's
    /// composed `x · Wᵀ + b` and the same input gradient.
    #[test]
    fn frozen_linear_matches_the_composed_projection_and_its_input_gradient() {
        let x = tensor(
            (0..2 * 3 * 8).map(|i| ((i * 7 % 11) as f32 - 5.0) / 7.0),
            &[2, 3, 8],
        );
        let weight = tensor(
            (0..5 * 8).map(|i| ((i * 5 % 13) as f32 - 6.0) / 9.0),
            &[5, 8],
        );
        let bias = tensor((0..5).map(|i| i as f32 / 10.0), &[5]);
        let upstream = tensor((0..2 * 3 * 5).map(|i| (i % 4) as f32 - 1.5), &[2, 3, 5]);

        let x_var = Var::from_tensor(&x).unwrap();
        let ours = frozen_linear(x_var.as_tensor(), &weight, Some(&bias)).unwrap();
        let ours_grads = (&ours * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();

        let ref_var = Var::from_tensor(&x).unwrap();
        let reference = ref_var
            .as_tensor()
            .broadcast_matmul(&weight.t().unwrap())
            .unwrap()
            .broadcast_add(&bias)
            .unwrap();
        let ref_grads = (&reference * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();

        assert!(max_abs_diff(&ours, &reference) < 1e-5);
        let ours_grad = ours_grads.get(x_var.as_tensor()).unwrap();
        let ref_grad = ref_grads.get(ref_var.as_tensor()).unwrap();
        assert!(max_abs_diff(ours_grad, ref_grad) < 1e-5);
        // No gradient buffer for the frozen weight: candle's matmul keeps one (under the id
        // of the transposed view) besides those of x, the product and the sums.
        let held = |store: &candle_core::backprop::GradStore| store.get_ids().count();
        assert!(
            held(&ours_grads) < held(&ref_grads),
            "frozen matmul holds {} gradients, the composed product {}",
            held(&ours_grads),
            held(&ref_grads)
        );
    }

    /// Half-precision frozen weights with f32 activations: f32 in, f32 out, close to f32.
    #[test]
    fn frozen_linear_with_f16_weights_keeps_f32_activations() {
        let x = tensor(
            (0..4 * 16).map(|i| ((i * 3 % 17) as f32 - 8.0) / 8.0),
            &[4, 16],
        );
        let weight = tensor(
            (0..6 * 16).map(|i| ((i * 5 % 19) as f32 - 9.0) / 19.0),
            &[6, 16],
        );
        let full = frozen_linear(&x, &weight, None).unwrap();
        let half = frozen_linear(&x, &weight.to_dtype(DType::F16).unwrap(), None).unwrap();
        assert_eq!(half.dtype(), DType::F32);
        let err = max_abs_diff(&full, &half);
        assert!(err > 0.0 && err < 1e-2, "f16 error {err}");
    }

    /// Value and input gradient of a fused CPU op and of the composed ops a GPU runs.
    fn compare_paths(
        x: &Tensor,
        upstream: &Tensor,
        fused_op: impl Fn(&Tensor) -> Result<Tensor>,
        composed_op: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> (f32, f32) {
        let run = |op: &dyn Fn(&Tensor) -> Result<Tensor>| {
            let var = Var::from_tensor(x).unwrap();
            let y = op(var.as_tensor()).unwrap();
            let grads = (&y * upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            (y, grads.get(var.as_tensor()).unwrap().clone())
        };
        let (fused_y, fused_grad) = run(&fused_op);
        let (composed_y, composed_grad) = run(&composed_op);
        (
            max_abs_diff(&fused_y, &composed_y),
            max_abs_diff(&fused_grad, &composed_grad),
        )
    }

    /// The fused CPU kernels and the composed candle ops that CUDA and Metal run agree in value
    /// and gradient, so a GPU trains the same model.
    #[test]
    fn fused_cpu_kernels_and_the_gpu_compositions_agree() {
        let x = tensor(
            (0..2 * 4 * 6).map(|i| ((i * 7 % 23) as f32 - 11.0) / 5.0),
            &[2, 4, 6],
        );
        let upstream = tensor(
            (0..2 * 4 * 6).map(|i| ((i * 5 % 7) as f32 - 3.0) / 3.0),
            &[2, 4, 6],
        );
        let weight = Tensor::from_vec(fused_weights(6), 6, &Device::Cpu).unwrap();
        let bias = tensor((0..6).map(|i| i as f32 / 7.0 - 0.3), &[6]);
        let (value, grad) = compare_paths(
            &x,
            &upstream,
            |x| layer_norm(x, &weight, &bias, 1e-12),
            |x| layer_norm_composed(x, &weight, &bias, 1e-12),
        );
        assert!(
            value < 1e-5 && grad < 1e-4,
            "LayerNorm: {value:.2e} {grad:.2e}"
        );
        let (value, grad) = compare_paths(&x, &upstream, gelu_erf, |x| x.gelu_erf());
        assert!(value < 1e-5 && grad < 1e-5, "GELU: {value:.2e} {grad:.2e}");

        // Attention scores [batch, heads, queries, keys] with the last key padded in batch 1.
        let scores = x.reshape((2, 1, 4, 6)).unwrap();
        let upstream = upstream.reshape((2, 1, 4, 6)).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]], &Device::Cpu).unwrap();
        let additive = additive_attention_mask(&mask, DType::F32).unwrap();
        let (value, grad) = compare_paths(
            &scores,
            &upstream,
            |s| scaled_masked_softmax(s, &additive, 0.125),
            |s| attention_softmax(&(s * 0.125)?.broadcast_add(&additive)?),
        );
        assert!(
            value < 1e-6 && grad < 1e-6,
            "softmax: {value:.2e} {grad:.2e}"
        );
    }

    fn fused_weights(n: usize) -> Vec<f32> {
        (0..n).map(|i| 0.5 + i as f32 / 10.0).collect()
    }
}
