//! The model and the demo data set that ship with dnatune, so that it fine-tunes something
//! offline minutes after it is installed.
//!
//! - **dnatune-mini** (`models/dnatune-mini/` among the bundled files, see [`crate::assets`]):
//!   a 1.9 M-parameter ESM with rotary positions and the Nucleotide Transformer v2 6-mer
//!   vocabulary, pretrained by `dnatune pretrain` on genomes from Debian packages
//!   (`scripts/bundled-model/`). It is the catalog's first entry; its Hub-style id resolves to
//!   the bundled folder, never to the network.
//! - **The demo** (`demo/`): coding vs non-coding 120 bp windows of the Chlamydia trachomatis
//!   genome, labelled from its GenBank annotation (`scripts/demo-data/build.py`).
//!   [`demo_config`] is the fine-tuning run that `dnatune train --demo` and the app's "Try the
//!   demo" start.

use std::path::{Path, PathBuf};

use crate::data::{ClassInput, DatasetOptions, LoadOptions, SplitFractions};
use crate::train::{LoraSettings, TrainConfig};

/// The bundled model's id in the catalog (and in `--model`).
pub const MODEL_ID: &str = "dnatune/dnatune-mini";
/// Where the bundled model lies among the bundled files.
pub const MODEL_DIR: &str = "models/dnatune-mini";
/// Where the demo data set lies among the bundled files.
pub const DEMO_DIR: &str = "demo";
/// The demo's classes and their files in [`DEMO_DIR`].
pub const DEMO_CLASSES: [(&str, &str); 2] =
    [("coding", "coding.fa"), ("noncoding", "noncoding.fa")];
/// Headers carry the gene or intergenic stretch a window comes from; windows of one stay in
/// one split, so that no test window has a neighbour from the same gene in training.
pub const DEMO_GROUP_BY: &str = r"region=(\S+)";

#[derive(Debug, thiserror::Error)]
pub enum BundledError {
    #[error(
        "the bundled {what} ({relative}) is not where dnatune looks for its files ({searched}); \
         reinstall dnatune, or point DNATUNE_DATA_DIR at a folder that holds {relative}"
    )]
    Missing {
        what: &'static str,
        relative: String,
        searched: String,
    },
}

/// Whether `id` names the bundled model (ids are case-insensitive, as on the Hub).
pub fn is_model_id(id: &str) -> bool {
    id.trim().eq_ignore_ascii_case(MODEL_ID)
}

/// The bundled model's folder (Hub layout: config.json, model.safetensors, tokenizer files).
pub fn model_dir() -> Result<PathBuf, BundledError> {
    find(MODEL_DIR, "model", |dir| dir.join("config.json").is_file())
}

/// The demo's files, one per class, in [`DEMO_CLASSES`] order.
pub fn demo_files() -> Result<Vec<(String, PathBuf)>, BundledError> {
    let dir = find(DEMO_DIR, "demo data set", |dir| {
        DEMO_CLASSES
            .iter()
            .all(|(_, file)| dir.join(file).is_file())
    })?;
    Ok(DEMO_CLASSES
        .iter()
        .map(|(class, file)| (class.to_string(), dir.join(file)))
        .collect())
}

fn find(
    relative: &str,
    what: &'static str,
    complete: impl Fn(&Path) -> bool,
) -> Result<PathBuf, BundledError> {
    let dirs = crate::assets::search_dirs();
    dirs.iter()
        .map(|dir| dir.join(relative))
        .find(|dir| complete(dir))
        .ok_or_else(|| BundledError::Missing {
            what,
            relative: relative.to_string(),
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The demo run: the bundled model with LoRA on every projection, fine-tuned on the demo data
/// (70 / 15 / 15 split by gene), sized to finish in a few minutes on a 2-core laptop CPU.
pub fn demo_config(out_dir: PathBuf) -> Result<TrainConfig, BundledError> {
    let files = demo_files()?;
    Ok(TrainConfig {
        model: MODEL_ID.to_string(),
        data: LoadOptions {
            class_inputs: files
                .into_iter()
                .map(|(class, path)| ClassInput {
                    class: Some(class),
                    path: path.display().to_string(),
                })
                .collect(),
            ..LoadOptions::default()
        },
        dataset: DatasetOptions {
            split: SplitFractions {
                train: 0.7,
                validation: 0.15,
                test: 0.15,
            },
            group_by: Some(DEMO_GROUP_BY.to_string()),
            ..DatasetOptions::default()
        },
        lora: LoraSettings {
            rank: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: Some(DEMO_LORA_TARGETS.iter().map(|t| t.to_string()).collect()),
            use_rslora: false,
        },
        learning_rate: 2e-3,
        batch_size: 32,
        epochs: 12,
        patience: Some(4),
        out_dir,
        ..TrainConfig::default()
    })
}

/// LoRA on the attention and feed-forward projections: a tiny model needs more than
/// query and value to adapt.
pub const DEMO_LORA_TARGETS: [&str; 6] = [
    "query",
    "key",
    "value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

/// A new `demo-NNN` folder name in `runs_dir` (the first number not taken).
pub fn new_demo_run_dir(runs_dir: &Path) -> PathBuf {
    let mut n = 1;
    loop {
        let dir = runs_dir.join(format!("demo-{n:03}"));
        if !dir.exists() {
            return dir;
        }
        n += 1;
    }
}
