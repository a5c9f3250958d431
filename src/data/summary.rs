//! A quick look at one input file, for the app's file list and label previews: its format,
//! how many records and bases it holds, a sample of its headers and, for tables, the labels.
//! The file is read and checked the way [`super::load`] reads it (same errors), but the
//! sequences are not kept, so a genome costs little memory.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{describe_byte, DataError};
use super::fasta::EachRecord;
use super::fastx::{decompress, open_input, read_fastx_file, FastxReading};
use super::genbank::{looks_like_genbank, read_genbank_file};
use super::label::{HeaderLabelRule, HeaderLabeller};
use super::normalize::normalize_into;
use super::table::{read_table_file, TableInput};
use super::types::{InputFormat, NormalizationCounts};

/// At most this many headers are kept per file for previews.
pub const HEADER_SAMPLE: usize = 5_000;

/// How often (in bytes of the file as stored) progress is reported.
const PROGRESS_STEP: u64 = 1 << 20;

/// What [`summarize_file`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSummary {
    pub format: Option<InputFormat>,
    /// Records with at least one base.
    pub records: u64,
    /// Records with no bases (skipped when loading).
    pub empty_records: u64,
    /// Bases after normalisation (gaps removed).
    pub bases: u64,
    pub shortest: Option<u64>,
    pub longest: Option<u64>,
    /// The first [`HEADER_SAMPLE`] headers (FASTA/FASTQ: the whole header line).
    pub headers: Vec<String>,
    /// Tables: each label with its number of rows, in order of first appearance.
    pub labels: Vec<(String, u64)>,
    /// GenBank: each feature key with its number of features, in order of first appearance.
    pub features: Vec<(String, u64)>,
}

impl FileSummary {
    /// True for CSV/TSV tables, whose rows carry their own labels.
    pub fn is_table(&self) -> bool {
        matches!(
            self.format,
            Some(InputFormat::Table | InputFormat::KmerTable)
        )
    }

    fn add_length(&mut self, len: u64) {
        if len == 0 {
            self.empty_records += 1;
            return;
        }
        self.records += 1;
        self.bases += len;
        self.shortest = Some(self.shortest.map_or(len, |s| s.min(len)));
        self.longest = Some(self.longest.map_or(len, |l| l.max(len)));
    }

    fn add_header(&mut self, header: &str) {
        if self.headers.len() < HEADER_SAMPLE {
            self.headers.push(header.to_string());
        }
    }

    /// True for GenBank files, whose windows can be labelled by their features.
    pub fn is_genbank(&self) -> bool {
        self.format == Some(InputFormat::GenBank)
    }

    fn add_feature(&mut self, key: &str) {
        match self.features.iter_mut().find(|(name, _)| name == key) {
            Some((_, count)) => *count += 1,
            None => self.features.push((key.to_string(), 1)),
        }
    }

    fn add_label(&mut self, label: &str) {
        match self.labels.iter_mut().find(|(name, _)| name == label) {
            Some((_, count)) => *count += 1,
            None => self.labels.push((label.to_string(), 1)),
        }
    }
}

/// True when the file name ends in `.csv` or `.tsv` (possibly followed by a compression
/// extension).
pub fn named_like_table(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = ["gz", "bgz", "bz2", "xz", "zst", "zstd"]
        .iter()
        .find_map(|ext| name.strip_suffix(&format!(".{ext}")))
        .unwrap_or(&name);
    name.ends_with(".csv") || name.ends_with(".tsv")
}

/// True when `path` looks like a CSV/TSV table rather than FASTA/FASTQ: its name says so
/// (`.csv`, `.tsv`, also compressed), or its first line has a comma or a tab and does not
/// start with `>` or `@`.
pub fn looks_like_table(path: &Path) -> Result<bool, DataError> {
    if named_like_table(path) {
        return Ok(true);
    }
    let file = open_input(path)?;
    let (_, mut decoded) = decompress(file).map_err(|e| DataError::io(path, e))?;
    let mut head = vec![0u8; 8192];
    let mut filled = 0;
    while filled < head.len() {
        match decoded.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            // Corrupt compressed data: let the full read report it properly.
            Err(_) => break,
        }
    }
    let text = &head[..filled];
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    if super::genbank::starts_like_genbank(text) {
        return Ok(false);
    }
    let first_line = text[start..].split(|&b| b == b'\n').next().unwrap_or(&[]);
    Ok(match first_line.first() {
        None | Some(b'>') | Some(b'@') => false,
        Some(_) => first_line.contains(&b',') || first_line.contains(&b'\t'),
    })
}

/// Reads `path` (FASTA/FASTQ, GenBank or a table, any supported compression) and summarises it.
/// `on_progress(bytes_read, bytes_total)` is called about every MB; when `stop()` turns true
/// the read ends early and the result is `Ok(None)`.
pub fn summarize_file(
    path: &Path,
    mut on_progress: impl FnMut(u64, u64),
    stop: impl Fn() -> bool,
) -> Result<Option<FileSummary>, DataError> {
    let bytes_total = std::fs::metadata(path).map_or(0, |m| m.len());
    let bytes_read = AtomicU64::new(0);
    let mut last_report = 0u64;
    let mut stopped = false;
    let mut check = |stopped: &mut bool| -> Result<(), DataError> {
        let now = bytes_read.load(Ordering::Relaxed);
        if now >= last_report + PROGRESS_STEP {
            last_report = now;
            on_progress(now, bytes_total);
            if stop() {
                *stopped = true;
                return Err(DataError::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::Interrupted, "stopped"),
                ));
            }
        }
        Ok(())
    };
    let mut summary = FileSummary::default();
    let mut bases = Vec::new();
    let mut counts = NormalizationCounts::default();
    let result = if looks_like_table(path)? {
        let input = TableInput {
            path: path.display().to_string(),
            ..TableInput::default()
        };
        read_table_file(path, &input, &bytes_read, |row| {
            bases.clear();
            if let Err(bad) = normalize_into(row.sequence, &mut bases, &mut counts) {
                return Err(DataError::InvalidCharacter {
                    path: path.to_path_buf(),
                    record: row.header.to_string(),
                    location: format!("line {}, base {} of the sequence", row.line, bad.index + 1),
                    character: describe_byte(bad.byte),
                });
            }
            summary.add_length(bases.len() as u64);
            summary.add_header(&row.header);
            summary.add_label(row.label);
            check(&mut stopped)
        })
    } else if looks_like_genbank(path)? {
        read_genbank_file(path, &bytes_read, false, |record| {
            summary.add_length(record.sequence.len() as u64);
            summary.add_header(&record.header());
            for feature in &record.features {
                summary.add_feature(&feature.key);
            }
            check(&mut stopped)
        })
        .map(|sha256| (InputFormat::GenBank, sha256))
    } else {
        let mut sink = EachRecord::new(|header: &[u8], _line: u64, bases: &[u8]| {
            summary.add_length(bases.len() as u64);
            summary.add_header(&String::from_utf8_lossy(header));
            check(&mut stopped)
        });
        read_fastx_file(path, &bytes_read, FastxReading::NO_HASH, &mut sink)
    };
    let format = match result {
        Ok((format, _sha256)) => format,
        Err(_) if stopped => return Ok(None),
        Err(err) => return Err(err),
    };
    summary.format = Some(format);
    if summary.records == 0 && summary.empty_records > 0 {
        return Err(DataError::AllRecordsEmpty {
            path: path.to_path_buf(),
            records: summary.empty_records,
        });
    }
    on_progress(bytes_total, bytes_total);
    Ok(Some(summary))
}

/// What a header label rule finds in a set of headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderLabelPreview {
    /// Each label with its number of headers, in order of first appearance.
    pub labels: Vec<(String, u64)>,
    pub headers_checked: u64,
    /// Headers the rule finds no label in.
    pub unlabelled: u64,
    /// The first such header and why it has no label.
    pub first_unlabelled: Option<(String, &'static str)>,
}

/// Applies `rule` to `headers` exactly as loading will; the error is the rule's own problem
/// (an invalid regex, or one without exactly one capture group).
pub fn preview_header_labels<'h>(
    rule: &HeaderLabelRule,
    headers: impl IntoIterator<Item = &'h str>,
) -> Result<HeaderLabelPreview, DataError> {
    let labeller = HeaderLabeller::new(rule)?;
    let mut preview = HeaderLabelPreview::default();
    for header in headers {
        preview.headers_checked += 1;
        match labeller.label(header) {
            Ok(label) => match preview.labels.iter_mut().find(|(name, _)| name == label) {
                Some((_, count)) => *count += 1,
                None => preview.labels.push((label.to_string(), 1)),
            },
            Err(problem) => {
                preview.unlabelled += 1;
                if preview.first_unlabelled.is_none() {
                    preview.first_unlabelled = Some((header.to_string(), problem));
                }
            }
        }
    }
    Ok(preview)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fasta_summary_counts_records_bases_and_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.fa");
        std::fs::write(&path, ">r1 x\nACGT\nAC\n>r2\n\n>r3\nA-C\n").unwrap();
        let summary = summarize_file(&path, |_, _| {}, || false).unwrap().unwrap();
        assert_eq!(summary.format, Some(InputFormat::Fasta));
        assert_eq!(summary.records, 2);
        assert_eq!(summary.empty_records, 1);
        assert_eq!(summary.bases, 8);
        assert_eq!((summary.shortest, summary.longest), (Some(2), Some(6)));
        assert_eq!(summary.headers, ["r1 x", "r2", "r3"]);
        assert!(!summary.is_table());
    }

    #[test]
    fn a_bad_character_is_reported_as_load_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.fa");
        std::fs::write(&path, ">r1\nACGT\n>r2\nACXT\n").unwrap();
        let err = summarize_file(&path, |_, _| {}, || false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("record 'r2'") && text.contains("'X'"),
            "{text}"
        );
    }

    #[test]
    fn tables_give_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "sequence,label\nACGTACGTAC,0\nACGTACGTTT,1\nACGTACGGGG,1\n",
        )
        .unwrap();
        let summary = summarize_file(&path, |_, _| {}, || false).unwrap().unwrap();
        assert!(summary.is_table());
        assert_eq!(summary.records, 3);
        assert_eq!(summary.labels, [("0".to_string(), 1), ("1".to_string(), 2)]);
    }

    #[test]
    fn header_label_preview_counts_labels_and_finds_the_first_miss() {
        let rule = HeaderLabelRule::Regex("label=(\\w+)".into());
        let preview =
            preview_header_labels(&rule, ["a label=x", "b label=y", "c", "d label=x"]).unwrap();
        assert_eq!(preview.labels, [("x".to_string(), 2), ("y".to_string(), 1)]);
        assert_eq!(preview.unlabelled, 1);
        assert_eq!(
            preview.first_unlabelled.map(|(h, _)| h),
            Some("c".to_string())
        );
        assert!(preview_header_labels(&HeaderLabelRule::Regex("(".into()), ["a"]).is_err());
    }
}
