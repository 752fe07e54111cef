#!/usr/bin/env bash
# Here (MLIR installed, no GPU needed): compiles everything a GPU session
# runs, ahead of time, into one folder that travels to the GPU machine:
#
#   bash scripts/cuda-remote-prepare.sh [BUILD_DIR=build] [OUT=build/cuda-remote] [CHIP=sm_90]
#
#   OUT/oracle/  30 random forward configurations (cuda_oracle.py prepare)
#   OUT/bench/   the SDPA comparison configurations (bench/cuda_bench.py prepare)
#   OUT/poly-oracle/  24 random `method polynomial` forwards with their inputs
#                (test/Integration/CUDA/cuda_poly_oracle.py prepare)
#   OUT/poly-bench/   polynomial vs exact vs SDPA at N = 16k, 64k, D = 16
#                (bench/cuda_poly_bench.py prepare)
#   OUT/fft/     16 ropeattn.fft cases (cuFFT; cuda_fft_oracle.py prepare)
#
# Each holds its libraries, .sig files, rope-cuda-run and
# libropeattn_cuda_runtime.so. Then, with the device tool (the worktree
# travels; OUT is git-ignored, so it is carried):
#
#   run(command="bash scripts/cuda-run-remote.sh build/cuda-remote",
#       carry=["build/cuda-remote"], timeout_s=600)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
OUT=${2:-$ROOT/build/cuda-remote}
CHIP=${3:-sm_90}
PY=${ROPEATTN_PYTHON:-$ROOT/.venv/bin/python}
rm -rf "$OUT"
mkdir -p "$OUT"
"$PY" "$ROOT/test/Integration/CUDA/cuda_oracle.py" prepare "$BUILD" "$OUT/oracle" \
  --configs 30 --seed 2026 --chip "$CHIP"
"$PY" "$ROOT/bench/cuda_bench.py" prepare "$BUILD" "$OUT/bench" --chip "$CHIP"
"$PY" "$ROOT/test/Integration/CUDA/cuda_poly_oracle.py" prepare "$BUILD" \
  "$BUILD/bin/poly-approx-dump" "$OUT/poly-oracle" --configs 24 --seed 11 --chip "$CHIP"
"$PY" "$ROOT/bench/cuda_poly_bench.py" prepare "$BUILD" "$OUT/poly-bench" --chip "$CHIP"
rm -rf "$OUT"/poly-oracle/src*
"$PY" "$ROOT/test/Integration/CUDA/cuda_fft_oracle.py" prepare "$BUILD" "$OUT/fft"
# The MLIR text of each library is for reading here; it need not travel.
rm -f "$OUT"/*/*.llvm.mlir
du -sh "$OUT"
