//! Reading a model folder's weights: safetensors (single or sharded), PyTorch zip `.bin`
//! (single or sharded), any float dtype. [`Weights`] keeps track of which tensors a model
//! used and which it had to initialise, so that the caller can report both and save the
//! initialised ones with the adapter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use super::config::ModelError;

/// The weight files a Hub model folder may hold, in the order `transformers` prefers them.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
pub const SAFETENSORS_INDEX_FILE: &str = "model.safetensors.index.json";
pub const PYTORCH_FILE: &str = "pytorch_model.bin";
pub const PYTORCH_INDEX_FILE: &str = "pytorch_model.bin.index.json";

/// What happened to the checkpoint's tensors while a model was built from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors the checkpoint lacked and the model initialised (e.g. the pooler). They are not
    /// pretrained, so they must be saved with the fine-tuned adapter.
    pub initialized: Vec<String>,
    /// Tensors in the checkpoint that the model did not use (e.g. an ESM contact head).
    pub unused: Vec<String>,
}

/// Reads every tensor of a model folder, in its stored dtype, on the CPU.
///
/// Looks for `model.safetensors`, `model.safetensors.index.json`, `pytorch_model.bin`,
/// `pytorch_model.bin.index.json`, in that order.
pub fn read_model_dir(dir: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    let candidates = [
        SAFETENSORS_FILE,
        SAFETENSORS_INDEX_FILE,
        PYTORCH_FILE,
        PYTORCH_INDEX_FILE,
    ];
    for name in candidates {
        let path = dir.join(name);
        if path.is_file() {
            return match name {
                SAFETENSORS_INDEX_FILE | PYTORCH_INDEX_FILE => read_sharded(&path),
                _ => read_weight_file(&path),
            };
        }
    }
    Err(ModelError::NoWeights {
        dir: dir.to_path_buf(),
    })
}

/// Reads one weight file: `*.safetensors` by name, anything else by its first bytes
/// (torch zip, legacy pickle, else safetensors).
pub fn read_weight_file(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let read = file.read(&mut magic).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    drop(file);
    let weight_error = |e: candle_core::Error| ModelError::WeightFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // A safetensors file starts with its header length, which may begin with any byte.
    let named_safetensors = path.extension().is_some_and(|ext| ext == "safetensors");
    if named_safetensors {
        return candle_core::safetensors::load(path, &Device::Cpu).map_err(weight_error);
    }
    if read == 4 && &magic == b"PK\x03\x04" {
        // torch.save's zip format (PyTorch >= 1.6).
        let tensors = candle_core::pickle::read_all(path).map_err(weight_error)?;
        if tensors.is_empty() {
            return Err(ModelError::WeightFile {
                path: path.to_path_buf(),
                message: "the archive holds no tensors readable as a state_dict".to_string(),
            });
        }
        return Ok(tensors.into_iter().collect());
    }
    // A pickle stream starts with the PROTO opcode 0x80; that is the pre-1.6 torch format.
    if read >= 1 && magic[0] == 0x80 {
        return Err(ModelError::LegacyPickle {
            path: path.to_path_buf(),
        });
    }
    candle_core::safetensors::load(path, &Device::Cpu).map_err(weight_error)
}

/// Reads a sharded checkpoint from its `*.index.json` (`{"weight_map": {tensor: file}}`).
pub fn read_sharded(index_path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    #[derive(serde::Deserialize)]
    struct ShardIndex {
        weight_map: HashMap<String, String>,
    }
    let text = std::fs::read_to_string(index_path).map_err(|source| ModelError::Io {
        path: index_path.to_path_buf(),
        source,
    })?;
    let index: ShardIndex = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: index_path.to_path_buf(),
        source,
    })?;
    let dir = index_path.parent().unwrap_or(Path::new("."));
    let shards: BTreeSet<&String> = index.weight_map.values().collect();
    let mut tensors = HashMap::new();
    for shard in shards {
        let shard_path = dir.join(shard);
        if !shard_path.is_file() {
            return Err(ModelError::MissingShard {
                index: index_path.to_path_buf(),
                shard: shard_path,
            });
        }
        let shard_tensors = read_weight_file(&shard_path)?;
        // Keep only what the index assigns to this shard, so a tensor comes from one place.
        for (name, tensor) in shard_tensors {
            if index.weight_map.get(&name) == Some(shard) {
                tensors.insert(name, tensor);
            }
        }
    }
    if let Some(missing) = index
        .weight_map
        .keys()
        .find(|name| !tensors.contains_key(*name))
    {
        return Err(ModelError::WeightFile {
            path: dir.join(&index.weight_map[missing]),
            message: format!(
                "{} lists the tensor {missing} in this shard but the shard does not hold it",
                index_path.display()
            ),
        });
    }
    Ok(tensors)
}

/// Checkpoints converted from TensorFlow name LayerNorm parameters `gamma`/`beta`;
/// transformers renames them on load, and so do we.
fn modern_parameter_name(name: String) -> String {
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name
    }
}

/// Non-parameter tensors a checkpoint may carry: never trained, never randomly initialised.
fn is_buffer(name: &str) -> bool {
    name.ends_with("inv_freq") || name.ends_with("position_ids")
}

/// FNV-1a of a tensor name: a per-tensor stream of the initialisation seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the bookkeeping usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
struct WeightsInner {
    /// Where the tensors came from, named in errors.
    source: String,
    tensors: Mutex<HashMap<String, Tensor>>,
    used: Mutex<BTreeSet<String>>,
    initialized: Mutex<BTreeSet<String>>,
    /// `Some` when every parameter a model reads becomes a trainable variable.
    trainable: Mutex<Option<BTreeMap<String, Var>>>,
    /// `Some(seed)`: tensors the checkpoint lacks are initialised as `transformers` does
    /// (a model trained from scratch).
    random_init: Mutex<Option<(u64, f64)>>,
}

/// A checkpoint's tensors (stored dtype, CPU) plus the record of what a model used.
/// Cheap to clone; clones share the record.
#[derive(Debug, Clone)]
pub struct Weights {
    inner: Arc<WeightsInner>,
}

impl Weights {
    /// Reads the weights of a Hub-layout model folder (see [`read_model_dir`]).
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        let tensors = read_model_dir(dir)?
            .into_iter()
            .map(|(name, tensor)| (modern_parameter_name(name), tensor))
            .collect();
        Ok(Self::from_tensors(tensors, dir.display().to_string()))
    }

    /// Wraps tensors that are already in memory; `source` names them in errors.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, source: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(WeightsInner {
                source: source.into(),
                tensors: Mutex::new(tensors),
                used: Mutex::new(BTreeSet::new()),
                initialized: Mutex::new(BTreeSet::new()),
                trainable: Mutex::new(None),
                random_init: Mutex::new(None),
            }),
        }
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    pub fn contains(&self, name: &str) -> bool {
        lock(&self.inner.tensors).contains_key(name)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.tensors).keys().cloned().collect();
        names.sort();
        names
    }

    /// The tensor as stored (no dtype or device change), marking it used.
    pub fn get_stored(&self, name: &str) -> Option<Tensor> {
        let tensor = lock(&self.inner.tensors).get(name).cloned();
        if tensor.is_some() {
            self.mark_used(name);
        }
        tensor
    }

    /// The tensor as stored, without recording it as used (for exporting, not building).
    pub fn peek(&self, name: &str) -> Option<Tensor> {
        lock(&self.inner.tensors).get(name).cloned()
    }

    /// The tensor converted to `dtype` on `device`, marking it used. In trainable mode (see
    /// [`Weights::make_trainable`]) a parameter comes back as the tensor of its variable, the
    /// same variable each time it is asked for (tied weights stay tied).
    pub fn get(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor, ModelError> {
        if let Some(var) = lock(&self.inner.trainable)
            .as_ref()
            .and_then(|vars| vars.get(name))
        {
            self.mark_used(name);
            return Ok(var.as_tensor().clone());
        }
        let tensor = self
            .get_stored(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                source_desc: self.inner.source.clone(),
            })?;
        let tensor = tensor.to_dtype(dtype)?.to_device(device)?;
        let mut trainable = lock(&self.inner.trainable);
        match trainable.as_mut() {
            Some(vars) if !is_buffer(name) => {
                let var = Var::from_tensor(&tensor)?;
                let tensor = var.as_tensor().clone();
                vars.insert(name.to_string(), var);
                Ok(tensor)
            }
            _ => Ok(tensor),
        }
    }

    /// From now on every parameter a model reads is a trainable variable (full-parameter
    /// training such as pretraining); buffers (rotary `inv_freq`, `position_ids`) stay
    /// constants.
    pub fn make_trainable(&self) {
        let mut trainable = lock(&self.inner.trainable);
        if trainable.is_none() {
            *trainable = Some(BTreeMap::new());
        }
    }

    /// The variables handed out in trainable mode, by checkpoint name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        lock(&self.inner.trainable)
            .as_ref()
            .map(|vars| vars.iter().map(|(n, v)| (n.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// From now on a parameter the checkpoint lacks is created as `transformers` initialises
    /// one — weights N(0, `std`²), biases 0, LayerNorm weights 1 — seeded by `seed` and the
    /// name, and recorded as initialised.
    pub fn init_missing_randomly(&self, seed: u64, std: f64) {
        *lock(&self.inner.random_init) = Some((seed, std));
    }

    /// Creates `name` when missing and random initialisation is on.
    fn init_randomly_if_missing(&self, name: &str, shape: &Shape) -> Result<(), ModelError> {
        let Some((seed, std)) = *lock(&self.inner.random_init) else {
            return Ok(());
        };
        if self.contains(name) || is_buffer(name) {
            return Ok(());
        }
        let is_norm = name.contains("LayerNorm")
            || name.contains("layer_norm")
            || name.contains("layernorm")
            || name.ends_with("_ln.weight")
            || name.contains(".ln.");
        let tensor = if name.ends_with("bias") {
            Tensor::zeros(shape, DType::F32, &Device::Cpu)?
        } else if is_norm {
            Tensor::ones(shape, DType::F32, &Device::Cpu)?
        } else {
            let mut rng = super::lora::SeededRng::new(seed ^ name_hash(name));
            rng.normal(shape.dims(), std, DType::F32, &Device::Cpu)?
        };
        self.insert(name, tensor);
        lock(&self.inner.initialized).insert(name.to_string());
        Ok(())
    }

    /// Adds or replaces a tensor (e.g. a classification head given by the caller).
    pub fn insert(&self, name: impl Into<String>, tensor: Tensor) {
        lock(&self.inner.tensors).insert(name.into(), tensor);
    }

    /// Records that a tensor was consumed without going through [`Weights::get`], e.g. a tied
    /// duplicate that equals a tensor the model did read.
    pub fn mark_used(&self, name: &str) {
        lock(&self.inner.used).insert(name.to_string());
    }

    /// When the checkpoint lacks `name`, creates it from `init` (f32, CPU) and records it as
    /// initialised. Returns whether it was missing.
    pub fn init_if_missing(
        &self,
        name: &str,
        shape: impl Into<Shape>,
        init: Init,
    ) -> Result<bool, ModelError> {
        if self.contains(name) {
            return Ok(false);
        }
        let tensor = init
            .var(shape, DType::F32, &Device::Cpu)?
            .as_tensor()
            .detach();
        self.insert(name, tensor);
        lock(&self.inner.initialized).insert(name.to_string());
        Ok(true)
    }

    /// Checkpoints saved from a bare base model (`BertModel`, `EsmModel`) lack the
    /// `bert.`/`esm.` prefix of the `*ForMaskedLM` names the models use. When the prefixed
    /// `probe` tensor is absent but the bare one exists, every tensor that is not a head
    /// (`cls.`, `lm_head.`, `classifier.`) gets the prefix. Returns whether it renamed.
    pub fn add_base_prefix_if_missing(&self, prefix: &str, probe: &str) -> bool {
        let prefixed = format!("{prefix}.{probe}");
        let mut tensors = lock(&self.inner.tensors);
        if tensors.contains_key(&prefixed) || !tensors.contains_key(probe) {
            return false;
        }
        let head_roots = ["cls.", "lm_head.", "classifier.", "score."];
        let renamed: HashMap<String, Tensor> = tensors
            .drain()
            .map(|(name, tensor)| {
                let is_head = head_roots.iter().any(|root| name.starts_with(root));
                if is_head || name.starts_with(&format!("{prefix}.")) {
                    (name, tensor)
                } else {
                    (format!("{prefix}.{name}"), tensor)
                }
            })
            .collect();
        *tensors = renamed;
        true
    }

    /// A `VarBuilder` reading from these weights, converting to `dtype` on `device`.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// Initialised tensors, and the checkpoint's tensors nothing used, both sorted.
    pub fn report(&self) -> LoadReport {
        let used = lock(&self.inner.used);
        let initialized = lock(&self.inner.initialized);
        let unused = self
            .names()
            .into_iter()
            .filter(|name| !used.contains(name) && !initialized.contains(name))
            .collect();
        LoadReport {
            initialized: initialized.iter().cloned().collect(),
            unused,
        }
    }
}

impl SimpleBackend for Weights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.init_randomly_if_missing(name, &shape)
            .map_err(|err| candle_core::Error::Msg(err.to_string()))?;
        let tensor = SimpleBackend::get_unchecked(self, name, dtype, device)?;
        if tensor.shape() != &shape {
            let err = ModelError::ShapeMismatch {
                name: name.to_string(),
                expected: shape.dims().to_vec(),
                found: tensor.dims().to_vec(),
            };
            return Err(candle_core::Error::Msg(err.to_string()));
        }
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        Weights::get(self, name, dtype, device).map_err(|err| match err {
            ModelError::Candle(e) => e,
            other => candle_core::Error::Msg(other.to_string()),
        })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_unused_and_initialized() {
        let a = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let weights = Weights::from_tensors(
            HashMap::from([("used".to_string(), a.clone()), ("extra".to_string(), a)]),
            "test",
        );
        weights.get("used", DType::F32, &Device::Cpu).unwrap();
        assert!(weights
            .init_if_missing("pooler.weight", (2, 2), Init::Const(0.0))
            .unwrap());
        assert!(!weights
            .init_if_missing("used", 2, Init::Const(0.0))
            .unwrap());
        let report = weights.report();
        assert_eq!(report.initialized, vec!["pooler.weight".to_string()]);
        assert_eq!(report.unused, vec!["extra".to_string()]);
    }

    #[test]
    fn missing_tensor_error_names_tensor_and_source() {
        let weights = Weights::from_tensors(HashMap::new(), "/models/x");
        let err = weights.get("bert.x", DType::F32, &Device::Cpu).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bert.x") && msg.contains("/models/x"), "{msg}");
    }

    #[test]
    fn base_prefix_is_added_to_bare_checkpoints_only() {
        let t = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
        let weights = Weights::from_tensors(
            HashMap::from([
                ("embeddings.word_embeddings.weight".to_string(), t.clone()),
                ("cls.predictions.bias".to_string(), t),
            ]),
            "test",
        );
        assert!(weights.add_base_prefix_if_missing("bert", "embeddings.word_embeddings.weight"));
        assert_eq!(
            weights.names(),
            vec![
                "bert.embeddings.word_embeddings.weight".to_string(),
                "cls.predictions.bias".to_string()
            ]
        );
        assert!(!weights.add_base_prefix_if_missing("bert", "embeddings.word_embeddings.weight"));
    }
}
