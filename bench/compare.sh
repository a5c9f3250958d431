#!/usr/bin/env bash
# LoRA fine-tuning and inference speed, dnatune next to PyTorch + transformers + PEFT, same
# job, same machine, same thread count. See bench/README.md.
#
#   bench/compare.sh [small|base|gena-base|nt-v2-50m]
#
# Environment:
#   CARGO_TARGET_DIR       where cargo builds (default: target/ in the repository)
#   DNATUNE_BENCH_THREADS  threads for both sides (default: all cores, `nproc`)
#   DNATUNE_BENCH_REPEATS  runs of each side; the table shows the medians (default 1)
#   DNATUNE_BENCH_VENV     an existing virtual environment with torch, transformers and peft
#                          (default: bench/.venv-torch, created and filled from PyPI on first use)
set -euo pipefail

size=${1:-small}
case "$size" in
small | base | gena-base | nt-v2-50m) ;;
*)
    echo "usage: $0 [small|base|gena-base|nt-v2-50m]" >&2
    exit 2
    ;;
esac
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
threads=${DNATUNE_BENCH_THREADS:-$(nproc)}
repeats=${DNATUNE_BENCH_REPEATS:-1}
target=${CARGO_TARGET_DIR:-$repo/target}
work="$target/lora_speed/$size"
venv=${DNATUNE_BENCH_VENV:-$repo/bench/.venv-torch}

if ! "$venv/bin/python" -c "import torch, transformers, peft" 2>/dev/null; then
    echo "creating $venv (PyPI torch, transformers, peft; a few GB, several minutes)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet torch transformers peft
fi

echo "building the dnatune benchmark (release)" >&2
cargo bench --bench lora_speed --no-run >&2
# The checkpoint and the token batches both sides use.
cargo bench --bench lora_speed -- --size "$size" --dir "$work" --prepare-only >&2

results="$work/results.jsonl"
: >"$results"
for run in $(seq "$repeats"); do
    echo "run $run/$repeats: dnatune ($threads threads)" >&2
    RAYON_NUM_THREADS=$threads cargo bench --bench lora_speed -- \
        --size "$size" --dir "$work" 2>/dev/null | grep '^RESULT ' | cut -c8- >>"$results"
    echo "run $run/$repeats: pytorch + peft ($threads threads)" >&2
    OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$venv/bin/python" bench/torch_lora.py \
        --dir "$work" --size "$size" --threads "$threads" 2>/dev/null |
        grep '^RESULT ' | cut -c8- >>"$results"
done

"$venv/bin/python" - "$results" "$size" "$threads" <<'PY'
import json, statistics, sys
path, size, threads = sys.argv[1:]
rows = [json.loads(line) for line in open(path) if line.strip()]
def med(side, key):
    values = [r[key] for r in rows if r["side"] == side]
    if not values:
        sys.exit(f"no result from {side}; rerun without 2>/dev/null in bench/compare.sh to see why")
    return statistics.median(values)
keys = [("train steps/s", "train_steps_per_s"), ("train sequences/s", "train_seq_per_s"),
        ("inference sequences/s", "infer_seq_per_s"), ("peak RSS, training (MB)", "peak_rss_mb")]
runs = sum(r["side"] == "dnatune" for r in rows)
print(f"\nsize {size}, {threads} threads, median of {runs} run(s) per side\n")
print(f"| {'':<24} | {'dnatune':>10} | {'pytorch+peft':>12} | {'ratio':>6} |")
print(f"|{'-'*26}|{'-'*12}:|{'-'*14}:|{'-'*7}:|")
ratios = {}
for label, key in keys:
    d, p = med("dnatune", key), med("pytorch", key)
    ratios[key] = d / p
    print(f"| {label:<24} | {d:>10.2f} | {p:>12.2f} | {d / p:>6.2f} |")
print(f"\nratio train={ratios['train_seq_per_s']:.2f} infer={ratios['infer_seq_per_s']:.2f} "
      f"peak_rss={ratios['peak_rss_mb']:.2f}")
PY
