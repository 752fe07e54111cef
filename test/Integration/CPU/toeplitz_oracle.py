"""ropeattn.toeplitz_matmul on the CPU (circulant embedding + FFTs) vs. a dense
Toeplitz product (the oracle rule).

Random cases: N, M in [1, 70] (N < M, N = M, N > M), C in [1, 9] (odd C
exercises the unpaired last column of the two-columns-per-complex-FFT
packing), 0-2 batch dims, shared or per-batch symbol, plain / transposed /
causal / transposed+causal, f32 and f64, fft=codegen and fft=library; plus
the edge cases K = 0 (an empty sum: zeros), C = 0 and N = M = 1. The oracle
builds the dense matrix from the spec (ropeattn_ref.toeplitz_matrix) and
multiplies in np.longdouble.

Tolerance (normwise per column pair, derived from the algorithm): with the
padded complex column z = x_a + i x_b, circulant c (||c||_1, ||c||_2 over its
L entries), eps the normwise FFT bound of length L (Higham Thm 24.2, as in
fft_oracle.py) and g = sqrt2 * gamma_2 for the complex products,
    ||y^ - y||_2 <= ( E1 + g G + eps (1 + g) G ) / sqrt(L)
    E1 = eps sqrt(L) ||c||_2 (||z||_1 + eps sqrt(L) ||z||_2)
         + ||c||_1 eps sqrt(L) ||z||_2,
    G  = (||c||_1 + eps sqrt(L) ||c||_2) (1 + eps) sqrt(L) ||z||_2
(forward FFTs of c and z each within eps relative, |F c|_inf <= ||c||_1,
|F z|_inf <= ||z||_1, the inverse FFT within eps of its input's image), which
bounds the error of both real outputs of the pair; plus the oracle's own
gamma_K * || |A| |x| ||_2 in long double. For fft=library the FFTW bound is the
requirement of fft_oracle.py (with + u for the 1/L scaling).

Usage: toeplitz_oracle.py ROPE_RUN WORKDIR [--configs N] [--seed S]
"""

import argparse
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "reference"))
import ropeattn_ref as ref  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from fft_oracle import fft_bound, U, NP, ttype  # noqa: E402


def circulant(a_of_delta, r, k, length):
    c = np.zeros(length)
    for u in range(length):
        if u < r:
            c[u] = a_of_delta(u)
        elif u >= length - k + 1:
            c[u] = a_of_delta(u - length)
    return c


def run_case(args, idx, case, rng):
    batch, n, m, cols, shared, transposed, causal, et, backend = case
    k, r = (n, m) if transposed else (m, n)
    sym_shape = (n + m - 1,) if shared else tuple(batch) + (n + m - 1,)
    x_shape = tuple(batch) + (k, cols)
    y_shape = tuple(batch) + (r, cols)
    sym = rng.standard_normal(sym_shape).astype(NP[et])
    x = rng.standard_normal(x_shape).astype(NP[et])
    ts, tx, ty = ttype(sym_shape, et), ttype(x_shape, et), ttype(y_shape, et)
    attrs = (" transposed" if transposed else "") + (" causal" if causal
                                                     else "")
    src = (f"func.func @f(%s: {ts}, %x: {tx}) -> {ty} {{\n"
           f"  %y = ropeattn.toeplitz_matmul %s, %x{attrs} : ({ts}, {tx}) "
           f"-> {ty}\n  return %y : {ty}\n}}\n")
    base = os.path.join(args.workdir, f"toep{idx}")
    with open(base + ".mlir", "w") as f:
        f.write(src)
    np.save(base + "_s.npy", sym)
    np.save(base + "_x.npy", x)
    cmd = [args.rope_run, base + ".mlir", "--function=f",
           f"--input=@{base}_s.npy", f"--input=@{base}_x.npy",
           f"--output=@{base}_y.npy", f"--pipeline-options=fft={backend}"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return False, "rope-run failed: " + p.stderr.strip()[-300:]
    y = np.load(base + "_y.npy")
    if y.shape != y_shape:
        return False, f"result shape {y.shape}, expected {y_shape}"
    if y.size == 0:
        return True, "empty"
    if k == 0:
        return (bool(np.all(y == 0)), "zeros")
    length = 1 << max(r + k - 2, 0).bit_length() if r + k - 1 > 1 else 1
    eps = fft_bound(length, et, backend == "library")
    u = U[et]
    g = math.sqrt(2) * 2 * u / (1 - 2 * u)
    uld = 2.0 ** -64
    worst = 0.0
    for z in np.ndindex(*batch):
        s = sym.astype(np.float64) if shared else sym[z].astype(np.float64)
        t = ref.toeplitz_matrix(s, n, m, causal)
        a = t.T if transposed else t
        xz = x[z].astype(np.float64)
        exact = a.astype(np.longdouble) @ xz.astype(np.longdouble)
        oracle_err = (k * uld / (1 - k * uld)) * np.abs(a) @ np.abs(xz)

        def a_of(delta):
            return a[delta, 0] if delta >= 0 else a[0, -delta]
        c = circulant(a_of, r, k, length)
        c1, c2 = np.sum(np.abs(c)), np.sqrt(np.sum(c * c))
        sl = math.sqrt(length)
        for p0 in range(0, cols, 2):
            pair = [p0] + ([p0 + 1] if p0 + 1 < cols else [])
            zc = np.zeros(k, dtype=complex)
            zc += xz[:, pair[0]]
            if len(pair) == 2:
                zc += 1j * xz[:, pair[1]]
            z1, z2 = np.sum(np.abs(zc)), np.sqrt(np.sum(np.abs(zc) ** 2))
            e1 = eps * sl * c2 * (z1 + eps * sl * z2) + c1 * eps * sl * z2
            gg = (c1 + eps * sl * c2) * (1 + eps) * sl * z2
            bound = (e1 + g * gg + eps * (1 + g) * gg) / sl
            for col in pair:
                err = float(np.sqrt(np.sum(
                    (y[z][:, col].astype(np.longdouble) - exact[:, col]) ** 2)))
                allowed = bound + float(np.sqrt(np.sum(oracle_err[:, col] ** 2)))
                worst = max(worst, err / allowed if allowed > 0 else
                            (0.0 if err == 0 else math.inf))
    return worst <= 1.0, f"L = {length}, max err/bound = {worst:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("workdir")
    ap.add_argument("--configs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    cases = []
    for i in range(args.configs):
        n = int(rng.integers(1, 71))
        m = [n, int(rng.integers(1, 71))][i % 2]
        batch = [[], [2], [2, 2]][int(rng.integers(3))]
        cols = int(rng.integers(1, 10))
        shared = bool(rng.integers(2)) or not batch
        cases.append((batch, n, m, cols, shared, bool(i & 2), bool(i & 4),
                      ["f32", "f64"][(i >> 3) % 2],
                      ["codegen", "library"][i % 2 ^ (i >> 4) % 2]))
    cases += [([], 5, 0, 3, True, False, False, "f32", "codegen"),   # K = 0
              ([], 0, 5, 3, True, True, False, "f32", "library"),    # K = 0
              ([2], 4, 6, 0, True, False, True, "f64", "codegen"),   # C = 0
              ([], 1, 1, 1, True, False, True, "f64", "codegen"),
              ([], 1, 1, 2, True, True, False, "f32", "library")]
    passed = 0
    for i, case in enumerate(cases):
        ok, msg = run_case(args, i, case, rng)
        batch, n, m, cols, shared, tr, ca, et, be = case
        print(f"{'PASS' if ok else 'FAIL'}: toeplitz {be} {et} batch={batch} "
              f"N={n} M={m} C={cols} {'shared' if shared else 'per-batch'}"
              f"{' transposed' if tr else ''}{' causal' if ca else ''}: {msg}")
        passed += ok
    print(f"{passed}/{len(cases)} cases passed")
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
