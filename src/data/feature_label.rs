//! Labels from GenBank features (`--label-by-feature CDS`): each window of a GenBank record is
//! labelled `CDS` when at least `--min-feature-overlap` of its bases lie in a CDS feature,
//! `non_CDS` when none do, and dropped (and counted) in between.
//!
//! What counts is the union of the parts of every feature with one of the chosen keys: the
//! bases of `join(...)`/`order(...)` parts (so introns between exons are not covered), on
//! either strand (`complement(...)` covers the same genomic bases; a window is a piece of the
//! double-stranded genome). A site between two bases (`a^b`) covers no base, but a window
//! holding one is not "without the feature" either: it is dropped like a partial overlap.

use std::path::PathBuf;

use serde::Serialize;

use super::error::DataError;
use super::genbank::Span;

/// Default `--min-feature-overlap`: a window is labelled by what most of it is.
pub const DEFAULT_MIN_FEATURE_OVERLAP: f64 = 0.5;

/// Reads `CDS` or `CDS,rRNA` (spaces around commas allowed).
pub fn parse_feature_keys(spec: &str) -> Result<Vec<String>, DataError> {
    let keys: Vec<String> = spec.split(',').map(|k| k.trim().to_string()).collect();
    if keys.iter().any(String::is_empty) {
        return Err(DataError::BadArgument {
            option: "--label-by-feature",
            spec: spec.to_string(),
            reason: "give a feature key such as CDS, or several separated by commas (CDS,rRNA)"
                .to_string(),
        });
    }
    if let Some(bad) = keys.iter().find(|k| k.contains(char::is_whitespace)) {
        return Err(DataError::BadArgument {
            option: "--label-by-feature",
            spec: spec.to_string(),
            reason: format!(
                "`{bad}` has a space; feature keys have none (CDS, tRNA, misc_feature)"
            ),
        });
    }
    Ok(keys)
}

/// The two class names for `keys`: `CDS` / `non_CDS`, `CDS+rRNA` / `non_CDS+rRNA`.
pub fn feature_class_names(keys: &[String]) -> (String, String) {
    let positive = keys.join("+");
    let negative = format!("non_{positive}");
    (positive, negative)
}

/// True when a feature key is one of `keys` (GenBank keys are matched ignoring case, so
/// `cds` finds `CDS`).
pub fn key_matches(keys: &[String], key: &str) -> bool {
    keys.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// The bases of one record covered by the chosen features, as sorted, merged intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureCover {
    /// `[start, end)`, sorted, non-overlapping and not touching.
    intervals: Vec<(u32, u32)>,
    /// Covered bases before each interval.
    covered_before: Vec<u64>,
    /// Sites between bases (`a^b`): the 0-based position of the boundary, sorted.
    sites: Vec<u32>,
}

impl FeatureCover {
    pub fn new<'s>(spans: impl IntoIterator<Item = &'s Span>) -> FeatureCover {
        let mut intervals = Vec::new();
        let mut sites = Vec::new();
        for span in spans {
            let start = u32::try_from(span.start).unwrap_or(u32::MAX);
            let end = u32::try_from(span.end).unwrap_or(u32::MAX);
            if start == end {
                sites.push(start);
            } else if start < end {
                intervals.push((start, end));
            }
        }
        intervals.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(intervals.len());
        for (start, end) in intervals {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        sites.sort_unstable();
        sites.dedup();
        let mut covered_before = Vec::with_capacity(merged.len());
        let mut total = 0u64;
        for &(start, end) in &merged {
            covered_before.push(total);
            total += u64::from(end - start);
        }
        FeatureCover {
            intervals: merged,
            covered_before,
            sites,
        }
    }

    /// Covered bases in `[0, position)`.
    fn covered_up_to(&self, position: u32) -> u64 {
        // The first interval that does not end at or before `position`.
        let index = self.intervals.partition_point(|&(_, end)| end <= position);
        let before = match index.checked_sub(1) {
            Some(last) => {
                self.covered_before[last]
                    + u64::from(self.intervals[last].1 - self.intervals[last].0)
            }
            None => 0,
        };
        match self.intervals.get(index) {
            Some(&(start, _)) if start < position => before + u64::from(position - start),
            _ => before,
        }
    }

    /// Covered bases in `[start, end)`.
    pub fn covered_bp(&self, start: u32, end: u32) -> u64 {
        self.covered_up_to(end) - self.covered_up_to(start)
    }

    /// Every covered base.
    pub fn total_bp(&self) -> u64 {
        self.intervals
            .iter()
            .map(|&(start, end)| u64::from(end - start))
            .sum()
    }

    /// True when a site between bases lies strictly inside `[start, end)`.
    pub fn has_site_within(&self, start: u32, end: u32) -> bool {
        let first = self.sites.partition_point(|&site| site <= start);
        self.sites.get(first).is_some_and(|&site| site < end)
    }

    /// What a window `[start, start + len)` is labelled.
    pub fn label(&self, start: u32, len: u32, min_overlap: f64) -> WindowLabel {
        let end = start.saturating_add(len);
        let covered = self.covered_bp(start, end);
        if covered == 0 && !self.has_site_within(start, end) {
            WindowLabel::WithoutFeature
        } else if covered > 0 && covered as f64 >= min_overlap * f64::from(len) {
            WindowLabel::Feature
        } else {
            WindowLabel::Partial
        }
    }
}

/// How a window relates to the chosen features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowLabel {
    /// At least the minimum overlap: labelled with the feature key.
    Feature,
    /// No base in any such feature: labelled `non_KEY`.
    WithoutFeature,
    /// Some overlap, below the minimum: dropped and counted.
    Partial,
}

/// A part of a feature location on another record, skipped (and reported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemotePartSkipped {
    pub file: PathBuf,
    pub record: String,
    /// Line of the feature key.
    pub line: u64,
    pub key: String,
    /// The part as written, e.g. `J00194.1:100..202`.
    pub part: String,
}

/// Everything loading found for feature labels; kept in [`super::LoadedData`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureLabelling {
    pub keys: Vec<String>,
    /// The class of windows in a feature, and of windows outside every feature.
    pub positive: u32,
    pub negative: u32,
    /// Per GenBank record (index into `records`, ascending): what its features cover.
    pub covers: Vec<(u32, FeatureCover)>,
    /// Features with one of the keys.
    pub features_used: u64,
    /// Every feature key in the GenBank inputs with its count, in order of first appearance.
    pub feature_counts: Vec<(String, u64)>,
    /// Parts of locations on other records, which cannot be placed on this sequence.
    pub remote_parts_skipped: Vec<RemotePartSkipped>,
}

impl FeatureLabelling {
    /// The cover of `record` when it is labelled by its features.
    pub fn cover(&self, record: u32) -> Option<&FeatureCover> {
        self.covers
            .binary_search_by_key(&record, |(r, _)| *r)
            .ok()
            .map(|index| &self.covers[index].1)
    }

    pub(crate) fn count_key(&mut self, key: &str) {
        match self.feature_counts.iter_mut().find(|(k, _)| k == key) {
            Some((_, count)) => *count += 1,
            None => self.feature_counts.push((key.to_string(), 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, end: u64) -> Span {
        Span {
            start,
            end,
            complement: false,
            partial_start: false,
            partial_end: false,
        }
    }

    #[test]
    fn cover_merges_overlaps_and_counts_bases_in_a_range() {
        let spans = [span(10, 20), span(15, 30), span(40, 50), span(60, 60)];
        let cover = FeatureCover::new(&spans);
        assert_eq!(cover.total_bp(), 30);
        assert_eq!(cover.covered_bp(0, 10), 0);
        assert_eq!(cover.covered_bp(0, 100), 30);
        assert_eq!(cover.covered_bp(25, 45), 10);
        assert_eq!(cover.covered_bp(12, 13), 1);
        assert!(cover.has_site_within(55, 65));
        assert!(!cover.has_site_within(60, 65));
        assert!(!cover.has_site_within(50, 60));
    }

    #[test]
    fn windows_are_labelled_by_the_overlap_fraction() {
        let cover = FeatureCover::new(&[span(100, 200)]);
        assert_eq!(cover.label(100, 100, 0.5), WindowLabel::Feature);
        assert_eq!(cover.label(150, 100, 0.5), WindowLabel::Feature);
        assert_eq!(cover.label(151, 100, 0.5), WindowLabel::Partial);
        assert_eq!(cover.label(199, 100, 0.5), WindowLabel::Partial);
        assert_eq!(cover.label(200, 100, 0.5), WindowLabel::WithoutFeature);
        assert_eq!(cover.label(0, 100, 0.5), WindowLabel::WithoutFeature);
        assert_eq!(cover.label(1, 100, 0.5), WindowLabel::Partial);
        assert_eq!(cover.label(1, 100, 0.01), WindowLabel::Feature);
    }

    #[test]
    fn keys_and_class_names() {
        assert_eq!(parse_feature_keys("CDS, rRNA").unwrap(), ["CDS", "rRNA"]);
        assert!(parse_feature_keys("CDS,").is_err());
        assert!(parse_feature_keys("").is_err());
        assert_eq!(
            feature_class_names(&["CDS".into()]),
            ("CDS".into(), "non_CDS".into())
        );
        assert_eq!(
            feature_class_names(&["CDS".into(), "rRNA".into()]),
            ("CDS+rRNA".into(), "non_CDS+rRNA".into())
        );
        assert!(key_matches(&["cds".into()], "CDS"));
    }
}
