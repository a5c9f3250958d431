//! Exact duplicate windows (same bases) within and across splits.
//!
//! Splits are visited train → validation → test. A window whose bases were already seen
//! is removed when it sits in validation or test (so no evaluation window is a copy of a
//! training window, or of another evaluation window), and is kept but counted when it is
//! a repeat within train.

use std::collections::HashMap;

use super::split::SPLITS;
use super::{LoadedData, Window};

/// What duplicate removal found, per class and split (`[class][split index]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuplicateCounts {
    /// Windows removed from validation/test because the same bases came earlier.
    pub removed: Vec<[u64; 3]>,
    /// Repeats within train (kept: they do not leak, but weigh those sequences more).
    pub kept_in_train: Vec<[u64; 3]>,
    /// Duplicates whose earlier copy carries a different class (contradicting labels).
    pub conflicting_class: Vec<[u64; 3]>,
}

/// Removes duplicate windows from validation and test (see the module notes); `splits`
/// is indexed like [`SPLITS`].
pub fn remove_duplicates(data: &LoadedData, splits: &mut [Vec<Window>; 3]) -> DuplicateCounts {
    let class_count = data.classes.len();
    let mut counts = DuplicateCounts {
        removed: vec![[0; 3]; class_count],
        kept_in_train: vec![[0; 3]; class_count],
        conflicting_class: vec![[0; 3]; class_count],
    };
    // Keys are the bases themselves: exact, and only used for lookups (never iterated).
    let mut first_class: HashMap<&[u8], u32> = HashMap::new();
    for (split_index, windows) in splits.iter_mut().enumerate() {
        let is_train = SPLITS[split_index] == super::Split::Train;
        windows.retain(|window| {
            let record = &data.records[window.record as usize];
            let start = record.offset as usize + window.start as usize;
            let bases = &data.bases[start..start + window.len as usize];
            let window_class = data.window_class(window);
            let class = window_class as usize;
            match first_class.get(bases) {
                None => {
                    first_class.insert(bases, window_class);
                    true
                }
                Some(&earlier_class) => {
                    if earlier_class != window_class {
                        counts.conflicting_class[class][split_index] += 1;
                    }
                    if is_train {
                        counts.kept_in_train[class][split_index] += 1;
                        true
                    } else {
                        counts.removed[class][split_index] += 1;
                        false
                    }
                }
            }
        });
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Record;

    fn data(sequences: &[(&str, u32)]) -> LoadedData {
        let mut loaded = LoadedData {
            classes: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        for (i, (sequence, class)) in sequences.iter().enumerate() {
            loaded.records.push(Record {
                header: format!("r{i}"),
                file: 0,
                line: 1 + 2 * i as u64,
                class: *class,
                offset: loaded.bases.len() as u64,
                len: sequence.len() as u32,
                designated_test: false,
            });
            loaded.bases.extend_from_slice(sequence.as_bytes());
        }
        loaded
    }

    fn whole(record: u32, len: u32) -> Window {
        Window {
            record,
            start: 0,
            len,
        }
    }

    #[test]
    fn duplicates_leave_validation_and_test_but_stay_in_train() {
        let loaded = data(&[
            ("ACGT", 0), // 0 train
            ("ACGT", 0), // 1 train: repeat, kept
            ("ACGT", 0), // 2 validation: copy of train, removed
            ("GGGG", 1), // 3 validation
            ("GGGG", 1), // 4 test: copy of validation, removed
            ("ACGT", 1), // 5 test: copy of train with another class
            ("TTTT", 1), // 6 test
        ]);
        let mut splits = [
            vec![whole(0, 4), whole(1, 4)],
            vec![whole(2, 4), whole(3, 4)],
            vec![whole(4, 4), whole(5, 4), whole(6, 4)],
        ];
        let counts = remove_duplicates(&loaded, &mut splits);
        assert_eq!(splits[0].len(), 2);
        assert_eq!(splits[1], vec![whole(3, 4)]);
        assert_eq!(splits[2], vec![whole(6, 4)]);
        assert_eq!(counts.kept_in_train, vec![[1, 0, 0], [0, 0, 0]]);
        assert_eq!(counts.removed, vec![[0, 1, 0], [0, 0, 2]]);
        assert_eq!(counts.conflicting_class, vec![[0, 0, 0], [0, 0, 1]]);
    }

    #[test]
    fn windows_of_one_record_are_compared_by_their_own_bases() {
        // Two windows of one record with equal bases (a tandem repeat) count as duplicates;
        // windows with different bases never do.
        let loaded = data(&[("ACGTACGTTT", 0)]);
        let mut splits = [
            vec![Window {
                record: 0,
                start: 0,
                len: 4,
            }],
            vec![
                Window {
                    record: 0,
                    start: 4,
                    len: 4,
                },
                Window {
                    record: 0,
                    start: 6,
                    len: 4,
                },
            ],
            vec![],
        ];
        let counts = remove_duplicates(&loaded, &mut splits);
        assert_eq!(counts.removed, vec![[0, 1, 0], [0, 0, 0]]);
        assert_eq!(splits[1].len(), 1);
        assert_eq!(splits[1][0].start, 6);
    }
}
