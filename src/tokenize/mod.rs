//! DNA tokenizers: DNABERT k-mers, Nucleotide Transformer 6-mers, and `tokenizer.json` (DNABERT-2, GENA-LM).
