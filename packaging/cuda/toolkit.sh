#!/usr/bin/env bash
# A CUDA 13.0 build toolkit from PyPI, for `cargo build --features cuda` on a machine without a
# system CUDA install (and without a GPU: building needs none).
#
#   packaging/cuda/toolkit.sh [DIR]      # default DIR: ~/.cache/dnatune-cuda
#   source DIR/env.sh                    # then: cargo build --release --features cuda
#
# What it does:
#   1. a Python virtual environment in DIR/venv with NVIDIA's wheels, pinned to CUDA 13.0.x:
#      nvcc (+ crt headers, cccl, nvvm), the CUDA runtime, NVRTC, cuBLAS and cuRAND;
#   2. DIR/link: the unversioned names the linker asks for (libcublas.so → libcublas.so.13, …)
#      and a stub libcuda.so (soname libcuda.so.1). The driver library is not on PyPI; it is
#      part of the NVIDIA driver and the real one is loaded at run time;
#   3. DIR/env.sh: PATH, CUDA_ROOT, CUDA_COMPUTE_CAP=80 (PTX for Ampere, JIT-compiled by newer
#      drivers for Ada/Hopper/Blackwell), CUDARC_CUDA_VERSION=13000 and LIBRARY_PATH.
#
# The binary then needs, at run time, the NVIDIA driver (libcuda.so.1, CUDA 13.0 or newer) and
# libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and libnvrtc.so.13 on the library path:
# from a CUDA 13 toolkit, or from the same wheels (`pip install nvidia-cublas nvidia-curand
# nvidia-cuda-nvrtc`, then LD_LIBRARY_PATH=…/site-packages/nvidia/cu13/lib).
set -euo pipefail

dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/dnatune-cuda}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ ! -x "$dir/venv/bin/python" ]; then
    python3 -m venv "$dir/venv"
fi
"$dir/venv/bin/pip" install --quiet \
    "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    "nvidia-nvvm==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-nvrtc==13.0.*" \
    "nvidia-cublas==13.0.*" "nvidia-curand==10.4.*"
cuda=$("$dir/venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
"$cuda/bin/nvcc" --version | tail -2 >&2

link="$dir/link"
mkdir -p "$link"
for name in cublas cublasLt curand nvrtc cudart; do
    real=$(find "$cuda/lib" -maxdepth 1 -name "lib$name.so.*" ! -name '*alt*' ! -name '*builtins*' | sort | head -1)
    [ -n "$real" ] || { echo "lib$name.so.* missing from $cuda/lib" >&2; exit 1; }
    ln -sfn "$real" "$link/lib$name.so"
done

# The stub exports every driver function the cudarc version in Cargo.lock declares.
cudarc=$(cd "$repo" && cargo metadata --format-version 1 --features cuda --no-default-features 2>/dev/null |
    "$dir/venv/bin/python" -c 'import json, sys, os
meta = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in meta["packages"] if p["name"] == "cudarc"))')
grep -oP '^pub unsafe fn \Kcu\w+' "$cudarc/src/driver/sys/mod.rs" | sort -u |
    awk '{print "void " $1 "(void) {}"}' >"$link/libcuda-stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/libcuda-stub.c"

cat >"$dir/env.sh" <<EOF
# dnatune CUDA build environment (packaging/cuda/toolkit.sh)
export PATH="$cuda/bin:\$PATH"
export CUDA_ROOT="$cuda" CUDA_PATH="$cuda"
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-80}
export CUDARC_CUDA_VERSION=13000
export LIBRARY_PATH="$link\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
EOF
echo "CUDA 13.0 build toolkit ready: source $dir/env.sh" >&2
