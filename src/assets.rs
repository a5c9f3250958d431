//! Files dnatune ships beside its binary (the icon, the bundled model and the demo data
//! set), found wherever a package installed them — never relative to the working directory.
//!
//! Looked up, in order, under:
//! 1. `$DNATUNE_DATA_DIR`, when set (a user's or a test's own folder);
//! 2. `<exe dir>/../share/dnatune` (Linux packages: `/usr/bin` → `/usr/share/dnatune`, also
//!    `/usr/local` and `~/.local` installs);
//! 3. `<exe dir>/../Resources` (a macOS `.app`: `Contents/MacOS` → `Contents/Resources`);
//! 4. `<exe dir>` (the Windows installer puts them beside `dnatune.exe`);
//! 5. `/usr/share/dnatune` (a binary moved elsewhere on a system with the package installed);
//! 6. the source tree's `assets/` folder, when it exists (`cargo run` and `cargo test` in a
//!    checkout).

use std::path::{Path, PathBuf};

/// The application icon (256 px PNG), compiled into the binary.
pub const ICON_PNG: &[u8] = include_bytes!("../assets/icons/dnatune-256.png");

/// The folders searched for bundled files, in order, for the running executable.
pub fn search_dirs() -> Vec<PathBuf> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok());
    let override_dir = std::env::var_os("DNATUNE_DATA_DIR").map(PathBuf::from);
    search_dirs_for(exe.as_deref(), override_dir)
}

/// [`search_dirs`] for a given executable path and `$DNATUNE_DATA_DIR`.
pub fn search_dirs_for(exe: Option<&Path>, override_dir: Option<PathBuf>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    dirs.extend(override_dir);
    if let Some(bin_dir) = exe.and_then(Path::parent) {
        if let Some(prefix) = bin_dir.parent() {
            dirs.push(prefix.join("share").join("dnatune"));
            dirs.push(prefix.join("Resources"));
        }
        dirs.push(bin_dir.to_path_buf());
    }
    let system = PathBuf::from("/usr/share/dnatune");
    if !dirs.contains(&system) {
        dirs.push(system);
    }
    let source_tree = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets"));
    if source_tree.is_dir() && !dirs.contains(&source_tree) {
        dirs.push(source_tree);
    }
    dirs
}

/// The first `dir/relative` that exists among [`search_dirs`].
pub fn find(relative: &str) -> Option<PathBuf> {
    find_in(&search_dirs(), relative)
}

/// The first `dir/relative` that exists among `dirs`.
pub fn find_in(dirs: &[PathBuf], relative: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(relative))
        .find(|path| path.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_package_layout_finds_usr_share() {
        let dirs = search_dirs_for(Some(Path::new("/usr/bin/dnatune")), None);
        assert_eq!(dirs[0], PathBuf::from("/usr/share/dnatune"));
        // Listed once, though it is also the system fallback.
        assert_eq!(
            dirs.iter()
                .filter(|d| d.as_path() == Path::new("/usr/share/dnatune"))
                .count(),
            1
        );
    }

    #[test]
    fn macos_bundle_and_windows_layouts_are_searched() {
        let mac = search_dirs_for(
            Some(Path::new(
                "/Applications/dnatune.app/Contents/MacOS/dnatune",
            )),
            None,
        );
        assert!(mac.contains(&PathBuf::from(
            "/Applications/dnatune.app/Contents/Resources"
        )));
        let win = search_dirs_for(Some(Path::new("/opt/dnatune/dnatune.exe")), None);
        assert!(win.contains(&PathBuf::from("/opt/dnatune")));
    }

    #[test]
    fn the_override_comes_first_and_the_first_existing_file_wins() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let first = tmp.path().join("override");
        let prefix = tmp.path().join("prefix");
        for dir in [&first, &prefix.join("share/dnatune")] {
            std::fs::create_dir_all(dir.join("icons")).expect("dirs");
        }
        std::fs::write(prefix.join("share/dnatune/icons/dnatune.svg"), "<svg/>").expect("write");
        let exe = prefix.join("bin/dnatune");
        let dirs = search_dirs_for(Some(&exe), Some(first.clone()));
        assert_eq!(dirs[0], first);
        // Not in the override folder: found under share/dnatune.
        assert_eq!(
            find_in(&dirs, "icons/dnatune.svg"),
            Some(prefix.join("share/dnatune/icons/dnatune.svg"))
        );
        std::fs::write(first.join("icons/dnatune.svg"), "<svg/>").expect("write");
        assert_eq!(
            find_in(&dirs, "icons/dnatune.svg"),
            Some(first.join("icons/dnatune.svg"))
        );
        assert_eq!(find_in(&dirs, "no/such/file"), None);
    }

    #[test]
    fn the_embedded_icon_is_a_256_px_png() {
        assert_eq!(&ICON_PNG[1..4], b"PNG");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let width = u32::from_be_bytes(ICON_PNG[16..20].try_into().expect("4 bytes"));
        let height = u32::from_be_bytes(ICON_PNG[20..24].try_into().expect("4 bytes"));
        assert_eq!((width, height), (256, 256));
    }
}
