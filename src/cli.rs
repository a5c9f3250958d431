//! The command line: `dnatune <subcommand>`. Each subcommand's arguments and behaviour
//! live in their own file under `src/cli/`; this file only parses and dispatches.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod data_cmd;
mod embed_cmd;
mod eval_cmd;
mod models_cmd;
mod predict_cmd;
mod pretrain_cmd;
mod tokenize_cmd;
mod train_cmd;

#[derive(Debug, Parser)]
#[command(
    name = "dnatune",
    version,
    about = "Fine-tune pretrained DNA language models with LoRA on your own sequences",
    long_about = "Fine-tune pretrained DNA language models (DNABERT, DNABERT-2, Nucleotide Transformer, \
GENA-LM) with LoRA on your own FASTA/FASTQ/CSV data.\n\nRun `dnatune` with no arguments to open the desktop app."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read, label, window and split sequence data; print a QC report.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Fine-tune a model with LoRA on labelled sequences; writes the adapter and a report.
    Train(Box<train_cmd::TrainArgs>),
    /// Masked-language-model pretraining on unlabelled sequences: from scratch, or continued
    /// pretraining of any model; resumable from its newest checkpoint.
    Pretrain(Box<pretrain_cmd::PretrainArgs>),
    /// Predict the class of every record of new FASTA/FASTQ files with a fine-tuned adapter.
    Predict(predict_cmd::PredictArgs),
    /// Score a fine-tuned adapter on labelled data: metrics and confusion matrix.
    Eval(Box<eval_cmd::EvalArgs>),
    /// Open the desktop app with these files already added (what the desktop launcher runs).
    Open {
        /// FASTA/FASTQ/CSV files to add.
        files: Vec<std::path::PathBuf>,
        /// Preselect this model (a folder in Hub layout or a Hub id).
        #[arg(long, value_name = "DIR_OR_ID")]
        model: Option<String>,
    },
    /// List the known pretrained DNA models.
    Models(models_cmd::ModelsArgs),
    /// Tokenize sequences (one per line on stdin) with a model's tokenizer; prints JSON lines.
    Tokenize(tokenize_cmd::TokenizeArgs),
    /// Write a model's hidden states for each input sequence to a safetensors file.
    Embed(embed_cmd::EmbedArgs),
}

/// Parses `args` (including the program name) and runs the subcommand.
pub fn run(args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let parsed = Cli::command()
        .try_get_matches_from(with_implicit_open(args))
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            // --help and --version are "errors" to clap but successes to the user.
            let code = if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
            let _ = err.print();
            return Ok(code);
        }
    };
    match cli.command {
        Command::Data(cmd) => data_cmd::run(cmd),
        Command::Train(args) => {
            let given = matches
                .subcommand_matches("train")
                .map(train_cmd::GivenArgs::from_matches)
                .unwrap_or_default();
            train_cmd::run(*args, &given)
        }
        Command::Pretrain(args) => pretrain_cmd::run(*args),
        Command::Predict(args) => predict_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(*args),
        Command::Open { files, model } => open(files, model),
        Command::Models(args) => models_cmd::run(args),
        Command::Tokenize(args) => tokenize_cmd::run(args),
        Command::Embed(args) => embed_cmd::run(args),
    }
}

/// `dnatune FILE…` means `dnatune open FILE…`: file managers and installers (a Windows file
/// association, "Open With") pass the files alone. Applies when the first argument is no
/// subcommand and no option, and names an existing file or folder.
pub fn with_implicit_open(mut args: Vec<OsString>) -> Vec<OsString> {
    let Some(first) = args.get(1) else {
        return args;
    };
    let is_option = first.to_string_lossy().starts_with('-');
    let is_subcommand = first
        .to_str()
        .is_some_and(|name| name == "help" || Cli::command().find_subcommand(name).is_some());
    if !is_option && !is_subcommand && std::path::Path::new(first).exists() {
        args.insert(1, OsString::from("open"));
    }
    args
}

#[cfg(feature = "gui")]
fn open(files: Vec<std::path::PathBuf>, model: Option<String>) -> anyhow::Result<ExitCode> {
    crate::gui::run(files, model)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "gui"))]
fn open(_files: Vec<std::path::PathBuf>, _model: Option<String>) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this dnatune was built without the desktop app (feature `gui`); use the command line (`dnatune --help`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_file_alone_opens_the_app_with_it() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let fasta = tmp.path().join("reads.fa");
        std::fs::write(&fasta, ">a\nACGT\n").expect("write");
        let fasta = fasta.to_str().expect("utf-8 path");
        assert_eq!(
            with_implicit_open(os(&["dnatune", fasta])),
            os(&["dnatune", "open", fasta])
        );
        let cli = Cli::try_parse_from(with_implicit_open(os(&["dnatune", fasta, fasta])))
            .expect("parses as open");
        match cli.command {
            Command::Open { files, model } => {
                assert_eq!(files.len(), 2);
                assert_eq!(model, None);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn subcommands_options_and_missing_files_are_left_alone() {
        for args in [
            &["dnatune", "train", "--help"][..],
            &["dnatune", "--version"],
            &["dnatune", "help"],
            &["dnatune", "no-such-file.fa"],
        ] {
            assert_eq!(with_implicit_open(os(args)), os(args));
        }
    }
}
