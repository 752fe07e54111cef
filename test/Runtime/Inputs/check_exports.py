"""Checks that a shared library defines every `mgpu*` function that LLVM IR
files declare: check_exports.py LIB.so FILE.ll... Prints the symbols checked;
exits 1 naming each missing one."""
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
        declared |= set(re.findall(r"^declare .*@(mgpu\w+)\(", fh.read(), re.M))
if not declared:
    sys.exit("check_exports: no mgpu* declarations found")
missing = sorted(declared - exported)
for name in sorted(declared):
    print(("missing " if name in missing else "exported ") + name)
sys.exit(1 if missing else 0)
