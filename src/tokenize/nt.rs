//! Nucleotide Transformer tokenizer: transformers' `EsmTokenizer` rules on the raw string.
//!
//! Every vocab entry (the 6-mers, single `A C G T N`, and specials written literally such as
//! `<mask>`) is a no-split token: the text is cut greedily left to right by the longest vocab entry
//! starting at each position. Stretches that match nothing are split on whitespace and each piece
//! becomes ONE `<unk>`. The result is `<cls>` + tokens (+ `<eos>` only when `tokenizer_config.json`
//! names one). Because the specials contain only `<`, `>` and lower-case letters and the nucleotide
//! tokens only upper-case `ACGTN`, this position-by-position scan equals transformers' trie split.
//! On upper-case ACGTN it is InstaDeep's rule: split at N, non-overlapping 6-mers, single-base leftovers.

use std::collections::HashMap;
use std::path::Path;

use super::{Encoding, ModelFiles, TokenizerError};

const NO_ID: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct NtTokenizer {
    vocab: HashMap<String, u32>,
    longest_token_bytes: usize,
    /// Id of every upper-case ACGT 6-mer by 2-bit packing, for the common case without hashing.
    sixmer_ids: Vec<u32>,
    unk_id: u32,
    pad_id: u32,
    mask_id: u32,
    cls_id: u32,
    eos_id: Option<u32>,
    vocab_size: usize,
    model_max_length: usize,
}

impl NtTokenizer {
    pub(crate) fn new(
        vocab_lines: Vec<String>,
        path: &Path,
        files: &ModelFiles,
    ) -> Result<Self, TokenizerError> {
        let vocab_size = vocab_lines.len();
        let mut vocab = HashMap::with_capacity(vocab_size);
        for (id, token) in vocab_lines.into_iter().enumerate() {
            if !token.is_empty() {
                vocab.insert(token, id as u32);
            }
        }
        let special = |key: &str, default: &str| -> Result<u32, TokenizerError> {
            let name = files
                .config_token(key)
                .unwrap_or_else(|| default.to_owned());
            vocab
                .get(&name)
                .copied()
                .ok_or_else(|| TokenizerError::BadVocab {
                    path: path.to_owned(),
                    message: format!("the vocabulary has no {name} token ({key})"),
                })
        };
        let unk_id = special("unk_token", "<unk>")?;
        let pad_id = special("pad_token", "<pad>")?;
        let mask_id = special("mask_token", "<mask>")?;
        let cls_id = special("cls_token", "<cls>")?;
        // NT's Hub configs set `eos_token: null`: no <eos>. A missing tokenizer_config would make
        // EsmTokenizer append <eos>, an id without an embedding row in NT v1, so we never guess one.
        let eos_id = files
            .config_token("eos_token")
            .and_then(|name| vocab.get(&name).copied());
        let mut sixmer_ids = vec![NO_ID; 1 << 12];
        for (token, &id) in &vocab {
            if let Some(code) = pack6(token.as_bytes()) {
                sixmer_ids[code] = id;
            }
        }
        let longest_token_bytes = vocab.keys().map(String::len).max().unwrap_or(1);
        Ok(NtTokenizer {
            vocab,
            longest_token_bytes,
            sixmer_ids,
            unk_id,
            pad_id,
            mask_id,
            cls_id,
            eos_id,
            vocab_size,
            model_max_length: files.model_max_length(),
        })
    }

    pub fn encode(&self, seq: &str, max_length: usize) -> Encoding {
        let max_content = max_length.saturating_sub(1 + usize::from(self.eos_id.is_some()));
        let mut out = Encoding::with_capacity(seq.len() / 6 + 2);
        out.push(self.cls_id, None);
        let bytes = seq.as_bytes();
        let mut pos = 0;
        let mut unmatched_from: Option<usize> = None;
        while pos < bytes.len() && out.len() <= max_content {
            match self.longest_match(seq, pos) {
                Some((len, id)) => {
                    if let Some(from) = unmatched_from.take() {
                        self.push_unknown_pieces(seq, from, pos, max_content, &mut out);
                        if out.len() > max_content {
                            break;
                        }
                    }
                    out.push(id, Some((pos, pos + len)));
                    pos += len;
                }
                None => {
                    unmatched_from.get_or_insert(pos);
                    pos += utf8_len(bytes[pos]);
                }
            }
        }
        if let Some(from) = unmatched_from {
            self.push_unknown_pieces(seq, from, pos.min(bytes.len()), max_content, &mut out);
        }
        if let Some(eos) = self.eos_id {
            out.push(eos, None);
        }
        out
    }

    /// The longest vocab entry starting at byte `pos`, as (length in bytes, id).
    fn longest_match(&self, seq: &str, pos: usize) -> Option<(usize, u32)> {
        let bytes = seq.as_bytes();
        if self.longest_token_bytes <= 6 && pos + 6 <= bytes.len() {
            if let Some(code) = pack6(&bytes[pos..pos + 6]) {
                let id = self.sixmer_ids[code];
                if id != NO_ID {
                    return Some((6, id));
                }
            }
        }
        let max = self.longest_token_bytes.min(bytes.len() - pos);
        (1..=max).rev().find_map(|len| {
            let piece = seq.get(pos..pos + len)?;
            self.vocab.get(piece).map(|&id| (len, id))
        })
    }

    /// Text between matches: each whitespace-separated piece is one `<unk>`.
    fn push_unknown_pieces(
        &self,
        seq: &str,
        from: usize,
        to: usize,
        max_content: usize,
        out: &mut Encoding,
    ) {
        let stretch = &seq[from..to];
        let mut piece_start: Option<usize> = None;
        for (offset, c) in stretch
            .char_indices()
            .chain(std::iter::once((stretch.len(), ' ')))
        {
            if c.is_whitespace() {
                if let Some(start) = piece_start.take() {
                    if out.len() > max_content {
                        return;
                    }
                    out.push(self.unk_id, Some((from + start, from + offset)));
                }
            } else if piece_start.is_none() {
                piece_start = Some(offset);
            }
        }
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
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

fn utf8_len(first_byte: u8) -> usize {
    match first_byte {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// 2-bit packing of an upper-case ACGT 6-mer (`None` for anything else).
fn pack6(kmer: &[u8]) -> Option<usize> {
    if kmer.len() != 6 {
        return None;
    }
    kmer.iter().try_fold(0usize, |acc, &b| {
        let code = match b {
            b'A' => 0,
            b'C' => 1,
            b'G' => 2,
            b'T' => 3,
            _ => return None,
        };
        Some((acc << 2) | code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> NtTokenizer {
        let mut lines: Vec<String> = ["<unk>", "<pad>", "<mask>", "<cls>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        lines.push("ACGTAC".into());
        lines.extend(["A", "T", "C", "G", "N"].iter().map(|s| s.to_string()));
        let mut files = ModelFiles::default();
        files
            .tokenizer_config
            .insert("eos_token".into(), serde_json::Value::Null);
        NtTokenizer::new(lines, Path::new("vocab.txt"), &files).expect("valid vocab")
    }

    #[test]
    fn greedy_longest_match_and_unknown_pieces() {
        let t = tokenizer();
        // ACGTAC | N | "ry x" -> two <unk> pieces | A
        let enc = t.encode("ACGTACNry xA", 100);
        assert_eq!(enc.input_ids, vec![3, 4, 9, 0, 0, 5]);
        assert_eq!(
            enc.spans,
            vec![
                None,
                Some((0, 6)),
                Some((6, 7)),
                Some((7, 9)),
                Some((10, 11)),
                Some((11, 12))
            ]
        );
    }

    #[test]
    fn truncation_keeps_max_length_minus_cls() {
        let t = tokenizer();
        let enc = t.encode("ACGTACACGTACAAAA", 3);
        assert_eq!(enc.input_ids, vec![3, 4, 4]);
    }
}
