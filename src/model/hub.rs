//! Where a model's files are: a local folder in Hub layout, or a Hub id resolved through the standard
//! Hugging Face cache (`$HF_HOME/hub/models--ORG--NAME/snapshots/<rev>/…`, `refs/main`), downloaded
//! with `hf-hub` when not cached.
//!
//! A complete cached snapshot is used without asking the network (so a machine that once downloaded
//! a model keeps working offline); `HF_HUB_OFFLINE=1` forbids downloads altogether.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use hf_hub::progress::{DownloadEvent, FileStatus, ProgressEvent, ProgressHandler};

/// Files fetched besides the weights. `config.json` is required; the others when the repo has them.
const CONFIG_FILE: &str = "config.json";
const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("model folder {path} not found; give an existing folder (with config.json and the weights) or a Hugging Face Hub id such as zhihan1996/DNABERT-2-117M")]
    FolderNotFound { path: PathBuf },
    #[error("{path} is not a model folder: it has no config.json (a model folder in Hugging Face Hub layout holds config.json, the tokenizer files and the weights)")]
    NotAModelFolder { path: PathBuf },
    #[error(
        "{given:?} is neither an existing folder nor a Hugging Face Hub id of the form ORG/NAME"
    )]
    BadModelId { given: String },
    #[error(
        "model {model_id} is not in the Hugging Face cache ({cache_dir}) and the machine seems offline ({reason}). \
Download it once on a machine with internet access (dnatune, or `huggingface-cli download {model_id}`) and copy its \
cache folder models--{folder}, or pass a local folder instead: --model /path/to/model-folder (holding config.json, \
the tokenizer files and the weights)"
    )]
    Offline {
        model_id: String,
        cache_dir: PathBuf,
        folder: String,
        reason: String,
    },
    #[error("model {model_id} was not found on the Hugging Face Hub (check the id; private or gated models need HF_TOKEN): {detail}")]
    RepoNotFound { model_id: String, detail: String },
    #[error("model {model_id} on the Hugging Face Hub has no weights (looked for model.safetensors, a sharded model.safetensors.index.json, pytorch_model.bin and pytorch_model.bin.index.json)")]
    NoWeights { model_id: String },
    #[error("downloading {file} of {model_id} failed: {detail}")]
    Download {
        model_id: String,
        file: String,
        detail: String,
    },
    #[error("cannot read {path}: {detail}")]
    Cache { path: PathBuf, detail: String },
    #[error(transparent)]
    Bundled(#[from] crate::bundled::BundledError),
}

/// Where the cache is and whether downloads are allowed.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// The `hub` folder of the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// `HF_HUB_OFFLINE`: only the cache is used.
    pub offline: bool,
}

impl HubSettings {
    /// Reads `HF_HUB_CACHE` / `HF_HOME` / `XDG_CACHE_HOME` and `HF_HUB_OFFLINE` as `huggingface_hub` does.
    pub fn from_env() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        HubSettings {
            cache_dir: hf_hub::resolve_cache_dir(),
            offline,
        }
    }
}

/// What resolving a model reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum HubProgress {
    /// The model was found complete in the cache; nothing is downloaded.
    Cached {
        model_id: String,
        path: PathBuf,
    },
    /// A file download starts (or is checked against the cache).
    FileStarted {
        file: String,
    },
    /// Bytes of one file so far (`total` 0 when unknown).
    FileBytes {
        file: String,
        done: u64,
        total: u64,
    },
    /// Bytes of a batched transfer so far (Hub "xet" storage reports batches, not files).
    BatchBytes {
        done: u64,
        total: u64,
    },
    FileDone {
        file: String,
    },
}

/// A local model folder as is, or the cached (downloaded when needed) snapshot folder of a Hub id,
/// reading the cache location and `HF_HUB_OFFLINE` from the environment.
pub fn resolve_model(
    dir_or_id: &str,
    progress: impl FnMut(HubProgress),
) -> Result<PathBuf, HubError> {
    resolve_model_with(dir_or_id, &HubSettings::from_env(), progress)
}

/// [`resolve_model`] with explicit settings (no environment).
pub fn resolve_model_with(
    dir_or_id: &str,
    settings: &HubSettings,
    mut progress: impl FnMut(HubProgress),
) -> Result<PathBuf, HubError> {
    let path = Path::new(dir_or_id);
    if path.is_dir() {
        if !path.join(CONFIG_FILE).is_file() {
            return Err(HubError::NotAModelFolder {
                path: path.to_owned(),
            });
        }
        return Ok(path.to_owned());
    }
    // The bundled model ships with dnatune: never looked up in the cache or downloaded.
    if crate::bundled::is_model_id(dir_or_id) {
        return Ok(crate::bundled::model_dir()?);
    }
    let (owner, name) = match parse_hub_id(dir_or_id) {
        Some(parts) => parts,
        None if looks_like_path(dir_or_id) => {
            return Err(HubError::FolderNotFound {
                path: path.to_owned(),
            })
        }
        None => {
            return Err(HubError::BadModelId {
                given: dir_or_id.to_owned(),
            })
        }
    };
    if let Some(snapshot) = cached_snapshot(&settings.cache_dir, dir_or_id)? {
        progress(HubProgress::Cached {
            model_id: dir_or_id.to_owned(),
            path: snapshot.clone(),
        });
        return Ok(snapshot);
    }
    if settings.offline {
        return Err(offline_error(
            dir_or_id,
            settings,
            "HF_HUB_OFFLINE is set".into(),
        ));
    }
    download(owner, name, dir_or_id, settings, &mut progress)
}

/// The snapshot folder of `model_id` in the cache when `refs/main` points to a snapshot holding
/// config.json, a tokenizer and complete weights; `None` otherwise.
pub fn cached_snapshot(cache_dir: &Path, model_id: &str) -> Result<Option<PathBuf>, HubError> {
    if crate::bundled::is_model_id(model_id) {
        return Ok(crate::bundled::model_dir().ok());
    }
    let repo_dir = cache_dir.join(repo_folder(model_id));
    let ref_path = repo_dir.join("refs").join("main");
    let commit = match std::fs::read_to_string(&ref_path) {
        Ok(text) => text.trim().to_owned(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(HubError::Cache {
                path: ref_path,
                detail: err.to_string(),
            })
        }
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
        return Ok(None);
    }
    let snapshot = repo_dir.join("snapshots").join(commit);
    let complete = snapshot.join(CONFIG_FILE).is_file()
        && (snapshot.join("tokenizer.json").is_file() || snapshot.join("vocab.txt").is_file())
        && weights_complete(&snapshot)?;
    Ok(complete.then_some(snapshot))
}

/// `models--ORG--NAME`, the cache folder of a model repo.
pub fn repo_folder(model_id: &str) -> String {
    format!("models--{}", model_id.replace('/', "--"))
}

/// Whether a folder holds a full set of weights: safetensors (single or every shard of the index),
/// else PyTorch `.bin` (single or sharded).
pub fn weights_complete(dir: &Path) -> Result<bool, HubError> {
    for (index, single) in [
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ] {
        let index_path = dir.join(index);
        if index_path.is_file() {
            let shards = shard_files(&index_path)?;
            if !shards.is_empty() && shards.iter().all(|s| dir.join(s).is_file()) {
                return Ok(true);
            }
        }
        if dir.join(single).is_file() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The distinct shard file names of a `*.index.json` (`weight_map` values), in first-seen order.
fn shard_files(index_path: &Path) -> Result<Vec<String>, HubError> {
    let bad = |detail: String| HubError::Cache {
        path: index_path.to_owned(),
        detail,
    };
    let text = std::fs::read_to_string(index_path).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no weight_map object".into()))?;
    let mut shards: Vec<String> = Vec::new();
    for file in map.values().filter_map(|v| v.as_str()) {
        // Shard names come from the network: keep them inside the snapshot folder.
        if file.contains(['/', '\\']) || file.starts_with('.') {
            return Err(bad(format!("unexpected shard name {file:?}")));
        }
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_owned());
        }
    }
    Ok(shards)
}

fn parse_hub_id(text: &str) -> Option<(&str, &str)> {
    let (owner, name) = text.split_once('/')?;
    let valid = |part: &str| {
        !part.is_empty()
            && !part.starts_with(['.', '-'])
            && !part.contains("--")
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (valid(owner) && valid(name) && !name.ends_with('.')).then_some((owner, name))
}

fn looks_like_path(text: &str) -> bool {
    text.starts_with(['/', '.', '~'])
        || text.contains('\\')
        || text.matches('/').count() > 1
        || Path::new(text).exists()
}

fn offline_error(model_id: &str, settings: &HubSettings, reason: String) -> HubError {
    HubError::Offline {
        model_id: model_id.to_owned(),
        cache_dir: settings.cache_dir.clone(),
        folder: model_id.replace('/', "--"),
        reason,
    }
}

enum WorkerMessage {
    Progress(HubProgress),
    Done(Result<PathBuf, HubError>),
}

/// Forwards hf-hub's progress (emitted on its runtime thread) to the caller's thread.
struct ChannelProgress(mpsc::Sender<WorkerMessage>);

impl ProgressHandler for ChannelProgress {
    fn on_progress(&self, event: &ProgressEvent) {
        let ProgressEvent::Download(event) = event else {
            return;
        };
        let send = |p: HubProgress| {
            let _ = self.0.send(WorkerMessage::Progress(p));
        };
        match event {
            DownloadEvent::Progress { files } => {
                for f in files {
                    match f.status {
                        FileStatus::Started => {}
                        FileStatus::InProgress => send(HubProgress::FileBytes {
                            file: f.filename.clone(),
                            done: f.bytes_completed,
                            total: f.total_bytes,
                        }),
                        FileStatus::Complete => send(HubProgress::FileBytes {
                            file: f.filename.clone(),
                            done: f.total_bytes.max(f.bytes_completed),
                            total: f.total_bytes,
                        }),
                    }
                }
            }
            DownloadEvent::AggregateProgress {
                bytes_completed,
                total_bytes,
                ..
            } => send(HubProgress::BatchBytes {
                done: *bytes_completed,
                total: *total_bytes,
            }),
            _ => {}
        }
    }
}

/// Downloads on a worker thread while this thread hands progress to the caller's callback, so the
/// callback needs neither `Send` nor `Sync`.
fn download(
    owner: &str,
    name: &str,
    model_id: &str,
    settings: &HubSettings,
    progress: &mut impl FnMut(HubProgress),
) -> Result<PathBuf, HubError> {
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        let worker_sender = sender.clone();
        scope.spawn(move || {
            let result = download_files(owner, name, model_id, settings, &worker_sender);
            let _ = worker_sender.send(WorkerMessage::Done(result));
        });
        drop(sender);
        for message in receiver {
            match message {
                WorkerMessage::Progress(p) => progress(p),
                WorkerMessage::Done(result) => return result,
            }
        }
        Err(HubError::Download {
            model_id: model_id.to_owned(),
            file: "(all)".into(),
            detail: "the download thread stopped unexpectedly".into(),
        })
    })
}

fn download_files(
    owner: &str,
    name: &str,
    model_id: &str,
    settings: &HubSettings,
    sender: &mpsc::Sender<WorkerMessage>,
) -> Result<PathBuf, HubError> {
    let client = hf_hub::HFClient::builder()
        .cache_dir(settings.cache_dir.clone())
        .build_sync()
        .map_err(|e| HubError::Download {
            model_id: model_id.to_owned(),
            file: CONFIG_FILE.into(),
            detail: e.to_string(),
        })?;
    let repo = client.model(owner, name);
    // Some(path), None when the repo lacks the file, or an error worth stopping for.
    let fetch = |file: &str| -> Result<Option<PathBuf>, HubError> {
        let _ = sender.send(WorkerMessage::Progress(HubProgress::FileStarted {
            file: file.to_owned(),
        }));
        let result = repo
            .download_file()
            .filename(file)
            .progress(ChannelProgress(sender.clone()))
            .send();
        match result {
            Ok(path) => {
                let _ = sender.send(WorkerMessage::Progress(HubProgress::FileDone {
                    file: file.to_owned(),
                }));
                Ok(Some(path))
            }
            Err(hf_hub::HFError::EntryNotFound { .. }) => Ok(None),
            Err(hf_hub::HFError::RepoNotFound { .. }) => Err(HubError::RepoNotFound {
                model_id: model_id.to_owned(),
                detail: format!("{file} not found"),
            }),
            Err(err @ hf_hub::HFError::Request { .. }) => {
                Err(offline_error(model_id, settings, err.to_string()))
            }
            Err(err) => Err(HubError::Download {
                model_id: model_id.to_owned(),
                file: file.to_owned(),
                detail: err.to_string(),
            }),
        }
    };
    let config = fetch(CONFIG_FILE)?.ok_or_else(|| HubError::Download {
        model_id: model_id.to_owned(),
        file: CONFIG_FILE.into(),
        detail: "the repository has no config.json, so it is not a model dnatune can load".into(),
    })?;
    let snapshot = config
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| HubError::Cache {
            path: config.clone(),
            detail: "downloaded file has no folder".into(),
        })?;
    for file in TOKENIZER_FILES {
        fetch(file)?;
    }
    let mut have_weights = false;
    for (index, single) in [
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ] {
        if let Some(index_path) = fetch(index)? {
            for shard in shard_files(&index_path)? {
                fetch(&shard)?.ok_or_else(|| HubError::Download {
                    model_id: model_id.to_owned(),
                    file: shard.clone(),
                    detail: format!("listed in {index} but missing from the repository"),
                })?;
            }
            have_weights = true;
            break;
        }
        if fetch(single)?.is_some() {
            have_weights = true;
            break;
        }
    }
    if !have_weights {
        return Err(HubError::NoWeights {
            model_id: model_id.to_owned(),
        });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        assert_eq!(
            parse_hub_id("zhihan1996/DNABERT-2-117M"),
            Some(("zhihan1996", "DNABERT-2-117M"))
        );
        assert_eq!(
            parse_hub_id("InstaDeepAI/nucleotide-transformer-2.5b-1000g"),
            Some(("InstaDeepAI", "nucleotide-transformer-2.5b-1000g"))
        );
        assert_eq!(parse_hub_id("a/b/c"), None);
        assert_eq!(parse_hub_id("../model"), None);
        assert_eq!(parse_hub_id("gpt2"), None);
        assert!(looks_like_path("./models/x"));
        assert!(looks_like_path("/data/models/dnabert"));
        assert!(!looks_like_path("zhihan1996/DNA_bert_6"));
        assert_eq!(
            repo_folder("zhihan1996/DNA_bert_6"),
            "models--zhihan1996--DNA_bert_6"
        );
    }
}
