//! LoRA fine-tuning and inference speed of dnatune, the dnatune half of `bench/compare.sh` and
//! of the GPU kit's `bench/gpu/verify.sh` (the other half is `bench/torch_lora.py`, same job
//! in PyTorch + PEFT).
//!
//! `cargo bench --bench lora_speed -- --size small --dir DIR` writes a random checkpoint in Hub
//! layout (`config.json`, `model.safetensors`, `vocab.txt`) and the token batches
//! (`batches.json`) into `DIR` unless they are there already, then loads the checkpoint through
//! `SequenceClassifier::load`, trains with the trainer's own step
//! (`train::step::accumulate_gradients`, gradient clipping, AdamW) and scores with
//! `predict::logits`. It prints one line `RESULT {json}`. Threads: `RAYON_NUM_THREADS`.
//!
//! Options: `--size small|base|gena-base|nt-v2-50m`, `--device cpu|cuda|cuda:N`,
//! `--precision auto|f32|bf16|f16` (the frozen weights' dtype), `--tokens N` (longest sequence,
//! specials included; lengths are drawn from N/2..=N), `--batch N`, `--steps N`,
//! `--gradient-checkpointing`, `--peak-tflops X` (the card's dense bf16 peak, for the fraction
//! of it a training step reaches), `--prepare-only`, `--gemm` (matmul GFLOP/s only) and
//! `--check-logits FILE` (f32 logits of a few sequences with the head's weights, for
//! `torch_lora.py --check-logits`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use dnatune::device::{describe, frozen_dtype, MemoryMeter};
use dnatune::model::classifier::{ClassifierSpec, SequenceClassifier};
use dnatune::model::lora::{LoraConfig, SeededRng, TargetModules};
use dnatune::tokenize::Encoding;
use dnatune::train::optim::{clip_grad_norm, AdamW};
use dnatune::train::step::{accumulate_gradients, MicroBatch};
use dnatune::train::{resolve_device, DeviceChoice, Precision};

const LORA_RANK: usize = 8;
const NUM_LABELS: usize = 2;
/// Sequences whose logits `--check-logits` writes.
const CHECK_ROWS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    /// BERT of DNABERT layout: 6-mer vocabulary, post-LN, erf GELU, absolute positions.
    Bert,
    /// Nucleotide Transformer v2: ESM with rotary positions, pre-LN, SwiGLU without biases.
    NtV2,
}

impl Arch {
    fn vocab(self) -> usize {
        match self {
            Arch::Bert => 4101,
            Arch::NtV2 => 4107,
        }
    }

    fn pad_id(self) -> u32 {
        match self {
            Arch::Bert => 0,
            Arch::NtV2 => 1,
        }
    }

    /// `(first token, last token or none, id of the first 6-mer)`: `[CLS] … [SEP]` for BERT,
    /// `<cls> …` for the Nucleotide Transformer.
    fn specials(self) -> (u32, Option<u32>, u32) {
        match self {
            Arch::Bert => (2, Some(3), 5),
            Arch::NtV2 => (3, None, 6),
        }
    }
}

struct Size {
    arch: Arch,
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    max_positions: usize,
    warmup_steps: usize,
    steps: usize,
    infer_batches: usize,
    infer_rounds: usize,
}

fn size(name: &str) -> Option<Size> {
    let bert_base = Size {
        arch: Arch::Bert,
        hidden: 768,
        layers: 12,
        heads: 12,
        intermediate: 3072,
        max_positions: 512,
        warmup_steps: 2,
        steps: 6,
        infer_batches: 4,
        infer_rounds: 3,
    };
    match name {
        "small" => Some(Size {
            arch: Arch::Bert,
            hidden: 256,
            layers: 4,
            heads: 4,
            intermediate: 1024,
            max_positions: 512,
            warmup_steps: 3,
            steps: 15,
            infer_batches: 16,
            infer_rounds: 3,
        }),
        "base" => Some(bert_base),
        // DNABERT-2 / GENA-LM base shape; room for 512 tokens plus specials.
        "gena-base" => Some(Size {
            max_positions: 1024,
            warmup_steps: 3,
            steps: 10,
            infer_batches: 8,
            ..bert_base
        }),
        // InstaDeepAI/nucleotide-transformer-v2-50m-multi-species.
        "nt-v2-50m" => Some(Size {
            arch: Arch::NtV2,
            hidden: 512,
            layers: 12,
            heads: 16,
            intermediate: 2048,
            max_positions: 2050,
            warmup_steps: 3,
            steps: 10,
            infer_batches: 8,
            infer_rounds: 3,
        }),
        _ => None,
    }
}

const SIZE_NAMES: &str = "small, base, gena-base, nt-v2-50m";

struct Args {
    size_name: String,
    dir: PathBuf,
    steps: Option<usize>,
    device: DeviceChoice,
    precision: Precision,
    tokens: usize,
    batch: usize,
    gradient_checkpointing: bool,
    peak_tflops: Option<f64>,
    prepare_only: bool,
    gemm: bool,
    check_logits: Option<PathBuf>,
}

const USAGE: &str = "usage: lora_speed [--size small|base|gena-base|nt-v2-50m] [--dir DIR] \
    [--device cpu|cuda|cuda:N] [--precision auto|f32|bf16|f16] [--tokens N] [--batch N] \
    [--steps N] [--gradient-checkpointing] [--peak-tflops X] [--prepare-only] [--gemm] \
    [--check-logits FILE]";

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        size_name: "small".into(),
        dir: PathBuf::new(),
        steps: None,
        device: DeviceChoice::Cpu,
        precision: Precision::Auto,
        tokens: 128,
        batch: 16,
        gradient_checkpointing: false,
        peak_tflops: None,
        prepare_only: false,
        gemm: false,
        check_logits: None,
    };
    let mut dir = None;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let mut value = || {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |text: String| {
            text.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag} {text}: expected a positive whole number"))
        };
        match flag.as_str() {
            "--size" => parsed.size_name = value()?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--steps" => parsed.steps = Some(number(value()?)?),
            "--device" => parsed.device = value()?.parse()?,
            "--precision" => {
                let text = value()?;
                parsed.precision = match text.as_str() {
                    "auto" => Precision::Auto,
                    "f32" => Precision::F32,
                    "bf16" => Precision::Bf16,
                    "f16" => Precision::F16,
                    _ => return Err(format!("--precision {text}: use auto, f32, bf16 or f16")),
                }
            }
            "--tokens" => parsed.tokens = number(value()?)?,
            "--batch" => parsed.batch = number(value()?)?,
            "--gradient-checkpointing" => parsed.gradient_checkpointing = true,
            "--peak-tflops" => {
                let text = value()?;
                parsed.peak_tflops = Some(
                    text.parse::<f64>()
                        .ok()
                        .filter(|x| *x > 0.0)
                        .ok_or_else(|| format!("--peak-tflops {text}: expected a number > 0"))?,
                );
            }
            "--prepare-only" => parsed.prepare_only = true,
            "--gemm" => parsed.gemm = true,
            "--check-logits" => parsed.check_logits = Some(PathBuf::from(value()?)),
            // `cargo bench` passes `--bench` to every benchmark binary.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if parsed.tokens < 4 {
        return Err("--tokens must be at least 4".into());
    }
    parsed.dir =
        dir.unwrap_or_else(|| PathBuf::from(format!("target/lora_speed_{}", parsed.size_name)));
    Ok(parsed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS; // `cargo bench -- --list` probing
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lora_speed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let args = parse_args(args)?;
    let mut size = size(&args.size_name)
        .ok_or_else(|| format!("unknown --size {:?}; use {SIZE_NAMES}", args.size_name))?;
    if let Some(steps) = args.steps {
        size.steps = steps;
    }
    if size.arch == Arch::Bert && args.tokens > size.max_positions {
        return Err(format!(
            "--tokens {} exceeds the {} positions of --size {}",
            args.tokens, size.max_positions, args.size_name
        ));
    }
    dnatune::tune_allocator();
    let dir = &args.dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    prepare_checkpoint(dir, &args.size_name, &size)?;
    let batches_path = dir.join("batches.json");
    let total_batches = size.warmup_steps + size.steps + size.infer_batches;
    let layout = BatchLayout {
        count: total_batches,
        batch: args.batch,
        tokens: args.tokens,
        arch: size.arch,
    };
    if !batches_match(&batches_path, &layout) {
        write_batches(&batches_path, &layout)?;
    }
    if args.prepare_only {
        return Ok(());
    }
    let device = resolve_device(args.device).map_err(|e| e.to_string())?;
    if args.gemm {
        return gemm_probe(&size, &args, &device).map_err(|e| format!("GEMM probe: {e}"));
    }
    let batches = read_batches(&batches_path)?;
    if batches.len() < total_batches {
        return Err(format!("{} is too short", batches_path.display()));
    }
    if let Some(path) = &args.check_logits {
        return check_logits(dir, &batches[0], size.arch, &device, path);
    }
    train_and_infer(&args, &size, &batches, &device)
}

/// LoRA r 8, alpha 8, no dropout on the attention's query and value projections.
fn classifier_spec() -> ClassifierSpec {
    ClassifierSpec {
        num_labels: NUM_LABELS,
        lora: Some(LoraConfig {
            rank: LORA_RANK,
            alpha: LORA_RANK as f64,
            dropout: 0.0,
            targets: TargetModules::Names(vec!["query".into(), "value".into()]),
            use_rslora: false,
            seed: 42,
        }),
        train_pooler: false,
        seed: 42,
    }
}

fn train_and_infer(
    args: &Args,
    size: &Size,
    batches: &[Batch],
    device: &Device,
) -> Result<(), String> {
    let dtype = frozen_dtype(args.precision, device).map_err(|why| {
        format!(
            "--precision {} on {}: {why}",
            args.precision,
            describe(device)
        )
    })?;
    // The baseline is the card's use before the model (other programs, the CUDA context).
    let mut memory = MemoryMeter::start(device);
    let mut classifier =
        SequenceClassifier::load(&args.dir, &classifier_spec(), DType::F32, device)
            .map_err(|e| format!("load the classifier: {e}"))?;
    classifier
        .store_frozen_weights_as(dtype)
        .map_err(|e| format!("convert the frozen weights: {e}"))?;
    let vars = classifier.trainable_vars();
    let mut optimizer =
        AdamW::new(vars.clone(), 0.9, 0.999, 1e-8, 0.01).map_err(|e| format!("AdamW: {e}"))?;
    let pad_id = size.arch.pad_id();
    let sync = || {
        device
            .synchronize()
            .map_err(|e| format!("synchronize: {e}"))
    };

    let mut step_seconds = Vec::new();
    let mut measured_flops = 0f64;
    let mut measured_conventional_flops = 0f64;
    let mut last_loss = 0.0;
    for (step, batch) in batches
        .iter()
        .take(size.warmup_steps + size.steps)
        .enumerate()
    {
        sync()?;
        let started = Instant::now();
        let micro = MicroBatch {
            encodings: batch.encodings.iter().collect(),
            labels: batch.labels.clone(),
            weights: vec![1.0 / batch.labels.len() as f32; batch.labels.len()],
        };
        let (mut grads, loss) = accumulate_gradients(
            &classifier,
            &vars,
            [micro],
            pad_id,
            device,
            args.gradient_checkpointing,
        )
        .map_err(|e| format!("training step: {e}"))?;
        clip_grad_norm(&mut grads, Some(1.0)).map_err(|e| format!("clip: {e}"))?;
        optimizer
            .step(&grads, 1e-4)
            .map_err(|e| format!("AdamW step: {e}"))?;
        drop(grads);
        sync()?;
        let seconds = started.elapsed().as_secs_f64();
        memory.sample();
        last_loss = loss;
        if step >= size.warmup_steps {
            step_seconds.push(seconds);
            let flops = StepFlops::of(size, batch.encodings.len(), batch.padded_len());
            measured_flops += flops.train;
            measured_conventional_flops += flops.conventional;
        }
    }
    let peak_rss_mb = peak_rss_mb();
    let measured_seconds: f64 = step_seconds.iter().sum();

    let infer: Vec<Encoding> = batches[size.warmup_steps + size.steps..]
        .iter()
        .take(size.infer_batches)
        .flat_map(|b| b.encodings.iter().cloned())
        .collect();
    let mut round_seconds = Vec::new();
    for _ in 0..size.infer_rounds {
        sync()?;
        let started = Instant::now();
        // Copies the logits to the host, which waits for the device.
        let logits = dnatune::predict::logits(&classifier, &infer, pad_id, args.batch, device)
            .map_err(|e| format!("inference: {e}"))?;
        if logits.len() != infer.len() * NUM_LABELS {
            return Err("inference returned the wrong number of logits".into());
        }
        round_seconds.push(started.elapsed().as_secs_f64());
    }
    let step_s = median(&mut step_seconds);
    let round_s = median(&mut round_seconds);
    let train_tflops = measured_flops / measured_seconds / 1e12;
    let conventional_tflops = measured_conventional_flops / measured_seconds / 1e12;
    let on_gpu = !matches!(device, Device::Cpu);
    let result = serde_json::json!({
        "side": "dnatune",
        "size": args.size_name,
        "device": describe(device),
        "frozen_dtype": format!("{dtype:?}").to_lowercase(),
        "tokens": args.tokens,
        "batch": args.batch,
        "gradient_checkpointing": args.gradient_checkpointing,
        "threads": std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
        "steps": step_seconds.len(),
        "train_steps_per_s": round(1.0 / step_s, 4),
        "train_seq_per_s": round(args.batch as f64 / step_s, 3),
        "infer_seq_per_s": round(infer.len() as f64 / round_s, 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
        // On a GPU: the card's total − free memory (what nvidia-smi shows) at its highest
        // after a training step, minus what was in use before the model was loaded.
        "peak_gpu_mib": if on_gpu { memory.run_peak_mib().map(|m| round(m, 1)) } else { None },
        "memory_measure": if on_gpu {
            "GPU total-free, peak after a step minus the baseline before loading"
        } else {
            "peak RSS of the process (VmHWM)"
        },
        "train_tflops": round(train_tflops, 4),
        "train_tflops_conventional": round(conventional_tflops, 4),
        "peak_tflops": args.peak_tflops,
        "peak_fraction": args.peak_tflops.map(|peak| round(train_tflops / peak, 4)),
        "last_loss": round(last_loss, 5),
    });
    println!("RESULT {result}");
    Ok(())
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// The floating-point operations of one training step, counted from the shapes (what the
/// step needs, not what a kernel happens to do). Per sequence of `T` (padded) tokens, with
/// `H` hidden, `L` layers and `P` the weights of the frozen projections of one layer (BERT:
/// `4H² + 2HI`; NT v2 with SwiGLU: `4H² + 3HI`):
///
/// - forward: projections `2·P·T·L`, attention scores and context `4·T²·H·L`, LoRA
///   (`2·T·L·4Hr`) and the head (`2·(H² + H·labels)`);
/// - backward: the frozen projections need only their input gradient, one product of the
///   forward's size (`1×`); attention, LoRA and the head need the gradients of both operands
///   (`2×`).
///
/// `train = 2·proj + 3·(attention + LoRA + head)`. `conventional` is the usual 3 × forward
/// (backward = 2 × forward, weight gradients included), for comparison with MFU figures that
/// count it that way.
struct StepFlops {
    train: f64,
    conventional: f64,
}

impl StepFlops {
    fn of(size: &Size, rows: usize, padded_len: usize) -> Self {
        let (h, i, l) = (
            size.hidden as f64,
            size.intermediate as f64,
            size.layers as f64,
        );
        let (b, t) = (rows as f64, padded_len as f64);
        let frozen_per_layer = match size.arch {
            Arch::Bert => 4.0 * h * h + 2.0 * h * i,
            Arch::NtV2 => 4.0 * h * h + 3.0 * h * i,
        };
        let lora_per_layer = 2.0 * 2.0 * h * LORA_RANK as f64;
        let projections = 2.0 * b * t * l * frozen_per_layer;
        let attention = 4.0 * b * t * t * h * l;
        let trained = 2.0 * b * t * l * lora_per_layer + 2.0 * b * (h * h + h * NUM_LABELS as f64);
        Self {
            train: 2.0 * projections + 3.0 * (attention + trained),
            conventional: 3.0 * (projections + attention + trained),
        }
    }
}

/// Logits of the first few sequences of `batch` in f32, with the head's weights (which the
/// checkpoint lacks and the classifier initialised), for the PyTorch side to compare.
fn check_logits(
    dir: &Path,
    batch: &Batch,
    arch: Arch,
    device: &Device,
    path: &Path,
) -> Result<(), String> {
    let classifier = SequenceClassifier::load(dir, &classifier_spec(), DType::F32, device)
        .map_err(|e| format!("load the classifier: {e}"))?;
    let rows: Vec<&Encoding> = batch.encodings.iter().take(CHECK_ROWS).collect();
    let (ids, mask) = dnatune::predict::batch_tensors(&rows, arch.pad_id(), device)
        .map_err(|e| format!("batch: {e}"))?;
    let logits = classifier
        .forward(&ids, &mask, false)
        .map_err(|e| format!("forward: {e}"))?;
    let on_cpu = |t: &Tensor, dtype: DType| t.to_device(&Device::Cpu)?.to_dtype(dtype);
    let mut tensors = std::collections::HashMap::new();
    let mut put = |name: &str, t: &Tensor, dtype: DType| -> Result<(), String> {
        let t = on_cpu(t, dtype).map_err(|e| format!("{name}: {e}"))?;
        tensors.insert(name.to_string(), t);
        Ok(())
    };
    put("input_ids", &ids, DType::I64)?;
    put("attention_mask", &mask, DType::I64)?;
    put("logits", &logits, DType::F32)?;
    for (name, t) in classifier.head_tensors() {
        put(&format!("head.{name}"), &t, DType::F32)?;
    }
    candle_core::safetensors::save(&tensors, path)
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    println!(
        "CHECK wrote {} (logits of {} sequences on {})",
        path.display(),
        rows.len(),
        describe(device)
    );
    Ok(())
}

/// GFLOP/s of candle's f32 matmul on the shapes of the model's projections (all tokens of a
/// full batch × hidden → intermediate, and back): the ceiling for a step's FLOPs.
fn gemm_probe(size: &Size, args: &Args, device: &Device) -> candle_core::Result<()> {
    let tokens = args.batch * args.tokens;
    for (k, n) in [
        (size.hidden, size.hidden),
        (size.hidden, size.intermediate),
        (size.intermediate, size.hidden),
    ] {
        let x = Tensor::randn(0f32, 1.0, (tokens, k), &Device::Cpu)?.to_device(device)?;
        let w = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?.to_device(device)?;
        let mut seconds = Vec::new();
        for _ in 0..7 {
            device.synchronize()?;
            let started = Instant::now();
            let y = x.matmul(&w)?;
            device.synchronize()?;
            drop(y);
            seconds.push(started.elapsed().as_secs_f64());
        }
        let flops = 2.0 * (tokens * k * n) as f64;
        println!(
            "GEMM {{\"side\":\"dnatune\",\"m\":{tokens},\"k\":{k},\"n\":{n},\"gflops\":{:.1}}}",
            flops / median(&mut seconds) / 1e9
        );
    }
    Ok(())
}

/// One training batch: token sequences with a label each.
struct Batch {
    encodings: Vec<Encoding>,
    labels: Vec<u32>,
}

impl Batch {
    fn padded_len(&self) -> usize {
        self.encodings.iter().map(Encoding::len).max().unwrap_or(0)
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// `VmHWM` (peak resident set) of this process.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Writes the checkpoint of `size_name` into `dir` unless the one there is of that size
/// (`lora_speed.json` names it).
fn prepare_checkpoint(dir: &Path, size_name: &str, size: &Size) -> Result<(), String> {
    let marker = dir.join("lora_speed.json");
    let stamp = serde_json::json!({ "size": size_name }).to_string();
    let current = std::fs::read_to_string(&marker).ok();
    if current.as_deref() == Some(stamp.as_str()) && dir.join("model.safetensors").exists() {
        return Ok(());
    }
    let written = match size.arch {
        Arch::Bert => write_bert_checkpoint(dir, size),
        Arch::NtV2 => write_nt_v2_checkpoint(dir, size),
    };
    written.map_err(|e| format!("write the checkpoint into {}: {e}", dir.display()))?;
    std::fs::write(&marker, stamp).map_err(|e| format!("write {}: {e}", marker.display()))
}

/// Random tensors as transformers initialises them: N(0, 0.02²) matrices, unit LayerNorm
/// weights, zero biases.
struct TensorWriter {
    rng: SeededRng,
    tensors: Vec<(String, Tensor)>,
}

impl TensorWriter {
    fn new(seed: u64) -> Self {
        Self {
            rng: SeededRng::new(seed),
            tensors: Vec::new(),
        }
    }

    fn normal(&mut self, name: String, shape: &[usize]) -> candle_core::Result<()> {
        let t = self.rng.normal(shape, 0.02, DType::F32, &Device::Cpu)?;
        self.tensors.push((name, t));
        Ok(())
    }

    fn zeros(&mut self, name: String, n: usize) -> candle_core::Result<()> {
        let t = Tensor::zeros(n, DType::F32, &Device::Cpu)?;
        self.tensors.push((name, t));
        Ok(())
    }

    fn layer_norm(&mut self, prefix: &str, n: usize) -> candle_core::Result<()> {
        let ones = Tensor::ones(n, DType::F32, &Device::Cpu)?;
        self.tensors.push((format!("{prefix}.weight"), ones));
        self.zeros(format!("{prefix}.bias"), n)
    }

    fn save(self, path: &Path) -> candle_core::Result<()> {
        let map: std::collections::HashMap<String, Tensor> = self.tensors.into_iter().collect();
        candle_core::safetensors::save(&map, path)
    }
}

/// The 4096 6-mers over `alphabet`, in the order its letters are given.
fn kmers(alphabet: &[u8; 4]) -> impl Iterator<Item = String> + '_ {
    (0..4096u32).map(move |code| {
        (0..6)
            .rev()
            .map(|i| alphabet[((code >> (2 * i)) & 3) as usize] as char)
            .collect()
    })
}

/// A BERT of DNABERT's layout (6-mer vocabulary, post-LN, erf GELU) with N(0, 0.02²) weights,
/// unit LayerNorm weights and zero biases, as transformers initialises one.
fn write_bert_checkpoint(dir: &Path, size: &Size) -> candle_core::Result<()> {
    let vocab_size = Arch::Bert.vocab();
    let config = serde_json::json!({
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.0,
        "hidden_dropout_prob": 0.0,
        "hidden_act": "gelu",
        "hidden_size": size.hidden,
        "initializer_range": 0.02,
        "intermediate_size": size.intermediate,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": size.max_positions,
        "num_attention_heads": size.heads,
        "num_hidden_layers": size.layers,
        "pad_token_id": Arch::Bert.pad_id(),
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    let mut vocab = String::from("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for kmer in kmers(b"ACGT") {
        vocab.push_str(&kmer);
        vocab.push('\n');
    }
    std::fs::write(dir.join("vocab.txt"), vocab)?;

    let (h, inner) = (size.hidden, size.intermediate);
    let mut w = TensorWriter::new(7);
    w.normal(
        "bert.embeddings.word_embeddings.weight".into(),
        &[vocab_size, h],
    )?;
    w.normal(
        "bert.embeddings.position_embeddings.weight".into(),
        &[size.max_positions, h],
    )?;
    w.normal(
        "bert.embeddings.token_type_embeddings.weight".into(),
        &[2, h],
    )?;
    w.layer_norm("bert.embeddings.LayerNorm", h)?;
    for layer in 0..size.layers {
        let p = format!("bert.encoder.layer.{layer}");
        let projections = [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", inner, h),
            ("output.dense", h, inner),
        ];
        for (name, out_dim, in_dim) in projections {
            w.normal(format!("{p}.{name}.weight"), &[out_dim, in_dim])?;
            w.zeros(format!("{p}.{name}.bias"), out_dim)?;
        }
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            w.layer_norm(&format!("{p}.{ln}"), h)?;
        }
    }
    w.normal("bert.pooler.dense.weight".into(), &[h, h])?;
    w.zeros("bert.pooler.dense.bias".into(), h)?;
    w.save(&dir.join("model.safetensors"))
}

/// A Nucleotide Transformer v2 in the Hub layout of `InstaDeepAI/nucleotide-transformer-v2-*`
/// (remote code `modeling_esm.py`, hence `auto_map` and `add_bias_fnn`): rotary positions,
/// pre-LN, SwiGLU feed-forward (`intermediate.dense` outputs 2 × intermediate, no FFN
/// biases), the per-layer `inv_freq` buffer, and the unused position table the Hub
/// checkpoints carry. The MLM head is left out (the classifier does not read it).
fn write_nt_v2_checkpoint(dir: &Path, size: &Size) -> candle_core::Result<()> {
    let vocab_size = Arch::NtV2.vocab();
    let config = serde_json::json!({
        "add_bias_fnn": false,
        "architectures": ["EsmForMaskedLM", "EsmForTokenClassification", "EsmForSequenceClassification"],
        "attention_probs_dropout_prob": 0.0,
        "auto_map": {
            "AutoConfig": "esm_config.EsmConfig",
            "AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM",
            "AutoModelForTokenClassification": "modeling_esm.EsmForTokenClassification",
            "AutoModelForSequenceClassification": "modeling_esm.EsmForSequenceClassification"
        },
        "emb_layer_norm_before": false,
        "esmfold_config": null,
        "hidden_dropout_prob": 0.0,
        "hidden_size": size.hidden,
        "initializer_range": 0.02,
        "intermediate_size": size.intermediate,
        "is_folding_model": false,
        "layer_norm_eps": 1e-12,
        "mask_token_id": 2,
        "max_position_embeddings": size.max_positions,
        "model_type": "esm",
        "num_attention_heads": size.heads,
        "num_hidden_layers": size.layers,
        "pad_token_id": Arch::NtV2.pad_id(),
        "position_embedding_type": "rotary",
        "tie_word_embeddings": false,
        "token_dropout": false,
        "torch_dtype": "float32",
        "use_cache": false,
        "vocab_list": null,
        "vocab_size": vocab_size,
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    let mut vocab = String::from("<unk>\n<pad>\n<mask>\n<cls>\n<eos>\n<bos>\n");
    for kmer in kmers(b"ATCG") {
        vocab.push_str(&kmer);
        vocab.push('\n');
    }
    vocab.push_str("A\nT\nC\nG\nN\n");
    std::fs::write(dir.join("vocab.txt"), vocab)?;

    let (h, inner) = (size.hidden, size.intermediate);
    let head_dim = h / size.heads;
    let inv_freq: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let mut w = TensorWriter::new(13);
    w.normal(
        "esm.embeddings.word_embeddings.weight".into(),
        &[vocab_size, h],
    )?;
    w.normal(
        "esm.embeddings.position_embeddings.weight".into(),
        &[size.max_positions, h],
    )?;
    for layer in 0..size.layers {
        let p = format!("esm.encoder.layer.{layer}");
        w.layer_norm(&format!("{p}.attention.LayerNorm"), h)?;
        for name in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            w.normal(format!("{p}.{name}.weight"), &[h, h])?;
            w.zeros(format!("{p}.{name}.bias"), h)?;
        }
        w.tensors.push((
            format!("{p}.attention.self.rotary_embeddings.inv_freq"),
            Tensor::from_vec(inv_freq.clone(), head_dim / 2, &Device::Cpu)?,
        ));
        w.layer_norm(&format!("{p}.LayerNorm"), h)?;
        w.normal(format!("{p}.intermediate.dense.weight"), &[2 * inner, h])?;
        w.normal(format!("{p}.output.dense.weight"), &[h, inner])?;
    }
    w.layer_norm("esm.encoder.emb_layer_norm_after", h)?;
    w.save(&dir.join("model.safetensors"))
}

/// What `batches.json` holds: `count` batches of `batch` sequences of at most `tokens` tokens.
struct BatchLayout {
    count: usize,
    batch: usize,
    tokens: usize,
    arch: Arch,
}

/// Whether `path` holds at least the batches `layout` asks for (same shape and tokens).
fn batches_match(path: &Path, layout: &BatchLayout) -> bool {
    let Some(json) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
    else {
        return false;
    };
    let field = |key: &str| json.get(key).and_then(serde_json::Value::as_u64);
    // Files of earlier versions carry no layout: 16 × 64..=128 BERT tokens.
    let (batch, tokens, pad) = (
        field("batch").unwrap_or(16),
        field("tokens").unwrap_or(128),
        field("pad_id").unwrap_or(0),
    );
    let first = json
        .pointer("/batches/0/input_ids/0/0")
        .and_then(serde_json::Value::as_u64);
    let count = json["batches"].as_array().map_or(0, Vec::len);
    batch == layout.batch as u64
        && tokens == layout.tokens as u64
        && pad == u64::from(layout.arch.pad_id())
        && first == Some(u64::from(layout.arch.specials().0))
        && count >= layout.count
}

/// `layout.count` batches of sequences `[CLS] k-mers [SEP]` (BERT) or `<cls> k-mers` (NT) with
/// lengths from `tokens / 2..=tokens`, and random labels. Both sides of the comparison read
/// this file.
fn write_batches(path: &Path, layout: &BatchLayout) -> Result<(), String> {
    let (first, last, kmer_base) = layout.arch.specials();
    let (max_len, min_len) = (layout.tokens, layout.tokens / 2);
    let mut rng = SeededRng::new(11);
    let batches: Vec<serde_json::Value> = (0..layout.count)
        .map(|_| {
            let mut ids = Vec::new();
            let mut labels = Vec::new();
            for _ in 0..layout.batch {
                let len = min_len + (rng.next_u64() % (max_len - min_len + 1) as u64) as usize;
                let body = len - 1 - usize::from(last.is_some());
                let mut row = vec![first];
                row.extend((0..body).map(|_| kmer_base + (rng.next_u64() % 4096) as u32));
                row.extend(last);
                ids.push(row);
                labels.push((rng.next_u64() % NUM_LABELS as u64) as u32);
            }
            serde_json::json!({"input_ids": ids, "labels": labels})
        })
        .collect();
    let json = serde_json::json!({
        "batch": layout.batch,
        "tokens": layout.tokens,
        "pad_id": layout.arch.pad_id(),
        "batches": batches,
    });
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, json.to_string())
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

fn read_batches(path: &Path) -> Result<Vec<Batch>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))?;
    let bad = || format!("{} is not a batches file of this benchmark", path.display());
    let ids_of = |row: &serde_json::Value| -> Option<Vec<u32>> {
        row.as_array()?
            .iter()
            .map(|v| v.as_u64().map(|id| id as u32))
            .collect()
    };
    json["batches"]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|batch| {
            let encodings = batch["input_ids"]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|row| {
                    let input_ids = ids_of(row).ok_or_else(bad)?;
                    Ok(Encoding {
                        attention_mask: vec![1; input_ids.len()],
                        spans: vec![None; input_ids.len()],
                        input_ids,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let labels = ids_of(&batch["labels"]).ok_or_else(bad)?;
            Ok(Batch { encodings, labels })
        })
        .collect()
}
