//! The known pretrained DNA models on the Hugging Face Hub, for `dnatune models` and the app's model
//! picker.
//!
//! Parameter counts are the authors' nominal figures (DNABERT's are computed from the BERT-base
//! architecture and its vocabulary) and therefore approximate. `context_bp` is the approximate
//! stretch of DNA that `max_tokens` covers: exact for k-mer tokenizers, an average for BPE (GENA-LM
//! reports ≈ 4.5 kb for 512 tokens; DNABERT-2's BPE compresses ≈ 4–5× and its ALiBi positions allow
//! longer inputs than its tokenizer's 512).

use serde::Serialize;

use crate::model::config::Family;
use crate::tokenize::TokenizerKind;

/// One known model.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    /// `ORG/NAME` on the Hugging Face Hub.
    pub hub_id: &'static str,
    pub display_name: &'static str,
    pub family: Family,
    /// Approximate number of parameters (see the module docs).
    pub parameters: u64,
    /// The longest input in tokens, special tokens included.
    pub max_tokens: usize,
    /// Approximate DNA length that `max_tokens` covers, in bp.
    pub context_bp: usize,
    /// True when `context_bp` is an average (BPE) rather than exact (k-mers).
    pub context_is_estimate: bool,
    pub tokenizer: TokenizerKind,
    pub licence: &'static str,
    /// The weights may not be used commercially (Nucleotide Transformer: CC BY-NC-SA 4.0).
    pub non_commercial: bool,
    /// LoRA target modules used unless the user picks others (PEFT `target_modules` names).
    pub default_lora_targets: &'static [&'static str],
    /// Other Linear layers LoRA can target in this family.
    pub other_lora_targets: &'static [&'static str],
}

const BERT_TARGETS: &[&str] = &["query", "value"];
const BERT_OTHER_TARGETS: &[&str] = &[
    "key",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];
const DNABERT2_TARGETS: &[&str] = &["Wqkv"];
const DNABERT2_OTHER_TARGETS: &[&str] = &["attention.output.dense", "gated_layers", "wo"];

const NT_LICENCE: &str = "CC BY-NC-SA 4.0";
const DNABERT_LICENCE: &str = "Apache-2.0 (DNABERT repository)";
const GENA_LICENCE: &str = "see the model card (not recorded here)";

const fn dnabert(
    hub_id: &'static str,
    display_name: &'static str,
    k: usize,
    parameters: u64,
) -> CatalogEntry {
    CatalogEntry {
        hub_id,
        display_name,
        family: Family::Dnabert,
        parameters,
        max_tokens: 512,
        // 510 overlapping k-mers between [CLS] and [SEP].
        context_bp: 510 + k - 1,
        context_is_estimate: false,
        tokenizer: TokenizerKind::Kmer,
        licence: DNABERT_LICENCE,
        non_commercial: false,
        default_lora_targets: BERT_TARGETS,
        other_lora_targets: BERT_OTHER_TARGETS,
    }
}

const fn nt(
    hub_id: &'static str,
    display_name: &'static str,
    family: Family,
    parameters: u64,
    max_tokens: usize,
) -> CatalogEntry {
    CatalogEntry {
        hub_id,
        display_name,
        family,
        parameters,
        max_tokens,
        // <cls> then non-overlapping 6-mers.
        context_bp: (max_tokens - 1) * 6,
        context_is_estimate: false,
        tokenizer: TokenizerKind::Nt6mer,
        licence: NT_LICENCE,
        non_commercial: true,
        default_lora_targets: BERT_TARGETS,
        other_lora_targets: BERT_OTHER_TARGETS,
    }
}

const fn gena(hub_id: &'static str, display_name: &'static str, parameters: u64) -> CatalogEntry {
    CatalogEntry {
        hub_id,
        display_name,
        family: Family::GenaLm,
        parameters,
        max_tokens: 512,
        context_bp: 4_500,
        context_is_estimate: true,
        tokenizer: TokenizerKind::TokenizerJson,
        licence: GENA_LICENCE,
        non_commercial: false,
        default_lora_targets: BERT_TARGETS,
        other_lora_targets: BERT_OTHER_TARGETS,
    }
}

/// Every known model: the bundled one first (the offline default), then the families,
/// smallest members first within a family.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        hub_id: crate::bundled::MODEL_ID,
        display_name: "dnatune mini (bundled, offline)",
        family: Family::NucleotideTransformerV2,
        parameters: 1_924_747,
        max_tokens: 512,
        context_bp: 511 * 6,
        context_is_estimate: false,
        tokenizer: TokenizerKind::Nt6mer,
        licence: "Apache-2.0 (trained by dnatune on genomes from Debian packages)",
        non_commercial: false,
        default_lora_targets: BERT_TARGETS,
        other_lora_targets: BERT_OTHER_TARGETS,
    },
    dnabert("zhihan1996/DNA_bert_3", "DNABERT 3-mer", 3, 86_000_000),
    dnabert("zhihan1996/DNA_bert_4", "DNABERT 4-mer", 4, 86_000_000),
    dnabert("zhihan1996/DNA_bert_5", "DNABERT 5-mer", 5, 87_000_000),
    dnabert("zhihan1996/DNA_bert_6", "DNABERT 6-mer", 6, 89_000_000),
    CatalogEntry {
        hub_id: "zhihan1996/DNABERT-2-117M",
        display_name: "DNABERT-2 117M",
        family: Family::Dnabert2,
        parameters: 117_000_000,
        max_tokens: 512,
        context_bp: 2_500,
        context_is_estimate: true,
        tokenizer: TokenizerKind::TokenizerJson,
        licence: "Apache-2.0",
        non_commercial: false,
        default_lora_targets: DNABERT2_TARGETS,
        other_lora_targets: DNABERT2_OTHER_TARGETS,
    },
    nt(
        "InstaDeepAI/nucleotide-transformer-500m-human-ref",
        "NT v1 500M human reference",
        Family::NucleotideTransformerV1,
        500_000_000,
        1000,
    ),
    nt(
        "InstaDeepAI/nucleotide-transformer-500m-1000g",
        "NT v1 500M 1000 Genomes",
        Family::NucleotideTransformerV1,
        500_000_000,
        1000,
    ),
    nt(
        "InstaDeepAI/nucleotide-transformer-2.5b-1000g",
        "NT v1 2.5B 1000 Genomes",
        Family::NucleotideTransformerV1,
        2_500_000_000,
        1000,
    ),
    nt(
        "InstaDeepAI/nucleotide-transformer-2.5b-multi-species",
        "NT v1 2.5B multi-species",
        Family::NucleotideTransformerV1,
        2_500_000_000,
        1000,
    ),
    nt(
        "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species",
        "NT v2 50M multi-species",
        Family::NucleotideTransformerV2,
        50_000_000,
        2048,
    ),
    nt(
        "InstaDeepAI/nucleotide-transformer-v2-100m-multi-species",
        "NT v2 100M multi-species",
        Family::NucleotideTransformerV2,
        100_000_000,
        2048,
    ),
    nt(
        "InstaDeepAI/nucleotide-transformer-v2-250m-multi-species",
        "NT v2 250M multi-species",
        Family::NucleotideTransformerV2,
        250_000_000,
        2048,
    ),
    nt(
        "InstaDeepAI/nucleotide-transformer-v2-500m-multi-species",
        "NT v2 500M multi-species",
        Family::NucleotideTransformerV2,
        500_000_000,
        2048,
    ),
    gena(
        "AIRI-Institute/gena-lm-bert-base-t2t",
        "GENA-LM BERT base (T2T)",
        110_000_000,
    ),
    gena(
        "AIRI-Institute/gena-lm-bert-base-lastln-t2t",
        "GENA-LM BERT base, last LayerNorm (T2T)",
        110_000_000,
    ),
    gena(
        "AIRI-Institute/gena-lm-bert-base-t2t-multi",
        "GENA-LM BERT base (T2T + multispecies)",
        110_000_000,
    ),
    gena(
        "AIRI-Institute/gena-lm-bert-large-t2t",
        "GENA-LM BERT large (T2T)",
        336_000_000,
    ),
];

/// The catalog entry of a Hub id (case-insensitive, as the Hub resolves ids).
pub fn find(hub_id: &str) -> Option<&'static CatalogEntry> {
    CATALOG
        .iter()
        .find(|e| e.hub_id.eq_ignore_ascii_case(hub_id))
}

/// `86_000_000` → `"86M"`, `2_500_000_000` → `"2.5B"`.
pub fn format_parameters(parameters: u64) -> String {
    if parameters >= 1_000_000_000 {
        let billions = parameters as f64 / 1e9;
        format!("{}B", trim_float(billions))
    } else {
        format!("{}M", trim_float(parameters as f64 / 1e6))
    }
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        for (i, entry) in CATALOG.iter().enumerate() {
            assert_eq!(entry.hub_id.matches('/').count(), 1, "{}", entry.hub_id);
            assert!(
                CATALOG[i + 1..].iter().all(|e| e.hub_id != entry.hub_id),
                "{} listed twice",
                entry.hub_id
            );
        }
        assert_eq!(CATALOG.len(), 18);
    }

    #[test]
    fn only_nucleotide_transformer_is_non_commercial() {
        for entry in CATALOG {
            let is_nt = matches!(
                entry.family,
                Family::NucleotideTransformerV1 | Family::NucleotideTransformerV2
            );
            let from_instadeep = is_nt && entry.hub_id.starts_with("InstaDeepAI/");
            assert_eq!(entry.non_commercial, from_instadeep, "{}", entry.hub_id);
        }
    }

    #[test]
    fn the_bundled_model_comes_first() {
        assert_eq!(CATALOG[0].hub_id, crate::bundled::MODEL_ID);
        assert!(find("DNATUNE/dnatune-mini").is_some());
    }

    #[test]
    fn lora_defaults_per_family() {
        assert_eq!(
            find("zhihan1996/dnabert-2-117m").map(|e| e.default_lora_targets),
            Some(&["Wqkv"][..])
        );
        assert_eq!(
            find("AIRI-Institute/gena-lm-bert-large-t2t").map(|e| e.default_lora_targets),
            Some(&["query", "value"][..])
        );
        assert_eq!(
            find("zhihan1996/DNA_bert_6").map(|e| e.context_bp),
            Some(515)
        );
        assert_eq!(
            find("InstaDeepAI/nucleotide-transformer-v2-50m-multi-species").map(|e| e.context_bp),
            Some(12_282)
        );
    }

    #[test]
    fn parameters_read_naturally() {
        assert_eq!(format_parameters(86_000_000), "86M");
        assert_eq!(format_parameters(2_500_000_000), "2.5B");
        assert_eq!(format_parameters(117_000_000), "117M");
    }
}
