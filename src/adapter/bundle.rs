//! dnatune's own files beside a PEFT adapter: `dnatune.json` (labels, preprocessing, metrics,
//! provenance) and the `README.md` model card.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::manifest::write_atomically;
use crate::data::WindowOptions;
use crate::model::config::Family;
use crate::tokenize::TokenizerKind;
use crate::train::events::StopReason;
use crate::train::metrics::{Aggregation, MetricName, Metrics};
use crate::train::TrainConfig;

pub const BUNDLE_FILE: &str = "dnatune.json";
pub const MODEL_CARD_FILE: &str = "README.md";
/// Bumped when the layout of `dnatune.json` changes incompatibly.
pub const BUNDLE_VERSION: u32 = 1;

/// Window- and record-level metrics of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    pub window: Metrics,
    pub record: Metrics,
}

/// Libraries that produced the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub dnatune: String,
    pub candle: String,
    pub tokenizers: String,
}

impl Versions {
    pub fn current() -> Self {
        Versions {
            dnatune: crate::VERSION.to_string(),
            candle: env!("DNATUNE_CANDLE_VERSION").to_string(),
            tokenizers: env!("DNATUNE_TOKENIZERS_VERSION").to_string(),
        }
    }
}

/// `dnatune.json`: what a later `predict` needs to treat new sequences exactly as the
/// training data was treated, and what the run achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBundle {
    pub bundle_version: u32,
    /// The base model as given (Hub id or folder).
    pub base_model: String,
    pub family: Family,
    /// Class names in class-id order.
    pub labels: Vec<String>,
    pub label2id: BTreeMap<String, u32>,
    pub tokenizer: TokenizerKind,
    /// Tokens per window, special tokens included.
    pub max_length: usize,
    /// How records were cut into windows (`window_bp` null: one window per record).
    pub window: WindowOptions,
    pub aggregation: Aggregation,
    /// Binary runs: a record is the second class when its probability exceeds this.
    pub threshold: Option<f64>,
    pub metric: MetricName,
    /// The optimizer step of the saved (best) adapter.
    pub best_step: u64,
    pub total_steps: u64,
    pub stop_reason: Option<StopReason>,
    pub validation: Option<SplitMetrics>,
    pub test: Option<SplitMetrics>,
    pub seed: u64,
    /// sha256 of `manifest.json` (the exact split).
    pub manifest_sha256: String,
    pub versions: Versions,
    /// The full run configuration.
    pub train_config: TrainConfig,
    /// When this file was written, in seconds since 1970-01-01 UTC (for a finished run: its
    /// end). Absent in bundles from before it was recorded.
    #[serde(default)]
    pub created_unix: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a dnatune.json this version understands: {source}; it may come from a newer dnatune")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}; check that the folder is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunBundle {
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let text = std::fs::read_to_string(path).map_err(|source| BundleError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| BundleError::Format {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes `dnatune.json` into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), BundleError> {
        let path = dir.join(BUNDLE_FILE);
        let mut json = serde_json::to_string_pretty(self).expect("a bundle always serialises");
        json.push('\n');
        write_atomically(&path, json.as_bytes())
            .map_err(|source| BundleError::Write { path, source })
    }

    /// The model card (`README.md`): results and how to load the adapter in Python.
    pub fn model_card(&self) -> String {
        let mut card = String::new();
        let family = self.family.display_name();
        let _ = writeln!(
            card,
            "---\nlibrary_name: peft\nbase_model: {}\ntags:\n- dnatune\n- lora\n- dna\n---\n",
            self.base_model
        );
        let _ = writeln!(
            card,
            "# {} LoRA classifier: {}\n",
            family,
            self.labels.join(" vs ")
        );
        let _ = writeln!(
            card,
            "A LoRA adapter (Hugging Face PEFT format) fine-tuned with dnatune {} on `{}` to tell \
             apart {} classes: {}.\n",
            self.versions.dnatune,
            self.base_model,
            self.labels.len(),
            self.labels
                .iter()
                .enumerate()
                .map(|(id, label)| format!("`{label}` ({id})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let cfg = &self.train_config;
        let _ = writeln!(card, "## Training\n");
        let _ = writeln!(
            card,
            "- LoRA rank {}, alpha {}, dropout {}{}, targets {}",
            cfg.lora.rank,
            cfg.lora.alpha,
            cfg.lora.dropout,
            if cfg.lora.use_rslora { " (rsLoRA)" } else { "" },
            cfg.lora
                .targets
                .as_ref()
                .map(|t| t.join(", "))
                .unwrap_or_else(|| "the family default".to_string())
        );
        let _ = writeln!(
            card,
            "- learning rate {}, batch size {} × {} accumulation, {} optimizer steps (best at step {}), seed {}",
            cfg.learning_rate,
            cfg.batch_size,
            cfg.gradient_accumulation,
            self.total_steps,
            self.best_step,
            self.seed
        );
        let windowing = match self.window.window_bp {
            Some(bp) => format!(
                "records cut into {bp} bp windows (stride {} bp); record probabilities are the {} of their windows'",
                self.window.stride_bp.unwrap_or(bp),
                match self.aggregation {
                    Aggregation::Mean => "mean",
                    Aggregation::Max => "maximum",
                }
            ),
            None => "each record is one input".to_string(),
        };
        let _ = writeln!(
            card,
            "- inputs: {windowing}; at most {} tokens (special tokens included)",
            self.max_length
        );
        let _ = writeln!(
            card,
            "- best checkpoint chosen by validation {} (record level); dataset split sha256 `{}`\n",
            self.metric, self.manifest_sha256
        );
        let _ = writeln!(card, "## Results\n");
        let _ = writeln!(
            card,
            "| split | level | n | loss | accuracy | precision | recall | F1 | MCC | AUROC |"
        );
        let _ = writeln!(card, "|---|---|---|---|---|---|---|---|---|---|");
        for (name, metrics) in [("validation", &self.validation), ("test", &self.test)] {
            if let Some(metrics) = metrics {
                for (level, m) in [("record", &metrics.record), ("window", &metrics.window)] {
                    let _ = writeln!(
                        card,
                        "| {name} | {level} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |",
                        m.n,
                        m.loss.map_or("–".to_string(), |l| format!("{l:.4}")),
                        m.accuracy,
                        m.precision,
                        m.recall,
                        m.f1,
                        m.mcc,
                        m.auroc.map_or("–".to_string(), |a| format!("{a:.4}"))
                    );
                }
            }
        }
        if let Some(test) = &self.test {
            let _ = writeln!(
                card,
                "\nTest confusion matrix (records; rows: true class, columns: predicted):\n"
            );
            let _ = writeln!(card, "| | {} |", self.labels.join(" | "));
            let _ = writeln!(card, "|---|{}", "---|".repeat(self.labels.len()));
            for (row, label) in self.labels.iter().enumerate() {
                let cells: Vec<String> = (0..self.labels.len())
                    .map(|col| {
                        test.record
                            .confusion
                            .get(row as u32, col as u32)
                            .to_string()
                    })
                    .collect();
                let _ = writeln!(card, "| **{label}** | {} |", cells.join(" | "));
            }
        }
        let remote = matches!(
            self.family,
            Family::Dnabert2 | Family::NucleotideTransformerV2 | Family::GenaLm
        );
        let trust = if remote {
            ", trust_remote_code=True"
        } else {
            ""
        };
        let id2label = self
            .labels
            .iter()
            .enumerate()
            .map(|(id, label)| format!("{id}: {label:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(card, "\n## Use in Python\n");
        // GENA-LM's Hub config maps only AutoModel: AutoModelForSequenceClassification would
        // build plain BERT without its pre-LayerNorm weights, so its class comes from its code.
        let load_model = if self.family == Family::GenaLm {
            "from transformers.dynamic_module_utils import get_class_from_dynamic_module\n\
             model_class = get_class_from_dynamic_module(\"modeling_bert.BertForSequenceClassification\", base)\n\
             model = model_class.from_pretrained("
        } else {
            "model = AutoModelForSequenceClassification.from_pretrained("
        };
        // DNABERT's tokenizer_config.json lower-cases by default, which turns every k-mer into
        // [UNK]; its inputs are upper-case overlapping k-mers separated by spaces.
        let (tokenizer_extra, to_text) = if self.tokenizer == TokenizerKind::Kmer {
            let k = self.train_config_kmer();
            (
                ", do_lower_case=False".to_string(),
                format!(
                    "def to_text(seq):  # overlapping {k}-mers, as DNABERT expects\n    return \" \".join(seq[i:i + {k}] for i in range(len(seq) - {k} + 1))\n\n"
                ),
            )
        } else {
            (
                String::new(),
                "def to_text(seq):\n    return seq\n\n".to_string(),
            )
        };
        let _ = writeln!(
            card,
            "```python\nimport torch\nfrom peft import PeftModel\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n\
             base = \"{base}\"\nid2label = {{{id2label}}}\ntokenizer = AutoTokenizer.from_pretrained(base{trust}{tokenizer_extra})\n\
             {load_model}\n    base, num_labels={n}, id2label=id2label,\n    label2id={{v: k for k, v in id2label.items()}}{trust}\n)\n\
             model = PeftModel.from_pretrained(model, \"adapter\")  # this folder's adapter/\nmodel.eval()\n\n\
             {to_text}batch = tokenizer([to_text(\"ACGTACGT...\")], truncation=True, max_length={max_len}, padding=True, return_tensors=\"pt\")\n\
             with torch.no_grad():\n    probs = model(**batch).logits.softmax(-1)\n```\n",
            base = self.base_model,
            n = self.labels.len(),
            max_len = self.max_length,
        );
        let _ = writeln!(
            card,
            "With dnatune: `dnatune predict --adapter <this folder> sequences.fa --out predictions.csv` \
             applies the same windowing and aggregation."
        );
        card
    }

    /// The k of a k-mer tokenizer (DNABERT 3..6): from the base model's vocabulary file when it
    /// can be read, else from the Hub id, else 6.
    fn train_config_kmer(&self) -> usize {
        let vocab = Path::new(&self.base_model).join("vocab.txt");
        std::fs::read_to_string(vocab)
            .ok()
            .and_then(|text| {
                text.lines()
                    .map(str::trim)
                    .find(|t| !t.is_empty() && t.bytes().all(|b| b"ACGT".contains(&b)))
                    .map(str::len)
            })
            .or_else(|| {
                // Hub ids zhihan1996/DNA_bert_3 … _6 end in k.
                let digit = self.base_model.chars().last()?.to_digit(10)? as usize;
                (3..=6).contains(&digit).then_some(digit)
            })
            .unwrap_or(6)
    }

    /// Writes the model card into `dir` atomically.
    pub fn write_model_card(&self, dir: &Path) -> Result<(), BundleError> {
        let path = dir.join(MODEL_CARD_FILE);
        write_atomically(&path, self.model_card().as_bytes())
            .map_err(|source| BundleError::Write { path, source })
    }
}
