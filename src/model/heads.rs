//! Heads on top of the BERT-style encoders: the masked-LM head, the pooler and the
//! sequence classifier, named as in `BertForMaskedLM` / `BertForSequenceClassification`.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{Init, VarBuilder};

use super::bert::LayerNorm;
use super::config::{Activation, BertConfig, ModelError};
use super::load::Weights;
use super::ops;

/// `cls.predictions`: `decoder(LN(act(transform.dense(h)))) + bias`, the decoder tied to the
/// word embeddings unless the config unties them.
#[derive(Debug, Clone)]
pub struct BertMlmHead {
    pub transform: ops::Linear,
    pub transform_ln: LayerNorm,
    activation: Activation,
    /// `[vocab, hidden]`.
    pub decoder_weight: Tensor,
    /// `[vocab]`.
    pub decoder_bias: Tensor,
}

impl BertMlmHead {
    /// Loads `cls.predictions.*`. `word_embeddings` is the encoder's table (the tied decoder).
    pub fn load(
        weights: &Weights,
        vb: &VarBuilder,
        cfg: &BertConfig,
        word_embeddings: &Tensor,
    ) -> Result<Self, ModelError> {
        let hidden = cfg.hidden_size;
        let activation = cfg.activation().ok_or_else(|| {
            ModelError::InvalidInput(format!("unsupported hidden_act \"{}\"", cfg.hidden_act))
        })?;
        let head = vb.pp("cls.predictions");
        let transform = ops::Linear::load(&head, "transform.dense", hidden, hidden, true)?;
        let transform_ln =
            LayerNorm::load(&head, "transform.LayerNorm", hidden, cfg.layer_norm_eps)?;

        const DECODER_WEIGHT: &str = "cls.predictions.decoder.weight";
        let decoder_weight = if cfg.tie_word_embeddings {
            // transformers ties the decoder to the embeddings, overriding a stored copy.
            weights.mark_used(DECODER_WEIGHT);
            word_embeddings.clone()
        } else {
            head.get((cfg.vocab_size, hidden), "decoder.weight")?
        };
        // `cls.predictions.bias` is the parameter; `decoder.bias` is its tied alias, stored
        // by some checkpoints (old DNABERT .bin, GENA) and absent from others.
        let decoder_bias = if weights.contains("cls.predictions.bias") {
            weights.mark_used("cls.predictions.decoder.bias");
            head.get(cfg.vocab_size, "bias")?
        } else {
            head.get(cfg.vocab_size, "decoder.bias")?
        };
        Ok(Self {
            transform,
            transform_ln,
            activation,
            decoder_weight,
            decoder_bias,
        })
    }

    /// Logits `[.., vocab]` for hidden states `[.., hidden]`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor, ModelError> {
        let transformed = self
            .transform_ln
            .forward(&self.activation.forward(&self.transform.forward(hidden)?)?)?;
        Ok(ops::linear(
            &transformed,
            &self.decoder_weight,
            Some(&self.decoder_bias),
        )?)
    }
}

/// `bert.pooler`: `tanh(dense(h[:, 0]))`.
#[derive(Debug, Clone)]
pub struct BertPooler {
    pub dense: ops::Linear,
}

impl BertPooler {
    /// Loads `bert.pooler.dense`; a Hub MaskedLM checkpoint may lack it, then it is initialised
    /// as transformers does (normal(0, initializer_range), zero bias) and listed in the
    /// weights' [`crate::model::load::LoadReport::initialized`].
    pub fn load(weights: &Weights, vb: &VarBuilder, cfg: &BertConfig) -> Result<Self, ModelError> {
        let hidden = cfg.hidden_size;
        weights.init_if_missing(
            "bert.pooler.dense.weight",
            (hidden, hidden),
            Init::Randn {
                mean: 0.0,
                stdev: cfg.initializer_range,
            },
        )?;
        weights.init_if_missing("bert.pooler.dense.bias", hidden, Init::Const(0.0))?;
        Ok(Self {
            dense: ops::Linear::load(vb, "bert.pooler.dense", hidden, hidden, true)?,
        })
    }

    /// `[batch, tokens, hidden]` → `[batch, hidden]` from the first (`[CLS]`) token.
    pub fn forward(&self, last_hidden_state: &Tensor) -> Result<Tensor, ModelError> {
        let first = last_hidden_state.i((.., 0))?;
        Ok(self.dense.forward(&first)?.tanh()?)
    }
}

/// `BertForSequenceClassification`'s head: `classifier(pooler(h))` (dropout is off in eval).
#[derive(Debug, Clone)]
pub struct BertClassificationHead {
    pub pooler: BertPooler,
    /// `classifier`, `[num_labels, hidden]`.
    pub classifier: ops::Linear,
}

impl BertClassificationHead {
    /// Loads the pooler and `classifier.*`; the classifier is initialised when the checkpoint
    /// has none (the usual case: it is what fine-tuning trains).
    pub fn load(
        weights: &Weights,
        vb: &VarBuilder,
        cfg: &BertConfig,
        num_labels: usize,
    ) -> Result<Self, ModelError> {
        let pooler = BertPooler::load(weights, vb, cfg)?;
        let hidden = cfg.hidden_size;
        weights.init_if_missing(
            "classifier.weight",
            (num_labels, hidden),
            Init::Randn {
                mean: 0.0,
                stdev: cfg.initializer_range,
            },
        )?;
        weights.init_if_missing("classifier.bias", num_labels, Init::Const(0.0))?;
        let classifier = ops::Linear::load(vb, "classifier", hidden, num_labels, true)?;
        Ok(Self { pooler, classifier })
    }

    /// A head with the classifier given as tensors (`classifier.weight` `[labels, hidden]`,
    /// `classifier.bias` `[labels]`), e.g. from a saved adapter.
    pub fn with_classifier(
        pooler: BertPooler,
        weight: &Tensor,
        bias: &Tensor,
    ) -> Result<Self, ModelError> {
        let (dtype, device) = (pooler.dense.weight.dtype(), pooler.dense.weight.device());
        let hidden = pooler.dense.weight.dim(0)?;
        let (num_labels, in_dim) = weight.dims2()?;
        if in_dim != hidden || bias.dims() != [num_labels] {
            return Err(ModelError::ShapeMismatch {
                name: "classifier".to_string(),
                expected: vec![num_labels, hidden],
                found: weight.dims().to_vec(),
            });
        }
        let classifier = ops::Linear {
            name: "classifier".to_string(),
            weight: to(weight, dtype, device)?,
            bias: Some(to(bias, dtype, device)?),
            lora: None,
        };
        Ok(Self { pooler, classifier })
    }

    pub fn num_labels(&self) -> usize {
        self.classifier.weight.dims().first().copied().unwrap_or(0)
    }

    /// Logits `[batch, num_labels]` from the encoder's `last_hidden_state`.
    pub fn forward(&self, last_hidden_state: &Tensor) -> Result<Tensor, ModelError> {
        let pooled = self.pooler.forward(last_hidden_state)?;
        Ok(self.classifier.forward(&pooled)?)
    }
}

fn to(tensor: &Tensor, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    tensor.to_dtype(dtype)?.to_device(device)
}
