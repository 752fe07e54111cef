#!/usr/bin/env bash
# Installs every dependency ropeattn needs on a fresh Debian 12 (bookworm) machine.
# Idempotent: packages already present are skipped, so a second run costs a few seconds.
set -euo pipefail

APT_PKGS=(
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  clang-format-22 libomp-22-dev libopenblas-dev libfftw3-dev libgtest-dev
  ninja-build cmake g++ python3 python3-venv
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

# lit ships in llvm-22-tools (as llvm-lit under the LLVM bindir); FileCheck too.
BINDIR=$(llvm-config-22 --bindir)
for t in FileCheck lit mlir-tblgen not; do
  if [ ! -x "$BINDIR/$t" ] && [ ! -x "$BINDIR/llvm-$t" ]; then
    echo "install-deps: missing $t in $BINDIR" >&2
  fi
done

# Python side (tests' fp64 reference, later the bindings and benchmarks): a
# project-local virtual environment, so nothing touches the system Python.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
REQ=$ROOT/scripts/requirements.txt
STAMP=$VENV/.requirements.stamp
if [ ! -f "$STAMP" ] || ! cmp -s "$REQ" "$STAMP"; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$REQ"
  cp "$REQ" "$STAMP"
else
  echo "install-deps: Python environment up to date ($VENV)"
fi
