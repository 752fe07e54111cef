"""xPos scaling (docs/Spec.md §3.1) on every CPU path, against the fp64
reference (test/reference/ropeattn_ref.py, written from the spec) and the
exact path.

Three kinds of case, each run through rope-run (rope-lower-to-cpu):

  exact   random shapes (batch dims, GQA, N != M, causal or not), both RoPE
          layouts, partial rotary_dim, position offsets, scale bases B and
          gammas; f32 and f64 (pre-rotation: ropeattn-prerotate emits rotary
          ops with `side`), f16 (fused xPos in the exact lowering). Forward
          (o, lse) and attention_grad (dq, dk, dv) vs. the reference; the
          f64 gradient also vs. central finite differences of ropeattn's own
          f64 forward (the reference gradient takes Delta from the o operand
          actually passed, rounded to E, as docs/Spec.md §7 allows the op to).
          Tolerances as attention_oracle.py: f64 1e-11 / 1e-10;
          f32 2x the error of a straightforward fp32 numpy implementation
          (xPos factors and angles in f32 at the true positions, what a user
          writes) with a floor of 8 ulps; f16 additionally 1 ulp of f16.
  poly    method polynomial (f64 and f32): the certificate's beta-hat must
          bound the true max |logit| and equal (within the rounding allowance
          of polynomial_oracle.py) s * max|q~| * max|k~| of the *scaled*
          rotated vectors at the centred positions of §3.1; the degree must be
          the least candidate covering it; the error vs. the reference must
          stay within the certified bound B(delta + rho) max|v| (rho as in
          polynomial_oracle.py).
  general a constant general_attention table of the xPos family (built by
          the reference's xpos_general_weights from the spec formula, f32 and
          f64): rope-opt -canonicalize must turn it into ropeattn.attention
          with xPos, and rope-run's output must match the general formula
          (ref.general_attention on the same table) within the exact
          tolerances above.
  toeplitz  method toeplitz with a bias (f64; fft codegen and library): the
          degree recomputed from beta-hat of the scaled vectors as the pass
          does; |O~ - O| <= B(delta') max|v| + 1e-9 max|v| (delta' as in
          toeplitz_attention_oracle.py; 1e-9 allows the f64 FFT rounding,
          ~1e4 times its size for these lengths); and the output must differ
          from `method exact` (the Toeplitz path really ran).

Usage: xpos_oracle.py ROPE_RUN POLY_APPROX_DUMP WORKDIR [--configs N] [--seed S]
"""

import argparse
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "reference"))
import attention_oracle as ao  # noqa: E402
import polynomial_oracle as po  # noqa: E402
import ropeattn_ref as ref  # noqa: E402
import toeplitz_attention_oracle as tao  # noqa: E402


def rope_text(rope):
    parts = []
    if rope["base"] != 10000.0:
        parts.append(f"base = {rope['base']:.6e}")
    if rope["layout"] != "half":
        parts.append(f"layout = {rope['layout']}")
    if rope["rotary_dim"] is not None:
        parts.append(f"rotary_dim = {rope['rotary_dim']}")
    if rope["position_offset"]:
        parts.append(f"position_offset = {rope['position_offset']}")
    parts.append(f"xpos_scale_base = {rope['xpos_scale_base']!r}")
    if rope["xpos_gamma"] is not None:
        parts.append(f"xpos_gamma = {rope['xpos_gamma']!r}")
    return " rope <" + ", ".join(parts) + ">"


class XposCase(ao.Case):
    def __init__(self, rng, dtype):
        super().__init__(rng, dtype)
        self.n = int(rng.integers(1, 80))
        self.m = int(rng.choice([self.n, int(rng.integers(1, 120))]))
        self.d = int(rng.choice([4, 8, 16, 6]))
        self.dv = int(rng.choice([self.d, 5]))
        self.bias = "none"
        rd = None if rng.integers(0, 2) else \
            int(rng.choice(range(2, self.d + 1, 2)))
        self.rope = {"base": float(rng.choice([10000.0, 100.0])),
                     "layout": str(rng.choice(["half", "interleaved"])),
                     "rotary_dim": rd,
                     "position_offset": int(rng.choice([0, 0, 9, 300])),
                     "xpos_scale_base": float(rng.choice([8.0, 64.0, 512.0])),
                     "xpos_gamma": None if rng.integers(0, 2) else 0.7}

    def attrs(self):
        s = " causal" if self.causal else ""
        if self.scale is not None:
            s += f" scale({self.scale:.17e})"
        return s + rope_text(self.rope)


def centred_positions(n, m):
    """§3.1: relative positions (queries M - N + i, keys j) minus the centre
    c = floor((min(0, M - N) + M - 1) / 2) of their union."""
    c = (min(0, m - n) + m - 1) // 2
    return np.arange(n) + (m - n) - c, np.arange(m) - c


def scaled_rotated(x, pos, rope, sign, dtype=np.float64):
    """zeta^(sign p/B) R(p) x in `dtype` (angles and factors in dtype)."""
    f = dtype
    d = x.shape[-1]
    r = d if rope["rotary_dim"] is None else rope["rotary_dim"]
    x = x.astype(f)
    if r == 0:
        return x
    a = np.arange(r // 2)
    theta = (f(rope["base"]) ** (-(2 * a).astype(f) / f(r))).astype(f)
    ang = pos.astype(f)[:, None] * theta[None, :]
    g = f(0.4 if rope["xpos_gamma"] is None else rope["xpos_gamma"])
    zeta = ((f(2) * a.astype(f) / f(r) + g) / (f(1) + g)).astype(f)
    fac = zeta[None, :] ** (f(sign) * pos.astype(f)[:, None] /
                            f(rope["xpos_scale_base"]))
    c, s = np.cos(ang) * fac, np.sin(ang) * fac
    if rope["layout"] == "half":
        u, w = a, a + r // 2
    else:
        u, w = 2 * a, 2 * a + 1
    y = x.copy()
    y[..., u] = x[..., u] * c - x[..., w] * s
    y[..., w] = x[..., u] * s + x[..., w] * c
    return y


def naive32(case, q, k, v, do):
    """Straightforward fp32: scale and rotate at the true positions in f32,
    then attention_oracle's fp32 softmax path; gradients mapped back with
    the transposed maps (angle -p, same factor)."""
    n, m, off = case.n, case.m, case.rope["position_offset"]
    qpos, kpos = np.arange(n) + off + m - n, np.arange(m) + off
    qs = scaled_rotated(q, qpos, case.rope, 1, np.float32)
    ks = scaled_rotated(k, kpos, case.rope, -1, np.float32)
    plain = ao.Case.__new__(ao.Case)
    plain.__dict__.update(case.__dict__)
    plain.rope = None
    o, lse = ao.naive32(plain, qs, ks, v, None)
    dq, dk, dv = ao.naive32(plain, qs, ks, v, None, do=do)

    dq = ao._rot32(_scale32(dq, qpos, case.rope, 1), -qpos, case.rope)
    dk = ao._rot32(_scale32(dk, kpos, case.rope, -1), -kpos, case.rope)
    return (o, lse), (dq, dk, dv)


def _scale32(x, pos, rope, sign):
    f = np.float32
    d = x.shape[-1]
    r = d if rope["rotary_dim"] is None else rope["rotary_dim"]
    if r == 0:
        return x
    a = np.arange(r // 2)
    g = f(0.4 if rope["xpos_gamma"] is None else rope["xpos_gamma"])
    zeta = ((f(2) * a.astype(f) / f(r) + g) / (f(1) + g)).astype(f)
    fac = zeta[None, :] ** (f(sign) * pos.astype(f)[:, None] /
                            f(rope["xpos_scale_base"]))
    u, w = (a, a + r // 2) if rope["layout"] == "half" else (2 * a, 2 * a + 1)
    y = x.copy()
    y[..., u] *= fac
    y[..., w] *= fac
    return y


def run_funcs(rope_run, path, func, inputs, nout, workdir, options=None,
              pipeline=None):
    paths = []
    for i, x in enumerate(inputs):
        p = os.path.join(workdir, f"{func}_in{i}.npy")
        np.save(p, x)
        paths.append(p)
    outs = [os.path.join(workdir, f"{func}_out{i}.npy") for i in range(nout)]
    cmd = [rope_run, path, f"--function={func}"]
    if options:
        cmd.append(f"--pipeline-options={options}")
    cmd += [f"--input=@{p}" for p in paths] + [f"--output=@{p}" for p in outs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"rope-run failed ({res.returncode}): "
                           f"{' '.join(cmd)}\n{res.stderr[-2000:]}")
    return [ao.load(p) for p in outs]


def check_exact(rope_run, case, rng, workdir):
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "case.mlir")
    with open(path, "w") as fh:
        fh.write(case.mlir())
    q, k, v = ao.make_inputs(case, rng)[:3]
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    o_ref, lse_ref = ref.attention(f64(q), f64(k), f64(v), scale=case.scale,
                                   causal=case.causal, rope=case.rope)
    o, lse = run_funcs(rope_run, path, "fwd", [q, k, v], 2, workdir)
    dt = ao.np_dtype(case.dtype)
    acc = np.float64 if case.dtype == "f64" else np.float32
    do = rng.standard_normal(o_ref.shape).astype(dt)
    grads = run_funcs(rope_run, path, "bwd",
                      [q, k, v, o_ref.astype(dt), do, lse_ref.astype(acc)],
                      3, workdir)
    # The exact gradient for the operands passed: Delta from o as rounded to
    # E (docs/Spec.md §7 lets the op use its o operand; the error o carries
    # is the forward's, not the backward's).
    g_ref = ref.attention_grad(f64(q), f64(k), f64(v), f64(do),
                               scale=case.scale, causal=case.causal,
                               rope=case.rope, o=o_ref.astype(dt))[:3]
    if case.dtype == "f64":
        tols = [1e-11, 1e-11] + [1e-10] * 3
    else:
        (o32, l32), g32 = naive32(case, q, k, v, do)
        floor = 2.0 ** -21
        tols = [2 * max(ao.relerr(x, y), floor)
                for x, y in zip([o32, l32] + list(g32),
                                [o_ref, lse_ref] + list(g_ref))]
        if case.dtype in ("f16", "bf16"):
            ulp = {"f16": 2.0 ** -10, "bf16": 2.0 ** -7}[case.dtype]
            tols = [max(t, ulp) if i != 1 else t for i, t in enumerate(tols)]
    ok = True
    line = ""
    for name, got, want, tol in zip(["o", "lse", "dq", "dk", "dv"],
                                    [o, lse] + grads,
                                    [o_ref, lse_ref] + list(g_ref), tols):
        e = ao.relerr(got, want)
        line += f" {name}={e:.1e}"
        if e > tol:
            line += f"(>{tol:.1e})"
            ok = False
    if case.dtype == "f64" and ok:
        eps = 1e-6
        dirs = [rng.standard_normal(a.shape) for a in (q, k, v)]

        def F(t):
            xs = [a + t * u for a, u in zip((q, k, v), dirs)]
            return float(np.sum(run_funcs(rope_run, path, "fwd", xs, 2,
                                          workdir)[0] * do))
        fd = (F(eps) - F(-eps)) / (2 * eps)
        an = sum(float(np.sum(g * u)) for g, u in zip(grads, dirs))
        e = abs(fd - an) / max(abs(an), 1e-3)
        line += f" fd={e:.1e}"
        ok = ok and e <= 1e-6
    return ok, line


def beta_scaled(case, q, k, s):
    """s * max|q~| * max|k~|, q~ and k~ scaled and rotated at the centred
    positions (float64)."""
    pq, pk = centred_positions(case.n, case.m)
    qs = scaled_rotated(np.asarray(q, np.float64), pq, case.rope, 1)
    ks = scaled_rotated(np.asarray(k, np.float64), pk, case.rope, -1)
    return abs(s) * np.max(np.linalg.norm(qs, axis=-1)) * \
        np.max(np.linalg.norm(ks, axis=-1))


def true_max_logit(case, q, k, s):
    pq, pk = np.arange(case.n) + case.m - case.n, np.arange(case.m)
    qs = scaled_rotated(np.asarray(q, np.float64), pq, case.rope, 1)
    ks = scaled_rotated(np.asarray(k, np.float64), pk, case.rope, -1)
    g = case.hq // case.hk
    ks = np.repeat(ks, g, axis=-3)
    lg = s * np.einsum("...id,...jd->...ij", qs, ks)
    if case.causal:
        vis = np.arange(case.m)[None, :] <= np.arange(case.n)[:, None] + \
            case.m - case.n
        lg = np.where(vis, lg, 0)
    return float(np.max(np.abs(lg))) if lg.size else 0.0


def check_poly(rope_run, dump, case, rng, workdir):
    os.makedirs(workdir, exist_ok=True)
    q, k, v = ao.make_inputs(case, rng)[:3]
    s = case.scale if case.scale is not None else 1.0 / math.sqrt(case.d)
    target = float(rng.choice([0.3, 0.9, 2.0]))
    f = math.sqrt(target / max(beta_scaled(case, q, k, s), 1e-30))
    dt = ao.np_dtype(case.dtype)
    q, k = (q * f).astype(dt), (k * f).astype(dt)
    beta = beta_scaled(case, q, k, s)
    family, eps, max_degree = "minimax", 1e-3, 6
    path = os.path.join(workdir, "poly.mlir")
    with open(path, "w") as fh:
        fh.write(po.mlir(case, "polynomial"))
    o, lse, cert = run_funcs(
        rope_run, path, "fwd", [q, k, v], 3, workdir,
        options=f"family={family} epsilon={eps} max-degree={max_degree}")
    u = 2.0 ** -53 if case.dtype == "f64" else 2.0 ** -24
    slack = 1 + 2 * (case.d + 2) * u
    # beta-hat: the scaled vectors' bound (the compiled code forms it from
    # squared norms of q~, k~ rounded to the element type: a relative
    # allowance of 16 (D + 2) u, plus the rounding of the factors in f32).
    rel = 16 * (case.d + 2) * u + (8 * 2.0 ** -24 if case.dtype == "f32"
                                   else 0)
    lmax = true_max_logit(case, q, k, s)
    beta_ok = lmax <= cert[0] * (1 + 1e-12) and \
        abs(cert[0] - beta * slack) <= rel * beta * slack
    cands = po.candidates(dump, family, case.d, max_degree, eps)
    chosen = next((c for c in cands if cert[0] <= c[1]), None)
    line = (f" beta={beta:.3g} beta_hat={cert[0]:.3g} max|l|={lmax:.3g} "
            f"beta ok={beta_ok}")
    if chosen is None:
        return False, line + " (no candidate: the test wants the poly path)"
    g, _, delta, abs_sum = chosen
    o_ref, lse_ref = ref.attention(q.astype(np.float64), k.astype(np.float64),
                                   v.astype(np.float64), scale=case.scale,
                                   causal=case.causal, rope=case.rope)
    r = math.comb(case.d + g, g)
    nn = r + g + 2 + case.m + r
    rho = (nn * u / (1 - nn * u)) * (abs_sum * math.exp(cert[0]) /
                                     (1 - delta) + 2)
    vmax = float(np.max(np.abs(v.astype(np.float64))))
    bound = po.output_bound(delta + rho) * vmax
    err = float(np.max(np.abs(o.astype(np.float64) - o_ref)))
    ok = beta_ok and cert[1] == g and cert[2] == delta and err <= bound
    return ok, line + (f" g={int(cert[1])} (want {g}) err={err:.2e} "
                       f"(bound {bound:.2e})")


def check_toeplitz(rope_run, dump, case, rng, workdir, backend):
    os.makedirs(workdir, exist_ok=True)
    case.dtype = "f64"
    q, k, v = ao.make_inputs(case, rng)[:3]
    s = case.scale if case.scale is not None else 1.0 / math.sqrt(case.d)
    f = math.sqrt(0.8 / max(beta_scaled(case, q, k, s), 1e-30))
    q, k = q * f, k * f
    L = case.n + case.m - 1
    bias = rng.uniform(-1.0, 1.0, (L,))
    beta = beta_scaled(case, q, k, s) * (1 + 2 * (case.d + 2) * 2.0 ** -53)
    cands = tao.candidates(dump, case.d)
    chosen = next((c for c in cands if beta <= c[1]), None)
    q_t, k_t, v_t, b_t = (ao.tensor_type(x.shape, "f64")
                          for x in (q, k, v, bias))
    o_t = ao.tensor_type(case.shapes()[3], "f64")
    outs = []
    for method in ("toeplitz", "exact"):
        path = os.path.join(workdir, f"{method}.mlir")
        with open(path, "w") as fh:
            fh.write(f"func.func @f(%q: {q_t}, %k: {k_t}, %v: {v_t}, "
                     f"%b: {b_t}) -> {o_t} {{\n  %o = ropeattn.attention "
                     f"%q, %k, %v bias(%b){case.attrs()} method {method} : "
                     f"({q_t}, {k_t}, {v_t}, {b_t}) -> {o_t}\n"
                     f"  return %o : {o_t}\n}}\n")
        outs.append(run_funcs(rope_run, path, "f", [q, k, v, bias], 1,
                              workdir, options=f"fft={backend} "
                              f"family={tao.FAMILY} epsilon={tao.EPS}")[0])
    o_ref, _ = ref.attention(q, k, v, bias=bias, scale=case.scale,
                             causal=case.causal, rope=case.rope)
    line = f" {backend} beta={beta:.3g}"
    if chosen is None:
        return False, line + " (no candidate: the test wants the FFT path)"
    g, _, delta, coeffs = chosen
    A = sum(abs(c) * beta ** i for i, c in enumerate(coeffs))
    dprime = delta + tao.gamma(2 * g + 4, 2.0 ** -53) * A * math.exp(beta) / \
        (1 - delta)
    vmax = float(np.max(np.abs(v)))
    bound = tao.output_bound(dprime) * vmax + 1e-9 * vmax
    err = float(np.max(np.abs(outs[0] - o_ref)))
    ran = not np.array_equal(outs[0], outs[1])
    ok = err <= bound and ran
    return ok, line + (f" g={g} err={err:.2e} (bound {bound:.2e}) "
                       f"toeplitz ran={ran}")


def check_general(rope_run, case, rng, workdir):
    os.makedirs(workdir, exist_ok=True)
    rp = case.rope
    n, m, d = case.n, case.m, case.d
    kw = {x: rp[x] for x in ("base", "layout", "rotary_dim", "xpos_gamma")}
    w, support = ref.xpos_general_weights(
        n, m, d, xpos_scale_base=rp["xpos_scale_base"], **kw)
    et = case.dtype
    dt = ao.np_dtype(et)
    w = w.astype(dt)
    q, k, v = ao.make_inputs(case, rng)[:3]
    qs, ks, vs, o = case.shapes()[:4]
    T = lambda sh: ao.tensor_type(sh, et)  # noqa: E731
    fmt = (lambda x: repr(float(x)))
    rows = ", ".join("[" + ", ".join(fmt(x) for x in row) + "]" for row in w)
    wt = T(list(w.shape))
    c = " causal" if case.causal else ""
    sc = f" scale({case.scale:.17e})" if case.scale is not None else ""
    text = (f"func.func @f(%q: {T(qs)}, %k: {T(ks)}, %v: {T(vs)}) -> {T(o)} "
            f"{{\n  %w = arith.constant dense<[{rows}]> : {wt}\n"
            f"  %o = ropeattn.general_attention %q, %k, %v weights(%w) "
            f"support [{', '.join(str(x) for x in support)}]{c}{sc} : "
            f"({T(qs)}, {T(ks)}, {T(vs)}, {wt}) -> {T(o)}\n"
            f"  return %o : {T(o)}\n}}\n")
    path = os.path.join(workdir, "general.mlir")
    with open(path, "w") as fh:
        fh.write(text)
    rope_opt = os.path.join(os.path.dirname(rope_run), "rope-opt")
    canon = subprocess.run([rope_opt, path, "-canonicalize"],
                           capture_output=True, text=True, check=True).stdout
    rewritten = "general_attention" not in canon and "xpos_scale_base" in canon
    got = run_funcs(rope_run, path, "f", [q, k, v], 1, workdir)[0]
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    want, _ = ref.general_attention(f64(q), f64(k), f64(v), f64(w), support,
                                    scale=case.scale, causal=case.causal)
    if et == "f64":
        tol = 1e-11
    else:
        (o32, _), _ = naive32(case, q, k, v, np.zeros(want.shape, dt))
        tol = 2 * max(ao.relerr(o32, want), 2.0 ** -21)
    e = ao.relerr(got, want)
    return rewritten and e <= tol, (f" canonicalized={rewritten} "
                                    f"err={e:.1e} (tol {tol:.1e})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("dump")
    ap.add_argument("workdir")
    ap.add_argument("--configs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    results = []
    for i in range(args.configs):
        dtype = ["f32", "f64", "f32", "f16"][i % 4]
        case = XposCase(rng, dtype)
        results.append(("exact", case, lambda c=case, i=i: check_exact(
            args.rope_run, c, rng, os.path.join(args.workdir, f"e{i}"))))
    for i in range(max(args.configs // 2, 1)):
        case = XposCase(rng, ["f64", "f32"][i % 2])
        case.d = int(rng.choice([2, 4, 6]))
        case.dv = 3
        case.rope["rotary_dim"] = None
        results.append(("poly", case, lambda c=case, i=i: check_poly(
            args.rope_run, args.dump, c, rng,
            os.path.join(args.workdir, f"p{i}"))))
    for i in range(max(args.configs // 3, 1)):
        case = XposCase(rng, ["f64", "f32"][i % 2])
        case.n = int(rng.integers(2, 40))
        case.m = int(rng.choice([case.n, int(rng.integers(2, 40))]))
        case.rope["position_offset"] = 0
        results.append(("general", case, lambda c=case, i=i: check_general(
            args.rope_run, c, rng, os.path.join(args.workdir, f"g{i}"))))
    for i in range(max(args.configs // 3, 1)):
        case = XposCase(rng, "f64")
        case.n = int(rng.integers(1, 40))
        case.m = int(rng.choice([case.n, int(rng.integers(1, 40))]))
        case.d = int(rng.choice([2, 4]))
        case.dv = 3
        case.rope["rotary_dim"] = None
        backend = ["codegen", "library"][i % 2]
        results.append(("toeplitz", case, lambda c=case, i=i, b=backend:
                        check_toeplitz(args.rope_run, args.dump, c, rng,
                                       os.path.join(args.workdir, f"t{i}"),
                                       b)))
    failures = 0
    for idx, (kind, case, fn) in enumerate(results):
        try:
            ok, line = fn()
        except Exception as exc:  # report, count as failure
            ok, line = False, f" error: {exc}"
        print(f"[{'ok' if ok else 'FAIL'}] {kind} {idx}: {case.describe()}\n"
              f"   {line}", flush=True)
        failures += not ok
    print(f"{len(results) - failures}/{len(results)} cases passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
