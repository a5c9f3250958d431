//! AdamW as `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments), with weight
//! decay off for biases, and global-norm gradient clipping as `clip_grad_norm_`.

use candle_core::{Tensor, Var};

/// One trainable tensor and its optimizer state.
struct Param {
    name: String,
    var: Var,
    decay: bool,
    first_moment: Tensor,
    second_moment: Tensor,
}

pub struct AdamW {
    params: Vec<Param>,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    weight_decay: f64,
    step: u64,
}

impl AdamW {
    /// `vars` as (name, var); names ending in `.bias` get no weight decay (the trainable
    /// tensors here are LoRA matrices and head projections: no LayerNorm weights).
    pub fn new(
        vars: Vec<(String, Var)>,
        beta1: f64,
        beta2: f64,
        epsilon: f64,
        weight_decay: f64,
    ) -> candle_core::Result<Self> {
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                Ok(Param {
                    decay: !(name.ends_with(".bias")
                        || name.contains("LayerNorm")
                        || name.contains("layer_norm")),
                    first_moment: var.zeros_like()?,
                    second_moment: var.zeros_like()?,
                    name,
                    var,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(AdamW {
            params,
            beta1,
            beta2,
            epsilon,
            weight_decay,
            step: 0,
        })
    }

    /// Applies one update with `grads` (same order as the vars) at learning rate `lr`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> candle_core::Result<()> {
        self.step += 1;
        let correction1 = 1.0 - self.beta1.powi(self.step as i32);
        let correction2 = 1.0 - self.beta2.powi(self.step as i32);
        for (param, grad) in self.params.iter_mut().zip(grads) {
            let theta = param.var.as_tensor().detach();
            param.first_moment =
                ((&param.first_moment * self.beta1)? + (grad * (1.0 - self.beta1))?)?;
            param.second_moment =
                ((&param.second_moment * self.beta2)? + (grad.sqr()? * (1.0 - self.beta2))?)?;
            let m_hat = (&param.first_moment / correction1)?;
            let v_hat = (&param.second_moment / correction2)?;
            let decayed = if param.decay && self.weight_decay > 0.0 {
                (&theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta
            };
            let update = (m_hat / (v_hat.sqrt()? + self.epsilon)?)?;
            param.var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The moment estimates as named tensors (`NAME.exp_avg`, `NAME.exp_avg_sq`, PyTorch's
    /// names), to save with a checkpoint that training can resume from.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .flat_map(|p| {
                [
                    (format!("{}.exp_avg", p.name), p.first_moment.clone()),
                    (format!("{}.exp_avg_sq", p.name), p.second_moment.clone()),
                ]
            })
            .collect()
    }

    /// Restores the state [`Self::state_tensors`] saved after `step` steps. Every parameter's
    /// moments must be there with the parameter's shape.
    pub fn load_state(
        &mut self,
        step: u64,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), String> {
        for param in &mut self.params {
            for (suffix, slot) in [
                ("exp_avg", &mut param.first_moment),
                ("exp_avg_sq", &mut param.second_moment),
            ] {
                let name = format!("{}.{suffix}", param.name);
                let saved = tensors
                    .get(&name)
                    .ok_or_else(|| format!("the optimizer state lacks {name}"))?;
                if saved.dims() != param.var.dims() {
                    return Err(format!(
                        "{name} has shape {:?}, the parameter {:?}",
                        saved.dims(),
                        param.var.dims()
                    ));
                }
                *slot = saved
                    .to_dtype(param.var.dtype())
                    .and_then(|t| t.to_device(param.var.device()))
                    .map_err(|e| format!("{name}: {e}"))?;
            }
        }
        self.step = step;
        Ok(())
    }

    /// Trainable tensors currently held, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.params.iter().map(|p| &p.var)
    }
}

/// The global L2 norm of `grads`; when it exceeds `max_norm` every gradient is scaled by
/// `max_norm / (norm + 1e-6)` (PyTorch's `clip_grad_norm_`). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: Option<f64>) -> candle_core::Result<f64> {
    let mut sum_sq = 0f64;
    for grad in grads.iter() {
        sum_sq += grad
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = sum_sq.sqrt();
    if let Some(max_norm) = max_norm {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for grad in grads.iter_mut() {
                *grad = (&*grad * coef)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn one_step_matches_the_adamw_formula() {
        // θ = [1, −2], g = [0.5, 0.5], lr 0.1, wd 0.1: first step m̂ = g, v̂ = g², so the
        // update is lr · g/(|g| + ε) ≈ 0.1 · sign(g); decay multiplies θ by 1 − 0.01 first.
        let device = Device::Cpu;
        let weight = Var::new(&[1.0f32, -2.0], &device).unwrap();
        let bias = Var::new(&[1.0f32], &device).unwrap();
        let mut adam = AdamW::new(
            vec![
                ("w.weight".into(), weight.clone()),
                ("w.bias".into(), bias.clone()),
            ],
            0.9,
            0.999,
            1e-8,
            0.1,
        )
        .unwrap();
        let grads = [
            Tensor::new(&[0.5f32, 0.5], &device).unwrap(),
            Tensor::new(&[-1.0f32], &device).unwrap(),
        ];
        adam.step(&grads, 0.1).unwrap();
        let w = weight.as_tensor().to_vec1::<f32>().unwrap();
        assert!((w[0] - (0.99 - 0.1)).abs() < 1e-6, "{w:?}");
        assert!((w[1] - (-1.98 - 0.1)).abs() < 1e-6, "{w:?}");
        // No decay on the bias: 1 + 0.1.
        let b = bias.as_tensor().to_vec1::<f32>().unwrap();
        assert!((b[0] - 1.1).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let device = Device::Cpu;
        let mut grads = vec![
            Tensor::new(&[3.0f32], &device).unwrap(),
            Tensor::new(&[4.0f32], &device).unwrap(),
        ];
        let norm = clip_grad_norm(&mut grads, Some(1.0)).unwrap();
        assert!((norm - 5.0).abs() < 1e-9);
        let a = grads[0].to_vec1::<f32>().unwrap()[0];
        let b = grads[1].to_vec1::<f32>().unwrap()[0];
        assert!(((a * a + b * b).sqrt() - 1.0).abs() < 1e-5);
        let mut small = vec![Tensor::new(&[0.3f32], &device).unwrap()];
        clip_grad_norm(&mut small, Some(1.0)).unwrap();
        assert_eq!(small[0].to_vec1::<f32>().unwrap()[0], 0.3);
    }
}
