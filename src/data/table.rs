//! CSV/TSV tables of labelled sequences (possibly compressed; detected by content).
//!
//! - Delimiter: a tab if the first line has one, else a comma.
//! - Header or not: the first row is data (no header) when one of its fields is a sequence —
//!   at least 10 characters, all IUPAC nucleotide letters (or space-separated k-mers of them).
//!   Without a header the columns are called 1, 2, 3, …; by default the sequence is the longest
//!   such field, the label the last other column and the id the first remaining one
//!   (ViraMiner's `id,sequence,label`).
//! - With a header, default columns: `sequence`, `seqs`, `seq`, … and `label`, `labels`,
//!   `promoter_presence`, `class`, … (case-insensitive); an unnamed first column (the index
//!   pandas writes) or one named `id`/`name` becomes the record id.
//! - DNABERT-1 k-mer tables (space-separated overlapping k-mers) are detected from the first
//!   row and turned back into the original sequence (k + n_kmers − 1 bases).

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::DataError;
use super::fastx::{decompress, finish_digest, open_input, Compression, DigestReader};
use super::types::InputFormat;

/// A table of labelled sequences to read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TableInput {
    /// A path or a glob pattern.
    pub path: String,
    /// Column name (or 1-based number for a table without header); detected when `None`.
    pub sequence_column: Option<String>,
    /// Column name (or 1-based number); detected when `None`.
    pub label_column: Option<String>,
}

const SEQUENCE_COLUMNS: [&str; 6] = ["sequence", "seqs", "seq", "sequences", "dna", "text"];
const LABEL_COLUMNS: [&str; 7] = [
    "label",
    "labels",
    "promoter_presence",
    "class",
    "target",
    "y",
    "category",
];
const ID_COLUMNS: [&str; 5] = ["", "id", "name", "seq_id", "sequence_id"];

/// One row, ready to normalise.
pub(crate) struct TableRow<'r> {
    /// The row's id, or `FILE:LINE` when the table has no id column.
    pub header: Cow<'r, str>,
    /// 1-based line of the row.
    pub line: u64,
    /// Sequence text (k-mer tables: already joined back into a sequence).
    pub sequence: &'r [u8],
    pub label: &'r str,
}

struct Columns {
    sequence: usize,
    label: usize,
    id: Option<usize>,
    count: usize,
}

/// Reads every row of a table, calling `on_row` for each; returns the format (table or k-mer
/// table) and the file's sha256.
pub(crate) fn read_table_file(
    path: &Path,
    input: &TableInput,
    bytes_read: &AtomicU64,
    mut on_row: impl FnMut(TableRow<'_>) -> Result<(), DataError>,
) -> Result<(InputFormat, String), DataError> {
    let mut file = open_input(path)?;
    let mut hasher = Sha256::new();
    let mut format = InputFormat::Table;
    {
        let reader = DigestReader::new(&mut file, Some(&mut hasher), bytes_read);
        let (compression, decoded) = decompress(reader).map_err(|e| DataError::io(path, e))?;
        let compressed = compression != Compression::None;
        let mut buffered = BufReader::with_capacity(1 << 20, decoded);
        // The first line decides the delimiter; it is then handed to the CSV reader again.
        let mut first_line = Vec::new();
        buffered
            .read_until(b'\n', &mut first_line)
            .map_err(|e| read_error(path, compressed, e, 0))?;
        if first_line.trim_ascii().is_empty() && buffered.fill_buf().map_or(true, |b| b.is_empty())
        {
            return Err(DataError::EmptyTable {
                path: path.to_path_buf(),
            });
        }
        let delimiter = if first_line.contains(&b'\t') {
            b'\t'
        } else {
            b','
        };
        let mut csv_reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(std::io::Cursor::new(first_line).chain(buffered));

        let mut row = csv::ByteRecord::new();
        let mut pending_first_row = None;
        if !read_row(&mut csv_reader, &mut row, path, compressed)? {
            return Err(DataError::EmptyTable {
                path: path.to_path_buf(),
            });
        }
        let names: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = String::from_utf8_lossy(f);
                let name = if i == 0 {
                    name.trim_start_matches('\u{feff}')
                } else {
                    &name
                };
                name.trim().to_string()
            })
            .collect();
        let has_header = is_header(&row, &names, input);
        let columns = if has_header {
            columns_from_header(path, &names, input)?
        } else {
            pending_first_row = Some(row.clone());
            columns_without_header(path, &row, input)?
        };

        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut kmer_k: Option<usize> = None;
        let mut joined = Vec::new();
        let mut rows = 0u64;
        loop {
            let current = match pending_first_row.take() {
                Some(first) => first,
                None => {
                    if !read_row(&mut csv_reader, &mut row, path, compressed)? {
                        break;
                    }
                    std::mem::take(&mut row)
                }
            };
            let line = current.position().map_or(1, |p| p.line());
            if current.len() == 1 && current.get(0).is_some_and(|f| f.trim_ascii().is_empty()) {
                continue; // a blank line
            }
            if current.len() != columns.count {
                return Err(DataError::Malformed {
                    path: path.to_path_buf(),
                    line,
                    record: String::new(),
                    detail: format!(
                        "this row has {} fields but the table has {}; check for a stray '{}' or a missing field",
                        current.len(),
                        columns.count,
                        delimiter as char
                    ),
                });
            }
            let field = |i: usize| current.get(i).unwrap_or_default();
            let sequence = field(columns.sequence);
            if rows == 0 {
                kmer_k = kmer_length(sequence);
                if kmer_k.is_some() {
                    format = InputFormat::KmerTable;
                }
            }
            let sequence = match kmer_k {
                Some(k) => {
                    join_kmers(sequence, k, &mut joined).map_err(|detail| {
                        DataError::Malformed {
                            path: path.to_path_buf(),
                            line,
                            record: String::new(),
                            detail,
                        }
                    })?;
                    &joined[..]
                }
                None => sequence,
            };
            let label = std::str::from_utf8(field(columns.label))
                .map(str::trim)
                .unwrap_or("");
            if label.is_empty() {
                return Err(DataError::Malformed {
                    path: path.to_path_buf(),
                    line,
                    record: String::new(),
                    detail: format!(
                        "the label (column '{}') is empty or not text; every row needs a label",
                        column_name(&names, has_header, columns.label)
                    ),
                });
            }
            let header = match columns.id {
                Some(i) if !field(i).trim_ascii().is_empty() => String::from_utf8_lossy(field(i)),
                _ => Cow::Owned(format!("{file_name}:{line}")),
            };
            on_row(TableRow {
                header,
                line,
                sequence,
                label,
            })?;
            rows += 1;
            row = current;
        }
        if rows == 0 {
            return Err(DataError::EmptyTable {
                path: path.to_path_buf(),
            });
        }
    }
    let sha256 = finish_digest(path, &mut file, hasher, bytes_read)?;
    Ok((format, sha256))
}

fn read_row<R: std::io::Read>(
    reader: &mut csv::Reader<R>,
    row: &mut csv::ByteRecord,
    path: &Path,
    compressed: bool,
) -> Result<bool, DataError> {
    let last_line = row.position().map_or(0, |p| p.line());
    reader.read_byte_record(row).map_err(|err| {
        let line = err.position().map_or(0, |p| p.line());
        match err.into_kind() {
            csv::ErrorKind::Io(e) => read_error(path, compressed, e, last_line),
            other => DataError::Malformed {
                path: path.to_path_buf(),
                line,
                record: String::new(),
                detail: format!("{other:?}"),
            },
        }
    })
}

/// A read failure in a compressed table means truncated or corrupt data. `last_line` is the
/// line of the last row read (0: none).
fn read_error(path: &Path, compressed: bool, err: std::io::Error, last_line: u64) -> DataError {
    if !compressed {
        return DataError::io(path, err);
    }
    DataError::Truncated {
        path: path.to_path_buf(),
        last_record: if last_line == 0 {
            "none".to_string()
        } else {
            format!("the row at line {last_line}")
        },
        detail: err.to_string(),
    }
}

fn is_nucleotide_letter(b: u8) -> bool {
    matches!(
        b.to_ascii_uppercase(),
        b'A' | b'C'
            | b'G'
            | b'T'
            | b'U'
            | b'N'
            | b'R'
            | b'Y'
            | b'K'
            | b'M'
            | b'S'
            | b'W'
            | b'B'
            | b'D'
            | b'H'
            | b'V'
    )
}

/// A field that can only be sequence data: ≥ 10 nucleotide letters (k-mers: with spaces).
fn looks_like_sequence(field: &[u8]) -> bool {
    let letters = field.iter().filter(|&&b| is_nucleotide_letter(b)).count();
    letters >= 10 && field.iter().all(|&b| is_nucleotide_letter(b) || b == b' ')
}

fn is_header(first_row: &csv::ByteRecord, names: &[String], input: &TableInput) -> bool {
    let named = |wanted: &Option<String>| {
        wanted
            .as_deref()
            .is_some_and(|w| names.iter().any(|n| n.eq_ignore_ascii_case(w)))
    };
    if named(&input.sequence_column) || named(&input.label_column) {
        return true;
    }
    !first_row.iter().any(looks_like_sequence)
}

fn find_column(names: &[String], wanted: &str) -> Option<usize> {
    names
        .iter()
        .position(|n| n == wanted)
        .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(wanted)))
}

/// A 1-based column number given by the user.
fn column_number(wanted: &str, count: usize) -> Option<usize> {
    wanted
        .parse::<usize>()
        .ok()
        .filter(|&n| (1..=count).contains(&n))
        .map(|n| n - 1)
}

fn list_columns(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            if n.is_empty() {
                "'' (unnamed)".to_string()
            } else {
                format!("'{n}'")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn column_name(names: &[String], has_header: bool, index: usize) -> String {
    if has_header {
        names.get(index).cloned().unwrap_or_default()
    } else {
        (index + 1).to_string()
    }
}

fn columns_from_header(
    path: &Path,
    names: &[String],
    input: &TableInput,
) -> Result<Columns, DataError> {
    let resolve = |wanted: &Option<String>,
                   known: &[&str],
                   what: &'static str,
                   option: &'static str|
     -> Result<usize, DataError> {
        match wanted {
            Some(wanted) => find_column(names, wanted)
                .or_else(|| column_number(wanted, names.len()))
                .ok_or_else(|| DataError::MissingColumn {
                    path: path.to_path_buf(),
                    column: wanted.clone(),
                    option,
                    present: list_columns(names),
                }),
            None => known
                .iter()
                .find_map(|k| names.iter().position(|n| n.eq_ignore_ascii_case(k)))
                .ok_or_else(|| DataError::UnknownColumn {
                    path: path.to_path_buf(),
                    what,
                    option,
                    present: list_columns(names),
                }),
        }
    };
    let sequence = resolve(
        &input.sequence_column,
        &SEQUENCE_COLUMNS,
        "sequences",
        "sequence-column",
    )?;
    let label = resolve(
        &input.label_column,
        &LABEL_COLUMNS,
        "labels",
        "label-column",
    )?;
    if sequence == label {
        return Err(DataError::UnknownColumn {
            path: path.to_path_buf(),
            what: "labels (it is the sequence column)",
            option: "label-column",
            present: list_columns(names),
        });
    }
    let id = names.iter().enumerate().position(|(i, n)| {
        i != sequence && i != label && ID_COLUMNS.iter().any(|k| n.eq_ignore_ascii_case(k))
    });
    Ok(Columns {
        sequence,
        label,
        id,
        count: names.len(),
    })
}

fn columns_without_header(
    path: &Path,
    first_row: &csv::ByteRecord,
    input: &TableInput,
) -> Result<Columns, DataError> {
    let count = first_row.len();
    let present = || {
        first_row
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let text = String::from_utf8_lossy(&f[..f.len().min(12)]).into_owned();
                let more = if f.len() > 12 { "…" } else { "" };
                format!("{} ('{text}{more}')", i + 1)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let by_number = |wanted: &Option<String>,
                     option: &'static str|
     -> Result<Option<usize>, DataError> {
        match wanted {
            None => Ok(None),
            Some(w) => column_number(w, count)
                .map(Some)
                .ok_or_else(|| DataError::MissingColumn {
                    path: path.to_path_buf(),
                    column: w.clone(),
                    option,
                    present: format!("{} (no header line, so use numbers)", present()),
                }),
        }
    };
    let sequence = match by_number(&input.sequence_column, "sequence-column")? {
        Some(i) => i,
        None => first_row
            .iter()
            .enumerate()
            .filter(|(_, f)| looks_like_sequence(f))
            .max_by_key(|(_, f)| f.len())
            .map(|(i, _)| i)
            .ok_or_else(|| DataError::UnknownColumn {
                path: path.to_path_buf(),
                what: "sequences",
                option: "sequence-column",
                present: present(),
            })?,
    };
    let label =
        match by_number(&input.label_column, "label-column")? {
            Some(i) => i,
            None => (0..count).rev().find(|&i| i != sequence).ok_or_else(|| {
                DataError::UnknownColumn {
                    path: path.to_path_buf(),
                    what: "labels",
                    option: "label-column",
                    present: present(),
                }
            })?,
        };
    let id = (0..count).find(|&i| i != sequence && i != label);
    Ok(Columns {
        sequence,
        label,
        id,
        count,
    })
}

/// `Some(k)` when `field` is space-separated overlapping k-mers (two or more of equal length).
fn kmer_length(field: &[u8]) -> Option<usize> {
    let mut tokens = field.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let first = tokens.next()?;
    let second = tokens.next()?;
    let k = first.len();
    (second.len() == k && first[1..] == second[..k - 1]).then_some(k)
}

/// Turns `ACGTAC CGTACG GTACGT` back into `ACGTACGT` (first k-mer, then the last base of each
/// following one), checking that neighbours overlap by k − 1.
fn join_kmers(field: &[u8], k: usize, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    let mut previous: Option<&[u8]> = None;
    for (n, token) in field
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        if token.len() != k {
            return Err(format!(
                "k-mer {} ('{}') has {} letters but the table's k-mers have {k}; every sequence must be k-mers of one length",
                n + 1,
                String::from_utf8_lossy(token),
                token.len()
            ));
        }
        match previous {
            None => out.extend_from_slice(token),
            Some(prev) => {
                if prev[1..] != token[..k - 1] {
                    return Err(format!(
                        "k-mers {} and {} ('{}', '{}') do not overlap by {} letters, so this is not a DNABERT k-mer sequence",
                        n,
                        n + 1,
                        String::from_utf8_lossy(prev),
                        String::from_utf8_lossy(token),
                        k - 1
                    ));
                }
                out.push(token[k - 1]);
            }
        }
        previous = Some(token);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmers_join_back_into_the_sequence() {
        let mut out = Vec::new();
        assert_eq!(kmer_length(b"ACGTAC CGTACG GTACGT"), Some(6));
        join_kmers(b"ACGTAC CGTACG GTACGT", 6, &mut out).unwrap();
        assert_eq!(out, b"ACGTACGT");
        assert!(join_kmers(b"ACGTAC CGTACG TTTTTT", 6, &mut out).is_err());
        assert!(join_kmers(b"ACGTAC CGTAC", 6, &mut out).is_err());
        assert_eq!(kmer_length(b"ACGTACGTACGT"), None);
        assert_eq!(kmer_length(b"ACG TTT"), None);
    }

    #[test]
    fn header_detection() {
        assert!(looks_like_sequence(b"acgtACGTnnRY"));
        assert!(!looks_like_sequence(b"sequence"));
        assert!(!looks_like_sequence(b"promoter_presence"));
        assert!(!looks_like_sequence(b"ACGT"));
    }
}
