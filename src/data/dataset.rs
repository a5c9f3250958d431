//! The pipeline from loaded records to a dataset: windows, blocks, groups, the seeded
//! split, duplicate removal and the QC report.
//!
//! The unit a split assigns is a group: by default one record; with `--group-by` all records
//! whose headers give the same capture (across classes, so a chromosome is held out whole);
//! with `--block BP` each contiguous block of a record. A class with fewer usable records
//! than its smallest split needs (`ceil(1 / smallest fraction)`, 10 for 0.8/0.1/0.1) is cut
//! into blocks automatically when windows are on and `--group-by` is off: about five blocks
//! per needed group, at least four windows long, a multiple of the stride. Windows never
//! straddle a block border (those are dropped and counted). Designated test records
//! (`--test-class`, `--test-regex`) form the test set; train and validation then share the
//! rest in their `--split` proportion.

use std::collections::HashMap;
use std::path::PathBuf;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::dedup::remove_duplicates;
use super::qc::{build_report, ClassDrops, QcReport};
use super::split::{assign_groups, GroupSize, SplitFractions, SPLITS};
use super::window::{blocks, count_crossing_block_borders, push_windows, WindowOptions, Windowing};
use super::{DataError, LoadedData, Record, Split, Window};

/// How loaded records become a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatasetOptions {
    pub window: WindowOptions,
    /// Cut every record into contiguous blocks of this many bp; blocks are what the split
    /// assigns, and windows never straddle two blocks.
    pub block_bp: Option<u32>,
    pub split: SplitFractions,
    /// A regex with one capture group over the header: records with the same capture
    /// (genome, contig, chromosome) share a split.
    pub group_by: Option<String>,
    pub seed: u64,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        DatasetOptions {
            window: WindowOptions::default(),
            block_bp: None,
            split: SplitFractions::default(),
            group_by: None,
            seed: DEFAULT_SEED,
        }
    }
}

pub const DEFAULT_SEED: u64 = 42;

/// Automatic blocks aim at this many blocks per needed group, so a class cut into blocks
/// can meet its split fractions closely.
const AUTO_BLOCKS_PER_NEEDED_GROUP: u64 = 5;
/// Automatic blocks are at least this many windows long, so few windows are lost at borders.
const AUTO_BLOCK_MIN_WINDOWS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Load(#[from] DataError),
    #[error("{0}")]
    InvalidOption(String),
    #[error("--group-by `{pattern}`: {reason}")]
    GroupByRegex { pattern: String, reason: String },
    #[error(
        "{file}, record `{record}` (line {line}): the header does not match --group-by `{pattern}`; \
         change the regex so it matches every header (its one capture group names the group)"
    )]
    GroupByNoMatch {
        file: PathBuf,
        record: String,
        line: u64,
        pattern: String,
    },
    #[error(
        "class `{class}` has no usable windows: of its {records} records, {too_short} are shorter \
         than the minimum window ({min_window_bp} bp) and the rest gave only windows with too many N \
         ({too_many_n} dropped); lower --min-window or raise --max-n-fraction, or check the input"
    )]
    ClassEmpty {
        class: String,
        records: u64,
        too_short: u64,
        min_window_bp: u32,
        too_many_n: u64,
    },
    #[error("class `{class}` would have no windows in the {split} split ({groups} groups to share out); {hint}")]
    SplitWouldBeEmpty {
        class: String,
        split: Split,
        groups: u64,
        hint: String,
    },
    #[error("cannot read the manifest {path}: {source}")]
    ManifestRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a dnatune dataset manifest: {source}; give the manifest.json that `dnatune data inspect --manifest` wrote")]
    ManifestFormat {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "cannot write the manifest {path}: {source}; check that the folder exists and is writable"
    )]
    ManifestWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} changed since the manifest was written (sha256 {expected} in the manifest, {actual} now); \
         use the original file, or build a new split and manifest from the current one"
    )]
    FileChanged {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("the data does not match the manifest: {0}")]
    ManifestMismatch(String),
}

/// Windows assigned to train / validation / test, with the records they come from.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub data: LoadedData,
    pub options: DatasetOptions,
    /// Indexed like [`SPLITS`]; windows in record order (designated test records last).
    splits: [Vec<Window>; 3],
    pub report: QcReport,
}

impl Dataset {
    /// Windows, blocks, groups and splits `data`, removes duplicates and builds the QC report.
    pub fn build(data: LoadedData, options: &DatasetOptions) -> Result<Dataset, DatasetError> {
        let windowing = options
            .window
            .resolve()
            .map_err(DatasetError::InvalidOption)?;
        check_block_option(options, &windowing)?;
        let group_regex = options
            .group_by
            .as_deref()
            .map(compile_group_regex)
            .transpose()?;
        let has_designated_test = data.records.iter().any(|r| r.designated_test);
        let fractions = if has_designated_test {
            options.split.without_test()
        } else {
            options.split
        };
        let class_count = data.classes.len();
        let mut drops: Vec<ClassDrops> = data
            .classes
            .iter()
            .enumerate()
            .map(|(class, name)| ClassDrops {
                class: name.clone(),
                normalization: data.normalization.get(class).cloned().unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        let block_bp = block_lengths(
            &data,
            options,
            &windowing,
            group_regex.is_some(),
            &fractions,
        );
        for (class_drops, block) in drops.iter_mut().zip(&block_bp) {
            class_drops.block_bp = *block;
        }

        let mut windows: Vec<Window> = Vec::new();
        let mut window_group: Vec<u32> = Vec::new();
        let mut designated_test_windows: Vec<Window> = Vec::new();
        let mut groups: Vec<GroupSize> = Vec::new();
        let mut group_by_key: HashMap<String, u32> = HashMap::new();
        for (record_index, record) in data.records.iter().enumerate() {
            let record_index = record_index as u32;
            let class = record.class as usize;
            drops[class].records_loaded += 1;
            if record.len < windowing.min_window_bp {
                drops[class].records_too_short += 1;
                continue;
            }
            let bases = data.sequence(record);
            if record.designated_test {
                drops[class].records_designated_test += 1;
                drops[class].windows_too_many_n += push_windows(
                    &windowing,
                    record_index,
                    bases,
                    0,
                    record.len,
                    &mut designated_test_windows,
                );
                continue;
            }
            let ranges = match block_bp[class] {
                Some(block) => {
                    let record_blocks = blocks(record.len, block, windowing.min_window_bp);
                    drops[class].windows_crossing_block_border +=
                        count_crossing_block_borders(&windowing, record.len, &record_blocks);
                    record_blocks
                }
                None => vec![(0, record.len)],
            };
            for (range_start, range_end) in ranges {
                let before = windows.len();
                drops[class].windows_too_many_n += push_windows(
                    &windowing,
                    record_index,
                    bases,
                    range_start,
                    range_end,
                    &mut windows,
                );
                let added = (windows.len() - before) as u64;
                if added == 0 {
                    continue;
                }
                let group = match &group_regex {
                    Some(regex) => {
                        let key = group_key(regex, &data, record, options)?;
                        let next = groups.len() as u32;
                        let group = *group_by_key.entry(key).or_insert(next);
                        if group == next {
                            groups.push(GroupSize::default());
                        }
                        group
                    }
                    None => {
                        groups.push(GroupSize::default());
                        groups.len() as u32 - 1
                    }
                };
                add_to_group(&mut groups[group as usize], record.class, added);
                window_group.extend(std::iter::repeat_n(group, added as usize));
            }
        }
        for group in &groups {
            for &(class, _) in &group.windows_per_class {
                drops[class as usize].groups += 1;
            }
        }

        let split_of_group = assign_groups(&groups, class_count, &fractions, options.seed);
        let mut splits: [Vec<Window>; 3] = Default::default();
        for (window, group) in windows.into_iter().zip(window_group) {
            splits[split_of_group[group as usize].index()].push(window);
        }
        splits[Split::Test.index()].extend(designated_test_windows);
        let duplicates = remove_duplicates(&data, &mut splits);

        check_every_split_has_every_class(
            &data,
            &splits,
            &drops,
            &fractions,
            has_designated_test,
            &windowing,
        )?;
        let report = build_report(&data, &splits, drops, &duplicates);
        Ok(Dataset {
            data,
            options: options.clone(),
            splits,
            report,
        })
    }

    pub fn windows(&self, split: Split) -> &[Window] {
        &self.splits[split.index()]
    }

    pub fn record(&self, window: &Window) -> &Record {
        &self.data.records[window.record as usize]
    }

    /// Index into `data.classes`.
    pub fn class_of(&self, window: &Window) -> u32 {
        self.record(window).class
    }

    /// The window's normalised bases.
    pub fn bases(&self, window: &Window) -> &[u8] {
        let record = self.record(window);
        let start = record.offset as usize + window.start as usize;
        &self.data.bases[start..start + window.len as usize]
    }
}

fn check_block_option(options: &DatasetOptions, windowing: &Windowing) -> Result<(), DatasetError> {
    let Some(block) = options.block_bp else {
        return Ok(());
    };
    if options.group_by.is_some() {
        return Err(DatasetError::InvalidOption(
            "--block and --group-by cannot be combined: blocks would split the groups; choose one"
                .into(),
        ));
    }
    let shortest = windowing
        .window_bp
        .unwrap_or(windowing.min_window_bp)
        .max(1);
    if block < shortest {
        return Err(DatasetError::InvalidOption(format!(
            "--block ({block} bp) is shorter than one window ({shortest} bp); give a block of several windows"
        )));
    }
    Ok(())
}

fn compile_group_regex(pattern: &str) -> Result<Regex, DatasetError> {
    let regex = Regex::new(pattern).map_err(|err| DatasetError::GroupByRegex {
        pattern: pattern.to_string(),
        reason: err.to_string(),
    })?;
    if regex.captures_len() != 2 {
        return Err(DatasetError::GroupByRegex {
            pattern: pattern.to_string(),
            reason: format!(
                "it needs exactly one capture group (the group name), it has {}; e.g. `^(\\S+?)_` or `(chr\\w+):`",
                regex.captures_len() - 1
            ),
        });
    }
    Ok(regex)
}

fn group_key(
    regex: &Regex,
    data: &LoadedData,
    record: &Record,
    options: &DatasetOptions,
) -> Result<String, DatasetError> {
    regex
        .captures(&record.header)
        .and_then(|captures| captures.get(1))
        .map(|m| m.as_str().to_string())
        .ok_or_else(|| DatasetError::GroupByNoMatch {
            file: data
                .files
                .get(record.file as usize)
                .map_or_else(PathBuf::new, |f| f.path.clone()),
            record: record.id().to_string(),
            line: record.line,
            pattern: options.group_by.clone().unwrap_or_default(),
        })
}

fn add_to_group(group: &mut GroupSize, class: u32, windows: u64) {
    match group
        .windows_per_class
        .iter_mut()
        .find(|(c, _)| *c == class)
    {
        Some((_, n)) => *n += windows,
        None => group.windows_per_class.push((class, windows)),
    }
}

/// How many groups a class needs so that its smallest non-empty split can get its share.
fn needed_groups(fractions: &SplitFractions) -> u64 {
    let smallest = fractions
        .as_array()
        .into_iter()
        .filter(|&f| f > 0.0)
        .fold(1.0f64, f64::min);
    (1.0 / smallest).ceil() as u64
}

/// Block length per class: `--block` for all; otherwise, with windows and no `--group-by`,
/// a class with fewer usable records than it needs is cut into blocks automatically.
fn block_lengths(
    data: &LoadedData,
    options: &DatasetOptions,
    windowing: &Windowing,
    grouped_by_regex: bool,
    fractions: &SplitFractions,
) -> Vec<Option<u32>> {
    let class_count = data.classes.len();
    if let Some(block) = options.block_bp {
        return vec![Some(block); class_count];
    }
    let (Some(window), false) = (windowing.window_bp, grouped_by_regex) else {
        return vec![None; class_count];
    };
    let mut usable_records = vec![0u64; class_count];
    let mut usable_bp = vec![0u64; class_count];
    for record in &data.records {
        if !record.designated_test && record.len >= windowing.min_window_bp {
            usable_records[record.class as usize] += 1;
            usable_bp[record.class as usize] += record.len as u64;
        }
    }
    let needed = needed_groups(fractions);
    (0..class_count)
        .map(|class| {
            if usable_records[class] == 0 || usable_records[class] >= needed {
                return None;
            }
            let target_blocks = needed * AUTO_BLOCKS_PER_NEEDED_GROUP;
            let by_count = usable_bp[class].div_ceil(target_blocks);
            let shortest = window as u64 * AUTO_BLOCK_MIN_WINDOWS as u64;
            let block = by_count.max(shortest);
            // A multiple of the stride keeps the windows inside a block on the record's grid.
            let stride = windowing.stride_bp.max(1) as u64;
            Some(
                block
                    .div_ceil(stride)
                    .saturating_mul(stride)
                    .min(u32::MAX as u64) as u32,
            )
        })
        .collect()
}

fn check_every_split_has_every_class(
    data: &LoadedData,
    splits: &[Vec<Window>; 3],
    drops: &[ClassDrops],
    fractions: &SplitFractions,
    has_designated_test: bool,
    windowing: &Windowing,
) -> Result<(), DatasetError> {
    let class_count = data.classes.len();
    let mut counts = vec![[0u64; 3]; class_count];
    for (split, windows) in splits.iter().enumerate() {
        for window in windows {
            counts[data.records[window.record as usize].class as usize][split] += 1;
        }
    }
    for (class, drop) in drops.iter().enumerate() {
        if counts[class].iter().sum::<u64>() == 0 {
            return Err(DatasetError::ClassEmpty {
                class: drop.class.clone(),
                records: drop.records_loaded,
                too_short: drop.records_too_short,
                min_window_bp: windowing.min_window_bp,
                too_many_n: drop.windows_too_many_n,
            });
        }
        for split in SPLITS {
            let wanted = match split {
                Split::Test => fractions.test > 0.0 || has_designated_test,
                Split::Train => true,
                Split::Validation => fractions.validation > 0.0,
            };
            if !wanted || counts[class][split.index()] > 0 {
                continue;
            }
            let hint = if split == Split::Test && has_designated_test {
                "designate test records for it too (--test-class NAME=PATH, or a --test-regex that matches some of its headers)".to_string()
            } else if windowing.window_bp.is_none() {
                "give it more records, cut its records into windows with --window BP (and blocks with --block BP), or set that split's fraction to 0 with --split (e.g. 0.9,0.1,0)".to_string()
            } else {
                "give it more records, cut its records into smaller blocks with --block BP, or set that split's fraction to 0 with --split (e.g. 0.9,0.1,0)".to_string()
            };
            return Err(DatasetError::SplitWouldBeEmpty {
                class: drop.class.clone(),
                split,
                groups: drop.groups,
                hint,
            });
        }
    }
    Ok(())
}
