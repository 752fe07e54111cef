"""The polynomial method against the exact path and the fp64 reference.

For random configurations (shapes, causal, GQA, both RoPE layouts, partial
rotary, degrees via max-degree, logit ranges beta from 0.1 to 6) this runs a
`method polynomial` attention (f64, f32, bf16, f16) through rope-run (rope-lower-to-cpu, which runs
ropeattn-expand-polynomial) and checks, per case:

  * which path ran: this script recomputes the choice -- beta = |s| max_i
    |q_i| max_j |k_j| in numpy (RoPE preserves norms), the candidate table
    (per degree g <= max-degree within max-rank: the largest logit range B_g
    whose proven bound delta(g, B_g) <= epsilon, Taylor in closed form, the
    fitted families on the grid 2^(k/2)) from poly-approx-dump (the bounds
    library, itself tested in test/Unit), and the least g with beta <= B_g;
    when no degree qualifies the exact fallback must have run: the output
    must equal the `method exact` output of the same inputs, bit for bit;
  * when the polynomial ran: |O~ - O| <= B(d) max|v| with
    B(d) = 2d/(1 + sqrt(1 - d^2)) (docs/Polynomial.md) and d = delta + rho,
    where rho bounds the floating-point error of evaluating the weights: a
    weight is a sum of r = C(D+g, g) products of g + 2 factors whose absolute
    values sum to at most A = sum_k |c_k| beta^k, while the weight is
    >= (1 - delta) e^-beta; the weights are then summed over <= M keys and r
    features in the matmuls; so rho = gamma_n (A e^beta/(1 - delta) + 2) with
    n = r + g + 2 + M + r and gamma_n = n u/(1 - n u), u the unit roundoff
    (2^-53 for f64: rho is negligible and the certificate itself is tested;
    2^-24 for f32). lse: |lse~ - lse| <= -log(1 - d).

Usage: polynomial_oracle.py ROPE_RUN POLY_APPROX_DUMP WORKDIR [--configs N]
       [--seed S]
"""

import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "reference"))
import attention_oracle as ao  # noqa: E402
import ropeattn_ref as ref  # noqa: E402


def fitted_candidate(dump, family, g, epsilon):
    """poly-approx-dump's row of the compiler's candidate of degree g
    (cost::polyCandidate, `--candidate`): the widest logit range B_g whose
    proven bound delta(g, B_g) <= epsilon, or None. Fitted families: the
    bisected range (docs/Polynomial.md §8); Taylor: the closed-form limit
    (even g only)."""
    row = json.loads(subprocess.run(
        [dump, "--candidate", f"--family={family}", f"--degree={g}",
         f"--eps={epsilon!r}"], capture_output=True, text=True,
        check=True).stdout)
    if not row or not row.get("coeffs"):
        return None
    assert row["positive"] and row["delta"] <= epsilon, row
    return row


def candidate_rows(dump, family, d, max_degree, epsilon, max_rank=32768):
    """The compiler's candidate table, in order of cost, as the compiler
    builds it (docs/Polynomial.md, ropeattn-expand-polynomial): per degree
    g <= max_degree within max_rank, fitted_candidate's row."""
    out = []
    for g in range(1, max_degree + 1):
        if family == "taylor" and g % 2:
            continue
        if math.comb(d + g, g) > max_rank:
            break
        row = fitted_candidate(dump, family, g, epsilon)
        if row:
            out.append(row)
    return out


def candidates(dump, family, d, max_degree, epsilon, max_rank=32768):
    """[(g, B_g, delta_g, abs_sum)] of candidate_rows."""
    return [(r["degree"], r["beta"], r["delta"], r["abs_sum"])
            for r in candidate_rows(dump, family, d, max_degree, epsilon,
                                    max_rank)]


def output_bound(d):
    return 2 * d / (1 + math.sqrt(1 - d * d)) if d < 1 else math.inf


def mlir(case, method):
    q, k, v, o, lse, _ = case.shapes()
    et = case.dtype
    acc = "f64" if et == "f64" else "f32"
    T = lambda s, e=et: ao.tensor_type(s, e)  # noqa: E731
    c = "tensor<5xf64>"
    return (f"func.func @fwd(%q: {T(q)}, %k: {T(k)}, %v: {T(v)}) -> "
            f"({T(o)}, {T(lse, acc)}, {c}) {{\n"
            f"  %o, %l, %c = ropeattn.attention %q, %k, %v{case.attrs()} "
            f"method {method} : ({T(q)}, {T(k)}, {T(v)}) -> "
            f"({T(o)}, {T(lse, acc)}, {c})\n"
            f"  return %o, %l, %c : {T(o)}, {T(lse, acc)}, {c}\n}}\n")


def run(rope_run, path, inputs, workdir, options):
    paths = []
    for i, x in enumerate(inputs):
        p = os.path.join(workdir, f"in{i}.npy")
        np.save(p, x)
        paths.append(p)
    outs = [os.path.join(workdir, f"out{i}.npy") for i in range(3)]
    cmd = [rope_run, path, "--function=fwd", f"--pipeline-options={options}"]
    cmd += [f"--input=@{p}" for p in paths] + [f"--output=@{p}" for p in outs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"rope-run failed: {' '.join(cmd)}\n{res.stderr}")
    return [ao.load(p) for p in outs]


def check(rope_run, dump, rng, workdir, dtype):
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
    family = str(rng.choice(["minimax", "minimax", "chebyshev", "taylor"]))
    max_degree = int(rng.choice([2, 4, 6, 6]))
    epsilon = float(rng.choice([1e-2, 1e-3, 1e-3, 1e-4]))
    # Logit ranges off the grid 2^(k/2) of fitted ranges; mostly where some
    # degree qualifies, some where none does (the exact fallback must run).
    target_beta = float(rng.choice([0.05, 0.15, 0.3, 0.6, 0.9, 1.3, 2.5, 6.5]))
    chunk = int(rng.choice([16, 64, 256]))
    os.makedirs(workdir, exist_ok=True)
    q, k, v = ao.make_inputs(case, rng)[:3]
    s = case.scale if case.scale is not None else 1.0 / math.sqrt(case.d)
    nq = np.max(np.linalg.norm(q.astype(np.float64), axis=-1))
    nk = np.max(np.linalg.norm(k.astype(np.float64), axis=-1))
    f = math.sqrt(target_beta / (abs(s) * nq * nk))
    dt = ao.np_dtype(dtype)
    q, k = (q * f).astype(dt), (k * f).astype(dt)
    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    beta = abs(s) * np.max(np.linalg.norm(q64, axis=-1)) * \
        np.max(np.linalg.norm(k64, axis=-1))
    cands = candidates(dump, family, case.d, max_degree, epsilon)
    chosen = next((c for c in cands if beta * (1 + 1e-6) <= c[1]), None)
    options = (f"family={family} epsilon={epsilon} max-degree={max_degree} "
               f"poly-chunk={chunk}")
    poly_path = os.path.join(workdir, "poly.mlir")
    exact_path = os.path.join(workdir, "exact.mlir")
    with open(poly_path, "w") as fh:
        fh.write(mlir(case, "polynomial"))
    with open(exact_path, "w") as fh:
        fh.write(mlir(case, "exact"))
    o, lse, cert = run(rope_run, poly_path, [q, k, v], workdir, options)
    desc = (f"{dtype} {family} n={case.n} m={case.m} d={case.d} "
            f"dv={case.dv} hq={case.hq} hk={case.hk} causal={case.causal} "
            f"rope={None if case.rope is None else case.rope['layout']} "
            f"beta={beta:.3g} eps={epsilon:g} max-degree={max_degree} "
            f"chunk={chunk}")
    # The certificate result: beta-hat (the compiled code's, from squared
    # norms in the element type, enlarged by (1 + 2(D + 2)u)), the degree
    # (0: exact), delta and the two bounds of that degree.
    u = 2.0 ** -53 if dtype == "f64" else 2.0 ** -24
    slack = 1 + 2 * (case.d + 2) * u
    beta_ok = beta <= cert[0] <= beta * slack * (1 + 4 * (case.d + 2) * u)
    if chosen is None:
        oe, le, ce = run(rope_run, exact_path, [q, k, v], workdir, options)
        same = np.array_equal(o, oe) and np.array_equal(lse, le)
        cert_ok = beta_ok and list(cert[1:]) == [0, 0, 0, 0] and \
            np.isnan(ce[0]) and list(ce[1:]) == [0, 0, 0, 0]
        return same and cert_ok, desc + (f" -> exact fallback, identical={same}"
                                         f", certificate ok={cert_ok}")
    g, _, delta, abs_sum = chosen
    bounds = json.loads(subprocess.run(
        [dump, "--bounds", f"--delta={delta!r}"], capture_output=True,
        text=True, check=True).stdout)
    cert_ok = beta_ok and cert[1] == g and cert[2] == delta and \
        cert[3] == bounds["output_bound"] and cert[4] == bounds["lse_bound"]
    o_ref, lse_ref = ref.attention(q64, k64, v64, scale=case.scale,
                                   causal=case.causal, rope=case.rope)
    r = math.comb(case.d + g, g)
    n = r + g + 2 + case.m + r
    gamma = n * u / (1 - n * u)
    rho = gamma * (abs_sum * math.exp(beta) / (1 - delta) + 2)
    d_eff = delta + rho
    vmax = np.max(np.abs(v64)) if v64.size else 0.0
    # f16/bf16: computed in f32 on the exact (extended) inputs, then the
    # output is rounded once to the 16-bit type: + u16 * max|o| <= u16 * max|v|.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("dump", help="poly-approx-dump")
    ap.add_argument("workdir")
    ap.add_argument("--configs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    failures = 0
    counts = {"poly": 0, "exact": 0}
    for i in range(args.configs):
        dtype = ["f64", "f32", "f32", "bf16", "f64", "f32", "f32", "f16"][i % 8]
        try:
            ok, line = check(args.rope_run, args.dump, rng,
                             os.path.join(args.workdir, f"c{i}"), dtype)
        except Exception as exc:
            ok, line = False, f"error: {exc}"
        counts["exact" if "fallback" in line else "poly"] += 1
        print(f"[{'ok' if ok else 'FAIL'}] case {i}: {line}", flush=True)
        failures += not ok
    print(f"{args.configs - failures}/{args.configs} cases passed "
          f"({counts['poly']} polynomial, {counts['exact']} exact fallback)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
