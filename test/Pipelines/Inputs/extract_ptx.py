"""Prints the PTX that `gpu-module-to-binary{format=isa}` embedded in a
gpu.binary (read from stdin), undoing MLIR's string escapes (\\XX hex)."""
import re
import sys

text = sys.stdin.read()
m = re.search(r'assembly = "(.*?)"', text, re.S)
if not m:
    sys.exit("extract_ptx: no 'assembly = \"...\"' in the input")
sys.stdout.write(re.sub(r"\\([0-9A-Fa-f]{2})",
                        lambda h: chr(int(h.group(1), 16)), m.group(1)))
