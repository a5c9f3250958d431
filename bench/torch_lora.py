"""The PyTorch + transformers + PEFT half of bench/compare.sh: the same job as
benches/lora_speed.rs on the checkpoint and token batches that it wrote into DIR.

    python bench/torch_lora.py --dir DIR --size small --threads 2

Prints one line `RESULT {json}` with train steps/s and sequences/s (median over the measured
steps, after warm-up), inference sequences/s (median over rounds) and the peak RSS of the
process after training (ru_maxrss).
"""

import argparse
import json
import resource
import statistics
import time

import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import BertForSequenceClassification

SIZES = {
    # warm-up steps, measured steps, inference batches, inference rounds
    "small": (3, 15, 16, 3),
    "base": (2, 6, 4, 3),
}
PAD_ID = 0


def pad(rows):
    """Right-pads token rows to their longest, as transformers' DataCollatorWithPadding."""
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def gemm_probe(size):
    """GFLOP/s of torch's f32 matmul on the shapes of the model's projections."""
    hidden, inner = (256, 1024) if size == "small" else (768, 3072)
    tokens = 16 * 128
    for k, n in [(hidden, hidden), (hidden, inner), (inner, hidden)]:
        x, w = torch.randn(tokens, k), torch.randn(k, n)
        seconds = []
        for _ in range(7):
            started = time.perf_counter()
            x @ w
            seconds.append(time.perf_counter() - started)
        gflops = 2 * tokens * k * n / statistics.median(seconds) / 1e9
        print("GEMM " + json.dumps({"side": "pytorch", "m": tokens, "k": k, "n": n, "gflops": round(gflops, 1)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--gemm", action="store_true", help="only time matmuls (GFLOP/s)")
    args = parser.parse_args()
    warmup, steps, infer_batches, infer_rounds = SIZES[args.size]
    if args.steps:
        steps = args.steps
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.gemm:
        gemm_probe(args.size)
        return

    with open(f"{args.dir}/batches.json") as f:
        batches = json.load(f)["batches"]
    model = BertForSequenceClassification.from_pretrained(args.dir, num_labels=2)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=8,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["query", "value"],
    )
    model = get_peft_model(model, config)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=1e-4,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.01,
    )

    model.train()
    step_seconds = []
    loss_value = 0.0
    for step, batch in enumerate(batches[: warmup + steps]):
        started = time.perf_counter()
        ids, mask = pad(batch["input_ids"])
        labels = torch.tensor(batch["labels"])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], 1.0
        )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if step >= warmup:
            step_seconds.append(time.perf_counter() - started)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    # Inference in order of length, as dnatune's predict does (less padding).
    rows = [row for b in batches[warmup + steps : warmup + steps + infer_batches] for row in b["input_ids"]]
    rows.sort(key=len)
    model.eval()
    round_seconds = []
    for _ in range(infer_rounds):
        started = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(rows), 16):
                ids, mask = pad(rows[i : i + 16])
                model(input_ids=ids, attention_mask=mask).logits.float().numpy()
        round_seconds.append(time.perf_counter() - started)

    step_s = statistics.median(step_seconds)
    round_s = statistics.median(round_seconds)
    result = {
        "side": "pytorch",
        "size": args.size,
        "threads": str(torch.get_num_threads()),
        "steps": len(step_seconds),
        "train_steps_per_s": round(1.0 / step_s, 4),
        "train_seq_per_s": round(16 / step_s, 3),
        "infer_seq_per_s": round(len(rows) / round_s, 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "last_loss": round(loss_value, 5),
        "versions": f"torch {torch.__version__}",
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
