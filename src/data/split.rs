//! Split fractions, a small seeded PRNG and the assignment of groups (records, blocks or
//! header-regex groups) to train / validation / test.
//!
//! Everything here is deterministic for a given seed: no hash-map iteration order, no
//! platform-dependent random source.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Split;

/// All splits in their fixed order.
pub const SPLITS: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

impl Split {
    /// Position in [`SPLITS`].
    pub fn index(self) -> usize {
        match self {
            Split::Train => 0,
            Split::Validation => 1,
            Split::Test => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fractions of each class's windows that go to train / validation / test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions {
            train: 0.8,
            validation: 0.1,
            test: 0.1,
        }
    }
}

impl SplitFractions {
    pub fn as_array(&self) -> [f64; 3] {
        [self.train, self.validation, self.test]
    }

    /// The fractions when the test set is designated by the user: train and validation
    /// share everything else in their original proportion.
    pub fn without_test(&self) -> SplitFractions {
        let rest = self.train + self.validation;
        SplitFractions {
            train: self.train / rest,
            validation: self.validation / rest,
            test: 0.0,
        }
    }
}

impl FromStr for SplitFractions {
    type Err = String;

    /// `train,validation,test` (e.g. `0.8,0.1,0.1`) or `train,validation` (no test split).
    fn from_str(text: &str) -> Result<Self, String> {
        let hint =
            "write --split as train,validation,test fractions that add up to 1, e.g. 0.8,0.1,0.1";
        let values = text
            .split(',')
            .map(|part| part.trim().parse::<f64>())
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|_| format!("cannot read `{text}` as fractions; {hint}"))?;
        let fractions = match values[..] {
            [train, validation, test] => SplitFractions {
                train,
                validation,
                test,
            },
            [train, validation] => SplitFractions {
                train,
                validation,
                test: 0.0,
            },
            _ => return Err(format!("`{text}` has {} values; {hint}", values.len())),
        };
        let all = fractions.as_array();
        if all.iter().any(|f| !f.is_finite() || *f < 0.0) {
            return Err(format!("`{text}` has a negative value; {hint}"));
        }
        if fractions.train <= 0.0 {
            return Err(format!("`{text}` gives train nothing; {hint}"));
        }
        let sum: f64 = all.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(format!("`{text}` adds up to {sum}, not 1; {hint}"));
        }
        Ok(fractions)
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast and the same on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`), without modulo bias (Lemire's method).
    pub fn below(&mut self, bound: u64) -> u64 {
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = (self.next_u64() as u128) * (bound as u128);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The windows of one group, per class (sparse: `(class, windows)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSize {
    pub windows_per_class: Vec<(u32, u64)>,
}

impl GroupSize {
    pub fn total(&self) -> u64 {
        self.windows_per_class.iter().map(|&(_, n)| n).sum()
    }
}

/// Assigns each group to a split so that every class gets close to its fraction of
/// windows in each split.
///
/// Groups are visited largest first (sizes bucketed by powers of two, and shuffled with
/// `seed` within a bucket, so equal-sized groups land in random splits); each goes to the
/// split whose per-class targets it fills best, weighted by the group's class make-up.
pub fn assign_groups(
    groups: &[GroupSize],
    class_count: usize,
    fractions: &SplitFractions,
    seed: u64,
) -> Vec<Split> {
    let fractions = fractions.as_array();
    let mut class_totals = vec![0u64; class_count];
    for group in groups {
        for &(class, n) in &group.windows_per_class {
            class_totals[class as usize] += n;
        }
    }
    let mut order: Vec<usize> = (0..groups.len()).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let size_bucket = |group: usize| 64 - groups[group].total().leading_zeros();
    order.sort_by_key(|&group| std::cmp::Reverse(size_bucket(group)));

    let mut assigned = vec![0u64; class_count * SPLITS.len()];
    let mut result = vec![Split::Train; groups.len()];
    for group in order {
        let mut best: Option<(usize, f64)> = None;
        for (split, &fraction) in fractions.iter().enumerate() {
            if fraction <= 0.0 {
                continue;
            }
            // How much of the still-missing share of each class this group would fill.
            let score: f64 = groups[group]
                .windows_per_class
                .iter()
                .map(|&(class, n)| {
                    let total = class_totals[class as usize] as f64;
                    let target = fraction * total;
                    let have = assigned[class as usize * SPLITS.len() + split] as f64;
                    n as f64 * (target - have) / total.max(1.0)
                })
                .sum();
            if best.is_none_or(|(_, best_score)| score > best_score) {
                best = Some((split, score));
            }
        }
        let split = best.map_or(0, |(split, _)| split);
        result[group] = SPLITS[split];
        for &(class, n) in &groups[group].windows_per_class {
            assigned[class as usize * SPLITS.len() + split] += n;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single_class_groups(sizes: &[u64]) -> Vec<GroupSize> {
        sizes
            .iter()
            .map(|&n| GroupSize {
                windows_per_class: vec![(0, n)],
            })
            .collect()
    }

    fn windows_per_split(groups: &[GroupSize], splits: &[Split]) -> [u64; 3] {
        let mut out = [0; 3];
        for (group, split) in groups.iter().zip(splits) {
            out[split.index()] += group.total();
        }
        out
    }

    #[test]
    fn fractions_parse_and_bad_ones_are_explained() {
        assert_eq!(
            "0.7, 0.2,0.1".parse::<SplitFractions>(),
            Ok(SplitFractions {
                train: 0.7,
                validation: 0.2,
                test: 0.1
            })
        );
        assert_eq!("0.9,0.1".parse::<SplitFractions>().map(|f| f.test), Ok(0.0));
        for bad in [
            "0.8,0.1",
            "a,b,c",
            "0.5,0.5,0.5",
            "1,-0.5,0.5",
            "0,0.5,0.5",
            "1",
        ] {
            let err = bad.parse::<SplitFractions>().unwrap_err();
            assert!(err.contains("--split"), "{bad}: {err}");
        }
    }

    #[test]
    fn prng_is_deterministic_and_unbiased_enough() {
        let a: Vec<u64> = {
            let mut rng = SplitMix64::new(42);
            (0..5).map(|_| rng.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut rng = SplitMix64::new(42);
            (0..5).map(|_| rng.next_u64()).collect()
        };
        assert_eq!(a, b);
        // SplitMix64's published first output for seed 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut rng = SplitMix64::new(7);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[rng.below(3) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut items: Vec<u32> = (0..100).collect();
        SplitMix64::new(3).shuffle(&mut items);
        assert_ne!(items, (0..100).collect::<Vec<_>>());
        items.sort();
        assert_eq!(items, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn equal_groups_are_split_at_the_requested_fractions() {
        let groups = single_class_groups(&[1; 1000]);
        let splits = assign_groups(&groups, 1, &SplitFractions::default(), 1);
        assert_eq!(windows_per_split(&groups, &splits), [800, 100, 100]);
        let other_seed = assign_groups(&groups, 1, &SplitFractions::default(), 2);
        assert_ne!(splits, other_seed);
        assert_eq!(
            splits,
            assign_groups(&groups, 1, &SplitFractions::default(), 1)
        );
    }

    #[test]
    fn uneven_groups_land_close_to_the_fractions() {
        let sizes: Vec<u64> = (0..200).map(|i| 5 + (i * 37 % 90)).collect();
        let groups = single_class_groups(&sizes);
        let splits = assign_groups(&groups, 1, &SplitFractions::default(), 9);
        let per_split = windows_per_split(&groups, &splits);
        let total: u64 = sizes.iter().sum();
        for (split, fraction) in per_split.iter().zip([0.8, 0.1, 0.1]) {
            let share = *split as f64 / total as f64;
            assert!((share - fraction).abs() < 0.01, "{per_split:?}");
        }
    }

    #[test]
    fn each_class_is_stratified_separately() {
        // Class 0: 100 groups of 10 windows; class 1: 1000 groups of 1 window.
        let mut groups: Vec<GroupSize> = (0..100)
            .map(|_| GroupSize {
                windows_per_class: vec![(0, 10)],
            })
            .collect();
        groups.extend((0..1000).map(|_| GroupSize {
            windows_per_class: vec![(1, 1)],
        }));
        let splits = assign_groups(&groups, 2, &SplitFractions::default(), 5);
        let mut per_class = [[0u64; 3]; 2];
        for (group, split) in groups.iter().zip(&splits) {
            for &(class, n) in &group.windows_per_class {
                per_class[class as usize][split.index()] += n;
            }
        }
        assert_eq!(per_class, [[800, 100, 100], [800, 100, 100]]);
    }

    #[test]
    fn a_zero_fraction_split_gets_nothing() {
        let groups = single_class_groups(&[3; 50]);
        let fractions: SplitFractions = "0.9,0.1,0".parse().expect("valid");
        let splits = assign_groups(&groups, 1, &fractions, 1);
        assert!(splits.iter().all(|&s| s != Split::Test));
    }
}
