//! `dnatune predict` with plain PEFT adapters written by Python (no dnatune.json): the labels
//! are `0, 1, …`, the base model is the adapter's relative `base_model_name_or_path`, and the
//! probabilities are the softmax of the reference LoRA logits.

mod golden;

use std::process::Command;

use candle_core::{DType, IndexOp};

const FAMILIES: [&str; 5] = ["dnabert1", "dnabert2", "nt_v1", "nt_v2", "gena_lm"];

#[test]
fn a_python_peft_adapter_predicts_the_reference_probabilities() {
    let Some(fixtures) = golden::fixtures_dir("a_python_peft_adapter_predicts") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    for family in FAMILIES {
        let dir = fixtures.join(family);
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("golden.json")).expect("golden.json"),
        )
        .expect("JSON");
        let dna: Vec<&str> = json["dna"]
            .as_array()
            .expect("dna")
            .iter()
            .map(|s| s.as_str().expect("string"))
            .collect();
        // Row 1 of the reference batch carries an inserted mask token; rows 0, 2, 3 are plain DNA.
        let rows = [0usize, 2, 3];
        let fasta: String = rows
            .iter()
            .map(|&i| format!(">row{i}\n{}\n", dna[i]))
            .collect();
        let input = tmp.path().join(format!("{family}.fa"));
        std::fs::write(&input, fasta).expect("write FASTA");
        let out = tmp.path().join(format!("{family}.csv"));
        let output = Command::new(env!("CARGO_BIN_EXE_dnatune"))
            .args(["predict", "--device", "cpu", "--adapter"])
            .arg(dir.join("peft_adapter"))
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run dnatune predict");
        assert!(
            output.status.success(),
            "{family}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let golden = golden::Golden::open(&dir.join("golden.safetensors"));
        let probs = candle_nn::ops::softmax_last_dim(
            &golden.get("lora.logits").to_dtype(DType::F32).expect("f32"),
        )
        .expect("softmax");
        let mut reader = csv::Reader::from_path(&out).expect("CSV");
        let header: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_string)
            .collect();
        assert_eq!(
            header,
            ["id", "prob_0", "prob_1", "predicted_label", "n_windows"],
            "{family}"
        );
        for (record, &row) in reader.records().zip(&rows) {
            let record = record.expect("row");
            assert_eq!(&record[0], format!("row{row}"));
            let expected: Vec<f32> = probs.i(row).expect("row").to_vec1().expect("values");
            for (class, want) in expected.iter().enumerate() {
                let got: f32 = record[1 + class].parse().expect("probability");
                assert!(
                    (got - want).abs() < 2e-6,
                    "{family} row {row} class {class}: {got} vs reference {want}"
                );
            }
            let predicted = if expected[1] > 0.5 { "1" } else { "0" };
            assert_eq!(&record[3], predicted, "{family} row {row}");
            assert_eq!(&record[4], "1");
        }
    }
}
