//! DNA tokenizers: DNABERT k-mers, Nucleotide Transformer 6-mers, and `tokenizer.json` (DNABERT-2, GENA-LM).
//!
//! One [`Tokenizer`] type over the kinds, built from a model folder in Hub layout with
//! [`Tokenizer::from_model_dir`]. Every kind reproduces the reference pipeline of its family exactly
//! (see `fixtures/README.md`): the ids, the attention mask, truncation to `max_length` counting the
//! special tokens (as Hugging Face does), right padding for batches, and a token → bp span map.

mod hf;
mod kmer;
mod nt;

use std::path::{Path, PathBuf};

pub use hf::HfTokenizer;
pub use kmer::KmerTokenizer;
pub use nt::NtTokenizer;

/// `[start, end)` character (bp) positions of the input that one token covers.
pub type Span = (usize, usize);

/// One tokenized sequence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoding {
    pub input_ids: Vec<u32>,
    /// 1 for a real token (special tokens included), 0 for padding.
    pub attention_mask: Vec<u32>,
    /// For each token the `[start, end)` range of the input it covers; `None` for special tokens
    /// (`[CLS]`, `[SEP]`, `<cls>`) and padding.
    pub spans: Vec<Option<Span>>,
}

impl Encoding {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Pads on the right to `len` tokens with `pad_id` (mask 0, no span); never shortens.
    pub fn pad_to(&mut self, len: usize, pad_id: u32) {
        if self.input_ids.len() < len {
            self.input_ids.resize(len, pad_id);
            self.attention_mask.resize(len, 0);
            self.spans.resize(len, None);
        }
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Encoding {
            input_ids: Vec::with_capacity(n),
            attention_mask: Vec::with_capacity(n),
            spans: Vec::with_capacity(n),
        }
    }

    pub(crate) fn push(&mut self, id: u32, span: Option<Span>) {
        self.input_ids.push(id);
        self.attention_mask.push(1);
        self.spans.push(span);
    }
}

/// Which tokenizer family a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// DNABERT: overlapping k-mers (k = 3..6) from `vocab.txt`.
    Kmer,
    /// Nucleotide Transformer: non-overlapping 6-mers from `vocab.txt` (`EsmTokenizer`).
    Nt6mer,
    /// A `tokenizer.json` (BPE for DNABERT-2 and GENA-LM).
    TokenizerJson,
}

impl TokenizerKind {
    pub fn label(self) -> &'static str {
        match self {
            TokenizerKind::Kmer => "overlapping k-mer",
            TokenizerKind::Nt6mer => "6-mer (non-overlapping)",
            TokenizerKind::TokenizerJson => "BPE (tokenizer.json)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{dir} holds no tokenizer: expected tokenizer.json or vocab.txt (a model folder in Hugging Face Hub layout)"
    )]
    NoTokenizerFiles { dir: PathBuf },
    #[error("{path}: {message}")]
    BadVocab { path: PathBuf, message: String },
    #[error("cannot load {path}: {message}")]
    TokenizerJson { path: PathBuf, message: String },
    #[error("tokenizing failed: {0}")]
    Encode(String),
}

/// A model's tokenizer. Cheap to share across threads (`Send + Sync`).
#[derive(Debug, Clone)]
pub enum Tokenizer {
    Kmer(KmerTokenizer),
    Nt(NtTokenizer),
    Hf(Box<HfTokenizer>),
}

/// What the tokenizer needs to know from `config.json` and `tokenizer_config.json`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelFiles {
    pub model_type: Option<String>,
    pub max_position_embeddings: Option<usize>,
    /// `tokenizer_config.json` as parsed (an empty object when absent).
    pub tokenizer_config: serde_json::Map<String, serde_json::Value>,
}

impl ModelFiles {
    fn read(dir: &Path) -> Result<Self, TokenizerError> {
        let config = read_json_object(&dir.join("config.json"))?;
        let tokenizer_config =
            read_json_object(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
        let config = config.unwrap_or_default();
        Ok(ModelFiles {
            model_type: config
                .get("model_type")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            max_position_embeddings: config
                .get("max_position_embeddings")
                .and_then(|v| v.as_u64())
                .map(|v| v as usize),
            tokenizer_config,
        })
    }

    /// The tokenizer's own maximum (`model_max_length`, or DNABERT's legacy `max_len`) when it is a
    /// real limit; transformers writes a huge sentinel (1e30) when there is none.
    fn tokenizer_max_length(&self) -> Option<usize> {
        ["model_max_length", "max_len"].iter().find_map(|key| {
            let value = self.tokenizer_config.get(*key)?.as_f64()?;
            (1.0..=1_000_000.0)
                .contains(&value)
                .then_some(value as usize)
        })
    }

    /// The default `max_length`: the tokenizer's limit when sane, else the position table minus what
    /// the family reserves (ESM keeps the first two rows for padding offsets: 1002 → 1000).
    fn model_max_length(&self) -> usize {
        if let Some(max) = self.tokenizer_max_length() {
            return max;
        }
        let reserved = if self.model_type.as_deref() == Some("esm") {
            2
        } else {
            0
        };
        match self.max_position_embeddings {
            Some(n) if n > reserved => n - reserved,
            _ => 512,
        }
    }

    /// A special token named in `tokenizer_config.json` (a string or an `AddedToken` object); `None`
    /// when absent or null.
    fn config_token(&self, key: &str) -> Option<String> {
        match self.tokenizer_config.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(map) => map.get("content")?.as_str().map(str::to_owned),
            _ => None,
        }
    }
}

fn read_json_object(
    path: &Path,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, TokenizerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenizerError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Ok(Some(Default::default())),
        Err(source) => Err(TokenizerError::Json {
            path: path.to_owned(),
            source,
        }),
    }
}

pub(crate) fn read_vocab(path: &Path) -> Result<Vec<String>, TokenizerError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: path.to_owned(),
        source,
    })?;
    // One token per line; the NT v2 Hub file has no trailing newline, DNABERT's has one.
    Ok(text
        .lines()
        .map(|line| line.trim_end_matches('\r').to_owned())
        .collect())
}

impl Tokenizer {
    /// Builds the tokenizer of a model folder in Hub layout, detecting the kind from its files:
    /// `tokenizer.json` → Hugging Face tokenizer; `vocab.txt` with `<cls>` (or `model_type: esm`) →
    /// Nucleotide Transformer; `vocab.txt` with `[CLS]` and k-mers → DNABERT with k from the vocab.
    pub fn from_model_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let files = ModelFiles::read(dir)?;
        let tokenizer_json = dir.join("tokenizer.json");
        if tokenizer_json.is_file() {
            return Ok(Tokenizer::Hf(Box::new(HfTokenizer::from_file(
                &tokenizer_json,
                &files,
            )?)));
        }
        let vocab_path = dir.join("vocab.txt");
        if !vocab_path.is_file() {
            return Err(TokenizerError::NoTokenizerFiles {
                dir: dir.to_owned(),
            });
        }
        let vocab = read_vocab(&vocab_path)?;
        let is_nt =
            vocab.iter().any(|t| t == "<cls>") || files.model_type.as_deref() == Some("esm");
        if is_nt {
            Ok(Tokenizer::Nt(NtTokenizer::new(vocab, &vocab_path, &files)?))
        } else if vocab.iter().any(|t| t == "[CLS]") {
            Ok(Tokenizer::Kmer(KmerTokenizer::new(
                &vocab,
                &vocab_path,
                files.model_max_length(),
            )?))
        } else {
            Err(TokenizerError::BadVocab {
                path: vocab_path,
                message: "neither a DNABERT k-mer vocabulary (with [CLS]) nor a Nucleotide \
                          Transformer vocabulary (with <cls>)"
                    .into(),
            })
        }
    }

    pub fn kind(&self) -> TokenizerKind {
        match self {
            Tokenizer::Kmer(_) => TokenizerKind::Kmer,
            Tokenizer::Nt(_) => TokenizerKind::Nt6mer,
            Tokenizer::Hf(_) => TokenizerKind::TokenizerJson,
        }
    }

    /// Tokenizes one sequence, truncated to `max_length` tokens counting the special tokens
    /// (`None` = [`Self::model_max_length`]). No padding.
    pub fn encode(&self, seq: &str, max_length: Option<usize>) -> Result<Encoding, TokenizerError> {
        let max_length = max_length.unwrap_or_else(|| self.model_max_length());
        match self {
            Tokenizer::Kmer(t) => Ok(t.encode(seq, max_length)),
            Tokenizer::Nt(t) => Ok(t.encode(seq, max_length)),
            Tokenizer::Hf(t) => t.encode(seq, max_length),
        }
    }

    /// Tokenizes each sequence, then right-pads all to the longest with [`Self::pad_id`].
    pub fn encode_batch<S: AsRef<str>>(
        &self,
        seqs: &[S],
        max_length: Option<usize>,
    ) -> Result<Vec<Encoding>, TokenizerError> {
        let mut encodings = seqs
            .iter()
            .map(|s| self.encode(s.as_ref(), max_length))
            .collect::<Result<Vec<_>, _>>()?;
        let longest = encodings.iter().map(Encoding::len).max().unwrap_or(0);
        let pad_id = self.pad_id();
        for encoding in &mut encodings {
            encoding.pad_to(longest, pad_id);
        }
        Ok(encodings)
    }

    /// The default `max_length`: the longest input the model takes, special tokens included.
    pub fn model_max_length(&self) -> usize {
        match self {
            Tokenizer::Kmer(t) => t.model_max_length(),
            Tokenizer::Nt(t) => t.model_max_length(),
            Tokenizer::Hf(t) => t.model_max_length(),
        }
    }

    pub fn pad_id(&self) -> u32 {
        match self {
            Tokenizer::Kmer(t) => t.pad_id(),
            Tokenizer::Nt(t) => t.pad_id(),
            Tokenizer::Hf(t) => t.pad_id(),
        }
    }

    pub fn mask_id(&self) -> u32 {
        match self {
            Tokenizer::Kmer(t) => t.mask_id(),
            Tokenizer::Nt(t) => t.mask_id(),
            Tokenizer::Hf(t) => t.mask_id(),
        }
    }

    pub fn cls_id(&self) -> u32 {
        match self {
            Tokenizer::Kmer(t) => t.cls_id(),
            Tokenizer::Nt(t) => t.cls_id(),
            Tokenizer::Hf(t) => t.cls_id(),
        }
    }

    pub fn unk_id(&self) -> u32 {
        match self {
            Tokenizer::Kmer(t) => t.unk_id(),
            Tokenizer::Nt(t) => t.unk_id(),
            Tokenizer::Hf(t) => t.unk_id(),
        }
    }

    /// Number of token ids (the tokenizer's vocabulary, added tokens included). It can exceed the
    /// model's embedding rows: NT v1 lists `<eos>`/`<bos>` without rows for them.
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Kmer(t) => t.vocab_size(),
            Tokenizer::Nt(t) => t.vocab_size(),
            Tokenizer::Hf(t) => t.vocab_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Training and embedding tokenize on worker threads.
    #[test]
    fn tokenizer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::Tokenizer>();
    }
}
