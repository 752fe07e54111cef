#!/usr/bin/env bash
# On the GPU machine (no MLIR there; python3 with numpy and PyTorch): runs
# what scripts/cuda-remote-prepare.sh compiled:
#
#   bash scripts/cuda-run-remote.sh [DIR=build/cuda-remote] [RESULTS=${OUT:-/tmp}/cuda-results]
#
# 1. if the carried rope-cuda-run / libropeattn_cuda_runtime.so cannot start
#    there (another glibc or libstdc++), rebuilds both from source with the
#    machine's g++ against its libcuda (they need nothing else);
# 2. the fp64-reference oracle of the CUDA path (exit status 1 on a failure);
# 3. the SDPA comparison: RESULTS/cuda_sdpa.{md,json,png};
# 4. the polynomial method: its oracle (fp64 reference, certified bounds,
#    exact fallback) and RESULTS/cuda_poly_sdpa.{md,json,png} (N = 64k,
#    D = 16 vs SDPA), when cuda-remote-prepare.sh built them;
# 5. ropeattn.fft through cuFFT vs the naive DFT.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(cd "${1:-$ROOT/build/cuda-remote}" && pwd)
RESULTS=${2:-${OUT:-/tmp}/cuda-results}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
nvidia-smi -L || { echo "cuda-run-remote: no GPU (nvidia-smi -L failed)" >&2; exit 1; }

if ! "$DIR/oracle/rope-cuda-run" --help > /dev/null 2>&1; then
  echo "cuda-run-remote: carried binaries do not start here; rebuilding them"
  CUDA=${CUDA_HOME:-/usr/local/cuda}
  TMP=$(mktemp -d)
  CUFFT=""  # cuFFT is dlopen'ed on first use; the header is enough here
  if [ -e "$CUDA/include/cufft.h" ]; then
    CUFFT="-DROPEATTN_HAVE_CUFFT=1 -ldl"
  fi
  g++ -O2 -std=c++17 -shared -fPIC -I"$ROOT/include" -I"$CUDA/include" \
    "$ROOT/lib/Runtime/CUDARuntime.cpp" -o "$TMP/libropeattn_cuda_runtime.so" \
    -L"$CUDA/lib64/stubs" -lcuda $CUFFT || exit 1
  g++ -O2 -std=c++17 -I"$CUDA/include" "$ROOT/tools/rope-cuda-run/rope-cuda-run.cpp" \
    -o "$TMP/rope-cuda-run" -L"$CUDA/lib64/stubs" -lcuda -ldl || exit 1
  for d in "$DIR/oracle" "$DIR/bench" "$DIR/poly-oracle" "$DIR/poly-bench" "$DIR/fft"; do
    [ -d "$d" ] || continue
    cp -f "$TMP/libropeattn_cuda_runtime.so" "$TMP/rope-cuda-run" "$d/"
  done
fi

status=0
echo "== oracle: CUDA path vs the fp64 reference =="
"$PY" "$ROOT/test/Integration/CUDA/cuda_oracle.py" check "$DIR/oracle" /tmp/cuda-oracle-work \
  2>&1 | tee "$RESULTS/cuda_oracle.log" || status=1
echo "== benchmark: exact forward vs PyTorch SDPA =="
"$PY" "$ROOT/bench/cuda_bench.py" run "$DIR/bench" "$RESULTS" --runs 10 \
  2>&1 | tee "$RESULTS/cuda_bench.log" || status=1
if [ -d "$DIR/poly-oracle" ]; then
  echo "== oracle: polynomial method on CUDA vs the fp64 reference =="
  "$PY" "$ROOT/test/Integration/CUDA/cuda_poly_oracle.py" check "$DIR/poly-oracle" \
    /tmp/cuda-poly-oracle-work 2>&1 | tee "$RESULTS/cuda_poly_oracle.log" || status=1
fi
if [ -d "$DIR/poly-bench" ]; then
  echo "== benchmark: polynomial forward vs exact vs PyTorch SDPA (D = 16) =="
  "$PY" "$ROOT/bench/cuda_poly_bench.py" run "$DIR/poly-bench" "$RESULTS" --runs 10 \
    2>&1 | tee "$RESULTS/cuda_poly_bench.log" || status=1
fi
if [ -d "$DIR/fft" ]; then
  echo "== ropeattn.fft on CUDA (cuFFT) vs the naive DFT =="
  "$PY" "$ROOT/test/Integration/CUDA/cuda_fft_oracle.py" check "$DIR/fft" "$DIR/fft" \
    2>&1 | tee "$RESULTS/cuda_fft_oracle.log" || status=1
fi
rm -rf "$RESULTS/work"
exit $status
