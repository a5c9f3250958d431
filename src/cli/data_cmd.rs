//! `dnatune data …`

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Read the inputs, label, window and split them, and print a QC report.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {}

pub fn run(cmd: DataCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Inspect(_args) => anyhow::bail!("`dnatune data inspect` is not available yet"),
    }
}
