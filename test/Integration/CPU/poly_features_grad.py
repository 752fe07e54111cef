"""ropeattn.poly_features_grad on the CPU vs. numpy (the oracle rule).

For D in {1, 2, 3, 5, 8}, g in {0, ..., 4}, f64 and f32, both layouts
(plain [B.., N, R] cotangent -> [B.., N, D]; transposed [B.., R, N] ->
[B.., D, N]) and random batch dims, compiles with rope-run a function
computing J^T w for random x and w, random coefficients of both signs and a
random scale, and compares it with an independent numpy transcription of
docs/Spec.md ("ropeattn.poly_features_grad"): for every feature tuple
(itertools.combinations_with_replacement, the spec's order) and every index
j in it, d/dx_j of w_side * prod(x[tuple]) = w_side * count_j * prod(x[tuple
minus one j]), summed against w in float64.

Six more cases are transposed with no batch dims and larger D (4 to 20) and
N (16 to 64): the polynomial backward's form, which rope-lower-to-cpu builds
as register-blocked vector loops (tiles of 16 f32 / 8 f64 rows, the last one
masked; groups of at most 16 output rows D).

Tolerance, per output entry, relative to S = sum of |terms| (the natural
scale of a sum with cancellation): f64: 1e-13; f32: (g + 2 + R') * 2^-24 * 1.01
with R' = C(D + g - 1, g - 1): each term is a product of at most g - 1 input
entries, one rounded table constant and two more products (<= g + 2
roundings), summed sequentially over the R' terms (gamma_R').

The f64 cases are also checked against central finite differences of the
numpy feature map (directional derivative along a random direction), so the
oracle itself is validated: |<J^T w, u> - (F(x + hu) - F(x - hu))/2h| with
F(x) = <w, phi(x)>, to 1e-6 relative.

Usage: poly_features_grad.py ROPE_RUN WORKDIR [--seed S]
"""

import argparse
import itertools
import math
import os
import subprocess
import sys

import numpy as np

NP = {"f32": np.float32, "f64": np.float64}
U32 = 2.0 ** -24


def ttype(shape, et):
    return "tensor<" + "".join(f"{s}x" for s in shape) + et + ">"


def tuples(d, g):
    for k in range(g + 1):
        yield from itertools.combinations_with_replacement(range(d), k)


def weight(tup, coeffs, scale, side):
    k = len(tup)
    counts = [tup.count(j) for j in set(tup)]
    multinomial = math.factorial(k) // math.prod(math.factorial(a)
                                                 for a in counts)
    w = coeffs[k] * scale ** k * multinomial
    root = math.sqrt(abs(w))
    return -root if (side == "query" and w < 0) else root


def features(x, coeffs, scale, side):
    d = x.shape[-1]
    cols = []
    for tup in tuples(d, len(coeffs) - 1):
        col = np.full(x.shape[:-1], weight(tup, coeffs, scale, side))
        for i in tup:
            col = col * x[..., i]
        cols.append(col)
    return np.stack(cols, axis=-1)


def vjp(x, w, coeffs, scale, side):
    """(J^T w, sum of |terms|) in float64; x [.., N, D], w [.., N, R]."""
    d = x.shape[-1]
    out = np.zeros(x.shape)
    mag = np.zeros(x.shape)
    for a, tup in enumerate(tuples(d, len(coeffs) - 1)):
        wa = weight(tup, coeffs, scale, side)
        for j in set(tup):
            rest = list(tup)
            rest.remove(j)
            term = np.full(x.shape[:-1], wa * tup.count(j)) * w[..., a]
            for i in rest:
                term = term * x[..., i]
            out[..., j] += term
            mag[..., j] += np.abs(term)
    return out, mag


class Case:
    def __init__(self, rng, d, g, dtype, transposed, n=None):
        self.d, self.g, self.dtype, self.tr = d, g, dtype, transposed
        nb = int(rng.integers(0, 3)) if n is None else 0
        self.batch = [int(b) for b in rng.integers(1, 4, size=nb)]
        self.n = int(rng.integers(1, 20)) if n is None else n
        self.coeffs = [float(c) for c in rng.standard_normal(g + 1)]
        self.scale = float(rng.choice([-1, 1]) * rng.uniform(0.1, 1.5))
        self.side = str(rng.choice(["query", "key"]))
        self.r = math.comb(d + g, g)
        self.r1 = math.comb(d + g - 1, g - 1) if g > 0 else 0

    def describe(self):
        return (f"{self.dtype} D={self.d} g={self.g} R={self.r} "
                f"{'transposed ' if self.tr else ''}{self.side} "
                f"batch={self.batch} N={self.n} scale={self.scale:.3f}")

    def mlir(self):
        et = self.dtype
        coeffs = ", ".join(f"{c:.17e}" for c in self.coeffs)
        tx = ttype(self.batch + [self.n, self.d], et)
        if self.tr:
            tw = ttype(self.batch + [self.r, self.n], et)
            to = ttype(self.batch + [self.d, self.n], et)
        else:
            tw = ttype(self.batch + [self.n, self.r], et)
            to = ttype(self.batch + [self.n, self.d], et)
        tr = " transposed" if self.tr else ""
        return (f"func.func @vjp(%x: {tx}, %w: {tw}) -> {to} {{\n"
                f"  %0 = ropeattn.poly_features_grad %x, %w coefficients "
                f"[{coeffs}] side {self.side}{tr} scale({self.scale:.17e}) "
                f": {tx}, {tw} -> {to}\n"
                f"  return %0 : {to}\n}}\n")


def run(rope_run, path, inputs, workdir):
    cmd = [rope_run, path, "--function=vjp"]
    for i, x in enumerate(inputs):
        p = os.path.join(workdir, f"in{i}.npy")
        np.save(p, x)
        cmd.append(f"--input=@{p}")
    out = os.path.join(workdir, "out.npy")
    cmd.append(f"--output=@{out}")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"rope-run failed ({res.returncode}): "
                           f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return np.load(out)


def check(rope_run, case, rng, workdir):
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "case.mlir")
    with open(path, "w") as fh:
        fh.write(case.mlir())
    dt = NP[case.dtype]
    x = rng.standard_normal(case.batch + [case.n, case.d]).astype(dt)
    w = rng.standard_normal(case.batch + [case.n, case.r]).astype(dt)
    w_in = np.ascontiguousarray(np.swapaxes(w, -1, -2)) if case.tr else w
    got = run(rope_run, path, [x, w_in], workdir).astype(np.float64)
    if case.tr:
        got = np.swapaxes(got, -1, -2)
    want, mag = vjp(x.astype(np.float64), w.astype(np.float64), case.coeffs,
                    case.scale, case.side)
    if case.dtype == "f64":
        tol = 1e-13
    else:
        tol = (case.g + 2 + case.r1) * U32 * 1.01
    err = np.abs(got - want)
    bound = tol * mag + 1e-300
    worst = float(np.max(err / np.maximum(mag, 1e-300), initial=0.0))
    ok = bool(np.all(err <= bound))
    line = f"err {worst:.2e}·S (tol {tol:.2e}·S)"
    if case.dtype == "f64" and case.d > 0:
        # Validate the oracle: finite differences of <w, phi(x)>.
        xs = x.astype(np.float64)
        u = rng.standard_normal(xs.shape)
        h = 1e-6

        def f(y):
            return float(np.sum(w * features(y, case.coeffs, case.scale,
                                             case.side)))
        fd = (f(xs + h * u) - f(xs - h * u)) / (2 * h)
        an = float(np.sum(want * u))
        fd_ok = abs(fd - an) <= 1e-6 * max(1.0, abs(an))
        ok = ok and fd_ok
        line += f"; oracle vs finite differences {abs(fd - an):.1e}"
    return ok, line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("workdir")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = []
    for d in (1, 2, 3, 5, 8):
        for g in range(5):
            for dtype in ("f64", "f32"):
                cases.append(Case(rng, d, g, dtype, bool(rng.integers(0, 2))))
    for d, g, dtype, n in ((16, 3, "f32", 37), (16, 4, "f64", 21),
                           (20, 2, "f32", 50), (20, 3, "f64", 16),
                           (17, 2, "f32", 33), (4, 4, "f32", 64)):
        cases.append(Case(rng, d, g, dtype, True, n))
    passed = 0
    for i, case in enumerate(cases):
        try:
            ok, text = check(args.rope_run, case, rng,
                             os.path.join(args.workdir, str(i)))
        except RuntimeError as e:
            ok, text = False, str(e)
        passed += ok
        print(f"{'PASS' if ok else 'FAIL'} {case.describe()}: {text}")
    print(f"{passed}/{len(cases)} cases passed")
    sys.exit(0 if passed == len(cases) else 1)


if __name__ == "__main__":
    main()
