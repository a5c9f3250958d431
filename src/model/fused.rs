//! Fused CPU kernels (f32) with hand-written backward passes, for the hot spots of LoRA
//! fine-tuning. Each is a candle `CustomOp1` over the activation only: the weights they hold
//! are frozen, so the backward pass returns the input gradient and nothing else. Callers
//! ([`super::ops`]) use them for f32 tensors on the CPU and fall back to compositions of
//! candle ops elsewhere.
//!
//! Why: candle's autograd computes the gradient of every matmul operand (a frozen weight's
//! included, through a model-sized buffer), and a composed LayerNorm, softmax or GELU keeps
//! a dozen full-size intermediates alive and walks them again in the backward pass.

use candle_core::{bail, CpuStorage, CustomOp1, Device, Layout, Result, Shape, Storage, Tensor, D};
use rayon::prelude::*;

/// Borrows the f32 values of a contiguous CPU tensor and hands them to `f`.
fn with_f32<R>(tensor: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(values)) = &*storage else {
        bail!(
            "fused kernels take f32 CPU tensors, got {:?}",
            tensor.dtype()
        )
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused kernels take contiguous tensors")
    };
    f(&values[start..end])
}

/// The f32 values of the op's argument, which must be contiguous.
fn arg_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        bail!("fused kernels take f32 tensors")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused kernels take contiguous tensors")
    };
    Ok(&values[start..end])
}

/// eˣ by range reduction (x = k·ln 2 + r, |r| ≤ ln 2 / 2) and a degree-6 Taylor polynomial
/// (relative error ≈ 2·10⁻⁷); 0 below −87 as f32 underflows. Branch-free with plain
/// arithmetic, so the loops around it vectorise, unlike calls to libm's `expf`.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 88.0);
    let k = (clamped * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = clamped - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// Rows per parallel task: enough work per task to pay for the hand-off.
fn rows_per_task(row_len: usize) -> usize {
    (16384 / row_len.max(1)).max(1)
}

fn gemm_parallelism() -> gemm::Parallelism {
    let threads = candle_core::utils::get_num_threads();
    if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `x · Wᵀ + b` for a frozen `W` `[out, in]` (contiguous) and optional `b` `[out]`; the
/// backward pass returns only `∂x = ∂y · W`.
pub struct FrozenLinear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = arg_f32(storage, layout)?;
        let dims = layout.dims();
        let k = *dims.last().unwrap_or(&0);
        let (n, w_in) = self.weight.dims2()?;
        if w_in != k {
            bail!(
                "frozen-linear: input has {k} features, weight {:?}",
                self.weight.dims()
            )
        }
        let m = x.len() / k.max(1);
        // Without a bias gemm writes every element without reading it: no zero-filling.
        let mut dst: Vec<f32> = Vec::with_capacity(m * n);
        let read_dst = match &self.bias {
            Some(bias) => {
                with_f32(bias, |b| {
                    for _ in 0..m {
                        dst.extend_from_slice(b);
                    }
                    Ok(())
                })?;
                true
            }
            None => false,
        };
        with_f32(&self.weight, |w| {
            // SAFETY: `dst` is m×n, `x` m×k and `w` n×k, all contiguous row-major; the
            // strides below address exactly those buffers (W read as its transpose).
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    read_dst,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    k as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm_parallelism(),
                );
            }
            Ok(())
        })?;
        // SAFETY: gemm has written all m×n elements (or they were filled with the bias).
        unsafe { dst.set_len(m * n) };
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(dst), Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let n = grad_res.dim(D::Minus1)?;
        let grad = grad_res.reshape(((), n))?.matmul(&self.weight)?;
        Ok(Some(grad.reshape(arg.shape())?))
    }
}

/// LayerNorm over the last dimension with frozen `weight` and `bias`; the backward pass
/// returns only `∂x` (the statistics are recomputed from `x`, nothing else is kept).
pub struct FrozenLayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

/// Mean and 1/σ of one row, accumulated in f64 as the reference kernels do in higher
/// precision.
fn row_stats(row: &[f32], eps: f64) -> (f32, f32) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = row
        .iter()
        .map(|&v| {
            let d = f64::from(v) - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean as f32, (1.0 / (var + eps).sqrt()) as f32)
}

impl CustomOp1 for FrozenLayerNorm {
    fn name(&self) -> &'static str {
        "frozen-layer-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = arg_f32(storage, layout)?;
        let h = layout.dims().last().copied().unwrap_or(1);
        let mut dst = vec![0f32; x.len()];
        with_f32(&self.weight, |w| {
            with_f32(&self.bias, |b| {
                let chunk = rows_per_task(h) * h;
                dst.par_chunks_mut(chunk)
                    .zip(x.par_chunks(chunk))
                    .for_each(|(out, input)| {
                        for (out, row) in out.chunks_exact_mut(h).zip(input.chunks_exact(h)) {
                            let (mean, rstd) = row_stats(row, self.eps);
                            for i in 0..h {
                                out[i] = (row[i] - mean) * rstd * w[i] + b[i];
                            }
                        }
                    });
                Ok(())
            })
        })?;
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // ∂x = rstd · (g·w − mean(g·w) − x̂ · mean(g·w·x̂)).
        let h = arg.dim(D::Minus1)?;
        let arg = arg.contiguous()?;
        let grad_res = grad_res.contiguous()?;
        let mut dx = vec![0f32; arg.elem_count()];
        with_f32(&arg, |x| {
            with_f32(&grad_res, |g| {
                with_f32(&self.weight, |w| {
                    let chunk = rows_per_task(h) * h;
                    dx.par_chunks_mut(chunk)
                        .zip(x.par_chunks(chunk).zip(g.par_chunks(chunk)))
                        .for_each(|(out, (x, g))| {
                            let rows = out
                                .chunks_exact_mut(h)
                                .zip(x.chunks_exact(h).zip(g.chunks_exact(h)));
                            for (out, (x, g)) in rows {
                                let (mean, rstd) = row_stats(x, self.eps);
                                let (mut sum_gw, mut sum_gwx) = (0f32, 0f32);
                                for i in 0..h {
                                    let gw = g[i] * w[i];
                                    sum_gw += gw;
                                    sum_gwx += gw * (x[i] - mean) * rstd;
                                }
                                let (mean_gw, mean_gwx) = (sum_gw / h as f32, sum_gwx / h as f32);
                                for i in 0..h {
                                    let xhat = (x[i] - mean) * rstd;
                                    out[i] = rstd * (g[i] * w[i] - mean_gw - xhat * mean_gwx);
                                }
                            }
                        });
                    Ok(())
                })
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// `softmax(scores · scale + mask)` over the last dimension, for attention scores
/// `[batch, heads, queries, keys]` and an additive mask `[batch, 1, 1, keys]`.
pub struct ScaledMaskedSoftmax {
    pub mask: Tensor,
    pub scale: f64,
}

impl CustomOp1 for ScaledMaskedSoftmax {
    fn name(&self) -> &'static str {
        "scaled-masked-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = arg_f32(storage, layout)?;
        let (batch, heads, queries, keys) = layout.shape().dims4()?;
        if self.mask.dims() != [batch, 1, 1, keys] {
            bail!(
                "scaled-masked-softmax: mask {:?} for scores {:?}",
                self.mask.dims(),
                layout.dims()
            )
        }
        let scale = self.scale as f32;
        let per_batch = heads * queries * keys;
        let mut dst = vec![0f32; x.len()];
        with_f32(&self.mask, |mask| {
            let chunk = rows_per_task(keys) * keys;
            dst.par_chunks_mut(chunk)
                .zip(x.par_chunks(chunk))
                .enumerate()
                .for_each(|(task, (out, input))| {
                    let first = task * chunk;
                    let rows = out.chunks_exact_mut(keys).zip(input.chunks_exact(keys));
                    for (r, (out, row)) in rows.enumerate() {
                        let b = (first + r * keys) / per_batch;
                        let mask = &mask[b * keys..(b + 1) * keys];
                        let mut max = f32::NEG_INFINITY;
                        for i in 0..keys {
                            let v = row[i] * scale + mask[i];
                            out[i] = v;
                            max = max.max(v);
                        }
                        let mut sum = 0f32;
                        for v in out.iter_mut() {
                            *v = exp(*v - max);
                            sum += *v;
                        }
                        let inv = 1.0 / sum;
                        for v in out.iter_mut() {
                            *v *= inv;
                        }
                    }
                });
            Ok(())
        })?;
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // ∂x = scale · y ⊙ (g − Σ g·y).
        let keys = res.dim(D::Minus1)?;
        let res = res.contiguous()?;
        let grad_res = grad_res.contiguous()?;
        let scale = self.scale as f32;
        let mut dx = vec![0f32; res.elem_count()];
        with_f32(&res, |y| {
            with_f32(&grad_res, |g| {
                let chunk = rows_per_task(keys) * keys;
                dx.par_chunks_mut(chunk)
                    .zip(y.par_chunks(chunk).zip(g.par_chunks(chunk)))
                    .for_each(|(out, (y, g))| {
                        let rows = out
                            .chunks_exact_mut(keys)
                            .zip(y.chunks_exact(keys).zip(g.chunks_exact(keys)));
                        for (out, (y, g)) in rows {
                            let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                            for i in 0..keys {
                                out[i] = scale * y[i] * (g[i] - dot);
                            }
                        }
                    });
                Ok(())
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, res.shape(), res.device())?))
    }
}

/// HF's `"gelu"`: `x · Φ(x)` with the exact (erf) normal CDF.
pub struct GeluErf;

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// erf by Abramowitz & Stegun 7.1.26 (absolute error 1.5·10⁻⁷, under 10⁻⁶ after f32
/// rounding: a few ulp of Φ = (1 + erf)/2): branch-free, so the loops vectorise, unlike
/// libm's `erff`.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-x * x)).copysign(x)
}

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = arg_f32(storage, layout)?;
        let mut dst = vec![0f32; x.len()];
        dst.par_chunks_mut(16384)
            .zip(x.par_chunks(16384))
            .for_each(|(out, x)| {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                }
            });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // d/dx x·Φ(x) = Φ(x) + x·φ(x).
        let arg = arg.contiguous()?;
        let grad_res = grad_res.contiguous()?;
        let mut dx = vec![0f32; arg.elem_count()];
        with_f32(&arg, |x| {
            with_f32(&grad_res, |g| {
                dx.par_chunks_mut(16384)
                    .zip(x.par_chunks(16384).zip(g.par_chunks(16384)))
                    .for_each(|(out, (x, g))| {
                        for i in 0..out.len() {
                            let v = x[i];
                            let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                            let pdf = FRAC_1_SQRT_2PI * exp(-0.5 * v * v);
                            out[i] = g[i] * (cdf + v * pdf);
                        }
                    });
                Ok(())
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// Whether the fused kernels apply: f32 on the CPU.
pub fn applies(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu) && x.dtype() == candle_core::DType::F32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::lora::SeededRng;
    use candle_core::{DType, Var};

    fn random(shape: &[usize], std: f64, seed: u64) -> Tensor {
        SeededRng::new(seed)
            .normal(shape, std, DType::F32, &Device::Cpu)
            .unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Checks the backward pass of `op` against central finite differences of
    /// `Σ op(x) ⊙ r` (r random) at every element of `x`, and its forward pass against
    /// `reference` (the composition of candle ops it replaces).
    fn check(
        x: &Tensor,
        op: impl Fn(&Tensor) -> Result<Tensor>,
        reference: impl Fn(&Tensor) -> Result<Tensor>,
    ) {
        let fused = op(x).unwrap();
        let composed = reference(x).unwrap();
        assert_eq!(fused.dims(), composed.dims());
        for (a, b) in values(&fused).iter().zip(values(&composed)) {
            assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "forward {a} vs {b}");
        }
        let r = random(fused.dims(), 1.0, 99);
        let var = Var::from_tensor(x).unwrap();
        let loss = (op(var.as_tensor()).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let analytic = values(grads.get(var.as_tensor()).expect("a gradient for x"));
        let r = values(&r);
        let objective = |x: &[f32]| -> f64 {
            let t = Tensor::from_slice(x, var.dims(), &Device::Cpu).unwrap();
            values(&op(&t).unwrap())
                .iter()
                .zip(&r)
                .map(|(&y, &r)| f64::from(y) * f64::from(r))
                .sum()
        };
        let base = values(x);
        let eps = 1e-2f32;
        for i in 0..base.len() {
            let (mut plus, mut minus) = (base.clone(), base.clone());
            plus[i] += eps;
            minus[i] -= eps;
            let numeric = (objective(&plus) - objective(&minus)) / (2.0 * f64::from(eps));
            let a = f64::from(analytic[i]);
            assert!(
                (a - numeric).abs() <= 5e-3 * (1.0 + numeric.abs()),
                "element {i}: backward {a}, finite differences {numeric}"
            );
        }
    }

    #[test]
    fn frozen_linear_gradient_matches_finite_differences() {
        let weight = random(&[5, 7], 0.5, 1);
        let bias = random(&[5], 0.5, 2);
        let x = random(&[2, 3, 7], 1.0, 3);
        for bias in [Some(bias), None] {
            check(
                &x,
                |x| {
                    x.apply_op1(FrozenLinear {
                        weight: weight.clone(),
                        bias: bias.clone(),
                    })
                },
                |x| {
                    let y = x.broadcast_matmul(&weight.t()?)?;
                    match &bias {
                        Some(b) => y.broadcast_add(b),
                        None => Ok(y),
                    }
                },
            );
        }
    }

    #[test]
    fn frozen_linear_asks_no_gradient_of_the_weight() {
        let weight = Var::from_tensor(&random(&[4, 6], 0.5, 1)).unwrap();
        let x = Var::from_tensor(&random(&[3, 6], 1.0, 2)).unwrap();
        let y = x
            .as_tensor()
            .apply_op1(FrozenLinear {
                weight: weight.as_tensor().clone(),
                bias: None,
            })
            .unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some());
        assert!(grads.get(weight.as_tensor()).is_none());
    }

    #[test]
    fn layer_norm_gradient_matches_finite_differences() {
        let weight = random(&[8], 0.5, 4).affine(1.0, 1.0).unwrap();
        let bias = random(&[8], 0.5, 5);
        // A large offset checks that the statistics stay accurate.
        let x = random(&[2, 3, 8], 1.0, 6).affine(1.0, 3.0).unwrap();
        check(
            &x,
            |x| {
                x.apply_op1(FrozenLayerNorm {
                    weight: weight.clone(),
                    bias: bias.clone(),
                    eps: 1e-12,
                })
            },
            |x| crate::model::ops::layer_norm_composed(x, &weight, &bias, 1e-12),
        );
    }

    #[test]
    fn masked_softmax_gradient_matches_finite_differences() {
        let attention_mask =
            Tensor::new(&[[1u32, 1, 1, 0, 0], [1, 1, 1, 1, 1]], &Device::Cpu).unwrap();
        let mask = crate::model::ops::additive_attention_mask(&attention_mask, DType::F32).unwrap();
        let scores = random(&[2, 2, 3, 5], 2.0, 7);
        let scale = 0.5;
        check(
            &scores,
            |x| {
                x.apply_op1(ScaledMaskedSoftmax {
                    mask: mask.clone(),
                    scale,
                })
            },
            |x| candle_nn::ops::softmax(&(x * scale)?.broadcast_add(&mask)?, D::Minus1),
        );
        // Masked keys get no probability.
        let probs = scores
            .apply_op1(ScaledMaskedSoftmax { mask, scale })
            .unwrap();
        let first = probs
            .get(0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for row in first.chunks(5) {
            assert_eq!(&row[3..], &[0.0, 0.0]);
        }
    }

    #[test]
    fn exp_and_erf_are_accurate_to_f32() {
        // −87..88: the range where f32 eˣ is a normal number.
        for i in -1740..=1760 {
            let x = i as f32 * 0.05;
            let (fast, exact) = (exp(x), x.exp());
            assert!(
                (fast - exact).abs() <= 1e-6 * exact,
                "exp({x}): {fast} vs {exact}"
            );
            let (fast, exact) = (erf(x * 0.03), candle_core::cpu::erf::erf_f32(x * 0.03));
            assert!((fast - exact).abs() <= 1e-6, "erf({x}): {fast} vs {exact}");
        }
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(-100.0), 0.0);
    }

    #[test]
    fn gelu_gradient_matches_finite_differences() {
        let x = random(&[4, 9], 2.0, 8);
        check(&x, |x| x.apply_op1(GeluErf), |x| x.gelu_erf());
    }
}
