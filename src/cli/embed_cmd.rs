//! `dnatune embed`: a model's final hidden states for each input record, written to safetensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use candle_core::{DType, Tensor};

use crate::data::read_sequences;
use crate::model::encoder::{load_encoder, LoadedEncoder};
use crate::model::hub;
use crate::tokenize::{Encoding, Tokenizer};
use crate::train::{resolve_device, DeviceChoice};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooling {
    /// Every token: `[n, tokens, hidden]`, right-padded with zeros.
    None,
    /// The first token (`[CLS]` / `<cls>`).
    Cls,
    /// Mean over the real tokens (padding excluded).
    Mean,
    /// Maximum over the real tokens (padding excluded).
    Max,
}

#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// A model folder in Hugging Face Hub layout, or a Hub id such as zhihan1996/DNABERT-2-117M.
    #[arg(long, value_name = "DIR_OR_ID")]
    pub model: String,
    /// FASTA/FASTQ (plain or compressed) or a text file with one sequence per line.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// How to reduce each sequence's token states to one vector.
    #[arg(long, value_enum, default_value = "mean")]
    pub pooling: Pooling,
    /// Output file (safetensors with the tensors `embeddings` and `attention_mask`).
    #[arg(long, value_name = "FILE.safetensors")]
    pub out: PathBuf,
    /// Truncate to this many tokens, special tokens included (default: the model's maximum).
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Also list the checkpoint's tensors that the encoder does not use (e.g. MLM heads).
    #[arg(long)]
    pub verbose: bool,
    /// Where to run: auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Also write the masked-language-model head's logits `mlm_logits` `[n, tokens, vocab]`
    /// (right-padded with zeros), e.g. to compare a model with `transformers`.
    #[arg(long)]
    pub mlm_logits: bool,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let dir = hub::resolve_model(&args.model, super::tokenize_cmd::report_progress)?;
    let tokenizer = Tokenizer::from_model_dir(&dir)?;
    let device = resolve_device(args.device)?;
    let model = load_encoder(&dir, DType::F32, &device)
        .with_context(|| format!("cannot load the model in {}", dir.display()))?;
    report_loading(&model, args.verbose);
    let records = read_sequences(&args.input)?;
    if records.is_empty() {
        anyhow::bail!(
            "{} holds no sequences; give a FASTA/FASTQ file or one sequence per line",
            args.input.display()
        );
    }
    let sequences: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.bases).into_owned())
        .collect();
    let output = embed(&model, &tokenizer, &sequences, &args)?;
    if output.truncated > 0 {
        eprintln!(
            "warning: {} of {} sequences were longer than {} tokens and were truncated",
            output.truncated,
            sequences.len(),
            args.max_length
                .unwrap_or_else(|| tokenizer.model_max_length())
        );
    }
    let mut tensors = vec![
        ("embeddings".to_string(), output.embeddings),
        ("attention_mask".to_string(), output.attention_mask),
    ];
    if args.mlm_logits {
        tensors.push((
            "mlm_logits".to_string(),
            mlm_logits(&dir, &tokenizer, &sequences, &args, &device)?,
        ));
    }
    write_atomically(&args.out, tensors)?;
    eprintln!(
        "wrote {} embeddings ({:?} pooling) to {}",
        sequences.len(),
        args.pooling,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Tensors the checkpoint lacked are not pretrained: always say so. Unused tensors (heads the
/// encoder does not need) are only listed on request.
fn report_loading(model: &LoadedEncoder, verbose: bool) {
    let report = model.report();
    if !report.initialized.is_empty() {
        eprintln!(
            "note: the checkpoint lacks {} tensor(s), initialised randomly: {}",
            report.initialized.len(),
            report.initialized.join(", ")
        );
    }
    if verbose && !report.unused.is_empty() {
        eprintln!(
            "unused checkpoint tensors ({}): {}",
            report.unused.len(),
            report.unused.join(", ")
        );
    }
}

struct Embedded {
    embeddings: Tensor,
    attention_mask: Tensor,
    truncated: usize,
}

fn embed(
    model: &LoadedEncoder,
    tokenizer: &Tokenizer,
    sequences: &[String],
    args: &EmbedArgs,
) -> anyhow::Result<Embedded> {
    let encodings: Vec<Encoding> = sequences
        .iter()
        .map(|s| tokenizer.encode(s, args.max_length))
        .collect::<Result<_, _>>()?;
    let truncated = sequences
        .iter()
        .zip(&encodings)
        .filter(|(seq, enc)| covered_bp(enc) < seq.len())
        .count();
    let longest = encodings.iter().map(Encoding::len).max().unwrap_or(0);
    // Token batches are built on the CPU; the encoder moves them to its device.
    let device = candle_core::Device::Cpu;
    let mut rows = Vec::with_capacity(sequences.len());
    let mut masks = Vec::with_capacity(sequences.len());
    for chunk in encodings.chunks(args.batch_size) {
        let batch_longest = chunk.iter().map(Encoding::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(chunk.len() * batch_longest);
        let mut mask = Vec::with_capacity(chunk.len() * batch_longest);
        for encoding in chunk {
            let mut padded = encoding.clone();
            padded.pad_to(batch_longest, tokenizer.pad_id());
            ids.extend(padded.input_ids);
            mask.extend(padded.attention_mask);
        }
        let ids = Tensor::from_vec(ids, (chunk.len(), batch_longest), &device)?;
        let mask = Tensor::from_vec(mask, (chunk.len(), batch_longest), &device)?;
        let hidden = model
            .encoder
            .forward(&ids, &mask)?
            .last_hidden_state
            .to_device(&device)?;
        let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let pooled = match args.pooling {
            Pooling::None => {
                // Padding rows are zero so that the file does not depend on batch composition.
                let zeroed = hidden.broadcast_mul(&mask_f)?;
                let pad = longest - batch_longest;
                if pad > 0 {
                    zeroed.pad_with_zeros(1, 0, pad)?
                } else {
                    zeroed
                }
            }
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?;
                summed.broadcast_div(&mask_f.sum(1)?.clamp(1.0, f64::MAX)?)?
            }
            Pooling::Max => {
                // Padding gets -inf so it never wins the maximum.
                let neg = ((mask_f.ones_like()? - &mask_f)? * -1e30)?;
                hidden.broadcast_add(&neg)?.max(1)?
            }
        };
        rows.push(pooled);
        let mask_u8 = mask.to_dtype(DType::U8)?;
        let pad = longest - batch_longest;
        masks.push(if pad > 0 {
            mask_u8.pad_with_zeros(1, 0, pad)?
        } else {
            mask_u8
        });
    }
    Ok(Embedded {
        embeddings: Tensor::cat(&rows, 0)?,
        attention_mask: Tensor::cat(&masks, 0)?.to_dtype(DType::I64)?,
        truncated,
    })
}

/// The number of input bases the tokens cover (the end of the last token's span).
fn covered_bp(encoding: &Encoding) -> usize {
    encoding
        .spans
        .iter()
        .rev()
        .find_map(|span| span.map(|(_, end)| end))
        .unwrap_or(0)
}

/// The MLM head's logits for every token of every sequence, right-padded with zeros to the
/// longest.
fn mlm_logits(
    dir: &Path,
    tokenizer: &Tokenizer,
    sequences: &[String],
    args: &EmbedArgs,
    device: &candle_core::Device,
) -> anyhow::Result<Tensor> {
    let model = crate::pretrain::model::MaskedLm::load(dir, device, None).with_context(|| {
        format!(
            "cannot load the model and its MLM head from {}",
            dir.display()
        )
    })?;
    let encodings = sequences
        .iter()
        .map(|s| tokenizer.encode(s, args.max_length))
        .collect::<Result<Vec<_>, _>>()?;
    let longest = encodings.iter().map(Encoding::len).max().unwrap_or(0);
    let cpu = candle_core::Device::Cpu;
    let mut rows = Vec::new();
    for chunk in encodings.chunks(args.batch_size) {
        let batch_longest = chunk.iter().map(Encoding::len).max().unwrap_or(0);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for encoding in chunk {
            let mut padded = encoding.clone();
            padded.pad_to(batch_longest, tokenizer.pad_id());
            ids.extend(padded.input_ids);
            mask.extend(padded.attention_mask);
        }
        let ids = Tensor::from_vec(ids, (chunk.len(), batch_longest), &cpu)?;
        let mask_t = Tensor::from_vec(mask, (chunk.len(), batch_longest), &cpu)?;
        let logits = model.forward(&ids, &mask_t)?.to_device(&cpu)?.detach();
        let keep = mask_t.to_dtype(DType::F32)?.unsqueeze(2)?;
        let logits = logits.broadcast_mul(&keep)?;
        rows.push(if longest > batch_longest {
            logits.pad_with_zeros(1, 0, longest - batch_longest)?
        } else {
            logits
        });
    }
    Ok(Tensor::cat(&rows, 0)?)
}

fn write_atomically(path: &Path, tensors: Vec<(String, Tensor)>) -> anyhow::Result<()> {
    let tmp = tmp_path(path);
    let tensors: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&tensors, &tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}
