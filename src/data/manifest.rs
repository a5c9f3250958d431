//! The dataset manifest: everything needed to rebuild exactly the same split, as JSON.
//!
//! It holds input files with their sha256, the load and dataset options (seed included),
//! classes, counts and every window of every split as `[record index, start, len]`, where
//! the record index is the record's position in load order and `records` lists, for each
//! record used, its file, id and length so a reload can check it is the same record.
//! No output paths, timestamps or hash-map order: the same inputs, options and seed give a
//! byte-identical file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, DatasetError, DatasetOptions};
use super::split::SPLITS;
use super::{load, InputFile, LoadOptions, LoadedData, Split};

/// Bumped when the layout changes incompatibly.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub dnatune_version: String,
    pub files: Vec<InputFile>,
    pub load_options: LoadOptions,
    pub dataset_options: DatasetOptions,
    pub classes: Vec<String>,
    pub counts: Vec<ClassCounts>,
    pub records: Vec<ManifestRecord>,
    pub windows: SplitWindows,
    /// With `--label-by-feature`, where a window's class is not its record's: the class
    /// (index into `classes`) of every window, in the order of `windows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_classes: Option<SplitClasses>,
}

/// The class of each window, per split (parallel to [`SplitWindows`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitClasses {
    pub train: Vec<u32>,
    pub validation: Vec<u32>,
    pub test: Vec<u32>,
}

/// Windows per split of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    pub class: String,
    pub train: u64,
    pub validation: u64,
    pub test: u64,
}

/// A record that has at least one window in the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// Position in load order (what windows refer to).
    pub index: u32,
    /// Index into `files`.
    pub file: u32,
    pub id: String,
    pub class: u32,
    pub len: u32,
}

/// `[record index, start, len]` per window, per split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitWindows {
    pub train: Vec<[u32; 3]>,
    pub validation: Vec<[u32; 3]>,
    pub test: Vec<[u32; 3]>,
}

impl SplitWindows {
    pub fn get(&self, split: Split) -> &[[u32; 3]] {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        }
    }
}

impl Manifest {
    /// The manifest of `dataset`, read with `load_options`.
    pub fn new(dataset: &Dataset, load_options: &LoadOptions) -> Manifest {
        let data = &dataset.data;
        let triples = |split: Split| -> Vec<[u32; 3]> {
            dataset
                .windows(split)
                .iter()
                .map(|w| [w.record, w.start, w.len])
                .collect()
        };
        let mut used = vec![false; data.records.len()];
        let mut counts: Vec<ClassCounts> = data
            .classes
            .iter()
            .map(|class| ClassCounts {
                class: class.clone(),
                train: 0,
                validation: 0,
                test: 0,
            })
            .collect();
        for split in SPLITS {
            for window in dataset.windows(split) {
                used[window.record as usize] = true;
                let class_counts = &mut counts[dataset.class_of(window) as usize];
                match split {
                    Split::Train => class_counts.train += 1,
                    Split::Validation => class_counts.validation += 1,
                    Split::Test => class_counts.test += 1,
                }
            }
        }
        let records = data
            .records
            .iter()
            .enumerate()
            .filter(|(index, _)| used[*index])
            .map(|(index, record)| ManifestRecord {
                index: index as u32,
                file: record.file,
                id: record.id().to_string(),
                class: record.class,
                len: record.len,
            })
            .collect();
        let classes_of = |split: Split| -> Vec<u32> {
            dataset
                .windows(split)
                .iter()
                .map(|w| dataset.class_of(w))
                .collect()
        };
        let window_classes = data.feature_labels.as_ref().map(|_| SplitClasses {
            train: classes_of(Split::Train),
            validation: classes_of(Split::Validation),
            test: classes_of(Split::Test),
        });
        Manifest {
            manifest_version: MANIFEST_VERSION,
            dnatune_version: crate::VERSION.to_string(),
            files: data.files.clone(),
            load_options: load_options.clone(),
            dataset_options: dataset.options.clone(),
            classes: data.classes.clone(),
            counts,
            records,
            windows: SplitWindows {
                train: triples(Split::Train),
                validation: triples(Split::Validation),
                test: triples(Split::Test),
            },
            window_classes,
        }
    }

    /// The manifest as JSON text (one line: it can hold hundreds of thousands of windows).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the manifest atomically: a temporary file in the same folder, then a rename,
    /// so an interrupted run never leaves half a manifest.
    pub fn write(&self, path: &Path) -> Result<(), DatasetError> {
        write_atomically(path, self.to_json().as_bytes()).map_err(|source| {
            DatasetError::ManifestWrite {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    pub fn read(path: &Path) -> Result<Manifest, DatasetError> {
        let text = fs::read_to_string(path).map_err(|source| DatasetError::ManifestRead {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| DatasetError::ManifestFormat {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Loads the recorded files again and rebuilds exactly the recorded dataset (see
    /// [`Manifest::reproduce`]).
    pub fn reload(&self) -> Result<Dataset, DatasetError> {
        self.reproduce(load(&self.load_options)?)
    }

    /// Rebuilds the dataset recorded here from `data` (loaded again from the same files
    /// with `load_options`): checks every file's sha256 and that the rebuilt split is
    /// exactly the recorded one.
    pub fn reproduce(&self, data: LoadedData) -> Result<Dataset, DatasetError> {
        if data.files.len() != self.files.len() {
            return Err(DatasetError::ManifestMismatch(format!(
                "the manifest lists {} input files, {} were loaded; load the files listed in the manifest",
                self.files.len(),
                data.files.len()
            )));
        }
        for (recorded, loaded) in self.files.iter().zip(&data.files) {
            if recorded.sha256 != loaded.sha256 {
                return Err(DatasetError::FileChanged {
                    path: loaded.path.clone(),
                    expected: recorded.sha256.clone(),
                    actual: loaded.sha256.clone(),
                });
            }
        }
        if data.classes != self.classes {
            return Err(DatasetError::ManifestMismatch(format!(
                "classes {:?} in the manifest, {:?} loaded; give the classes in the same order",
                self.classes, data.classes
            )));
        }
        let dataset = Dataset::build(data, &self.dataset_options)?;
        let rebuilt = Manifest::new(&dataset, &self.load_options);
        if rebuilt.records != self.records
            || rebuilt.windows != self.windows
            || rebuilt.window_classes != self.window_classes
        {
            let differing = SPLITS
                .iter()
                .find(|&&split| rebuilt.windows.get(split) != self.windows.get(split))
                .map_or("records".to_string(), |split| format!("{split} split"));
            return Err(DatasetError::ManifestMismatch(format!(
                "the rebuilt {differing} differs from the recorded one (manifest written by dnatune {}, this is {}); \
                 the inputs were read differently or the splitting rules changed",
                self.dnatune_version,
                crate::VERSION
            )));
        }
        Ok(dataset)
    }
}

/// Writes `bytes` to `path` via a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp_path: PathBuf = path.with_file_name(temp_name);
    let result = (|| {
        let mut file = fs::File::create(&temp_path)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp_path, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    result
}
