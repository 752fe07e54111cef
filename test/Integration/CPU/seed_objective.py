"""The seed objective through the dialect (examples/seed_objective), checked
against finite differences.

  L(X) = 1/2 |D^-1 exp(A1 X A2^T / d) A3 Y - E|_F^2

examples/seed_objective/seed_objective.mlir computes L and dL/dX (and, for
the Toeplitz variant with a relative bias b, dL/db) with ropeattn.attention
and ropeattn.attention_grad. This script, on random A1, A2, A3, X, Y, E
(n = 128, d = 4, f64, logit range beta ~ 0.8 so that a polynomial degree
covers it at epsilon = 1e-2), checks:

  exact       L equals an independent numpy L to 1e-12 (relative), and each
              of the 16 entries of dL/dX equals the central finite
              difference of the numpy L (h = 1e-5) to 1e-7 relative to
              max |dL/dX| (the FD truncation is ~h^2 |L'''| ~ 1e-10 here);
  polynomial  the approximate path ran (dX differs from exact), |L^ - L| is
              within the certified output bound (|O^ - O| <= B(delta)
              max|v| per entry: |L^ - L| <= sum |R| e + e^2/2 with
              e = B(delta) Vmax), and dL^/dX is the gradient of the
              compiled L^: <dX^, U> equals the central FD of rope-run's own
              L^ along 3 random directions U to 1e-6 relative (the
              certificate picks the same degree at X +- hU);
  toeplitz    the same for L^(X, b) in X and in b (dL^/db), with a random
              bias table; and with b = 0 (the seed objective itself) its
              dX^ equals the polynomial method's to 1e-10 relative (same
              degree and coefficients: the same function, computed once by
              chunked feature scans and once by FFT Toeplitz products).

The example is compiled once through the Python package
(ropeattn.compile, rope-lower-to-cpu with family=minimax epsilon=1e-2) and
its functions called for every evaluation; the exact variant also runs once
through rope-run, which must give the same bytes.

Usage: seed_objective.py ROPE_RUN EXAMPLE.mlir WORKDIR
"""

import math
import os
import subprocess
import sys

import numpy as np

import ropeattn

N, D = 128, 4
OPTS = "--pipeline-options=family=minimax epsilon=1e-2"


MODULE = None


def run(rope_run, path, func, inputs, n_out, workdir):
    """func(*inputs) through the compiled module."""
    global MODULE
    if MODULE is None:
        with open(path) as fh:
            MODULE = ropeattn.compile(fh.read(), pipeline_options=OPTS.split(
                "=", 1)[1])
    outs = MODULE[func](*inputs)
    assert len(outs) == n_out
    return list(outs)


def run_tool(rope_run, path, func, inputs, n_out, workdir):
    cmd = [rope_run, path, f"--function={func}", OPTS]
    for i, x in enumerate(inputs):
        p = os.path.join(workdir, f"{func}_in{i}.npy")
        np.save(p, x)
        cmd.append(f"--input=@{p}")
    outs = [os.path.join(workdir, f"{func}_out{i}.npy") for i in range(n_out)]
    cmd += [f"--output=@{p}" for p in outs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"rope-run failed: {res.stderr[-800:]}")
    return [np.load(p) for p in outs]


def np_loss(a1, a2, a3, x, y, e, b=None):
    lg = a1 @ x @ a2.T / D
    if b is not None:
        i = np.arange(N)[:, None]
        j = np.arange(N)[None, :]
        lg = lg + b[i - j + N - 1]
    lg = lg - lg.max(1, keepdims=True)
    p = np.exp(lg)
    o = (p / p.sum(1, keepdims=True)) @ (a3 @ y)
    return 0.5 * float(np.sum((o - e) ** 2)), o


def main():
    rope_run, example, workdir = sys.argv[1:4]
    os.makedirs(workdir, exist_ok=True)
    rng = np.random.default_rng(7)
    a1, a2, a3 = (rng.standard_normal((N, D)) for _ in range(3))
    x, y = rng.standard_normal((D, D)), rng.standard_normal((D, D))
    e = rng.standard_normal((N, D)) * 0.5
    q = a1 @ x
    f = math.sqrt(0.8 * D / (np.max(np.linalg.norm(q, axis=1)) *
                             np.max(np.linalg.norm(a2, axis=1))))
    a1, a2 = a1 * f, a2 * f
    bias = rng.uniform(-0.5, 0.5, 2 * N - 1)
    base = [a1, a2, a3, x, y, e]
    ok = True

    def report(name, good, msg):
        nonlocal ok
        ok = ok and good
        print(f"{'PASS' if good else 'FAIL'}: {name}: {msg}", flush=True)

    # exact
    lx, dx = run(rope_run, example, "objective_exact", base, 2, workdir)
    tx = run_tool(rope_run, example, "objective_exact", base, 2, workdir)
    report("exact: rope-run = Python package", np.array_equal(tx[0], lx)
           and np.array_equal(tx[1], dx), "same bytes")
    lref, oref = np_loss(*base)
    report("exact loss", abs(float(lx) - lref) <= 1e-12 * abs(lref),
           f"rope-run {float(lx):.15g} numpy {lref:.15g}")
    h = 1e-5
    fd = np.zeros((D, D))
    for a in range(D):
        for c in range(D):
            xp, xm = x.copy(), x.copy()
            xp[a, c] += h
            xm[a, c] -= h
            fd[a, c] = (np_loss(a1, a2, a3, xp, y, e)[0] -
                        np_loss(a1, a2, a3, xm, y, e)[0]) / (2 * h)
    err = float(np.max(np.abs(dx - fd)) / np.max(np.abs(fd)))
    report("exact dL/dX vs finite differences of numpy L", err <= 1e-7,
           f"max rel err {err:.1e}")

    # polynomial and toeplitz: dL^/dX against FD of the compiled L^.
    vmax = float(np.max(np.linalg.norm(a3 @ y, axis=1)))
    resid = float(np.sum(np.abs(oref - e)))
    dirs = [rng.standard_normal((D, D)) for _ in range(3)]
    hh = 1e-4
    results = {}
    for name, extra in (("polynomial", []), ("toeplitz", [bias]),
                        ("toeplitz-b0", [np.zeros(2 * N - 1)])):
        func = "objective_" + name.split("-")[0]
        nout = 3 if extra else 2
        outs = run(rope_run, example, func, base + extra, nout, workdir)
        lh, dxh = float(outs[0]), outs[1]
        results[name] = dxh
        if name == "polynomial":
            report("polynomial path ran", not np.array_equal(dxh, dx),
                   "dX differs from the exact method's")
            # B(delta) for delta <= epsilon = 1e-2 (docs/Polynomial.md).
            bd = 2 * 1e-2 / (1 + math.sqrt(1 - 1e-4))
            ee = bd * vmax
            bound = resid * ee + N * D * ee * ee / 2
            report("polynomial |L^ - L| within the certified bound",
                   abs(lh - lref) <= bound,
                   f"|L^ - L| = {abs(lh - lref):.2e} <= {bound:.2e}")
        worst = 0.0
        for u in dirs:
            lp = float(run(rope_run, example, func,
                           [a1, a2, a3, x + hh * u, y, e] + extra, nout,
                           workdir)[0])
            lm = float(run(rope_run, example, func,
                           [a1, a2, a3, x - hh * u, y, e] + extra, nout,
                           workdir)[0])
            fdv = (lp - lm) / (2 * hh)
            an = float(np.sum(dxh * u))
            worst = max(worst, abs(fdv - an) /
                        (np.linalg.norm(dxh) * np.linalg.norm(u)))
        report(f"{name} dL^/dX vs finite differences of rope-run's L^",
               worst <= 1e-6, f"max rel err {worst:.1e}")
        if name == "toeplitz":
            db = outs[2]
            ub = rng.standard_normal(2 * N - 1)
            lp = float(run(rope_run, example, func,
                           base + [bias + hh * ub], nout, workdir)[0])
            lm = float(run(rope_run, example, func,
                           base + [bias - hh * ub], nout, workdir)[0])
            fdv = (lp - lm) / (2 * hh)
            an = float(np.sum(db * ub))
            rel = abs(fdv - an) / (np.linalg.norm(db) * np.linalg.norm(ub))
            report("toeplitz dL^/db vs finite differences of rope-run's L^",
                   rel <= 1e-6, f"rel err {rel:.1e}")
    d0 = float(np.max(np.abs(results["toeplitz-b0"] - results["polynomial"]))
               / np.max(np.abs(results["polynomial"])))
    report("toeplitz (b = 0) dX^ = polynomial dX^", d0 <= 1e-10,
           f"max rel diff {d0:.1e}")
    print("seed objective: all checks passed" if ok else
          "seed objective: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
