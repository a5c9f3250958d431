//! Fine-tuning end to end: `dnatune train` on real promoter data with a fixture checkpoint,
//! then `predict` and `eval` with the exported adapter, determinism, cancellation, and the
//! errors a user can run into.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dnatune::data::{ClassInput, LoadOptions};
use dnatune::train::{train, Cancel, Event, StopReason, TrainConfig};

const BIN: &str = env!("CARGO_BIN_EXE_dnatune");

struct Inputs {
    model: PathBuf,
    promoters: PathBuf,
    non_promoters: PathBuf,
}

/// The DNABERT fixture checkpoint and the CNNProm B. subtilis promoter sets (81 bp;
/// 373 promoters, 1,000 non-promoters).
fn inputs() -> Option<Inputs> {
    let model = common::shared_path("fixtures/dnabert1/model")?;
    let data = common::shared_path("data/promoters_cnnprom")?;
    Some(Inputs {
        model,
        promoters: data.join("Bacillus_prom.fa.gz"),
        non_promoters: data.join("Bacillus_non_prom.fa.gz"),
    })
}

fn dnatune(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the dnatune binary")
}

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn failure(output: &Output, what: &str) -> String {
    assert!(!output.status.success(), "{what} should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A short training run through the command line; `overrides` replace the default value of
/// the same option or add options.
fn train_cli(inputs: &Inputs, out: &Path, overrides: &[(&str, &str)]) -> Output {
    let prom = format!("promoter={}", p(&inputs.promoters));
    let non = format!("non_promoter={}", p(&inputs.non_promoters));
    let mut options: Vec<(&str, &str)> = vec![
        ("--max-steps", "8"),
        ("--batch-size", "16"),
        ("--eval-every", "4"),
        ("--lr", "2e-3"),
        ("--seed", "7"),
        ("--device", "cpu"),
    ];
    for &(flag, value) in overrides {
        match options.iter_mut().find(|(f, _)| *f == flag) {
            Some(option) => option.1 = value,
            None => options.push((flag, value)),
        }
    }
    let mut args = vec![
        "train",
        "--model",
        p(&inputs.model),
        "--class",
        &prom,
        "--class",
        &non,
        "--out",
        p(out),
    ];
    for (flag, value) in options {
        args.push(flag);
        if !value.is_empty() {
            args.push(value);
        }
    }
    dnatune(&args)
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// Rows of a CSV as maps from column name to value.
fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).expect("open CSV");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    reader
        .records()
        .map(|row| {
            let row = row.expect("CSV row");
            header
                .iter()
                .cloned()
                .zip(row.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

#[test]
fn train_exports_an_adapter_that_predict_and_eval_reproduce() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = tmp.path().join("run");
    let log = ok(&train_cli(&inputs, &run, &[]), "dnatune train");
    assert!(log.contains("best"), "no evaluation table in:\n{log}");

    for file in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "dnatune.json",
        "README.md",
        "history.jsonl",
        "manifest.json",
        "test_predictions.csv",
    ] {
        assert!(
            run.join(file).is_file(),
            "{file} missing from the run folder"
        );
    }
    let bundle = read_json(&run.join("dnatune.json"));
    assert_eq!(
        bundle["labels"],
        serde_json::json!(["promoter", "non_promoter"])
    );
    assert_eq!(bundle["tokenizer"], "kmer");
    assert_eq!(bundle["total_steps"], 8);
    let test_mcc = bundle["test"]["record"]["mcc"].as_f64().expect("test MCC");
    assert!((-1.0..=1.0).contains(&test_mcc));
    let config = read_json(&run.join("adapter/adapter_config.json"));
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "SEQ_CLS");
    assert_eq!(config["r"], 8);
    let card = std::fs::read_to_string(run.join("README.md")).expect("model card");
    assert!(card.contains("PeftModel.from_pretrained"), "{card}");
    // Steps and evaluations are in the history, one JSON object per line.
    let history = std::fs::read_to_string(run.join("history.jsonl")).expect("history");
    let events: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(events.iter().filter(|e| e["event"] == "step").count(), 8);
    assert!(events
        .iter()
        .any(|e| e["event"] == "eval" && e["split"] == "test"));

    // predict on both input files: one row per record, in input order; the test records get
    // exactly the probabilities the training run reported for them.
    let predictions = tmp.path().join("predictions.csv");
    ok(
        &dnatune(&[
            "predict",
            "--adapter",
            p(&run),
            p(&inputs.promoters),
            p(&inputs.non_promoters),
            "--out",
            p(&predictions),
        ]),
        "dnatune predict",
    );
    let rows = read_csv(&predictions);
    assert_eq!(rows.len(), 373 + 1000);
    let header: Vec<String> = csv::Reader::from_path(&predictions)
        .expect("csv")
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        header,
        [
            "id",
            "prob_promoter",
            "prob_non_promoter",
            "predicted_label",
            "n_windows"
        ]
    );
    assert_eq!(rows[0]["id"], "abnA");
    // The non-promoter headers are `> 4214020`: the id is the first word after `>`.
    assert_eq!(rows[373]["id"], "4214020");
    // Some ids occur twice in these files; compare the records whose id is unique.
    let mut id_count: HashMap<&str, usize> = HashMap::new();
    for row in &rows {
        *id_count.entry(row["id"].as_str()).or_default() += 1;
    }
    let by_id: HashMap<&str, &HashMap<String, String>> =
        rows.iter().map(|r| (r["id"].as_str(), r)).collect();
    let test_rows = read_csv(&run.join("test_predictions.csv"));
    let unique: Vec<_> = test_rows
        .iter()
        .filter(|row| id_count.get(row["id"].as_str()) == Some(&1))
        .collect();
    assert!(
        unique.len() > 100,
        "{} comparable test records",
        unique.len()
    );
    for test_row in unique {
        let row = by_id[test_row["id"].as_str()];
        for column in ["prob_promoter", "prob_non_promoter"] {
            let a: f64 = row[column].parse().expect("probability");
            let b: f64 = test_row[column].parse().expect("probability");
            assert!(
                (a - b).abs() <= 2e-6,
                "{}: {column} {a} in predict vs {b} in training",
                row["id"]
            );
        }
        assert_eq!(row["predicted_label"], test_row["predicted_label"]);
    }

    // eval on the same data prints the metrics and the confusion matrix.
    let prom = format!("promoter={}", p(&inputs.promoters));
    let non = format!("non_promoter={}", p(&inputs.non_promoters));
    let eval = dnatune(&[
        "eval",
        "--adapter",
        p(&run),
        "--class",
        &prom,
        "--class",
        &non,
        "--json",
    ]);
    ok(&eval, "dnatune eval");
    let metrics: serde_json::Value =
        serde_json::from_slice(&eval.stdout).expect("eval --json output");
    assert_eq!(metrics["record"]["n"], 1373);
    let confusion = metrics["record"]["confusion"]["counts"]
        .as_array()
        .expect("confusion counts");
    let total: u64 = confusion.iter().map(|c| c.as_u64().expect("count")).sum();
    assert_eq!(total, 1373);

    // Labels the adapter does not know are refused by name.
    let other = format!("enhancer={}", p(&inputs.promoters));
    let stderr = failure(
        &dnatune(&["eval", "--adapter", p(&run), "--class", &other]),
        "eval with an unknown label",
    );
    assert!(
        stderr.contains("`enhancer`") && stderr.contains("promoter, non_promoter"),
        "{stderr}"
    );
}

#[test]
fn two_runs_with_the_same_seed_give_identical_metrics_and_adapters() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(
        &train_cli(&inputs, &a, &[("--max-steps", "4")]),
        "first run",
    );
    ok(
        &train_cli(&inputs, &b, &[("--max-steps", "4")]),
        "second run",
    );
    let (ja, jb) = (
        read_json(&a.join("dnatune.json")),
        read_json(&b.join("dnatune.json")),
    );
    for key in ["validation", "test", "best_step", "manifest_sha256"] {
        assert_eq!(ja[key], jb[key], "{key} differs between identical runs");
    }
    let weights =
        |dir: &Path| std::fs::read(dir.join("adapter/adapter_model.safetensors")).expect("adapter");
    assert!(weights(&a) == weights(&b), "the adapters differ");
    // Another seed gives another split and other weights.
    let c = tmp.path().join("c");
    ok(
        &train_cli(&inputs, &c, &[("--max-steps", "4"), ("--seed", "8")]),
        "third run",
    );
    assert_ne!(
        read_json(&c.join("dnatune.json"))["manifest_sha256"],
        ja["manifest_sha256"]
    );
}

fn library_config(inputs: &Inputs, out: &Path) -> TrainConfig {
    TrainConfig {
        model: p(&inputs.model).to_string(),
        data: LoadOptions {
            class_inputs: vec![
                ClassInput {
                    class: Some("promoter".into()),
                    path: p(&inputs.promoters).to_string(),
                },
                ClassInput {
                    class: Some("non_promoter".into()),
                    path: p(&inputs.non_promoters).to_string(),
                },
            ],
            ..LoadOptions::default()
        },
        batch_size: 16,
        max_steps: Some(40),
        eval_every: Some(2),
        learning_rate: 2e-3,
        device: dnatune::train::DeviceChoice::Cpu,
        out_dir: out.to_path_buf(),
        ..TrainConfig::default()
    }
}

#[test]
fn events_arrive_in_order_and_cancel_keeps_the_best_checkpoint() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let cfg = library_config(&inputs, tmp.path());
    let cancel = Cancel::new();
    let mut kinds = Vec::new();
    let mut steps_seen = 0;
    let summary = train(&cfg, &cancel, |event| {
        if let Event::Step { step, loss, .. } = &event {
            assert!(loss.is_finite());
            steps_seen = *step;
            if *step == 5 {
                cancel.cancel();
            }
        }
        let kind = serde_json::to_value(&event).expect("event JSON")["event"]
            .as_str()
            .expect("tag")
            .to_string();
        kinds.push(kind);
    })
    .expect("train");
    assert_eq!(summary.stop_reason, StopReason::Cancelled);
    assert_eq!(steps_seen, 5, "the run went on after cancel");
    assert_eq!(summary.steps, 5);
    assert_eq!(kinds[0], "data_loaded");
    assert_eq!(kinds[1], "model_loaded");
    assert_eq!(kinds.last().map(String::as_str), Some("finished"));
    assert!(kinds.iter().any(|k| k == "checkpoint_saved"));
    // The best checkpoint is one of the evaluated steps (2 or 4) and is on disk.
    assert!([2, 4].contains(&summary.best_step), "{}", summary.best_step);
    let adapter = summary.adapter_dir.expect("adapter");
    assert!(adapter.join("adapter_model.safetensors").is_file());
    assert!(summary.test.is_some());
}

#[test]
fn a_learning_rate_that_blows_up_stops_with_advice() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let stderr = failure(
        &train_cli(
            &inputs,
            &tmp.path().join("run"),
            &[
                ("--lr", "1e30"),
                ("--warmup-ratio", "0"),
                ("--max-grad-norm", "0"),
            ],
        ),
        "training with lr 1e30",
    );
    assert!(
        stderr.contains("loss became") && stderr.contains("--lr"),
        "{stderr}"
    );
}

#[test]
fn bad_options_and_adapters_are_refused_clearly() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let stderr = failure(
        &train_cli(&inputs, &tmp.path().join("r0"), &[("--lora-rank", "0")]),
        "--lora-rank 0",
    );
    assert!(
        stderr.contains("--lora-rank must be at least 1"),
        "{stderr}"
    );

    // An adapter folder without adapter_config.json.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let fasta = tmp.path().join("x.fa");
    std::fs::write(&fasta, ">x\nACGTACGTACGTACGTACGT\n").expect("write");
    let out = tmp.path().join("p.csv");
    let stderr = failure(
        &dnatune(&[
            "predict",
            "--adapter",
            p(&empty),
            p(&fasta),
            "--out",
            p(&out),
        ]),
        "predict with an empty folder",
    );
    assert!(stderr.contains("adapter_config.json"), "{stderr}");
    assert!(!out.exists(), "a failed predict left {}", out.display());
}

#[test]
fn an_adapter_on_another_base_model_names_the_tensor() {
    let Some(inputs) = inputs() else { return };
    let Some(nt) = common::shared_path("fixtures/nt_v1/model") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = tmp.path().join("run");
    ok(
        &train_cli(
            &inputs,
            &run,
            &[("--max-steps", "2"), ("--eval-every", "2")],
        ),
        "train",
    );
    let fasta = tmp.path().join("x.fa");
    std::fs::write(&fasta, ">x\nACGTACGTACGTACGTACGT\n").expect("write");
    // A DNABERT adapter on a Nucleotide Transformer: the error names the adapter file and a
    // tensor that does not fit.
    let stderr = failure(
        &dnatune(&[
            "predict",
            "--adapter",
            p(&run),
            "--model",
            p(&nt),
            p(&fasta),
            "--out",
            p(&tmp.path().join("p.csv")),
        ]),
        "predict on the wrong base model",
    );
    assert!(
        stderr.contains("base_model.model.") && stderr.contains("adapter_model.safetensors"),
        "{stderr}"
    );
}

#[test]
fn json_events_print_one_event_per_line() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let output = train_cli(
        &inputs,
        &tmp.path().join("run"),
        &[
            ("--max-steps", "3"),
            ("--eval-every", "3"),
            ("--json-events", ""),
        ],
    );
    ok(&output, "train --json-events");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let tags: Vec<String> = stdout
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            event["event"].as_str().expect("event tag").to_string()
        })
        .collect();
    assert_eq!(tags.first().map(String::as_str), Some("data_loaded"));
    assert_eq!(tags.iter().filter(|t| *t == "step").count(), 3);
    assert_eq!(tags.last().map(String::as_str), Some("finished"));
}

#[test]
fn windowed_runs_score_records_by_their_windows() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = tmp.path().join("run");
    // 81 bp records in 40 bp windows, stride 20: starts 0, 20, 40 and one aligned to the end.
    ok(
        &train_cli(
            &inputs,
            &run,
            &[
                ("--window", "40"),
                ("--stride", "20"),
                ("--max-steps", "4"),
                ("--aggregation", "max"),
            ],
        ),
        "windowed training",
    );
    let bundle = read_json(&run.join("dnatune.json"));
    assert_eq!(bundle["window"]["window_bp"], 40);
    assert_eq!(bundle["aggregation"], "max");
    let test = &bundle["test"];
    let windows = test["window"]["n"].as_u64().expect("windows");
    let records = test["record"]["n"].as_u64().expect("records");
    // Up to 4 windows per record: windows identical to a training window are removed from test.
    assert!(
        windows <= 4 * records && windows > 3 * records,
        "{windows} windows for {records} records"
    );
    let predictions = tmp.path().join("p.csv");
    ok(
        &dnatune(&[
            "predict",
            "--adapter",
            p(&run),
            p(&inputs.promoters),
            "--out",
            p(&predictions),
        ]),
        "predict",
    );
    let rows = read_csv(&predictions);
    assert_eq!(rows.len(), 373);
    assert!(rows.iter().all(|r| r["n_windows"] == "4"));
    let test_rows = read_csv(&run.join("test_predictions.csv"));
    let by_id: HashMap<&str, &HashMap<String, String>> =
        rows.iter().map(|r| (r["id"].as_str(), r)).collect();
    let mut compared = 0;
    // Records that kept all their windows in the test split get the same probabilities.
    for test_row in test_rows
        .iter()
        .filter(|r| r["true_label"] == "promoter" && r["n_windows"] == "4")
    {
        if rows.iter().filter(|r| r["id"] == test_row["id"]).count() != 1 {
            continue;
        }
        let row = by_id[test_row["id"].as_str()];
        let a: f64 = row["prob_promoter"].parse().expect("probability");
        let b: f64 = test_row["prob_promoter"].parse().expect("probability");
        assert!((a - b).abs() <= 2e-6, "{}: {a} vs {b}", row["id"]);
        compared += 1;
    }
    assert!(compared > 10, "only {compared} records compared");
}

#[test]
fn a_device_or_precision_that_cannot_be_had_is_an_error_not_a_fallback() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    if !candle_core::utils::cuda_is_available() {
        let out = tmp.path().join("cuda");
        let stderr = failure(
            &train_cli(&inputs, &out, &[("--device", "cuda:1")]),
            "--device cuda:1 in a build without CUDA",
        );
        assert!(
            stderr.contains("cuda:1") && stderr.contains("--device cpu"),
            "{stderr}"
        );
        assert!(!out.exists(), "a refused run created {}", out.display());
    }
    let out = tmp.path().join("bf16");
    let stderr = failure(
        &train_cli(&inputs, &out, &[("--precision", "bf16")]),
        "--precision bf16 on the CPU",
    );
    assert!(
        stderr.contains("bf16") && stderr.contains("--precision f32"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused run created {}", out.display());
}

/// Half-precision frozen weights and gradient checkpointing through the command line: the
/// events say what was used, every step reports the run's peak memory, and the run learns.
#[test]
fn half_precision_with_checkpointing_trains_and_reports_memory() {
    let Some(inputs) = inputs() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let output = train_cli(
        &inputs,
        &tmp.path().join("run"),
        &[
            ("--max-steps", "4"),
            ("--eval-every", "4"),
            ("--precision", "f16"),
            ("--gradient-checkpointing", ""),
            ("--json-events", ""),
        ],
    );
    ok(&output, "train --precision f16 --gradient-checkpointing");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON event"))
        .collect();
    let loaded = events
        .iter()
        .find(|e| e["event"] == "model_loaded")
        .expect("model_loaded event");
    assert_eq!(loaded["frozen_dtype"], "f16");
    assert_eq!(loaded["gradient_checkpointing"], true);
    assert_eq!(loaded["device"], "cpu");
    let steps: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "step").collect();
    assert_eq!(steps.len(), 4);
    for step in &steps {
        let mib = step["peak_memory_mib"].as_f64().expect("peak_memory_mib");
        assert!(mib >= 0.0, "{step}");
        assert!(step["loss"].as_f64().is_some_and(f64::is_finite), "{step}");
    }
    let finished = events.last().expect("events");
    assert_eq!(finished["event"], "finished");
    assert!(finished["summary"]["peak_memory_mib"].as_f64().is_some());
    assert!(tmp
        .path()
        .join("run/adapter/adapter_model.safetensors")
        .exists());
}
