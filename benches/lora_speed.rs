//! LoRA fine-tuning and inference speed of dnatune on a BERT of DNABERT shape, the dnatune half
//! of `bench/compare.sh` (the other half is `bench/torch_lora.py`, same job in PyTorch + PEFT).
//!
//! `cargo bench --bench lora_speed -- --size small --dir DIR` writes a
//! random checkpoint in Hub layout (`config.json`, `model.safetensors`, `vocab.txt`) and the
//! token batches (`batches.json`) into `DIR` unless they are there already, then loads the
//! checkpoint through `SequenceClassifier::load`, trains with the trainer's own step
//! (`train::step::accumulate_gradients`, gradient clipping, AdamW) and scores with
//! `predict::logits`. It prints one line `RESULT {json}`. Threads: `RAYON_NUM_THREADS`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use dnatune::model::classifier::{ClassifierSpec, SequenceClassifier};
use dnatune::model::lora::{LoraConfig, SeededRng, TargetModules};
use dnatune::tokenize::Encoding;
use dnatune::train::optim::{clip_grad_norm, AdamW};
use dnatune::train::step::{accumulate_gradients, MicroBatch};

const VOCAB: usize = 4101;
const BATCH: usize = 16;
const MAX_TOKENS: usize = 128;
/// Real lengths are drawn from `MIN_TOKENS..=MAX_TOKENS` so that every batch carries padding.
const MIN_TOKENS: usize = 64;
const PAD_ID: u32 = 0;

struct Size {
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    warmup_steps: usize,
    steps: usize,
    infer_batches: usize,
    infer_rounds: usize,
}

fn size(name: &str) -> Size {
    match name {
        "base" => Size {
            hidden: 768,
            layers: 12,
            heads: 12,
            intermediate: 3072,
            warmup_steps: 2,
            steps: 6,
            infer_batches: 4,
            infer_rounds: 3,
        },
        _ => Size {
            hidden: 256,
            layers: 4,
            heads: 4,
            intermediate: 1024,
            warmup_steps: 3,
            steps: 15,
            infer_batches: 16,
            infer_rounds: 3,
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probing
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let size_name = value("--size").unwrap_or_else(|| "small".into());
    let dir =
        PathBuf::from(value("--dir").unwrap_or_else(|| format!("target/lora_speed_{size_name}")));
    dnatune::tune_allocator();
    let mut size = size(&size_name);
    if let Some(steps) = value("--steps").and_then(|s| s.parse().ok()) {
        size.steps = steps;
    }
    std::fs::create_dir_all(&dir).expect("create the benchmark folder");
    if !dir.join("model.safetensors").exists() {
        write_checkpoint(&dir, &size).expect("write the checkpoint");
    }
    let batches_path = dir.join("batches.json");
    let total_batches = size.warmup_steps + size.steps + size.infer_batches;
    if !batches_path.exists() {
        write_batches(&batches_path, total_batches);
    }
    if args.iter().any(|a| a == "--prepare-only") {
        return;
    }
    if args.iter().any(|a| a == "--gemm") {
        gemm_probe(&size);
        return;
    }
    let batches = read_batches(&batches_path);
    assert!(
        batches.len() >= total_batches,
        "{} is too short",
        batches_path.display()
    );

    let device = Device::Cpu;
    let spec = ClassifierSpec {
        num_labels: 2,
        lora: Some(LoraConfig {
            rank: 8,
            alpha: 8.0,
            dropout: 0.0,
            targets: TargetModules::Names(vec!["query".into(), "value".into()]),
            use_rslora: false,
            seed: 42,
        }),
        train_pooler: false,
        seed: 42,
    };
    let classifier =
        SequenceClassifier::load(&dir, &spec, DType::F32, &device).expect("load the classifier");
    let vars = classifier.trainable_vars();
    let mut optimizer = AdamW::new(vars.clone(), 0.9, 0.999, 1e-8, 0.01).expect("AdamW");

    let mut step_seconds = Vec::new();
    let mut last_loss = 0.0;
    for (step, batch) in batches
        .iter()
        .take(size.warmup_steps + size.steps)
        .enumerate()
    {
        let started = Instant::now();
        let micro = MicroBatch {
            encodings: batch.encodings.iter().collect(),
            labels: batch.labels.clone(),
            weights: vec![1.0 / batch.labels.len() as f32; batch.labels.len()],
        };
        let (mut grads, loss) =
            accumulate_gradients(&classifier, &vars, [micro], PAD_ID, &device, false)
                .expect("step");
        clip_grad_norm(&mut grads, Some(1.0)).expect("clip");
        optimizer.step(&grads, 1e-4).expect("AdamW step");
        last_loss = loss;
        if step >= size.warmup_steps {
            step_seconds.push(started.elapsed().as_secs_f64());
        }
    }
    let peak_rss_mb = peak_rss_mb();

    let infer: Vec<Encoding> = batches[size.warmup_steps + size.steps..total_batches]
        .iter()
        .flat_map(|b| b.encodings.iter().cloned())
        .collect();
    let mut round_seconds = Vec::new();
    for _ in 0..size.infer_rounds {
        let started = Instant::now();
        let logits = dnatune::predict::logits(&classifier, &infer, PAD_ID, BATCH, &device)
            .expect("inference");
        assert_eq!(logits.len(), infer.len() * 2);
        round_seconds.push(started.elapsed().as_secs_f64());
    }
    let step_s = median(&mut step_seconds);
    let round_s = median(&mut round_seconds);
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    println!(
        "RESULT {{\"side\":\"dnatune\",\"size\":\"{size_name}\",\"threads\":\"{threads}\",\
         \"steps\":{},\"train_steps_per_s\":{:.4},\"train_seq_per_s\":{:.3},\
         \"infer_seq_per_s\":{:.3},\"peak_rss_mb\":{:.1},\"last_loss\":{last_loss:.5}}}",
        step_seconds.len(),
        1.0 / step_s,
        BATCH as f64 / step_s,
        infer.len() as f64 / round_s,
        peak_rss_mb,
    );
}

/// GFLOP/s of candle's f32 matmul on the shapes of the model's projections (all tokens of a
/// full batch × hidden → intermediate, and back): the ceiling for a step's FLOPs.
fn gemm_probe(size: &Size) {
    let device = Device::Cpu;
    let tokens = BATCH * MAX_TOKENS;
    for (k, n) in [
        (size.hidden, size.hidden),
        (size.hidden, size.intermediate),
        (size.intermediate, size.hidden),
    ] {
        let x = Tensor::randn(0f32, 1.0, (tokens, k), &device).expect("x");
        let w = Tensor::randn(0f32, 1.0, (k, n), &device).expect("w");
        let mut seconds = Vec::new();
        for _ in 0..7 {
            let started = Instant::now();
            let y = x.matmul(&w).expect("matmul");
            drop(y);
            seconds.push(started.elapsed().as_secs_f64());
        }
        let flops = 2.0 * (tokens * k * n) as f64;
        println!(
            "GEMM {{\"side\":\"dnatune\",\"m\":{tokens},\"k\":{k},\"n\":{n},\"gflops\":{:.1}}}",
            flops / median(&mut seconds) / 1e9
        );
    }
}

/// One training batch: `BATCH` token sequences with a label each.
struct Batch {
    encodings: Vec<Encoding>,
    labels: Vec<u32>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
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

/// A BERT of DNABERT's layout (6-mer vocabulary, post-LN, erf GELU) with N(0, 0.02²) weights,
/// unit LayerNorm weights and zero biases, as transformers initialises one.
fn write_checkpoint(dir: &Path, size: &Size) -> candle_core::Result<()> {
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
        "max_position_embeddings": 512,
        "num_attention_heads": size.heads,
        "num_hidden_layers": size.layers,
        "pad_token_id": PAD_ID,
        "type_vocab_size": 2,
        "vocab_size": VOCAB,
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    let mut vocab = String::from("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for code in 0..4096u32 {
        let kmer: String = (0..6)
            .rev()
            .map(|i| b"ACGT"[((code >> (2 * i)) & 3) as usize] as char)
            .collect();
        vocab.push_str(&kmer);
        vocab.push('\n');
    }
    std::fs::write(dir.join("vocab.txt"), vocab)?;

    let device = Device::Cpu;
    let mut rng = SeededRng::new(7);
    let (h, inner) = (size.hidden, size.intermediate);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut normal = |name: String, shape: &[usize], tensors: &mut Vec<(String, Tensor)>| {
        let t = rng.normal(shape, 0.02, DType::F32, &device)?;
        tensors.push((name, t));
        candle_core::Result::Ok(())
    };
    let zeros = |n: usize| Tensor::zeros(n, DType::F32, &device);
    let ones = |n: usize| Tensor::ones(n, DType::F32, &device);
    normal(
        "bert.embeddings.word_embeddings.weight".into(),
        &[VOCAB, h],
        &mut tensors,
    )?;
    normal(
        "bert.embeddings.position_embeddings.weight".into(),
        &[512, h],
        &mut tensors,
    )?;
    normal(
        "bert.embeddings.token_type_embeddings.weight".into(),
        &[2, h],
        &mut tensors,
    )?;
    tensors.push(("bert.embeddings.LayerNorm.weight".into(), ones(h)?));
    tensors.push(("bert.embeddings.LayerNorm.bias".into(), zeros(h)?));
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
            normal(
                format!("{p}.{name}.weight"),
                &[out_dim, in_dim],
                &mut tensors,
            )?;
            tensors.push((format!("{p}.{name}.bias"), zeros(out_dim)?));
        }
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            tensors.push((format!("{p}.{ln}.weight"), ones(h)?));
            tensors.push((format!("{p}.{ln}.bias"), zeros(h)?));
        }
    }
    normal("bert.pooler.dense.weight".into(), &[h, h], &mut tensors)?;
    tensors.push(("bert.pooler.dense.bias".into(), zeros(h)?));
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, dir.join("model.safetensors"))
}

/// `n` batches of `BATCH` sequences: `[CLS] k-mers [SEP]` with lengths from
/// `MIN_TOKENS..=MAX_TOKENS`, and random labels. Both sides of the comparison read this file.
fn write_batches(path: &Path, n: usize) {
    let mut rng = SeededRng::new(11);
    let batches: Vec<serde_json::Value> = (0..n)
        .map(|_| {
            let mut ids = Vec::new();
            let mut labels = Vec::new();
            for _ in 0..BATCH {
                let len =
                    MIN_TOKENS + (rng.next_u64() % (MAX_TOKENS - MIN_TOKENS + 1) as u64) as usize;
                let mut row = vec![2u32];
                row.extend((0..len - 2).map(|_| 5 + (rng.next_u64() % 4096) as u32));
                row.push(3);
                ids.push(row);
                labels.push((rng.next_u64() % 2) as u32);
            }
            serde_json::json!({"input_ids": ids, "labels": labels})
        })
        .collect();
    std::fs::write(path, serde_json::json!({ "batches": batches }).to_string())
        .expect("write batches.json");
}

fn read_batches(path: &Path) -> Vec<Batch> {
    let text = std::fs::read_to_string(path).expect("read batches.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("parse batches.json");
    json["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|batch| {
            let encodings = batch["input_ids"]
                .as_array()
                .expect("input_ids")
                .iter()
                .map(|row| {
                    let input_ids: Vec<u32> = row
                        .as_array()
                        .expect("row")
                        .iter()
                        .map(|v| v.as_u64().expect("id") as u32)
                        .collect();
                    Encoding {
                        attention_mask: vec![1; input_ids.len()],
                        spans: vec![None; input_ids.len()],
                        input_ids,
                    }
                })
                .collect();
            let labels = batch["labels"]
                .as_array()
                .expect("labels")
                .iter()
                .map(|v| v.as_u64().expect("label") as u32)
                .collect();
            Batch { encodings, labels }
        })
        .collect()
}
