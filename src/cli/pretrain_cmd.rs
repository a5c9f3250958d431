//! `dnatune pretrain`: masked-language-model pretraining (from scratch or continued) on
//! unlabelled sequences, resumable from its newest checkpoint.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::pretrain::{pretrain, read_run_config, PretrainConfig, PretrainEvent};
use crate::train::{Cancel, DeviceChoice, Schedule};

#[derive(Debug, clap::Args)]
pub struct PretrainArgs {
    /// The starting model (folder in Hub layout or Hub id); with --from-scratch, a folder
    /// whose config.json and tokenizer files define the new model.
    #[arg(long, value_name = "DIR_OR_ID", required_unless_present = "resume")]
    pub model: Option<String>,
    /// Initialise every weight randomly instead of reading the model's weights.
    #[arg(long)]
    pub from_scratch: bool,
    /// Unlabelled sequence files (FASTA/FASTQ, any compression, or one sequence per line).
    #[arg(value_name = "FILE", required_unless_present = "resume")]
    pub inputs: Vec<PathBuf>,
    /// The run folder: pretrain.json, history.jsonl, checkpoint-NNNNNNN/ (each a model
    /// folder in Hub layout), latest.
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its newest checkpoint (optimizer state included).
    /// Only --max-steps, --device, --eval-every and --checkpoint-every may change.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "out", "from_scratch"])]
    pub resume: Option<PathBuf>,
    /// Window length in bp (non-overlapping windows of every record).
    #[arg(long = "window", value_name = "BP", default_value_t = 1000)]
    pub window_bp: usize,
    /// Tokens per window, special tokens included (default: the model's maximum).
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
    /// Fraction of tokens chosen for prediction (80 % masked, 10 % random, 10 % kept).
    #[arg(long, default_value_t = 0.15)]
    pub mask_probability: f64,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long)]
    pub max_steps: Option<u64>,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.05)]
    pub warmup_ratio: f64,
    #[arg(long, value_enum, default_value = "linear")]
    pub schedule: Schedule,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Fraction of windows held out for the validation loss.
    #[arg(long, default_value_t = 0.02)]
    pub validation_fraction: f64,
    #[arg(long, value_name = "N")]
    pub eval_every: Option<u64>,
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// Print one JSON event per line on standard output.
    #[arg(long)]
    pub json_events: bool,
}

impl PretrainArgs {
    fn to_config(&self) -> anyhow::Result<(PretrainConfig, bool)> {
        if let Some(dir) = &self.resume {
            let mut cfg = read_run_config(dir)?;
            cfg.out_dir = dir.clone();
            if let Some(steps) = self.max_steps {
                cfg.max_steps = steps;
            }
            if let Some(device) = self.device {
                cfg.device = device;
            }
            if let Some(n) = self.eval_every {
                cfg.eval_every = n;
            }
            if let Some(n) = self.checkpoint_every {
                cfg.checkpoint_every = n;
            }
            return Ok((cfg, true));
        }
        let defaults = PretrainConfig::default();
        Ok((
            PretrainConfig {
                model: self.model.clone().unwrap_or_default(),
                from_scratch: self.from_scratch,
                inputs: self.inputs.clone(),
                window_bp: self.window_bp,
                max_length: self.max_length,
                mask_probability: self.mask_probability,
                batch_size: self.batch_size,
                max_steps: self.max_steps.unwrap_or(defaults.max_steps),
                learning_rate: self.lr,
                warmup_ratio: self.warmup_ratio,
                schedule: self.schedule,
                weight_decay: self.weight_decay,
                validation_fraction: self.validation_fraction,
                eval_every: self.eval_every.unwrap_or(defaults.eval_every),
                checkpoint_every: self.checkpoint_every.unwrap_or(defaults.checkpoint_every),
                seed: self.seed,
                device: self.device.unwrap_or_default(),
                out_dir: self.out.clone().unwrap_or(defaults.out_dir),
                ..defaults
            },
            false,
        ))
    }
}

pub fn run(args: PretrainArgs) -> anyhow::Result<ExitCode> {
    let (cfg, resume) = args.to_config()?;
    let cancel = Cancel::new();
    let stdout = std::io::stdout();
    let summary = pretrain(&cfg, resume, &cancel, |event| {
        if args.json_events {
            if let Ok(line) = serde_json::to_string(&event) {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        } else {
            show(&event);
        }
    })?;
    if !args.json_events {
        eprintln!(
            "pretrained {} steps in {:.0} s; newest checkpoint: {}",
            summary.steps,
            summary.elapsed_s,
            summary.checkpoint.display()
        );
        if let (Some(loss), Some(accuracy)) = (summary.validation_loss, summary.validation_accuracy)
        {
            eprintln!("validation: MLM loss {loss:.4}, masked-token accuracy {accuracy:.4}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(event: &PretrainEvent) {
    match event {
        PretrainEvent::DataLoaded {
            files,
            records,
            train_windows,
            validation_windows,
            skipped_windows,
        } => eprintln!(
            "data: {records} records from {files} file(s): {train_windows} training and \
             {validation_windows} validation windows ({skipped_windows} left out: too many \
             non-ACGT bases)"
        ),
        PretrainEvent::ModelReady {
            family,
            device,
            parameters,
            from_scratch,
            start_step,
            total_steps,
            max_length,
            masking,
        } => eprintln!(
            "model: {family}, {parameters} parameters{}, on {device}; steps {start_step} → \
             {total_steps}; max {max_length} tokens; masking by {masking}",
            if *from_scratch { " (from scratch)" } else { "" }
        ),
        PretrainEvent::Step {
            step,
            total_steps,
            loss,
            masked_accuracy,
            sequences_per_second,
            ..
        } => {
            if step % 10 == 0 || step == total_steps {
                eprintln!(
                    "step {step}/{total_steps} loss {loss:.4} masked accuracy \
                     {masked_accuracy:.3} ({sequences_per_second:.1} seq/s)"
                );
            }
        }
        PretrainEvent::Eval {
            step,
            loss,
            masked_accuracy,
        } => eprintln!(
            "step {step}: validation loss {loss:.4}, masked accuracy {masked_accuracy:.4}"
        ),
        PretrainEvent::CheckpointSaved { path, .. } => {
            eprintln!("checkpoint: {}", path.display())
        }
        PretrainEvent::Finished { .. } => {}
    }
}
