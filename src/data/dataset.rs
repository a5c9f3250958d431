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
use super::feature_label::{WindowLabel, DEFAULT_MIN_FEATURE_OVERLAP};
use super::qc::{build_report, ClassDrops, FeatureLabelQc, QcReport};
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
    /// With `--label-by-feature`: the fraction of a window that must lie in the features
    /// for the feature label; windows with less (but some) overlap are dropped.
    pub min_feature_overlap: f64,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        DatasetOptions {
            window: WindowOptions::default(),
            block_bp: None,
            split: SplitFractions::default(),
            group_by: None,
            seed: DEFAULT_SEED,
            min_feature_overlap: DEFAULT_MIN_FEATURE_OVERLAP,
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
    #[error(
        "no window is labelled `{class}`: of {windows} windows cut from {records} GenBank records, \
         {with_feature} lie at least {min_overlap_percent}% in {keys} features, {without_feature} \
         touch none, and {partial} overlap only partly (dropped). {hint}"
    )]
    FeatureClassEmpty {
        class: String,
        keys: String,
        records: u64,
        windows: u64,
        with_feature: u64,
        without_feature: u64,
        partial: u64,
        min_overlap_percent: f64,
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
        check_feature_options(&data, options, &windowing)?;
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
        let feature_block_bp = block_bp.get(class_count).copied().flatten();
        let mut feature_qc = data.feature_labels.as_ref().map(|labels| {
            for class in [labels.positive, labels.negative] {
                if let Some(class_drops) = drops.get_mut(class as usize) {
                    class_drops.block_bp = class_drops.block_bp.or(feature_block_bp);
                }
            }
            FeatureLabelQc::new(labels, options.min_feature_overlap, feature_block_bp)
        });
        let mut record_windows: Vec<Window> = Vec::new();

        let mut windows: Vec<Window> = Vec::new();
        let mut window_group: Vec<u32> = Vec::new();
        let mut designated_test_windows: Vec<Window> = Vec::new();
        let mut groups: Vec<GroupSize> = Vec::new();
        let mut group_by_key: HashMap<String, u32> = HashMap::new();
        for (record_index, record) in data.records.iter().enumerate() {
            let record_index = record_index as u32;
            let class = record.class as usize;
            let cover = data
                .feature_labels
                .as_ref()
                .and_then(|labels| labels.cover(record_index));
            // Records labelled by their features are counted in the feature report.
            let mut feature_qc = match (cover, feature_qc.as_mut()) {
                (Some(_), Some(qc)) => {
                    qc.records += 1;
                    qc.record_bp += u64::from(record.len);
                    Some(qc)
                }
                _ => {
                    drops[class].records_loaded += 1;
                    None
                }
            };
            if record.len < windowing.min_window_bp {
                match feature_qc.as_deref_mut() {
                    Some(qc) => qc.records_too_short += 1,
                    None => drops[class].records_too_short += 1,
                }
                continue;
            }
            let bases = data.sequence(record);
            let block = if cover.is_some() {
                feature_block_bp
            } else {
                block_bp[class]
            };
            let ranges = match (record.designated_test, block) {
                (true, _) => vec![(0, record.len)],
                (false, Some(block)) => {
                    let record_blocks = blocks(record.len, block, windowing.min_window_bp);
                    let crossing =
                        count_crossing_block_borders(&windowing, record.len, &record_blocks);
                    match feature_qc.as_deref_mut() {
                        Some(qc) => qc.windows_crossing_block_border += crossing,
                        None => drops[class].windows_crossing_block_border += crossing,
                    }
                    record_blocks
                }
                (false, None) => vec![(0, record.len)],
            };
            if record.designated_test {
                match feature_qc.as_deref_mut() {
                    Some(qc) => qc.records_designated_test += 1,
                    None => drops[class].records_designated_test += 1,
                }
            }
            for (range_start, range_end) in ranges {
                record_windows.clear();
                let too_many_n = push_windows(
                    &windowing,
                    record_index,
                    bases,
                    range_start,
                    range_end,
                    &mut record_windows,
                );
                match feature_qc.as_deref_mut() {
                    Some(qc) => qc.windows_too_many_n += too_many_n,
                    None => drops[class].windows_too_many_n += too_many_n,
                }
                if let (Some(cover), Some(qc)) = (cover, feature_qc.as_deref_mut()) {
                    record_windows.retain(|window| {
                        match cover.label(window.start, window.len, options.min_feature_overlap) {
                            WindowLabel::Feature => {
                                qc.windows_with_feature += 1;
                                true
                            }
                            WindowLabel::WithoutFeature => {
                                qc.windows_without_feature += 1;
                                true
                            }
                            WindowLabel::Partial => {
                                qc.windows_partial_dropped += 1;
                                false
                            }
                        }
                    });
                }
                if record_windows.is_empty() {
                    continue;
                }
                if record.designated_test {
                    designated_test_windows.extend_from_slice(&record_windows);
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
                if cover.is_some() {
                    for window in &record_windows {
                        add_to_group(&mut groups[group as usize], data.window_class(window), 1);
                    }
                } else {
                    add_to_group(
                        &mut groups[group as usize],
                        record.class,
                        record_windows.len() as u64,
                    );
                }
                window_group.extend(std::iter::repeat_n(group, record_windows.len()));
                windows.extend_from_slice(&record_windows);
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

        if let Some(qc) = &feature_qc {
            check_feature_classes(&data, &splits, qc)?;
        }
        check_every_split_has_every_class(
            &data,
            &splits,
            &drops,
            &fractions,
            has_designated_test,
            &windowing,
        )?;
        let report = build_report(&data, &splits, drops, &duplicates, feature_qc);
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
        self.data.window_class(window)
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

/// `--label-by-feature` needs windows and a sensible overlap fraction.
fn check_feature_options(
    data: &LoadedData,
    options: &DatasetOptions,
    windowing: &Windowing,
) -> Result<(), DatasetError> {
    let Some(labels) = &data.feature_labels else {
        return Ok(());
    };
    if windowing.window_bp.is_none() {
        return Err(DatasetError::InvalidOption(format!(
            "--label-by-feature {} labels windows, so it needs --window BP (e.g. --window 200 \
             --stride 100): a whole genome would be one example with one label",
            labels.keys.join(",")
        )));
    }
    let overlap = options.min_feature_overlap;
    if !(overlap > 0.0 && overlap <= 1.0) {
        return Err(DatasetError::InvalidOption(format!(
            "--min-feature-overlap must be above 0 and at most 1 (a fraction of the window), \
             got {overlap}"
        )));
    }
    Ok(())
}

/// Both feature classes have windows; otherwise says why not and what to change.
fn check_feature_classes(
    data: &LoadedData,
    splits: &[Vec<Window>; 3],
    qc: &FeatureLabelQc,
) -> Result<(), DatasetError> {
    let Some(labels) = &data.feature_labels else {
        return Ok(());
    };
    for class in [labels.positive, labels.negative] {
        let present = splits
            .iter()
            .flatten()
            .any(|window| data.window_class(window) == class);
        if present {
            continue;
        }
        let keys = labels.keys.join(",");
        let hint = if class == labels.positive {
            format!(
                "Use shorter windows, a lower --min-feature-overlap, or a feature key the records \
                 have more of ({keys} covers {} of {} bp)",
                qc.covered_bp, qc.record_bp
            )
        } else {
            format!(
                "The {keys} features cover (nearly) all of the sequence; use shorter windows, or \
                 a key that leaves gaps between its features"
            )
        };
        return Err(DatasetError::FeatureClassEmpty {
            class: data.classes[class as usize].clone(),
            keys,
            records: qc.records,
            windows: qc.windows_with_feature
                + qc.windows_without_feature
                + qc.windows_partial_dropped,
            with_feature: qc.windows_with_feature,
            without_feature: qc.windows_without_feature,
            partial: qc.windows_partial_dropped,
            min_overlap_percent: qc.min_overlap * 100.0,
            hint,
        });
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
    // One entry per class, and a last one for the records labelled by their features (which
    // hold windows of two classes).
    let class_count = data.classes.len();
    if let Some(block) = options.block_bp {
        return vec![Some(block); class_count + 1];
    }
    let (Some(window), false) = (windowing.window_bp, grouped_by_regex) else {
        return vec![None; class_count + 1];
    };
    let mut usable_records = vec![0u64; class_count + 1];
    let mut usable_bp = vec![0u64; class_count + 1];
    for (index, record) in data.records.iter().enumerate() {
        if !record.designated_test && record.len >= windowing.min_window_bp {
            let by_features = data
                .feature_labels
                .as_ref()
                .is_some_and(|labels| labels.cover(index as u32).is_some());
            let entry = if by_features {
                class_count
            } else {
                record.class as usize
            };
            usable_records[entry] += 1;
            usable_bp[entry] += record.len as u64;
        }
    }
    let needed = needed_groups(fractions);
    (0..=class_count)
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
            counts[data.window_class(window) as usize][split] += 1;
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
