"""Benchmark of the polynomial method (issue 4): exact vs polynomial.

1. Time vs n (log-log), non-causal forward, B = H = 1, d = 16 (rows scaled
   so that the certificate is beta = 0.9: degree 4) and d = 32 (beta = 0.5:
   degree 3; at 0.9 the needed degree 4 has rank C(36, 4) = 58905 > max-rank
   and the exact path runs), epsilon = 1e-3, both paths through rope-run (medians), plus the
   scaling ratio t(64k)/t(8k) at a fixed degree.
2. Error vs degree vs beta: for each family's fitted degrees, the proven
   bound delta(g, beta) (poly-approx-dump) and the measured max|O~ - O|/max|v|
   of the compiled polynomial path at that degree against the exact path.

3. Backward: the polynomial attention_grad vs the polynomial forward vs the
   exact attention_grad (d = 16, beta = 0.9, non-causal and causal).
4. Efficiency, in the same run: the machine's fp32 matmul throughput
   (OpenBLAS sgemm 2048^3, rope-baseline --sgemm), the same sgemm on the
   polynomial path's product shape [r, C] x [C, Dv + 1], and the polynomial
   forward's matmul flops 2 (N + M) r (Dv + 1) divided by its whole time (a
   lower bound on its matmuls' throughput).

Writes bench/results/poly_cpu.{md,json,png}.

    .venv/bin/python bench/run_poly_bench.py [--quick]
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


def fn(method, n, d):
    t = f"tensor<1x1x{n}x{d}xf32>"
    return (f"func.func @f(%q: {t}, %k: {t}, %v: {t}) -> {t} {{\n"
            f"  %o = ropeattn.attention %q, %k, %v method {method} : "
            f"({t}, {t}, {t}) -> {t}\n  return %o : {t}\n}}\n")


def inputs(n, d, beta, seed=0):
    rng = np.random.default_rng(seed)
    s = 1.0 / math.sqrt(d)
    x = [rng.standard_normal((1, 1, n, d)) for _ in range(3)]
    for i in (0, 1):
        x[i] *= math.sqrt(beta / s) / np.linalg.norm(x[i], axis=-1,
                                                     keepdims=True)
    return [a.astype(np.float32) for a in x]


def run(rope_run, tmp, method, n, d, x, reps, options=""):
    path = os.path.join(tmp, f"{method}_{n}_{d}.mlir")
    with open(path, "w") as fh:
        fh.write(fn(method, n, d))
    args = []
    for name, a in zip("qkv", x):
        p = os.path.join(tmp, f"{name}_{n}_{d}.npy")
        np.save(p, a)
        args.append(f"--input=@{p}")
    out = os.path.join(tmp, f"out_{method}_{n}_{d}.npy")
    cmd = [rope_run, path, "--function=f", f"--benchmark={reps}",
           f"--output=@{out}"] + args
    if options:
        cmd.append(f"--pipeline-options={options}")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    ms = float(re.search(r"median ([0-9.]+) ms", res.stdout).group(1))
    return ms, np.load(out)


def grad_fn(method, n, d, causal):
    t = f"tensor<1x1x{n}x{d}xf32>"
    c = " causal" if causal else ""
    return (f"func.func @f(%q: {t}, %k: {t}, %v: {t}, %o: {t}, %do: {t}) -> "
            f"({t}, {t}, {t}) {{\n"
            f"  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do{c}"
            f" method {method} : ({t}, {t}, {t}, {t}, {t}) -> ({t}, {t}, {t})\n"
            f"  return %dq, %dk, %dv : {t}, {t}, {t}\n}}\n")


def fwd_fn(method, n, d, causal):
    return fn(method, n, d).replace(
        f"method {method}", ("causal " if causal else "") + f"method {method}")


def time_module(rope_run, tmp, text, arrays, reps, tag):
    path = os.path.join(tmp, f"{tag}.mlir")
    with open(path, "w") as fh:
        fh.write(text)
    cmd = [rope_run, path, "--function=f", f"--benchmark={reps}"]
    for i, a in enumerate(arrays):
        p = os.path.join(tmp, f"{tag}_{i}.npy")
        np.save(p, a)
        cmd.append(f"--input=@{p}")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(re.search(r"median ([0-9.]+) ms", res.stdout).group(1))


def sgemm(baseline, n, k, cols, reps=5):
    res = subprocess.run([baseline, f"--sgemm={n}", f"--k={k}",
                          f"--cols={cols}", f"--reps={reps}"],
                         capture_output=True, text=True, check=True)
    return float(re.search(r"([0-9.]+) GFLOP/s", res.stdout).group(1))


def fitted_ranges(dump, eps, family="minimax", max_degree=4):
    """{g: B_g}: the compiled fit's logit range per degree, the widest range
    with proven delta(g, B_g) <= eps (cost::polyCandidate, what
    ropeattn-expand-polynomial compiles; poly-approx-dump --candidate)."""
    out = {}
    for g in range(1, max_degree + 1):
        row = json.loads(subprocess.run(
            [dump, "--candidate", f"--family={family}", f"--degree={g}",
             f"--eps={eps!r}"], capture_output=True, text=True,
            check=True).stdout)
        if row:
            out[g] = row["beta"]
    return out


def backward_and_efficiency(rope_run, baseline, tmp, quick):
    d, beta, r = 16, 0.9, math.comb(16 + 4, 4)
    grad, eff = [], {}
    for causal in (False, True):
        for n in ([4096] if quick else [4096, 16384]):
            x = inputs(n, d, beta)
            rng = np.random.default_rng(2)
            o = rng.standard_normal(x[0].shape).astype(np.float32)
            do = rng.standard_normal(x[0].shape).astype(np.float32)
            row = {"n": n, "d": d, "causal": causal}
            # Medians of 9 runs each (the shared machine's noise moves
            # single runs by 10-30%).
            row["poly_fwd_ms"] = time_module(
                rope_run, tmp, fwd_fn("polynomial", n, d, causal), x, 9,
                f"pf{n}{causal}")
            row["poly_bwd_ms"] = time_module(
                rope_run, tmp, grad_fn("polynomial", n, d, causal),
                x + [o, do], 9, f"pb{n}{causal}")
            row["exact_bwd_ms"] = time_module(
                rope_run, tmp, grad_fn("exact", n, d, causal), x + [o, do],
                1, f"eb{n}{causal}")
            grad.append(row)
            print(f"backward n={n} causal={causal}: poly fwd "
                  f"{row['poly_fwd_ms']:.1f} ms, poly bwd "
                  f"{row['poly_bwd_ms']:.1f} ms "
                  f"({row['poly_bwd_ms'] / row['poly_fwd_ms']:.2f}x fwd), "
                  f"exact bwd {row['exact_bwd_ms']:.1f} ms", flush=True)
    n = 16384 if quick else 65536
    x = inputs(n, d, beta)
    eff["peak_gflops"] = sgemm(baseline, 2048, 2048, 2048)
    eff["shape_gflops"] = sgemm(baseline, r, 256, d + 1, reps=50)
    t = time_module(rope_run, tmp, fn("polynomial", n, d), x, 3, "eff")
    eff["n"] = n
    eff["poly_ms"] = t
    eff["path_gflops"] = 2.0 * (2 * n) * r * (d + 1) / (t * 1e6)
    eff["peak_gflops_after"] = sgemm(baseline, 2048, 2048, 2048)
    print(f"efficiency: sgemm 2048^3 {eff['peak_gflops']:.1f} / "
          f"{eff['peak_gflops_after']:.1f} GFLOP/s (before/after), sgemm "
          f"[{r}x256]x[256x{d + 1}] {eff['shape_gflops']:.1f} GFLOP/s, "
          f"polynomial forward n={n}: {eff['path_gflops']:.1f} GFLOP/s of "
          "matmul flops over its whole time", flush=True)
    return grad, eff


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sections", default="scaling,beta,error,backward",
                    help="comma-separated subset to measure; the others are "
                    "kept from bench/results/poly_cpu.json (with their dates)")
    args = ap.parse_args()
    rope_run = os.path.join(args.build_dir, "bin", "rope-run")
    baseline = os.path.join(args.build_dir, "bin", "rope-baseline")
    dump = os.path.join(args.build_dir, "bin", "poly-approx-dump")
    ns = [4096, 8192, 16384] if args.quick else \
        [4096, 8192, 16384, 32768, 65536]
    ds = [16] if args.quick else [16, 32]
    # d = 32 at beta = 0.5 runs degree 3 (r = C(35, 3) = 6545; B_3 = 0.665
    # at epsilon = 1e-3), d = 16 at 0.9 degree 4 (r = 4845, B_4 = 1.15).
    betas = {16: 0.9, 32: 0.5}
    eps = 1e-3
    sections = set(args.sections.split(","))
    out_dir = os.path.join(ROOT, "bench", "results")
    json_path = os.path.join(out_dir, "poly_cpu.json")
    previous = {}
    if sections != {"scaling", "beta", "error", "backward"} and \
            os.path.exists(json_path):
        with open(json_path) as fh:
            previous = json.load(fh)
    dates = dict(previous.get("dates", {}))
    if previous:
        # Sections of a file written without dates: its modification time.
        mtime = datetime.datetime.utcfromtimestamp(os.path.getmtime(json_path))
        for sec in ("scaling", "beta", "error", "backward"):
            dates.setdefault(sec, f"{mtime:%Y-%m-%d %H:%M} UTC")
    now = f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC"
    for sec in sections:
        dates[sec] = now
    # The machine's load (1-minute average, `uptime`) at the start and the
    # end of each measured section: the figures depend on it.
    loads = dict(previous.get("loads", {}))
    load_at = lambda: round(os.getloadavg()[0], 2)  # noqa: E731
    scaling = previous.get("scaling", [])
    betarows = previous.get("beta_64k", [])
    rows = previous.get("error", [])
    grad = previous.get("backward", [])
    eff = previous.get("efficiency", {})
    with tempfile.TemporaryDirectory() as tmp:
      if "scaling" in sections:
        loads["scaling"] = [load_at()]
        scaling = []
        for d in ds:
            beta = betas[d]
            for n in ns:
                x = inputs(n, d, beta)
                reps = 3 if n <= 16384 else 1
                te, oe = run(rope_run, tmp, "exact", n, d, x, reps)
                # The polynomial path is cheap but its time varies from run
                # to run (memory-bound): always the median of 5.
                tp, op = run(rope_run, tmp, "polynomial", n, d, x, 5,
                             f"epsilon={eps}")
                # The same path with every product through OpenBLAS
                # (vector-bits=-1): what ropeattn-vectorize-skinny-matmul
                # buys, in the same run.
                tb, _ = run(rope_run, tmp, "polynomial", n, d, x, 5,
                            f"epsilon={eps} vector-bits=-1")
                err = float(np.max(np.abs(op - oe)) / np.max(np.abs(x[2])))
                scaling.append({"d": d, "n": n, "beta": beta,
                                "exact_ms": te, "poly_ms": tp,
                                "poly_blas_ms": tb,
                                "speedup": te / tp, "err": err})
                print(f"d={d} n={n}: exact {te:.1f} ms, polynomial {tp:.1f} ms"
                      f" ({te / tp:.1f}x; BLAS products {tb:.1f} ms), "
                      f"max|dO|/max|v| = {err:.1e}", flush=True)
        # The speedup at 64k across the goal's range beta <= 1: the degree
        # the certificate picks depends on beta (the least g whose fitted
        # range B_g covers it; B_g = the widest range with proven
        # delta(g, B_g) <= epsilon).
      if "beta" in sections:
        loads["beta"] = [load_at()]
        betarows = []
        ranges = fitted_ranges(dump, eps)
        # Just inside B_3 and B_4 (the run-time certificate adds a rounding
        # slack), 0.9 and the goal's 1.
        for beta in ([] if args.quick else sorted(
                {ranges[3] / 1.01, 0.9, 1.0, min(ranges[4], 8.0) / 1.01})):
            n, d = 65536, 16
            x = inputs(n, d, beta)
            te, oe = run(rope_run, tmp, "exact", n, d, x, 1)
            tp, op = run(rope_run, tmp, "polynomial", n, d, x, 5,
                         f"epsilon={eps}")
            g = min((g for g in ranges if ranges[g] >= beta * 1.0001),
                    default=0)
            err = float(np.max(np.abs(op - oe)) / np.max(np.abs(x[2])))
            betarows.append({"d": d, "n": n, "beta": beta, "exact_ms": te,
                             "poly_ms": tp, "speedup": te / tp, "err": err,
                             "degree": g})
            print(f"beta={beta:.3f} n={n} (g = {g}): exact {te:.1f} ms, "
                  f"polynomial {tp:.1f} ms ({te / tp:.1f}x)", flush=True)
      if "error" in sections:
        loads["error"] = [load_at()]
        rows = []
        # Error vs degree vs beta (n = 4096, d = 16): force one degree at a
        # time with max-degree = g and a loose epsilon, so the least
        # qualifying degree is g itself whenever beta <= B_g.
        n, d = 4096, 16
        for family in ("minimax", "taylor"):
            for b in (0.25, 0.5, 1.0, 2.0):
                # Logits just inside [-b, b] (the run-time certificate adds
                # a rounding slack).
                x = inputs(n, d, b / 1.01, seed=1)
                _, oe = run(rope_run, tmp, "exact", n, d, x, 1)
                for g in range(1, 7):
                    if family == "taylor" and g % 2:
                        continue
                    table = json.loads(subprocess.run(
                        [dump, f"--family={family}", f"--degree={g}",
                         f"--beta={b}"],
                        capture_output=True, text=True, check=True).stdout)
                    row = table[0] if isinstance(table, list) else table
                    delta = row["delta"]
                    if not row["positive"] or not delta < 1:
                        continue
                    # epsilon slightly above this fit's delta: degree g (or a
                    # cheaper one that also qualifies) runs, with the fit of
                    # the compiled candidate (its range B_g >= b, the
                    # widest with delta <= epsilon): report that fit.
                    e = min(delta * 1.01, 0.999)
                    row = json.loads(subprocess.run(
                        [dump, "--candidate", f"--family={family}",
                         f"--degree={g}", f"--eps={e!r}"],
                        capture_output=True, text=True, check=True).stdout)
                    delta = row["delta"]
                    _, op = run(rope_run, tmp, "polynomial", n, d, x, 1,
                                f"family={family} max-degree={g} "
                                f"epsilon={e!r}")
                    err = float(np.max(np.abs(op - oe)) /
                                np.max(np.abs(x[2])))
                    rows.append({"family": family, "beta": b, "degree": g,
                                 "delta": delta,
                                 "bound": row["output_bound"], "err": err})
                    print(f"{family} beta={b} g={g}: delta={delta:.2e} "
                          f"bound={row['output_bound']:.2e} measured={err:.2e}",
                          flush=True)
      if "backward" in sections:
        loads["backward"] = [load_at()]
        grad, eff = backward_and_efficiency(rope_run, baseline, tmp,
                                            args.quick)
    for sec in sections:
        if sec in loads and len(loads[sec]) == 1:
            loads[sec].append(load_at())
    os.makedirs(out_dir, exist_ok=True)
    with open(json_path, "w") as fh:
        json.dump({"dates": dates, "loads": loads, "scaling": scaling,
                   "beta_64k": betarows,
                   "error": rows, "backward": grad, "efficiency": eff}, fh,
                  indent=1)
    lines = ["# Polynomial method vs exact (CPU, forward, non-causal)", "",
             "- Measured (per section, " + ", ".join(
                 f"{k}: {v}" for k, v in sorted(dates.items())) + "); "
             "2 cores (shared; 1-minute load average at the start of each "
             "section / the end of its run: " + (", ".join(
                 f"{k}: {v[0]}/{v[-1]}" for k, v in sorted(loads.items()))
                 or "not recorded") + "); "
             "command: `.venv/bin/python bench/run_poly_bench.py"
             f"{' --quick' if args.quick else ''}` (`--sections=...` re-measures "
             "a subset and keeps the rest)",
             "- B = H = 1, rows scaled to the certificate beta given per row, "
             f"epsilon = {eps} (default family minimax); medians of rope-run "
             "(exact: 3 runs up to 16k, 1 above; polynomial: 5 runs); "
             "err = max|O_poly - O_exact| / "
             "max|v|.", "",
             "| d | beta | n | exact ms | polynomial ms | speedup | "
             "polynomial, BLAS products ms | err |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in scaling:
        lines.append(f"| {r['d']} | {r['beta']} | {r['n']} | "
                     f"{r['exact_ms']:.1f} | "
                     f"{r['poly_ms']:.1f} | {r['speedup']:.1f} | "
                     f"{r['poly_blas_ms']:.1f} | {r['err']:.1e} |")
    for d in ds:
        t = {r["n"]: r for r in scaling if r["d"] == d}
        if 8192 in t and 65536 in t:
            lines.append("")
            lines.append(f"- d = {d}: t(64k)/t(8k) = "
                         f"{t[65536]['poly_ms'] / t[8192]['poly_ms']:.2f} "
                         f"(polynomial; linear would be 8), "
                         f"{t[65536]['exact_ms'] / t[8192]['exact_ms']:.1f} "
                         "(exact; quadratic would be 64)")
    if betarows:
        ranges = fitted_ranges(dump, eps)
        lines += ["", "## Speedup at n = 64k, d = 16 across beta (epsilon = "
                  "1e-3, minimax; the certificate picks the least g whose "
                  "fitted range covers beta: " + ", ".join(
                      f"B_{g} = {b:.4f}" for g, b in sorted(ranges.items()))
                  + ")", "", "| beta | g | exact ms | polynomial ms | speedup "
                  "| err |", "|---:|---:|---:|---:|---:|---:|"]
        for r in betarows:
            lines.append(f"| {r['beta']:.3f} | {r.get('degree', '?')} | "
                         f"{r['exact_ms']:.1f} | "
                         f"{r['poly_ms']:.1f} | {r['speedup']:.1f} | "
                         f"{r['err']:.1e} |")
    lines += ["", "## Backward (d = 16, beta = 0.9, minimax, epsilon = 1e-3)",
              "", "| n | causal | poly fwd ms | poly bwd ms | bwd / fwd | "
              "exact bwd ms | exact / poly bwd |", "|---:|---|---:|---:|---:|"
              "---:|---:|"]
    for r in grad:
        lines.append(f"| {r['n']} | {r['causal']} | {r['poly_fwd_ms']:.1f} | "
                     f"{r['poly_bwd_ms']:.1f} | "
                     f"{r['poly_bwd_ms'] / r['poly_fwd_ms']:.2f} | "
                     f"{r['exact_bwd_ms']:.1f} | "
                     f"{r['exact_bwd_ms'] / r['poly_bwd_ms']:.1f} |")
    lines += ["", "## Matmul efficiency (same run)", "",
              f"- fp32 peak as measured: OpenBLAS sgemm 2048^3 = "
              f"{eff['peak_gflops']:.1f} GFLOP/s before, "
              f"{eff['peak_gflops_after']:.1f} after the polynomial run.",
              f"- The polynomial product shape through OpenBLAS alone, sgemm "
              f"[4845 x 256] x [256 x 17]: {eff['shape_gflops']:.1f} GFLOP/s "
              f"({100 * eff['shape_gflops'] / eff['peak_gflops']:.0f}% of "
              "peak): why the path has its own kernels "
              "(ropeattn-vectorize-skinny-matmul).",
              f"- Polynomial forward, n = {eff['n']}, d = 16 (g = 4, r = "
              f"4845): {eff['poly_ms']:.1f} ms; its matmul flops "
              f"2(N + M) r (Dv + 1) over the whole time = "
              f"{eff['path_gflops']:.1f} GFLOP/s "
              f"({100 * eff['path_gflops'] / eff['peak_gflops']:.0f}% of "
              "peak; a lower bound for the matmuls, since the time includes "
              "the features, the norms and the normalization)."]
    lines += ["", "## Error vs degree vs beta (n = 4096, d = 16)", "",
              "| family | beta | degree | proven delta | proven output bound "
              "| measured err |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['beta']} | {r['degree']} | "
                     f"{r['delta']:.2e} | {r['bound']:.2e} | {r['err']:.2e} |")
    lines += ["", "Notes: err is measured against the f32 exact path, so below "
              "~1e-7 the rounding of both paths dominates (the certified "
              "delta covers the polynomial, not the f32 evaluation; see "
              "docs/Polynomial.md). Degree 6 at d = 16 has rank C(22, 6) = "
              "74613 > max-rank = 32768: the pass declines and the exact path "
              "runs (err 0); so does every degree whose fit does not cover "
              "the logits."]
    with open(os.path.join(out_dir, "poly_cpu.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for d in ds:
        sel = [r for r in scaling if r["d"] == d]
        axes[0].loglog([r["n"] for r in sel], [r["exact_ms"] for r in sel],
                       "o-", label=f"exact d={d}")
        axes[0].loglog([r["n"] for r in sel], [r["poly_ms"] for r in sel],
                       "s--", label=f"polynomial d={d}")
    axes[0].set_xlabel("n = m")
    axes[0].set_ylabel("ms")
    axes[0].set_title(f"time vs n (eps = {eps}; beta 0.9 at d=16, 0.5 at d=32)")
    axes[0].legend()
    axes[0].grid(True, which="both", alpha=0.3)
    for family, marker in (("minimax", "o"), ("taylor", "s")):
        for b in sorted({r["beta"] for r in rows}):
            sel = [r for r in rows if r["family"] == family and r["beta"] == b]
            if not sel:
                continue
            line, = axes[1].semilogy([r["degree"] for r in sel],
                                     [r["bound"] for r in sel], marker + "-",
                                     label=f"{family} beta={b} bound")
            axes[1].semilogy([r["degree"] for r in sel],
                             [max(r["err"], 1e-9) for r in sel], marker + ":",
                             color=line.get_color(), alpha=0.6)
    axes[1].set_xlabel("degree g")
    axes[1].set_ylabel("error / max|v|")
    axes[1].set_title("proven bound (solid) vs measured (dotted), n=4096 d=16")
    axes[1].legend(fontsize=6)
    axes[1].grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "poly_cpu.png"), dpi=110)
    print("wrote bench/results/poly_cpu.{md,json,png}")


if __name__ == "__main__":
    main()
