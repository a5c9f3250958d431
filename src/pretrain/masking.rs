//! Masked-language-model inputs: which tokens are hidden and what replaces them.

use crate::model::lora::SeededRng;

/// Label of a position that is not predicted (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// What one masking decision covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskUnit {
    /// One token (non-overlapping tokenizers: NT 6-mers, BPE).
    Token,
    /// `k` consecutive tokens. With overlapping k-mers every base is in k tokens, so a lone
    /// masked k-mer can be read off its neighbours; masking k in a row hides its bases.
    Span(usize),
}

/// BERT's masking rule: `probability` of the maskable tokens are chosen; of those 80 % become
/// the mask token, 10 % a random token and 10 % stay as they are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskRule {
    pub probability: f64,
    pub unit: MaskUnit,
    pub mask_id: u32,
}

/// A masked sequence: the model's input and, per position, the id to predict or [`IGNORE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    pub input_ids: Vec<u32>,
    pub labels: Vec<i64>,
}

impl MaskRule {
    /// Masks `ids`; only positions with `maskable[i]` (not special tokens, not padding) are
    /// chosen. Random replacements are drawn from `replacements` (the ordinary tokens).
    /// At least one token is chosen whenever one is maskable, so every sequence has a loss.
    pub fn apply(
        &self,
        ids: &[u32],
        maskable: &[bool],
        replacements: &[u32],
        rng: &mut SeededRng,
    ) -> Masked {
        let candidates: Vec<usize> = (0..ids.len()).filter(|&i| maskable[i]).collect();
        let mut chosen = vec![false; ids.len()];
        if !candidates.is_empty() {
            let target = ((candidates.len() as f64 * self.probability).round() as usize).max(1);
            match self.unit {
                MaskUnit::Token => {
                    // A random `target`-subset (partial Fisher–Yates).
                    let mut pool = candidates.clone();
                    for n in 0..target.min(pool.len()) {
                        let pick = n + (rng.next_u64() % (pool.len() - n) as u64) as usize;
                        pool.swap(n, pick);
                        chosen[pool[n]] = true;
                    }
                }
                MaskUnit::Span(k) => {
                    let k = k.max(1);
                    let mut count = 0;
                    // Random span starts until enough tokens are covered; a span stops at
                    // the first unmaskable position (special tokens, padding).
                    let mut attempts = 0;
                    while count < target && attempts < 100 * candidates.len() {
                        attempts += 1;
                        let start = candidates[(rng.next_u64() % candidates.len() as u64) as usize];
                        for i in start..(start + k).min(ids.len()) {
                            if !maskable[i] {
                                break;
                            }
                            if !chosen[i] {
                                chosen[i] = true;
                                count += 1;
                            }
                        }
                    }
                }
            }
        }
        let mut input_ids = ids.to_vec();
        let mut labels = vec![IGNORE; ids.len()];
        for (i, &pick) in chosen.iter().enumerate() {
            if !pick {
                continue;
            }
            labels[i] = i64::from(ids[i]);
            let roll = rng.next_f64();
            if roll < 0.8 {
                input_ids[i] = self.mask_id;
            } else if roll < 0.9 && !replacements.is_empty() {
                input_ids[i] = replacements[(rng.next_u64() % replacements.len() as u64) as usize];
            }
        }
        Masked { input_ids, labels }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: u32 = 2;

    fn sequence(n: usize) -> (Vec<u32>, Vec<bool>) {
        // [CLS] t… [SEP]: ids 10.. for ordinary tokens, 0/1 for the specials.
        let mut ids = vec![0];
        ids.extend((0..n as u32).map(|i| 10 + i % 50));
        ids.push(1);
        let maskable = ids.iter().map(|&id| id >= 10).collect();
        (ids, maskable)
    }

    #[test]
    fn fifteen_percent_of_ordinary_tokens_with_the_80_10_10_rule() {
        let rule = MaskRule {
            probability: 0.15,
            unit: MaskUnit::Token,
            mask_id: MASK,
        };
        let replacements: Vec<u32> = (10..60).collect();
        let mut rng = SeededRng::new(1);
        let (mut chosen, mut masked, mut kept, mut replaced) = (0usize, 0usize, 0usize, 0usize);
        let mut maskable_total = 0;
        for _ in 0..400 {
            let (ids, maskable) = sequence(200);
            maskable_total += maskable.iter().filter(|&&m| m).count();
            let out = rule.apply(&ids, &maskable, &replacements, &mut rng);
            assert_eq!(out.input_ids[0], 0, "[CLS] is never masked");
            assert_eq!(*out.input_ids.last().unwrap(), 1, "[SEP] is never masked");
            for ((&id, &label), &input) in ids.iter().zip(&out.labels).zip(&out.input_ids) {
                if label == IGNORE {
                    assert_eq!(input, id, "an unchosen token changed");
                    continue;
                }
                assert_eq!(label, i64::from(id), "the label is the original");
                chosen += 1;
                match input {
                    MASK => masked += 1,
                    same if same == id => kept += 1,
                    _ => replaced += 1,
                }
            }
        }
        let fraction = chosen as f64 / maskable_total as f64;
        assert!((fraction - 0.15).abs() < 0.005, "chosen {fraction}");
        let share = |n: usize| n as f64 / chosen as f64;
        assert!((share(masked) - 0.8).abs() < 0.02, "mask {}", share(masked));
        // A random replacement may draw the original token (1 in 50 here).
        assert!(
            (share(replaced) - 0.1 * 0.98).abs() < 0.02,
            "random {}",
            share(replaced)
        );
        assert!(
            (share(kept) - 0.1 * 1.02).abs() < 0.02,
            "kept {}",
            share(kept)
        );
    }

    #[test]
    fn overlapping_kmers_are_masked_in_spans_of_k() {
        let rule = MaskRule {
            probability: 0.15,
            unit: MaskUnit::Span(6),
            mask_id: MASK,
        };
        let mut rng = SeededRng::new(3);
        let (ids, maskable) = sequence(300);
        let out = rule.apply(&ids, &maskable, &[], &mut rng);
        let chosen: Vec<bool> = out.labels.iter().map(|&l| l != IGNORE).collect();
        let count = chosen.iter().filter(|&&c| c).count();
        assert!((45..=50).contains(&count), "{count} of 300 chosen");
        // Every run of chosen tokens is at least 6 long unless it touches [CLS]/[SEP].
        let mut i = 0;
        while i < chosen.len() {
            if chosen[i] {
                let start = i;
                while i < chosen.len() && chosen[i] {
                    i += 1;
                }
                let touches_edge = start == 1 || i == chosen.len() - 1;
                assert!(
                    i - start >= 6 || touches_edge,
                    "a run of {} at {start}",
                    i - start
                );
            } else {
                i += 1;
            }
        }
    }

    #[test]
    fn a_short_sequence_still_gets_one_masked_token_and_seeds_repeat() {
        let rule = MaskRule {
            probability: 0.15,
            unit: MaskUnit::Token,
            mask_id: MASK,
        };
        let (ids, maskable) = sequence(3);
        let a = rule.apply(&ids, &maskable, &[10], &mut SeededRng::new(9));
        let b = rule.apply(&ids, &maskable, &[10], &mut SeededRng::new(9));
        assert_eq!(a, b);
        assert_eq!(a.labels.iter().filter(|&&l| l != IGNORE).count(), 1);
        let none = rule.apply(&[0, 1], &[false, false], &[], &mut SeededRng::new(9));
        assert!(none.labels.iter().all(|&l| l == IGNORE));
    }
}
