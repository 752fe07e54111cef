"""ropeattn.fft on CUDA (convert-ropeattn-to-gpu: cuFFT through
libropeattn_cuda_runtime.so, then a 1/L scaling kernel for the inverse)
against the extended-precision naive DFT of the CPU FFT oracle
(test/Integration/CPU/fft_oracle.py), with its normwise bound for library
FFTs (Higham Thm 24.2 with t = ceil(log2 L), plus one rounding for 1/L), per
transform. Lengths are powers of two and not; f32 and f64; forward and
inverse; batch dims.

Modes:
  emulate ROPE_RUN WORKDIR   no GPU: ropeattn-emulate-gpu-on-host replaces the
      cuFFT call by a direct DFT in f64 (checks the lowering: buffers, shapes,
      direction, the scaling kernel; not cuFFT);
  gpu BUILD_DIR WORKDIR      with a GPU: compiles each case ahead of time
      (scripts/cuda-aot-build.sh) and runs it with rope-cuda-run (cuFFT);
  prepare BUILD_DIR OUTDIR / check OUTDIR OUTDIR: the same in two steps, for
      a GPU machine without MLIR (scripts/cuda-remote-prepare.sh,
      scripts/cuda-run-remote.sh).
"""

import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "CPU"))
from fft_oracle import NP, fft_bound, naive_dft_ld, ttype  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
LENGTHS = [1, 2, 7, 16, 60, 128, 243, 512]


def cases(seed):
    rng = np.random.default_rng(seed)
    out = []
    for i, length in enumerate(LENGTHS * 2):
        batch = [int(x) for x in rng.integers(1, 4, size=rng.integers(1, 3))]
        out.append((batch, length, ["f32", "f64"][i % 2],
                    bool(rng.integers(0, 2)), int(rng.integers(0, 2**31))))
    return out


def check(x, y, length, et, inverse):
    yr, yi = naive_dft_ld(x, inverse)
    bound = fft_bound(length, et, True)
    xs = x.reshape((-1, length, 2)).astype(np.float64)
    ys = np.asarray(y, dtype=np.longdouble).reshape((-1, length, 2))
    rr, ri = yr.reshape((-1, length)), yi.reshape((-1, length))
    worst = 0.0
    for b in range(xs.shape[0]):
        err = np.sqrt(np.sum((ys[b, :, 0] - rr[b]) ** 2 +
                             (ys[b, :, 1] - ri[b]) ** 2))
        norm = np.sqrt(np.sum(rr[b] ** 2 + ri[b] ** 2))
        x1 = np.sum(np.hypot(xs[b, :, 0], xs[b, :, 1]))
        oracle = length * 2.0 ** -63 * x1 * np.sqrt(length)
        if inverse:
            oracle /= length
        allowed = bound * float(norm) + oracle
        worst = max(worst, float(err) / allowed if allowed > 0 else
                    (0.0 if err == 0 else np.inf))
    return worst <= 1.0, f"max err/bound = {worst:.3f} (bound {bound:.2e})"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", choices=["emulate", "gpu", "prepare", "check"])
    p.add_argument("tool", help="emulate: rope-run; gpu: the build dir")
    p.add_argument("workdir")
    p.add_argument("--seed", type=int, default=5)
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    failures = 0
    all_cases = cases(args.seed)
    for idx, (batch, length, et, inverse, seed) in enumerate(all_cases):
        shape = tuple(batch) + (length, 2)
        x = np.random.default_rng(seed).standard_normal(shape).astype(NP[et])
        ty = ttype(shape, et)
        inv = " inverse" if inverse else ""
        base = os.path.join(args.workdir, f"fft{idx}")
        with open(base + ".mlir", "w") as fh:
            fh.write(f"func.func @f(%x: {ty}) -> {ty} {{\n"
                     f"  %y = ropeattn.fft %x{inv} : {ty}\n"
                     f"  return %y : {ty}\n}}\n")
        np.save(base + "_x.npy", x)
        if args.mode in ("gpu", "prepare"):
            subprocess.run(["bash", os.path.join(ROOT, "scripts",
                                                 "cuda-aot-build.sh"),
                            args.tool, base + ".mlir", args.workdir],
                           check=True, capture_output=True)
        if args.mode == "prepare":
            print(f"fft{idx} compiled", flush=True)
            continue
        if args.mode == "emulate":
            pipeline = (
                "builtin.module(ropeattn-export-abi,convert-ropeattn-to-gpu,"
                "ropeattn-emulate-gpu-on-host,canonicalize,convert-scf-to-cf,"
                "expand-strided-metadata,finalize-memref-to-llvm,"
                "convert-to-llvm,reconcile-unrealized-casts)")
            cmd = [args.tool, base + ".mlir", "--function=f",
                   f"--pipeline={pipeline}"]
        else:
            cmd = [os.path.join(args.workdir, "rope-cuda-run"),
                   f"--library={args.workdir}/libfft{idx}.so", "--function=f",
                   f"--signature-file={args.workdir}/fft{idx}.sig"]
        res = subprocess.run(cmd + [f"--input=@{base}_x.npy",
                                    f"--output=@{base}_y.npy"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            ok, line = False, "failed: " + res.stderr.strip()[-300:]
        else:
            ok, line = check(x, np.load(base + "_y.npy"), length, et, inverse)
        print(f"[{'ok' if ok else 'FAIL'}] fft{idx} {et} {shape} "
              f"{'inverse' if inverse else 'forward'}: {line}", flush=True)
        failures += not ok
    if args.mode == "prepare":
        return
    print(f"{len(all_cases) - failures}/{len(all_cases)} transforms passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
