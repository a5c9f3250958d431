//! `dnatune eval`: metrics and confusion matrix of a fine-tuned adapter on labelled data.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::predict::{logits, Predictor};
use crate::train::metrics::{aggregate, cross_entropy, evaluate, softmax_rows, Metrics};
use crate::train::{resolve_device, DeviceChoice};

use super::data_cmd::DataArgs;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A dnatune run folder, its adapter/ folder, or any PEFT LoRA adapter folder.
    #[arg(long, value_name = "DIR")]
    pub adapter: PathBuf,
    /// The base model (folder or Hub id); default: the one the adapter names.
    #[arg(long, value_name = "DIR_OR_ID")]
    pub model: Option<String>,
    /// Labelled data, given as for `train`; every record is scored (no split). Windowing and
    /// aggregation come from the adapter's dnatune.json.
    #[command(flatten)]
    pub data: DataArgs,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Where to run: auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Print the metrics as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    if args.data.label_by_feature.is_some() {
        // eval scores whole records; feature labels belong to windows of a record.
        anyhow::bail!(
            "eval scores whole records and cannot use --label-by-feature (its labels belong to \
             windows of a record); the test metrics of `dnatune train` with the same options \
             evaluate windows labelled by features"
        );
    }
    let device = resolve_device(args.device)?;
    let mut predictor = Predictor::load(&args.adapter, args.model.as_deref(), &device)?;
    predictor.batch_size = args.batch_size;
    let data = crate::data::load(&args.data.load_options()?)?;
    // The data's class names must be labels the adapter knows.
    let label_ids: HashMap<&str, u32> = predictor
        .labels
        .iter()
        .enumerate()
        .map(|(id, label)| (label.as_str(), id as u32))
        .collect();
    let mut class_to_label = Vec::with_capacity(data.classes.len());
    for class in &data.classes {
        match label_ids.get(class.as_str()) {
            Some(&id) => class_to_label.push(id),
            None => anyhow::bail!(
                "the data has the label `{class}`, which the adapter {} does not know (its labels: {}); \
                 name the classes as in training (--class NAME=PATH)",
                args.adapter.display(),
                predictor.labels.join(", ")
            ),
        }
    }
    if data.records.is_empty() {
        anyhow::bail!("the data holds no records to evaluate");
    }
    let (encodings, owner) =
        predictor.encode_records(data.records.iter().map(|record| data.sequence(record)))?;
    let num_labels = predictor.labels.len();
    let window_logits = logits(
        &predictor.classifier,
        &encodings,
        predictor.tokenizer.pad_id(),
        predictor.batch_size,
        &device,
    )?;
    let record_label = |record: u32| class_to_label[data.records[record as usize].class as usize];
    let window_labels: Vec<u32> = owner.iter().map(|&r| record_label(r)).collect();
    let probs = softmax_rows(&window_logits, num_labels);
    let loss = cross_entropy(&window_logits, &window_labels, num_labels, None);
    let window = evaluate(&probs, &window_labels, num_labels, Some(loss));
    let aggregated = aggregate(&probs, num_labels, &owner, predictor.aggregation);
    let record_labels: Vec<u32> = aggregated.groups.iter().map(|&r| record_label(r)).collect();
    let record = evaluate(&aggregated.probs, &record_labels, num_labels, None);
    if args.json {
        let json = serde_json::json!({
            "labels": predictor.labels,
            "window": window,
            "record": record,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_metrics(&predictor.labels, &window, &record);
    }
    Ok(ExitCode::SUCCESS)
}

/// The metrics table (window and record level) and the record-level confusion matrix.
pub fn print_metrics(labels: &[String], window: &Metrics, record: &Metrics) {
    eprintln!(
        "  {:<8} {:>7} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "level", "n", "loss", "accuracy", "precision", "recall", "F1", "MCC", "AUROC"
    );
    for (level, m) in [("window", window), ("record", record)] {
        eprintln!(
            "  {:<8} {:>7} {:>8} {:>8.4} {:>9.4} {:>8.4} {:>8.4} {:>8.4} {:>8}",
            level,
            m.n,
            m.loss.map_or("-".to_string(), |l| format!("{l:.4}")),
            m.accuracy,
            m.precision,
            m.recall,
            m.f1,
            m.mcc,
            m.auroc.map_or("-".to_string(), |a| format!("{a:.4}"))
        );
    }
    let width = labels.iter().map(String::len).max().unwrap_or(4).max(6);
    eprintln!("  confusion matrix (records; rows: true, columns: predicted)");
    let mut header = format!("  {:<width$}", "");
    for label in labels {
        header.push_str(&format!(" {label:>width$}"));
    }
    eprintln!("{header}");
    for (row, label) in labels.iter().enumerate() {
        let mut line = format!("  {label:<width$}");
        for col in 0..labels.len() {
            line.push_str(&format!(
                " {:>width$}",
                record.confusion.get(row as u32, col as u32)
            ));
        }
        eprintln!("{line}");
    }
}
