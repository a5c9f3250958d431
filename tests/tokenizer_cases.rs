//! Every `tokenizer_cases.json` case of the five fixture families must give exactly the reference
//! `input_ids` and `attention_mask`; plus the real DNABERT vocabularies for k = 3..6.

use std::path::Path;

use dnatune::tokenize::{Tokenizer, TokenizerKind};
use serde_json::Value;

const FAMILIES: [&str; 5] = ["dnabert1", "dnabert2", "nt_v1", "nt_v2", "gena_lm"];

/// The shared folder (`DNATUNE_SHARED`, else `../shared` beside the crate); `None` with a printed
/// reason when it is absent.
mod common;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an array of ids")
        .iter()
        .map(|v| v.as_u64().expect("an id") as u32)
        .collect()
}

fn special_id(cases: &Value, name: &str) -> Option<u32> {
    cases["special_token_ids"][name]["id"]
        .as_u64()
        .map(|v| v as u32)
}

#[test]
fn every_fixture_case_matches_the_reference() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let mut checked = 0;
    for family in FAMILIES {
        let dir = shared.join("fixtures").join(family);
        let tokenizer = Tokenizer::from_model_dir(&dir.join("model"))
            .unwrap_or_else(|e| panic!("{family}: {e}"));
        let cases = read_json(&dir.join("tokenizer_cases.json"));
        assert_eq!(
            Some(tokenizer.pad_id()),
            special_id(&cases, "pad_token"),
            "{family} pad"
        );
        assert_eq!(
            Some(tokenizer.cls_id()),
            special_id(&cases, "cls_token"),
            "{family} cls"
        );
        assert_eq!(
            Some(tokenizer.mask_id()),
            special_id(&cases, "mask_token"),
            "{family} mask"
        );
        assert_eq!(
            Some(tokenizer.unk_id()),
            special_id(&cases, "unk_token"),
            "{family} unk"
        );
        let mut failures = Vec::new();
        for case in cases["cases"].as_array().expect("cases") {
            let name = case["name"].as_str().expect("name");
            let input = case["input"].as_str().expect("input");
            let max_length = case["max_length"].as_u64().expect("max_length") as usize;
            let enc = tokenizer
                .encode(input, Some(max_length))
                .unwrap_or_else(|e| panic!("{family}/{name}: {e}"));
            let expected_ids = ids(&case["input_ids"]);
            let expected_mask = ids(&case["attention_mask"]);
            if enc.input_ids != expected_ids || enc.attention_mask != expected_mask {
                failures.push(format!(
                    "{family}/{name}: got {:?}…, expected {:?}…",
                    &enc.input_ids[..enc.len().min(24)],
                    &expected_ids[..expected_ids.len().min(24)]
                ));
            }
            assert_eq!(enc.spans.len(), enc.len(), "{family}/{name} spans");
            if name == "truncate_model_max" {
                // The default max_length is the model maximum the fixture truncates at.
                assert_eq!(
                    tokenizer.model_max_length(),
                    max_length,
                    "{family} model max"
                );
                let default = tokenizer.encode(input, None).expect("encode");
                assert_eq!(
                    default.input_ids, expected_ids,
                    "{family} default max_length"
                );
            }
            checked += 1;
        }
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    assert!(checked >= 5 * 19, "only {checked} cases checked");
}

#[test]
fn detects_the_kind_from_the_files() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let kind = |family: &str| {
        Tokenizer::from_model_dir(&shared.join("fixtures").join(family).join("model"))
            .expect("tokenizer")
            .kind()
    };
    assert_eq!(kind("dnabert1"), TokenizerKind::Kmer);
    assert_eq!(kind("nt_v1"), TokenizerKind::Nt6mer);
    assert_eq!(kind("nt_v2"), TokenizerKind::Nt6mer);
    assert_eq!(kind("dnabert2"), TokenizerKind::TokenizerJson);
    assert_eq!(kind("gena_lm"), TokenizerKind::TokenizerJson);
}

/// `tokenizer_config.json` says `do_lower_case: true`; following it would turn every k-mer into [UNK].
#[test]
fn dnabert_ignores_do_lower_case() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let dir = shared.join("fixtures/dnabert1");
    let cases = read_json(&dir.join("tokenizer_cases.json"));
    let pitfall = &cases["do_lower_case_pitfall"];
    assert_eq!(pitfall["tokenizer_config_do_lower_case"], Value::Bool(true));
    let tokenizer = Tokenizer::from_model_dir(&dir.join("model")).expect("tokenizer");
    let input = pitfall["example_input"].as_str().expect("input");
    let enc = tokenizer.encode(input, None).expect("encode");
    assert_eq!(
        enc.input_ids,
        ids(&pitfall["ids_reference_do_lower_case_false"])
    );
    assert_ne!(enc.input_ids, ids(&pitfall["ids_with_do_lower_case_true"]));
}

/// NT's tokenizer_config has `eos_token: null`: no <eos> (whose v1 id has no embedding row).
#[test]
fn nt_appends_no_eos() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    for family in ["nt_v1", "nt_v2"] {
        let dir = shared.join("fixtures").join(family);
        let cases = read_json(&dir.join("tokenizer_cases.json"));
        let eos = &cases["eos_handling"];
        let tokenizer = Tokenizer::from_model_dir(&dir.join("model")).expect("tokenizer");
        let input = eos["example_input"].as_str().expect("input");
        let enc = tokenizer.encode(input, None).expect("encode");
        assert_eq!(
            enc.input_ids,
            ids(&eos["ids_with_eos_token_null"]),
            "{family}"
        );
        let config: Value = read_json(&dir.join("model/config.json"));
        let embedding_rows = config["vocab_size"].as_u64().expect("vocab_size") as u32;
        assert!(
            enc.input_ids.iter().all(|&id| id < embedding_rows),
            "{family}"
        );
    }
}

/// Spans map each token back to the bases it covers; specials have none.
#[test]
fn spans_cover_the_tokens_bases() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let seq = "ACGTACGTNNNNNNNNNNNNACGTACGTAAC";
    for family in FAMILIES {
        let tokenizer =
            Tokenizer::from_model_dir(&shared.join("fixtures").join(family).join("model"))
                .expect("tokenizer");
        let enc = tokenizer.encode(seq, None).expect("encode");
        assert_eq!(enc.spans[0], None, "{family}: [CLS] has no span");
        let covered: Vec<(usize, usize)> = enc.spans.iter().flatten().copied().collect();
        assert!(!covered.is_empty(), "{family}");
        for &(start, end) in &covered {
            assert!(
                start < end && end <= seq.len(),
                "{family}: span {start}..{end}"
            );
        }
        // Every base lies in some token's span (k-mers overlap, the others tile the input).
        for pos in 0..seq.len() {
            assert!(
                covered.iter().any(|&(s, e)| s <= pos && pos < e),
                "{family}: base {pos} not covered"
            );
        }
        if tokenizer.kind() != TokenizerKind::Kmer {
            // Non-overlapping tokenizers: spans tile the input in order.
            let mut next = 0;
            for &(start, end) in &covered {
                assert_eq!(start, next, "{family}: gap or overlap at {start}");
                next = end;
            }
            assert_eq!(next, seq.len(), "{family}");
        }
    }
}

#[test]
fn batches_are_right_padded_with_the_tokenizer_pad_id() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    // DNABERT-2 pads with [PAD] = 3 although its config.json says pad_token_id 0.
    let dir = shared.join("fixtures/dnabert2/model");
    let tokenizer = Tokenizer::from_model_dir(&dir).expect("tokenizer");
    assert_eq!(tokenizer.pad_id(), 3);
    let batch = tokenizer
        .encode_batch(&["ACGTACGTACGTACGTAC", "A"], None)
        .expect("batch");
    let long = tokenizer
        .encode("ACGTACGTACGTACGTAC", None)
        .expect("encode");
    let short = tokenizer.encode("A", None).expect("encode");
    assert_eq!(batch[0], long);
    assert_eq!(batch[1].len(), long.len());
    assert_eq!(&batch[1].input_ids[..short.len()], &short.input_ids[..]);
    assert!(batch[1].input_ids[short.len()..].iter().all(|&id| id == 3));
    assert!(batch[1].attention_mask[short.len()..]
        .iter()
        .all(|&m| m == 0));
    assert!(batch[1].spans[short.len()..].iter().all(Option::is_none));
}

/// The real DNABERT vocabularies for k = 3..6: the k-mers of a hand-checkable sequence, looked up
/// by line number in vocab.txt (id = line - 1).
#[test]
fn real_dnabert_vocabularies_for_every_k() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let seq = "aCGTTGCAn";
    for k in 3..=6 {
        let dir = shared.join(format!("data/tokenizers/dnabert1_kmer/k{k}"));
        let tokenizer = Tokenizer::from_model_dir(&dir).unwrap_or_else(|e| panic!("k{k}: {e}"));
        assert_eq!(tokenizer.kind(), TokenizerKind::Kmer);
        assert_eq!(tokenizer.vocab_size(), 4usize.pow(k as u32) + 5, "k{k}");
        assert_eq!(tokenizer.model_max_length(), 512, "k{k}");
        let vocab = std::fs::read_to_string(dir.join("vocab.txt")).expect("vocab");
        let line_of =
            |token: &str| vocab.lines().position(|l| l == token).expect("in vocab") as u32;
        let upper = seq.to_uppercase();
        let mut expected = vec![line_of("[CLS]")];
        for start in 0..=upper.len() - k {
            let kmer = &upper[start..start + k];
            expected.push(if kmer.contains('N') {
                line_of("[UNK]")
            } else {
                line_of(kmer)
            });
        }
        expected.push(line_of("[SEP]"));
        let enc = tokenizer.encode(seq, None).expect("encode");
        assert_eq!(enc.input_ids, expected, "k{k}");
        assert_eq!(enc.spans[1], Some((0, k)), "k{k}");
        // Hand-checked anchors: [CLS]=2, [SEP]=3, [UNK]=1, and the first k-mer of product("ATCG")
        // order is all A (id 5).
        assert_eq!((expected[0], *expected.last().unwrap()), (2, 3));
        let all_a = tokenizer.encode(&"A".repeat(k), None).expect("encode");
        assert_eq!(all_a.input_ids, vec![2, 5, 3], "k{k}");
        let last_kmer = tokenizer.encode(&"G".repeat(k), None).expect("encode");
        assert_eq!(
            last_kmer.input_ids[1] as usize,
            4usize.pow(k as u32) + 4,
            "k{k}"
        );
    }
}

#[test]
fn a_folder_without_tokenizer_files_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    let err = Tokenizer::from_model_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&dir.path().display().to_string())
            && err.contains("tokenizer.json or vocab.txt"),
        "{err}"
    );

    std::fs::write(dir.path().join("tokenizer.json"), "{ not json").unwrap();
    let err = Tokenizer::from_model_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");

    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        "{\"model_max_length\": ",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("vocab.txt"),
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nAAA\n",
    )
    .unwrap();
    let err = Tokenizer::from_model_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer_config.json") && err.contains("not valid JSON"),
        "{err}"
    );
}
