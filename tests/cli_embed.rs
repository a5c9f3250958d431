//! `dnatune embed` through the real binary, checked against the reference hidden states.

mod golden;

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device, IndexOp, Tensor};

const FAMILIES: [&str; 5] = ["dnabert1", "dnabert2", "nt_v1", "nt_v2", "gena_lm"];

fn golden_dna(family_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(family_dir.join("golden.json")).expect("golden.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("golden.json is JSON");
    json["dna"]
        .as_array()
        .expect("dna list")
        .iter()
        .map(|s| s.as_str().expect("dna string").to_string())
        .collect()
}

fn run_embed(model: &Path, input: &Path, pooling: &str, out: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_dnatune"))
        .args(["embed", "--model"])
        .arg(model)
        .arg("--input")
        .arg(input)
        .args(["--pooling", pooling, "--batch-size", "3", "--out"])
        .arg(out)
        .output()
        .expect("run dnatune embed");
    assert!(
        output.status.success(),
        "dnatune embed failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Rows 0, 2 and 3 of the golden batch have no inserted mask token, so `embed` on the plain
/// DNA must reproduce their `last_hidden_state` (row 1 differs by the mask token on purpose).
#[test]
fn embed_none_reproduces_reference_last_hidden_state_for_every_family() {
    let Some(fixtures) = golden::fixtures_dir("embed_none_reproduces_reference") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    for family in FAMILIES {
        let dir = fixtures.join(family);
        let dna = golden_dna(&dir);
        // FASTA input, so record order and ids go through the data layer's reader.
        let fasta: String = dna
            .iter()
            .enumerate()
            .map(|(i, s)| format!(">row{i}\n{s}\n"))
            .collect();
        let input = tmp.path().join(format!("{family}.fa"));
        std::fs::write(&input, fasta).expect("write input");
        let out = tmp.path().join(format!("{family}.safetensors"));
        run_embed(&dir.join("model"), &input, "none", &out);

        let written = candle_core::safetensors::load(&out, &Device::Cpu).expect("read output");
        let embeddings = &written["embeddings"];
        let mask = &written["attention_mask"];
        let reference = golden::Golden::open(&dir.join("golden.safetensors"));
        let expected = reference.get("last_hidden_state");
        let expected_mask = reference.get("attention_mask");
        assert_eq!(
            embeddings.dims(),
            expected.dims(),
            "{family}: embeddings shape"
        );
        for row in [0usize, 2, 3] {
            golden::assert_close_valid(
                &format!("{family} row {row} last_hidden_state"),
                &embeddings.i(row..row + 1).unwrap(),
                &expected.i(row..row + 1).unwrap(),
                &expected_mask.i(row..row + 1).unwrap(),
                1e-4,
            );
            assert_eq!(
                mask.i(row)
                    .unwrap()
                    .to_dtype(DType::I64)
                    .unwrap()
                    .to_vec1::<i64>()
                    .unwrap(),
                expected_mask.i(row).unwrap().to_vec1::<i64>().unwrap(),
                "{family} row {row}: attention mask"
            );
        }
    }
}

/// Mean pooling excludes padding: a sequence's vector does not depend on what it is batched with.
#[test]
fn mean_pooling_ignores_padding() {
    let Some(fixtures) = golden::fixtures_dir("mean_pooling_ignores_padding") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = fixtures.join("nt_v2");
    let dna = golden_dna(&dir);
    let all = tmp.path().join("all.txt");
    std::fs::write(&all, dna.join("\n")).expect("write");
    let single = tmp.path().join("single.txt");
    std::fs::write(&single, format!("{}\n", dna[3])).expect("write");
    let out_all = tmp.path().join("all.safetensors");
    let out_single = tmp.path().join("single.safetensors");
    run_embed(&dir.join("model"), &all, "mean", &out_all);
    run_embed(&dir.join("model"), &single, "mean", &out_single);
    let batched = candle_core::safetensors::load(&out_all, &Device::Cpu).unwrap();
    let alone = candle_core::safetensors::load(&out_single, &Device::Cpu).unwrap();
    let batched = &batched["embeddings"];
    assert_eq!(batched.dims()[0], 4, "one row per input line");
    let row3: Tensor = batched.i(3..4).unwrap();
    golden::assert_close("mean-pooled row 3", &row3, &alone["embeddings"], 1e-5);
}

#[test]
fn invalid_character_names_the_record() {
    let Some(fixtures) = golden::fixtures_dir("invalid_character_names_the_record") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let input = tmp.path().join("bad.fa");
    std::fs::write(&input, ">good\nACGT\n>broken one\nACXGT\n").unwrap();
    let out = tmp.path().join("out.safetensors");
    let output = Command::new(env!("CARGO_BIN_EXE_dnatune"))
        .args(["embed", "--model"])
        .arg(fixtures.join("dnabert1/model"))
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.fa") && stderr.contains("broken"),
        "{stderr}"
    );
    assert!(stderr.contains('X'), "{stderr}");
    assert!(!out.exists(), "no output file on error");
}

/// `--mlm-logits` writes the MLM head's logits for every token; at the reference's unmasked
/// position (row 0, token 1) they are the reference logits, for every family.
#[test]
fn mlm_logits_match_the_reference_head_for_every_family() {
    let Some(fixtures) = golden::fixtures_dir("mlm_logits_match_the_reference_head") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    for family in FAMILIES {
        let dir = fixtures.join(family);
        let dna = golden_dna(&dir);
        let input = tmp.path().join(format!("{family}.fa"));
        std::fs::write(&input, format!(">row0\n{}\n>row2\n{}\n", dna[0], dna[2])).expect("write");
        let out = tmp.path().join(format!("{family}.safetensors"));
        let output = Command::new(env!("CARGO_BIN_EXE_dnatune"))
            .args(["embed", "--mlm-logits", "--device", "cpu", "--model"])
            .arg(dir.join("model"))
            .arg("--input")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run dnatune embed");
        assert!(
            output.status.success(),
            "{family}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let ours = candle_core::safetensors::load(&out, &Device::Cpu).expect("output");
        let logits = &ours["mlm_logits"];
        let golden = golden::Golden::open(&dir.join("golden.safetensors"));
        let expected = golden.get("mlm_logits").i(0).expect("row 0");
        let (rows, _, vocab) = logits.dims3().expect("[n, tokens, vocab]");
        assert_eq!(
            (rows, vocab),
            (2, expected.dims1().expect("vocab")),
            "{family}"
        );
        golden::assert_close(
            &format!("{family} mlm_logits[0, 1]"),
            &logits.i((0, 1)).expect("row 0 token 1"),
            &expected,
            1e-4,
        );
        // Padding positions of the shorter row are zero.
        let mask = ours["attention_mask"].to_dtype(DType::F32).expect("mask");
        let padded = logits
            .broadcast_mul(&(1.0 - mask).expect("inverse").unsqueeze(2).expect("dims"))
            .expect("mul")
            .abs()
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f32>())
            .expect("sum");
        assert_eq!(padded, 0.0, "{family}: padding logits are not zero");
    }
}
