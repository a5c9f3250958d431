//! The QC report: per class and split counts, lengths, GC and N content, what was dropped
//! and why, and the composition-shortcut check (can GC content alone tell the classes apart?).

use std::fmt;

use serde::Serialize;

use super::dedup::DuplicateCounts;
use super::feature_label::{FeatureLabelling, RemotePartSkipped};
use super::split::SPLITS;
use super::{LoadedData, NormalizationCounts, Split, Window};

/// Validation MCC of the GC-only classifier from which the composition warning is shown.
pub const COMPOSITION_WARNING_MCC: f64 = 0.8;

/// Minimum / median / maximum of a set of lengths (the median is the lower middle value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LengthStats {
    pub min: u32,
    pub median: u32,
    pub max: u32,
}

impl LengthStats {
    fn of(mut lengths: Vec<u32>) -> Option<LengthStats> {
        if lengths.is_empty() {
            return None;
        }
        lengths.sort_unstable();
        Some(LengthStats {
            min: lengths[0],
            median: lengths[(lengths.len() - 1) / 2],
            max: lengths[lengths.len() - 1],
        })
    }
}

/// One class in one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassSplitQc {
    pub class: String,
    pub split: Split,
    /// Records with at least one window in this split.
    pub records: u64,
    pub windows: u64,
    /// Bases in the windows (overlapping windows count their shared bases twice).
    pub bp: u64,
    pub window_len: Option<LengthStats>,
    pub record_len: Option<LengthStats>,
    /// Mean and standard deviation of the windows' GC fraction (of A, C, G, T; N excluded).
    pub gc_mean: Option<f64>,
    pub gc_sd: Option<f64>,
    /// Fraction of N among the windows' bases.
    pub n_fraction: f64,
    /// Windows removed because the same bases came earlier (validation/test only).
    pub duplicates_removed: u64,
    /// Repeated windows kept within train.
    pub duplicates_kept_in_train: u64,
    /// Duplicates whose other copy has a different class.
    pub duplicates_with_other_class: u64,
}

/// What happened to one class before splitting.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassDrops {
    pub class: String,
    pub records_loaded: u64,
    pub records_designated_test: u64,
    /// Records shorter than the minimum window length.
    pub records_too_short: u64,
    /// Windows with more N than `--max-n-fraction` allows.
    pub windows_too_many_n: u64,
    /// Windows that would straddle two blocks (blocks may land in different splits).
    pub windows_crossing_block_border: u64,
    /// Block length when this class's records were cut into blocks.
    pub block_bp: Option<u32>,
    /// Groups (records, blocks or `--group-by` groups) that were assigned to splits.
    pub groups: u64,
    pub normalization: NormalizationCounts,
}

/// What labelling windows by GenBank features did (`--label-by-feature`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeatureLabelQc {
    pub keys: Vec<String>,
    /// The class of windows in the features, and of windows outside them.
    pub feature_class: String,
    pub other_class: String,
    pub min_overlap: f64,
    /// GenBank records labelled by their features, and their bases.
    pub records: u64,
    pub record_bp: u64,
    pub records_designated_test: u64,
    /// Records shorter than the minimum window.
    pub records_too_short: u64,
    /// Features with one of the keys, and the bases they cover (union, either strand).
    pub features_used: u64,
    pub covered_bp: u64,
    /// Windows labelled with the feature class / the `non_` class, before duplicate removal.
    pub windows_with_feature: u64,
    pub windows_without_feature: u64,
    /// Windows that overlap the features, but by less than `min_overlap`: dropped.
    pub windows_partial_dropped: u64,
    pub windows_too_many_n: u64,
    pub windows_crossing_block_border: u64,
    /// Block length when these records were cut into blocks.
    pub block_bp: Option<u32>,
    /// Every feature key in the GenBank inputs with its count.
    pub feature_counts: Vec<(String, u64)>,
    /// Location parts on other records (`J00194.1:100..202`), which were skipped.
    pub remote_parts_skipped: Vec<RemotePartSkipped>,
}

impl FeatureLabelQc {
    pub(crate) fn new(
        labels: &FeatureLabelling,
        min_overlap: f64,
        block_bp: Option<u32>,
    ) -> FeatureLabelQc {
        FeatureLabelQc {
            keys: labels.keys.clone(),
            min_overlap,
            features_used: labels.features_used,
            covered_bp: labels.covers.iter().map(|(_, c)| c.total_bp()).sum(),
            block_bp,
            feature_counts: labels.feature_counts.clone(),
            remote_parts_skipped: labels.remote_parts_skipped.clone(),
            ..FeatureLabelQc::default()
        }
    }
}

/// The composition-shortcut check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompositionCheck {
    /// The split the GC-only classifier was evaluated on (validation, else test).
    pub evaluated_on: Option<Split>,
    /// Multi-class MCC (Gorodkin) of a classifier that sees only each window's GC fraction,
    /// fitted on train.
    pub gc_only_mcc: Option<f64>,
    pub warning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QcReport {
    pub classes: Vec<String>,
    /// Class-major, splits in train / validation / test order.
    pub splits: Vec<ClassSplitQc>,
    pub classes_before_split: Vec<ClassDrops>,
    /// With `--label-by-feature`: how the GenBank records' windows were labelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_labels: Option<FeatureLabelQc>,
    pub composition: CompositionCheck,
}

/// How many bases of a stretch are G or C, A or T, and N.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BaseCounts {
    pub gc: u64,
    pub at: u64,
    pub n: u64,
}

/// Counts the bases of `bases` by kind. Runs of up to 255 bytes are counted in one-byte
/// counters, which the compiler turns into vector code (16 or more bytes per step); windows
/// of every split pass through here, several times the input for overlapping windows.
pub fn count_bases(bases: &[u8]) -> BaseCounts {
    let mut counts = BaseCounts::default();
    for run in bases.chunks(255) {
        let (mut gc, mut at, mut n) = (0u8, 0u8, 0u8);
        for &base in run {
            gc += u8::from(base == b'G') + u8::from(base == b'C');
            at += u8::from(base == b'A') + u8::from(base == b'T');
            n += u8::from(base == b'N');
        }
        counts.gc += u64::from(gc);
        counts.at += u64::from(at);
        counts.n += u64::from(n);
    }
    counts
}

/// GC fraction of the A/C/G/T bases of `bases`; `None` when there are none.
pub fn gc_fraction(bases: &[u8]) -> Option<f64> {
    let counts = count_bases(bases);
    let acgt = counts.gc + counts.at;
    (acgt > 0).then(|| counts.gc as f64 / acgt as f64)
}

fn window_bases<'a>(data: &'a LoadedData, window: &Window) -> &'a [u8] {
    let record = &data.records[window.record as usize];
    let start = record.offset as usize + window.start as usize;
    &data.bases[start..start + window.len as usize]
}

/// Builds the report from the final splits (indexed like [`SPLITS`]).
pub fn build_report(
    data: &LoadedData,
    splits: &[Vec<Window>; 3],
    classes_before_split: Vec<ClassDrops>,
    duplicates: &DuplicateCounts,
    mut feature_labels: Option<FeatureLabelQc>,
) -> QcReport {
    if let (Some(qc), Some(labels)) = (&mut feature_labels, &data.feature_labels) {
        qc.feature_class = data.classes[labels.positive as usize].clone();
        qc.other_class = data.classes[labels.negative as usize].clone();
    }
    let class_count = data.classes.len();
    // Per window: its GC fraction (of its A/C/G/T bases) and its N count.
    let counts_per_split: Vec<Vec<(Option<f64>, u64)>> = splits
        .iter()
        .map(|windows| {
            windows
                .iter()
                .map(|w| {
                    let counts = count_bases(window_bases(data, w));
                    let acgt = counts.gc + counts.at;
                    ((acgt > 0).then(|| counts.gc as f64 / acgt as f64), counts.n)
                })
                .collect()
        })
        .collect();

    let mut rows = Vec::with_capacity(class_count * SPLITS.len());
    for class in 0..class_count {
        for (split_index, split) in SPLITS.iter().enumerate() {
            let mut window_lens = Vec::new();
            let mut record_ids = Vec::new();
            let mut gcs = Vec::new();
            let mut n_bases = 0u64;
            for (window, &(gc, n)) in splits[split_index]
                .iter()
                .zip(&counts_per_split[split_index])
            {
                if data.window_class(window) as usize != class {
                    continue;
                }
                window_lens.push(window.len);
                record_ids.push(window.record);
                gcs.extend(gc);
                n_bases += n;
            }
            record_ids.sort_unstable();
            record_ids.dedup();
            let bp: u64 = window_lens.iter().map(|&len| len as u64).sum();
            let (gc_mean, gc_sd) = mean_sd(&gcs);
            rows.push(ClassSplitQc {
                class: data.classes[class].clone(),
                split: *split,
                records: record_ids.len() as u64,
                windows: window_lens.len() as u64,
                bp,
                record_len: LengthStats::of(
                    record_ids
                        .iter()
                        .map(|&r| data.records[r as usize].len)
                        .collect(),
                ),
                window_len: LengthStats::of(window_lens),
                gc_mean,
                gc_sd,
                n_fraction: if bp == 0 {
                    0.0
                } else {
                    n_bases as f64 / bp as f64
                },
                duplicates_removed: duplicates.removed.get(class).map_or(0, |c| c[split_index]),
                duplicates_kept_in_train: duplicates
                    .kept_in_train
                    .get(class)
                    .map_or(0, |c| c[split_index]),
                duplicates_with_other_class: duplicates
                    .conflicting_class
                    .get(class)
                    .map_or(0, |c| c[split_index]),
            });
        }
    }

    let gc_per_split: Vec<Vec<Option<f64>>> = counts_per_split
        .iter()
        .map(|split| split.iter().map(|&(gc, _)| gc).collect())
        .collect();
    let composition = composition_check(data, splits, &gc_per_split);
    QcReport {
        classes: data.classes.clone(),
        splits: rows,
        classes_before_split,
        feature_labels,
        composition,
    }
}

fn mean_sd(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (Some(mean), Some(variance.sqrt()))
}

/// Multi-class Matthews correlation coefficient (Gorodkin 2004) of `predicted` vs `truth`.
pub fn multiclass_mcc(truth: &[u32], predicted: &[u32], class_count: usize) -> f64 {
    let mut true_counts = vec![0f64; class_count];
    let mut predicted_counts = vec![0f64; class_count];
    let mut correct = 0f64;
    for (&t, &p) in truth.iter().zip(predicted) {
        true_counts[t as usize] += 1.0;
        predicted_counts[p as usize] += 1.0;
        if t == p {
            correct += 1.0;
        }
    }
    let samples = truth.len() as f64;
    let dot: f64 = true_counts
        .iter()
        .zip(&predicted_counts)
        .map(|(t, p)| t * p)
        .sum();
    let sum_sq = |counts: &[f64]| counts.iter().map(|c| c * c).sum::<f64>();
    let denominator = ((samples * samples - sum_sq(&predicted_counts))
        * (samples * samples - sum_sq(&true_counts)))
    .sqrt();
    if denominator == 0.0 {
        0.0
    } else {
        (correct * samples - dot) / denominator
    }
}

/// A classifier that sees only a window's GC fraction.
#[derive(Debug, Clone, PartialEq)]
pub enum GcClassifier {
    /// Two classes: the best threshold on train.
    Threshold {
        threshold: f64,
        below: u32,
        above: u32,
    },
    /// More classes: the class whose train mean GC is nearest.
    NearestMean { means: Vec<(u32, f64)> },
}

impl GcClassifier {
    /// Fits on `(gc, class)` pairs; `None` when train has fewer than two classes.
    pub fn fit(train: &[(f64, u32)], class_count: usize) -> Option<GcClassifier> {
        let mut sums = vec![(0f64, 0u64); class_count];
        for &(gc, class) in train {
            sums[class as usize].0 += gc;
            sums[class as usize].1 += 1;
        }
        let means: Vec<(u32, f64)> = sums
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(class, (sum, n))| (class as u32, sum / *n as f64))
            .collect();
        match means[..] {
            [] | [_] => None,
            [(a, _), (b, _)] => Some(Self::best_threshold(train, a, b)),
            _ => Some(GcClassifier::NearestMean { means }),
        }
    }

    fn best_threshold(train: &[(f64, u32)], a: u32, b: u32) -> GcClassifier {
        let mut sorted: Vec<(f64, u32)> = train.to_vec();
        sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
        let total_a = sorted.iter().filter(|(_, c)| *c == a).count() as f64;
        let total_b = sorted.len() as f64 - total_a;
        // Binary MCC with class `a` predicted below the threshold (sign flips for `b` below).
        let mcc = |a_below: f64, b_below: f64| {
            let (tp, fn_, fp, tn) = (a_below, total_a - a_below, b_below, total_b - b_below);
            let denominator = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
            if denominator == 0.0 {
                0.0
            } else {
                (tp * tn - fp * fn_) / denominator
            }
        };
        let mut best = (0.0f64, f64::NEG_INFINITY, true);
        let (mut a_below, mut b_below) = (0.0, 0.0);
        for i in 0..sorted.len() {
            if sorted[i].1 == a {
                a_below += 1.0;
            } else {
                b_below += 1.0;
            }
            let is_last_of_value = sorted.get(i + 1).is_none_or(|next| next.0 > sorted[i].0);
            if !is_last_of_value {
                continue;
            }
            let score = mcc(a_below, b_below);
            if score.abs() > best.0 {
                let threshold = match sorted.get(i + 1) {
                    Some(next) => (sorted[i].0 + next.0) / 2.0,
                    None => sorted[i].0,
                };
                best = (score.abs(), threshold, score >= 0.0);
            }
        }
        let (_, threshold, a_is_below) = best;
        let (below, above) = if a_is_below { (a, b) } else { (b, a) };
        GcClassifier::Threshold {
            threshold,
            below,
            above,
        }
    }

    pub fn predict(&self, gc: f64) -> u32 {
        match self {
            GcClassifier::Threshold {
                threshold,
                below,
                above,
            } => {
                if gc <= *threshold {
                    *below
                } else {
                    *above
                }
            }
            GcClassifier::NearestMean { means } => means
                .iter()
                .min_by(|x, y| (x.1 - gc).abs().total_cmp(&(y.1 - gc).abs()))
                .map_or(0, |&(class, _)| class),
        }
    }
}

fn composition_check(
    data: &LoadedData,
    splits: &[Vec<Window>; 3],
    gc_per_split: &[Vec<Option<f64>>],
) -> CompositionCheck {
    let labelled = |split: usize| -> Vec<(f64, u32)> {
        splits[split]
            .iter()
            .zip(&gc_per_split[split])
            .filter_map(|(w, gc)| gc.map(|gc| (gc, data.window_class(w))))
            .collect()
    };
    let none = CompositionCheck {
        evaluated_on: None,
        gc_only_mcc: None,
        warning: None,
    };
    let Some(classifier) = GcClassifier::fit(&labelled(0), data.classes.len()) else {
        return none;
    };
    let (split, evaluation) = match labelled(1) {
        validation if !validation.is_empty() => (Split::Validation, validation),
        _ => (Split::Test, labelled(2)),
    };
    if evaluation.is_empty() {
        return none;
    }
    let truth: Vec<u32> = evaluation.iter().map(|&(_, class)| class).collect();
    let predicted: Vec<u32> = evaluation
        .iter()
        .map(|&(gc, _)| classifier.predict(gc))
        .collect();
    let mcc = multiclass_mcc(&truth, &predicted, data.classes.len());
    let warning = (mcc >= COMPOSITION_WARNING_MCC).then(|| {
        format!(
            "GC content alone separates your classes: a rule that looks only at each sequence's \
             GC percentage reaches MCC {mcc:.2} on the {split} set. A model can score well by \
             learning this base-composition difference instead of the sequence features you care \
             about. Consider negatives with the same GC content (e.g. shuffled or GC-matched \
             background sequences), and compare your model against this GC-only baseline."
        )
    });
    CompositionCheck {
        evaluated_on: Some(split),
        gc_only_mcc: Some(mcc),
        warning,
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for QcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class_width = self
            .classes
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<class_width$}  {:<10}  {:>8}  {:>9}  {:>13}  {:>20}  {:>20}  {:>13}  {:>6}  {:>9}",
            "class",
            "split",
            "records",
            "windows",
            "bp",
            "window len min/med/max",
            "record len min/med/max",
            "GC mean ± sd",
            "N %",
            "dups rm'd"
        )?;
        let lengths = |stats: &Option<LengthStats>| {
            stats.map_or("-".to_string(), |s| {
                format!("{}/{}/{}", s.min, s.median, s.max)
            })
        };
        for row in &self.splits {
            let gc = match (row.gc_mean, row.gc_sd) {
                (Some(mean), Some(sd)) => format!("{:.3} ± {:.3}", mean, sd),
                _ => "-".to_string(),
            };
            writeln!(
                f,
                "{:<class_width$}  {:<10}  {:>8}  {:>9}  {:>13}  {:>20}  {:>20}  {:>13}  {:>6.2}  {:>9}",
                row.class,
                row.split.name(),
                thousands(row.records),
                thousands(row.windows),
                thousands(row.bp),
                lengths(&row.window_len),
                lengths(&row.record_len),
                gc,
                row.n_fraction * 100.0,
                thousands(row.duplicates_removed),
            )?;
        }
        writeln!(f)?;
        for class in &self.classes_before_split {
            let norm = &class.normalization;
            let blocks = class.block_bp.map_or(String::new(), |bp| {
                format!(", records cut into {} bp blocks", thousands(bp as u64))
            });
            writeln!(
                f,
                "{}: {} records loaded ({} designated test), {} groups{}; dropped: {} records shorter \
                 than the minimum window, {} windows with too many N, {} windows crossing a block \
                 border; normalised: {} lower-case bases upper-cased, {} U→T, {} ambiguity codes→N, \
                 {} gaps removed, {} empty records skipped",
                class.class,
                thousands(class.records_loaded),
                thousands(class.records_designated_test),
                thousands(class.groups),
                blocks,
                thousands(class.records_too_short),
                thousands(class.windows_too_many_n),
                thousands(class.windows_crossing_block_border),
                thousands(norm.lowercase_bases),
                thousands(norm.u_to_t),
                thousands(norm.ambiguous_to_n),
                thousands(norm.gaps_removed),
                thousands(norm.empty_records),
            )?;
        }
        if let Some(labels) = &self.feature_labels {
            write_feature_labels(f, labels)?;
        }
        let kept: u64 = self.splits.iter().map(|r| r.duplicates_kept_in_train).sum();
        let other_class: u64 = self
            .splits
            .iter()
            .map(|r| r.duplicates_with_other_class)
            .sum();
        if kept > 0 || other_class > 0 {
            writeln!(
                f,
                "duplicates: {} repeated windows kept within train; {} duplicates carry a different \
                 class than their other copy (contradicting labels)",
                thousands(kept),
                thousands(other_class)
            )?;
        }
        writeln!(f)?;
        match (&self.composition.gc_only_mcc, self.composition.evaluated_on) {
            (Some(mcc), Some(split)) => writeln!(
                f,
                "composition check: a GC-content-only classifier reaches MCC {mcc:.3} on {split} \
                 (warning from {COMPOSITION_WARNING_MCC})"
            )?,
            _ => writeln!(
                f,
                "composition check: not run (needs two classes in train and a validation or test set)"
            )?,
        }
        if let Some(warning) = &self.composition.warning {
            writeln!(f, "WARNING: {warning}")?;
        }
        Ok(())
    }
}

/// Remote location parts listed in the text report; the JSON report has them all.
const REMOTE_PARTS_SHOWN: usize = 5;

fn write_feature_labels(f: &mut fmt::Formatter<'_>, labels: &FeatureLabelQc) -> fmt::Result {
    let keys = labels.keys.join(",");
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let blocks = labels.block_bp.map_or(String::new(), |bp| {
        format!(", cut into {} bp blocks", thousands(bp as u64))
    });
    writeln!(
        f,
        "labels from features {keys}: {} GenBank records ({} bp{blocks}; {} designated test), {} \
         {keys} features covering {} bp ({:.1}%, either strand); windows: {} {} (at least {}% in \
         a feature), {} {} (no base in one), {} dropped with a partial overlap below {}%; also \
         dropped: {} records shorter than the minimum window, {} windows with too many N, {} \
         windows crossing a block border",
        thousands(labels.records),
        thousands(labels.record_bp),
        thousands(labels.records_designated_test),
        thousands(labels.features_used),
        thousands(labels.covered_bp),
        percent(labels.covered_bp, labels.record_bp),
        thousands(labels.windows_with_feature),
        labels.feature_class,
        labels.min_overlap * 100.0,
        thousands(labels.windows_without_feature),
        labels.other_class,
        thousands(labels.windows_partial_dropped),
        labels.min_overlap * 100.0,
        thousands(labels.records_too_short),
        thousands(labels.windows_too_many_n),
        thousands(labels.windows_crossing_block_border),
    )?;
    let found: Vec<String> = labels
        .feature_counts
        .iter()
        .map(|(key, count)| format!("{key} {}", thousands(*count)))
        .collect();
    writeln!(
        f,
        "feature keys in the GenBank inputs: {}",
        found.join(", ")
    )?;
    let skipped = &labels.remote_parts_skipped;
    if !skipped.is_empty() {
        let shown: Vec<String> = skipped
            .iter()
            .take(REMOTE_PARTS_SHOWN)
            .map(|part| {
                format!(
                    "{}, record '{}', line {}: {} {}",
                    part.file.display(),
                    part.record,
                    part.line,
                    part.key,
                    part.part
                )
            })
            .collect();
        let more = skipped.len().saturating_sub(REMOTE_PARTS_SHOWN);
        writeln!(
            f,
            "WARNING: {} location parts of {keys} features lie on other records and were skipped \
             (only this record's own parts label its windows): {}{}",
            thousands(skipped.len() as u64),
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more (all are listed in --json)")
            } else {
                String::new()
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcc_matches_known_values() {
        // Perfect, inverted and uninformative predictions.
        assert_eq!(multiclass_mcc(&[0, 0, 1, 1], &[0, 0, 1, 1], 2), 1.0);
        assert_eq!(multiclass_mcc(&[0, 0, 1, 1], &[1, 1, 0, 0], 2), -1.0);
        assert_eq!(multiclass_mcc(&[0, 0, 1, 1], &[0, 0, 0, 0], 2), 0.0);
        // Binary case by hand: TP=3 FN=1 FP=2 TN=4 → (12-2)/sqrt(5*4*6*5) = 10/sqrt(600).
        let truth = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
        let predicted = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0];
        let expected = 10.0 / 600f64.sqrt();
        assert!((multiclass_mcc(&truth, &predicted, 2) - expected).abs() < 1e-12);
        // Three classes, all correct.
        assert_eq!(multiclass_mcc(&[0, 1, 2, 2], &[0, 1, 2, 2], 3), 1.0);
    }

    #[test]
    fn base_counts_match_a_plain_count_across_run_borders() {
        let bases: Vec<u8> = b"ACGTNGGCCAAN".iter().copied().cycle().take(1000).collect();
        for len in [0, 1, 254, 255, 256, 511, 1000] {
            let part = &bases[..len];
            let count = |set: &[u8]| part.iter().filter(|b| set.contains(b)).count() as u64;
            assert_eq!(
                count_bases(part),
                BaseCounts {
                    gc: count(b"GC"),
                    at: count(b"AT"),
                    n: count(b"N"),
                },
                "{len} bases"
            );
        }
    }

    #[test]
    fn gc_fraction_ignores_n() {
        assert_eq!(gc_fraction(b"GGAA"), Some(0.5));
        assert_eq!(gc_fraction(b"GCNN"), Some(1.0));
        assert_eq!(gc_fraction(b"NNNN"), None);
    }

    #[test]
    fn gc_classifier_finds_the_separating_threshold_either_way_round() {
        let train = [
            (0.30, 1),
            (0.35, 1),
            (0.40, 1),
            (0.60, 0),
            (0.62, 0),
            (0.70, 0),
        ];
        let classifier = GcClassifier::fit(&train, 2).expect("two classes");
        assert_eq!(classifier.predict(0.2), 1);
        assert_eq!(classifier.predict(0.8), 0);
        assert_eq!(classifier.predict(0.45), 1);
        assert_eq!(classifier.predict(0.55), 0);
        let three = [(0.1, 0), (0.5, 1), (0.9, 2)];
        let classifier = GcClassifier::fit(&three, 3).expect("three classes");
        assert_eq!(classifier.predict(0.6), 1);
        assert_eq!(classifier.predict(0.75), 2);
        assert!(GcClassifier::fit(&[(0.5, 0)], 2).is_none());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(4_938_920), "4,938,920");
    }
}
