#!/usr/bin/env bash
# dnatune on a GPU: golden parity tests on the device, a logits check against PyTorch, and
# LoRA training/inference speed and memory next to PyTorch + PEFT. Runs on the GPU machine
# from the repository root, with gpu-kit/ (made by bench/gpu/build-kit.sh) beside it; needs
# Python with PyTorch (CUDA 13 build), nothing else. See bench/gpu/README.md.
#
#   bash bench/gpu/verify.sh
#
# Environment:
#   DNATUNE_KIT_DEVICE       cuda:0 (default), cuda:N, or cpu for a dry run with a CPU kit
#   DNATUNE_KIT_SIZES        model shapes to benchmark (default: "gena-base nt-v2-50m"; on
#                            the CPU "small nt-v2-50m")
#   DNATUNE_KIT_RUNS         TOKENS:BATCH pairs per shape (default: "128:32 512:8"; CPU "32:4")
#   DNATUNE_KIT_STEPS        measured training steps per run, after 3 warm-up steps
#                            (default: 20; CPU 2)
#   DNATUNE_KIT_PEAK_TFLOPS  the card's dense bf16 peak in TFLOP/s (default: from its name:
#                            H100 SXM and H200 989, H100 NVL and H200 NVL 835, H100 PCIe 756,
#                            A100 312; none elsewhere)
#   DNATUNE_KIT_WHEELS       auto (default: unpack the kit's wheels only when `import
#                            transformers, peft` fails), always, or never
#   DNATUNE_KIT_DIR          the kit (default: gpu-kit/ in the repository)
#   PYTHON                   the Python with PyTorch (default: python3)
#   OUT                      when set, the report also goes to $OUT/gpu-report.md
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
kit=${DNATUNE_KIT_DIR:-$repo/gpu-kit}
device=${DNATUNE_KIT_DEVICE:-cuda:0}
python=${PYTHON:-python3}
tests=(golden_lora golden_bert golden_esm golden_dnabert2)
if [[ $device == cpu ]]; then
    sizes=${DNATUNE_KIT_SIZES:-small nt-v2-50m}
    runs=${DNATUNE_KIT_RUNS:-32:4}
    steps=${DNATUNE_KIT_STEPS:-2}
else
    sizes=${DNATUNE_KIT_SIZES:-gena-base nt-v2-50m}
    runs=${DNATUNE_KIT_RUNS:-128:32 512:8}
    steps=${DNATUNE_KIT_STEPS:-20}
fi
started=$SECONDS

fail() {
    failed=1
    echo
    echo "VERIFY FAILED: $*"
    exit 1
}

# The logs go to $OUT/verify-logs/; the scratch folder (checkpoints: about 600 MB) is removed
# unless the run failed or DNATUNE_KIT_KEEP is set.
finish() {
    if [[ -n ${OUT:-} && -d ${work:-}/logs ]]; then
        rm -rf "$OUT/verify-logs"
        cp -r "$work/logs" "$OUT/verify-logs"
    fi
    if [[ -n ${work:-} ]]; then
        if [[ -n ${failed:-} || -n ${DNATUNE_KIT_KEEP:-} ]]; then
            echo "scratch folder kept: $work"
        else
            rm -rf "$work"
        fi
    fi
}

section() {
    echo
    echo "## $* ($((SECONDS - started)) s)"
    echo
}

# Runs a command with its output in $work/logs/NAME.log; on failure shows the end of the log.
logged() {
    local name=$1 limit=$2
    shift 2
    local log=$work/logs/$name.log
    if ! timeout "$limit" "$@" >"$log" 2>&1; then
        echo '```'
        tail -n 60 "$log"
        echo '```'
        fail "$name (end of its log above; the whole log: $log${OUT:+, $OUT/verify-logs/$name.log})"
    fi
}

# Puts the CUDA libraries PyTorch's wheels ship (or a system toolkit's) on LD_LIBRARY_PATH
# and checks that every library the binaries need is found.
cuda_libraries() {
    local dirs
    dirs=$("$python" - <<'PY'
import glob, os, site, sys
dirs, roots = [], []
try:
    import torch
    dirs.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
    roots.append(os.path.dirname(os.path.dirname(torch.__file__)))
except Exception as e:
    print(f"cannot import torch: {e}", file=sys.stderr)
try:
    import nvidia
    roots += [os.path.dirname(p) for p in nvidia.__path__]
except Exception:
    pass
roots += site.getsitepackages() + [site.getusersitepackages()]
for root in dict.fromkeys(roots):
    # nvidia/cu13/lib (CUDA 13 wheels) or nvidia/cublas/lib, nvidia/cuda_runtime/lib, ...
    dirs += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")))
print(":".join(d for d in dict.fromkeys(dirs) if os.path.isdir(d)))
PY
    )
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        if [[ -d $d ]]; then dirs=${dirs:+$dirs:}$d; fi
    done
    export LD_LIBRARY_PATH=${dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    local linked
    linked=$(ldd "$bin/dnatune")
    if grep -q 'libcurand.so.10 => not found' <<<"$linked"; then
        export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$work/lib/curand-stub
        echo
        echo "No libcurand.so.10 here (PyTorch's CUDA 13 wheels ship none): using the kit's" \
            "stand-in, which lets candle create its generator and fails any GPU random draw" \
            "(dnatune draws its random numbers on the CPU)."
    fi
    local missing
    missing=$(for b in "$bin"/*; do ldd "$b" | awk '/not found/ {print $1}'; done | sort -u)
    if [[ -n $missing ]]; then
        "$python" -c 'import torch; print("PyTorch", torch.__version__, "built for CUDA", torch.version.cuda)' || true
        fail "libraries not found: $missing. The kit's binaries need CUDA 13 libraries" \
            "(libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libnvrtc.so.13) as PyTorch's" \
            "CUDA 13 wheels ship them, and the driver's libcuda.so.1"
    fi
    echo
    ldd "$bin/dnatune" | grep -E 'libcuda|libcublas|libcurand|libnvrtc' || true
}

# The kit's wheels that fit this Python, unpacked into a throw-away folder on PYTHONPATH.
python_packages() {
    "$python" -c 'import torch' || fail "$python cannot import torch (set PYTHON to the Python with PyTorch)"
    local mode=${DNATUNE_KIT_WHEELS:-auto}
    if [[ $mode == always ]] || { [[ $mode == auto ]] && ! "$python" -c 'import transformers, peft' 2>/dev/null; }; then
        echo "unpacking the kit's wheels into $work/python:"
        "$python" - "$kit/wheels" "$work/python" <<'PY'
import os, re, sys, zipfile
wheels, target = sys.argv[1:]
minor = sys.version_info.minor
chosen = {}
for name in sorted(os.listdir(wheels)):
    if not name.endswith(".whl"):
        continue
    parts = name[:-4].split("-")
    dist, pys, abis, plats = parts[0].lower(), *(p.split(".") for p in parts[-3:])
    if not any(p == "any" or (p.startswith("manylinux") and p.endswith("x86_64")) for p in plats):
        continue
    fits = False
    for py in pys:
        if py == "py3":
            fits = True
        m = re.fullmatch(r"cp3(\d+)", py)
        if m and (("abi3" in abis and int(m.group(1)) <= minor) or int(m.group(1)) == minor):
            fits = True
    if fits:
        chosen[dist] = name
for dist, name in sorted(chosen.items()):
    zipfile.ZipFile(os.path.join(wheels, name)).extractall(target)
    print("  " + name)
PY
        export PYTHONPATH=$work/python${PYTHONPATH:+:$PYTHONPATH}
    fi
    "$python" -c 'import numpy' || fail "$python has no numpy, which transformers needs (the kit carries none)"
    "$python" -c 'import transformers, peft' || fail "transformers and peft cannot be imported"
    "$python" -c 'import sys, torch, transformers, peft
print(f"Python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}, GPU available: {torch.cuda.is_available()}), transformers {transformers.__version__}, peft {peft.__version__}")'
}

peak_from_name() {
    case "$1" in
    *H200*NVL* | *H100*NVL*) echo 835 ;;
    *H200* | *H100*SXM* | *H100*HBM3*) echo 989 ;;
    *H100*PCIe*) echo 756 ;;
    *A100*) echo 312 ;;
    *) echo "" ;;
    esac
}

main() {
    echo "# dnatune GPU verification"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(hostname), device $device"
    [[ -f $kit/bin.tar.xz && -d $kit/fixtures && -f $kit/kit.json ]] ||
        fail "no kit in $kit: run bench/gpu/build-kit.sh on the build machine and bring gpu-kit/ along"
    echo
    echo "kit: $(tr -d '\n' <"$kit/kit.json" | tr -s ' ')"
    echo
    local features
    features=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["features"])' "$kit/kit.json")

    work=$(mktemp -d "${TMPDIR:-/tmp}/dnatune-kit.XXXXXX")
    trap finish EXIT
    mkdir -p "$work/logs"
    tar -xJf "$kit/bin.tar.xz" -C "$work"
    bin=$work/bin
    echo "unpacked into $work"

    if [[ $features == *cuda* ]]; then
        section "CUDA libraries"
        echo '```'
        cuda_libraries
        echo '```'
    fi
    local gpu_name=""
    if [[ $device == cpu ]]; then
        section "Device"
        echo "CPU dry run: $(nproc) threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
        RAYON_NUM_THREADS=$(nproc)
        export RAYON_NUM_THREADS
    else
        [[ $features == *cuda* ]] ||
            fail "this kit was built without CUDA (features '$features'): build it with bench/gpu/build-kit.sh, or use DNATUNE_KIT_DEVICE=cpu"
        section "nvidia-smi"
        echo '```'
        nvidia-smi || fail "nvidia-smi failed: no NVIDIA driver?"
        echo '```'
        local ordinal=${device#cuda}
        ordinal=${ordinal#:}
        gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader -i "${ordinal:-0}" | head -n1)
    fi

    section "Python"
    echo '```'
    python_packages
    echo '```'

    section "Golden parity tests on $device"
    for t in "${tests[@]}"; do
        logged "$t" 300 env DNATUNE_TEST_DEVICE="$device" DNATUNE_SHARED="$kit" "$bin/$t" --show-output
        if grep -q SKIPPED "$work/logs/$t.log"; then
            grep SKIPPED "$work/logs/$t.log"
            fail "$t skipped tests: the kit's fixtures were not found"
        fi
        echo "### $t"
        echo
        echo '```'
        grep -E 'max \|diff\||logits max|^test result' "$work/logs/$t.log" || true
        echo '```'
    done

    local peak=${DNATUNE_KIT_PEAK_TFLOPS:-$(peak_from_name "$gpu_name")}
    local threads=()
    if [[ $device == cpu ]]; then threads=(--threads "$(nproc)"); fi
    local results=$work/results.jsonl checks=$work/checks.jsonl
    : >"$results"
    : >"$checks"
    section "Benchmark: dnatune next to PyTorch + PEFT"
    echo "shapes: $sizes; tokens:batch $runs; $steps measured steps after 3 warm-up;" \
        "bf16 peak: ${peak:-unknown} TFLOP/s"
    for size in $sizes; do
        local dir=$work/models/$size checked=""
        for run in $runs; do
            local tokens=${run%%:*} batch=${run##*:}
            local shape=(--size "$size" --dir "$dir" --tokens "$tokens" --batch "$batch" --steps "$steps")
            logged "prepare-$size-${tokens}x$batch" 300 "$bin/lora_speed" "${shape[@]}" --prepare-only
            if [[ -z $checked ]]; then
                # Same checkpoint, same inputs, f32 on the device: the two sides must agree.
                logged "check-dnatune-$size" 300 "$bin/lora_speed" "${shape[@]}" --device "$device" \
                    --check-logits "$dir/check.safetensors"
                logged "check-pytorch-$size" 300 "$python" "$kit/torch_lora.py" --size "$size" --dir "$dir" \
                    --device "$device" --check-logits "$dir/check.safetensors"
                grep '^CHECK ' "$work/logs/check-pytorch-$size.log" | cut -c7- | tee -a "$checks"
                checked=1
            fi
            echo "$size, $tokens tokens x $batch: dnatune"
            logged "dnatune-$size-${tokens}x$batch" 300 "$bin/lora_speed" "${shape[@]}" --device "$device" \
                ${peak:+--peak-tflops "$peak"}
            grep '^RESULT ' "$work/logs/dnatune-$size-${tokens}x$batch.log" | cut -c8- >>"$results"
            echo "$size, $tokens tokens x $batch: pytorch"
            logged "pytorch-$size-${tokens}x$batch" 300 "$python" "$kit/torch_lora.py" --size "$size" --dir "$dir" \
                --device "$device" --steps "$steps" "${threads[@]}" ${peak:+--peak-tflops "$peak"}
            grep '^RESULT ' "$work/logs/pytorch-$size-${tokens}x$batch.log" | cut -c8- >>"$results"
        done
    done

    section "Results"
    "$python" - "$results" "$checks" "$device" "${peak:-}" <<'PY'
import json, sys
results_path, checks_path, device, peak = sys.argv[1:]
rows = [json.loads(line) for line in open(results_path) if line.strip()]
checks = [json.loads(line) for line in open(checks_path) if line.strip()]
on_gpu = device != "cpu"
runs = {}
for r in rows:
    runs.setdefault((r["size"], r["tokens"], r["batch"]), {})[r["side"]] = r

def num(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"

def ratio(a, b):
    return "n/a" if a is None or b in (None, 0) else f"{a / b:.2f}"

memory = "peak GPU memory (MiB), total-free" if on_gpu else "peak RSS (MiB)"
header = ["model", "tokens x batch",
          "train seq/s dnatune", "PyTorch", "ratio",
          "inference seq/s dnatune", "PyTorch", "ratio",
          f"{memory} dnatune", "PyTorch", "ratio"]
if on_gpu:
    header.append("PyTorch max_memory_allocated (MiB)")
header += ["bf16-peak fraction, training, dnatune", "PyTorch"]
print("| " + " | ".join(header) + " |")
print("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
for (size, tokens, batch), sides in runs.items():
    d, p = sides.get("dnatune", {}), sides.get("pytorch", {})
    mem_key = "peak_gpu_mib" if on_gpu else "peak_rss_mb"
    cells = [size, f"{tokens} x {batch}"]
    for key in ("train_seq_per_s", "infer_seq_per_s", mem_key):
        cells += [num(d.get(key)), num(p.get(key)), ratio(d.get(key), p.get(key))]
    if on_gpu:
        cells.append(num(p.get("peak_torch_allocated_mib")))
    cells += [num(d.get("peak_fraction"), 3), num(p.get("peak_fraction"), 3)]
    print("| " + " | ".join(cells) + " |")

first = {side: next((r for r in rows if r["side"] == side), {}) for side in ("dnatune", "pytorch")}
print()
print(f"- Ratios are dnatune / PyTorch (speed: higher is better for dnatune; memory: lower is).")
print(f"- dnatune: {first['dnatune'].get('device')}; frozen weights {first['dnatune'].get('frozen_dtype')}, "
      "activations, attention, LoRA, head and optimizer f32. PyTorch: "
      f"{first['pytorch'].get('device')}, autocast {first['pytorch'].get('autocast')}; {first['pytorch'].get('versions')}.")
print("- LoRA r 8, alpha 8, no dropout on query and value; AdamW, gradient clipping at 1.0; one batch per step. "
      "Sequence lengths are drawn from tokens/2..tokens and padded per batch. Speeds are medians over "
      f"{first['dnatune'].get('steps')} measured steps (after warm-up) and 3 inference rounds; "
      "both sides synchronise the device before reading the clock.")
if on_gpu:
    print("- Peak GPU memory: the card's total - free memory (cudaMemGetInfo, what nvidia-smi shows) at its highest "
          "after any training step, minus what was in use before the model was loaded (CUDA context included "
          "in the baseline), the same measure on both sides. PyTorch's max_memory_allocated counts its live "
          "tensors only, without the caching allocator's reserve or cuBLAS workspaces.")
else:
    print("- Peak memory: peak RSS of each process after training (VmHWM / ru_maxrss); PyTorch's includes its libraries.")
print("- bf16-peak fraction: achieved training FLOP/s / the card's dense bf16 peak "
      + (f"({peak} TFLOP/s)." if peak else "(not known here, so no fraction; set DNATUNE_KIT_PEAK_TFLOPS).")
      + " Training FLOPs per step = 2*proj + 3*(attn + lora + head), "
      "summed over the measured steps with each batch's padded length T: proj = 2*B*T*L*P (P = frozen projection "
      "weights per layer: BERT 4H^2+2HI, NT v2 4H^2+3HI; their backward computes only the input gradient, 1x the "
      "forward), attn = 4*B*T^2*H*L (QK^T and PV; backward 2x), lora = 2*B*T*L*4*H*r and head = 2*B*(H^2+2H) "
      "(backward 2x). The conventional 3 x forward count (backward = 2 x forward, as if the frozen weights got "
      "gradients) is in the RESULT lines as train_tflops_conventional.")
for c in checks:
    print(f"- Logits check, {c['size']} ({c['sequences']} sequences x {c['tokens']} tokens, f32 on {c['device']}): "
          f"max |dnatune - PyTorch| = {c['max_abs_diff']:.2e} (largest logit {c['max_abs_logit']:.2e}, "
          f"tolerance {c['tolerance']:.0e}): {'agree' if c['ok'] else 'DIFFER'}.")
print()
print("Raw results (one JSON object per run):")
print()
print("```")
for r in rows:
    print(json.dumps(r))
print("```")
PY

    echo
    echo "VERIFY PASSED in $((SECONDS - started)) s"
}

if [[ -n ${OUT:-} ]]; then
    mkdir -p "$OUT"
    main "$@" 2>&1 | tee "$OUT/gpu-report.md"
    exit "${PIPESTATUS[0]}"
fi
main "$@"
