//! An encoder with its masked-language-model head, every parameter trainable: what
//! `dnatune pretrain` trains and saves.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use crate::model::bert::LoadedBert;
use crate::model::config::{Family, ModelConfig, ModelError};
use crate::model::dnabert2::{self, LoadedDnabert2};
use crate::model::encoder::Encoder;
use crate::model::esm::{self, EsmLmHead, LoadedEsm};
use crate::model::heads::BertMlmHead;
use crate::model::load::Weights;

/// The family's MLM head (`cls.predictions` or `lm_head`).
#[derive(Debug, Clone)]
enum MlmHead {
    Bert(BertMlmHead),
    Esm(EsmLmHead),
}

/// An encoder plus MLM head whose parameters are all [`Var`]s.
#[derive(Debug, Clone)]
pub struct MaskedLm {
    pub family: Family,
    pub encoder: Encoder,
    head: MlmHead,
    weights: Weights,
}

impl MaskedLm {
    /// Builds the model of the folder `dir` on `device`. With `from_scratch = Some(seed)` the
    /// folder's weights are ignored (only `config.json` counts) and every parameter is
    /// initialised as `transformers` does (N(0, initializer_range²), biases 0, norms 1).
    pub fn load(
        dir: &Path,
        device: &Device,
        from_scratch: Option<u64>,
    ) -> Result<Self, ModelError> {
        let config = ModelConfig::from_dir(dir)?;
        let weights = match from_scratch {
            Some(seed) => {
                let weights = Weights::from_tensors(HashMap::new(), dir.display().to_string());
                let std = config
                    .json
                    .get("initializer_range")
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or(0.02);
                weights.init_missing_randomly(seed, std);
                weights
            }
            None => Weights::from_dir(dir)?,
        };
        weights.make_trainable();
        let dtype = DType::F32;
        let family = config.family;
        let (encoder, head) = match family {
            Family::Dnabert | Family::GenaLm => {
                let loaded =
                    LoadedBert::from_weights(config.bert()?, weights.clone(), dtype, device)?;
                let head = BertMlmHead::load(
                    &loaded.weights,
                    &loaded.var_builder(),
                    &loaded.config,
                    &loaded.model.embeddings.word_embeddings,
                )?;
                (Encoder::Bert(loaded.model), MlmHead::Bert(head))
            }
            Family::Dnabert2 => {
                let cfg = dnabert2::Config::from_model_config(&config)?;
                let loaded = LoadedDnabert2::from_weights(cfg, weights.clone(), dtype, device)?;
                let head = loaded.mlm_head()?;
                (Encoder::Dnabert2(loaded.model), MlmHead::Bert(head))
            }
            Family::NucleotideTransformerV1 | Family::NucleotideTransformerV2 => {
                let cfg = esm::Config::from_model_config(&config)?;
                let loaded = LoadedEsm::from_weights(cfg, weights.clone(), dtype, device)?;
                let head = loaded.mlm_head()?;
                (Encoder::Esm(loaded.model), MlmHead::Esm(head))
            }
        };
        Ok(Self {
            family,
            encoder,
            head,
            weights,
        })
    }

    /// Vocabulary logits `[batch, tokens, vocab]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<Tensor, ModelError> {
        self.head(&self.hidden(input_ids, attention_mask)?)
    }

    /// Vocabulary logits `[positions, vocab]` at the flat positions (`row · tokens + column`)
    /// only: the head, a third of a small model's work, runs on the masked tokens alone.
    pub fn forward_at(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        positions: &Tensor,
    ) -> Result<Tensor, ModelError> {
        let hidden = self.hidden(input_ids, attention_mask)?;
        let width = hidden.dim(candle_core::D::Minus1)?;
        self.head(&hidden.reshape(((), width))?.index_select(positions, 0)?)
    }

    fn hidden(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor, ModelError> {
        Ok(self
            .encoder
            .forward(input_ids, attention_mask)?
            .last_hidden_state)
    }

    fn head(&self, hidden: &Tensor) -> Result<Tensor, ModelError> {
        match &self.head {
            MlmHead::Bert(head) => head.forward(hidden),
            MlmHead::Esm(head) => head.forward(hidden),
        }
    }

    /// Every parameter, by checkpoint name (tied weights once).
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.weights.trainable_vars()
    }

    /// Parameters that were created rather than read (from scratch: all of them).
    pub fn initialized(&self) -> Vec<String> {
        self.weights.report().initialized
    }

    /// The checkpoint's tensors with the current parameter values, f32 on the CPU, named as
    /// the checkpoint names them (what `model.safetensors` holds).
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>, ModelError> {
        let vars: HashMap<String, Var> = self.vars().into_iter().collect();
        let mut tensors = HashMap::new();
        for name in self.weights.names() {
            let tensor = match vars.get(&name) {
                Some(var) => var.as_tensor().detach(),
                None => match self.weights.peek(&name) {
                    Some(tensor) => tensor,
                    None => continue,
                },
            };
            tensors.insert(name, tensor.to_dtype(DType::F32)?.to_device(&Device::Cpu)?);
        }
        Ok(tensors)
    }
}
