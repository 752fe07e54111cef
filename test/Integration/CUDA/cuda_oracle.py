"""The CUDA path (rope-lower-to-cuda) against the independent fp64 reference.

Random forward and backward configurations within what the CUDA lowering supports (batch
dims, GQA, N != M, causal, both RoPE layouts, partial rotary, position
offsets, explicit scales, logsumexp, f32/f16/bf16, several tile sizes) are
checked against test/reference/ropeattn_ref.py with the tolerances of the CPU
oracle (test/Integration/CPU/attention_oracle.py): within 2x of a plain fp32
numpy implementation, floor 2^-21, and for f16/bf16 one ulp of the type. The
backward (ropeattn.attention_grad, with or without the logsumexp operand) gets
the reference forward's o (rounded to the type) and lse, and a random dO.

Three modes:
  emulate ROPE_RUN WORKDIR   no GPU: convert-ropeattn-to-gpu with block-q=1,
      then ropeattn-emulate-gpu-on-host runs the generated kernels on the CPU
      (rope-run); checks the kernels' arithmetic, indexing and masking.
  prepare BUILD_DIR OUTDIR   here (MLIR installed): compiles every case ahead
      of time with scripts/cuda-aot-build.sh and writes OUTDIR/manifest.json.
  check OUTDIR WORKDIR       on the GPU machine (no MLIR): runs each library
      with OUTDIR/rope-cuda-run and checks it.
Common flags: --configs N --seed S [--chip sm_90]. Prints one line per case
and exits non-zero when a case fails.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "CPU"))
import ropeattn_ref as ref  # noqa: E402
from attention_oracle import (load, naive32, np_dtype, relerr,  # noqa: E402
                              rope_text, tensor_type)

ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


class Case:
    """Only what the CUDA lowering supports: no f64; a relative bias on the
    forward only (attention_grad with a bias is rejected on CUDA)."""

    def __init__(self, rng, dtypes):
        self.dtype = str(rng.choice(dtypes))
        nb = rng.integers(0, 3)
        self.batch = [int(x) for x in rng.integers(1, 3, size=nb)]
        self.hk = int(rng.choice([1, 2]))
        self.hq = self.hk * int(rng.choice([1, 2, 3]))
        self.n = int(rng.integers(1, 150))
        self.m = int(rng.choice([self.n, int(rng.integers(1, 300))]))
        self.d = int(rng.choice([4, 8, 16, 32, 33]))
        self.dv = int(rng.choice([self.d, 8, 5]))
        self.causal = bool(rng.integers(0, 2))
        self.scale = None if rng.integers(0, 2) else float(rng.uniform(0.05, 0.6))
        self.rope = None
        if rng.integers(0, 3) and self.d >= 2:
            dmax = self.d - (self.d % 2)
            rd = None if self.d % 2 == 0 and rng.integers(0, 2) else \
                int(rng.choice(range(0, dmax + 1, 2)))
            self.rope = {"base": float(rng.choice([10000.0, 500000.0, 100.0])),
                         "layout": str(rng.choice(["half", "interleaved"])),
                         "rotary_dim": rd,
                         "position_offset": int(rng.choice([0, 0, 7, 1000]))}
        self.block_q = int(rng.choice([32, 64, 128]))
        self.block_k = int(rng.choice([5, 16, 32]))
        self.seed = int(rng.integers(0, 2**31))
        self.with_lse = bool(rng.integers(0, 2))
        # Drawn from its own stream so that the other fields stay as before.
        self.bias = str(np.random.default_rng(self.seed + 7).choice(
            ["none", "none", "shared", "head"]))

    @staticmethod
    def from_dict(d):
        c = Case.__new__(Case)
        c.bias = "none"
        c.__dict__.update(d)
        return c

    def bias_shape(self):
        L = max(self.n + self.m - 1, 0)
        return {"none": None, "shared": [L], "head": [self.hq, L]}[
            getattr(self, "bias", "none")]

    def describe(self):
        return (f"{self.dtype} bias={getattr(self, 'bias', 'none')} "
                f"batch={self.batch} hq={self.hq} hk={self.hk} "
                f"n={self.n} m={self.m} d={self.d} dv={self.dv} "
                f"causal={self.causal} scale={self.scale} rope={self.rope} "
                f"tiles={self.block_q}x{self.block_k}")

    def shapes(self):
        b = self.batch
        return (b + [self.hq, self.n, self.d], b + [self.hk, self.m, self.d],
                b + [self.hk, self.m, self.dv], b + [self.hq, self.n, self.dv],
                b + [self.hq, self.n])

    def signature(self, func="fwd"):
        q, k, v, o, lse = self.shapes()
        T = lambda s, e=self.dtype: tensor_type(s, e)  # noqa: E731
        if func == "fwd":
            b = self.bias_shape()
            bt = f", {T(b)}" if b is not None else ""
            return (f"({T(q)}, {T(k)}, {T(v)}{bt}) -> ({T(o)}, "
                    f"{T(lse, 'f32')})")
        extra = f", {T(lse, 'f32')}" if self.with_lse else ""
        return (f"({T(q)}, {T(k)}, {T(v)}, {T(o)}, {T(o)}{extra}) -> "
                f"({T(q)}, {T(k)}, {T(v)})")

    def mlir(self):
        q, k, v, o, lse = self.shapes()
        T = lambda s, e=self.dtype: tensor_type(s, e)  # noqa: E731
        attrs = (" causal" if self.causal else "") + \
            (f" scale({self.scale:.17e})" if self.scale is not None else "") + \
            rope_text(self.rope)
        b = self.bias_shape()
        barg = f", %b: {T(b)}" if b is not None else ""
        buse = " bias(%b)" if b is not None else ""
        bty = f", {T(b)}" if b is not None else ""
        fwd = (
            f"func.func @fwd(%q: {T(q)}, %k: {T(k)}, %v: {T(v)}{barg}) "
            f"-> ({T(o)}, {T(lse, 'f32')}) {{\n"
            f"  %o, %l = ropeattn.attention %q, %k, %v{buse}{attrs} "
            f": ({T(q)}, {T(k)}, {T(v)}{bty}) -> ({T(o)}, {T(lse, 'f32')})\n"
            f"  return %o, %l : {T(o)}, {T(lse, 'f32')}\n}}\n")
        lse_arg = f", %l: {T(lse, 'f32')}" if self.with_lse else ""
        lse_use = " logsumexp(%l)" if self.with_lse else ""
        lse_ty = f", {T(lse, 'f32')}" if self.with_lse else ""
        res = f"{T(q)}, {T(k)}, {T(v)}"
        bwd = (
            f"func.func @bwd(%q: {T(q)}, %k: {T(k)}, %v: {T(v)}, %o: {T(o)}, "
            f"%do: {T(o)}{lse_arg}) -> ({res}) {{\n"
            f"  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do"
            f"{lse_use}{attrs} : ({T(q)}, {T(k)}, {T(v)}, {T(o)}, {T(o)}"
            f"{lse_ty}) -> ({res})\n"
            f"  return %dq, %dk, %dv : {res}\n}}\n")
        return fwd + bwd

    def inputs(self):
        """q, k, v (and the forward's bias, N(0, 1/4), when there is one)."""
        rng = np.random.default_rng(self.seed)
        q, k, v, _, _ = self.shapes()
        dt = np_dtype(self.dtype)
        out = [rng.standard_normal(s).astype(dt) for s in (q, k, v)]
        if self.bias_shape() is not None:
            brng = np.random.default_rng(self.seed + 8)
            out.append((0.5 * brng.standard_normal(self.bias_shape()))
                       .astype(dt))
        return out

    def grad_inputs(self):
        """q, k, v, o (reference, rounded to the type), dO[, lse]."""
        q, k, v = self.inputs()[:3]
        f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        o_ref, lse_ref = ref.attention(f64(q), f64(k), f64(v), scale=self.scale,
                                       causal=self.causal, rope=self.rope)
        rng = np.random.default_rng(self.seed + 1)
        dt = np_dtype(self.dtype)
        do = rng.standard_normal(o_ref.shape).astype(dt)
        ins = [q, k, v, o_ref.astype(dt), do]
        if self.with_lse:
            ins.append(lse_ref.astype(np.float32))
        return ins


def edge_cases(dtypes):
    """Hand-picked shapes the random draw may miss."""
    rng = np.random.default_rng(7)
    out = []
    for spec in [dict(n=40, m=13, causal=True),   # empty rows (N > M)
                 dict(n=1, m=77, causal=True),    # decoding
                 dict(n=70, m=1, causal=False),   # one key
                 dict(n=33, m=96, causal=True)]:  # N < M
        c = Case(rng, dtypes)
        c.__dict__.update(spec)
        out.append(c)
    return out


def cases(args):
    rng = np.random.default_rng(args.seed)
    dtypes = ["f32", "f16"]
    try:
        import ml_dtypes  # noqa: F401
        dtypes.append("bf16")
    except ImportError:
        pass
    return [Case(rng, dtypes) for _ in range(args.configs)] + edge_cases(dtypes)


def save_inputs(case, workdir):
    paths = []
    for i, x in enumerate(case.inputs()):
        p = os.path.join(workdir, f"in{i}.npy")
        np.save(p, x)
        paths.append(p)
    return paths


def check(case, o, lse):
    """Returns (ok, line) for results o, lse of `case`."""
    ins = case.inputs()
    q, k, v = ins[:3]
    bias = ins[3] if len(ins) > 3 else None
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    o_ref, lse_ref = ref.attention(
        f64(q), f64(k), f64(v), bias=None if bias is None else f64(bias),
        scale=case.scale, causal=case.causal, rope=case.rope)
    e_o, e_l = relerr(o, o_ref), relerr(lse, lse_ref)
    o32, lse32 = naive32(case, q, k, v, bias)
    floor = 2.0 ** -21
    tol_o = 2 * max(relerr(o32, o_ref), floor)
    tol_l = 2 * max(relerr(lse32, lse_ref), floor)
    if case.dtype in ("f16", "bf16"):
        tol_o = max(tol_o, {"f16": 2.0 ** -10, "bf16": 2.0 ** -7}[case.dtype])
    ok = e_o <= tol_o and e_l <= tol_l
    return ok, (f"err o={e_o:.2e} (tol {tol_o:.2e}) lse={e_l:.2e} "
                f"(tol {tol_l:.2e})")


def check_grad(case, grads):
    """Returns (ok, line) for dq, dk, dv of `case`."""
    ins = case.grad_inputs()
    q, k, v, do = ins[0], ins[1], ins[2], ins[4]
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    g_ref = ref.attention_grad(f64(q), f64(k), f64(v), f64(do),
                               scale=case.scale, causal=case.causal,
                               rope=case.rope)
    g32 = naive32(case, q, k, v, None, do=do)
    ok, line = True, "grad"
    for idx, (name, got, want) in enumerate(zip(["dq", "dk", "dv"], grads,
                                                g_ref)):
        e = relerr(got, want)
        tol = 2 * max(relerr(g32[idx], want), 2.0 ** -21)
        if case.dtype in ("f16", "bf16"):
            tol = max(tol, {"f16": 2.0 ** -10, "bf16": 2.0 ** -7}[case.dtype])
        line += f" {name}={e:.2e}"
        if e > tol:
            line += f"(>{tol:.1e})"
            ok = False
    return ok, line


def save(arrays, workdir, prefix):
    paths = []
    for i, x in enumerate(arrays):
        p = os.path.join(workdir, f"{prefix}{i}.npy")
        np.save(p, x)
        paths.append(p)
    return paths


def run_cmd(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"command failed ({res.returncode}):\n"
                           f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return res.stdout


def emulate(args):
    os.makedirs(args.dir2, exist_ok=True)
    failures = 0
    for idx, case in enumerate(cases(args)):
        workdir = os.path.join(args.dir2, f"case{idx}")
        os.makedirs(workdir, exist_ok=True)
        path = os.path.join(workdir, "case.mlir")
        with open(path, "w") as fh:
            fh.write(case.mlir())
        ins = save_inputs(case, workdir)
        outs = [os.path.join(workdir, f"out{i}.npy") for i in range(2)]
        pipeline = (
            "builtin.module(ropeattn-export-abi,convert-ropeattn-to-gpu{"
            f"block-q=1 block-k={case.block_k}}},ropeattn-emulate-gpu-on-host,"
            "canonicalize,convert-scf-to-cf,expand-strided-metadata,"
            "finalize-memref-to-llvm,convert-to-llvm,"
            "reconcile-unrealized-casts)")
        run_cmd([args.dir1, path, "--function=fwd", f"--pipeline={pipeline}"]
                + [f"--input=@{p}" for p in ins]
                + [f"--output=@{p}" for p in outs])
        ok, line = check(case, load(outs[0]), load(outs[1]))
        gins = save(case.grad_inputs(), workdir, "gin")
        gouts = [os.path.join(workdir, f"gout{i}.npy") for i in range(3)]
        run_cmd([args.dir1, path, "--function=bwd", f"--pipeline={pipeline}"]
                + [f"--input=@{p}" for p in gins]
                + [f"--output=@{p}" for p in gouts])
        gok, gline = check_grad(case, [load(p) for p in gouts])
        ok = ok and gok
        print(f"case {idx} [{case.describe()}] emulated {line} {gline} "
              f"{'ok' if ok else 'FAIL'}", flush=True)
        failures += not ok
    return failures


def prepare(args):
    os.makedirs(args.dir2, exist_ok=True)
    manifest = []
    for idx, case in enumerate(cases(args)):
        path = os.path.join(args.dir2, f"case{idx}.mlir")
        with open(path, "w") as fh:
            fh.write(case.mlir())
        run_cmd(["bash", os.path.join(ROOT, "scripts", "cuda-aot-build.sh"),
                 args.dir1, path, args.dir2,
                 f"chip={args.chip} block-q={case.block_q} "
                 f"block-k={case.block_k}"])
        manifest.append(case.__dict__)
        print(f"case {idx} [{case.describe()}] compiled", flush=True)
    with open(os.path.join(args.dir2, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    return 0


def check_gpu(args):
    with open(os.path.join(args.dir1, "manifest.json")) as fh:
        manifest = [Case.from_dict(d) for d in json.load(fh)]
    runner = os.path.join(args.dir1, "rope-cuda-run")
    failures = 0
    for idx, case in enumerate(manifest):
        workdir = os.path.join(args.dir2, f"case{idx}")
        os.makedirs(workdir, exist_ok=True)
        ins = save_inputs(case, workdir)
        outs = [os.path.join(workdir, f"out{i}.npy") for i in range(2)]
        lib = f"--library={args.dir1}/libcase{idx}.so"
        run_cmd([runner, lib, "--function=fwd",
                 f"--signature={case.signature('fwd')}"]
                + [f"--input=@{p}" for p in ins]
                + [f"--output=@{p}" for p in outs])
        ok, line = check(case, load(outs[0]), load(outs[1]))
        gins = save(case.grad_inputs(), workdir, "gin")
        gouts = [os.path.join(workdir, f"gout{i}.npy") for i in range(3)]
        run_cmd([runner, lib, "--function=bwd",
                 f"--signature={case.signature('bwd')}"]
                + [f"--input=@{p}" for p in gins]
                + [f"--output=@{p}" for p in gouts])
        gok, gline = check_grad(case, [load(p) for p in gouts])
        ok = ok and gok
        print(f"case {idx} [{case.describe()}] cuda {line} {gline} "
              f"{'ok' if ok else 'FAIL'}", flush=True)
        failures += not ok
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", choices=["emulate", "prepare", "check"])
    p.add_argument("dir1")
    p.add_argument("dir2")
    p.add_argument("--configs", type=int, default=20)
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--chip", default="sm_90")
    args = p.parse_args()
    failures = {"emulate": emulate, "prepare": prepare,
                "check": check_gpu}[args.mode](args)
    print(f"{failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
