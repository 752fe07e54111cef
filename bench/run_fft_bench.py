"""Benchmark of ropeattn.fft: generated code (fft=codegen, radix-2 Stockham)
vs. FFTW through the ropeattn runtime (fft=library), L = 2^10 .. 2^20.

One complex f32 transform (batch 1, forward) per call, both through rope-run
(rope-lower-to-cpu; medians of --benchmark=N timed calls after a warm-up call
that also makes FFTW's plan, FFTW_MEASURE), same inputs, in one session, the
two backends interleaved per length so that machine load hits both alike.
Both run on one core (the codegen FFT has no parallel loop; FFTW is the
single-threaded library). The ratio codegen/FFTW is the figure of merit (the
issue's goal: within 2x).

Writes bench/results/fft_cpu.{md,json,png}.

    .venv/bin/python bench/run_fft_bench.py [--min-log 10] [--max-log 20] [--reps N]
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(rope_run, tmp, length, backend, reps, et="f32"):
    ty = f"tensor<1x{length}x2x{et}>"
    path = os.path.join(tmp, f"fft_{length}.mlir")
    with open(path, "w") as fh:
        fh.write(f"func.func @f(%x: {ty}) -> {ty} {{\n"
                 f"  %y = ropeattn.fft %x : {ty}\n  return %y : {ty}\n}}\n")
    x = os.path.join(tmp, f"x_{length}.npy")
    if not os.path.exists(x):
        rng = np.random.default_rng(length)
        np.save(x, rng.standard_normal((1, length, 2)).astype(np.float32))
    out = os.path.join(tmp, f"y_{backend}_{length}.npy")
    cmd = [rope_run, path, "--function=f", f"--input=@{x}",
           f"--output=@{out}", f"--benchmark={reps}",
           f"--pipeline-options=fft={backend}"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"rope-run failed ({backend}, L={length}):\n{res.stderr}")
    ms = float(re.search(r"median ([0-9.e+-]+) ms", res.stdout).group(1))
    comp = float(re.search(r"compile: ([0-9.]+) ms", res.stdout).group(1))
    return ms, comp, np.load(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-log", type=int, default=10)
    ap.add_argument("--max-log", type=int, default=20)
    ap.add_argument("--reps", type=int, default=0,
                    help="timed calls per point (default: by size)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    rope_run = os.path.join(args.build, "bin", "rope-run")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for lg in range(args.min_log, args.max_log + 1):
            length = 1 << lg
            reps = args.reps or (50 if lg <= 14 else 20 if lg <= 17 else 10)
            cg, cg_comp, ycg = run(rope_run, tmp, length, "codegen", reps)
            lib, lib_comp, ylib = run(rope_run, tmp, length, "library", reps)
            diff = float(np.max(np.abs(ycg - ylib)) / np.max(np.abs(ylib)))
            rows.append({"log2L": lg, "L": length, "codegen_ms": cg,
                         "fftw_ms": lib, "ratio": cg / lib,
                         "codegen_compile_ms": cg_comp,
                         "fftw_compile_ms": lib_comp,
                         "max_rel_diff": diff, "reps": reps})
            print(f"L = 2^{lg}: codegen {cg:.4f} ms, FFTW {lib:.4f} ms, "
                  f"ratio {cg / lib:.2f}, compile {cg_comp:.0f} / "
                  f"{lib_comp:.0f} ms, max |diff|/max|y| {diff:.1e}",
                  flush=True)
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "load": os.getloadavg()}
    with open(os.path.join(out_dir, "fft_cpu.json"), "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    lines = [
        "# ropeattn.fft: codegen (radix-2 Stockham) vs FFTW",
        "",
        f"{meta['date']}, load average {meta['load'][0]:.2f} "
        f"(2 cores, shared). One forward complex f32 transform of length L "
        "(batch 1), medians of rope-run --benchmark calls after a warm-up "
        "(FFTW plans with FFTW_MEASURE during the warm-up), one core each.",
        "",
        "    .venv/bin/python bench/run_fft_bench.py",
        "",
        "| L | codegen ms | FFTW ms | codegen / FFTW | compile ms (codegen / FFTW) | max diff / max abs |",
        "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| 2^{r['log2L']} | {r['codegen_ms']:.4f} | "
                     f"{r['fftw_ms']:.4f} | {r['ratio']:.2f} | "
                     f"{r['codegen_compile_ms']:.0f} / "
                     f"{r['fftw_compile_ms']:.0f} | {r['max_rel_diff']:.1e} |")
    with open(os.path.join(out_dir, "fft_cpu.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    ls = [r["L"] for r in rows]
    a1.loglog(ls, [r["codegen_ms"] for r in rows], "o-", label="codegen")
    a1.loglog(ls, [r["fftw_ms"] for r in rows], "s-", label="FFTW")
    a1.set_xscale("log", base=2)
    a1.set_xlabel("L")
    a1.set_ylabel("median ms")
    a1.set_title("complex f32 FFT, one core")
    a1.legend()
    a2.semilogx(ls, [r["ratio"] for r in rows], "o-")
    a2.set_xscale("log", base=2)
    a2.axhline(2.0, color="gray", ls="--", label="2x (goal)")
    a2.set_xlabel("L")
    a2.set_ylabel("codegen / FFTW")
    a2.set_title("time ratio")
    a2.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "fft_cpu.png"), dpi=110)
    print("wrote bench/results/fft_cpu.{md,json,png}")


if __name__ == "__main__":
    main()
