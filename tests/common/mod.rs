//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

#[cfg(feature = "gui")]
pub mod gui;

/// The shared data folder: `$DNATUNE_SHARED`, else `<crate root>/../shared`; `None` when absent.
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DNATUNE_SHARED") {
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    dir.is_dir().then_some(dir)
}

/// `shared_dir()/relative`; `None` (after printing why the calling test is skipped) when the
/// shared folder is absent. Panics when the folder exists but lacks `relative`.
/// Use as `let Some(path) = common::shared_path("data/formats") else { return };`.
pub fn shared_path(relative: &str) -> Option<PathBuf> {
    let Some(dir) = shared_dir() else {
        eprintln!(
            "skipped: the shared data folder is missing (set DNATUNE_SHARED or put it at ../shared) — needed: {relative}"
        );
        return None;
    };
    let path = dir.join(relative);
    // The folder is there, so a missing file is a broken test, not a reason to skip.
    assert!(
        path.exists(),
        "{} is missing from the shared folder",
        path.display()
    );
    Some(path)
}

/// [`shared_dir`], printing why the calling test is skipped when it is absent.
/// Use as `let Some(shared) = common::shared_dir_or_skip() else { return };`.
pub fn shared_dir_or_skip() -> Option<PathBuf> {
    let dir = shared_dir();
    if dir.is_none() {
        eprintln!(
            "skipped: the shared data folder is missing (set DNATUNE_SHARED or put it at ../shared)"
        );
    }
    dir
}
