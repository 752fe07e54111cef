"""Exact forward attention on CUDA (rope-lower-to-cuda) vs PyTorch SDPA.

Two steps, because the GPU machine has no MLIR:

  prepare BUILD_DIR OUTDIR   here: compiles each configuration ahead of time
      (scripts/cuda-aot-build.sh, chip sm_90) and writes OUTDIR/manifest.json;
  run OUTDIR RESULTS_DIR     on the GPU machine (PyTorch installed): for each
      configuration, random f16 inputs (numpy, seeded) are written as .npy,
      rope-cuda-run times our library (CUDA events, median of --runs after a
      warm-up) and writes its output; torch.nn.functional.
      scaled_dot_product_attention runs on the same inputs, timed the same
      way in the same process run; prints and writes a table (RESULTS_DIR/
      cuda_sdpa.md, .json) and a plot (cuda_sdpa.png): TFLOP/s of both (4·N²·D·H,
      halved when causal, FlashAttention's convention) and the ratio ours/SDPA,
      plus the max abs difference of the two outputs (relative to max |o|).

Configurations: B = 1, H = 16, N = M ∈ {4096, 16384}, D = Dv ∈ {64, 128},
causal and not, f16 (the issue's goal: exact forward ≥ 0.3× SDPA).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HEADS = 16


def configs():
    out = []
    for n in (4096, 16384):
        for d in (64, 128):
            for causal in (False, True):
                out.append({"name": f"n{n}_d{d}_{'causal' if causal else 'full'}",
                            "n": n, "d": d, "heads": HEADS, "causal": causal})
    return out


def mlir(c):
    t = f"tensor<1x{c['heads']}x{c['n']}x{c['d']}xf16>"
    causal = " causal" if c["causal"] else ""
    return (f"func.func @fwd(%q: {t}, %k: {t}, %v: {t}) -> {t} {{\n"
            f"  %o = ropeattn.attention %q, %k, %v{causal} : ({t}, {t}, {t}) -> {t}\n"
            f"  return %o : {t}\n}}\n")


def flops(c):
    f = 4.0 * c["n"] * c["n"] * c["d"] * c["heads"]
    return f / 2 if c["causal"] else f


def prepare(args):
    os.makedirs(args.dir2, exist_ok=True)
    manifest = []
    for c in configs():
        path = os.path.join(args.dir2, c["name"] + ".mlir")
        with open(path, "w") as fh:
            fh.write(mlir(c))
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "cuda-aot-build.sh"),
                        args.dir1, path, args.dir2,
                        f"chip={args.chip} block-q={args.block_q} "
                        f"block-k={args.block_k}"], check=True)
        c = dict(c, chip=args.chip, block_q=args.block_q, block_k=args.block_k)
        manifest.append(c)
    with open(os.path.join(args.dir2, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    print(f"prepared {len(manifest)} configurations in {args.dir2}")


def time_torch(fn, runs):
    import torch
    fn()
    torch.cuda.synchronize()
    ms = []
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    for _ in range(runs):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        ms.append(start.elapsed_time(stop))
    return float(np.median(ms))


def run(args):
    import torch
    import torch.nn.functional as F
    with open(os.path.join(args.dir1, "manifest.json")) as fh:
        manifest = json.load(fh)
    os.makedirs(args.dir2, exist_ok=True)
    work = os.path.join(args.dir2, "work")
    os.makedirs(work, exist_ok=True)
    runner = os.path.join(args.dir1, "rope-cuda-run")
    rows = []
    for c in manifest:
        rng = np.random.default_rng(1)
        shape = (1, c["heads"], c["n"], c["d"])
        x = [rng.standard_normal(shape).astype(np.float16) for _ in range(3)]
        paths = []
        for i, a in enumerate(x):
            p = os.path.join(work, f"in{i}.npy")
            np.save(p, a)
            paths.append(p)
        out = os.path.join(work, "o.npy")
        t0 = time.time()
        res = subprocess.run(
            [runner, f"--library={args.dir1}/lib{c['name']}.so",
             "--function=fwd", f"--signature-file={args.dir1}/{c['name']}.sig",
             f"--output=@{out}", f"--benchmark={args.runs}"]
            + [f"--input=@{p}" for p in paths],
            capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"rope-cuda-run failed for {c['name']}:\n{res.stdout}\n"
                     f"{res.stderr}")
        line = [ln for ln in res.stdout.splitlines()
                if ln.startswith("benchmark:")][0]
        ours_ms = float(line.split("median ")[1].split(" ms")[0])
        q, k, v = (torch.from_numpy(a).cuda() for a in x)
        sdpa_ms = time_torch(
            lambda: F.scaled_dot_product_attention(q, k, v,
                                                   is_causal=c["causal"]),
            args.runs)
        ref = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), is_causal=c["causal"]).cpu().numpy()
        o = np.load(out).astype(np.float32)
        err = float(np.max(np.abs(o - ref)) / np.max(np.abs(ref)))
        fl = flops(c)
        row = dict(c, ours_ms=ours_ms, sdpa_ms=sdpa_ms,
                   ours_tflops=fl / ours_ms / 1e9, sdpa_tflops=fl / sdpa_ms / 1e9,
                   ratio=sdpa_ms / ours_ms, max_rel_diff_vs_sdpa_f32=err,
                   wall_s=time.time() - t0,
                   device=torch.cuda.get_device_name(0))
        rows.append(row)
        print(f"{c['name']}: ours {ours_ms:.3f} ms ({row['ours_tflops']:.1f} "
              f"TFLOP/s), SDPA {sdpa_ms:.3f} ms ({row['sdpa_tflops']:.1f} "
              f"TFLOP/s), ratio {row['ratio']:.3f}, diff {err:.2e}", flush=True)
    with open(os.path.join(args.dir2, "cuda_sdpa.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    lines = [f"# Exact forward on CUDA vs PyTorch SDPA ({rows[0]['device']})", "",
             f"f16, B = 1, H = {HEADS}, N = M, medians of {args.runs} runs "
             "(CUDA events) after a warm-up; ratio = SDPA time / ours "
             "(goal ≥ 0.3). `python3 bench/cuda_bench.py run ...`", "",
             "| config | ours ms | ours TFLOP/s | SDPA ms | SDPA TFLOP/s | ratio | max rel diff |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['ours_ms']:.3f} | {r['ours_tflops']:.1f} | "
                     f"{r['sdpa_ms']:.3f} | {r['sdpa_tflops']:.1f} | "
                     f"{r['ratio']:.3f} | {r['max_rel_diff_vs_sdpa_f32']:.1e} |")
    with open(os.path.join(args.dir2, "cuda_sdpa.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(9, 4))
        idx = np.arange(len(rows))
        ax.bar(idx - 0.2, [r["ours_tflops"] for r in rows], 0.4, label="ropeattn CUDA")
        ax.bar(idx + 0.2, [r["sdpa_tflops"] for r in rows], 0.4, label="PyTorch SDPA")
        ax.set_xticks(idx, [r["name"] for r in rows], rotation=30, ha="right")
        ax.set_ylabel("TFLOP/s (f16)")
        ax.set_title(f"Exact forward, {rows[0]['device']}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(args.dir2, "cuda_sdpa.png"), dpi=120)
    except ImportError:
        print("matplotlib missing: no plot")
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", choices=["prepare", "run"])
    p.add_argument("dir1")
    p.add_argument("dir2")
    p.add_argument("--chip", default="sm_90")
    p.add_argument("--block-q", type=int, default=64)
    p.add_argument("--block-k", type=int, default=32)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    (prepare if args.mode == "prepare" else run)(args)


if __name__ == "__main__":
    main()
