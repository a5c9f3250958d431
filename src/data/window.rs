//! Cutting records, or contiguous blocks of records, into windows.
//!
//! Tail rule: windows start at the range start and step by the stride; when the last full
//! window ends before the range does, one more window is aligned to the range's end, so
//! every base is covered and (with `--window`) every window of a range that long has the
//! same length. A range shorter than the window but at least the minimum becomes one
//! shorter window.

use serde::{Deserialize, Serialize};

use super::Window;

/// How records are cut into windows. Lengths in bp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowOptions {
    /// Window length; `None`: each record (or block) is one window.
    pub window_bp: Option<u32>,
    /// Step between window starts; default: the window length (no overlap).
    pub stride_bp: Option<u32>,
    /// Shortest window kept (and shortest record used); default: the window length with
    /// `window_bp`, else 1.
    pub min_window_bp: Option<u32>,
    /// Windows with a larger fraction of N bases are dropped.
    pub max_n_fraction: f64,
}

impl Default for WindowOptions {
    fn default() -> Self {
        WindowOptions {
            window_bp: None,
            stride_bp: None,
            min_window_bp: None,
            max_n_fraction: DEFAULT_MAX_N_FRACTION,
        }
    }
}

/// Default limit on the fraction of N in a window.
pub const DEFAULT_MAX_N_FRACTION: f64 = 0.1;

/// [`WindowOptions`] with defaults filled in and checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windowing {
    pub window_bp: Option<u32>,
    pub stride_bp: u32,
    pub min_window_bp: u32,
    pub max_n_fraction: f64,
}

impl WindowOptions {
    /// Fills in defaults; the error says which option is wrong and why.
    pub fn resolve(&self) -> Result<Windowing, String> {
        if self.window_bp == Some(0) {
            return Err("--window must be at least 1 bp".into());
        }
        if self.stride_bp == Some(0) {
            return Err("--stride must be at least 1 bp".into());
        }
        if self.stride_bp.is_some() && self.window_bp.is_none() {
            return Err("--stride needs --window (the window length)".into());
        }
        if self.min_window_bp == Some(0) {
            return Err("--min-window must be at least 1 bp".into());
        }
        if !(0.0..=1.0).contains(&self.max_n_fraction) {
            return Err(format!(
                "--max-n-fraction must be between 0 and 1, got {}",
                self.max_n_fraction
            ));
        }
        let min_window_bp = match (self.min_window_bp, self.window_bp) {
            (Some(min), Some(window)) if min > window => {
                return Err(format!(
                    "--min-window ({min} bp) is longer than --window ({window} bp); lower it or leave it out"
                ))
            }
            (Some(min), _) => min,
            (None, Some(window)) => window,
            (None, None) => 1,
        };
        Ok(Windowing {
            window_bp: self.window_bp,
            stride_bp: self.stride_bp.or(self.window_bp).unwrap_or(1),
            min_window_bp,
            max_n_fraction: self.max_n_fraction,
        })
    }
}

impl Windowing {
    /// `(start, len)` of the windows over `[range_start, range_end)`, before the N filter.
    pub fn spans(&self, range_start: u32, range_end: u32) -> Vec<(u32, u32)> {
        let range_len = range_end.saturating_sub(range_start);
        if range_len < self.min_window_bp {
            return Vec::new();
        }
        let window = match self.window_bp {
            Some(window) if range_len > window => window,
            // No windowing, or a range no longer than one window: the whole range.
            _ => return vec![(range_start, range_len)],
        };
        let mut spans = Vec::with_capacity((range_len / self.stride_bp) as usize + 2);
        let mut start = range_start;
        let mut last_end = range_start;
        while start as u64 + window as u64 <= range_end as u64 {
            spans.push((start, window));
            last_end = start + window;
            match start.checked_add(self.stride_bp) {
                Some(next) => start = next,
                None => break,
            }
        }
        if last_end < range_end {
            spans.push((range_end - window, window));
        }
        spans
    }

    /// True when `bases` holds more N than allowed.
    pub fn too_many_n(&self, bases: &[u8]) -> bool {
        if bases.is_empty() {
            return true;
        }
        let n_count = super::qc::count_bases(bases).n;
        n_count as f64 > self.max_n_fraction * bases.len() as f64
    }
}

/// Contiguous blocks `[start, end)` of a record of `record_len` bp, each `block_bp` long;
/// a tail shorter than `min_tail_bp` joins the block before it.
pub fn blocks(record_len: u32, block_bp: u32, min_tail_bp: u32) -> Vec<(u32, u32)> {
    let block_bp = block_bp.max(1);
    let full_blocks = record_len / block_bp;
    let tail = record_len % block_bp;
    let mut out: Vec<(u32, u32)> = (0..full_blocks)
        .map(|i| (i * block_bp, (i + 1) * block_bp))
        .collect();
    if tail > 0 {
        match out.last_mut() {
            Some(last) if tail < min_tail_bp => last.1 = record_len,
            _ => out.push((full_blocks * block_bp, record_len)),
        }
    }
    out
}

/// How many of the windows over the whole record straddle a border between `blocks`
/// (those are the windows that blocking drops).
pub fn count_crossing_block_borders(
    windowing: &Windowing,
    record_len: u32,
    blocks: &[(u32, u32)],
) -> u64 {
    let borders: Vec<u32> = blocks.iter().skip(1).map(|&(start, _)| start).collect();
    if borders.is_empty() {
        return 0;
    }
    windowing
        .spans(0, record_len)
        .iter()
        .filter(|&&(start, len)| {
            // The first border after `start`; crossing when it lies inside the window.
            let next = borders.partition_point(|&border| border <= start);
            next < borders.len() && borders[next] < start + len
        })
        .count() as u64
}

/// Appends the windows of `record` over `[range_start, range_end)` that pass the N filter
/// to `out`; returns how many were dropped for N.
pub fn push_windows(
    windowing: &Windowing,
    record: u32,
    record_bases: &[u8],
    range_start: u32,
    range_end: u32,
    out: &mut Vec<Window>,
) -> u64 {
    let mut dropped_for_n = 0;
    for (start, len) in windowing.spans(range_start, range_end) {
        let bases = &record_bases[start as usize..(start + len) as usize];
        if windowing.too_many_n(bases) {
            dropped_for_n += 1;
        } else {
            out.push(Window { record, start, len });
        }
    }
    dropped_for_n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windowing(window: Option<u32>, stride: Option<u32>, min: Option<u32>) -> Windowing {
        WindowOptions {
            window_bp: window,
            stride_bp: stride,
            min_window_bp: min,
            max_n_fraction: 0.1,
        }
        .resolve()
        .expect("valid options")
    }

    #[test]
    fn without_window_a_record_is_one_window() {
        let w = windowing(None, None, None);
        assert_eq!(w.spans(0, 300), vec![(0, 300)]);
        assert_eq!(w.spans(10, 11), vec![(10, 1)]);
    }

    #[test]
    fn overlapping_windows_cover_the_record_and_the_tail_is_end_aligned() {
        let w = windowing(Some(10), Some(5), None);
        assert_eq!(w.spans(0, 20), vec![(0, 10), (5, 10), (10, 10)]);
        // 23 bp: regular windows end at 20; one more window ends exactly at 23.
        assert_eq!(w.spans(0, 23), vec![(0, 10), (5, 10), (10, 10), (13, 10)]);
        for (start, len) in w.spans(0, 23) {
            assert!(start + len <= 23);
            assert_eq!(len, 10);
        }
    }

    #[test]
    fn records_shorter_than_the_minimum_give_no_window() {
        let w = windowing(Some(10), Some(5), Some(6));
        assert_eq!(w.spans(0, 5), vec![]);
        assert_eq!(w.spans(0, 7), vec![(0, 7)]);
        // Default minimum = window length.
        assert_eq!(windowing(Some(10), None, None).spans(0, 9), vec![]);
    }

    #[test]
    fn windows_with_too_many_n_are_dropped_and_counted() {
        let w = windowing(Some(10), None, None);
        let mut bases = vec![b'A'; 30];
        bases[12] = b'N';
        bases[13] = b'N'; // window 10..20 has 20% N
        bases[25] = b'N'; // window 20..30 has 10% N: kept (limit is "more than")
        let mut out = Vec::new();
        let dropped = push_windows(&w, 7, &bases, 0, 30, &mut out);
        assert_eq!(dropped, 1);
        assert_eq!(
            out,
            vec![
                Window {
                    record: 7,
                    start: 0,
                    len: 10
                },
                Window {
                    record: 7,
                    start: 20,
                    len: 10
                }
            ]
        );
    }

    #[test]
    fn blocks_tile_the_record_and_short_tails_join_the_last_block() {
        assert_eq!(blocks(25, 10, 5), vec![(0, 10), (10, 20), (20, 25)]);
        assert_eq!(blocks(23, 10, 5), vec![(0, 10), (10, 23)]);
        assert_eq!(blocks(3, 10, 5), vec![(0, 3)]);
    }

    #[test]
    fn windows_crossing_block_borders_are_counted() {
        let w = windowing(Some(10), Some(5), None);
        // Windows over 40 bp start at 0,5,...,30; borders at 20: the window at 15 crosses.
        let record_blocks = blocks(40, 20, 10);
        assert_eq!(count_crossing_block_borders(&w, 40, &record_blocks), 1);
        // Windows generated per block never cross a border.
        for &(block_start, block_end) in &record_blocks {
            for (start, len) in w.spans(block_start, block_end) {
                assert!(start >= block_start && start + len <= block_end);
            }
        }
    }

    #[test]
    fn bad_options_are_explained() {
        let err = WindowOptions {
            window_bp: Some(100),
            min_window_bp: Some(200),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.contains("--min-window"), "{err}");
        let err = WindowOptions {
            stride_bp: Some(10),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.contains("--window"), "{err}");
    }
}
