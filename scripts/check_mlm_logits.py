"""dnatune's masked-language-model logits next to transformers' for the same model folder.

    python scripts/check_mlm_logits.py MODEL_DIR SEQUENCES.fa [--dnatune PATH] [--tolerance 1e-4]

Runs `dnatune embed --mlm-logits` on the sequences, loads the folder with plain
`transformers.AutoModelForMaskedLM` and `AutoTokenizer` (no remote code), and compares the logits
at every real (non-padding) token. Prints the largest difference and exits non-zero when it
exceeds the tolerance or the two sides tokenize differently. Needs torch, transformers and
safetensors.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer


def read_fasta(path):
    records, current = [], []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(">"):
                if current:
                    records.append("".join(current))
                current = []
            elif line:
                current.append(line)
    if current:
        records.append("".join(current))
    return records


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("fasta")
    parser.add_argument("--dnatune", default=os.environ.get("DNATUNE", "target/release/dnatune"))
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=None)
    args = parser.parse_args()

    sequences = read_fasta(args.fasta)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ours.safetensors")
        command = [args.dnatune, "embed", "--model", args.model_dir, "--input", args.fasta,
                   "--out", out, "--mlm-logits", "--device", "cpu", "--pooling", "none"]
        if args.max_length:
            command += ["--max-length", str(args.max_length)]
        subprocess.run(command, check=True)
        ours = load_file(out)

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForMaskedLM.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
    kwargs = {"padding": True, "return_tensors": "pt"}
    if args.max_length:
        kwargs.update(truncation=True, max_length=args.max_length)
    batch = tokenizer(sequences, **kwargs)
    with torch.no_grad():
        theirs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    mask = batch["attention_mask"].bool()
    our_mask = ours["attention_mask"].bool()[:, : mask.shape[1]]
    if ours["mlm_logits"].shape[1] != mask.shape[1] or not torch.equal(mask, our_mask):
        sys.exit(f"tokenization differs: transformers {tuple(mask.shape)} tokens, "
                 f"dnatune {tuple(ours['attention_mask'].shape)}")
    diff = (ours["mlm_logits"][mask] - theirs[mask]).abs().max().item()
    print(f"{type(model).__name__} from {args.model_dir}: {len(sequences)} sequences, "
          f"{int(mask.sum())} tokens, {theirs.shape[-1]} logits each; "
          f"max |dnatune - transformers| = {diff:.3e} (tolerance {args.tolerance:.0e})")
    if diff > args.tolerance:
        sys.exit("logits differ beyond the tolerance")


if __name__ == "__main__":
    main()
