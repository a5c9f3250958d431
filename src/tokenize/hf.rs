//! `tokenizer.json` through the `tokenizers` crate (DNABERT-2, GENA-LM): the raw string, no
//! upper-casing; truncation as `PreTrainedTokenizerFast(..., truncation=True, max_length)`.

use std::path::Path;

use tokenizers::{PostProcessor, TruncationDirection};

use super::{Encoding, ModelFiles, TokenizerError};

#[derive(Debug, Clone)]
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    /// Special tokens the post-processor adds to one sequence (`[CLS]` + `[SEP]` = 2).
    added_tokens: usize,
    pad_id: u32,
    unk_id: u32,
    mask_id: u32,
    cls_id: u32,
    vocab_size: usize,
    model_max_length: usize,
}

impl HfTokenizer {
    pub(crate) fn from_file(path: &Path, files: &ModelFiles) -> Result<Self, TokenizerError> {
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|err| {
            TokenizerError::TokenizerJson {
                path: path.to_owned(),
                message: err.to_string(),
            }
        })?;
        // The pad id comes from the tokenizer (its padding section, else its pad token), never from
        // config.json: DNABERT-2's config says 0 (= [UNK]) while its tokenizer pads with [PAD] = 3.
        let padding_id = inner.get_padding().map(|p| p.pad_id);
        // Truncation and padding are applied per call (see `encode`), so the file's settings go.
        inner
            .with_truncation(None)
            .map_err(|err| TokenizerError::TokenizerJson {
                path: path.to_owned(),
                message: err.to_string(),
            })?;
        inner.with_padding(None);
        let token_id = |key: &str, defaults: &[&str]| -> Option<u32> {
            files
                .config_token(key)
                .into_iter()
                .chain(defaults.iter().map(|s| s.to_string()))
                .find_map(|name| inner.token_to_id(&name))
        };
        let missing = |what: &str| TokenizerError::TokenizerJson {
            path: path.to_owned(),
            message: format!(
                "no {what} token found (looked in tokenizer_config.json and for the usual names)"
            ),
        };
        let pad_id = padding_id
            .or_else(|| token_id("pad_token", &["[PAD]", "<pad>"]))
            .ok_or_else(|| missing("padding"))?;
        let unk_id =
            token_id("unk_token", &["[UNK]", "<unk>"]).ok_or_else(|| missing("unknown"))?;
        let mask_id =
            token_id("mask_token", &["[MASK]", "<mask>"]).ok_or_else(|| missing("mask"))?;
        let cls_id =
            token_id("cls_token", &["[CLS]", "<cls>", "<s>"]).ok_or_else(|| missing("[CLS]"))?;
        let added_tokens = inner
            .get_post_processor()
            .map(|p| p.added_tokens(false))
            .unwrap_or(0);
        Ok(HfTokenizer {
            vocab_size: inner.get_vocab_size(true),
            inner,
            added_tokens,
            pad_id,
            unk_id,
            mask_id,
            cls_id,
            model_max_length: files.model_max_length(),
        })
    }

    pub fn encode(&self, seq: &str, max_length: usize) -> Result<Encoding, TokenizerError> {
        let mut content = self
            .inner
            .encode(seq, false)
            .map_err(|err| TokenizerError::Encode(err.to_string()))?;
        // What `TokenizerImpl::post_process` does with truncation set: cut the sequence to
        // max_length minus the specials, then let the post-processor add them.
        content.truncate(
            max_length.saturating_sub(self.added_tokens),
            0,
            TruncationDirection::Right,
        );
        let full = self
            .inner
            .post_process(content, None, true)
            .map_err(|err| TokenizerError::Encode(err.to_string()))?;
        let mut out = Encoding::with_capacity(full.len());
        let mut previous_end = 0;
        for ((&id, &(start, end)), sequence) in full
            .get_ids()
            .iter()
            .zip(full.get_offsets())
            .zip(full.get_sequence_ids())
        {
            // Tokens added by the post-processor belong to no sequence and cover no input.
            if sequence.is_none() || end <= start {
                out.push(id, None);
                continue;
            }
            // A normalizer replacement (GENA: a run of >= 10 N becomes one `-`) aligns the token
            // with the run's last base only; the token stands for the whole run, so it takes the
            // gap back to the previous token unless that gap is whitespace the normalizer stripped.
            let gap = seq.get(previous_end..start).unwrap_or("");
            let start = if !gap.is_empty() && !gap.contains(char::is_whitespace) {
                previous_end
            } else {
                start
            };
            out.push(id, Some((start, end)));
            previous_end = end;
        }
        Ok(out)
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
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}
