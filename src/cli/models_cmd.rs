//! `dnatune models`: the catalog of known pretrained DNA models.

use std::io::Write;
use std::process::ExitCode;

use crate::model::catalog::{self, CATALOG};

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Print the catalog as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, CATALOG)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", table())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The catalog as an aligned text table, with a licence note under it.
pub fn table() -> String {
    let header = [
        "HUB ID",
        "FAMILY",
        "PARAMS",
        "MAX TOKENS",
        "CONTEXT",
        "TOKENIZER",
        "LORA TARGETS",
        "LICENCE",
    ];
    let rows: Vec<[String; 8]> = CATALOG
        .iter()
        .map(|e| {
            let approx = if e.context_is_estimate { "~" } else { "" };
            [
                e.hub_id.to_string(),
                e.family.display_name().to_string(),
                format!("~{}", catalog::format_parameters(e.parameters)),
                e.max_tokens.to_string(),
                format!("{approx}{} bp", e.context_bp),
                e.tokenizer.label().to_string(),
                e.default_lora_targets.join(", "),
                if e.non_commercial {
                    format!("{} (non-commercial)", e.licence)
                } else {
                    e.licence.to_string()
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut push_row = |cells: &[&str]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    };
    push_row(&header);
    for row in &rows {
        push_row(&row.each_ref().map(String::as_str));
    }
    text.push_str(
        "\nParameter counts are approximate; '~' context is an average for BPE tokenizers.\n\
         Nucleotide Transformer weights are CC BY-NC-SA 4.0: not for commercial use.\n",
    );
    text
}
