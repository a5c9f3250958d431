//! One entry point over the families: read a model folder, detect its family and build the
//! matching encoder. Front ends (`embed`, training, the app) go through this.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::bert::BertModel;
use super::config::{Family, ModelConfig, ModelError};
use super::dnabert2::{self, Dnabert2Model};
use super::esm::{self, EsmModel};
use super::load::{LoadReport, Weights};
use super::ops::Linear;

/// The encoder of any supported family.
#[derive(Debug, Clone)]
pub enum Encoder {
    /// DNABERT and GENA-LM.
    Bert(BertModel),
    Dnabert2(Dnabert2Model),
    /// Nucleotide Transformer v1 and v2.
    Esm(EsmModel),
}

/// What every family's forward pass returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// The embedding output, then each layer's output before any final norm.
    pub hidden_states: Vec<Tensor>,
    /// The encoder output, after the final norm when the family has one: `[batch, tokens, hidden]`.
    pub last_hidden_state: Tensor,
}

impl Encoder {
    /// Runs the encoder on right-padded `input_ids` / `attention_mask` `[batch, tokens]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<EncoderOutput, ModelError> {
        Ok(match self {
            Encoder::Bert(model) => {
                let out = model.forward(input_ids, attention_mask)?;
                EncoderOutput {
                    hidden_states: out.hidden_states,
                    last_hidden_state: out.last_hidden_state,
                }
            }
            Encoder::Dnabert2(model) => {
                let out = model.forward(input_ids, attention_mask)?;
                EncoderOutput {
                    hidden_states: out.hidden_states,
                    last_hidden_state: out.last_hidden_state,
                }
            }
            Encoder::Esm(model) => {
                let out = model.forward(input_ids, attention_mask)?;
                EncoderOutput {
                    hidden_states: out.hidden_states,
                    last_hidden_state: out.last_hidden_state,
                }
            }
        })
    }

    /// Every projection of the encoder, named by its Hugging Face module path.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        match self {
            Encoder::Bert(model) => model.linears_mut(),
            Encoder::Dnabert2(model) => model.linears_mut(),
            Encoder::Esm(model) => model.linears_mut(),
        }
    }
}

/// A model folder read into an encoder.
#[derive(Debug, Clone)]
pub struct LoadedEncoder {
    pub dir: PathBuf,
    pub family: Family,
    pub encoder: Encoder,
    /// The checkpoint's tensors (heads are built from them) and the record of what was used.
    pub weights: Weights,
    pub hidden_size: usize,
}

impl LoadedEncoder {
    /// Tensors the checkpoint lacked (initialised) and tensors nothing used.
    pub fn report(&self) -> LoadReport {
        self.weights.report()
    }
}

/// Reads `dir` (a local folder in Hugging Face layout), detects the family from `config.json`
/// and builds its encoder in `dtype` on `device`.
pub fn load_encoder(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<LoadedEncoder, ModelError> {
    let config = ModelConfig::from_dir(dir)?;
    let weights = Weights::from_dir(dir)?;
    let family = config.family;
    let (encoder, hidden_size) = match family {
        Family::Dnabert | Family::GenaLm => {
            let loaded = super::bert::LoadedBert::from_weights(
                config.bert()?,
                weights.clone(),
                dtype,
                device,
            )?;
            (Encoder::Bert(loaded.model), loaded.config.hidden_size)
        }
        Family::Dnabert2 => {
            let cfg: dnabert2::Config = config.parse()?;
            weights.add_base_prefix_if_missing("bert", "embeddings.word_embeddings.weight");
            let model = Dnabert2Model::load(weights.var_builder(dtype, device), &cfg)?;
            (Encoder::Dnabert2(model), cfg.hidden_size)
        }
        Family::NucleotideTransformerV1 | Family::NucleotideTransformerV2 => {
            let cfg: esm::Config = config.parse()?;
            weights.add_base_prefix_if_missing("esm", "embeddings.word_embeddings.weight");
            let model = EsmModel::load(weights.var_builder(dtype, device), &cfg)?;
            (Encoder::Esm(model), cfg.hidden_size)
        }
    };
    Ok(LoadedEncoder {
        dir: dir.to_path_buf(),
        family,
        encoder,
        weights,
        hidden_size,
    })
}
