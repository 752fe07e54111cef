"""Checks that LIB.so defines every `_mlir_ciface_ropeattn_cuda_*` function
the LLVM IR files declare: prog LIB.so FILE.ll...; exits 1 naming each
missing one (the cuFFT wrappers need a toolkit with cuFFT)."""
import re
import subprocess
import sys

lib, files = sys.argv[1], sys.argv[2:]
nm = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True,
                    text=True, check=True).stdout
exported = {line.split()[-1] for line in nm.splitlines() if line.split()}
declared = set()
for f in files:
    with open(f) as fh:
        declared |= set(re.findall(r"^declare .*@(_mlir_ciface_ropeattn_cuda_\w+)\(",
                                   fh.read(), re.M))
if not declared:
    sys.exit("no _mlir_ciface_ropeattn_cuda_* declarations found")
for name in sorted(declared):
    print(("exported " if name in exported else "missing ") + name)
sys.exit(0 if declared <= exported else 1)
