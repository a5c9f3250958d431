//! The gradient part of one optimizer step, shared by [`super::train`] and the speed benchmark
//! (`benches/lora_speed.rs`) so that what is measured is what users run.

use candle_core::{DType, Device, Tensor, Var, D};

use crate::model::classifier::{ClassifierError, SequenceClassifier};
use crate::predict::batch_tensors;
use crate::tokenize::Encoding;

/// One forward pass worth of training sequences.
pub struct MicroBatch<'a> {
    pub encodings: Vec<&'a Encoding>,
    pub labels: Vec<u32>,
    /// Loss weight of each sequence, already divided by the step's total weight.
    pub weights: Vec<f32>,
}

/// Forward and backward over `micro_batches`; returns the gradients of `vars` (in order)
/// summed over them, and the summed loss. Each micro-batch contributes its share of the
/// step's weighted mean loss, so accumulation gives the same gradient as one large batch.
pub fn accumulate_gradients<'a>(
    classifier: &SequenceClassifier,
    vars: &[(String, Var)],
    micro_batches: impl IntoIterator<Item = MicroBatch<'a>>,
    pad_id: u32,
    device: &Device,
) -> Result<(Vec<Tensor>, f64), ClassifierError> {
    let mut grads: Option<Vec<Tensor>> = None;
    let mut step_loss = 0f64;
    for micro in micro_batches {
        let (ids, mask) = batch_tensors(&micro.encodings, pad_id, device)?;
        let logits = classifier.forward(&ids, &mask, true)?;
        let loss = weighted_nll_sum(&logits, &micro.labels, &micro.weights, device)?;
        step_loss += f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        let store = loss.backward()?;
        let micro_grads = vars
            .iter()
            .map(|(_, var)| match store.get(var.as_tensor()) {
                Some(grad) => Ok(grad.clone()),
                None => var.zeros_like(),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        grads = Some(match grads {
            None => micro_grads,
            Some(acc) => acc
                .iter()
                .zip(&micro_grads)
                .map(|(a, g)| a + g)
                .collect::<candle_core::Result<Vec<_>>>()?,
        });
    }
    Ok((grads.unwrap_or_default(), step_loss))
}

/// `Σ wᵢ · (−log softmax(logits)ᵢ[labelᵢ])` with the weights already divided by the step's
/// total weight (torch's weighted-mean cross-entropy, split across micro-batches).
fn weighted_nll_sum(
    logits: &Tensor,
    labels: &[u32],
    weights: &[f32],
    device: &Device,
) -> candle_core::Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let labels = Tensor::from_slice(labels, (labels.len(), 1), device)?;
    let picked = log_probs.gather(&labels, 1)?.squeeze(1)?;
    let weights = Tensor::from_slice(weights, weights.len(), device)?;
    (picked * weights)?.sum_all()?.neg()
}
