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
/// With `gradient_checkpointing` each layer's activations are recomputed in the backward
/// pass instead of kept (same gradients, less memory; see [`checkpointed_backward`]).
pub fn accumulate_gradients<'a>(
    classifier: &SequenceClassifier,
    vars: &[(String, Var)],
    micro_batches: impl IntoIterator<Item = MicroBatch<'a>>,
    pad_id: u32,
    device: &Device,
    gradient_checkpointing: bool,
) -> Result<(Vec<Tensor>, f64), ClassifierError> {
    let mut grads: Option<Vec<Tensor>> = None;
    let mut step_loss = 0f64;
    for micro in micro_batches {
        let (ids, mask) = batch_tensors(&micro.encodings, pad_id, device)?;
        let (micro_grads, loss) = batch_gradients(
            classifier,
            vars,
            &ids,
            &mask,
            &micro.labels,
            &micro.weights,
            gradient_checkpointing,
        )?;
        step_loss += f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
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

/// The gradients of `vars` (zeros for any the loss does not reach) and the loss
/// `Σ wᵢ · CE(logitsᵢ, labelᵢ)` of one padded batch, in training mode.
pub fn batch_gradients(
    classifier: &SequenceClassifier,
    vars: &[(String, Var)],
    ids: &Tensor,
    mask: &Tensor,
    labels: &[u32],
    weights: &[f32],
    gradient_checkpointing: bool,
) -> Result<(Vec<Tensor>, Tensor), ClassifierError> {
    if gradient_checkpointing {
        return checkpointed_backward(classifier, vars, ids, mask, labels, weights);
    }
    let logits = classifier.forward(ids, mask, true)?;
    let loss = weighted_nll_sum(&logits, labels, weights)?;
    let store = loss.backward()?;
    let grads = vars
        .iter()
        .map(|(_, var)| match store.get(var.as_tensor()) {
            Some(grad) => Ok(grad.clone()),
            None => var.zeros_like(),
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((grads, loss))
}

/// One micro-batch's gradients with activation checkpointing: a forward pass that keeps only
/// each layer's input, the head's backward, then for each layer from the top: recompute it
/// from its input (replaying its dropout masks) and backpropagate the incoming gradient
/// through it. Peak activation memory is one layer's graph plus one hidden state per layer.
fn checkpointed_backward(
    classifier: &SequenceClassifier,
    vars: &[(String, Var)],
    ids: &Tensor,
    mask: &Tensor,
    labels: &[u32],
    weights: &[f32],
) -> Result<(Vec<Tensor>, Tensor), ClassifierError> {
    classifier.set_training(true);
    let encoder = classifier.encoder();
    let dropout = classifier.lora_mode();
    let staged = encoder.begin(ids, mask)?;
    let layers = encoder.num_layers();
    let mut inputs = Vec::with_capacity(layers);
    let mut dropout_states = Vec::with_capacity(layers);
    let mut x = staged.hidden.detach();
    for index in 0..layers {
        dropout_states.push(dropout.rng_state());
        let next = encoder.layer(index, &x, &staged)?.detach();
        inputs.push(std::mem::replace(&mut x, next));
    }

    let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
    let mut collect = |store: &candle_core::backprop::GradStore| -> candle_core::Result<()> {
        for ((_, var), slot) in vars.iter().zip(grads.iter_mut()) {
            if let Some(grad) = store.get(var.as_tensor()) {
                *slot = Some(match slot.take() {
                    Some(sum) => (sum + grad)?,
                    None => grad.clone(),
                });
            }
        }
        Ok(())
    };

    let top = Var::from_tensor(&x)?;
    let last_hidden = encoder.finish(top.as_tensor().clone())?;
    let logits = classifier.head_logits(&last_hidden, true)?;
    let loss = weighted_nll_sum(&logits, labels, weights)?;
    let store = loss.backward()?;
    collect(&store)?;
    let mut upstream = match store.get(top.as_tensor()) {
        Some(grad) => grad.clone(),
        None => top.zeros_like()?,
    };
    drop(store);

    let after = dropout.rng_state();
    for index in (0..layers).rev() {
        dropout.set_rng_state(dropout_states[index].clone());
        let input = Var::from_tensor(&inputs[index])?;
        let output = encoder.layer(index, input.as_tensor(), &staged)?;
        // d/dθ Σ(output · upstream) is the chain rule's contribution of this layer.
        let store = (output * &upstream)?.sum_all()?.backward()?;
        collect(&store)?;
        upstream = match store.get(input.as_tensor()) {
            Some(grad) => grad.clone(),
            None => input.zeros_like()?,
        };
    }
    dropout.set_rng_state(after);

    let grads = grads
        .into_iter()
        .zip(vars)
        .map(|(grad, (_, var))| grad.map_or_else(|| var.zeros_like(), Ok))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((grads, loss))
}

/// `Σ wᵢ · (−log softmax(logits)ᵢ[labelᵢ])` with the weights already divided by the step's
/// total weight (torch's weighted-mean cross-entropy, split across micro-batches).
fn weighted_nll_sum(
    logits: &Tensor,
    labels: &[u32],
    weights: &[f32],
) -> candle_core::Result<Tensor> {
    let device = logits.device();
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let labels = Tensor::from_slice(labels, (labels.len(), 1), device)?;
    let picked = log_probs.gather(&labels, 1)?.squeeze(1)?;
    let weights = Tensor::from_slice(weights, weights.len(), device)?;
    (picked * weights)?.sum_all()?.neg()
}
