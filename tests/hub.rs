//! Hub-id resolution against a Hugging Face cache tree built from a fixture model (offline).
//! The settings are passed explicitly, so no test here touches the environment.

use std::path::{Path, PathBuf};

use dnatune::model::hub::{
    cached_snapshot, resolve_model_with, HubError, HubProgress, HubSettings,
};
use dnatune::tokenize::Tokenizer;

const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

mod common;

/// `hub/models--ORG--NAME/{blobs,snapshots/REV,refs/main}` as huggingface_hub writes it: files in
/// blobs/ and symlinks to them in the snapshot.
fn build_cache(hf_home: &Path, model_id: &str, model_dir: &Path) -> PathBuf {
    let repo = hf_home
        .join("hub")
        .join(format!("models--{}", model_id.replace('/', "--")));
    let snapshot = repo.join("snapshots").join(REVISION);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    for entry in std::fs::read_dir(model_dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let blob = repo
            .join("blobs")
            .join(format!("blob-{}", name.to_string_lossy()));
        std::fs::copy(entry.path(), &blob).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(blob.file_name().unwrap()),
            snapshot.join(&name),
        )
        .unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, snapshot.join(&name)).unwrap();
    }
    std::fs::write(repo.join("refs").join("main"), REVISION).unwrap();
    snapshot
}

fn offline(hf_home: &Path) -> HubSettings {
    HubSettings {
        cache_dir: hf_home.join("hub"),
        offline: true,
    }
}

#[test]
fn a_cached_hub_id_resolves_to_its_snapshot() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let model_id = "zhihan1996/DNABERT-2-117M";
    let snapshot = build_cache(
        home.path(),
        model_id,
        &shared.join("fixtures/dnabert2/model"),
    );
    let mut events = Vec::new();
    let resolved = resolve_model_with(model_id, &offline(home.path()), |e| events.push(e)).unwrap();
    assert_eq!(resolved, snapshot);
    assert_eq!(
        events,
        vec![HubProgress::Cached {
            model_id: model_id.into(),
            path: snapshot.clone()
        }]
    );
    // The resolved folder is usable: the tokenizer loads through the symlinks.
    let tokenizer = Tokenizer::from_model_dir(&resolved).unwrap();
    assert_eq!(tokenizer.pad_id(), 3);
}

#[test]
fn an_uncached_id_offline_gets_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let err = resolve_model_with(
        "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species",
        &offline(home.path()),
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, HubError::Offline { .. }), "{err:?}");
    let message = err.to_string();
    for needle in [
        "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species",
        "offline",
        "HF_HUB_OFFLINE",
        "local folder",
        "--model",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
}

#[test]
fn an_incomplete_snapshot_is_not_used() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let model_id = "AIRI-Institute/gena-lm-bert-base-t2t";
    let snapshot = build_cache(
        home.path(),
        model_id,
        &shared.join("fixtures/gena_lm/model"),
    );
    // An interrupted download: the weights never arrived.
    std::fs::remove_file(snapshot.join("model.safetensors")).unwrap();
    assert_eq!(
        cached_snapshot(&home.path().join("hub"), model_id).unwrap(),
        None
    );
    let err = resolve_model_with(model_id, &offline(home.path()), |_| {}).unwrap_err();
    assert!(matches!(err, HubError::Offline { .. }), "{err:?}");
}

#[test]
fn sharded_weights_count_only_when_every_shard_is_there() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let model_id = "zhihan1996/DNA_bert_6";
    let snapshot = build_cache(
        home.path(),
        model_id,
        &shared.join("fixtures/dnabert1/model"),
    );
    std::fs::remove_file(snapshot.join("model.safetensors")).unwrap();
    std::fs::remove_file(snapshot.join("pytorch_model.bin")).unwrap();
    let index = r#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#;
    std::fs::write(snapshot.join("model.safetensors.index.json"), index).unwrap();
    std::fs::write(snapshot.join("model-00001-of-00002.safetensors"), b"x").unwrap();
    let hub = home.path().join("hub");
    assert_eq!(cached_snapshot(&hub, model_id).unwrap(), None);
    std::fs::write(snapshot.join("model-00002-of-00002.safetensors"), b"x").unwrap();
    assert_eq!(cached_snapshot(&hub, model_id).unwrap(), Some(snapshot));
}

#[test]
fn a_local_folder_is_used_as_is() {
    let Some(shared) = common::shared_dir_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let dir = shared.join("fixtures/nt_v1/model");
    let resolved =
        resolve_model_with(dir.to_str().unwrap(), &offline(home.path()), |_| {}).unwrap();
    assert_eq!(resolved, dir);
}

#[test]
fn missing_folders_and_bad_ids_say_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let settings = offline(home.path());
    let missing = home.path().join("no-such-model");
    let err = resolve_model_with(missing.to_str().unwrap(), &settings, |_| {}).unwrap_err();
    assert!(matches!(err, HubError::FolderNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-model"), "{err}");

    let not_a_model = home.path().join("empty");
    std::fs::create_dir(&not_a_model).unwrap();
    let err = resolve_model_with(not_a_model.to_str().unwrap(), &settings, |_| {}).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");

    let err = resolve_model_with("dnabert", &settings, |_| {}).unwrap_err();
    assert!(matches!(err, HubError::BadModelId { .. }), "{err:?}");
    assert!(err.to_string().contains("ORG/NAME"), "{err}");
}
