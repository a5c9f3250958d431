//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

/// The shared data folder: `$DNATUNE_SHARED`, else `<crate root>/../shared`; `None` when absent.
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DNATUNE_SHARED") {
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    dir.is_dir().then_some(dir)
}

/// `shared_dir()/relative` when it exists; otherwise prints why the calling test is skipped.
pub fn shared_path(relative: &str) -> Option<PathBuf> {
    let Some(dir) = shared_dir() else {
        eprintln!(
            "skipped: the shared data folder is missing (set DNATUNE_SHARED or put it at ../shared) — needed: {relative}"
        );
        return None;
    };
    let path = dir.join(relative);
    if !path.exists() {
        eprintln!("skipped: {} does not exist", path.display());
        return None;
    }
    Some(path)
}

/// Returns early from a test, printing the reason, when a shared file or folder is missing:
/// `let dir = require_shared!("data/genomes");`
#[macro_export]
macro_rules! require_shared {
    ($relative:expr) => {
        match $crate::common::shared_path($relative) {
            Some(path) => path,
            None => return,
        }
    };
}
