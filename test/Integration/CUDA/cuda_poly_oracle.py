"""The polynomial method on CUDA (convert-ropeattn-to-gpu) against the fp64
reference and the CUDA exact path.

For random `method polynomial` forwards within what the CUDA lowering
supports (f32/f16/bf16, batch dims, GQA, N != M, causal with empty rows, both
RoPE layouts, partial rotary, explicit scales, families, epsilons, degrees,
chunks, logit ranges beta from 0.05 to 6.5) this checks, per case:

  * which path ran: beta = |s| max_i |q_i| max_j |k_j| in numpy (RoPE
    preserves norms) and the candidate table of the CPU oracle
    (test/Integration/CPU/polynomial_oracle.py: poly-approx-dump, the bounds
    library tested in test/Unit); the least covering degree must have run,
    and when none covers beta the exact CUDA kernels must have run: output and
    lse identical, bit for bit, to the same function with `method exact`;
  * the certificate result [beta^, g, delta, B(delta), -log(1 - delta)] (for
    the exact fallback [beta^, 0, 0, 0, 0]; beta^ within the slack the
    compiler documents);
  * when the polynomial ran: |O~ - O| <= B(d) max|v| and |lse~ - lse| <=
    -log(1 - d) with d = delta + rho, rho the floating-point error of the
    CUDA kernels' evaluation of each weight, derived for this evaluation
    order (not tuned): a weight is sum_alpha phi_Q,alpha phi_K,alpha with
    phi = w_alpha prod of g factors (g + 1 roundings each, w rounded to f32
    once), summed over the keys of a chunk, then over the chunks (prefix
    sum), then over the r = C(D + g, g) features, and divided once:
    n = 2(g + 1) + M + nk + r + 1 roundings on terms whose absolute values
    sum to at most A e^beta / (1 - delta) times the weight (A = sum_k |c_k|
    beta^k); rho = gamma_n (A e^beta/(1 - delta) + 2) + gamma_{D+2} beta +
    4u (the exact exponentials of the partially visible chunk: the dot
    product's rounding times |l| <= beta, and expf's few ulps);
    f16/bf16 add one rounding of the output (u16 max|v|).

Modes:
  emulate ROPE_RUN POLY_APPROX_DUMP WORKDIR   no GPU: the kernels run on the
      CPU (ropeattn-emulate-gpu-on-host, block-q = 1 for the exact kernels).
  prepare BUILD_DIR POLY_APPROX_DUMP OUTDIR   here: the same cases compiled
      ahead of time (scripts/cuda-aot-build.sh, block-q = 64), their inputs
      and the candidate rows (OUTDIR/manifest.json).
  check OUTDIR WORKDIR       on the GPU machine (no MLIR): runs them with
      OUTDIR/rope-cuda-run and checks them as above.
Flags: --configs N --seed S [--chip sm_90].
"""

import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "CPU"))
import attention_oracle as ao  # noqa: E402
import ropeattn_ref as ref  # noqa: E402
from polynomial_oracle import candidates, mlir, output_bound  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def make_case(rng, dtype):
    case = ao.Case(rng, dtype)
    case.bias = "none"
    case.n = int(rng.integers(1, 200))
    case.m = case.n if rng.integers(0, 2) else int(rng.integers(1, 260))
    case.d = int(rng.choice([2, 4, 6, 8, 16]))
    case.dv = int(rng.choice([case.d, 3, 8]))
    if case.rope is not None:
        r = case.rope["rotary_dim"]
        if r is not None and r > case.d:
            case.rope["rotary_dim"] = case.d
    opts = {
        "family": str(rng.choice(["minimax", "minimax", "chebyshev",
                                  "taylor"])),
        "max-degree": int(rng.choice([2, 4, 6, 6])),
        "epsilon": float(rng.choice([1e-2, 1e-3, 1e-3, 1e-4])),
        "poly-chunk": int(rng.choice([7, 16, 64, 256])),
        "block-k": int(rng.choice([5, 16, 32])),
    }
    # Mostly logit ranges some degree covers; some where none does (the
    # exact fallback must run).
    target_beta = float(rng.choice([0.05, 0.15, 0.3, 0.3, 0.6, 0.6, 0.9, 1.3,
                                    2.5, 6.5]))
    q, k, v = ao.make_inputs(case, rng)[:3]
    s = case.scale if case.scale is not None else 1.0 / math.sqrt(case.d)
    nq = np.max(np.linalg.norm(q.astype(np.float64), axis=-1))
    nk = np.max(np.linalg.norm(k.astype(np.float64), axis=-1))
    f = math.sqrt(target_beta / (abs(s) * nq * nk))
    dt = ao.np_dtype(dtype)
    q, k = (q * f).astype(dt), (k * f).astype(dt)
    return case, opts, [q, k, v]


def option_text(opts, block_q):
    return (f"block-q={block_q} block-k={opts['block-k']} "
            f"family={opts['family']} epsilon={opts['epsilon']!r} "
            f"max-degree={opts['max-degree']} poly-chunk={opts['poly-chunk']}")


def evaluate(case, opts, inputs, poly_out, exact_out, dump):
    """(ok, line) for the results [o, lse, cert] of both functions."""
    o, lse, cert = poly_out
    q64, k64, v64 = (x.astype(np.float64) for x in inputs)
    dtype = case.dtype
    beta = abs(case.scale if case.scale is not None else
               1.0 / math.sqrt(case.d)) * \
        np.max(np.linalg.norm(q64, axis=-1)) * \
        np.max(np.linalg.norm(k64, axis=-1))
    if isinstance(dump, _Dump):
        cands = [tuple(c) for c in dump.entry["candidates"]]
    else:
        cands = candidates(dump, opts["family"], case.d, opts["max-degree"],
                           opts["epsilon"])
    # Within the states' budget and rank limits of the defaults: the cases
    # here are small, so every candidate qualifies.
    chosen = next((c for c in cands if beta * (1 + 1e-6) <= c[1]), None)
    u = 2.0 ** -24
    slack = 1 + 2 * (case.d + 2) * u
    beta_ok = beta <= cert[0] <= beta * slack * (1 + 4 * (case.d + 2) * u)
    desc = (f"{dtype} {opts['family']} n={case.n} m={case.m} d={case.d} "
            f"dv={case.dv} hq={case.hq} hk={case.hk} causal={case.causal} "
            f"rope={None if case.rope is None else case.rope['layout']} "
            f"beta={beta:.3g} eps={opts['epsilon']:g} "
            f"max-degree={opts['max-degree']} chunk={opts['poly-chunk']}")
    if chosen is None:
        oe, le, ce = exact_out
        same = np.array_equal(o, oe) and np.array_equal(lse, le)
        cert_ok = beta_ok and list(cert[1:]) == [0, 0, 0, 0] and \
            np.isnan(ce[0]) and list(ce[1:]) == [0, 0, 0, 0]
        return same and cert_ok, desc + (f" -> exact fallback, identical="
                                         f"{same}, certificate ok={cert_ok}")
    g, _, delta, abs_sum = chosen
    if isinstance(dump, _Dump):
        bounds = dump.entry["bounds"][repr(delta)]
    else:
        bounds = json.loads(subprocess.run(
            [dump, "--bounds", f"--delta={delta!r}"], capture_output=True,
            text=True, check=True).stdout)
    cert_ok = beta_ok and cert[1] == g and cert[2] == delta and \
        cert[3] == bounds["output_bound"] and cert[4] == bounds["lse_bound"]
    o_ref, lse_ref = ref.attention(q64, k64, v64, scale=case.scale,
                                   causal=case.causal, rope=case.rope)
    r = math.comb(case.d + g, g)
    nkc = -(-case.m // opts["poly-chunk"])
    n = 2 * (g + 1) + case.m + nkc + r + 1
    gamma = lambda k: k * u / (1 - k * u)  # noqa: E731
    rho = gamma(n) * (abs_sum * math.exp(beta) / (1 - delta) + 2) + \
        gamma(case.d + 2) * beta + 4 * u
    d_eff = delta + rho
    vmax = np.max(np.abs(v64)) if v64.size else 0.0
    u16 = {"bf16": 2.0 ** -8, "f16": 2.0 ** -11}.get(dtype, 0.0)
    bound_o = output_bound(d_eff) * vmax + u16 * vmax
    bound_l = -math.log(1 - d_eff) if d_eff < 1 else math.inf
    fin = np.isfinite(lse_ref)
    err_o = float(np.max(np.abs(o.astype(np.float64) - o_ref))) \
        if o.size else 0.0
    err_l = float(np.max(np.abs(lse[fin] - lse_ref[fin]))) if fin.any() else 0.0
    ok = err_o <= bound_o and err_l <= bound_l and \
        np.array_equal(np.isfinite(lse), fin) and cert_ok
    return ok, (desc + f" -> g={g} delta={delta:.2e} rho={rho:.1e} "
                f"err_o={err_o:.2e} (bound {bound_o:.2e}) "
                f"err_lse={err_l:.2e} (bound {bound_l:.2e}) "
                f"certificate ok={cert_ok}")


def run_cmd(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"command failed ({res.returncode}):\n"
                           f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return res.stdout


def save(arrays, workdir, prefix):
    paths = []
    for i, x in enumerate(arrays):
        p = os.path.join(workdir, f"{prefix}{i}.npy")
        np.save(p, x)
        paths.append(p)
    return paths


def dtypes():
    out = ["f32", "f32", "f16"]
    try:
        import ml_dtypes  # noqa: F401
        out.append("bf16")
    except ImportError:
        pass
    return out


def write_mlir(case, workdir):
    paths = {}
    for method in ("polynomial", "exact"):
        paths[method] = os.path.join(workdir, f"{method}.mlir")
        with open(paths[method], "w") as fh:
            fh.write(mlir(case, method))
    return paths


def emulate(args):
    rng = np.random.default_rng(args.seed)
    failures, counts = 0, {"poly": 0, "exact": 0}
    types = dtypes()
    for i in range(args.configs):
        workdir = os.path.join(args.dir, f"c{i}")
        os.makedirs(workdir, exist_ok=True)
        case, opts, inputs = make_case(rng, types[i % len(types)])
        try:
            paths = write_mlir(case, workdir)
            ins = save(inputs, workdir, "in")
            pipeline = (
                "builtin.module(ropeattn-export-abi,convert-ropeattn-to-gpu{"
                + option_text(opts, 1) + "},ropeattn-emulate-gpu-on-host,"
                "canonicalize,convert-scf-to-cf,expand-strided-metadata,"
                "finalize-memref-to-llvm,convert-to-llvm,"
                "reconcile-unrealized-casts)")
            results = {}
            for method, path in paths.items():
                outs = [os.path.join(workdir, f"{method}_out{j}.npy")
                        for j in range(3)]
                run_cmd([args.tool, path, "--function=fwd",
                         f"--pipeline={pipeline}"]
                        + [f"--input=@{p}" for p in ins]
                        + [f"--output=@{p}" for p in outs])
                results[method] = [ao.load(p) for p in outs]
            ok, line = evaluate(case, opts, inputs, results["polynomial"],
                                results["exact"], args.dump)
        except Exception as exc:  # a failure to run is a failed case
            ok, line = False, f"error: {exc}"
        counts["exact" if "fallback" in line else "poly"] += 1
        print(f"[{'ok' if ok else 'FAIL'}] case {i}: {line}", flush=True)
        failures += not ok
    print(f"{args.configs - failures}/{args.configs} cases passed "
          f"({counts['poly']} polynomial, {counts['exact']} exact fallback)")
    return failures


def prepare(args):
    """Here: the same random cases, compiled ahead of time (block-q = 64,
    real thread blocks), with their inputs and the candidate rows the check
    needs (poly-approx-dump does not travel)."""
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    types = dtypes()
    manifest = []
    for i in range(args.configs):
        case, opts, inputs = make_case(rng, types[i % len(types)])
        workdir = os.path.join(args.dir, f"src{i}")
        os.makedirs(workdir, exist_ok=True)
        paths = write_mlir(case, workdir)
        for method, path in paths.items():
            name = f"{method}{i}"
            os.replace(path, os.path.join(workdir, name + ".mlir"))
            run_cmd(["bash", os.path.join(ROOT, "scripts", "cuda-aot-build.sh"),
                     args.tool, os.path.join(workdir, name + ".mlir"), args.dir,
                     f"chip={args.chip} " + option_text(opts, 64)])
        save(inputs, args.dir, f"case{i}_in")
        cands = candidates(args.dump, opts["family"], case.d,
                           opts["max-degree"], opts["epsilon"])
        bounds = {}
        for c in cands:
            bounds[repr(c[2])] = json.loads(subprocess.run(
                [args.dump, "--bounds", f"--delta={c[2]!r}"],
                capture_output=True, text=True, check=True).stdout)
        manifest.append({"case": case.__dict__, "opts": opts,
                         "candidates": cands, "bounds": bounds})
        print(f"case {i} compiled", flush=True)
    with open(os.path.join(args.dir, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    return 0


class _Dump:
    """Stands in for poly-approx-dump on the GPU machine: the rows prepare
    recorded."""

    def __init__(self, entry):
        self.entry = entry


def check_gpu(args):
    """On the GPU machine: runs each compiled case with rope-cuda-run."""
    with open(os.path.join(args.tool, "manifest.json")) as fh:
        manifest = json.load(fh)
    runner = os.path.join(args.tool, "rope-cuda-run")
    failures, counts = 0, {"poly": 0, "exact": 0}
    os.makedirs(args.dir, exist_ok=True)
    for i, entry in enumerate(manifest):
        case = ao.Case.__new__(ao.Case)
        case.__dict__.update(entry["case"])
        opts = entry["opts"]
        try:
            ins = [os.path.join(args.tool, f"case{i}_in{j}.npy")
                   for j in range(3)]
            inputs = [ao.load(p) for p in ins]
            results = {}
            for method in ("polynomial", "exact"):
                name = f"{method}{i}"
                outs = [os.path.join(args.dir, f"{name}_out{j}.npy")
                        for j in range(3)]
                run_cmd([runner, f"--library={args.tool}/lib{name}.so",
                         "--function=fwd",
                         f"--signature-file={args.tool}/{name}.sig"]
                        + [f"--input=@{p}" for p in ins]
                        + [f"--output=@{p}" for p in outs])
                results[method] = [ao.load(p) for p in outs]
            ok, line = evaluate(case, opts, inputs, results["polynomial"],
                                results["exact"], _Dump(entry))
        except Exception as exc:  # a failure to run is a failed case
            ok, line = False, f"error: {exc}"
        counts["exact" if "fallback" in line else "poly"] += 1
        print(f"[{'ok' if ok else 'FAIL'}] case {i} (cuda): {line}",
              flush=True)
        failures += not ok
    print(f"{len(manifest) - failures}/{len(manifest)} cases passed on CUDA "
          f"({counts['poly']} polynomial, {counts['exact']} exact fallback)")
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", choices=["emulate", "prepare", "check"])
    p.add_argument("tool", help="emulate: rope-run; prepare: the build dir; "
                   "check: the prepared dir")
    p.add_argument("dump", nargs="?", help="poly-approx-dump (emulate, "
                   "prepare)")
    p.add_argument("dir", help="work dir (emulate, check) or output dir "
                   "(prepare)")
    p.add_argument("--configs", type=int, default=24)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--chip", default="sm_90")
    args = p.parse_args()
    failures = {"emulate": emulate, "prepare": prepare,
                "check": check_gpu}[args.mode](args)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
