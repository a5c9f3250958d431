#!/usr/bin/env bash
# Writes the bundled model's definition — config.json and the Nucleotide Transformer v2 tokenizer
# files — into DIR, for `dnatune pretrain --from-scratch --model DIR`:
#   scripts/bundled-model/template.sh DIR
# ESM with rotary positions and a GELU feed-forward (transformers' own EsmForMaskedLM, no remote
# code), 4 layers of width 160, 5 heads, tied input/output embeddings: 1.9 M parameters, 7.7 MB
# in float32. Vocabulary: 6 special tokens, the 4,096 6-mers over ATCG (in NT v2's order), then
# A T C G N for the bases left over at a sequence's end.
set -euo pipefail

dir=${1:?usage: template.sh DIR}
mkdir -p "$dir"

cat > "$dir/config.json" <<'JSON'
{
  "architectures": ["EsmForMaskedLM"],
  "attention_probs_dropout_prob": 0.0,
  "emb_layer_norm_before": false,
  "hidden_dropout_prob": 0.0,
  "hidden_size": 160,
  "initializer_range": 0.02,
  "intermediate_size": 640,
  "layer_norm_eps": 1e-12,
  "mask_token_id": 2,
  "max_position_embeddings": 512,
  "model_type": "esm",
  "num_attention_heads": 5,
  "num_hidden_layers": 4,
  "pad_token_id": 1,
  "position_embedding_type": "rotary",
  "tie_word_embeddings": true,
  "token_dropout": false,
  "torch_dtype": "float32",
  "vocab_size": 4107
}
JSON

cat > "$dir/tokenizer_config.json" <<'JSON'
{
  "clean_up_tokenization_spaces": true,
  "eos_token": null,
  "model_max_length": 512,
  "tokenizer_class": "EsmTokenizer"
}
JSON

cat > "$dir/special_tokens_map.json" <<'JSON'
{
  "cls_token": "<cls>",
  "mask_token": "<mask>",
  "pad_token": "<pad>",
  "unk_token": "<unk>"
}
JSON

{
    printf '%s\n' '<unk>' '<pad>' '<mask>' '<cls>' '<eos>' '<bos>'
    bases=(A T C G)
    for a in "${bases[@]}"; do for b in "${bases[@]}"; do for c in "${bases[@]}"; do
        for d in "${bases[@]}"; do for e in "${bases[@]}"; do for f in "${bases[@]}"; do
            printf '%s\n' "$a$b$c$d$e$f"
        done; done; done
    done; done; done
    printf 'A\nT\nC\nG\nN'
} > "$dir/vocab.txt"
echo "$dir"
