//! LoRA with the semantics of Hugging Face PEFT:
//! `y = W x + b + scaling · B (A · dropout(x))`, `scaling = alpha / r` (or `alpha / √r` with
//! rsLoRA), A `[r, in]` drawn from U(±1/√in) (PEFT's `kaiming_uniform_(a=√5)` has exactly that
//! bound: gain √(2/(1+5)) · √3 / √in = 1/√in), B `[out, r]` zero. A and B are `Var`s; the base
//! weight stays a plain tensor, so it is never trained.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};

use super::config::Family;
use super::ops::Linear;

/// Errors of configuring or attaching LoRA.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("the LoRA rank must be at least 1 (got 0); 8 is a common choice")]
    RankZero,
    #[error("the LoRA dropout must be in [0, 1) (got {0})")]
    InvalidDropout(f64),
    #[error(
        "the LoRA target modules {targets} match no projection of this model. \
         Its projections are: {available}"
    )]
    NoTargetMatch { targets: String, available: String },
    #[error("the LoRA target pattern {pattern:?} is not a valid regular expression: {message}")]
    InvalidPattern { pattern: String, message: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Which projections get LoRA, as PEFT's `target_modules`: a list of names (a name matches a
/// module whose path equals it or ends with `.name`) or one regular expression that must match
/// the whole module path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    Names(Vec<String>),
    Pattern(String),
}

impl TargetModules {
    /// PEFT's defaults for the family: `query, value` (BERT, GENA-LM, ESM), `Wqkv` (DNABERT-2).
    pub fn default_for(family: Family) -> Self {
        match family {
            Family::Dnabert2 => Self::Names(vec!["Wqkv".to_string()]),
            _ => Self::Names(vec!["query".to_string(), "value".to_string()]),
        }
    }

    fn matcher(&self) -> Result<TargetMatcher<'_>, LoraError> {
        Ok(match self {
            Self::Names(names) => TargetMatcher::Names(names),
            Self::Pattern(pattern) => {
                // Python's re.fullmatch: the pattern must cover the whole path.
                let anchored = format!("^(?:{pattern})$");
                let regex =
                    regex::Regex::new(&anchored).map_err(|e| LoraError::InvalidPattern {
                        pattern: pattern.clone(),
                        message: e.to_string(),
                    })?;
                TargetMatcher::Pattern(regex)
            }
        })
    }
}

impl std::fmt::Display for TargetModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Names(names) => write!(f, "[{}]", names.join(", ")),
            Self::Pattern(pattern) => write!(f, "(regular expression) {pattern:?}"),
        }
    }
}

enum TargetMatcher<'a> {
    Names(&'a [String]),
    Pattern(regex::Regex),
}

impl TargetMatcher<'_> {
    /// PEFT's `check_target_module_exists` for a module path such as
    /// `bert.encoder.layer.0.attention.self.query`.
    fn matches(&self, module_path: &str) -> bool {
        match self {
            Self::Names(names) => names.iter().any(|name| {
                module_path == name
                    || module_path
                        .strip_suffix(name.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            }),
            Self::Pattern(regex) => regex.is_match(module_path),
        }
    }
}

/// The LoRA hyper-parameters, named as in PEFT's `LoraConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// `r`.
    pub rank: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// `lora_dropout`, applied to the LoRA input in training mode only.
    pub dropout: f64,
    pub targets: TargetModules,
    /// rsLoRA: scale by `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
    /// Seeds A's initialisation and the dropout masks.
    pub seed: u64,
}

impl LoraConfig {
    /// r = 8, alpha = 16, dropout 0.1 and the family's default targets.
    pub fn for_family(family: Family) -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: TargetModules::default_for(family),
            use_rslora: false,
            seed: 42,
        }
    }

    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    pub fn validate(&self) -> Result<(), LoraError> {
        if self.rank == 0 {
            return Err(LoraError::RankZero);
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(LoraError::InvalidDropout(self.dropout));
        }
        self.targets.matcher()?;
        Ok(())
    }
}

/// A small seedable generator (SplitMix64), so that initialisation and dropout are
/// reproducible on every device.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A tensor of `shape` from U(-bound, bound).
    pub fn uniform(
        &mut self,
        shape: (usize, usize),
        bound: f64,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let values: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| ((self.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect();
        Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
    }

    /// A tensor of `shape` from N(0, std²).
    pub fn normal(
        &mut self,
        shape: &[usize],
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| (self.next_normal() * std) as f32)
            .collect();
        Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
    }
}

/// Train/eval switch and dropout generator shared by every adapter of one model, so that one
/// call decides whether dropout is active.
#[derive(Debug)]
pub struct LoraMode {
    training: AtomicBool,
    rng: Mutex<SeededRng>,
}

impl LoraMode {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            training: AtomicBool::new(false),
            rng: Mutex::new(SeededRng::new(seed ^ 0xD0_0D)),
        })
    }

    pub fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// The dropout generator's state, to replay the same masks (gradient checkpointing
    /// recomputes a layer with the masks of its first pass).
    pub fn rng_state(&self) -> SeededRng {
        self.rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set_rng_state(&self, state: SeededRng) {
        *self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = state;
    }

    /// Dropout for a tensor on a GPU: a 0/1 byte mask drawn on all CPU cores from one seed of
    /// this generator (so checkpointing replays it and it needs no GPU random-number library),
    /// copied to the device as bytes — a quarter of an f32 mask — and scaled there.
    fn device_dropout(&self, x: &Tensor, p: f64, keep_scale: f32) -> candle_core::Result<Tensor> {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 16;
        let seed = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .next_u64();
        // Keep with probability 1 − p, at 16-bit resolution.
        let threshold = (p * 65536.0).round() as u64;
        let mut mask = vec![0u8; x.elem_count()];
        mask.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(chunk, bytes)| {
                let mut rng =
                    SeededRng::new(seed ^ (chunk as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                for quad in bytes.chunks_mut(4) {
                    let bits = rng.next_u64();
                    for (i, byte) in quad.iter_mut().enumerate() {
                        *byte = u8::from((bits >> (16 * i)) & 0xFFFF >= threshold);
                    }
                }
            });
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
        x.mul(&(mask.to_dtype(x.dtype())? * f64::from(keep_scale))?)
    }

    /// Inverted dropout as in PyTorch: zero with probability `p`, scale the rest by 1/(1-p).
    /// Applies whatever the mode; callers check [`Self::is_training`].
    pub fn dropout(&self, x: &Tensor, p: f64) -> candle_core::Result<Tensor> {
        let keep_scale = (1.0 / (1.0 - p)) as f32;
        if !x.device().is_cpu() {
            return self.device_dropout(x, p, keep_scale);
        }
        let count = x.elem_count();
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (0..count)
                .map(|_| if rng.next_f64() < p { 0.0 } else { keep_scale })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }
}

/// The trainable low-rank update of one projection.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// `[r, in]`.
    pub a: Var,
    /// `[out, r]`.
    pub b: Var,
    pub scaling: f64,
    pub dropout: f64,
    mode: Arc<LoraMode>,
}

impl LoraAdapter {
    /// `scaling · B (A · dropout(x))` for `x` `[..., in]`.
    pub fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = if self.dropout > 0.0 && self.mode.is_training() {
            self.mode.dropout(x, self.dropout)?
        } else {
            x.clone()
        };
        // Two thin 2-D matmuls over all tokens at once (a broadcast matmul would sum a
        // per-sequence copy of the weight gradient); scaling the rank-wide intermediate is
        // cheaper than scaling the output.
        let in_dim = x.dim(D::Minus1)?;
        let down = x.reshape(((), in_dim))?.matmul(&self.a.as_tensor().t()?)?;
        let down = if self.scaling == 1.0 {
            down
        } else {
            (down * self.scaling)?
        };
        let up = down.matmul(&self.b.as_tensor().t()?)?;
        let mut out_dims = x.dims().to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = up.dim(1)?;
        }
        up.reshape(out_dims)
    }

    pub fn rank(&self) -> usize {
        self.a.as_tensor().dims().first().copied().unwrap_or(0)
    }
}

/// PEFT's runtime names of a module's LoRA matrices, e.g.
/// `base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.default.weight`.
pub fn peft_runtime_names(module_path: &str) -> (String, String) {
    (
        format!("base_model.model.{module_path}.lora_A.default.weight"),
        format!("base_model.model.{module_path}.lora_B.default.weight"),
    )
}

/// Attaches fresh adapters (A ~ U(±1/√in), B = 0) to every projection `cfg.targets` selects.
/// Returns the module paths that got one, in model order.
pub fn attach(
    linears: Vec<&mut Linear>,
    cfg: &LoraConfig,
    mode: &Arc<LoraMode>,
) -> Result<Vec<String>, LoraError> {
    cfg.validate()?;
    let matcher = cfg.targets.matcher()?;
    let available = describe_modules(linears.iter().map(|l| l.name.as_str()));
    let mut rng = SeededRng::new(cfg.seed);
    let mut attached = Vec::new();
    for linear in linears {
        if !matcher.matches(&linear.name) {
            continue;
        }
        let (out_dim, in_dim) = linear.weight.dims2()?;
        let (dtype, device) = (linear.weight.dtype(), linear.weight.device().clone());
        let bound = 1.0 / (in_dim as f64).sqrt();
        let a = rng.uniform((cfg.rank, in_dim), bound, dtype, &device)?;
        let b = Tensor::zeros((out_dim, cfg.rank), dtype, &device)?;
        linear.lora = Some(LoraAdapter {
            a: Var::from_tensor(&a)?,
            b: Var::from_tensor(&b)?,
            scaling: cfg.scaling(),
            dropout: cfg.dropout,
            mode: Arc::clone(mode),
        });
        attached.push(linear.name.clone());
    }
    if attached.is_empty() {
        return Err(LoraError::NoTargetMatch {
            targets: cfg.targets.to_string(),
            available,
        });
    }
    Ok(attached)
}

/// Module paths with layer numbers folded (`bert.encoder.layer.N.attention.self.query`), plus
/// the short names a target list may use.
fn describe_modules<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let mut folded: Vec<String> = Vec::new();
    let mut leaves: Vec<String> = Vec::new();
    for path in paths {
        let generic: Vec<&str> = path
            .split('.')
            .map(|part| {
                if part.chars().all(|c| c.is_ascii_digit()) {
                    "N"
                } else {
                    part
                }
            })
            .collect();
        let generic = generic.join(".");
        if !folded.contains(&generic) {
            folded.push(generic);
        }
        let leaf = path.rsplit('.').next().unwrap_or(path).to_string();
        if !leaves.contains(&leaf) {
            leaves.push(leaf);
        }
    }
    format!("{} (short names: {})", folded.join(", "), leaves.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(name: &str, out_dim: usize, in_dim: usize) -> Linear {
        let w = Tensor::ones((out_dim, in_dim), DType::F32, &Device::Cpu).unwrap();
        Linear::new(name, w, None)
    }

    #[test]
    fn names_match_by_path_suffix_as_peft_does() {
        let targets = TargetModules::Names(vec!["query".into(), "output.dense".into()]);
        let m = targets.matcher().unwrap();
        assert!(m.matches("bert.encoder.layer.0.attention.self.query"));
        assert!(m.matches("query"));
        assert!(!m.matches("bert.encoder.layer.0.attention.self.subquery"));
        assert!(m.matches("bert.encoder.layer.0.output.dense"));
        assert!(m.matches("bert.encoder.layer.0.attention.output.dense"));
        assert!(!m.matches("bert.encoder.layer.0.intermediate.dense"));
    }

    #[test]
    fn a_pattern_must_match_the_whole_path() {
        let targets = TargetModules::Pattern(r".*layer\.1\..*\.(query|value)".into());
        let m = targets.matcher().unwrap();
        assert!(m.matches("bert.encoder.layer.1.attention.self.value"));
        assert!(!m.matches("bert.encoder.layer.0.attention.self.value"));
        let prefix_only = TargetModules::Pattern("bert".into());
        assert!(!prefix_only
            .matcher()
            .unwrap()
            .matches("bert.encoder.layer.1.attention.self.value"));
    }

    #[test]
    fn fresh_adapter_leaves_output_unchanged_and_bounds_a() {
        let mode = LoraMode::new(0);
        let mut layers = [linear("m.query", 3, 16), linear("m.key", 3, 16)];
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: TargetModules::Names(vec!["query".into()]),
            use_rslora: false,
            seed: 1,
        };
        let attached = attach(layers.iter_mut().collect(), &cfg, &mode).unwrap();
        assert_eq!(attached, vec!["m.query".to_string()]);
        assert!(layers[1].lora.is_none());
        let adapter = layers[0].lora.as_ref().unwrap();
        let a: Vec<f32> = adapter
            .a
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let bound = 1.0 / 4.0; // 1/√16
        assert!(a.iter().all(|v| v.abs() <= bound));
        assert!(
            a.iter().any(|v| v.abs() > bound / 2.0),
            "A should spread over the range"
        );
        let x = Tensor::ones((2, 16), DType::F32, &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = layers[0].forward(&x).unwrap().to_vec2().unwrap();
        assert_eq!(y, vec![vec![16.0; 3]; 2]);
    }

    #[test]
    fn delta_is_scaled_product_and_rslora_uses_square_root() {
        let mode = LoraMode::new(0);
        let mut layer = linear("q", 2, 2);
        let mut cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: TargetModules::Names(vec!["q".into()]),
            use_rslora: false,
            seed: 1,
        };
        assert_eq!(cfg.scaling(), 2.0);
        cfg.use_rslora = true;
        assert_eq!(cfg.scaling(), 4.0);
        cfg.rank = 1;
        attach(vec![&mut layer], &cfg, &mode).unwrap();
        let adapter = layer.lora.as_ref().unwrap();
        // A = [1, 2], B = [[1], [-1]]: delta(x) = 8 · B (A x).
        adapter
            .a
            .set(&Tensor::new(&[[1f32, 2.]], &Device::Cpu).unwrap())
            .unwrap();
        adapter
            .b
            .set(&Tensor::new(&[[1f32], [-1.]], &Device::Cpu).unwrap())
            .unwrap();
        let x = Tensor::new(&[[1f32, 1.]], &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = layer.forward(&x).unwrap().to_vec2().unwrap();
        // W x = [2, 2]; A x = 3; 8 · 3 · [1, -1] = [24, -24].
        assert_eq!(y, vec![vec![26.0, -22.0]]);
    }

    #[test]
    fn dropout_acts_in_training_mode_only() {
        let mode = LoraMode::new(3);
        let mut layer = linear("q", 1, 1000);
        let cfg = LoraConfig {
            rank: 1,
            alpha: 1.0,
            dropout: 0.5,
            targets: TargetModules::Names(vec!["q".into()]),
            use_rslora: false,
            seed: 1,
        };
        attach(vec![&mut layer], &cfg, &mode).unwrap();
        let adapter = layer.lora.as_ref().unwrap();
        adapter
            .a
            .set(&Tensor::ones((1, 1000), DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        adapter
            .b
            .set(&Tensor::ones((1, 1), DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        let x = Tensor::ones((1, 1000), DType::F32, &Device::Cpu).unwrap();
        let eval: f32 = adapter
            .delta(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(eval, 1000.0);
        mode.set_training(true);
        let train: f32 = adapter
            .delta(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        // About half the inputs survive, each scaled by 2: the sum stays near 1000 but is not
        // exactly the deterministic value, and it is a multiple of 2.
        assert_ne!(train, 1000.0);
        assert!((800.0..1200.0).contains(&train), "{train}");
        assert_eq!(train % 2.0, 0.0);
    }

    #[test]
    fn rank_zero_and_unmatched_targets_are_clear_errors() {
        let mode = LoraMode::new(0);
        let mut layer = linear("bert.encoder.layer.0.attention.self.query", 2, 2);
        let mut cfg = LoraConfig::for_family(Family::Dnabert);
        cfg.rank = 0;
        let err = attach(vec![&mut layer], &cfg, &mode).unwrap_err();
        assert!(err.to_string().contains("rank"), "{err}");
        let mut cfg = LoraConfig::for_family(Family::Dnabert);
        cfg.targets = TargetModules::Names(vec!["Wqkv".into()]);
        let err = attach(vec![&mut layer], &cfg, &mode)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Wqkv"), "{err}");
        assert!(
            err.contains("bert.encoder.layer.N.attention.self.query"),
            "{err}"
        );
    }

    /// The GPU dropout path (run here on a CPU tensor): the right share is kept and scaled,
    /// and replaying the generator state replays the mask.
    #[test]
    fn gpu_dropout_masks_keep_one_minus_p_and_replay() {
        let mode = LoraMode::new(5);
        let x = Tensor::ones((300, 1000), DType::F32, &Device::Cpu).unwrap();
        let state = mode.rng_state();
        let a = mode.device_dropout(&x, 0.1, 1.0 / 0.9).unwrap();
        mode.set_rng_state(state);
        let b = mode.device_dropout(&x, 0.1, 1.0 / 0.9).unwrap();
        let c = mode.device_dropout(&x, 0.1, 1.0 / 0.9).unwrap();
        let values: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let kept = values.iter().filter(|&&v| v > 0.0).count() as f64 / values.len() as f64;
        assert!((kept - 0.9).abs() < 0.002, "kept {kept}");
        assert!(values
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        let diff = |u: &Tensor, v: &Tensor| {
            (u - v)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(diff(&a, &b), 0.0, "the replayed mask differs");
        assert!(diff(&a, &c) > 0.0, "the next mask repeats the last");
    }
}
