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

/// A real GenBank file from Debian's r-cran-seqinr that `tests/data/fetch-genbank.sh` puts in
/// `tests/data/cache/` (run once per test binary when missing, as on a fresh checkout); `None`
/// (printing why the caller skips) when it cannot be had.
pub fn fetched_genbank(name: &str) -> Option<PathBuf> {
    static FETCH: std::sync::Once = std::sync::Once::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("tests/data/cache").join(name);
    if !path.exists() {
        FETCH.call_once(|| {
            let script = root.join("tests/data/fetch-genbank.sh");
            match std::process::Command::new("sh").arg(&script).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "{} failed: {}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => eprintln!("cannot run {}: {e}", script.display()),
            }
        });
    }
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is missing and tests/data/fetch-genbank.sh could not fetch it (it needs \
             apt-get and the Debian archive)",
            path.display()
        );
        None
    }
}
