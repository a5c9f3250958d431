use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct TokenizeArgs {}

pub fn run(_args: TokenizeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
