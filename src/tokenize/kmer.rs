//! DNABERT (v1) tokenizer: upper-case, overlapping k-mers with stride 1, `[CLS] … [SEP]`.
//!
//! Reference: `seq.upper()` → k-mers `seq[i:i+k]` joined by spaces → `BertTokenizer(vocab.txt,
//! do_lower_case=False)`. Lower-casing is never applied whatever `tokenizer_config.json` says: no
//! k-mer exists in lower case, so every token would become `[UNK]`.
//! A k-mer of plain `ACGT` is looked up by 2-bit packing (no allocation); any other k-mer goes through
//! a small emulation of `BertTokenizer` (special-token split, whitespace/punctuation split,
//! whole-word lookup), which for DNA letters gives one `[UNK]`.

use std::collections::HashMap;
use std::path::Path;

use super::{Encoding, TokenizerError};

const NO_ID: u32 = u32::MAX;
const NOT_BASE: u8 = u8::MAX;
/// The five specials of every DNABERT vocab; BertTokenizer splits them out of the text first.
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// 2-bit code of a base (either case, since the reference upper-cases), `NOT_BASE` otherwise.
const BASE_CODE: [u8; 256] = {
    let mut table = [NOT_BASE; 256];
    table[b'A' as usize] = 0;
    table[b'C' as usize] = 1;
    table[b'G' as usize] = 2;
    table[b'T' as usize] = 3;
    table[b'a' as usize] = 0;
    table[b'c' as usize] = 1;
    table[b'g' as usize] = 2;
    table[b't' as usize] = 3;
    table
};

#[derive(Debug, Clone)]
pub struct KmerTokenizer {
    k: usize,
    /// Token id of every packed k-mer (`4^k` entries, `NO_ID` when the vocab lacks it).
    packed_to_id: Vec<u32>,
    vocab: HashMap<String, u32>,
    pad_id: u32,
    unk_id: u32,
    cls_id: u32,
    sep_id: u32,
    mask_id: u32,
    vocab_size: usize,
    model_max_length: usize,
}

impl KmerTokenizer {
    /// Builds from the lines of a DNABERT `vocab.txt`; k is the length of its k-mers.
    pub(crate) fn new(
        vocab_lines: &[String],
        path: &Path,
        model_max_length: usize,
    ) -> Result<Self, TokenizerError> {
        let bad = |message: String| TokenizerError::BadVocab {
            path: path.to_owned(),
            message,
        };
        let mut vocab = HashMap::with_capacity(vocab_lines.len());
        for (id, token) in vocab_lines.iter().enumerate() {
            // BertTokenizer keeps the last id of a duplicated line; so do we.
            vocab.insert(token.clone(), id as u32);
        }
        let special = |name: &str| {
            vocab
                .get(name)
                .copied()
                .ok_or_else(|| bad(format!("the DNABERT vocabulary has no {name} token")))
        };
        let (pad_id, unk_id, cls_id, sep_id, mask_id) = (
            special("[PAD]")?,
            special("[UNK]")?,
            special("[CLS]")?,
            special("[SEP]")?,
            special("[MASK]")?,
        );
        let kmers: Vec<(usize, &String)> = vocab_lines
            .iter()
            .enumerate()
            .filter(|(_, t)| !SPECIALS.contains(&t.as_str()) && !t.is_empty())
            .collect();
        let k = kmers.first().map(|(_, t)| t.len()).unwrap_or(0);
        if !(1..=8).contains(&k) {
            return Err(bad(format!(
                "expected k-mers of length 3 to 6 after the special tokens, found {k}-character entries"
            )));
        }
        let mut packed_to_id = vec![NO_ID; 1 << (2 * k)];
        for (line, token) in kmers {
            let Some(code) = pack(token.as_bytes()).filter(|_| token.len() == k) else {
                return Err(bad(format!(
                    "line {}: {token:?} is not a {k}-mer of A, C, G, T",
                    line + 1
                )));
            };
            packed_to_id[code] = vocab[token.as_str()];
        }
        Ok(KmerTokenizer {
            k,
            packed_to_id,
            vocab_size: vocab_lines.len(),
            vocab,
            pad_id,
            unk_id,
            cls_id,
            sep_id,
            mask_id,
            model_max_length,
        })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn encode(&self, seq: &str, max_length: usize) -> Encoding {
        // [CLS] and [SEP] count towards max_length, as in HF truncation.
        let max_content = max_length.saturating_sub(2);
        let n_kmers = seq.len().saturating_sub(self.k - 1);
        let mut out = Encoding::with_capacity(n_kmers.min(max_content) + 2);
        out.push(self.cls_id, None);
        if seq.is_ascii() {
            self.encode_ascii(seq.as_bytes(), max_content, &mut out);
        } else {
            self.encode_unicode(seq, max_content, &mut out);
        }
        out.push(self.sep_id, None);
        out
    }

    fn encode_ascii(&self, seq: &[u8], max_content: usize, out: &mut Encoding) {
        let k = self.k;
        if seq.len() < k {
            return;
        }
        let mask = (1usize << (2 * k)) - 1;
        let mut packed = 0usize;
        // Position after the last byte that is not a base; a k-mer starting before it is not plain ACGT.
        let mut clean_from = 0usize;
        for (pos, &byte) in seq.iter().enumerate() {
            let code = BASE_CODE[byte as usize];
            if code == NOT_BASE {
                clean_from = pos + 1;
            }
            packed = ((packed << 2) | (code & 3) as usize) & mask;
            if pos + 1 < k {
                continue;
            }
            if out.len() > max_content {
                return;
            }
            let start = pos + 1 - k;
            let span = Some((start, pos + 1));
            let id = if start >= clean_from {
                self.packed_to_id[packed]
            } else {
                NO_ID
            };
            if id != NO_ID {
                out.push(id, span);
            } else {
                let kmer: Vec<char> = seq[start..=pos]
                    .iter()
                    .map(|b| b.to_ascii_uppercase() as char)
                    .collect();
                self.push_unusual_kmer(&kmer, span, max_content, out);
            }
        }
    }

    /// Python's `str.upper()` and `seq[i:i+k]` work on code points; spans are code-point positions
    /// of the upper-cased text (the same as the input's for anything but exotic letters like `ß`).
    fn encode_unicode(&self, seq: &str, max_content: usize, out: &mut Encoding) {
        let upper: Vec<char> = seq.to_uppercase().chars().collect();
        if upper.len() < self.k {
            return;
        }
        for start in 0..=upper.len() - self.k {
            if out.len() > max_content {
                return;
            }
            let kmer = &upper[start..start + self.k];
            self.push_unusual_kmer(kmer, Some((start, start + self.k)), max_content, out);
        }
    }

    /// What BertTokenizer makes of one k-mer that is not plain `ACGT`: specials written literally are
    /// kept; control characters are dropped; the rest is split on whitespace and punctuation and
    /// each piece is its vocab id if the whole piece is in the vocab, else `[UNK]` (WordPiece finds
    /// no `##` continuations in a k-mer vocab).
    fn push_unusual_kmer(
        &self,
        kmer: &[char],
        span: Option<(usize, usize)>,
        max_content: usize,
        out: &mut Encoding,
    ) {
        let mut word = String::new();
        let mut i = 0;
        let push = |word: &mut String, out: &mut Encoding| {
            if !word.is_empty() && out.len() <= max_content {
                let id = self
                    .vocab
                    .get(word.as_str())
                    .copied()
                    .unwrap_or(self.unk_id);
                out.push(id, span);
            }
            word.clear();
        };
        while i < kmer.len() {
            if let Some(special) = SPECIALS.iter().find(|s| {
                let n = s.len();
                i + n <= kmer.len() && kmer[i..i + n].iter().copied().eq(s.chars())
            }) {
                push(&mut word, out);
                if out.len() <= max_content {
                    out.push(self.vocab[*special], span);
                }
                i += special.len();
                continue;
            }
            let c = kmer[i];
            if matches!(c, ' ' | '\t' | '\n' | '\r')
                || (!c.is_ascii() && c.is_whitespace() && !c.is_control())
            {
                push(&mut word, out);
            } else if c == '\0' || c == '\u{fffd}' || c.is_control() {
                // BertTokenizer._clean_text drops these.
            } else if c.is_ascii_punctuation() {
                push(&mut word, out);
                word.push(c);
                push(&mut word, out);
            } else {
                word.push(c);
            }
            i += 1;
        }
        push(&mut word, out);
    }

    pub fn model_max_length(&self) -> usize {
        self.model_max_length
    }
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
    pub fn mask_id(&self) -> u32 {
        self.mask_id
    }
    pub fn cls_id(&self) -> u32 {
        self.cls_id
    }
    pub fn sep_id(&self) -> u32 {
        self.sep_id
    }
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

/// 2-bit packing of an upper-case `ACGT` k-mer, first base in the highest bits.
fn pack(kmer: &[u8]) -> Option<usize> {
    kmer.iter().try_fold(0usize, |acc, &b| {
        if !b.is_ascii_uppercase() {
            return None;
        }
        match BASE_CODE[b as usize] {
            NOT_BASE => None,
            code => Some((acc << 2) | code as usize),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer(k: usize) -> KmerTokenizer {
        // The DNABERT order: specials, then product("ATCG").
        let mut lines: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        let mut kmers = vec![String::new()];
        for _ in 0..k {
            kmers = kmers
                .iter()
                .flat_map(|p| "ATCG".chars().map(move |c| format!("{p}{c}")))
                .collect();
        }
        lines.extend(kmers);
        KmerTokenizer::new(&lines, Path::new("vocab.txt"), 512).expect("valid vocab")
    }

    fn id_of(t: &KmerTokenizer, kmer: &str) -> u32 {
        t.vocab[kmer]
    }

    #[test]
    fn overlapping_kmers_with_spans() {
        let t = tokenizer(3);
        let enc = t.encode("acgTA", 512);
        let expected = vec![
            t.cls_id,
            id_of(&t, "ACG"),
            id_of(&t, "CGT"),
            id_of(&t, "GTA"),
            t.sep_id,
        ];
        assert_eq!(enc.input_ids, expected);
        assert_eq!(
            enc.spans,
            vec![None, Some((0, 3)), Some((1, 4)), Some((2, 5)), None]
        );
        assert_eq!(enc.attention_mask, vec![1; 5]);
    }

    #[test]
    fn unusual_kmers_follow_bert_tokenizer() {
        let t = tokenizer(3);
        // "A-C" splits into A, -, C: three [UNK]s; "A C" two; N gives one.
        let ids = t.encode("A-C", 512).input_ids;
        assert_eq!(ids, vec![t.cls_id, t.unk_id, t.unk_id, t.unk_id, t.sep_id]);
        let ids = t.encode("A C", 512).input_ids;
        assert_eq!(ids, vec![t.cls_id, t.unk_id, t.unk_id, t.sep_id]);
        let ids = t.encode("ANC", 512).input_ids;
        assert_eq!(ids, vec![t.cls_id, t.unk_id, t.sep_id]);
    }

    #[test]
    fn truncation_counts_special_tokens() {
        let t = tokenizer(4);
        let enc = t.encode(&"ACGT".repeat(10), 5);
        assert_eq!(enc.len(), 5);
        assert_eq!(enc.input_ids[4], t.sep_id);
        assert_eq!(enc.spans[3], Some((2, 6)));
    }

    #[test]
    fn rejects_a_vocab_that_is_not_kmers() {
        let mut lines: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        lines.extend(["AAA".to_string(), "AAXA".to_string()]);
        let err = KmerTokenizer::new(&lines, Path::new("v/vocab.txt"), 512).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("v/vocab.txt") && msg.contains("line 7"),
            "{msg}"
        );
    }
}
