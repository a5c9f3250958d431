//! Tokenizer throughput on real promoter data, next to the Python tokenizers of transformers.
//!
//! `cargo bench --no-default-features --bench tokenize_speed` reads the first 10,000 human
//! promoter sequences of 300 bp (`shared/data/promoters_human_epd_gena300`) and encodes every
//! one with each tokenizer kind dnatune has, loaded from the shared fixtures' model
//! folders (DNABERT 6-mer, Nucleotide Transformer v1 and v2, GENA-LM's BPE `tokenizer.json`,
//! the DNABERT-2 fixture's small BPE) and the real DNABERT k = 3..6 tokenizer files. One thread,
//! no truncation; best of three rounds (one for the slower Python side). Then, when a Python environment with `transformers` is
//! found (`DNATUNE_BENCH_VENV`, else `bench/.venv-torch`), `bench/tokenize_reference.py` does
//! the same with transformers' tokenizers on the same sequences, and the table shows the ratio.
//! See `bench/README.md`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dnatune::tokenize::Tokenizer;

const ROUNDS: usize = 3;
/// Sequences both sides encode: the first 10,000 (3 Mbp). Python's slow k-mer and ESM
/// tokenizers take minutes for all 59,196.
const SEQUENCES: usize = 10_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probing
    }
    let Some(shared) = shared_dir() else {
        println!("skipped: shared/data is missing (set DNATUNE_SHARED or put it at ../shared)");
        return;
    };
    let mut sequences = read_promoters(&shared.join("data/promoters_human_epd_gena300"));
    sequences.truncate(SEQUENCES);
    let bp: usize = sequences.iter().map(String::len).sum();
    println!(
        "{} sequences, {} bp (human promoters, 300 bp each), one thread, best of {ROUNDS} (dnatune) and of 1 (transformers)",
        sequences.len(),
        bp
    );

    let cases: Vec<(&str, PathBuf)> = vec![
        (
            "DNABERT 3-mer",
            shared.join("data/tokenizers/dnabert1_kmer/k3"),
        ),
        (
            "DNABERT 4-mer",
            shared.join("data/tokenizers/dnabert1_kmer/k4"),
        ),
        (
            "DNABERT 5-mer",
            shared.join("data/tokenizers/dnabert1_kmer/k5"),
        ),
        (
            "DNABERT 6-mer",
            shared.join("data/tokenizers/dnabert1_kmer/k6"),
        ),
        ("NT v1 (6-mer)", shared.join("fixtures/nt_v1/model")),
        ("NT v2 (6-mer)", shared.join("fixtures/nt_v2/model")),
        ("GENA-LM BPE 32k", shared.join("fixtures/gena_lm/model")),
        (
            "DNABERT-2 BPE (fixture, 309)",
            shared.join("fixtures/dnabert2/model"),
        ),
    ];

    // One file of sequences for the Python side.
    let dir = tempfile::tempdir().expect("temp dir");
    let seq_file = dir.path().join("sequences.txt");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&seq_file).expect("create"));
        for s in &sequences {
            writeln!(out, "{s}").expect("write");
        }
    }

    let reference = python_reference(&cases, &seq_file);
    println!();
    println!("| tokenizer | tokens/s (dnatune) | Mbp/s | tokens/s (transformers) | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (name, dir) in &cases {
        let tokenizer = Tokenizer::from_model_dir(dir)
            .unwrap_or_else(|e| panic!("{name}: {}: {e}", dir.display()));
        let mut best = f64::INFINITY;
        let mut tokens = 0usize;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            tokens = 0;
            for s in &sequences {
                let encoding = tokenizer.encode(s, None).expect("encode");
                tokens += encoding.len();
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        let rate = tokens as f64 / best;
        let (theirs, ratio) = match reference.iter().find(|(n, _, _)| n == name) {
            Some((_, their_tokens, their_rate)) => {
                assert_eq!(
                    *their_tokens, tokens,
                    "{name}: transformers counts {their_tokens} tokens, dnatune {tokens}"
                );
                (
                    format!("{their_rate:.3e}"),
                    format!("{:.1}", rate / their_rate),
                )
            }
            None => ("–".to_string(), "–".to_string()),
        };
        println!(
            "| {name} | {rate:.3e} | {:.1} | {theirs} | {ratio} |",
            bp as f64 / best / 1e6
        );
        println!(
            "RESULT {{\"tokenizer\":\"{name}\",\"tokens\":{tokens},\"seconds\":{best},\"tokens_per_s\":{rate}}}"
        );
    }
}

/// `(name, tokens, tokens/s)` from `bench/tokenize_reference.py`, or nothing (with a message)
/// when no Python environment with transformers is found.
fn python_reference(cases: &[(&str, PathBuf)], seq_file: &Path) -> Vec<(String, usize, f64)> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var_os("DNATUNE_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("bench/.venv-torch"));
    let python = venv.join("bin/python");
    if !python.exists() {
        println!(
            "(no Python reference: {} is missing; set DNATUNE_BENCH_VENV to a venv with transformers)",
            python.display()
        );
        return Vec::new();
    }
    let mut command = Command::new(&python);
    command
        .arg(repo.join("bench/tokenize_reference.py"))
        .arg(seq_file)
        .arg("1");
    for (name, dir) in cases {
        command.arg(format!("{name}={}", dir.display()));
    }
    let output = command
        .env("OMP_NUM_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .expect("run bench/tokenize_reference.py");
    if !output.status.success() {
        println!(
            "(the Python reference failed: {})",
            String::from_utf8_lossy(&output.stderr)
        );
        return Vec::new();
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("RESULT\t")?.split('\t');
            let name = parts.next()?.to_string();
            let tokens = parts.next()?.parse().ok()?;
            let rate = parts.next()?.parse().ok()?;
            Some((name, tokens, rate))
        })
        .collect()
}

/// The `sequence` column of every fold's CSV.
fn read_promoters(dir: &Path) -> Vec<String> {
    let mut sequences = Vec::new();
    for fold in 1..=5 {
        let path = dir.join(format!("fold_{fold}.csv.gz"));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reader = BufReader::new(flate2::read::GzDecoder::new(file));
        for line in reader.lines().skip(1) {
            let line = line.expect("read line");
            let sequence = line.split(',').nth(1).expect("a sequence column");
            sequences.push(sequence.to_string());
        }
    }
    sequences
}

fn shared_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DNATUNE_SHARED") {
        let dir = PathBuf::from(dir);
        return dir.join("data").is_dir().then_some(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    dir.join("data").is_dir().then_some(dir)
}
