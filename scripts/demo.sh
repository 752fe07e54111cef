#!/usr/bin/env bash
# The main job: an example RoPE attention (forward and backward) through
# rope-opt (verified, canonicalized, RoPE turned into pre-rotation), then a
# causal GQA RoPE attention compiled for the CPU, run, checked against the
# fp64 reference, with its time and GFLOP/s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:-$ROOT/build}
EXAMPLE=$ROOT/examples/rope_attention.mlir

echo "== input: $EXAMPLE"
grep -v '^//' "$EXAMPLE" | sed '/^$/d'
echo
echo "== rope-opt -canonicalize -ropeattn-prerotate"
"$BUILD_DIR/bin/rope-opt" "$EXAMPLE" -canonicalize -ropeattn-prerotate
echo
"$ROOT/.venv/bin/python" "$ROOT/scripts/demo.py" "$BUILD_DIR"
