#!/usr/bin/env bash
# Builds `sift-tui --features cuda` on a machine without a GPU or a CUDA install, from NVIDIA's
# CUDA 13.0 wheels on PyPI, in a throwaway directory. Never a CI step: it downloads about 1.2 GB.
#
#   scripts/cuda_build.sh            # toolkit into $SIFT_CUDA_DIR (default /tmp/sift-cuda), then
#                                    # cargo build --release --features cuda
#   SIFT_CUDA_DIR=../cuda CUDA_COMPUTE_CAP=80 CARGO_TARGET_DIR=target-cuda scripts/cuda_build.sh
#
# What the build needs, and where each piece comes from:
# - nvcc (candle-kernels compiles its .cu files to PTX and a static library at build time, and
#   cudarc reads the CUDA version from `nvcc --version`). The `-cu12` nvcc wheels ship only ptxas,
#   no nvcc driver; the CUDA 13 wheels (`cuda-toolkit[nvcc,...]`) ship the full compiler, and all
#   of them install into one tree, site-packages/nvidia/cu13/{bin,include,lib,nvvm}.
# - CUDA_COMPUTE_CAP: without it the kernel build asks nvidia-smi. 90 is the H100/H200.
# - Link libraries: candle enables cudarc's `dynamic-linking`, so the binary links against
#   libcuda, libcudart, libcublas, libcublasLt, libcurand and libnvrtc. The wheels carry only the
#   versioned files (libcublas.so.13), so the root below adds the unversioned names `-lcublas`
#   needs. libcuda.so is the driver's and is in no wheel: the root gets a stub (built here from
#   the preprocessed cuda.h, every driver entry point returning CUDA_ERROR_STUB_LIBRARY), with the
#   driver's soname libcuda.so.1, so that at run time the binary binds to the real driver. This is
#   what the toolkit's own lib64/stubs/libcuda.so is for.
#
# To run the binary on a GPU machine: LD_LIBRARY_PATH="$SIFT_CUDA_DIR/root/lib" (the wheels'
# libcudart.so.13 and friends; libcuda.so.1 comes from the driver, which must support CUDA 13.0,
# i.e. R580 or newer).
set -euo pipefail

TOOLKIT_VERSION=13.0.2 # cuda-toolkit meta-package: nvcc 13.0.88, cudart 13.0.96, cuBLAS 13.1.0.3
DIR=${SIFT_CUDA_DIR:-/tmp/sift-cuda}
VENV="$DIR/venv"
ROOT="$DIR/root"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

# 1. The wheels, in a venv of their own.
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "cuda-toolkit[nvcc,crt,nvvm,cudart,nvrtc,cublas,curand,cccl]==$TOOLKIT_VERSION"
WHEELS=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')

# 2. A CUDA root: the wheels' bin, include and nvvm as they are (nvcc.profile finds include/cccl
#    and nvvm/bin/cicc relative to bin), lib with unversioned names and the libcuda stub.
rm -rf "$ROOT"
mkdir -p "$ROOT/lib/stubs"
for sub in bin include nvvm; do
    ln -s "$WHEELS/$sub" "$ROOT/$sub"
done
ln -s "$WHEELS"/lib/* "$ROOT/lib/"
for lib in cudart cublas cublasLt curand nvrtc; do
    versioned=$(cd "$ROOT/lib" && ls "lib$lib.so."[0-9]* | head -n 1)
    ln -s "$versioned" "$ROOT/lib/lib$lib.so"
done
# Every cu* function cuda.h declares, under its header name and under the versioned symbol its
# macros map it to (cuMemAlloc -> cuMemAlloc_v2), as `int f(void) { return 34; }`.
stub_c="$ROOT/lib/stubs/libcuda_stub.c"
{
    echo "/* Link-time stand-in for the driver's libcuda.so.1; 34 = CUDA_ERROR_STUB_LIBRARY. */"
    { grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' "$WHEELS/include/cuda.h"
      gcc -E -P -I "$WHEELS/include" "$WHEELS/include/cuda.h" | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\('
    } | tr -d '( \t' | sort -u | sed 's/.*/int &(void) { return 34; }/'
} >"$stub_c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so" "$stub_c"

# 3. The build. cudarc takes the link paths (lib, lib/stubs) from CUDA_HOME; candle-kernels finds
#    nvcc on PATH and the headers beside it.
export CUDA_HOME="$ROOT"
export PATH="$ROOT/bin:$PATH"
nvcc --version | tail -n 2
cd "$(dirname "$0")/.."
time cargo build --release --features cuda "$@"
