//! One entry point over the families: read a model folder, detect its family and build the
//! matching encoder. Front ends (`embed`, training, the app) go through this.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

pub use super::bert::{EncoderOutput, Staged};

use super::bert::{BertModel, LoadedBert};
use super::config::{Family, ModelConfig, ModelError};
use super::dnabert2::{self, Dnabert2Model, LoadedDnabert2};
use super::esm::{self, EsmModel, LoadedEsm};
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

impl Encoder {
    /// Runs the encoder on right-padded `input_ids` / `attention_mask` `[batch, tokens]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<EncoderOutput, ModelError> {
        match self {
            Encoder::Bert(model) => model.forward(input_ids, attention_mask),
            Encoder::Dnabert2(model) => model.forward(input_ids, attention_mask),
            Encoder::Esm(model) => model.forward(input_ids, attention_mask),
        }
    }

    /// The forward pass in stages, for gradient checkpointing: [`Self::begin`] (embeddings),
    /// [`Self::layer`] for each of [`Self::num_layers`], then [`Self::finish`]; together they
    /// are exactly [`Self::forward`].
    pub fn begin(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Staged, ModelError> {
        match self {
            Encoder::Bert(model) => model.begin(input_ids, attention_mask),
            Encoder::Dnabert2(model) => model.begin(input_ids, attention_mask),
            Encoder::Esm(model) => model.begin(input_ids, attention_mask),
        }
    }

    pub fn num_layers(&self) -> usize {
        match self {
            Encoder::Bert(model) => model.layers.len(),
            Encoder::Dnabert2(model) => model.layers.len(),
            Encoder::Esm(model) => model.layers.len(),
        }
    }

    /// Layer `index` on the hidden states `x` (see [`Self::begin`]).
    pub fn layer(&self, index: usize, x: &Tensor, staged: &Staged) -> Result<Tensor, ModelError> {
        Ok(match self {
            Encoder::Bert(model) => model.layer(index, x, staged)?,
            Encoder::Dnabert2(model) => model.layer(index, x, staged)?,
            Encoder::Esm(model) => model.layer(index, x, staged)?,
        })
    }

    /// The last layer's output into `last_hidden_state` (see [`Self::begin`]).
    pub fn finish(&self, x: Tensor) -> Result<Tensor, ModelError> {
        Ok(match self {
            Encoder::Bert(model) => model.finish(x)?,
            Encoder::Dnabert2(_) => x,
            Encoder::Esm(model) => model.finish(x)?,
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
            let loaded = LoadedBert::from_weights(config.bert()?, weights.clone(), dtype, device)?;
            (Encoder::Bert(loaded.model), loaded.config.hidden_size)
        }
        Family::Dnabert2 => {
            let cfg = dnabert2::Config::from_model_config(&config)?;
            let loaded = LoadedDnabert2::from_weights(cfg, weights.clone(), dtype, device)?;
            (Encoder::Dnabert2(loaded.model), loaded.config.hidden_size)
        }
        Family::NucleotideTransformerV1 | Family::NucleotideTransformerV2 => {
            let cfg = esm::Config::from_model_config(&config)?;
            let loaded = LoadedEsm::from_weights(cfg, weights.clone(), dtype, device)?;
            (Encoder::Esm(loaded.model), loaded.config.hidden_size)
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
