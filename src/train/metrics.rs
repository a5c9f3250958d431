//! Classification metrics for evaluation during and after fine-tuning: confusion matrix,
//! accuracy, precision / recall / F1, Matthews correlation, AUROC and cross-entropy, plus
//! the aggregation of window probabilities into one prediction per record.
//!
//! Every definition follows scikit-learn, degenerate cases included, with its
//! `zero_division=0` convention: a ratio whose denominator is zero counts as 0, so a
//! metric is never NaN (NaN would also turn into `null` in the JSON reports).
//!
//! - binary (`num_classes == 2`): precision, recall and F1 are those of class 1, the
//!   positive class (`average="binary"`); AUROC scores class 1's probability;
//! - multi-class: precision, recall, F1 and AUROC (one-vs-rest) are macro averages over
//!   all `num_classes` classes (`labels=range(num_classes)`), so a class that never
//!   occurs still counts, with 0;
//! - MCC is the multi-class R_K of Gorodkin (2004), which is the usual MCC for two classes
//!   (`matthews_corrcoef`).

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Counts of (true class, predicted class) pairs: `counts[true_class * num_classes + predicted_class]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub num_classes: usize,
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix.
    pub fn new(num_classes: usize) -> Self {
        ConfusionMatrix {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Counts one item.
    ///
    /// # Panics
    /// If either class id is not below `num_classes`.
    pub fn add(&mut self, truth: u32, predicted: u32) {
        let index = self.index(truth, predicted);
        self.counts[index] += 1;
    }

    /// The number of items of class `truth` predicted as `predicted`.
    ///
    /// # Panics
    /// If either class id is not below `num_classes`.
    pub fn get(&self, truth: u32, predicted: u32) -> u64 {
        self.counts[self.index(truth, predicted)]
    }

    /// The number of items counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The number of items whose true class is `class` (sklearn's "support").
    pub fn true_count(&self, class: u32) -> u64 {
        (0..self.num_classes as u32)
            .map(|predicted| self.get(class, predicted))
            .sum()
    }

    /// The number of items predicted as `class`.
    pub fn predicted_count(&self, class: u32) -> u64 {
        (0..self.num_classes as u32)
            .map(|truth| self.get(truth, class))
            .sum()
    }

    /// The number of items predicted correctly (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.num_classes as u32)
            .map(|class| self.get(class, class))
            .sum()
    }

    /// Fraction of items predicted correctly; 0 when the matrix is empty.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }

    /// Of the items predicted as `class`, the fraction that are `class`; 0 when `class` is
    /// never predicted.
    pub fn precision(&self, class: u32) -> f64 {
        ratio(self.get(class, class), self.predicted_count(class))
    }

    /// Of the items of `class`, the fraction predicted as `class`; 0 when `class` does not
    /// occur in the truth.
    pub fn recall(&self, class: u32) -> f64 {
        ratio(self.get(class, class), self.true_count(class))
    }

    /// Harmonic mean of precision and recall of `class`, as 2·TP / (2·TP + FP + FN); 0 when
    /// both are 0.
    pub fn f1(&self, class: u32) -> f64 {
        let true_positives = self.get(class, class);
        let false_positives = self.predicted_count(class) - true_positives;
        let false_negatives = self.true_count(class) - true_positives;
        ratio(
            2 * true_positives,
            2 * true_positives + false_positives + false_negatives,
        )
    }

    /// Matthews correlation coefficient in Gorodkin's multi-class form (sklearn's
    /// `matthews_corrcoef`); 0 when the denominator is 0, e.g. when one class is predicted
    /// for everything or the truth holds a single class.
    pub fn mcc(&self) -> f64 {
        let classes = 0..self.num_classes as u32;
        let true_counts: Vec<i128> = classes
            .clone()
            .map(|class| self.true_count(class) as i128)
            .collect();
        let predicted_counts: Vec<i128> = classes
            .map(|class| self.predicted_count(class) as i128)
            .collect();
        let n = self.total() as i128;
        let correct = self.correct() as i128;
        let dot = |a: &[i128], b: &[i128]| a.iter().zip(b).map(|(x, y)| x * y).sum::<i128>();

        // Integer covariances make the zero test exact; i128 holds n² for any realistic n.
        let covariance_truth_predicted = correct * n - dot(&true_counts, &predicted_counts);
        let variance_predicted = n * n - dot(&predicted_counts, &predicted_counts);
        let variance_truth = n * n - dot(&true_counts, &true_counts);
        if variance_predicted == 0 || variance_truth == 0 {
            return 0.0;
        }
        // One square root of the product, as sklearn: a perfect prediction gives exactly 1.
        covariance_truth_predicted as f64
            / ((variance_truth as f64) * (variance_predicted as f64)).sqrt()
    }

    fn index(&self, truth: u32, predicted: u32) -> usize {
        let (truth, predicted) = (truth as usize, predicted as usize);
        assert!(
            truth < self.num_classes && predicted < self.num_classes,
            "class id out of range: truth {truth}, predicted {predicted}, with {} classes",
            self.num_classes
        );
        truth * self.num_classes + predicted
    }
}

/// Everything one evaluation reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The number of scored items.
    pub n: usize,
    /// Mean cross-entropy, when the caller supplies it (None when `n` is 0).
    pub loss: Option<f64>,
    pub accuracy: f64,
    /// Binary: of class 1 (the positive class); multi-class: macro average.
    pub precision: f64,
    /// Binary: of class 1; multi-class: macro average.
    pub recall: f64,
    /// Binary: of class 1; multi-class: macro average.
    pub f1: f64,
    /// Matthews correlation, binary and multi-class (Gorodkin's R_K).
    pub mcc: f64,
    /// Binary: of class 1's probability; multi-class: one-vs-rest macro average. None when
    /// undefined: a class needed has no positives or no negatives in the truth, or a
    /// probability is not finite.
    pub auroc: Option<f64>,
    pub confusion: ConfusionMatrix,
}

impl Metrics {
    /// The metrics of nothing: all zeros, no loss, no AUROC.
    pub fn empty(num_classes: usize) -> Self {
        Metrics {
            n: 0,
            loss: None,
            accuracy: 0.0,
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
            mcc: 0.0,
            auroc: None,
            confusion: ConfusionMatrix::new(num_classes),
        }
    }
}

/// Scores predicted class probabilities against the true labels.
///
/// `probs` is n × `num_classes`, row-major; the predicted class of a row is its argmax,
/// ties going to the lowest class id. `loss` is passed through as the mean loss (dropped
/// when there are no items: a mean over nothing would read as a perfect score).
///
/// # Panics
/// If `probs` is not `labels.len() × num_classes` long, or a label is not below
/// `num_classes`.
pub fn evaluate(probs: &[f32], labels: &[u32], num_classes: usize, loss: Option<f64>) -> Metrics {
    assert_eq!(
        probs.len(),
        labels.len() * num_classes,
        "evaluate: {} probabilities for {} labels × {num_classes} classes",
        probs.len(),
        labels.len()
    );
    if labels.is_empty() {
        return Metrics::empty(num_classes);
    }

    let mut confusion = ConfusionMatrix::new(num_classes);
    for (row, &truth) in probs.chunks_exact(num_classes).zip(labels) {
        confusion.add(truth, argmax(row));
    }

    let (precision, recall, f1, auroc) = if num_classes == 2 {
        (
            confusion.precision(1),
            confusion.recall(1),
            confusion.f1(1),
            one_vs_rest_auroc(probs, labels, num_classes, 1),
        )
    } else {
        let classes = 0..num_classes as u32;
        let mean = |per_class: &dyn Fn(u32) -> f64| {
            classes.clone().map(per_class).sum::<f64>() / num_classes as f64
        };
        let auroc = classes
            .clone()
            .map(|class| one_vs_rest_auroc(probs, labels, num_classes, class))
            .sum::<Option<f64>>()
            .map(|sum| sum / num_classes as f64);
        (
            mean(&|class| confusion.precision(class)),
            mean(&|class| confusion.recall(class)),
            mean(&|class| confusion.f1(class)),
            auroc,
        )
    };

    Metrics {
        n: labels.len(),
        loss,
        accuracy: confusion.accuracy(),
        precision,
        recall,
        f1,
        mcc: confusion.mcc(),
        auroc,
        confusion,
    }
}

/// Index of the largest value; the first one on ties (and NaN never wins over a number
/// before it), so predictions are deterministic.
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (class, &p) in row.iter().enumerate().skip(1) {
        if p > row[best] {
            best = class;
        }
    }
    best as u32
}

/// `numerator / denominator`, or 0 when the denominator is 0 (sklearn's zero_division=0).
fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Area under the ROC curve of `class` against the rest, scored by that class's
/// probability column: the Mann–Whitney probability that a positive outscores a negative,
/// ties counting 1/2 (equal to sklearn's trapezoidal `roc_auc_score`).
fn one_vs_rest_auroc(probs: &[f32], labels: &[u32], num_classes: usize, class: u32) -> Option<f64> {
    let mut scored: Vec<(f32, bool)> = probs
        .chunks_exact(num_classes)
        .zip(labels)
        .map(|(row, &truth)| (row[class as usize], truth == class))
        .collect();
    if scored.iter().any(|(score, _)| !score.is_finite()) {
        return None;
    }
    let positives = scored.iter().filter(|(_, positive)| *positive).count() as u128;
    let negatives = scored.len() as u128 - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }

    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Twice the Mann–Whitney U, so that half-counted ties stay integers.
    let mut twice_u: u128 = 0;
    let mut negatives_below: u128 = 0;
    for tied in scored.chunk_by(|a, b| a.0 == b.0) {
        let tied_positives = tied.iter().filter(|(_, positive)| *positive).count() as u128;
        let tied_negatives = tied.len() as u128 - tied_positives;
        twice_u += tied_positives * (2 * negatives_below + tied_negatives);
        negatives_below += tied_negatives;
    }
    Some(twice_u as f64 / (2 * positives * negatives) as f64)
}

/// How the probabilities of a record's windows become the record's probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// The mean of the windows' probabilities.
    #[default]
    Mean,
    /// Each class's largest probability over the windows, renormalised to sum to 1:
    /// a record is positive when any window looks positive.
    Max,
}

/// Window probabilities aggregated per group (usually per record).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatedProbs {
    /// Group ids in order of first appearance.
    pub groups: Vec<u32>,
    /// `groups.len()` × `num_classes`, row-major; each row sums to 1.
    pub probs: Vec<f32>,
    /// The number of windows in each group.
    pub windows: Vec<u32>,
}

/// Aggregates window probability rows by `group` id (e.g. record index); a group's windows
/// need not be consecutive.
///
/// # Panics
/// If `probs` is not `group.len() × num_classes` long.
pub fn aggregate(
    probs: &[f32],
    num_classes: usize,
    group: &[u32],
    how: Aggregation,
) -> AggregatedProbs {
    assert_eq!(
        probs.len(),
        group.len() * num_classes,
        "aggregate: {} probabilities for {} windows × {num_classes} classes",
        probs.len(),
        group.len()
    );
    let mut position_of_group: HashMap<u32, usize> = HashMap::new();
    let mut groups = Vec::new();
    let mut windows = Vec::new();
    // f64 accumulators: a long record has thousands of windows.
    let mut accumulated: Vec<f64> = Vec::new();

    for (row, &group_id) in probs.chunks_exact(num_classes).zip(group) {
        let position = *position_of_group.entry(group_id).or_insert_with(|| {
            groups.push(group_id);
            windows.push(0);
            let start = match how {
                Aggregation::Mean => 0.0,
                Aggregation::Max => f64::NEG_INFINITY,
            };
            accumulated.extend(std::iter::repeat_n(start, num_classes));
            groups.len() - 1
        });
        windows[position] += 1;
        let slots = &mut accumulated[position * num_classes..(position + 1) * num_classes];
        for (slot, &p) in slots.iter_mut().zip(row) {
            match how {
                Aggregation::Mean => *slot += f64::from(p),
                Aggregation::Max => *slot = slot.max(f64::from(p)),
            }
        }
    }

    // Dividing by the row sum both takes the mean (the sum of summed rows is the window
    // count) and renormalises the maxima.
    let probs = if num_classes == 0 {
        Vec::new()
    } else {
        accumulated
            .chunks_exact(num_classes)
            .flat_map(|row| {
                let sum: f64 = row.iter().sum();
                let scale = if sum > 0.0 { 1.0 / sum } else { 1.0 };
                row.iter().map(move |&value| (value * scale) as f32)
            })
            .collect()
    };
    AggregatedProbs {
        groups,
        probs,
        windows,
    }
}

/// The windows of one group disagree about its label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("windows of group {group} carry different labels ({first} and {other}); all windows of a record must share the record's label")]
pub struct MixedGroupLabels {
    pub group: u32,
    pub first: u32,
    pub other: u32,
}

/// The label of each group, in the order of [`aggregate`]'s `groups`, checking that all
/// windows of a group agree.
///
/// # Panics
/// If `labels` and `group` differ in length.
pub fn group_labels(labels: &[u32], group: &[u32]) -> Result<Vec<u32>, MixedGroupLabels> {
    assert_eq!(
        labels.len(),
        group.len(),
        "group_labels: {} labels for {} windows",
        labels.len(),
        group.len()
    );
    let mut position_of_group: HashMap<u32, usize> = HashMap::new();
    let mut group_label = Vec::new();
    for (&label, &group_id) in labels.iter().zip(group) {
        let position = *position_of_group.entry(group_id).or_insert_with(|| {
            group_label.push(label);
            group_label.len() - 1
        });
        if group_label[position] != label {
            return Err(MixedGroupLabels {
                group: group_id,
                first: group_label[position],
                other: label,
            });
        }
    }
    Ok(group_label)
}

/// The metric that picks the best checkpoint and drives early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetricName {
    /// Matthews correlation: robust to class imbalance, so the default.
    #[default]
    Mcc,
    F1,
    Accuracy,
    Auroc,
    Loss,
}

impl MetricName {
    /// This metric's value in `m`; None when `m` does not have it (no AUROC, no loss).
    pub fn value(self, m: &Metrics) -> Option<f64> {
        match self {
            MetricName::Mcc => Some(m.mcc),
            MetricName::F1 => Some(m.f1),
            MetricName::Accuracy => Some(m.accuracy),
            MetricName::Auroc => m.auroc,
            MetricName::Loss => m.loss,
        }
    }

    /// True for every metric but the loss.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, MetricName::Loss)
    }

    /// Whether `candidate` is strictly better than `best`. Ties are not better, so the
    /// earliest checkpoint with the best score is kept; NaN is never better, and anything
    /// else beats a NaN best.
    pub fn is_better(self, candidate: f64, best: f64) -> bool {
        if candidate.is_nan() {
            return false;
        }
        if best.is_nan() {
            return true;
        }
        if self.higher_is_better() {
            candidate > best
        } else {
            candidate < best
        }
    }

    /// The name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::Mcc => "mcc",
            MetricName::F1 => "f1",
            MetricName::Accuracy => "accuracy",
            MetricName::Auroc => "auroc",
            MetricName::Loss => "loss",
        }
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Softmax of each row of `logits` (n × `num_classes`, row-major). The row maximum is
/// subtracted first so that large logits do not overflow `exp`.
pub fn softmax_rows(logits: &[f32], num_classes: usize) -> Vec<f32> {
    if num_classes == 0 {
        return Vec::new();
    }
    let mut probs = Vec::with_capacity(logits.len());
    for row in logits.chunks_exact(num_classes) {
        let max = row_max(row);
        let exps: Vec<f64> = row.iter().map(|&x| (f64::from(x) - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        probs.extend(exps.iter().map(|&e| (e / sum) as f32));
    }
    probs
}

/// Mean cross-entropy of `logits` (n × `num_classes`, row-major) against `labels`, as
/// torch's `CrossEntropyLoss`: with `class_weights`, each item's loss is weighted by its
/// true class's weight and the sum divided by the sum of those weights. 0 for no items
/// (or a total weight of 0) rather than NaN.
///
/// # Panics
/// If `logits` is not `labels.len() × num_classes` long, a label is not below
/// `num_classes`, or `class_weights` does not have `num_classes` entries.
pub fn cross_entropy(
    logits: &[f32],
    labels: &[u32],
    num_classes: usize,
    class_weights: Option<&[f32]>,
) -> f64 {
    assert_eq!(
        logits.len(),
        labels.len() * num_classes,
        "cross_entropy: {} logits for {} labels × {num_classes} classes",
        logits.len(),
        labels.len()
    );
    if let Some(weights) = class_weights {
        assert_eq!(
            weights.len(),
            num_classes,
            "cross_entropy: {} class weights for {num_classes} classes",
            weights.len()
        );
    }
    if labels.is_empty() {
        return 0.0;
    }

    let mut weighted_sum = 0.0;
    let mut weight_sum = 0.0;
    for (row, &label) in logits.chunks_exact(num_classes).zip(labels) {
        assert!(
            (label as usize) < num_classes,
            "cross_entropy: label {label} with {num_classes} classes"
        );
        // -log softmax(row)[label] = logsumexp(row) - row[label], stable around the max.
        let max = row_max(row);
        let log_sum_exp = max
            + row
                .iter()
                .map(|&x| (f64::from(x) - max).exp())
                .sum::<f64>()
                .ln();
        let item_loss = log_sum_exp - f64::from(row[label as usize]);
        let weight = class_weights.map_or(1.0, |weights| f64::from(weights[label as usize]));
        weighted_sum += weight * item_loss;
        weight_sum += weight;
    }
    if weight_sum == 0.0 {
        0.0
    } else {
        weighted_sum / weight_sum
    }
}

fn row_max(row: &[f32]) -> f64 {
    row.iter()
        .map(|&x| f64::from(x))
        .fold(f64::NEG_INFINITY, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-6,
            "expected {expected}, got {actual}"
        );
    }

    fn assert_all_close(actual: &[f32], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (&a, &e) in actual.iter().zip(expected) {
            assert!(
                (f64::from(a) - e).abs() < 1e-6,
                "{actual:?} vs {expected:?}"
            );
        }
    }

    /// Two-class probability rows [1 - p, p] from class 1's probabilities.
    fn binary_probs(positive_probs: &[f32]) -> Vec<f32> {
        positive_probs.iter().flat_map(|&p| [1.0 - p, p]).collect()
    }

    /// Rows that put 0.8 on the predicted class and share the rest evenly.
    fn confident_probs(predicted: &[u32], num_classes: usize) -> Vec<f32> {
        let other = 0.2 / (num_classes - 1) as f32;
        predicted
            .iter()
            .flat_map(|&p| (0..num_classes as u32).map(move |c| if c == p { 0.8 } else { other }))
            .collect()
    }

    #[test]
    fn binary_scores_match_known_counts() {
        // TP 3 (0.9, 0.8, 0.6), FN 2 (0.4, 0.3), FP 1 (0.7), TN 4 (0.45, 0.35, 0.2, 0.1).
        let labels = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
        let probs = binary_probs(&[0.9, 0.8, 0.6, 0.4, 0.3, 0.7, 0.45, 0.35, 0.2, 0.1]);
        let m = evaluate(&probs, &labels, 2, Some(0.5));

        assert_eq!(m.n, 10);
        assert_eq!(m.loss, Some(0.5));
        assert_eq!(m.confusion.counts, vec![4, 1, 2, 3]);
        assert_eq!(m.confusion.total(), 10);
        // accuracy = (TP + TN) / n = 7 / 10
        assert_close(m.accuracy, 0.7);
        // precision = TP / (TP + FP) = 3 / 4; recall = TP / (TP + FN) = 3 / 5
        assert_close(m.precision, 0.75);
        assert_close(m.recall, 0.6);
        // F1 = 2·TP / (2·TP + FP + FN) = 6 / 9
        assert_close(m.f1, 6.0 / 9.0);
        // MCC = (TP·TN - FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (12 - 2) / sqrt(4·5·5·6)
        //     = 10 / sqrt(600) = 0.408248
        assert_close(m.mcc, 10.0 / 600f64.sqrt());
        // AUROC: negatives below each positive: 0.9 → 5, 0.8 → 5, 0.6 → 4, 0.4 → 3, 0.3 → 2;
        // 19 of 5·5 pairs.
        assert_close(m.auroc.unwrap(), 19.0 / 25.0);
    }

    #[test]
    fn three_classes_give_macro_averages_and_multiclass_mcc() {
        // Confusion (rows truth, columns predicted):
        //   t0 [4 1 0]  t1 [1 2 1]  t2 [0 2 3]; true counts [5 4 5], predicted counts [5 5 4].
        let mut labels = Vec::new();
        let mut predicted = Vec::new();
        let rows: [[usize; 3]; 3] = [[4, 1, 0], [1, 2, 1], [0, 2, 3]];
        for (truth, row) in rows.iter().enumerate() {
            for (pred, &count) in row.iter().enumerate() {
                labels.extend(std::iter::repeat_n(truth as u32, count));
                predicted.extend(std::iter::repeat_n(pred as u32, count));
            }
        }
        let m = evaluate(&confident_probs(&predicted, 3), &labels, 3, None);

        assert_eq!(m.confusion.counts, vec![4, 1, 0, 1, 2, 1, 0, 2, 3]);
        assert_eq!(m.loss, None);
        // accuracy = 9 / 14
        assert_close(m.accuracy, 9.0 / 14.0);
        // class 0: P 4/5, R 4/5, F1 8/10; class 1: P 2/5, R 2/4, F1 4/9; class 2: P 3/4, R 3/5, F1 6/9
        assert_close(m.confusion.f1(1), 4.0 / 9.0);
        // macro P = (0.8 + 0.4 + 0.75) / 3 = 0.65; macro R = (0.8 + 0.5 + 0.6) / 3
        assert_close(m.precision, 0.65);
        assert_close(m.recall, 1.9 / 3.0);
        // macro F1 = (0.8 + 4/9 + 6/9) / 3 = 17.2 / 27
        //          = 0.637037
        assert_close(m.f1, 17.2 / 27.0);
        // MCC: cov(t,p) = 9·14 - (5·5 + 4·5 + 5·4) = 61;
        // var(p) = 14² - (25 + 25 + 16) = 130; var(t) = 14² - (25 + 16 + 25) = 130;
        // 61 / sqrt(130·130) = 0.469231
        assert_close(m.mcc, 61.0 / 130.0);
        // AUROC with two score levels = (TPR + TNR) / 2 per class:
        // class 0 (4/5 + 8/9) / 2 = 76/90; class 1 (2/4 + 7/10) / 2 = 54/90;
        // class 2 (3/5 + 8/9) / 2 = 67/90; macro = 197/270 = 0.729630
        assert_close(m.auroc.unwrap(), 197.0 / 270.0);
    }

    #[test]
    fn predicting_one_class_for_everything_gives_zero_mcc() {
        // Truth [0 0 1 1 1], everything predicted 0: TP 0, FP 0, FN 3, TN 2.
        let labels = [0, 0, 1, 1, 1];
        let probs = binary_probs(&[0.1, 0.3, 0.2, 0.4, 0.45]);
        let m = evaluate(&probs, &labels, 2, None);

        assert_eq!(m.confusion.counts, vec![2, 0, 3, 0]);
        assert_close(m.accuracy, 0.4);
        // Class 1 is never predicted: precision 0 by convention, recall 0 / 3, F1 0.
        assert_eq!(m.precision, 0.0);
        assert_eq!(m.recall, 0.0);
        assert_eq!(m.f1, 0.0);
        // var(p) = 5² - (5² + 0²) = 0, so MCC is 0 rather than 0 / 0.
        assert_eq!(m.mcc, 0.0);
        // The ranking is still informative: 0.2 beats 0.1 only, 0.4 and 0.45 beat both: 5 / 6.
        assert_close(m.auroc.unwrap(), 5.0 / 6.0);
    }

    #[test]
    fn a_class_absent_from_the_truth_scores_zero_and_has_no_auroc() {
        // Truth [0 0 1 1], predicted [0 2 1 1]: class 2 never occurs but is predicted once.
        let labels = [0, 0, 1, 1];
        let m = evaluate(&confident_probs(&[0, 2, 1, 1], 3), &labels, 3, None);

        assert_eq!(m.confusion.get(0, 2), 1);
        assert_eq!(m.confusion.true_count(2), 0);
        // class 2: recall 0 (no support), precision 0 / 1, F1 0
        assert_eq!(m.confusion.recall(2), 0.0);
        assert_eq!(m.confusion.precision(2), 0.0);
        // class 0: P 1/1, R 1/2, F1 2/3; class 1: P 1, R 1, F1 1
        // macro P = (1 + 1 + 0) / 3, macro R = (0.5 + 1 + 0) / 3, macro F1 = (2/3 + 1 + 0) / 3 = 5/9
        assert_close(m.precision, 2.0 / 3.0);
        assert_close(m.recall, 0.5);
        assert_close(m.f1, 5.0 / 9.0);
        assert_close(m.accuracy, 0.75);
        // MCC: true counts [2 2 0], predicted [1 2 1]: cov = 3·4 - (2 + 4) = 6;
        // var(p) = 16 - 6 = 10; var(t) = 16 - 8 = 8; 6 / sqrt(80) = 0.670820
        assert_close(m.mcc, 6.0 / 80f64.sqrt());
        assert_eq!(m.auroc, None);

        // Binary with no positives: recall 0 and no AUROC.
        let m = evaluate(&binary_probs(&[0.2, 0.7, 0.4]), &[0, 0, 0], 2, None);
        assert_eq!(m.recall, 0.0);
        assert_eq!(m.precision, 0.0);
        assert_eq!(m.mcc, 0.0);
        assert_eq!(m.auroc, None);
    }

    #[test]
    fn auroc_counts_ties_as_half() {
        // Positives 0.8, 0.5, 0.5; negatives 0.5, 0.2.
        // 0.8 beats both (2); each 0.5 ties one (1/2) and beats one (1): 2 + 1.5 + 1.5 = 5 of 6.
        let m = evaluate(
            &binary_probs(&[0.8, 0.5, 0.5, 0.5, 0.2]),
            &[1, 1, 1, 0, 0],
            2,
            None,
        );
        assert_close(m.auroc.unwrap(), 5.0 / 6.0);

        // All scores equal: every pair is a tie.
        let m = evaluate(&binary_probs(&[0.3; 4]), &[0, 1, 0, 1], 2, None);
        assert_close(m.auroc.unwrap(), 0.5);
    }

    #[test]
    fn argmax_ties_go_to_the_lowest_class() {
        let m = evaluate(&[0.5, 0.5, 0.4, 0.3, 0.3], &[1], 5, None);
        assert_eq!(m.confusion.get(1, 0), 1);
    }

    #[test]
    fn non_finite_probabilities_give_no_auroc() {
        let m = evaluate(&[f32::NAN, f32::NAN, 0.2, 0.8], &[0, 1], 2, None);
        assert_eq!(m.auroc, None);
        assert_eq!(m.n, 2);
    }

    #[test]
    fn empty_input_gives_zeros_without_nan() {
        for num_classes in [0, 2, 3] {
            let m = evaluate(&[], &[], num_classes, Some(f64::NAN));
            assert_eq!(m, Metrics::empty(num_classes));
            assert_eq!(m.loss, None);
            assert_eq!(m.confusion.total(), 0);
            assert_eq!(serde_json::to_value(&m).unwrap()["mcc"], 0.0);
        }
    }

    #[test]
    fn metrics_round_trip_through_json() {
        let m = evaluate(&binary_probs(&[0.9, 0.2, 0.6]), &[1, 0, 0], 2, Some(0.3));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Metrics>(&json).unwrap(), m);
    }

    #[test]
    fn aggregation_groups_out_of_order_windows() {
        // Windows of groups 5, 2, 5, 2, 7.
        let group = [5, 2, 5, 2, 7];
        let probs = [0.2, 0.8, 0.6, 0.4, 0.6, 0.4, 0.9, 0.1, 0.3, 0.7];

        let mean = aggregate(&probs, 2, &group, Aggregation::Mean);
        assert_eq!(mean.groups, vec![5, 2, 7]);
        assert_eq!(mean.windows, vec![2, 2, 1]);
        // 5: ([0.2 0.8] + [0.6 0.4]) / 2; 2: ([0.6 0.4] + [0.9 0.1]) / 2; 7 as is
        assert_all_close(&mean.probs, &[0.4, 0.6, 0.75, 0.25, 0.3, 0.7]);

        let max = aggregate(&probs, 2, &group, Aggregation::Max);
        assert_eq!(max.groups, vec![5, 2, 7]);
        assert_eq!(max.windows, vec![2, 2, 1]);
        // 5: max [0.6 0.8] / 1.4; 2: max [0.9 0.4] / 1.3; 7 as is
        assert_all_close(
            &max.probs,
            &[0.6 / 1.4, 0.8 / 1.4, 0.9 / 1.3, 0.4 / 1.3, 0.3, 0.7],
        );

        assert_eq!(group_labels(&[1, 0, 1, 0, 1], &group), Ok(vec![1, 0, 1]));
        assert_eq!(
            group_labels(&[1, 0, 0, 0, 1], &group),
            Err(MixedGroupLabels {
                group: 5,
                first: 1,
                other: 0
            })
        );
    }

    #[test]
    fn aggregation_of_nothing_is_empty() {
        let aggregated = aggregate(&[], 3, &[], Aggregation::Max);
        assert!(aggregated.groups.is_empty() && aggregated.probs.is_empty());
    }

    #[test]
    fn metric_names_choose_direction_and_value() {
        let m = evaluate(&binary_probs(&[0.9, 0.2]), &[1, 0], 2, Some(0.25));
        assert_eq!(MetricName::Mcc.value(&m), Some(1.0));
        assert_eq!(MetricName::Loss.value(&m), Some(0.25));
        assert_eq!(MetricName::Auroc.value(&m), Some(1.0));
        assert_eq!(MetricName::Auroc.value(&Metrics::empty(2)), None);

        assert!(MetricName::Mcc.is_better(0.5, 0.4));
        assert!(!MetricName::Mcc.is_better(0.4, 0.4));
        assert!(MetricName::Loss.is_better(0.3, 0.4));
        assert!(!MetricName::Loss.is_better(0.5, 0.4));
        assert!(!MetricName::F1.is_better(f64::NAN, 0.1));
        assert!(MetricName::F1.is_better(0.1, f64::NAN));

        assert_eq!(MetricName::default(), MetricName::Mcc);
        assert_eq!(MetricName::Auroc.to_string(), "auroc");
        assert_eq!(
            serde_json::to_string(&MetricName::Accuracy).unwrap(),
            "\"accuracy\""
        );
        assert_eq!(
            serde_json::from_str::<Aggregation>("\"max\"").unwrap(),
            Aggregation::Max
        );
        // The command line accepts the same names as the reports print.
        use clap::ValueEnum;
        for name in MetricName::value_variants() {
            let parsed = MetricName::from_str(name.as_str(), false).unwrap();
            assert_eq!(parsed, *name);
        }
    }

    #[test]
    fn softmax_is_stable_for_large_logits() {
        // Shift-invariant: [1000 1001 1002] as [0 1 2] → [1 e e²] / (1 + e + e²)
        // = [1 2.718282 7.389056] / 11.107338 = [0.090031 0.244728 0.665241]
        let probs = softmax_rows(&[1000.0, 1001.0, 1002.0, -1000.0, 0.0, 1000.0], 3);
        assert_all_close(&probs[..3], &[0.090031, 0.244728, 0.665241]);
        // exp(-2000) and exp(-1000) underflow to 0, not NaN.
        assert_all_close(&probs[3..], &[0.0, 0.0, 1.0]);
        for row in probs.chunks_exact(3) {
            assert_close(row.iter().map(|&p| f64::from(p)).sum(), 1.0);
        }
    }

    #[test]
    fn cross_entropy_matches_hand_computed_values() {
        // Row [0 0], label 0: ln 2 = 0.693147.
        // Row [2 0], label 1: ln(e² + 1) - 0 = 2.126928.
        let logits = [0.0, 0.0, 2.0, 0.0];
        let labels = [0, 1];
        // mean = (0.693147 + 2.126928) / 2
        assert_close(cross_entropy(&logits, &labels, 2, None), 1.410038);
        // weights [1 3]: (1·0.693147 + 3·2.126928) / (1 + 3) = 7.073931 / 4
        assert_close(
            cross_entropy(&logits, &labels, 2, Some(&[1.0, 3.0])),
            1.768483,
        );
        // Large logits stay finite: [1000 0] costs 1000 against class 1 and ~0 for class 0.
        assert_close(cross_entropy(&[1000.0, 0.0], &[1], 2, None), 1000.0);
        assert_close(cross_entropy(&[1000.0, 0.0], &[0], 2, None), 0.0);
        assert_eq!(cross_entropy(&[], &[], 2, None), 0.0);
        assert_eq!(cross_entropy(&logits, &labels, 2, Some(&[0.0, 0.0])), 0.0);
    }
}
