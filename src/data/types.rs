//! The types shared by the data layer: loaded records (normalised bases packed in one
//! buffer), windows over them and the split each lands in.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::feature_label::FeatureLabelling;

/// The on-disk layout of one input file, detected from its content (and, for tables, its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    Fasta,
    Fastq,
    /// CSV/TSV with a sequence column and (optionally) a label column.
    Table,
    /// DNABERT-1 fine-tuning TSV: space-separated overlapping k-mers, then a label.
    KmerTable,
    /// GenBank flat file (`LOCUS` … `ORIGIN` … `//`), with its feature table.
    #[serde(rename = "genbank")]
    GenBank,
}

/// One input file as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputFile {
    pub path: PathBuf,
    /// Hex sha256 of the file's bytes as stored (compressed or not).
    pub sha256: String,
    pub format: InputFormat,
    /// The class every record of this file belongs to, when labels come per file.
    pub class: Option<u32>,
    /// True when the user designated this file as (part of) the test set.
    pub designated_test: bool,
}

/// One sequence record after normalisation (upper-case `A C G T N` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The full header line without `>`/`@` (for tables: the row's id column, or `file:row`).
    pub header: String,
    /// Index into [`LoadedData::files`].
    pub file: u32,
    /// 1-based line (FASTA/FASTQ: of the header; tables: of the row) for messages.
    pub line: u64,
    /// Index into [`LoadedData::classes`].
    pub class: u32,
    /// Where the record's bases start in [`LoadedData::bases`].
    pub offset: u64,
    pub len: u32,
    /// The user put this record in the test set (`--test-class`, `--test-regex`).
    pub designated_test: bool,
}

impl Record {
    /// The record id: the header up to its first whitespace.
    pub fn id(&self) -> &str {
        self.header.split_whitespace().next().unwrap_or("")
    }
}

/// What normalisation changed or dropped, so nothing happens silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizationCounts {
    /// IUPAC ambiguity codes (R Y K M S W B D H V) turned into N.
    pub ambiguous_to_n: u64,
    /// `-` and `.` removed.
    pub gaps_removed: u64,
    /// U turned into T.
    pub u_to_t: u64,
    /// Lower-case (soft-masked) bases upper-cased.
    pub lowercase_bases: u64,
    /// Records with no bases at all (after gap removal), skipped.
    pub empty_records: u64,
}

/// Everything read from the inputs: classes in a stable order, files, records and their bases.
#[derive(Debug, Clone, Default)]
pub struct LoadedData {
    pub classes: Vec<String>,
    pub files: Vec<InputFile>,
    pub records: Vec<Record>,
    /// All records' normalised bases, end to end (one byte per base).
    pub bases: Vec<u8>,
    /// Per class, indexed like `classes`.
    pub normalization: Vec<NormalizationCounts>,
    /// With `--label-by-feature`: the GenBank records whose windows are labelled by their
    /// features, and what their features cover.
    pub feature_labels: Option<FeatureLabelling>,
}

impl LoadedData {
    /// The normalised bases of `record`.
    pub fn sequence(&self, record: &Record) -> &[u8] {
        let start = record.offset as usize;
        &self.bases[start..start + record.len as usize]
    }

    /// The class of `window`: its record's, or for a record labelled by its features, the
    /// feature class when the window overlaps a chosen feature and the `non_` class when not
    /// (windows with too little overlap never reach a dataset).
    pub fn window_class(&self, window: &Window) -> u32 {
        if let Some(labels) = &self.feature_labels {
            if let Some(cover) = labels.cover(window.record) {
                let end = window.start.saturating_add(window.len);
                return if cover.covered_bp(window.start, end) > 0 {
                    labels.positive
                } else {
                    labels.negative
                };
            }
        }
        self.records[window.record as usize].class
    }
}

/// Which part of the data a window belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Validation,
    Test,
}

/// A window of a record: bp coordinates `[start, start + len)` within the record (0-based,
/// half-open, as BED uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Index into [`LoadedData::records`].
    pub record: u32,
    pub start: u32,
    pub len: u32,
}
