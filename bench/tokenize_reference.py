"""Tokenizer throughput of transformers' tokenizers, the reference for benches/tokenize_speed.rs.

    python bench/tokenize_reference.py SEQUENCES.txt ROUNDS NAME=MODEL_DIR ...

Encodes every line of SEQUENCES.txt (one sequence each) with the tokenizer a Python user of
each model loads, one sequence at a time, no truncation, and prints one line per tokenizer:
`RESULT<TAB>name<TAB>tokens<TAB>tokens/s` (best of ROUNDS). DNABERT: `BertTokenizer` with
`do_lower_case=False` on the space-separated overlapping k-mers (the conversion is timed, as a
user must do it); Nucleotide Transformer: `EsmTokenizer`; BPE models: the fast tokenizer from
`tokenizer.json`.
"""
import json
import os
import sys
import time

from transformers import AutoTokenizer, BertTokenizer, EsmTokenizer


def kmers(seq, k):
    return " ".join(seq[i : i + k] for i in range(len(seq) - k + 1))


def main():
    seq_file, rounds = sys.argv[1], int(sys.argv[2])
    sequences = [line.strip() for line in open(seq_file) if line.strip()]
    for spec in sys.argv[3:]:
        name, model_dir = spec.split("=", 1)
        config = json.load(open(os.path.join(model_dir, "config.json")))
        if os.path.exists(os.path.join(model_dir, "tokenizer.json")):
            tok = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
            encode = lambda s: tok(s)["input_ids"]
        elif config.get("model_type") == "esm":
            tok = EsmTokenizer.from_pretrained(model_dir)
            encode = lambda s: tok(s)["input_ids"]
        else:
            tok = BertTokenizer.from_pretrained(model_dir, do_lower_case=False)
            k = {69: 3, 261: 4, 1029: 5, 4101: 6}[len(tok.vocab)]
            encode = lambda s, k=k: tok(kmers(s, k))["input_ids"]
        best = float("inf")
        tokens = 0
        for _ in range(rounds):
            start = time.perf_counter()
            tokens = sum(len(encode(s)) for s in sequences)
            best = min(best, time.perf_counter() - start)
        print(f"RESULT\t{name}\t{tokens}\t{tokens / best}", flush=True)


if __name__ == "__main__":
    main()
