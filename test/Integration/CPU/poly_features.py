"""ropeattn.poly_features on the CPU vs. numpy (the oracle rule).

For every D in {1, 2, 3, 5, 8}, g in {0, ..., 4} and element type f64, f32
(plus edge cases D = 0, N = M = 1, f16 inputs) this compiles, with rope-run
(rope-lower-to-cpu), a function of q : [B.., N, D] and k : [B.., M, D] that
returns three ropeattn.poly_features results: phi_query(q), phi_key(k) and
phi_key(q), with random coefficients (normal, so some are negative), a
random scale (either sign) and random batch dims (one rope-run call per
case; each op is lowered on its own); then

(1) compares each output, element by element, with an independent numpy
    transcription of docs/Spec.md ("ropeattn.poly_features"): the features
    are the tuples of itertools.combinations_with_replacement(range(D), k),
    k = 0..g (exactly the graded-lexicographic order of the spec), with
    weight w = c_k * s^k * k!/prod(alpha_j!) split as sign(w)*sqrt(|w|)
    (query) and sqrt(|w|) (key), evaluated in float64 on the exact input
    values. Tolerances (relative, per feature; no sums, so no cancellation):
      * f64: 1e-13.
      * f32 and f16 inputs (result f32): (g + 2) * 2^-24, with constant 1,
        a rigorous bound: the op rounds the weight to f32 once and then
        multiplies by at most g input entries, each product rounded once
        (the padding factors are 1.0, exact), so its relative error is at
        most (1 + 2^-24)^(g+1) - 1 <= (g + 1) * 2^-24 * (1 + 2^-21); the
        float64 weight (op and oracle) and the oracle's products add fewer
        than 2 * (g + 4) * 2^-53; the sum is below (g + 2) * 2^-24.
        f16 inputs extend to f32 exactly, so the same bound applies. The
        results lie far above the f32 subnormal range here (entries of
        magnitude >= 1e-37 are compared relatively; smaller ones must be
        within 1e-37 absolutely).
    Also: |phi_query(q)| == |phi_key(q)| bitwise (the sides differ only in
    the signs of the weights).
(2) checks the identity the polynomial method rests on, on the op's own f64
    outputs: sum_a phi_query(q)_a * phi_key(k)_a = p(s<q, k>) =
    sum_k c_k (s<q, k>)^k for all N x M pairs, to 1e-12 relative to
    P_abs = sum_k |c_k| (|s| <|q|, |k|>)^k, which is exactly the sum of the
    absolute values of the R products (so the natural scale of the
    rounding error of the feature dot product, and >= |p|; a relative error
    against |p| itself is meaningless where p nearly cancels). Where |p| is
    not small (>= P_abs / 10) the error relative to |p| is 10x that bound.

Usage: poly_features.py ROPE_RUN WORKDIR [--seed S]
Prints one line per case and exits non-zero if any case fails.
"""

import argparse
import itertools
import math
import os
import subprocess
import sys

import numpy as np

NP = {"f16": np.float16, "f32": np.float32, "f64": np.float64}
U32 = 2.0 ** -24


def ttype(shape, et):
    return "tensor<" + "".join(f"{s}x" for s in shape) + et + ">"


def features(x, coeffs, scale, side):
    """The spec's formula in float64: [.., N, D] -> [.., N, R]."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    cols = []
    for k, c in enumerate(coeffs):
        for tup in itertools.combinations_with_replacement(range(d), k):
            counts = [tup.count(j) for j in set(tup)]
            multinomial = math.factorial(k) // math.prod(
                math.factorial(a) for a in counts)
            w = c * scale ** k * multinomial
            root = math.sqrt(abs(w))
            wside = -root if (side == "query" and w < 0) else root
            col = np.full(x.shape[:-1], wside)
            for i in tup:
                col = col * x[..., i]
            cols.append(col)
    return np.stack(cols, axis=-1)


def poly(t, coeffs):
    return sum(c * t ** k for k, c in enumerate(coeffs))


class Case:
    def __init__(self, rng, d, g, dtype, n=None):
        self.d, self.g, self.dtype = d, g, dtype
        nb = int(rng.integers(0, 3))
        self.batch = [int(b) for b in rng.integers(1, 4, size=nb)]
        self.n = int(rng.integers(1, 24)) if n is None else n
        self.m = int(rng.integers(1, 24)) if n is None else n
        self.coeffs = [float(c) for c in rng.standard_normal(g + 1)]
        self.scale = float(rng.choice([-1, 1]) * rng.uniform(0.1, 1.5))
        self.r = math.comb(d + g, g)

    def describe(self):
        return (f"{self.dtype} D={self.d} g={self.g} R={self.r} "
                f"batch={self.batch} N={self.n} M={self.m} "
                f"scale={self.scale:.4f} c=[{', '.join(f'{c:.3f}' for c in self.coeffs)}]")

    def mlir(self):
        """@features(q, k) -> (phi_query(q), phi_key(k), phi_key(q))."""
        et = self.dtype
        acc = "f64" if et == "f64" else "f32"
        coeffs = ", ".join(f"{c:.17e}" for c in self.coeffs)
        tq, tk = (ttype(self.batch + [rows, self.d], et)
                  for rows in (self.n, self.m))
        fq, fk = (ttype(self.batch + [rows, self.r], acc)
                  for rows in (self.n, self.m))

        def op(x, side, tin, tout):
            return (f"ropeattn.poly_features {x} coefficients [{coeffs}] "
                    f"side {side} scale({self.scale:.17e}) : {tin} -> {tout}")
        return (f"func.func @features(%q: {tq}, %k: {tk}) -> ({fq}, {fk}, {fq}) {{\n"
                f"  %0 = {op('%q', 'query', tq, fq)}\n"
                f"  %1 = {op('%k', 'key', tk, fk)}\n"
                f"  %2 = {op('%q', 'key', tq, fq)}\n"
                f"  return %0, %1, %2 : {fq}, {fk}, {fq}\n}}\n")


def run(rope_run, mlir, inputs, outputs, workdir):
    cmd = [rope_run, mlir, "--function=features"]
    for i, x in enumerate(inputs):
        path = os.path.join(workdir, f"in{i}.npy")
        np.save(path, x)
        cmd.append(f"--input=@{path}")
    outs = [os.path.join(workdir, f"out{i}.npy") for i in range(outputs)]
    cmd += [f"--output=@{p}" for p in outs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"rope-run failed ({res.returncode}): "
                           f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return [np.load(p) for p in outs]


def feature_error(got, want, dtype, g):
    """(ok, text): |got - want| <= tol * |want| per feature (see above)."""
    acc = np.float64 if dtype == "f64" else np.float32
    if got.dtype != acc or got.shape != want.shape:
        return False, (f"got {got.dtype}{list(got.shape)}, want "
                       f"{np.dtype(acc)}{list(want.shape)}")
    got = got.astype(np.float64)
    tol = 1e-13 if dtype == "f64" else (g + 2) * U32
    err = np.abs(got - want)
    big = np.abs(want) >= 1e-37
    rel = float(np.max(err[big] / np.abs(want[big]), initial=0.0))
    tiny_ok = bool(np.all(err[~big] <= (0.0 if dtype == "f64" else 1e-37)))
    return rel <= tol and tiny_ok, f"{rel:.2e} (tol {tol:.2e})"


def check(rope_run, case, rng, workdir):
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "case.mlir")
    with open(path, "w") as fh:
        fh.write(case.mlir())
    dt = NP[case.dtype]
    q = rng.standard_normal(case.batch + [case.n, case.d]).astype(dt)
    k = rng.standard_normal(case.batch + [case.m, case.d]).astype(dt)
    phi_q, phi_k, phi_k_of_q = run(rope_run, path, [q, k], 3, workdir)
    ok = True
    line = []
    for name, got, x, side in (("q", phi_q, q, "query"),
                               ("k", phi_k, k, "key")):
        want = features(x, case.coeffs, case.scale, side)
        good, text = feature_error(got, want, case.dtype, case.g)
        ok = ok and good
        line.append(f"phi_{name} err {text}")
    # The same input on both sides: the magnitudes agree bitwise.
    same = np.array_equal(np.abs(phi_q), np.abs(phi_k_of_q))
    ok = ok and same
    line.append(f"|phi_query(q)| == |phi_key(q)|: {same}")
    if ok and case.dtype == "f64":
        lhs = phi_q @ np.swapaxes(phi_k, -1, -2)
        t = case.scale * (q @ np.swapaxes(k, -1, -2))
        rhs = poly(t, case.coeffs)
        tabs = abs(case.scale) * (np.abs(q) @ np.swapaxes(np.abs(k), -1, -2))
        pabs = poly(tabs, [abs(c) for c in case.coeffs])
        err = np.abs(lhs - rhs)
        rel = float(np.max(err / pabs))
        big = np.abs(rhs) >= pabs / 10
        rel_p = float(np.max(err[big] / np.abs(rhs[big]), initial=0.0))
        ok = ok and rel <= 1e-12 and rel_p <= 1e-11
        line.append(f"identity err {rel:.2e}/P_abs (tol 1e-12), "
                    f"{rel_p:.2e}/|p| where |p| >= P_abs/10 (tol 1e-11)")
    return ok, "; ".join(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("workdir")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = []
    for d in (1, 2, 3, 5, 8):
        for g in range(5):
            for dtype in ("f64", "f32"):
                cases.append(Case(rng, d, g, dtype))
    # Edge cases: no feature dimension (R = 1), single rows, f16 inputs (f32
    # results).
    cases += [Case(rng, 0, 3, "f64"), Case(rng, 0, 2, "f32"),
              Case(rng, 4, 3, "f64", n=1), Case(rng, 3, 4, "f32", n=1),
              Case(rng, 5, 3, "f16"), Case(rng, 2, 4, "f16")]
    failures = 0
    for i, case in enumerate(cases):
        try:
            ok, line = check(args.rope_run, case, rng,
                             os.path.join(args.workdir, f"c{i}"))
        except Exception as exc:  # report, count as failure
            ok, line = False, f"error: {exc}"
        print(f"[{'ok' if ok else 'FAIL'}] case {i}: {case.describe()}\n"
              f"    {line}", flush=True)
        failures += not ok
    print(f"{len(cases) - failures}/{len(cases)} cases passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
