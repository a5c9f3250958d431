//! File dialogs behind a seam: the app asks a [`Dialogs`]; the real one is rfd, tests answer
//! with [`ScriptedDialogs`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

pub trait Dialogs {
    /// Sequence files to add (empty when cancelled).
    fn pick_files(&mut self) -> Vec<PathBuf>;
    /// A folder, e.g. a model on disk (`None` when cancelled).
    fn pick_folder(&mut self, title: &str) -> Option<PathBuf>;
    /// Where to write a new folder such as an exported adapter (`None` when cancelled).
    fn save_folder(&mut self, title: &str, default_name: &str) -> Option<PathBuf>;
    /// Where to write a file such as a predictions CSV (`None` when cancelled).
    fn save_file(&mut self, title: &str, default_name: &str) -> Option<PathBuf> {
        self.save_folder(title, default_name)
    }
    /// Shows a folder in the system's file manager.
    fn open_path(&mut self, path: &Path) -> Result<(), String>;
}

/// The operating system's dialogs (rfd).
pub struct NativeDialogs;

impl Dialogs for NativeDialogs {
    fn pick_files(&mut self) -> Vec<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Add sequence files")
            .add_filter(
                "Sequences",
                &[
                    "fa", "fasta", "fna", "ffn", "faa", "fq", "fastq", "csv", "tsv", "txt", "gz",
                    "bgz", "xz", "zst", "bz2",
                ],
            )
            .add_filter("All files", &["*"])
            .pick_files()
            .unwrap_or_default()
    }

    fn pick_folder(&mut self, title: &str) -> Option<PathBuf> {
        rfd::FileDialog::new().set_title(title).pick_folder()
    }

    fn save_folder(&mut self, title: &str, default_name: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title(title)
            .set_file_name(default_name)
            .save_file()
    }

    fn open_path(&mut self, path: &Path) -> Result<(), String> {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else if cfg!(target_os = "windows") {
            "explorer"
        } else {
            "xdg-open"
        };
        std::process::Command::new(opener)
            .arg(path)
            .spawn()
            .map(|_| ())
            .map_err(|e| format!("could not open {} with {opener}: {e}", path.display()))
    }
}

/// Answers given in advance, for tests; an empty queue answers "cancelled".
#[derive(Debug, Default)]
pub struct ScriptedDialogs {
    pub files: VecDeque<Vec<PathBuf>>,
    pub folders: VecDeque<PathBuf>,
    pub saves: VecDeque<PathBuf>,
    /// Paths the app asked to show in the file manager.
    pub opened: Vec<PathBuf>,
}

impl Dialogs for ScriptedDialogs {
    fn pick_files(&mut self) -> Vec<PathBuf> {
        self.files.pop_front().unwrap_or_default()
    }

    fn pick_folder(&mut self, _title: &str) -> Option<PathBuf> {
        self.folders.pop_front()
    }

    fn save_folder(&mut self, _title: &str, _default_name: &str) -> Option<PathBuf> {
        self.saves.pop_front()
    }

    fn open_path(&mut self, path: &Path) -> Result<(), String> {
        self.opened.push(path.to_path_buf());
        Ok(())
    }
}
