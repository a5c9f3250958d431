"""The PyTorch + transformers + PEFT half of bench/compare.sh and bench/gpu/verify.sh: the same
job as benches/lora_speed.rs on the checkpoint and token batches that it wrote into DIR.

    python bench/torch_lora.py --dir DIR --size small --threads 2
    python bench/torch_lora.py --dir DIR --size nt-v2-50m --device cuda --peak-tflops 989
    python bench/torch_lora.py --dir DIR --size nt-v2-50m --check-logits CHECK.safetensors

Prints one line `RESULT {json}` with train steps/s and sequences/s (median over the measured
steps, after warm-up), inference sequences/s (median over rounds) and peak memory: on the CPU
the peak RSS of the process after training (ru_maxrss); on a GPU both
`torch.cuda.max_memory_allocated()` (tensors only) and the card's total - free memory
(`torch.cuda.mem_get_info`, caching allocator and cuBLAS workspaces included) at its highest
after a training step, minus what was in use before the model was loaded: the measure the
dnatune side reports. On a GPU training and inference run under bf16 autocast (`--precision
f32` turns it off).

The nt-v2-50m shape is transformers' `EsmForSequenceClassification` with rotary positions whose
feed-forward is patched into Nucleotide Transformer v2's SwiGLU (`intermediate.dense` outputs
2 x intermediate, `silu(x1) * x2`, no biases), loaded from the safetensors file dnatune reads.

`--check-logits FILE` compares the f32 logits in FILE (written by `lora_speed --check-logits`,
with the head weights dnatune initialised) with this side's on the same inputs, prints one line
`CHECK {json}` and exits non-zero when they differ by more than `--tolerance`.
"""

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

# architecture, warm-up steps, measured steps, inference batches, inference rounds
# (the same as `size()` in benches/lora_speed.rs)
SIZES = {
    "small": ("bert", 3, 15, 16, 3),
    "base": ("bert", 2, 6, 4, 3),
    "gena-base": ("bert", 3, 10, 8, 3),
    "nt-v2-50m": ("nt_v2", 3, 10, 8, 3),
}
LORA_RANK = 8
NUM_LABELS = 2
FLOPS_FORMULA = (
    "train FLOPs = 2*proj + 3*(attn + lora + head); per sequence of T padded tokens: "
    "proj = 2*T*L*P (P = frozen projection weights per layer: BERT 4H^2+2HI, NT v2 4H^2+3HI; "
    "backward needs only their input gradient), attn = 4*T^2*H*L (QK^T and PV), "
    "lora = 2*T*L*4*H*r, head = 2*(H^2+H*labels) (backward 2x: both operands' gradients)"
)


def patch_esm_swiglu():
    """Nucleotide Transformer v2's feed-forward in transformers' ESM: `intermediate.dense`
    (no bias) outputs [x1 | x2] of width 2 x intermediate_size, the block computes
    `silu(x1) * x2`; `output.dense` has no bias either."""
    from transformers.models.esm import modeling_esm

    class SwiGluIntermediate(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.dense = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)

        def forward(self, hidden_states):
            x1, x2 = self.dense(hidden_states).chunk(2, dim=-1)
            return F.silu(x1) * x2

    class BiasFreeOutput(modeling_esm.EsmOutput):
        def __init__(self, config):
            super().__init__(config)
            self.dense = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    modeling_esm.EsmIntermediate = SwiGluIntermediate
    modeling_esm.EsmOutput = BiasFreeOutput


def load_model(directory, arch):
    """The checkpoint with a fresh 2-class head; fails unless every encoder weight came from
    the file (only the head, and ESM's unused contact head, may be initialised)."""
    if arch == "nt_v2":
        patch_esm_swiglu()
        from transformers import EsmForSequenceClassification as model_class

        allowed_new = ("classifier.", "esm.contact_head.")
    else:
        from transformers import BertForSequenceClassification as model_class

        allowed_new = ("classifier.",)
    model, info = model_class.from_pretrained(
        directory, num_labels=NUM_LABELS, output_loading_info=True
    )
    not_loaded = [k for k in info["missing_keys"] if not k.startswith(allowed_new)]
    if not_loaded or info["mismatched_keys"]:
        sys.exit(f"{directory}: weights not loaded from the checkpoint: {not_loaded + info['mismatched_keys']}")
    return model


def pad(rows, pad_id):
    """Right-pads token rows to their longest, as transformers' DataCollatorWithPadding."""
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def step_flops(config, arch, rows, padded_len):
    """FLOPs of one training step (see FLOPS_FORMULA; the same count as `StepFlops` in
    benches/lora_speed.rs). Returns (train, conventional 3 x forward)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    b, t = rows, padded_len
    frozen = 4 * h * h + (3 if arch == "nt_v2" else 2) * h * i
    projections = 2 * b * t * layers * frozen
    attention = 4 * b * t * t * h * layers
    trained = 2 * b * t * layers * 4 * h * LORA_RANK + 2 * b * (h * h + h * NUM_LABELS)
    return 2 * projections + 3 * (attention + trained), 3 * (projections + attention + trained)


def gemm_probe(args, device, sync):
    """GFLOP/s of torch's f32 matmul on the shapes of the model's projections."""
    hidden, inner = {"small": (256, 1024), "nt-v2-50m": (512, 2048)}.get(args.size, (768, 3072))
    tokens = args.batch_size * args.tokens
    for k, n in [(hidden, hidden), (hidden, inner), (inner, hidden)]:
        x, w = torch.randn(tokens, k, device=device), torch.randn(k, n, device=device)
        seconds = []
        for _ in range(7):
            sync()
            started = time.perf_counter()
            x @ w
            sync()
            seconds.append(time.perf_counter() - started)
        gflops = 2 * tokens * k * n / statistics.median(seconds) / 1e9
        print("GEMM " + json.dumps({"side": "pytorch", "m": tokens, "k": k, "n": n, "gflops": round(gflops, 1)}))


def check_logits(args, arch, device):
    from safetensors.torch import load_file

    torch.backends.cuda.matmul.allow_tf32 = False
    expected = load_file(args.check_logits)
    model = load_model(args.dir, arch).to(device).eval()
    head = {k[len("head.") :]: v for k, v in expected.items() if k.startswith("head.")}
    result = model.load_state_dict(head, strict=False)
    if result.unexpected_keys or not head:
        sys.exit(f"{args.check_logits}: head tensors {sorted(head)} do not fit the model")
    with torch.no_grad():
        logits = model(
            input_ids=expected["input_ids"].to(device),
            attention_mask=expected["attention_mask"].to(device),
        ).logits.float().cpu()
    diff = (logits - expected["logits"]).abs().max().item()
    scale = expected["logits"].abs().max().item()
    ok = diff <= args.tolerance
    print(
        "CHECK "
        + json.dumps(
            {
                "size": args.size,
                "device": str(device),
                "dtype": "f32",
                "sequences": logits.shape[0],
                "tokens": expected["input_ids"].shape[1],
                "max_abs_diff": diff,
                "max_abs_logit": scale,
                "tolerance": args.tolerance,
                "ok": ok,
                "dnatune_first_row": [round(x, 6) for x in expected["logits"][0].tolist()],
                "pytorch_first_row": [round(x, 6) for x in logits[0].tolist()],
            }
        ),
        flush=True,
    )
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "f32", "bf16"],
        help="auto: bf16 autocast on a GPU, f32 on the CPU",
    )
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak, for the fraction reached")
    parser.add_argument("--gemm", action="store_true", help="only time matmuls (GFLOP/s)")
    parser.add_argument("--check-logits", metavar="FILE")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="for --check-logits")
    args = parser.parse_args()
    arch, warmup, steps, infer_batches, infer_rounds = SIZES[args.size]
    if args.steps:
        steps = args.steps
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if args.precision == "bf16" and not on_gpu:
        sys.exit("--precision bf16 is for --device cuda (autocast on the GPU)")

    def sync():
        if on_gpu:
            torch.cuda.synchronize(device)

    with open(f"{args.dir}/batches.json") as f:
        data = json.load(f)
    batches = data["batches"]
    pad_id = data.get("pad_id", 0)
    args.batch_size = data.get("batch", 16)
    args.tokens = data.get("tokens", 128)
    if args.gemm:
        gemm_probe(args, device, sync)
        return 0
    if args.check_logits:
        return check_logits(args, arch, device)

    use_autocast = on_gpu and args.precision != "f32"

    def autocast():
        if use_autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    baseline = 0
    if on_gpu:
        torch.zeros(1, device=device)  # the CUDA context, as dnatune's baseline includes it
        sync()
        free, total = torch.cuda.mem_get_info(device)
        baseline = total - free
        torch.cuda.reset_peak_memory_stats(device)

    from peft import LoraConfig, TaskType, get_peft_model

    model = load_model(args.dir, arch)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=LORA_RANK,
        lora_alpha=LORA_RANK,
        lora_dropout=0.0,
        target_modules=["query", "value"],
    )
    model = get_peft_model(model, config).to(device)
    model_config = model.base_model.model.config
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    model.train()
    step_seconds = []
    measured_flops = measured_conventional = 0.0
    peak_in_use = baseline
    loss_value = 0.0
    for step, batch in enumerate(batches[: warmup + steps]):
        sync()
        started = time.perf_counter()
        ids, mask = pad(batch["input_ids"], pad_id)
        labels = torch.tensor(batch["labels"])
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        with autocast():
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        sync()
        seconds = time.perf_counter() - started
        if on_gpu:
            free, total = torch.cuda.mem_get_info(device)
            peak_in_use = max(peak_in_use, total - free)
        if step >= warmup:
            step_seconds.append(seconds)
            flops, conventional = step_flops(model_config, arch, ids.shape[0], ids.shape[1])
            measured_flops += flops
            measured_conventional += conventional
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    peak_allocated = torch.cuda.max_memory_allocated(device) if on_gpu else 0

    # Inference in order of length, as dnatune's predict does (less padding).
    rows = [row for b in batches[warmup + steps : warmup + steps + infer_batches] for row in b["input_ids"]]
    rows.sort(key=len)
    model.eval()
    round_seconds = []
    for _ in range(infer_rounds):
        sync()
        started = time.perf_counter()
        with torch.inference_mode(), autocast():
            for i in range(0, len(rows), args.batch_size):
                ids, mask = pad(rows[i : i + args.batch_size], pad_id)
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                logits.float().cpu().numpy()
        round_seconds.append(time.perf_counter() - started)

    step_s = statistics.median(step_seconds)
    round_s = statistics.median(round_seconds)
    measured_s = sum(step_seconds)
    train_tflops = measured_flops / measured_s / 1e12
    import peft
    import transformers

    result = {
        "side": "pytorch",
        "size": args.size,
        "device": torch.cuda.get_device_name(device) if on_gpu else "cpu",
        "autocast": "bf16" if use_autocast else "off (f32)",
        "tokens": args.tokens,
        "batch": args.batch_size,
        "gradient_checkpointing": args.gradient_checkpointing,
        "threads": str(torch.get_num_threads()),
        "steps": len(step_seconds),
        "train_steps_per_s": round(1.0 / step_s, 4),
        "train_seq_per_s": round(args.batch_size / step_s, 3),
        "infer_seq_per_s": round(len(rows) / round_s, 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "peak_gpu_mib": round((peak_in_use - baseline) / 2**20, 1) if on_gpu else None,
        "peak_torch_allocated_mib": round(peak_allocated / 2**20, 1) if on_gpu else None,
        "memory_measure": (
            "GPU total-free, peak after a step minus the baseline before loading; "
            "peak_torch_allocated_mib = torch.cuda.max_memory_allocated()"
            if on_gpu
            else "peak RSS of the process (ru_maxrss)"
        ),
        "train_tflops": round(train_tflops, 4),
        "train_tflops_conventional": round(measured_conventional / measured_s / 1e12, 4),
        "peak_tflops": args.peak_tflops,
        "peak_fraction": round(train_tflops / args.peak_tflops, 4) if args.peak_tflops else None,
        "last_loss": round(loss_value, 5),
        "versions": f"torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"transformers {transformers.__version__}, peft {peft.__version__}",
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
