#!/usr/bin/env python3
"""Check a dnatune training run end to end against Hugging Face transformers + PEFT.

`dnatune train` writes RUN/adapter/ (PEFT format) and RUN/dnatune.json; `dnatune predict` writes one row
of class probabilities per record. This script loads the same adapter the Python way

    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=n)
    model = PeftModel.from_pretrained(model, "RUN/adapter")

tokenizes the same records with the model's own Hugging Face tokenizer (truncation to dnatune.json's
max_length; DNABERT k-mer models get their input as space-separated overlapping k-mers, as the DNABERT
scripts do), and compares the softmax probabilities with dnatune's CSV. Runs without windowing only
(each record one input), as `dnatune train` does unless --window is given.

    dnatune train --model ../shared/fixtures/dnabert1/model --class a=a.fa --class b=b.fa --out RUN
    dnatune predict --adapter RUN a.fa b.fa --out predictions.csv
    python python/check_run_predictions.py RUN predictions.csv a.fa b.fa

Needs: torch, transformers, peft, safetensors (and, for families with remote model code, the `.py`
files in the base model folder). Exit status 0 when every probability agrees within --tolerance.
"""

import argparse
import csv
import gzip
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def read_fasta(path):
    opener = gzip.open if path.endswith(".gz") else open
    records, header, seq = [], None, []
    with opener(path, "rt") as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(">"):
                if header is not None:
                    records.append((header, "".join(seq)))
                header, seq = line[1:].split()[0] if line[1:].split() else "", []
            elif line:
                seq.append(line)
    if header is not None:
        records.append((header, "".join(seq)))
    return [(h, s.upper().replace("U", "T")) for h, s in records]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the dnatune run folder (holds adapter/ and dnatune.json)")
    parser.add_argument("predictions", help="the CSV dnatune predict wrote for FASTA")
    parser.add_argument("fasta", nargs="+", help="the FASTA files given to dnatune predict, in order")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--limit", type=int, default=200, help="check the first N records (default 200)")
    args = parser.parse_args()

    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = Path(args.run)
    bundle = json.loads((run / "dnatune.json").read_text())
    if bundle["window"].get("window_bp"):
        sys.exit("this check covers runs without --window")
    labels, max_length = bundle["labels"], bundle["max_length"]
    adapter_config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    base = adapter_config["base_model_name_or_path"]
    remote = bundle["family"] in ("dnabert2", "nucleotide_transformer_v2", "gena_lm")
    # DNABERT's tokenizer_config.json says do_lower_case: true, which would turn every k-mer into
    # [UNK]; its own scripts pass upper-case k-mers with lower-casing off.
    extra = {"do_lower_case": False} if bundle["tokenizer"] == "kmer" else {}
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=remote, **extra)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels), trust_remote_code=remote)
    model = PeftModel.from_pretrained(model, str(run / "adapter")).eval()

    kmer = None
    if bundle["tokenizer"] == "kmer":
        kmer = len(next(t for t in tokenizer.get_vocab() if t.isalpha() and t.isupper() and set(t) <= set("ACGTN")))

    records = [r for path in args.fasta for r in read_fasta(path)][: args.limit]
    with open(args.predictions, newline="") as handle:
        rows = list(csv.DictReader(handle))[: len(records)]
    worst = 0.0
    for (record_id, seq), row in zip(records, rows):
        if row["id"] != record_id:
            sys.exit(f"record order differs: {record_id} in FASTA, {row['id']} in the CSV")
        text = " ".join(seq[i : i + kmer] for i in range(len(seq) - kmer + 1)) if kmer else seq
        batch = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
        batch.pop("token_type_ids", None) if bundle["family"] != "dnabert" else None
        with torch.no_grad():
            probs = model(**batch).logits.softmax(-1)[0].tolist()
        for label, p in zip(labels, probs):
            worst = max(worst, abs(p - float(row[f"prob_{label}"])))
    ok = worst <= args.tolerance and not math.isnan(worst)
    print(f"{len(records)} records, max |probability difference| {worst:.2e} ({'ok' if ok else 'FAILED'})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
