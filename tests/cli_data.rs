//! The real `dnatune` binary: `--help`, `--version` and `dnatune data inspect`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dnatune::data::split::SplitMix64;
use sha2::{Digest, Sha256};

fn dnatune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnatune"))
        .args(args)
        .output()
        .expect("the dnatune binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes a FASTA of `count` random 200 bp records to `dir/name`.
fn write_fasta(dir: &Path, name: &str, count: usize, seed: u64) -> PathBuf {
    let mut rng = SplitMix64::new(seed);
    let mut fasta = String::new();
    for i in 0..count {
        fasta.push_str(&format!(">{name}_{i} test record\n"));
        let bases: String = (0..200)
            .map(|_| ['A', 'C', 'G', 'T'][rng.below(4) as usize])
            .collect();
        fasta.push_str(&bases[..100]);
        fasta.push('\n');
        fasta.push_str(&bases[100..]);
        fasta.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, fasta).expect("temp file written");
    path
}

fn class_arg(name: &str, path: &Path) -> String {
    format!("{name}={}", path.display())
}

#[test]
fn help_and_version() {
    let help = dnatune(&["--help"]);
    assert!(help.status.success());
    let help_text = text(&help.stdout);
    assert!(
        help_text.contains("Usage") && help_text.contains("data"),
        "{help_text}"
    );

    let version = dnatune(&["--version"]);
    assert!(version.status.success());
    assert!(text(&version.stdout).contains(env!("CARGO_PKG_VERSION")));

    let inspect_help = dnatune(&["data", "inspect", "--help"]);
    assert!(inspect_help.status.success());
    let inspect_text = text(&inspect_help.stdout);
    for option in [
        "--class",
        "--labels-from-header",
        "--table",
        "--window",
        "--stride",
        "--block",
        "--split",
        "--group-by",
        "--test-class",
        "--test-regex",
        "--seed",
        "--json",
        "--manifest",
    ] {
        assert!(inspect_text.contains(option), "{option} missing from help");
    }
}

#[test]
fn json_report_is_the_only_thing_on_stdout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yes = write_fasta(dir.path(), "yes.fa", 50, 1);
    let no = write_fasta(dir.path(), "no.fa", 30, 2);
    let output = dnatune(&[
        "data",
        "inspect",
        "--class",
        &class_arg("yes", &yes),
        "--class",
        &class_arg("no", &no),
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    assert_eq!(report["classes"], serde_json::json!(["yes", "no"]));
    let rows = report["splits"]
        .as_array()
        .expect("per class and split rows");
    assert_eq!(rows.len(), 6);
    // Every record written is one window somewhere; 10% each to validation and test.
    for (class, written) in [("yes", 50), ("no", 30)] {
        let windows: Vec<u64> = rows
            .iter()
            .filter(|row| row["class"] == class)
            .map(|row| row["windows"].as_u64().expect("count"))
            .collect();
        assert_eq!(windows.iter().sum::<u64>(), written, "{class}");
        assert!(windows[1] > 0 && windows[2] > 0, "{class}: {windows:?}");
    }
}

#[test]
fn manifest_is_byte_identical_for_the_same_seed_and_records_the_file_checksums() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yes = write_fasta(dir.path(), "yes.fa", 60, 3);
    let no = write_fasta(dir.path(), "no.fa", 60, 4);
    let run = |seed: &str, manifest: &Path| {
        let output = dnatune(&[
            "data",
            "inspect",
            "--class",
            &class_arg("yes", &yes),
            "--class",
            &class_arg("no", &no),
            "--window",
            "100",
            "--stride",
            "50",
            "--seed",
            seed,
            "--manifest",
            manifest.to_str().expect("utf-8 path"),
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains("composition check"));
        std::fs::read(manifest).expect("manifest written")
    };
    let first = run("7", &dir.path().join("first.json"));
    let second = run("7", &dir.path().join("second.json"));
    let other_seed = run("8", &dir.path().join("third.json"));
    assert_eq!(first, second);
    assert_ne!(first, other_seed);

    let manifest: serde_json::Value = serde_json::from_slice(&first).expect("JSON");
    let files = manifest["files"].as_array().expect("files");
    assert_eq!(files.len(), 2);
    for (file, path) in files.iter().zip([&yes, &no]) {
        let bytes = std::fs::read(path).expect("input readable");
        let expected = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(file["sha256"], expected.as_str());
    }
    assert_eq!(manifest["dataset_options"]["seed"], 7);
    // 200 bp records in 100 bp windows every 50 bp: 3 windows each, all kept or counted.
    let windows: usize = ["train", "validation", "test"]
        .iter()
        .map(|split| manifest["windows"][split].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(windows, 120 * 3);
}

#[test]
fn a_class_too_small_to_fill_the_splits_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let many = write_fasta(dir.path(), "many.fa", 40, 5);
    let two = write_fasta(dir.path(), "two.fa", 2, 6);
    let manifest = dir.path().join("manifest.json");
    let output = dnatune(&[
        "data",
        "inspect",
        "--class",
        &class_arg("many", &many),
        "--class",
        &class_arg("rare", &two),
        "--manifest",
        manifest.to_str().expect("utf-8 path"),
    ]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("class `rare`")
            && stderr.contains("--split")
            && stderr.contains("--window"),
        "{stderr}"
    );
    assert!(!manifest.exists());
}

#[test]
fn real_promoter_table_without_composition_warning() {
    let Some(fold) = common::shared_path("data/promoters_human_epd_gena300/fold_2.csv.gz") else {
        return;
    };
    let output = dnatune(&[
        "data",
        "inspect",
        "--table",
        fold.to_str().expect("utf-8"),
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["composition"]["warning"], serde_json::Value::Null);
    let windows: u64 = report["splits"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            row["windows"].as_u64().expect("count")
                + row["duplicates_removed"].as_u64().expect("count")
        })
        .sum();
    // One fold of the five holds about a fifth of the 59,196 sequences.
    assert!((11_000..13_000).contains(&windows), "{windows}");
}

#[test]
fn real_enhancers_with_a_designated_test_set_and_whole_chromosomes_held_out() {
    let Some(dir) = common::shared_path("data/enhancers_human_ienhancer2l") else {
        return;
    };
    let out = tempfile::tempdir().expect("temp dir");
    let manifest_path = out.path().join("enhancers.json");
    let file = |name: &str| dir.join(name).display().to_string();
    let output = dnatune(&[
        "data",
        "inspect",
        "--class",
        &format!("enhancer={}", file("enhancer.cv.txt")),
        "--class",
        &format!("non={}", file("non.cv.txt")),
        "--test-class",
        &format!("enhancer={}", file("enhancer.ind.txt")),
        "--test-class",
        &format!("non={}", file("non.ind.txt")),
        "--group-by",
        r"^(CHR\w+?)_",
        "--manifest",
        manifest_path.to_str().expect("utf-8 path"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("written")).expect("JSON");

    let files = manifest["files"].as_array().expect("files");
    let records = manifest["records"].as_array().expect("records");
    let record = |index: u64| {
        records
            .iter()
            .find(|r| r["index"] == index)
            .expect("every window's record is listed")
    };
    let windows = |split: &str| -> Vec<u64> {
        manifest["windows"][split]
            .as_array()
            .expect("windows")
            .iter()
            .map(|w| w[0].as_u64().expect("record index"))
            .collect()
    };
    // The test set is exactly the independent files: 200 + 200 records, of which 100
    // enhancers are exact copies of cross-validation enhancers (checked independently in
    // Python) and are removed, so 300 remain.
    let test = windows("test");
    for &index in &test {
        let file = &files[record(index)["file"].as_u64().expect("file") as usize];
        assert!(file["path"].as_str().expect("path").ends_with(".ind.txt"));
    }
    assert_eq!(test.len(), 300);
    // No chromosome has records in both train and validation, whatever their class.
    let chromosome = |index: u64| {
        let id = record(index)["id"].as_str().expect("id").to_string();
        id.split('_').next().unwrap_or_default().to_string()
    };
    let train: std::collections::HashSet<String> =
        windows("train").into_iter().map(chromosome).collect();
    let validation: std::collections::HashSet<String> =
        windows("validation").into_iter().map(chromosome).collect();
    assert!(!train.is_empty() && !validation.is_empty());
    assert!(
        train.is_disjoint(&validation),
        "shared: {:?}",
        train.intersection(&validation).collect::<Vec<_>>()
    );
}

/// A real GenBank file for `data inspect --label-by-feature`: Chlamydia trachomatis from
/// Debian's r-cran-seqinr (895 CDS); `None` (printing why) when it cannot be fetched.
fn real_genbank() -> Option<(PathBuf, u64)> {
    common::fetched_genbank("ct.gbk.gz").map(|path| (path, 895))
}

#[test]
fn inspect_labels_genbank_windows_by_feature() {
    let Some((genbank, cds)) = real_genbank() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("manifest.json");
    let class = class_arg("genome", &genbank);
    let output = dnatune(&[
        "data",
        "inspect",
        "--class",
        &class,
        "--label-by-feature",
        "CDS",
        "--window",
        "200",
        "--manifest",
        manifest.to_str().expect("utf-8 path"),
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for class in ["CDS ", "non_CDS "] {
        for split in ["train", "validation", "test"] {
            assert!(
                stdout
                    .lines()
                    .any(|line| line.starts_with(class) && line.contains(split)),
                "no {class}{split} row in\n{stdout}"
            );
        }
    }
    assert!(
        stdout.contains(&format!("{} CDS features", cds_text(cds)))
            && stdout.contains("dropped with a partial overlap below 50%"),
        "{stdout}"
    );

    let json = dnatune(&[
        "data",
        "inspect",
        "--class",
        &class,
        "--label-by-feature",
        "CDS",
        "--window",
        "200",
        "--json",
    ]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["classes"], serde_json::json!(["CDS", "non_CDS"]));
    let labels = &report["feature_labels"];
    assert_eq!(labels["features_used"], cds);
    assert_eq!(labels["min_overlap"], 0.5);
    let labelled = labels["windows_with_feature"].as_u64().unwrap()
        + labels["windows_without_feature"].as_u64().unwrap();
    let in_splits: u64 = report["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["windows"].as_u64().unwrap() + row["duplicates_removed"].as_u64().unwrap())
        .sum();
    assert_eq!(labelled, in_splits);

    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).expect("manifest written"))
            .expect("manifest JSON");
    assert_eq!(written["classes"], serde_json::json!(["CDS", "non_CDS"]));
    assert_eq!(
        written["load_options"]["label_by_feature"],
        serde_json::json!(["CDS"])
    );
    assert_eq!(written["dataset_options"]["min_feature_overlap"], 0.5);
    for split in ["train", "validation", "test"] {
        assert_eq!(
            written["window_classes"][split].as_array().map(Vec::len),
            written["windows"][split].as_array().map(Vec::len),
        );
    }
    let counts = written["counts"].as_array().unwrap();
    assert!(
        counts.iter().all(|c| c["test"].as_u64() > Some(0)),
        "{counts:?}"
    );

    // Without --window the option is refused with what to do.
    let refused = dnatune(&[
        "data",
        "inspect",
        "--class",
        &class,
        "--label-by-feature",
        "CDS",
    ]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("needs --window BP"));
}

fn cds_text(count: u64) -> String {
    if count >= 1000 {
        format!("{},{:03}", count / 1000, count % 1000)
    } else {
        count.to_string()
    }
}
