//! Sequence normalisation: everything becomes upper-case `A C G T N`.
//!
//! U → T, IUPAC ambiguity codes (R Y K M S W B D H V) → N, gaps (`-`, `.`) removed, lower-case
//! (soft-masked) bases upper-cased — each counted. Line breaks, carriage returns, spaces and
//! tabs are layout, not sequence, and are skipped. Any other byte is an error.
//!
//! Speed matters (multi-GB genomes): the text is classified 64 bytes at a time (SSE2 on x86-64)
//! into "`ACGTN` in either case" and "line break" (`\n`, `\r`); a block of only those — nearly
//! all of a typical file, soft-masked and CRLF ones included — is upper-cased and stored in one
//! fixed-size store per run between line breaks. Only other blocks (IUPAC codes, U, gaps,
//! spaces, …) go byte by byte through a 256-entry table.

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
/// `out`, adds what changed to `counts` and returns the number of line breaks (`\n`) in `raw`.
/// On an invalid byte, `out` holds the bases before it and the error says where it is.
pub fn normalize_into(
    raw: &[u8],
    out: &mut Vec<u8>,
    counts: &mut NormalizationCounts,
) -> Result<u64, InvalidByte> {
    #[cfg(target_arch = "x86_64")]
    match kernel() {
        // SAFETY: `kernel` picks `Avx512` only when the CPU has AVX-512BW and VBMI2.
        Kernel::Avx512 => unsafe { normalize_avx512(raw, out, counts) },
        // SAFETY: `kernel` picks `Avx2` only when the CPU has AVX2.
        Kernel::Avx2 => unsafe { normalize_vex(raw, out, counts) },
        Kernel::Sse2 => normalize_sse2(raw, out, counts),
    }
    #[cfg(not(target_arch = "x86_64"))]
    normalize_sse2(raw, out, counts)
}

/// The instruction sets [`normalize_into`] can use, widest first.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Avx512,
    Avx2,
    Sse2,
}

/// The widest [`Kernel`] this CPU runs, decided once. `DNATUNE_SIMD=avx2` or `=sse2` caps it
/// (to measure what other CPUs get).
#[cfg(target_arch = "x86_64")]
fn kernel() -> Kernel {
    static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| {
        let cap = std::env::var("DNATUNE_SIMD").unwrap_or_default();
        if cap != "avx2"
            && cap != "sse2"
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi2")
        {
            Kernel::Avx512
        } else if cap != "sse2" && std::arch::is_x86_feature_detected!("avx2") {
            Kernel::Avx2
        } else {
            Kernel::Sse2
        }
    })
}

/// [`normalize_into`] with SSE2 (on x86-64; a byte loop elsewhere): the upper-cased block is
/// written to a buffer on the stack and each run between line breaks is copied out of it
/// with one fixed-size 64-byte copy.
fn normalize_sse2(
    raw: &[u8],
    out: &mut Vec<u8>,
    counts: &mut NormalizationCounts,
) -> Result<u64, InvalidByte> {
    normalize_sse2_body(raw, out, counts)
}

/// [`normalize_sse2`] compiled with AVX2 enabled (the CPU must have it): the same
/// operations, VEX-encoded, and each 64-byte copy in two 32-byte moves.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn normalize_vex(
    raw: &[u8],
    out: &mut Vec<u8>,
    counts: &mut NormalizationCounts,
) -> Result<u64, InvalidByte> {
    normalize_sse2_body(raw, out, counts)
}

#[inline(always)]
fn normalize_sse2_body(
    raw: &[u8],
    out: &mut Vec<u8>,
    counts: &mut NormalizationCounts,
) -> Result<u64, InvalidByte> {
    // Room for every byte of `raw` plus one block: the fast path stores whole blocks and
    // lets the next store overwrite what lies past the bases it keeps.
    out.reserve(raw.len() + BLOCK);
    let mut newlines = 0u64;
    let mut lowercase = 0u64;
    let mut padded = [0u8; 2 * BLOCK];
    let mut blocks = raw.chunks_exact(BLOCK);
    let mut block_start = 0usize;
    for block in &mut blocks {
        let masks = classify_block(block, &mut padded);
        if masks.plain | masks.dropped == u64::MAX {
            newlines += u64::from(masks.newline.count_ones());
            lowercase += u64::from(masks.lowercase.count_ones());
            let len = out.len();
            // A block with no lower-case base is copied from `raw` itself where a 64-byte
            // read from any of its runs stays inside `raw`: reading back from `padded` right
            // after writing it, at another offset, stalls the CPU (no store forwarding).
            let from_raw = masks.lowercase == 0 && block_start + 2 * BLOCK <= raw.len();
            // SAFETY: `out` has room for `raw.len() + BLOCK` bytes past the bases it had at
            // the start, of which the bases written so far use at most `block_start`, so
            // every 64-byte store below (at most `BLOCK` bytes from the write position, which
            // never passes `block_start + BLOCK`) stays inside the allocation. Each store
            // reads `BLOCK` bytes from `src + run_start` (`run_start < BLOCK`): inside
            // `padded`'s `2 * BLOCK` bytes, or inside `raw` (`from_raw`). Only the first
            // `written` bytes are exposed by `set_len`, and all of them are initialised bytes
            // of this block's runs, upper-cased (`padded`) or already upper-case (`raw`).
            unsafe {
                let dst = out.as_mut_ptr().add(len);
                let src = if from_raw {
                    raw.as_ptr().add(block_start)
                } else {
                    padded.as_ptr()
                };
                let mut written = 0usize;
                let mut run_start = 0usize;
                let mut dropped = masks.dropped;
                while dropped != 0 {
                    let at = dropped.trailing_zeros() as usize;
                    if at > run_start {
                        std::ptr::copy_nonoverlapping(src.add(run_start), dst.add(written), BLOCK);
                        written += at - run_start;
                    }
                    run_start = at + 1;
                    dropped &= dropped - 1;
                }
                if run_start < BLOCK {
                    std::ptr::copy_nonoverlapping(src.add(run_start), dst.add(written), BLOCK);
                    written += BLOCK - run_start;
                }
                out.set_len(len + written);
            }
        } else {
            counts.lowercase_bases += lowercase;
            lowercase = 0;
            newlines += normalize_slow(block, block_start, out, counts)?;
        }
        block_start += BLOCK;
    }
    counts.lowercase_bases += lowercase;
    newlines += normalize_slow(blocks.remainder(), block_start, out, counts)?;
    Ok(newlines)
}

/// Bytes classified at once; one bit per byte in [`BlockMasks`].
const BLOCK: usize = 64;

/// For one block of [`BLOCK`] bytes, bit `i` is set when byte `i` is ...
#[derive(Debug, PartialEq, Eq)]
struct BlockMasks {
    /// ... one of `A C G T N a c g t n` (kept, upper-cased);
    plain: u64,
    /// ... of those, a lower-case one (counted);
    lowercase: u64,
    /// ... a `\n` or `\r` (dropped);
    dropped: u64,
    /// ... a `\n` (counted, for line numbers).
    newline: u64,
}

/// Classifies `block` and writes it, upper-cased where it holds `a c g t n`, to the first
/// [`BLOCK`] bytes of `upper`. SSE2 is part of every x86-64 CPU, so no run-time detection
/// is needed.
#[cfg(target_arch = "x86_64")]
#[inline]
fn classify_block(block: &[u8], upper: &mut [u8; 2 * BLOCK]) -> BlockMasks {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_storeu_si128,
    };
    assert_eq!(block.len(), BLOCK);
    let mut masks = BlockMasks {
        plain: 0,
        lowercase: 0,
        dropped: 0,
        newline: 0,
    };
    for lane in 0..BLOCK / 16 {
        // SAFETY: SSE2 is always available on x86_64; the loads read bytes
        // `16 * lane .. 16 * lane + 16` of `block` (64 bytes long, asserted above) and the
        // store writes the same range of `upper`; both are unaligned.
        let (plain, lowercase, dropped, newline) = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * lane).cast::<__m128i>());
            // Clearing bit 5 upper-cases a letter; only `a`..`z` and `A`..`Z` can then
            // equal an upper-case letter, so the comparisons below see exactly the ten codes.
            let u = _mm_and_si128(v, _mm_set1_epi8(0xDFu8 as i8));
            _mm_storeu_si128(upper.as_mut_ptr().add(16 * lane).cast::<__m128i>(), u);
            let is = |x: __m128i, c: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8));
            let acgtn = _mm_or_si128(
                _mm_or_si128(is(u, b'A'), is(u, b'C')),
                _mm_or_si128(_mm_or_si128(is(u, b'G'), is(u, b'T')), is(u, b'N')),
            );
            let newline = is(v, b'\n');
            (
                _mm_movemask_epi8(acgtn) as u16,
                // Plain bytes that upper-casing changed.
                !(_mm_movemask_epi8(_mm_cmpeq_epi8(u, v)) as u16),
                _mm_movemask_epi8(_mm_or_si128(newline, is(v, b'\r'))) as u16,
                _mm_movemask_epi8(newline) as u16,
            )
        };
        let shift = 16 * lane;
        masks.plain |= u64::from(plain) << shift;
        masks.lowercase |= u64::from(lowercase & plain) << shift;
        masks.dropped |= u64::from(dropped) << shift;
        masks.newline |= u64::from(newline) << shift;
    }
    masks
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn classify_block(block: &[u8], upper: &mut [u8; 2 * BLOCK]) -> BlockMasks {
    classify_block_portable(block, upper)
}

/// [`normalize_into`] with AVX-512 (the CPU must have AVX-512BW and VBMI2): each block is classified in one register, every
/// comparison giving its 64-bit mask directly, and a block of bases and line breaks is
/// upper-cased, packed (VBMI2 `vpcompressb` drops the breaks) and stored in one go.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,avx512vbmi2")]
fn normalize_avx512(
    raw: &[u8],
    out: &mut Vec<u8>,
    counts: &mut NormalizationCounts,
) -> Result<u64, InvalidByte> {
    use std::arch::x86_64::{
        __m512i, _mm512_and_si512, _mm512_cmpeq_epi8_mask, _mm512_loadu_si512,
        _mm512_maskz_compress_epi8, _mm512_set1_epi8, _mm512_storeu_si512,
    };
    // A macro, not a closure: a closure would not inherit `target_feature`, and an
    // intrinsic called from one is not inlined.
    macro_rules! is {
        ($x:expr, $c:expr) => {
            _mm512_cmpeq_epi8_mask($x, _mm512_set1_epi8($c as i8))
        };
    }
    // Room for every byte of `raw` plus one block, for the whole-block stores.
    out.reserve(raw.len() + BLOCK);
    let mut newlines = 0u64;
    let mut lowercase = 0u64;
    let mut blocks = raw.chunks_exact(BLOCK);
    let mut block_start = 0usize;
    for block in &mut blocks {
        // SAFETY: the load reads the 64 bytes of `block` (`chunks_exact`), unaligned.
        let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast::<__m512i>()) };
        // Clearing bit 5 upper-cases a letter; only `a`..`z` and `A`..`Z` can then equal
        // an upper-case letter, so the comparisons below see exactly the ten codes.
        let u = _mm512_and_si512(v, _mm512_set1_epi8(0xDFu8 as i8));
        let plain = is!(u, b'A') | is!(u, b'C') | is!(u, b'G') | is!(u, b'T') | is!(u, b'N');
        let newline = is!(v, b'\n');
        let dropped = newline | is!(v, b'\r');
        if plain | dropped != u64::MAX {
            counts.lowercase_bases += lowercase;
            lowercase = 0;
            newlines += normalize_slow(block, block_start, out, counts)?;
            block_start += BLOCK;
            continue;
        }
        newlines += u64::from(newline.count_ones());
        lowercase += u64::from((plain & !_mm512_cmpeq_epi8_mask(u, v)).count_ones());
        let packed = _mm512_maskz_compress_epi8(plain, u);
        let len = out.len();
        // SAFETY: `out` has room for `raw.len() + BLOCK` bytes past the bases it had at the
        // start, of which the bases written so far use at most `block_start`, so the 64-byte
        // store stays inside the allocation; `set_len` exposes only the `plain` bytes it
        // wrote first.
        unsafe {
            _mm512_storeu_si512(out.as_mut_ptr().add(len).cast::<__m512i>(), packed);
            out.set_len(len + plain.count_ones() as usize);
        }
        block_start += BLOCK;
    }
    counts.lowercase_bases += lowercase;
    newlines += normalize_slow(blocks.remainder(), block_start, out, counts)?;
    Ok(newlines)
}

/// The same masks byte by byte (other CPUs; and the reference the SSE2 version is tested
/// against).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_block_portable(block: &[u8], upper: &mut [u8; 2 * BLOCK]) -> BlockMasks {
    let mut masks = BlockMasks {
        plain: 0,
        lowercase: 0,
        dropped: 0,
        newline: 0,
    };
    for (i, &b) in block.iter().enumerate().take(BLOCK) {
        let u = b & 0xDF;
        upper[i] = u;
        let plain = matches!(u, b'A' | b'C' | b'G' | b'T' | b'N');
        masks.plain |= u64::from(plain) << i;
        masks.lowercase |= u64::from(plain && u != b) << i;
        masks.dropped |= u64::from(b == b'\n' || b == b'\r') << i;
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
) -> Result<u64, InvalidByte> {
    let mut newlines = 0u64;
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
            newlines += u64::from(byte == b'\n');
            continue;
        }
        counts.lowercase_bases += u64::from(flags & LOWER != 0);
        counts.ambiguous_to_n += u64::from(flags & AMBIGUOUS != 0);
        counts.u_to_t += u64::from(flags & URACIL != 0);
        out.push(TABLE.output[byte as usize]);
    }
    Ok(newlines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(raw: &[u8]) -> (Result<Vec<u8>, InvalidByte>, NormalizationCounts) {
        let mut out = Vec::new();
        let mut counts = NormalizationCounts::default();
        let result = normalize_into(raw, &mut out, &mut counts).map(|_| out);
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
        let bases_and_breaks = b"ACGTNacgtn\r\n";
        for seed in 0..400 {
            let from: &[u8] = if seed % 2 == 0 {
                &alphabet
            } else {
                bases_and_breaks
            };
            let block = pseudo_random_bytes(seed, BLOCK, from);
            let mut simd_upper = [0u8; 2 * BLOCK];
            let mut reference_upper = [0u8; 2 * BLOCK];
            assert_eq!(
                classify_block(&block, &mut simd_upper),
                classify_block_portable(&block, &mut reference_upper),
                "seed {seed}"
            );
            assert_eq!(simd_upper, reference_upper, "seed {seed}");
        }
        let newlines_and_bases = b"ACGTN\n".repeat(11);
        let block = &newlines_and_bases[..BLOCK];
        let masks = classify_block(block, &mut [0u8; 2 * BLOCK]);
        assert_eq!(masks.plain | masks.dropped, u64::MAX);
        assert_eq!(masks.newline.count_ones(), 10);
    }

    #[test]
    fn fast_path_gives_the_same_bases_counts_and_line_breaks_as_byte_by_byte() {
        // Mostly plain text (some of it soft-masked) with LF or CRLF line breaks at varying
        // widths, and now and then the other kinds of byte, so blocks take every path.
        let mostly_plain = b"ACGTACGTACGTNACGTACGTACGT";
        let soft_masked = b"acgtnACGTacgt";
        let mixed = b"ACGTNacgtnUuRyKm-.\r \t";
        for seed in 0..60 {
            let mut raw = Vec::new();
            let width = 1 + (seed as usize * 7) % 120;
            let line_break: &[u8] = if seed % 3 == 0 { b"\r\n" } else { b"\n" };
            for line in 0..40 {
                let alphabet: &[u8] = match (seed + line) % 5 {
                    0 => mixed,
                    1 => soft_masked,
                    _ => mostly_plain,
                };
                raw.extend(pseudo_random_bytes(seed * 1000 + line, width, alphabet));
                raw.extend_from_slice(line_break);
            }
            let mut reference = b"earlier bases".to_vec();
            let mut reference_counts = NormalizationCounts::default();
            let reference_lines =
                normalize_slow(&raw, 0, &mut reference, &mut reference_counts).unwrap();
            assert_eq!(reference_lines, 40, "seed {seed}");
            // `normalize_into` takes the widest path this CPU has (AVX-512 where present);
            // the SSE2 path is checked on its own as well.
            for (name, normalize) in implementations() {
                let mut fast = b"earlier bases".to_vec();
                let mut fast_counts = NormalizationCounts::default();
                let fast_lines = normalize(&raw, &mut fast, &mut fast_counts).unwrap();
                assert_eq!(fast, reference, "{name}, seed {seed}");
                assert_eq!(fast_counts, reference_counts, "{name}, seed {seed}");
                assert_eq!(fast_lines, 40, "{name}, seed {seed}");
            }
        }
    }

    type Normalize = fn(&[u8], &mut Vec<u8>, &mut NormalizationCounts) -> Result<u64, InvalidByte>;

    /// Every implementation this CPU can run: `normalize_into` (the widest) and each
    /// narrower one on its own.
    fn implementations() -> Vec<(&'static str, Normalize)> {
        let mut all: Vec<(&'static str, Normalize)> = vec![
            ("normalize_into", normalize_into),
            ("normalize_sse2", normalize_sse2),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            fn vex(
                raw: &[u8],
                out: &mut Vec<u8>,
                counts: &mut NormalizationCounts,
            ) -> Result<u64, InvalidByte> {
                // SAFETY: only listed when the CPU has AVX2 (below).
                unsafe { normalize_vex(raw, out, counts) }
            }
            fn avx512(
                raw: &[u8],
                out: &mut Vec<u8>,
                counts: &mut NormalizationCounts,
            ) -> Result<u64, InvalidByte> {
                // SAFETY: only listed when the CPU has AVX-512BW and VBMI2 (below).
                unsafe { normalize_avx512(raw, out, counts) }
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(("normalize_vex", vex));
            }
            if std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vbmi2")
            {
                all.push(("normalize_avx512", avx512));
            }
        }
        all
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
        for (name, normalize) in implementations() {
            let mut out = Vec::new();
            let err = normalize(&raw, &mut out, &mut NormalizationCounts::default()).unwrap_err();
            assert_eq!(err.byte, b'Z', "{name}");
            assert_eq!(err.position_in(&raw), (10, 5), "{name}");
            // The bases before the bad byte are kept, nothing after it.
            assert_eq!(out.len(), 10 * 60 + 4, "{name}");
            assert_eq!(&out[600..], b"ACGT", "{name}");
        }
    }
}
