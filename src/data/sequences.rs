//! Unlabelled sequences for inference (`embed`, later `predict`): every record of a FASTA/FASTQ
//! or GenBank file, or every non-blank line of a plain-text file, in input order, normalised like training
//! data. Nothing is filtered or de-duplicated: one output row per input record.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use super::error::{describe_byte, DataError};
use super::fasta::EachRecord;
use super::fastx::{decompress, open_input, read_fastx_file, record_id, FastxReading};
use super::genbank::{read_genbank, starts_like_genbank};
use super::normalize::normalize_into;
use super::types::NormalizationCounts;

/// One input record, normalised (upper-case `A C G T N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceRecord {
    /// The header up to its first whitespace (plain text: `line N`).
    pub id: String,
    pub bases: Vec<u8>,
}

/// Reads `path`: FASTA/FASTQ (any supported compression) when it starts with `>` or `@`,
/// GenBank when it starts with `LOCUS` (ids as [`super::GenbankRecord::id`] gives them),
/// otherwise one sequence per line (blank lines ignored).
pub fn read_sequences(path: &Path) -> Result<Vec<SequenceRecord>, DataError> {
    let mut text = Vec::new();
    {
        let file = open_input(path)?;
        let (_, mut decoded) = decompress(file).map_err(|e| DataError::io(path, e))?;
        // Only the start is needed to tell FASTA/FASTQ from plain lines.
        let mut head = [0u8; 4096];
        let n = read_up_to(&mut decoded, &mut head).map_err(|e| DataError::io(path, e))?;
        if starts_like_genbank(&head[..n]) {
            return Ok(read_genbank(path)?
                .into_iter()
                .map(|record| SequenceRecord {
                    id: record.id().to_string(),
                    bases: record.sequence,
                })
                .collect());
        }
        let first = head[..n].iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None => {
                return Err(DataError::EmptyFile {
                    path: path.to_path_buf(),
                })
            }
            Some(b'>') | Some(b'@') => {}
            Some(_) => {
                text.extend_from_slice(&head[..n]);
                decoded
                    .read_to_end(&mut text)
                    .map_err(|e| DataError::io(path, e))?;
            }
        }
    }
    if text.is_empty() {
        return read_fastx_records(path);
    }
    read_lines(path, &text)
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn read_fastx_records(path: &Path) -> Result<Vec<SequenceRecord>, DataError> {
    let mut records = Vec::new();
    let mut sink = EachRecord::new(|header: &[u8], _line: u64, bases: &[u8]| {
        records.push(SequenceRecord {
            id: record_id(header).into_owned(),
            bases: bases.to_vec(),
        });
        Ok(())
    });
    read_fastx_file(path, &AtomicU64::new(0), FastxReading::NO_HASH, &mut sink)?;
    Ok(records)
}

fn read_lines(path: &Path, text: &[u8]) -> Result<Vec<SequenceRecord>, DataError> {
    let mut records = Vec::new();
    let mut counts = NormalizationCounts::default();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let mut bases = Vec::with_capacity(trimmed.len());
        if let Err(bad) = normalize_into(trimmed, &mut bases, &mut counts) {
            return Err(DataError::InvalidCharacter {
                path: path.to_path_buf(),
                record: format!("line {}", index + 1),
                location: format!("line {}, column {}", index + 1, bad.index + 1),
                character: describe_byte(bad.byte),
            });
        }
        records.push(SequenceRecord {
            id: format!("line {}", index + 1),
            bases,
        });
    }
    Ok(records)
}
