#!/usr/bin/env bash
# Compiles the public functions of a ropeattn .mlir file ahead of time for
# CUDA, into a shared library that needs no MLIR at run time:
#
#   scripts/cuda-aot-build.sh BUILD_DIR IN.mlir OUT_DIR ["rope-lower-to-cuda options"]
#
# rope-opt --rope-lower-to-cuda (kernels → cubin for the chip, default sm_90,
# embedded in the host code) | mlir-translate --mlir-to-llvmir | llc → object
# → OUT_DIR/lib<name>.so, linked to libropeattn_cuda_runtime.so (rpath
# $ORIGIN). Also writes OUT_DIR/<name>.sig (one line per public function:
# `NAME SIGNATURE`, the `ropeattn.abi` type) and copies rope-cuda-run and
# libropeattn_cuda_runtime.so into OUT_DIR, so OUT_DIR alone can be carried
# to a GPU machine (it needs the NVIDIA driver's libcuda.so.1 only):
#
#   OUT_DIR/rope-cuda-run --library=OUT_DIR/lib<name>.so --function=NAME \
#       --signature-file=OUT_DIR/<name>.sig --input=random:1 ... --benchmark=20
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,18p' "$0" >&2
  exit 2
fi
BUILD=$(cd "$1" && pwd)
IN=$2
OUT=$3
OPTIONS=${4:-}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
NAME=$(basename "$IN" .mlir)
LLVM_BIN=$(llvm-config-22 --bindir)
CXX=${CXX:-c++}
for f in "$BUILD/bin/rope-opt" "$BUILD/bin/rope-cuda-run" \
         "$BUILD/lib/libropeattn_cuda_runtime.so"; do
  if [ ! -e "$f" ]; then
    echo "cuda-aot-build: error: $f is missing (was the build configured with a CUDA toolkit?)" >&2
    exit 1
  fi
done

"$BUILD/bin/rope-opt" "$IN" --rope-lower-to-cuda="$OPTIONS" -o "$OUT/$NAME.llvm.mlir"
# The signatures, before the translation drops the attribute.
sed -n 's/.*llvm.func @\([A-Za-z0-9_]*\)(.*ropeattn.abi = \(([^{}]*) -> [^,}]*\(, tensor<[^>]*>\)*)\{0,1\}\).*/\1 \2/p' \
  "$OUT/$NAME.llvm.mlir" | grep -v '^_mlir_ciface_' > "$OUT/$NAME.sig" || true
"$LLVM_BIN/mlir-translate" --mlir-to-llvmir "$OUT/$NAME.llvm.mlir" -o "$OUT/$NAME.ll"
"$LLVM_BIN/llc" -O3 -filetype=obj -relocation-model=pic "$OUT/$NAME.ll" -o "$OUT/$NAME.o"
cp -f "$BUILD/lib/libropeattn_cuda_runtime.so" "$BUILD/bin/rope-cuda-run" "$OUT/"
"$CXX" -shared "$OUT/$NAME.o" -o "$OUT/lib$NAME.so" -L"$OUT" \
  -lropeattn_cuda_runtime -Wl,-rpath,'$ORIGIN' -Wl,--no-undefined
rm -f "$OUT/$NAME.o" "$OUT/$NAME.ll"
echo "cuda-aot-build: $OUT/lib$NAME.so ($(wc -l < "$OUT/$NAME.sig") function(s), see $OUT/$NAME.sig)"
