"""Benchmark of the general per-offset form (ropeattn.general_attention,
FRA Def. 1.1) by monomials + FFT Toeplitz products (method toeplitz) at small
|S| and degree g, against its exact lowering.

One head, D = 4, Dv = 4, causal, f32, shared random weights W[delta, t] in
[-1, 1]; q and k are scaled so that the run-time certificate
beta^ = omega |s| max|q^| max|k^| is 0.9 B_g, where B_g is the range of degree
g (family minimax, epsilon 1e-2; from poly-approx-dump), so the rewrite runs
degree g with |M| = C(|S| + g, g) monomials. Each point: median of rope-run
--benchmark calls (after a warm-up call), FFTW backend. Reported: time vs n,
the predicted term count |M|, the cost model's flop estimate (docs/Spec.md
§16.4, transcribed here) and the time per estimated flop (flat if the model's
scaling in n and |M| is right), and max|O_toeplitz - O_exact| / max|v|
against the certified bound B(delta_g).

Writes bench/results/general_cpu.{md,json,png}.

    .venv/bin/python bench/run_general_bench.py [--ns 1024,2048,4096,8192]

Backward section (--backward): the same configurations for
ropeattn.general_attention_grad (dq, dk, dv, dW) by the Toeplitz backward
(transposed Toeplitz products, FFT cross-correlations; docs/Spec.md §16.5)
against its exact lowering, fed with the Toeplitz forward's output and a
random dO; reports the time vs n, |M|, the cost model's backward estimate
(§16.4, transcribed) and max|dX_toeplitz - dX_exact| / max|dX_exact| per
gradient. Writes bench/results/general_grad_cpu.{md,json,png}.

    .venv/bin/python bench/run_general_bench.py --backward [--ns 512,1024,2048]
"""
import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D, DV, EPS = 4, 4, 1e-2
SUPPORTS = {1: [(0, 1)], 2: [(0, 1), (2, 2)], 3: [(0, 1), (2, 2), (3, 0)]}
CONFIGS = [(1, 1), (1, 2), (1, 3), (2, 2), (3, 2), (2, 3)]


def ranges(dump):
    """{g: (B_g, delta_g)}: the compiled candidates (cost::polyCandidate,
    poly-approx-dump --candidate)."""
    out = {}
    for g in range(1, 5):
        row = json.loads(subprocess.run(
            [dump, "--candidate", "--family=minimax", f"--degree={g}",
             f"--eps={EPS!r}"], capture_output=True, text=True,
            check=True).stdout)
        if row:
            out[g] = (row["beta"], row["delta"])
    return out


def predicted_flops(n, s, g):
    """docs/Spec.md §16.4, toeplitz (general), one head, N = M = n."""
    terms = math.comb(s + g, g)
    w = DV + 1
    lp = 2 ** math.ceil(math.log2(2 * n - 1))
    f = 5 * lp * math.log2(lp)
    t = math.ceil(w / 2) * (2 * f + 6 * lp) + f
    return ((n + n + 2 * n - 1) * terms * (g + s) + n * terms * w +
            terms * t + 3 * n * terms * w)


def predicted_grad_flops(n, s, g):
    """docs/Spec.md §16.4, toeplitz (general grad), one head, N = M = n,
    one shared table."""
    terms = math.comb(s + g, g)
    w = DV + 1
    lp = 2 ** math.ceil(math.log2(2 * n - 1))
    f = 5 * lp * math.log2(lp)
    t = math.ceil(w / 2) * (2 * f + 6 * lp) + f
    return (predicted_flops(n, s, g) + 2 * n * DV + n * w +
            5 * n * terms * w + terms * t + 2 * n * terms * (w + DV) +
            terms * (2 * w * f + 8 * w * lp + f) +
            (n + n + (2 * n - 1)) * s * terms * (s * g + 2))


def grad_src(n, s, method):
    t = f"tensor<1x{n}x{D}xf32>"
    tv = f"tensor<1x{n}x{DV}xf32>"
    tw = f"tensor<{2 * n - 1}x{s}xf32>"
    sup = ", ".join(f"{a}, {b}" for a, b in SUPPORTS[s])
    res = f"({t}, {t}, {tv}, {tw})"
    return (f"func.func @f(%q: {t}, %k: {t}, %v: {tv}, %o: {tv}, %do: {tv}, "
            f"%w: {tw}) -> {res} {{\n"
            f"  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %k, "
            f"%v, %o, %do weights(%w) support [{sup}] causal method {method} "
            f": ({t}, {t}, {tv}, {tv}, {tv}, {tw}) -> {res}\n"
            f"  return %dq, %dk, %dv, %dw : {t}, {t}, {tv}, {tw}\n}}\n")


def src(n, s, method):
    t = f"tensor<1x{n}x{D}xf32>"
    tv = f"tensor<1x{n}x{DV}xf32>"
    tw = f"tensor<{2 * n - 1}x{s}xf32>"
    sup = ", ".join(f"{a}, {b}" for a, b in SUPPORTS[s])
    return (f"func.func @f(%q: {t}, %k: {t}, %v: {tv}, %w: {tw}) -> {tv} {{\n"
            f"  %o = ropeattn.general_attention %q, %k, %v weights(%w) "
            f"support [{sup}] causal method {method} : ({t}, {t}, {tv}, {tw})"
            f" -> {tv}\n  return %o : {tv}\n}}\n")


def run(rope_run, tmp, n, s, method, reps, paths, tag, grad=False):
    path = os.path.join(tmp, f"{tag}.mlir")
    with open(path, "w") as fh:
        fh.write(grad_src(n, s, method) if grad else src(n, s, method))
    outs = [os.path.join(tmp, f"o{i}_{tag}.npy") for i in range(4 if grad
                                                               else 1)]
    cmd = [rope_run, path, "--function=f", f"--benchmark={reps}",
           f"--pipeline-options=fft=library family=minimax epsilon={EPS}"]
    cmd += [f"--output=@{o}" for o in outs]
    cmd += [f"--input=@{p}" for p in paths]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"rope-run failed ({tag}):\n{res.stderr}")
    ms = float(re.search(r"median ([0-9.e+-]+) ms", res.stdout).group(1))
    if grad:
        return ms, [np.load(o) for o in outs]
    return ms, np.load(outs[0])


def inputs(tmp, n, s, beta, tag):
    rng = np.random.default_rng(1000 * s + n)
    sc = 1 / math.sqrt(D)
    q = rng.standard_normal((1, n, D))
    k = rng.standard_normal((1, n, D))
    v = rng.standard_normal((1, n, DV))
    w = rng.uniform(-1, 1, (2 * n - 1, s))
    a = [x for x, _ in SUPPORTS[s]]
    b = [y for _, y in SUPPORTS[s]]
    nq = np.max(np.linalg.norm(q[..., a], axis=-1))
    nk = np.max(np.linalg.norm(k[..., b], axis=-1))
    om = np.max(np.abs(w[n - 1:]))  # visible offsets (causal)
    f = math.sqrt(beta / (sc * om * nq * nk))
    q, k = q * f, k * f
    paths = []
    for name, x in zip("qkvw", (q, k, v, w)):
        p = os.path.join(tmp, f"{name}_{tag}.npy")
        np.save(p, x.astype(np.float32))
        paths.append(p)
    return paths, float(np.max(np.abs(v)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", default="1024,2048,4096,8192")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--exact-max", type=int, default=4096)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--from-json", action="store_true",
                    help="rewrite the table and plot from general_cpu.json")
    ap.add_argument("--backward", action="store_true",
                    help="the general_attention_grad section instead")
    args = ap.parse_args()
    if args.backward:
        return backward(args)
    if args.from_json:
        out_dir = os.path.join(ROOT, "bench", "results")
        with open(os.path.join(out_dir, "general_cpu.json")) as fh:
            data = json.load(fh)
        data["meta"].setdefault("reps", args.reps)
        return write(out_dir, data["meta"], data["rows"])
    rope_run = os.path.join(args.build, "bin", "rope-run")
    rng_table = ranges(os.path.join(args.build, "bin", "poly-approx-dump"))
    ns = [int(x) for x in args.ns.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            exact_ms = {}
            for s, g in CONFIGS:
                bmax, delta = rng_table[g]
                lower = [rng_table[h][0] for h in rng_table if h < g]
                beta = 0.9 * bmax
                assert all(beta > x for x in lower), (g, beta, lower)
                tag = f"s{s}g{g}n{n}"
                paths, vmax = inputs(tmp, n, s, beta, tag)
                tt, ot = run(rope_run, tmp, n, s, "toeplitz", args.reps,
                             paths, tag + "t")
                row = {"n": n, "support": s, "degree": g,
                       "terms": math.comb(s + g, g), "beta": beta,
                       "delta": delta, "toeplitz_ms": tt,
                       "predicted_flops": predicted_flops(n, s, g)}
                if n <= args.exact_max:
                    te, oe = run(rope_run, tmp, n, s, "exact", args.reps,
                                 paths, tag + "x")
                    row["exact_ms"] = te
                    row["err"] = float(np.max(np.abs(ot - oe))) / vmax
                    row["bound"] = 2 * delta / (1 + math.sqrt(1 - delta ** 2))
                rows.append(row)
                print(json.dumps(row), flush=True)
    out_dir = os.path.join(ROOT, "bench", "results")
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "load": os.getloadavg(), "reps": args.reps}
    with open(os.path.join(out_dir, "general_cpu.json"), "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    write(out_dir, meta, rows)


def backward(args):
    """general_attention_grad: toeplitz vs exact (the forward's output fed
    to both, as a training step does)."""
    rope_run = os.path.join(args.build, "bin", "rope-run")
    out_dir = os.path.join(ROOT, "bench", "results")
    if args.from_json:
        with open(os.path.join(out_dir, "general_grad_cpu.json")) as fh:
            data = json.load(fh)
        return write_grad(out_dir, data["meta"], data["rows"])
    rng_table = ranges(os.path.join(args.build, "bin", "poly-approx-dump"))
    ns = [int(x) for x in args.ns.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            for s, g in CONFIGS:
                bmax, delta = rng_table[g]
                beta = 0.9 * bmax
                tag = f"s{s}g{g}n{n}"
                paths, _ = inputs(tmp, n, s, beta, tag)
                _, o = run(rope_run, tmp, n, s, "toeplitz", 1, paths,
                           tag + "f")
                rng = np.random.default_rng(n + 7 * s + g)
                extra = []
                for name, x in (("o", o), ("do", rng.standard_normal(
                        o.shape))):
                    p = os.path.join(tmp, f"{name}_{tag}.npy")
                    np.save(p, x.astype(np.float32))
                    extra.append(p)
                gpaths = paths[:3] + extra + paths[3:]
                tt, gt = run(rope_run, tmp, n, s, "toeplitz", args.reps,
                             gpaths, tag + "gt", grad=True)
                row = {"n": n, "support": s, "degree": g,
                       "terms": math.comb(s + g, g), "beta": beta,
                       "delta": delta, "toeplitz_ms": tt,
                       "predicted_flops": predicted_grad_flops(n, s, g)}
                if n <= args.exact_max:
                    te, ge = run(rope_run, tmp, n, s, "exact", args.reps,
                                 gpaths, tag + "gx", grad=True)
                    row["exact_ms"] = te
                    row["err"] = [float(np.max(np.abs(a - b)) /
                                        max(np.max(np.abs(b)), 1e-30))
                                  for a, b in zip(gt, ge)]
                rows.append(row)
                print(json.dumps(row), flush=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "load": os.getloadavg(), "reps": args.reps}
    with open(os.path.join(out_dir, "general_grad_cpu.json"), "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    write_grad(out_dir, meta, rows)


def write_grad(out_dir, meta, rows):
    lines = [
        "# general per-offset form, backward: Toeplitz gradient vs exact",
        "",
        f"{meta['date']}, load average {meta['load'][0]:.2f} (2 cores, "
        "shared). ropeattn.general_attention_grad (dq, dk, dv, dW), one head, "
        "D = Dv = 4, causal, f32, random shared weights, beta^ = 0.9 B_g, "
        f"family minimax, epsilon {EPS}, FFTW; o = the Toeplitz forward's "
        f"output, random dO; medians of {meta['reps']} rope-run --benchmark "
        "calls after a warm-up. est. flops: the backward cost model of "
        "docs/Spec.md §16.4; rel. diff: max|toeplitz - exact| / max|exact| "
        "per gradient (dq, dk, dv, dW).",
        "",
        "    .venv/bin/python bench/run_general_bench.py --backward",
        "",
        "| n | S | g | M | toeplitz (ms) | est. flops | ns/flop | exact (ms) "
        "| exact / toeplitz | rel. diff dq, dk, dv, dW |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ex = r.get("exact_ms")
        lines.append(
            f"| {r['n']} | {r['support']} | {r['degree']} | {r['terms']} | "
            f"{r['toeplitz_ms']:.3g} | {r['predicted_flops']:.2e} | "
            f"{1e6 * r['toeplitz_ms'] / r['predicted_flops']:.3f} | "
            + (f"{ex:.4g} | {ex / r['toeplitz_ms']:.2f} | "
               + ", ".join(f"{e:.1e}" for e in r["err"]) + " |"
               if ex is not None else "- | - | - |"))
    with open(os.path.join(out_dir, "general_grad_cpu.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for s, g in CONFIGS:
        rs = [r for r in rows if r["support"] == s and r["degree"] == g]
        ax.loglog([r["n"] for r in rs], [r["toeplitz_ms"] for r in rs], "o-",
                  label=f"|S|={s}, g={g}, |M|={math.comb(s + g, g)}")
    ex = {r["n"]: r["exact_ms"] for r in rows
          if "exact_ms" in r and r["support"] == 1 and r["degree"] == 1}
    ax.loglog(list(ex), list(ex.values()), "k^--", label="exact (|S|=1)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("n = m")
    ax.set_ylabel("ms (median)")
    ax.set_title("general_attention_grad: toeplitz vs exact")
    ax.legend(fontsize=7)
    nmax = max(r["n"] for r in rows)
    rs = [r for r in rows if r["n"] == nmax]
    bx.plot([r["terms"] for r in rs], [r["toeplitz_ms"] for r in rs], "o")
    for r in rs:
        bx.annotate(f"S={r['support']},g={r['degree']}",
                    (r["terms"], r["toeplitz_ms"]), fontsize=7)
    bx.set_xlabel("|M| = C(|S| + g, g)")
    bx.set_ylabel(f"ms at n = {nmax}")
    bx.set_title("backward time vs predicted term count")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "general_grad_cpu.png"), dpi=120)
    print("wrote bench/results/general_grad_cpu.{md,json,png}")


def write(out_dir, meta, rows):
    """The table and the plot from the measured rows."""
    ns = sorted({r["n"] for r in rows})
    lines = [
        "# general per-offset form: monomials + FFT Toeplitz vs exact",
        "",
        f"{meta['date']}, load average {meta['load'][0]:.2f} (2 cores, "
        "shared). One head, D = Dv = 4, causal, f32, random shared weights, "
        "beta^ = 0.9 B_g (so the certificate runs degree g), family minimax, "
        f"epsilon {EPS}, FFTW; medians of {meta['reps']} rope-run --benchmark "
        "calls after a warm-up. |M| = C(|S| + g, g); est. flops: the cost "
        "model of docs/Spec.md §16.4; ns/flop = toeplitz time / est. flops.",
        "",
        "    .venv/bin/python bench/run_general_bench.py",
        "",
        "| n | S | g | M | toeplitz (ms) | est. flops | ns/flop | exact (ms) "
        "| exact / toeplitz | max diff / max abs v | bound B(delta_g) |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ex = r.get("exact_ms")
        lines.append(
            f"| {r['n']} | {r['support']} | {r['degree']} | {r['terms']} | "
            f"{r['toeplitz_ms']:.3g} | {r['predicted_flops']:.2e} | "
            f"{1e6 * r['toeplitz_ms'] / r['predicted_flops']:.3f} | "
            + (f"{ex:.4g} | {ex / r['toeplitz_ms']:.1f} | {r['err']:.1e} | "
               f"{r['bound']:.1e} |" if ex is not None else "- | - | - | - |"))
    with open(os.path.join(out_dir, "general_cpu.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for s, g in CONFIGS:
        rs = [r for r in rows if r["support"] == s and r["degree"] == g]
        ax.loglog([r["n"] for r in rs], [r["toeplitz_ms"] for r in rs], "o-",
                  label=f"|S|={s}, g={g}, |M|={math.comb(s + g, g)}")
    ex = {}
    for r in rows:
        if "exact_ms" in r and r["support"] == 1 and r["degree"] == 1:
            ex[r["n"]] = r["exact_ms"]
    ax.loglog(list(ex), list(ex.values()), "k^--", label="exact (|S|=1)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("n = m")
    ax.set_ylabel("ms (median)")
    ax.set_title("general form: toeplitz vs exact")
    ax.legend(fontsize=7)
    nmax = max(ns)
    rs = [r for r in rows if r["n"] == nmax]
    bx.plot([r["terms"] for r in rs], [r["toeplitz_ms"] for r in rs], "o")
    for r in rs:
        bx.annotate(f"S={r['support']},g={r['degree']}",
                    (r["terms"], r["toeplitz_ms"]), fontsize=7)
    bx.set_xlabel("|M| = C(|S| + g, g)")
    bx.set_ylabel(f"ms at n = {nmax}")
    bx.set_title("time vs predicted term count")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "general_cpu.png"), dpi=120)
    print("wrote bench/results/general_cpu.{md,json,png}")


if __name__ == "__main__":
    main()
