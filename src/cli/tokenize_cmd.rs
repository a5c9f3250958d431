//! `dnatune tokenize`: one sequence per line on stdin → one JSON object per line on stdout, through
//! the model's reference tokenizer pipeline (DNABERT upper-cases; the others take the text as is).

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;

use crate::model::hub::{self, HubProgress};
use crate::tokenize::Tokenizer;

#[derive(Debug, clap::Args)]
pub struct TokenizeArgs {
    /// A model folder in Hugging Face Hub layout, or a Hub id such as zhihan1996/DNABERT-2-117M.
    #[arg(long, value_name = "DIR_OR_ID")]
    pub model: String,
    /// Truncate to this many tokens, special tokens included (default: the model's maximum).
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
}

#[derive(serde::Serialize)]
struct TokenizedLine<'a> {
    input_ids: &'a [u32],
    attention_mask: &'a [u32],
}

pub fn run(args: TokenizeArgs) -> anyhow::Result<ExitCode> {
    let dir = hub::resolve_model(&args.model, report_progress)?;
    let tokenizer = Tokenizer::from_model_dir(&dir)?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    tokenize_lines(&tokenizer, args.max_length, stdin, stdout)?;
    Ok(ExitCode::SUCCESS)
}

fn tokenize_lines(
    tokenizer: &Tokenizer,
    max_length: Option<usize>,
    mut input: impl BufRead,
    output: impl Write,
) -> anyhow::Result<()> {
    let mut output = std::io::BufWriter::new(output);
    let mut buffer = Vec::new();
    let mut line_number = 0u64;
    loop {
        buffer.clear();
        let read = input
            .read_until(b'\n', &mut buffer)
            .context("cannot read standard input")?;
        if read == 0 {
            break;
        }
        line_number += 1;
        let line = std::str::from_utf8(&buffer).with_context(|| {
            format!("standard input line {line_number} is not valid UTF-8 text; give one DNA sequence per line")
        })?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let encoding = tokenizer
            .encode(line, max_length)
            .with_context(|| format!("standard input line {line_number}"))?;
        serde_json::to_writer(
            &mut output,
            &TokenizedLine {
                input_ids: &encoding.input_ids,
                attention_mask: &encoding.attention_mask,
            },
        )?;
        output.write_all(b"\n")?;
    }
    output.flush().context("cannot write standard output")?;
    Ok(())
}

/// Download progress goes to stderr so stdout stays pure JSON.
pub(crate) fn report_progress(event: HubProgress) {
    match event {
        HubProgress::Cached { model_id, path } => {
            eprintln!("using {model_id} from the cache: {}", path.display())
        }
        HubProgress::FileStarted { file } => eprintln!("fetching {file}"),
        HubProgress::FileDone { .. }
        | HubProgress::FileBytes { .. }
        | HubProgress::BatchBytes { .. } => {}
    }
}
