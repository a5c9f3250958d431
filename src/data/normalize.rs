//! Sequence normalisation: everything becomes upper-case `A C G T N`.
//!
//! U → T, IUPAC ambiguity codes (R Y K M S W B D H V) → N, gaps (`-`, `.`) removed, lower-case
//! (soft-masked) bases upper-cased — each counted. Line breaks, carriage returns, spaces and
//! tabs are layout, not sequence, and are skipped. Any other byte is an error.
//!
//! Speed matters (multi-GB genomes): lines are found with `memchr`, and runs that are already
//! upper-case `ACGTN` — nearly all of a typical file — are checked 64 bytes at a time (a loop the
//! compiler vectorises) and copied whole; only the other chunks go byte by byte through a
//! 256-entry table.

use super::types::NormalizationCounts;

const LOWER: u8 = 1;
const AMBIGUOUS: u8 = 2;
const URACIL: u8 = 4;
const GAP: u8 = 8;
const LAYOUT: u8 = 16;
const INVALID: u8 = 32;

/// Per byte: what it becomes (0 when it is dropped or invalid) and flags saying why.
struct Table {
    output: [u8; 256],
    flags: [u8; 256],
}

const TABLE: Table = build_table();

const fn build_table() -> Table {
    let mut output = [0u8; 256];
    let mut flags = [INVALID; 256];
    let mut byte = 0usize;
    while byte < 256 {
        let upper = (byte as u8).to_ascii_uppercase();
        let lower_flag = if (byte as u8).is_ascii_lowercase() {
            LOWER
        } else {
            0
        };
        match upper {
            b'A' | b'C' | b'G' | b'T' | b'N' => {
                output[byte] = upper;
                flags[byte] = lower_flag;
            }
            b'U' => {
                output[byte] = b'T';
                flags[byte] = URACIL | lower_flag;
            }
            b'R' | b'Y' | b'K' | b'M' | b'S' | b'W' | b'B' | b'D' | b'H' | b'V' => {
                output[byte] = b'N';
                flags[byte] = AMBIGUOUS | lower_flag;
            }
            b'-' | b'.' => flags[byte] = GAP,
            b'\n' | b'\r' | b' ' | b'\t' => flags[byte] = LAYOUT,
            _ => {}
        }
        byte += 1;
    }
    Table { output, flags }
}

/// A byte that is no nucleotide code, at `index` in the slice given to [`normalize_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidByte {
    pub index: usize,
    pub byte: u8,
}

impl InvalidByte {
    /// Where the byte sits in `raw` (the slice it was found in): (line breaks before it,
    /// 1-based column within its line).
    pub fn position_in(&self, raw: &[u8]) -> (u64, u64) {
        let before = &raw[..self.index.min(raw.len())];
        let lines_before = memchr::memchr_iter(b'\n', before).count() as u64;
        let line_start = memchr::memrchr(b'\n', before).map_or(0, |pos| pos + 1);
        (lines_before, (self.index - line_start) as u64 + 1)
    }
}

/// Appends the normalised bases of `raw` (sequence text, possibly spanning several lines) to
/// `out` and adds what changed to `counts`. On an invalid byte, `out` holds the bases before
/// it and the error says where it is.
pub fn normalize_into(
    raw: &[u8],
    out: &mut Vec<u8>,
    counts: &mut NormalizationCounts,
) -> Result<(), InvalidByte> {
    out.reserve(raw.len());
    let mut line_start = 0usize;
    while line_start < raw.len() {
        let line_end =
            memchr::memchr(b'\n', &raw[line_start..]).map_or(raw.len(), |p| line_start + p);
        let line = &raw[line_start..line_end];
        let mut chunk_start = line_start;
        for chunk in line.chunks(64) {
            if is_plain(chunk) {
                out.extend_from_slice(chunk);
            } else {
                normalize_slow(chunk, chunk_start, out, counts)?;
            }
            chunk_start += chunk.len();
        }
        line_start = line_end + 1;
    }
    Ok(())
}

/// True when every byte is already an upper-case `A C G T N`. No early exit, so it vectorises.
#[inline]
fn is_plain(chunk: &[u8]) -> bool {
    chunk.iter().fold(true, |plain, &b| {
        plain & ((b == b'A') | (b == b'C') | (b == b'G') | (b == b'T') | (b == b'N'))
    })
}

#[inline(never)]
fn normalize_slow(
    chunk: &[u8],
    chunk_start: usize,
    out: &mut Vec<u8>,
    counts: &mut NormalizationCounts,
) -> Result<(), InvalidByte> {
    for (i, &byte) in chunk.iter().enumerate() {
        let flags = TABLE.flags[byte as usize];
        if flags == 0 {
            out.push(byte);
            continue;
        }
        if flags & INVALID != 0 {
            return Err(InvalidByte {
                index: chunk_start + i,
                byte,
            });
        }
        if flags & (GAP | LAYOUT) != 0 {
            counts.gaps_removed += u64::from(flags & GAP != 0);
            continue;
        }
        counts.lowercase_bases += u64::from(flags & LOWER != 0);
        counts.ambiguous_to_n += u64::from(flags & AMBIGUOUS != 0);
        counts.u_to_t += u64::from(flags & URACIL != 0);
        out.push(TABLE.output[byte as usize]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(raw: &[u8]) -> (Result<Vec<u8>, InvalidByte>, NormalizationCounts) {
        let mut out = Vec::new();
        let mut counts = NormalizationCounts::default();
        let result = normalize_into(raw, &mut out, &mut counts).map(|()| out);
        (result, counts)
    }

    #[test]
    fn every_rule_applies_and_is_counted() {
        let (bases, counts) = normalize(b"acgtn\r\nACGU-u.\nRYKMSWBDHVrykmswbdhv \tA");
        assert_eq!(bases.unwrap(), b"ACGTNACGTTNNNNNNNNNNNNNNNNNNNNA".to_vec());
        assert_eq!(counts.lowercase_bases, 5 + 1 + 10);
        assert_eq!(counts.u_to_t, 2);
        assert_eq!(counts.gaps_removed, 2);
        assert_eq!(counts.ambiguous_to_n, 20);
    }

    #[test]
    fn long_plain_runs_are_copied_unchanged_across_chunk_and_line_borders() {
        let line: Vec<u8> = b"ACGTN".iter().copied().cycle().take(1000).collect();
        let mut raw = line.clone();
        raw.extend_from_slice(b"\n");
        raw.extend_from_slice(&line);
        let (bases, counts) = normalize(&raw);
        let bases = bases.unwrap();
        assert_eq!(bases.len(), 2000);
        assert_eq!(&bases[..1000], &line[..]);
        assert_eq!(counts, NormalizationCounts::default());
    }

    #[test]
    fn invalid_byte_reports_line_and_column() {
        let raw = b"ACGT\nACGTACGTAC\nAAEA";
        let (result, _) = normalize(raw);
        let err = result.unwrap_err();
        assert_eq!(err.byte, b'E');
        assert_eq!(err.position_in(raw), (2, 3));
    }

    #[test]
    fn every_byte_outside_the_alphabet_is_rejected() {
        let allowed = b"ACGTUNRYKMSWBDHVacgtunrykmswbdhv-.\r\n \t";
        for byte in 0..=255u8 {
            let (result, _) = normalize(&[b'A', byte]);
            assert_eq!(result.is_ok(), allowed.contains(&byte), "byte {byte}");
        }
    }
}
