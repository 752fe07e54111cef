"""The polynomial backward against a model, the fp64 exact gradient, and
finite differences.

For random configurations (shapes, causal, GQA, both RoPE layouts, f32/f64,
families, degrees, epsilons, logit ranges beta, chunk sizes) this runs
`ropeattn.attention` and `ropeattn.attention_grad` with `method polynomial`
through rope-run (rope-lower-to-cpu), feeding the polynomial forward's output
to the backward as the op's `output` operand (as a training step does), and
checks:

(0) Which path ran, recomputed here as in polynomial_oracle.py (beta =
    |s| max|q| max|k|, the candidate table from poly-approx-dump). When no
    degree qualifies, the gradients must equal the `method exact` gradients
    bit for bit.

(1) The model: ropeattn's polynomial backward is the exact gradient of its
    polynomial forward. This script builds that forward independently in
    float64 numpy from the spec: weights P_ij = p(l_ij) with the certified
    coefficients, except (causal) on the key chunks only partly visible
    from a query chunk, where P_ij = exp(l_ij) (docs/Spec.md §11); and its
    gradient with P' = p' / exp. The model itself is validated against
    central finite differences of the model forward (f64 cases), so (1)
    does not trust the formula. Tolerance (rounding only): per output entry,
    gamma_n * C * Mag with n = r + M + N + D + g + 16, C = A e^beta/(1 - delta)
    + 2 (A = sum |c_k| beta^k bounds the feature products' absolute sum
    relative to a weight), Mag the natural magnitude of the entry (below).

(2) The certificate, against the exact fp64 gradient of the reference
    (test/reference/ropeattn_ref.py). With delta (the weights' proven
    relative error), delta' (the derivative's, poly-approx-dump's
    delta_derivative), eta = (delta + delta')/(1 - delta),
    eta0 = 2 delta/(1 - delta) and kappa = eta (2 + eta0) + eta0:
      |dq_i - dq~_i|  <= |s| Kmax |dO_i| Vmax kappa
      |dk_j - dk~_j|  <= |s| Qmax Vmax kappa sum_i A_ij |dO_i|
      |dv_j - dv~_j|  <= eta0 sum_i A_ij |dO_i|
    (Euclidean norms over the head dimension; Kmax, Qmax, Vmax the largest
    row norms; A the exact attention probabilities, summed over the query
    heads of a GQA group): derived in docs/Polynomial.md §9. The rounding
    allowance of (1) is added; for f32 delta, delta' are also enlarged by
    rho = gamma_n C as in polynomial_oracle.py.

Usage: polynomial_grad_oracle.py ROPE_RUN POLY_APPROX_DUMP WORKDIR
       [--configs N] [--seed S]
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

from polynomial_oracle import candidate_rows as candidates  # noqa: E402


def run(rope_run, path, func, inputs, n_out, workdir, options):
    cmd = [rope_run, path, f"--function={func}",
           f"--pipeline-options={options}"]
    for i, x in enumerate(inputs):
        p = os.path.join(workdir, f"{func}_in{i}.npy")
        np.save(p, x)
        cmd.append(f"--input=@{p}")
    outs = [os.path.join(workdir, f"{func}_out{i}.npy") for i in range(n_out)]
    cmd += [f"--output=@{p}" for p in outs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"rope-run failed: {' '.join(cmd)}\n{res.stderr}")
    return [ao.load(p) for p in outs]


def modules(case, method, workdir):
    """(fwd path, bwd path): the attention_oracle functions with `method`,
    one per module (each rope-run call compiles only what it runs)."""
    lines = []
    for line in case.mlir().splitlines():
        if "= ropeattn.attention" in line:
            at = line.rindex(" : (")
            line = line[:at] + f" method {method}" + line[at:]
        lines.append(line)
    text = "\n".join(lines) + "\n"
    split = text.index("func.func @bwd")
    paths = []
    for name, body in (("fwd", text[:split]), ("bwd", text[split:])):
        p = os.path.join(workdir, f"{name}_{method}.mlir")
        with open(p, "w") as fh:
            fh.write(body)
        paths.append(p)
    return paths


def poly_mask(n, m, causal, chunk):
    """[N, M] True where the compiled code uses p (else exp, or hidden)."""
    if not causal:
        return np.ones((n, m), dtype=bool)
    nk = max((m + chunk - 1) // chunk, 1)
    shift = m - n
    mask = np.zeros((n, m), dtype=bool)
    for i0 in range(0, n, chunk):
        cf = min(max(i0 + shift + 1, 0) // chunk, nk)
        mask[i0:i0 + chunk, :cf * chunk] = True
    return mask


class Model:
    """The polynomial forward and its exact gradient in float64 (rotated
    coordinates; GQA expanded)."""

    def __init__(self, case, coeffs, chunk, q, k, v):
        logits, self.qr, self.ke, self.ve, self.s, self.dims, self.rp, _ = \
            ref._attention_logits(q, k, v, None, case.scale, case.causal,
                                  case.rope)
        n, m = self.dims["n"], self.dims["m"]
        self.c = np.asarray(coeffs)
        vis = np.isfinite(logits)
        lg = np.where(vis, logits, 0.0)
        pm = poly_mask(n, m, case.causal, chunk)[None, None]
        pv = np.polynomial.polynomial.polyval(lg, self.c)
        dc = np.polynomial.polynomial.polyder(self.c)
        pd = np.polynomial.polynomial.polyval(lg, dc) if dc.size else 0 * lg
        ex = np.exp(lg)
        self.P = np.where(vis, np.where(pm, pv, ex), 0.0)
        self.Pd = np.where(vis, np.where(pm, pd, ex), 0.0)
        self.Z = self.P.sum(-1)

    def forward(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(self.Z[..., None] > 0, self.P / self.Z[..., None], 0)
        return np.einsum("bhij,bhjc->bhic", a, self.ve)

    def grad(self, do, o):
        g = self.dims["g"]
        dd = np.sum(do * o, -1)
        dp = np.einsum("bhic,bhjc->bhij", do, self.ve)
        with np.errstate(invalid="ignore", divide="ignore"):
            zinv = np.where(self.Z > 0, 1 / self.Z, 0)[..., None]
        dl = (dp - dd[..., None]) * zinv * self.Pd
        dq = self.s * np.einsum("bhij,bhjd->bhid", dl, self.ke)
        dk = ref._reduce_kv(self.s * np.einsum("bhij,bhid->bhjd", dl,
                                               self.qr), g)
        dv = ref._reduce_kv(np.einsum("bhij,bhic->bhjc", self.P * zinv, do),
                            g)
        return dq, dk, dv

    def unrotate(self, dq, dk):
        if self.rp is None:
            return dq, dk
        rp = self.rp
        pq, pk = ref._rope_positions(self.dims["n"], self.dims["m"],
                                     int(rp["position_offset"]))
        return (ref._rotate(dq, pq, rp["base"], rp["layout"],
                            rp["rotary_dim"], True),
                ref._rotate(dk, pk, rp["base"], rp["layout"],
                            rp["rotary_dim"], True))


def fd_check(case, coeffs, chunk, q, k, v, do, rng):
    """Validates Model.grad by central differences of <dO, O^(q, k, v)>."""
    base = Model(case, coeffs, chunk, q, k, v)
    o = base.forward()
    dq, dk, dv = base.grad(do.reshape(o.shape), o)
    dq, dk = base.unrotate(dq, dk)
    u = [rng.standard_normal(x.shape) for x in (q, k, v)]
    h = 1e-6

    def f(t):
        mm = Model(case, coeffs, chunk, q + t * u[0], k + t * u[1],
                   v + t * u[2])
        return float(np.sum(do.reshape(o.shape) * mm.forward()))
    fd = (f(h) - f(-h)) / (2 * h)
    an = float(np.sum(dq.reshape(q.shape) * u[0]) +
               np.sum(dk.reshape(k.shape) * u[1]) +
               np.sum(dv.reshape(v.shape) * u[2]))
    return abs(fd - an) <= 1e-6 * max(1.0, abs(an)), abs(fd - an)


def rownorm(x):
    return np.linalg.norm(x, axis=-1)


def check(rope_run, dump, rng, workdir, dtype):
    case = ao.Case(rng, dtype)
    case.bias = "none"
    case.n = int(rng.integers(1, 130))
    case.m = case.n if rng.integers(0, 2) else int(rng.integers(1, 160))
    case.d = int(rng.choice([2, 4, 6, 8]))
    case.dv = int(rng.choice([case.d, 3, 8]))
    if case.rope is not None:
        r = case.rope["rotary_dim"]
        if r is not None and r > case.d:
            case.rope["rotary_dim"] = case.d
    family = str(rng.choice(["minimax", "minimax", "chebyshev", "taylor"]))
    max_degree = int(rng.choice([2, 4, 6]))
    epsilon = float(rng.choice([1e-2, 1e-3, 1e-4]))
    target_beta = float(rng.choice([0.1, 0.3, 0.6, 0.9, 1.3, 2.5]))
    chunk = int(rng.choice([16, 32, 64]))
    os.makedirs(workdir, exist_ok=True)
    q, k, v = ao.make_inputs(case, rng)[:3]
    s = case.scale if case.scale is not None else 1.0 / math.sqrt(case.d)
    f = math.sqrt(target_beta / (abs(s) * np.max(rownorm(q.astype(float))) *
                                 np.max(rownorm(k.astype(float)))))
    dt = ao.np_dtype(dtype)
    q, k = (q * f).astype(dt), (k * f).astype(dt)
    _, _, _, oshape, _, _ = case.shapes()
    do = rng.standard_normal(oshape).astype(dt)
    q64, k64, v64, do64 = (x.astype(np.float64) for x in (q, k, v, do))
    beta = abs(s) * np.max(rownorm(q64)) * np.max(rownorm(k64))
    cands = candidates(dump, family, case.d, max_degree, epsilon)
    chosen = next((c for c in cands if beta * (1 + 1e-6) <= c["beta"]), None)
    options = (f"family={family} epsilon={epsilon} max-degree={max_degree} "
               f"poly-chunk={chunk}")
    fwd_path, bwd_path = modules(case, "polynomial", workdir)
    o, lse = run(rope_run, fwd_path, "fwd", [q, k, v], 2, workdir, options)
    dq, dk, dv = (x.astype(np.float64) for x in run(
        rope_run, bwd_path, "bwd", [q, k, v, o, do, lse], 3, workdir,
        options))
    desc = (f"{dtype} {family} n={case.n} m={case.m} d={case.d} "
            f"dv={case.dv} hq={case.hq} hk={case.hk} causal={case.causal} "
            f"rope={None if case.rope is None else case.rope['layout']} "
            f"beta={beta:.3g} eps={epsilon:g} max-degree={max_degree} "
            f"chunk={chunk}")
    if chosen is None:
        _, epath = modules(case, "exact", workdir)
        ge = run(rope_run, epath, "bwd", [q, k, v, o, do, lse], 3, workdir,
                 options)
        same = all(np.array_equal(a, b) for a, b in zip((dq, dk, dv), ge))
        return same, desc + f" -> exact fallback, identical={same}"

    g = chosen["degree"]
    delta, ddelta = chosen["delta"], chosen["delta_derivative"]
    coeffs = chosen["coeffs"]
    u = 2.0 ** -53 if dtype == "f64" else 2.0 ** -24
    r = math.comb(case.d + g, g)
    nn = r + case.m + case.n + case.d + g + 16
    gam = nn * u / (1 - nn * u)
    A = sum(abs(c) * beta ** i for i, c in enumerate(coeffs))
    C = A * math.exp(beta) / (1 - delta) + 2
    rho = gam * C

    # Natural magnitudes (per row, flattened [bf, h, rows]).
    bf = int(np.prod(case.batch)) if case.batch else 1
    qf = q64.reshape(bf, case.hq, case.n, case.d)
    kf = k64.reshape(bf, case.hk, case.m, case.d)
    vf = v64.reshape(bf, case.hk, case.m, case.dv)
    dof = do64.reshape(bf, case.hq, case.n, case.dv)
    qmax, kmax, vmax = (float(np.max(rownorm(x))) for x in (qf, kf, vf))
    don = rownorm(dof)                                    # [bf, hq, n]
    # Exact probabilities A (fp64 reference logits), column sums weighted by
    # |dO_i|, summed over the GQA group: [bf, hk, m].
    logits = ref._attention_logits(q64, k64, v64, None, case.scale,
                                   case.causal, case.rope)[0]
    pa, _ = ref._softmax(logits)
    colw = ref._reduce_kv(np.einsum("bhij,bhi->bhj", pa, don),
                          case.hq // case.hk)

    # (1) the model.
    model = Model(case, coeffs, chunk, q64, k64, v64)
    odl = o.astype(np.float64).reshape(bf, case.hq, case.n, case.dv)
    mdq, mdk, mdv = model.grad(dof, odl)
    mdq, mdk = model.unrotate(mdq, mdk)
    mag_q = abs(s) * kmax * vmax * don * 3               # [bf, hq, n]
    mag_k = abs(s) * qmax * vmax * colw * 3 + 1e-300     # [bf, hk, m]
    mag_v = colw + 1e-300
    dq_, dk_, dv_ = (x.reshape(y.shape) for x, y in
                     ((dq, mdq), (dk, mdk), (dv, mdv)))
    # The model's own error against exact arithmetic is f64 rounding; the
    # compiled code's is gamma_n C (relative to the magnitudes); f16/bf16
    # gradients are then rounded once to the 16-bit type (u16 relative).
    u16 = {"bf16": 2.0 ** -8, "f16": 2.0 ** -11}.get(dtype, 0.0)
    tol1 = gam * C * 4
    e1 = [float(np.max(rownorm(a - b) / (tol1 * mg + u16 * rownorm(b) +
                                         1e-300), initial=0))
          for a, b, mg in
          ((dq_, mdq, mag_q), (dk_, mdk, mag_k), (dv_, mdv, mag_v))]
    ok1 = all(e <= 1.0 for e in e1)

    # (2) the certificate against the exact gradient.
    d_eff = delta + (rho if dtype != "f64" else 0)
    dd_eff = ddelta + (rho if dtype != "f64" else 0)
    eta = (d_eff + dd_eff) / (1 - d_eff)
    eta0 = 2 * d_eff / (1 - d_eff)
    # o enters D_i; stored in 16 bits it carries u16 more (|o_i| <= Vmax).
    eta0d = eta0 + u16
    kappa = eta * (2 + eta0d) + eta0d
    rq, rk, rv, _ = ref.attention_grad(q64, k64, v64, do64,
                                       scale=case.scale, causal=case.causal,
                                       rope=case.rope)
    rq, rk, rv = (x.reshape(y.shape) for x, y in
                  ((rq, mdq), (rk, mdk), (rv, mdv)))
    bq = abs(s) * kmax * don * vmax * kappa + tol1 * mag_q
    bk = abs(s) * qmax * vmax * kappa * colw + tol1 * mag_k
    bv = eta0 * colw + tol1 * mag_v
    r2 = [float(np.max(rownorm(a - b) / (bnd + u16 * rownorm(a)),
                       initial=0)) for a, b, bnd in
          ((dq_, rq, bq), (dk_, rk, bk), (dv_, rv, bv))]
    ok2 = all(x <= 1.0 for x in r2)

    line = (desc + f" -> g={g} delta={delta:.1e} delta'={ddelta:.1e}; "
            f"vs model {max(e1):.2f} of its tolerance; "
            f"vs exact {max(r2):.2f} of the bound")
    ok = ok1 and ok2
    if dtype == "f64":
        okf, err = fd_check(case, coeffs, chunk, q64, k64, v64, do64, rng)
        ok = ok and okf
        line += f"; model vs finite differences {err:.1e}"
    return ok, line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("dump", help="poly-approx-dump")
    ap.add_argument("workdir")
    ap.add_argument("--configs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    failures = 0
    counts = {"poly": 0, "exact": 0}
    for i in range(args.configs):
        dtype = ["f64", "f32", "f32", "bf16", "f64", "f32", "f16"][i % 7]
        try:
            ok, line = check(args.rope_run, args.dump, rng,
                             os.path.join(args.workdir, f"c{i}"), dtype)
        except Exception as exc:  # noqa: BLE001
            ok, line = False, f"error: {exc}"
        counts["exact" if "fallback" in line else "poly"] += 1
        print(f"[{'ok' if ok else 'FAIL'}] case {i}: {line}", flush=True)
        failures += not ok
    print(f"{args.configs - failures}/{args.configs} cases passed "
          f"({counts['poly']} polynomial, {counts['exact']} exact fallback)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
