#!/usr/bin/env bash
# Builds gpu-kit/ (git-ignored): everything bench/gpu/verify.sh needs on a GPU machine that has
# PyTorch but no Rust toolchain, no internet and no ../shared. See bench/gpu/README.md.
#
#   bench/gpu/build-kit.sh
#
# Environment:
#   DNATUNE_KIT_FEATURES   cargo features of the binaries (default: cuda). Empty builds a
#                          CPU-only kit, for trying the whole flow without a GPU.
#   CARGO_TARGET_DIR       where cargo builds (default: target/ in the repository)
#   DNATUNE_CUDA_TOOLKIT   the CUDA build toolkit that packaging/cuda/toolkit.sh makes from PyPI
#                          (default: ~/.cache/dnatune-cuda; made on first use)
#   DNATUNE_CUDA_ROOT      instead: a CUDA toolkit (nvcc in bin/, libraries in lib/) …
#   DNATUNE_CUDA_LINK_DIR  … and a folder with the unversioned link names (libcuda.so,
#                          libcublas.so, …) the linker needs
#   CUDA_COMPUTE_CAP       PTX/cubin target of candle's kernels (default: 80; PTX for 8.0 is
#                          compiled by the driver for newer GPUs, H100 included)
#   CUDARC_CUDA_VERSION    the CUDA API version to bind (default: 13000)
#   DNATUNE_SHARED         the shared folder with fixtures/ (default: ../shared)
#   DNATUNE_KIT_PYTHON     the Python whose pip downloads the wheels (default: python3)
#   DNATUNE_KIT_DIR        where the kit goes (default: gpu-kit/ in the repository; replaced)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
features=${DNATUNE_KIT_FEATURES-cuda}
kit=${DNATUNE_KIT_DIR:-$repo/gpu-kit}
shared=${DNATUNE_SHARED:-$repo/../shared}
python=${DNATUNE_KIT_PYTHON:-python3}
tests=(golden_lora golden_bert golden_esm golden_dnabert2)
families=(dnabert1 dnabert2 nt_v1 nt_v2 gena_lm)

die() {
    echo "build-kit: $*" >&2
    exit 1
}

[[ -d $shared/fixtures ]] || die "$shared/fixtures not found (set DNATUNE_SHARED to the shared folder)"

cargo_features=(--no-default-features)
if [[ -n $features ]]; then
    cargo_features+=(--features "$features")
fi
if [[ $features == *cuda* ]]; then
    if [[ -n ${DNATUNE_CUDA_ROOT:-} ]]; then
        cuda_root=$DNATUNE_CUDA_ROOT
        link_dir=${DNATUNE_CUDA_LINK_DIR:?set DNATUNE_CUDA_LINK_DIR with DNATUNE_CUDA_ROOT}
    else
        toolkit=${DNATUNE_CUDA_TOOLKIT:-${XDG_CACHE_HOME:-$HOME/.cache}/dnatune-cuda}
        [[ -f $toolkit/env.sh ]] || packaging/cuda/toolkit.sh "$toolkit"
        # shellcheck disable=SC1091
        source "$toolkit/env.sh"
        cuda_root=$CUDA_ROOT
        link_dir=$toolkit/link
    fi
    [[ -x $cuda_root/bin/nvcc ]] || die "no nvcc in $cuda_root/bin (set DNATUNE_CUDA_ROOT)"
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
    export PATH="$cuda_root/bin:$PATH" CUDA_ROOT=$cuda_root CUDA_PATH=$cuda_root
    export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80} CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
    export LIBRARY_PATH="$link_dir${LIBRARY_PATH:+:$LIBRARY_PATH}"
    for lib in libcuda.so libcublas.so libcublasLt.so libcurand.so libnvrtc.so; do
        [[ -e $link_dir/$lib ]] || echo "build-kit: warning: no $lib in $link_dir; linking will fail if the system has none either" >&2
    done
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"

echo "building (release, features: ${features:-none}) in $CARGO_TARGET_DIR" >&2
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
# One cargo call: the golden tests, the benchmark and (built for the integration tests) the
# dnatune binary, all with the same profile and features.
cargo test --release --no-run "${cargo_features[@]}" "${test_args[@]}" --bench lora_speed \
    --message-format=json-render-diagnostics >"$stage/cargo.json"

# name -> executable, from cargo's artifact messages.
"$python" - "$stage/cargo.json" "$stage/bin" "${tests[@]}" <<'PY'
import json, shutil, subprocess, sys
messages, out, *tests = sys.argv[1:]
wanted = {("bin", "dnatune"), ("bench", "lora_speed")} | {("test", t) for t in tests}
found = {}
for line in open(messages):
    msg = json.loads(line)
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    for kind in msg["target"]["kind"]:
        key = (kind, msg["target"]["name"])
        if key in wanted:
            found[key] = msg["executable"]
missing = sorted(wanted - found.keys())
if missing:
    sys.exit(f"build-kit: cargo built no executable for {missing}")
for (kind, name), path in sorted(found.items()):
    subprocess.run(["strip", "-o", f"{out}/{name}", path], check=True)
    print(f"  {kind:5} {name:16} {path}", file=sys.stderr)
PY

if [[ $features == *cuda* ]]; then
    # cuRAND stand-in for machines without it (see curand_stub.c); it must define every
    # cuRAND function the binaries import.
    mkdir -p "$stage/lib/curand-stub"
    cc -shared -fPIC -O2 -o "$stage/lib/curand-stub/libcurand.so.10" -Wl,-soname,libcurand.so.10 \
        -Wl,--version-script=bench/gpu/curand_stub.map bench/gpu/curand_stub.c
    defined=$(nm -D --defined-only "$stage/lib/curand-stub/libcurand.so.10" | awk '{print $3}' | sed 's/@.*//' | sort -u)
    needed=$(for b in "$stage"/bin/*; do nm -D --undefined-only "$b"; done | awk '{print $2}' |
        grep '^curand' | sed 's/@.*//' | sort -u)
    missing=$(comm -13 <(echo "$defined") <(echo "$needed"))
    [[ -z $missing ]] || die "curand_stub.c lacks: $missing"
fi

rm -rf "$kit"
mkdir -p "$kit/fixtures" "$kit/wheels"
echo "packing the binaries (xz)" >&2
tar -C "$stage" -cf - bin lib | xz -T1 -9e --lzma2=preset=9e,dict=192MiB >"$kit/bin.tar.xz"

# Only the fixtures the golden tests read: configs, weights and reference outputs.
for family in "${families[@]}"; do
    src=$shared/fixtures/$family
    mkdir -p "$kit/fixtures/$family/model"
    for f in config.json model.safetensors pytorch_model.bin; do
        if [[ -e $src/model/$f ]]; then
            install -m 644 "$src/model/$f" "$kit/fixtures/$family/model/"
        fi
    done
    install -m 644 "$src"/golden.json "$src"/golden*.safetensors "$kit/fixtures/$family/"
done
install -m 644 bench/torch_lora.py "$kit/torch_lora.py"

echo "downloading wheels (bench/gpu/wheels.txt)" >&2
# Pure-Python and abi3 wheels fit any CPython 3; regex, PyYAML and charset-normalizer are built
# per version, so fetch those for each version a PyTorch machine is likely to run: the pinned
# version where it has a wheel for that Python, else the newest older one that does.
sed 's/==/<=/' bench/gpu/wheels.txt >"$stage/wheels.txt"
for version in 3.10 3.11 3.12 3.13; do
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$kit/wheels" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --implementation cp --python-version "$version" \
        -r "$stage/wheels.txt"
done

"$python" - "$kit/kit.json" "$features" <<'PY'
import json, os, subprocess, sys, time
path, features = sys.argv[1:]
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
info = {
    "features": features,
    "commit": commit + ("+local changes" if dirty else ""),
    "built": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "cuda_compute_cap": os.environ.get("CUDA_COMPUTE_CAP") if "cuda" in features else None,
    "cudarc_cuda_version": os.environ.get("CUDARC_CUDA_VERSION") if "cuda" in features else None,
}
json.dump(info, open(path, "w"), indent=2)
PY

echo
echo "$kit: $(du -sb "$kit" | cut -f1) bytes in all"
du -sh --apparent-size "$kit/bin.tar.xz" "$kit/fixtures" "$kit/wheels" "$kit/torch_lora.py"
echo "binaries unpacked: $(du -sh --apparent-size "$stage/bin" | cut -f1)"
