"""ropeattn-vectorize-skinny-matmul against numpy in fp64.

Random linalg.matmul products C[n, M] += L·R with few output rows n, in all
four layouts the pass handles (L as (k, i) or (i, k); R as (k, j), read by
vector loads, or (j, k), read in blocks transposed in registers), f32 and
f64, with M and K off the vector width (masked tiles, clamped rows,
partial k blocks, K = 0, K = 1, and one to three rows with K not a
multiple of the interleaved chains). rope-run takes static shapes; the
polynomial oracles cover the dynamic chunk sizes of the method's products. Every product runs
through rope-run (`rope-lower-to-cpu`) three ways: vector-bits = 512,
vector-bits = 256 and vector-bits = -1 (BLAS only); the lowered IR must
contain the kernel exactly when the pass applies (n <= 24 at 512 bits,
n <= 12 at 256, up to 4 row blocks of that size; or, with R read as (k, j),
the depth K within the same bound: the small-depth kernel), so a silently
skipped kernel fails the test.

Tolerance: |C - C_ref| <= gamma_(K+1) * (|C0| + |L|·|R|) elementwise,
gamma_m = m·u/(1 - m·u), u = 2^-24 (f32) or 2^-53 (f64): the standard
bound for any summation order of a dot product with fused or unfused
multiply-adds, computed by numpy in fp64 from the inputs alone.

usage: skinny_matmul.py <rope-opt> <rope-run> <tmpdir>
"""
import os
import subprocess
import sys

import numpy as np


def maps(l_t, r_t):
    lm = "(k, i)" if l_t else "(i, k)"
    rm = "(j, k)" if r_t else "(k, j)"
    return (f"affine_map<(i, j, k) -> {lm}>, affine_map<(i, j, k) -> {rm}>, "
            f"affine_map<(i, j, k) -> (i, j)>")


def module(n, m, k, l_t, r_t, ty, dynamic):
    km = "?" if dynamic else str(k)
    mm = "?" if dynamic else str(m)
    ls = f"{km}x{n}" if l_t else f"{n}x{km}"
    rs = f"{mm}x{km}" if r_t else f"{km}x{mm}"
    lt, rt, ct = (f"tensor<{ls}x{ty}>", f"tensor<{rs}x{ty}>",
                  f"tensor<{n}x{mm}x{ty}>")
    return (f"func.func @f(%l: {lt}, %r: {rt}, %c: {ct}) -> {ct} {{\n"
            f"  %o = linalg.matmul indexing_maps = [{maps(l_t, r_t)}]\n"
            f"    ins(%l, %r : {lt}, {rt}) outs(%c : {ct}) -> {ct}\n"
            f"  return %o : {ct}\n}}\n")


def main():
    rope_opt, rope_run, tmp = sys.argv[1:4]
    os.makedirs(tmp, exist_ok=True)
    rng = np.random.default_rng(20261125)
    shapes = [(1, 1, 1), (17, 100, 256), (17, 257, 64), (5, 16, 16),
              (24, 33, 7), (12, 15, 0), (3, 17, 1), (17, 4845 // 5, 33),
              (13, 40, 300), (25, 20, 20), (8, 31, 17), (2, 48, 5),
              (70, 45, 17), (300, 33, 5), (33, 70, 40), (50, 30, 9),
              # One to three rows with R read as (k, j): 4/n interleaved
              # chains over k, K not a multiple of the chain count.
              (1, 37, 969), (2, 50, 103), (3, 20, 7)]
    cases = passed = 0
    for idx, (n, m, k) in enumerate(shapes):
        for ty in ("f32", "f64"):
            l_t, r_t = bool(rng.integers(2)), bool(rng.integers(2))
            if idx < 4:  # every layout at least once per type
                l_t, r_t = bool(idx & 1), bool(idx & 2)
            if n > 96:  # the small-depth kernel: R read as (k, j)
                r_t = False
            if idx >= 16:  # the chained one-to-three-row kernel
                r_t = False
            dynamic = False
            dt = np.float32 if ty == "f32" else np.float64
            lhs = rng.standard_normal((k, n) if l_t else (n, k)).astype(dt)
            rhs = rng.standard_normal((m, k) if r_t else (k, m)).astype(dt)
            c0 = rng.standard_normal((n, m)).astype(dt)
            base = os.path.join(tmp, f"c{idx}_{ty}")
            with open(base + ".mlir", "w") as fh:
                fh.write(module(n, m, k, l_t, r_t, ty, dynamic))
            for name, a in (("l", lhs), ("r", rhs), ("c", c0)):
                np.save(f"{base}_{name}.npy", a)
            l64 = lhs.astype(np.float64)
            l64 = l64 if l_t else l64.T          # [k, n]
            r64 = rhs.astype(np.float64)
            r64 = r64.T if r_t else r64          # [k, m]
            ref = c0.astype(np.float64) + l64.T @ r64
            u = 2.0**-24 if ty == "f32" else 2.0**-53
            g = (k + 1) * u / (1 - (k + 1) * u)
            bound = g * (np.abs(c0) + np.abs(l64).T @ np.abs(r64))
            for bits in (512, 256, -1):
                cases += 1
                opts = f"vector-bits={bits}"
                low = subprocess.run(
                    [rope_opt, base + ".mlir",
                     f"--rope-lower-to-cpu={opts}"],
                    capture_output=True, text=True)
                if low.returncode:
                    print(f"FAIL {base} {opts}: lowering: {low.stderr}")
                    continue
                rows = 24 if bits == 512 else 12 if bits == 256 else 0
                want_kernel = (1 <= n <= 4 * rows or
                               (not r_t and 1 <= k <= rows))
                has_blas = "ropeattn_matmul_" in low.stdout
                # (A static K = 0 product folds away before either path.)
                if k > 0 and want_kernel == has_blas:
                    print(f"FAIL {base} {opts}: kernel expected={want_kernel}"
                          f" but BLAS call present={has_blas}")
                    continue
                out = base + f"_o{bits}.npy"
                res = subprocess.run(
                    [rope_run, base + ".mlir", "--function=f",
                     f"--pipeline-options={opts}",
                     f"--input=@{base}_l.npy", f"--input=@{base}_r.npy",
                     f"--input=@{base}_c.npy", f"--output=@{out}"],
                    capture_output=True, text=True)
                if res.returncode:
                    print(f"FAIL {base} {opts}: run: {res.stderr}")
                    continue
                got = np.load(out)
                err = np.abs(got.astype(np.float64) - ref)
                if got.shape != ref.shape or got.dtype != dt or not np.all(
                        err <= bound):
                    worst = np.max(err - bound) if got.shape == ref.shape \
                        else float("nan")
                    print(f"FAIL {base} {opts} n={n} m={m} k={k} L^T={l_t} "
                          f"R^T={r_t}: excess {worst:.3g}")
                    continue
                passed += 1
    print(f"{passed}/{cases} cases passed")
    return 0 if passed == cases else 1


if __name__ == "__main__":
    sys.exit(main())
