//! `dnatune predict`: class probabilities for every record of new FASTA/FASTQ files, as CSV.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::data::manifest::write_atomically;
use crate::data::read_sequences;
use crate::predict::{predictions_csv, Predictor};
use crate::train::{resolve_device, DeviceChoice};

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A dnatune run folder, its adapter/ folder, or any PEFT LoRA adapter folder.
    #[arg(long, value_name = "DIR")]
    pub adapter: PathBuf,
    /// The base model (folder or Hub id); default: the one the adapter names.
    #[arg(long, value_name = "DIR_OR_ID")]
    pub model: Option<String>,
    /// FASTA/FASTQ files (plain or compressed) or text files with one sequence per line.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// The CSV to write: id, prob_<label>…, predicted_label, n_windows; one row per record,
    /// in input order.
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Where to run: auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

pub fn run(args: PredictArgs) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let device = resolve_device(args.device)?;
    let mut predictor = Predictor::load(&args.adapter, args.model.as_deref(), &device)?;
    predictor.batch_size = args.batch_size;
    let mut rows = Vec::new();
    for input in &args.inputs {
        let records = read_sequences(input)?;
        if records.is_empty() {
            anyhow::bail!(
                "{} holds no sequences; give a FASTA/FASTQ file or one sequence per line",
                input.display()
            );
        }
        let predictions =
            predictor.predict(records.iter().map(|r| (r.id.as_str(), r.bases.as_slice())))?;
        rows.extend(predictions);
    }
    let bytes = predictions_csv(&predictor.labels, &rows);
    write_atomically(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {} predictions ({} classes: {}) to {}",
        rows.len(),
        predictor.labels.len(),
        predictor.labels.join(", "),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
