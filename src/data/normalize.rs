//! Sequence normalisation: everything becomes upper-case `A C G T N`.
//!
//! U → T, IUPAC ambiguity codes (R Y K M S W B D H V) → N, gaps (`-`, `.`) removed, lower-case
//! (soft-masked) bases upper-cased — each counted. Line breaks, carriage returns, spaces and
//! tabs are layout, not sequence, and are skipped. Any other byte is an error.
//!
//! Speed matters (multi-GB genomes): the text is classified 64 bytes at a time (SSE2 on x86-64)
//! into "upper-case `ACGTN`" and "line break"; a block of only those — nearly all of a typical
//! file — is copied in one or a few runs. Only other blocks (soft-masked, IUPAC, CRLF, …) go
//! byte by byte through a 256-entry table.

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
    let mut blocks = raw.chunks_exact(BLOCK);
    let mut block_start = 0usize;
    for block in &mut blocks {
        let masks = block_masks(block);
        if masks.plain == u64::MAX {
            out.extend_from_slice(block);
        } else if masks.plain | masks.newline == u64::MAX {
            // Plain bases around line breaks (the usual 60- or 80-column layout): copy the
            // runs between the breaks.
            let mut newlines = masks.newline;
            let mut run_start = 0usize;
            while newlines != 0 {
                let newline = newlines.trailing_zeros() as usize;
                out.extend_from_slice(&block[run_start..newline]);
                run_start = newline + 1;
                newlines &= newlines - 1;
            }
            out.extend_from_slice(&block[run_start..]);
        } else {
            normalize_slow(block, block_start, out, counts)?;
        }
        block_start += BLOCK;
    }
    normalize_slow(blocks.remainder(), block_start, out, counts)
}

/// Bytes classified at once; one bit per byte in [`BlockMasks`].
const BLOCK: usize = 64;

/// For one block of [`BLOCK`] bytes, bit `i` is set when byte `i` is ...
#[derive(Debug, PartialEq, Eq)]
struct BlockMasks {
    /// ... an upper-case `A C G T N` (kept as it is);
    plain: u64,
    /// ... a `\n` (dropped).
    newline: u64,
}

/// SSE2 is part of every x86-64 CPU, so no run-time detection is needed.
#[cfg(target_arch = "x86_64")]
#[inline]
fn block_masks(block: &[u8]) -> BlockMasks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    debug_assert_eq!(block.len(), BLOCK);
    let mut plain = 0u64;
    let mut newline = 0u64;
    for (lane, bytes) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is always available on x86_64; `bytes` holds exactly 16 readable
        // bytes and the load is unaligned.
        let (plain_bits, newline_bits) = unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>());
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            let acgtn = _mm_or_si128(
                _mm_or_si128(eq(b'A'), eq(b'C')),
                _mm_or_si128(_mm_or_si128(eq(b'G'), eq(b'T')), eq(b'N')),
            );
            (
                _mm_movemask_epi8(acgtn) as u16,
                _mm_movemask_epi8(eq(b'\n')) as u16,
            )
        };
        plain |= u64::from(plain_bits) << (16 * lane);
        newline |= u64::from(newline_bits) << (16 * lane);
    }
    BlockMasks { plain, newline }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn block_masks(block: &[u8]) -> BlockMasks {
    block_masks_portable(block)
}

/// The same masks byte by byte (other CPUs; and the reference the SSE2 version is tested
/// against).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn block_masks_portable(block: &[u8]) -> BlockMasks {
    let mut masks = BlockMasks {
        plain: 0,
        newline: 0,
    };
    for (i, &b) in block.iter().enumerate().take(BLOCK) {
        let plain = matches!(b, b'A' | b'C' | b'G' | b'T' | b'N');
        masks.plain |= u64::from(plain) << i;
        masks.newline |= u64::from(b == b'\n') << i;
    }
    masks
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

    /// A small deterministic generator (xorshift), so the test needs no extra dependency.
    fn pseudo_random_bytes(seed: u64, len: usize, alphabet: &[u8]) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[(state % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn block_masks_match_a_byte_by_byte_classification() {
        let alphabet: Vec<u8> = (0..=255u8).collect();
        for seed in 0..200 {
            let block = pseudo_random_bytes(seed, BLOCK, &alphabet);
            assert_eq!(
                block_masks(&block),
                block_masks_portable(&block),
                "seed {seed}"
            );
        }
        let newlines_and_bases = b"ACGTN\n".repeat(11);
        let block = &newlines_and_bases[..BLOCK];
        let masks = block_masks(block);
        assert_eq!(masks.plain | masks.newline, u64::MAX);
        assert_eq!(masks.newline.count_ones(), 10);
    }

    #[test]
    fn fast_path_gives_the_same_bases_and_counts_as_byte_by_byte() {
        // Mostly plain text with line breaks at varying widths, and now and then the other
        // kinds of byte, so blocks take every path.
        let mostly_plain = b"ACGTACGTACGTNACGTACGTACGT";
        let mixed = b"ACGTNacgtnUuRyKm-.\r \t";
        for seed in 0..50 {
            let mut raw = Vec::new();
            let width = 20 + (seed as usize * 7) % 100;
            for line in 0..40 {
                let alphabet: &[u8] = if (seed + line) % 5 == 0 {
                    mixed
                } else {
                    mostly_plain
                };
                raw.extend(pseudo_random_bytes(seed * 1000 + line, width, alphabet));
                raw.push(b'\n');
            }
            let (fast, fast_counts) = normalize(&raw);
            let mut reference = Vec::new();
            let mut reference_counts = NormalizationCounts::default();
            normalize_slow(&raw, 0, &mut reference, &mut reference_counts).unwrap();
            assert_eq!(fast.unwrap(), reference, "seed {seed}");
            assert_eq!(fast_counts, reference_counts, "seed {seed}");
        }
    }

    #[test]
    fn invalid_byte_after_many_plain_blocks_is_found_at_its_line() {
        let line = [b'A'; 60];
        let mut raw = Vec::new();
        for _ in 0..10 {
            raw.extend_from_slice(&line);
            raw.push(b'\n');
        }
        raw.extend_from_slice(b"ACGTZ\n");
        let (result, _) = normalize(&raw);
        let err = result.unwrap_err();
        assert_eq!(err.byte, b'Z');
        assert_eq!(err.position_in(&raw), (10, 5));
    }
}
