//! `dnatune tokenize` and `dnatune models` through the real binary: fixture cases piped on stdin,
//! Hub ids resolved through `HF_HOME` / `HF_HUB_OFFLINE` of the child process.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const FAMILIES: [&str; 5] = ["dnabert1", "dnabert2", "nt_v1", "nt_v2", "gena_lm"];

mod common;

/// Runs the binary with `stdin` piped in and a cache that cannot be the user's.
fn dnatune(args: &[&str], stdin: &str, hf_home: &Path, offline: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dnatune"));
    command
        .args(args)
        .env("HF_HOME", hf_home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if offline {
        command.env("HF_HUB_OFFLINE", "1");
    } else {
        command.env_remove("HF_HUB_OFFLINE");
    }
    let mut child = command.spawn().expect("run dnatune");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    // A run that fails early (e.g. offline) exits without reading its input.
    if let Err(err) = written {
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::BrokenPipe,
            "write stdin: {err}"
        );
    }
    child.wait_with_output().expect("dnatune output")
}

fn json_lines(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "dnatune failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .expect("utf-8 stdout")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each stdout line is JSON"))
        .collect()
}

#[test]
fn fixture_cases_through_the_binary() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    for family in FAMILIES {
        let dir = shared.join("fixtures").join(family);
        let cases: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("tokenizer_cases.json")).unwrap(),
        )
        .unwrap();
        let cases = cases["cases"].as_array().unwrap();
        let model_max = cases
            .iter()
            .find(|c| c["name"] == "truncate_model_max")
            .and_then(|c| c["max_length"].as_u64())
            .unwrap();
        // One run per max_length; a case whose input holds a line break or is blank cannot be one
        // stdin line.
        let mut groups: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
        for case in cases {
            let input = case["input"].as_str().unwrap();
            if input.contains(['\n', '\r']) || input.trim().is_empty() {
                continue;
            }
            groups
                .entry(case["max_length"].as_u64().unwrap())
                .or_default()
                .push(case);
        }
        let model = dir.join("model");
        for (max_length, group) in groups {
            let max_text = max_length.to_string();
            let mut args = vec!["tokenize", "--model", model.to_str().unwrap()];
            if max_length != model_max {
                args.extend(["--max-length", &max_text]);
            } // else: the default must be the model maximum.
            let stdin: String = group
                .iter()
                .map(|c| format!("{}\n\n", c["input"].as_str().unwrap()))
                .collect();
            let lines = json_lines(&dnatune(&args, &stdin, home.path(), true));
            assert_eq!(lines.len(), group.len(), "{family}: one line per sequence");
            for (case, line) in group.iter().zip(&lines) {
                let name = case["name"].as_str().unwrap();
                assert_eq!(line["input_ids"], case["input_ids"], "{family}/{name}");
                assert_eq!(
                    line["attention_mask"], case["attention_mask"],
                    "{family}/{name}"
                );
                assert_eq!(
                    line.as_object().unwrap().len(),
                    2,
                    "{family}/{name}: only the two keys"
                );
            }
        }
    }
}

#[test]
fn hub_id_from_hf_home_cache_and_offline_error() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let repo = home
        .path()
        .join("hub/models--InstaDeepAI--nucleotide-transformer-v2-100m-multi-species");
    let snapshot = repo.join("snapshots/abc123");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
    for entry in std::fs::read_dir(shared.join("fixtures/nt_v2/model")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
    }
    let output = dnatune(
        &[
            "tokenize",
            "--model",
            "InstaDeepAI/nucleotide-transformer-v2-100m-multi-species",
        ],
        "ACGTACGTACGTA\n",
        home.path(),
        true,
    );
    let lines = json_lines(&output);
    // <cls> ACGTAC GTACGT A in the v2 vocab order (fixture case upper_not_mult6).
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["input_ids"],
        serde_json::json!([3, 728, 3379, 4102])
    );

    let output = dnatune(
        &["tokenize", "--model", "zhihan1996/DNA_bert_6"],
        "ACGT\n",
        home.path(),
        true,
    );
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing but JSON on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("zhihan1996/DNA_bert_6")
            && stderr.contains("offline")
            && stderr.contains("local folder"),
        "{stderr}"
    );
}

#[test]
fn non_utf8_input_names_the_line() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let model = shared.join("fixtures/dnabert1/model");
    let mut command = Command::new(env!("CARGO_BIN_EXE_dnatune"));
    command
        .args(["tokenize", "--model", model.to_str().unwrap()])
        .env("HF_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    // Small enough for the pipe buffer, so the write completes before dnatune reads it.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ACGTACGT\nAC\xffGT\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("UTF-8"),
        "{stderr}"
    );
}

#[test]
fn models_lists_the_catalog() {
    let home = tempfile::tempdir().unwrap();
    let output = dnatune(&["models"], "", home.path(), true);
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    for id in [
        "zhihan1996/DNA_bert_3",
        "zhihan1996/DNABERT-2-117M",
        "InstaDeepAI/nucleotide-transformer-2.5b-multi-species",
        "InstaDeepAI/nucleotide-transformer-v2-500m-multi-species",
        "AIRI-Institute/gena-lm-bert-large-t2t",
    ] {
        assert!(table.contains(id), "{id} missing from:\n{table}");
    }
    assert!(table.contains("non-commercial"));

    let output = dnatune(&["models", "--json"], "", home.path(), true);
    assert!(output.status.success());
    let entries: Value = serde_json::from_slice(&output.stdout).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 18);
    // The bundled model first: the offline default.
    assert_eq!(entries[0]["hub_id"], "dnatune/dnatune-mini");
    let nt: Vec<&Value> = entries
        .iter()
        .filter(|e| e["hub_id"].as_str().unwrap().starts_with("InstaDeepAI/"))
        .collect();
    assert_eq!(nt.len(), 8);
    assert!(nt.iter().all(|e| e["non_commercial"] == Value::Bool(true)));
}
