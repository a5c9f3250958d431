//! Records the versions of the numeric libraries from Cargo.lock, so every run folder says
//! which candle and tokenizers produced it.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for (package, variable) in [
        ("candle-core", "DNATUNE_CANDLE_VERSION"),
        ("tokenizers", "DNATUNE_TOKENIZERS_VERSION"),
    ] {
        let version = locked_version(&lock, package).unwrap_or_else(|| "unknown".to_string());
        println!("cargo:rustc-env={variable}={version}");
    }
}

/// The `version` line that follows `name = "<package>"` in Cargo.lock.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let needle = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == needle {
            let version = lines.next()?.trim().strip_prefix("version = ")?;
            return Some(version.trim_matches('"').to_string());
        }
    }
    None
}
