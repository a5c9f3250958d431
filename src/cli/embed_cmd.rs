use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct EmbedArgs {}

pub fn run(_args: EmbedArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
