use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {}

pub fn run(_args: ModelsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
