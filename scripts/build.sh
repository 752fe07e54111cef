#!/usr/bin/env bash
# Configures (once) and builds ropeattn with Ninja against Debian's LLVM/MLIR 22.
#   scripts/build.sh [build-dir] [extra cmake args...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:-$ROOT/build}
shift || true
LLVM_PREFIX=$(llvm-config-22 --prefix)

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    "$@"
fi
# Two cores here; Ninja's default (cores + 2) overcommits memory on big TUs.
cmake --build "$BUILD_DIR" -- -j"$(nproc)"
