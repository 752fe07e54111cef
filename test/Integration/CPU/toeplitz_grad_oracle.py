"""The Toeplitz backward (attention_grad with a relative bias and `method
toeplitz`) against a model, the fp64 exact gradient, and finite differences.

For random configurations (batch dims, GQA, N < M / N = M / N > M, causal or
not, shared or per-head bias, uniform or ALiBi-like biases, D in {2, 3, 4},
Dv in {1..4}, logit ranges beta, f32/f64, fft=codegen/library) this runs the
forward `ropeattn.attention ... method toeplitz` and feeds its output to
`ropeattn.attention_grad ... method toeplitz` (as a training step does),
through rope-run (rope-lower-to-cpu), and checks dq, dk, dv and d-bias:

(0) Which path ran, recomputed here as in toeplitz_attention_oracle.py
    (beta = |s| max|q| max|k| (1 + 2(D + 2)u), the candidate table of
    poly-approx-dump with max-degree 4, max-rank 1024, the least covering
    degree; the exact path when none covers beta or a visible bias entry is
    not finite). On the exact path all four gradients must equal the
    `method exact` gradients bit for bit.

(1) The model: the Toeplitz backward is the exact gradient of the function
    the Toeplitz forward computes. This script builds that function in
    float64 numpy from the spec, densely (no features, no FFT): weights
    P_ij = p(l_ij) e^{b_{i-j}} on the visible pairs (p the certified
    polynomial, evaluated with polyval), O = P V / rowsum(P), and its
    gradient with p'. The model is validated against central finite
    differences of the model forward in q, k, v and the bias (f64 cases),
    so (1) does not trust the formula. Tolerance (rounding only, first
    order): per output entry (gamma_n C 4 + 3 eps_fft amp) Mag, with
    n = R W + M + N + D + g + 16, C = A e^beta/(1 - delta) + 2 (A =
    sum |c_k| beta^k), eps_fft the normwise FFT bound of fft_oracle.py for
    the padded length, amp = C |E_vis|_1 / min_i Z_i per head (a normwise
    FFT error of a Toeplitz product relative to the row denominators Z_i of
    the shifted symbol E = e^{b - max b}), Mag the natural magnitude of the
    entry (below); for d-bias also 3 eps_fft sum_col |S_col|_2 |X_col|_1
    (the cross-correlation by FFT: |F(s)-error|_2 <= eps sqrt(L) |s|_2,
    |F(x)|_inf <= |x|_1, the inverse's 1/L).

(2) The certificate, against the exact fp64 gradient of the reference
    (test/reference/ropeattn_ref.py). With delta, delta' (the weights' and
    the derivative's proven relative errors), eta = (delta + delta')/(1 -
    delta), eta0 = 2 delta/(1 - delta), kappa = eta (2 + eta0) + eta0 and
    kappa0 = eta0 (3 + eta0) (docs/Spec.md §11, "attention_grad, method
    toeplitz"; the bias factor e^{b} cancels in every ratio):
      |dq_i - dq~_i|  <= |s| Kmax |dO_i| Vmax kappa
      |dk_j - dk~_j|  <= |s| Qmax Vmax kappa sum_i A_ij |dO_i|
      |dv_j - dv~_j|  <= eta0 sum_i A_ij |dO_i|
      |db_u - db~_u|  <= kappa0 Vmax sum_{i - j = u - M + 1} A_ij |dO_i|
    (A the exact probabilities with the bias; sums over the query heads
    that share a key head / a table entry). The rounding allowance of (1)
    is added; for f32, delta and delta' are enlarged by gamma_n C.

Each case is one module (@f forward, @g / @gx the toeplitz / exact
gradient) compiled once through the Python package (ropeattn.compile).

Usage: toeplitz_grad_oracle.py ROPE_RUN POLY_APPROX_DUMP WORKDIR
       [--configs N] [--seed S]
"""

import argparse
import math
import os
import sys

import numpy as np

import ropeattn

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "reference"))
import ropeattn_ref as ref  # noqa: E402
import toeplitz_attention_oracle as tao  # noqa: E402
from fft_oracle import fft_bound, U  # noqa: E402
from poly_features import features  # noqa: E402
from polynomial_oracle import candidate_rows  # noqa: E402

MAX_DEGREE, MAX_RANK, EPS, FAMILY = 4, 1024, 1e-2, "minimax"


def module_text(c, xs, o_shape):
    """@f: the Toeplitz forward; @g / @gx: attention_grad with method
    toeplitz / exact."""
    et = c["et"]
    tq, tk, tv, tb = (tao.ttype(x.shape, et) for x in xs)
    to = tao.ttype(o_shape, et)
    causal = " causal" if c["causal"] else ""
    text = (f"func.func @f(%q: {tq}, %k: {tk}, %v: {tv}, %b: {tb}) -> {to} "
            f"{{\n  %o = ropeattn.attention %q, %k, %v bias(%b){causal} "
            f"method toeplitz : ({tq}, {tk}, {tv}, {tb}) -> {to}\n"
            f"  return %o : {to}\n}}\n")
    for name, method in (("g", "toeplitz"), ("gx", "exact")):
        text += (
            f"func.func @{name}(%q: {tq}, %k: {tk}, %v: {tv}, %o: {to}, "
            f"%do: {to}, %b: {tb}) -> ({tq}, {tk}, {tv}, {tb}) {{\n"
            f"  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, "
            f"%do bias(%b){causal} method {method} : ({tq}, {tk}, {tv}, "
            f"{to}, {to}, {tb}) -> ({tq}, {tk}, {tv}, {tb})\n"
            f"  return %dq, %dk, %dv, %db : {tq}, {tk}, {tv}, {tb}\n}}\n")
    return text


def compile_case(c, xs):
    o_shape = tuple(c["batch"]) + (c["hq"], c["n"], c["dv"])
    try:
        return ropeattn.compile(
            module_text(c, xs, o_shape),
            pipeline_options=f"fft={c['backend']} family={FAMILY} "
                             f"epsilon={EPS}")
    except ropeattn.RopeAttnError as e:
        raise RuntimeError(f"compile failed: {str(e)[-500:]}")


class Model:
    """The Toeplitz forward (dense, float64) and its exact gradient, per
    flattened batch entry z and query head h."""

    def __init__(self, c, coeffs, q, k, v, bias):
        self.c = c
        self.coeffs = np.asarray(coeffs, dtype=np.float64)
        n, m, hq, hk = c["n"], c["m"], c["hq"], c["hk"]
        self.grp = hq // hk
        self.s = 1 / math.sqrt(c["d"])
        self.q = q.reshape((-1, hq, n, c["d"]))
        self.k = k.reshape((-1, hk, m, c["d"]))
        self.v = v.reshape((-1, hk, m, c["dv"]))
        self.bias = bias
        i = np.arange(n)[:, None]
        j = np.arange(m)[None, :]
        self.idx = i - j + m - 1                       # [N, M] table index
        self.vis = (j <= i + (m - n)) if c["causal"] else np.ones((n, m),
                                                                  bool)
        nz = self.q.shape[0]
        self.P = np.zeros((nz, hq, n, m))
        self.Pd = np.zeros((nz, hq, n, m))
        self.E = np.zeros((hq, n + m - 1))
        dc = np.polynomial.polynomial.polyder(self.coeffs)
        for z in range(nz):
            for h in range(hq):
                brow = bias if bias.ndim == 1 else bias[h]
                bmax = np.max(np.where(self._visible_offsets(), brow,
                                       -np.inf))
                e = np.exp(brow - bmax)
                self.E[h] = e
                em = np.where(self.vis, e[self.idx], 0.0)
                lg = self.s * self.q[z, h] @ self.k[z, h // self.grp].T
                self.P[z, h] = np.polynomial.polynomial.polyval(
                    lg, self.coeffs) * em
                self.Pd[z, h] = np.polynomial.polynomial.polyval(lg, dc) * em
        self.Z = self.P.sum(-1)

    def _visible_offsets(self):
        n, m = self.c["n"], self.c["m"]
        vis = np.ones(n + m - 1, bool)
        if self.c["causal"]:
            vis[: n - 1] = False
        return vis

    def zinv(self):
        with np.errstate(divide="ignore"):
            return np.where(self.Z > 0, 1 / np.where(self.Z > 0, self.Z, 1),
                            0.0)

    def forward(self):
        a = self.P * self.zinv()[..., None]
        ve = np.repeat(self.v, self.grp, axis=1)
        return np.einsum("zhij,zhjc->zhic", a, ve)

    def grad(self, do, o):
        n, m = self.c["n"], self.c["m"]
        ve = np.repeat(self.v, self.grp, axis=1)
        ke = np.repeat(self.k, self.grp, axis=1)
        dd = np.sum(do * o, -1)
        dp = np.einsum("zhic,zhjc->zhij", do, ve)
        dl = (dp - dd[..., None]) * self.zinv()[..., None]   # dL/dP
        dq = self.s * np.einsum("zhij,zhjd->zhid", dl * self.Pd, ke)
        dke = self.s * np.einsum("zhij,zhid->zhjd", dl * self.Pd, self.q)
        dve = np.einsum("zhij,zhic->zhjc", self.P * self.zinv()[..., None],
                        do)
        red = (lambda x: x.reshape(x.shape[0], -1, self.grp, *x.shape[2:])
               .sum(2))
        dbh = np.zeros((self.c["hq"], n + m - 1))
        gp = (dl * self.P).sum(0)                              # [Hq, N, M]
        for h in range(self.c["hq"]):
            np.add.at(dbh[h], self.idx, gp[h])
        db = dbh if self.bias.ndim == 2 else dbh.sum(0)
        return dq, red(dke), red(dve), db


def model_at(c, coeffs, q, k, v, bias):
    return Model(c, coeffs, q, k, v, bias)


def fd_check(c, coeffs, q, k, v, bias, do, rng):
    """Validates Model.grad by central differences of <dO, O(q, k, v, b)>."""
    base = model_at(c, coeffs, q, k, v, bias)
    o = base.forward()
    dof = do.reshape(o.shape)
    grads = base.grad(dof, o)
    us = [rng.standard_normal(x.shape) for x in (q, k, v, bias)]
    h = 1e-6

    def f(t):
        mm = model_at(c, coeffs, *(x + t * u for x, u in
                                   zip((q, k, v, bias), us)))
        return float(np.sum(dof * mm.forward()))
    fd = (f(h) - f(-h)) / (2 * h)
    an = sum(float(np.sum(g.reshape(x.shape) * u))
             for g, x, u in zip(grads, (q, k, v, bias), us))
    return abs(fd - an) <= 1e-6 * max(1.0, abs(an)), abs(fd - an)


def rownorm(x):
    return np.linalg.norm(x, axis=-1)


def check(args, c, rng, cands, idx):
    xs = tao.inputs(c, rng)
    q, k, v, bias = xs
    et = c["et"]
    u = U[et]
    dt = q.dtype
    mod = compile_case(c, xs)
    (o,) = mod["f"](*xs)
    do = rng.standard_normal(o.shape).astype(dt)
    got = list(mod["g"](q, k, v, o, do, bias))
    d, n, m, dv = c["d"], c["n"], c["m"], c["dv"]
    s = 1 / math.sqrt(d)
    q64, k64, v64, b64, do64, o64 = (x.astype(np.float64)
                                     for x in (q, k, v, bias, do, o))
    beta = (s * math.sqrt(np.max(np.sum(q64 * q64, -1))) *
            math.sqrt(np.max(np.sum(k64 * k64, -1))) * (1 + 2 * (d + 2) * u))
    length = n + m - 1
    vis = np.ones(length, bool)
    if c["causal"]:
        vis[: n - 1] = False
    finite = bool(np.all(np.isfinite(b64[..., vis])))
    chosen = next((cd for cd in cands if beta <= cd["beta"]), None)
    if chosen is None or not finite:
        ex = list(mod["gx"](q, k, v, o, do, bias))
        same = all(np.array_equal(a, b, equal_nan=True)
                   for a, b in zip(got, ex))
        why = "no degree covers beta" if finite else "non-finite bias"
        return same, f"exact fallback ({why}), bit-identical: {same}"

    g, delta, ddelta = (chosen["degree"], chosen["delta"],
                        chosen["delta_derivative"])
    coeffs = chosen["coeffs"]
    hq, hk, grp = c["hq"], c["hk"], c["hq"] // c["hk"]
    r = math.comb(d + g, g)
    w = dv + 1
    nn = r * w + m + n + d + g + 16
    gam = tao.gamma(nn, u)
    asum = sum(abs(ck) * beta ** i for i, ck in enumerate(coeffs))
    cc = asum * math.exp(beta) / (1 - delta) + 2
    lfft = 1 << (length - 1).bit_length() if length > 1 else 1
    eps = fft_bound(lfft, et, c["backend"] == "library")

    model = Model(c, coeffs, q64, k64, v64, b64)
    of = o64.reshape(model.P.shape[:3] + (dv,))
    dof = do64.reshape(of.shape)
    mdq, mdk, mdv, mdb = model.grad(dof, of)
    # Amplification of normwise FFT errors per head (rows with Z > 0).
    amp = np.ones(hq)
    for h in range(hq):
        zh = model.Z[:, h]
        zpos = zh[zh > 0]
        if zpos.size:
            amp[h] = max(1.0, cc * float(np.sum(model.E[h][vis])) /
                         float(np.min(zpos)))
    rel = gam * cc * 4 + 3 * eps * amp                     # [Hq]

    # Natural magnitudes.
    kmax, qmax, vmax = (float(np.max(rownorm(x))) for x in
                        (model.k, model.q, model.v))
    don = rownorm(dof)                                     # [z, Hq, N]
    logits = ref._attention_logits(q64, k64, v64, b64, None, c["causal"],
                                   None)[0]
    pa, _ = ref._softmax(logits)                          # [z, Hq, N, M]
    wa = pa * don[..., None]
    colw = wa.sum(2).reshape(-1, hk, grp, m).sum(2)       # [z, Hk, M]
    offw = np.zeros((hq, length))
    for h in range(hq):
        np.add.at(offw[h], model.idx, wa[:, h].sum(0))
    relk = np.max(rel.reshape(hk, grp), axis=1)            # [Hk]
    mag_q = abs(s) * kmax * vmax * don * 3 * rel[None, :, None]
    mag_k = (abs(s) * qmax * vmax * colw * 3 + 1e-300) * relk[None, :, None]
    mag_v = (colw + 1e-300) * relk[None, :, None]
    # d-bias: the correlation's normwise FFT error, per head.
    corr = np.zeros(hq)
    for z in range(model.q.shape[0]):
        for h in range(hq):
            phq = features(model.q[z, h], coeffs, s, "query")
            phk = features(model.k[z, h // grp], coeffs, s, "key")
            zi = model.zinv()[z, h]
            dd = np.sum(dof[z, h] * of[z, h], -1)
            gs = np.concatenate([dof[z, h], -dd[:, None]], 1) * zi[:, None]
            uu = np.concatenate([model.v[z, h // grp], np.ones((m, 1))], 1)
            sm = (phq[:, :, None] * gs[:, None, :]).reshape(n, -1)
            xm = (phk[:, :, None] * uu[:, None, :]).reshape(m, -1)
            corr[h] += float(np.sum(np.linalg.norm(sm, axis=0) *
                                    np.sum(np.abs(xm), axis=0)))
    mag_bh = (vmax * offw * 3 * rel[:, None] +
              3 * eps * corr[:, None] * (1 + gam * cc))
    mag_b = mag_bh if b64.ndim == 2 else mag_bh.sum(0)

    gq, gk, gv, gb = (x.astype(np.float64) for x in got)
    gq, gk, gv = (x.reshape(y.shape) for x, y in
                  ((gq, mdq), (gk, mdk), (gv, mdv)))
    e1 = [float(np.max(rownorm(a - b) / (mg + 1e-300), initial=0))
          for a, b, mg in ((gq, mdq, mag_q), (gk, mdk, mag_k),
                           (gv, mdv, mag_v))]
    e1.append(float(np.max(np.where(mag_b > 0, np.abs(gb - mdb), 0) /
                           np.where(mag_b > 0, mag_b, 1), initial=0)))
    # Entries the model says are exactly zero (masked offsets): exactly 0.
    zero_ok = bool(np.all(gb[mdb == 0] == 0)) if np.any(~vis) else True
    ok1 = all(e <= 1.0 for e in e1) and zero_ok

    # (2) the certificate against the exact gradient.
    rho = gam * cc if et == "f32" else 0.0
    d_eff, dd_eff = delta + rho, ddelta + rho
    eta = (d_eff + dd_eff) / (1 - d_eff)
    eta0 = 2 * d_eff / (1 - d_eff)
    kappa = eta * (2 + eta0) + eta0
    kappa0 = eta0 * (3 + eta0)
    rq, rk, rv, rb = ref.attention_grad(q64, k64, v64, do64, bias=b64,
                                        causal=c["causal"])
    rq, rk, rv = (x.reshape(y.shape) for x, y in
                  ((rq, mdq), (rk, mdk), (rv, mdv)))
    bq = abs(s) * kmax * don * vmax * kappa + mag_q
    bk = abs(s) * qmax * vmax * kappa * colw + mag_k
    bv = eta0 * colw + mag_v
    bbh = kappa0 * vmax * offw
    bb = (bbh if b64.ndim == 2 else bbh.sum(0)) + mag_b
    r2 = [float(np.max(rownorm(a - b) / (bnd + 1e-300), initial=0))
          for a, b, bnd in ((gq, rq, bq), (gk, rk, bk), (gv, rv, bv))]
    r2.append(float(np.max(np.abs(gb - rb) / (bb + 1e-300), initial=0)))
    ok2 = all(x <= 1.0 for x in r2)
    line = (f"toeplitz g={g} (beta^={beta:.3f}, delta={delta:.1e}, "
            f"delta'={ddelta:.1e}): vs model {max(e1):.2g} of its "
            f"tolerance (dq/dk/dv/db {', '.join(f'{e:.2g}' for e in e1)}); "
            f"vs exact {max(r2):.2f} of the bound")
    ok = ok1 and ok2
    if et == "f64":
        okf, err = fd_check(c, coeffs, q64, k64, v64, b64, do64, rng)
        ok = ok and okf
        line += f"; model vs finite differences {err:.1e}"
    return ok, line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("dump")
    ap.add_argument("workdir")
    ap.add_argument("--configs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    cache = {}
    cases = [tao.make_case(rng, i) for i in range(args.configs)]
    extra = tao.make_case(rng, 0)          # a -inf bias entry: exact path
    extra.update(beta=0.2, neginf=True, n=9, m=9, causal=False)
    cases.append(extra)
    extra = tao.make_case(rng, 1)          # causal, N > M: empty rows
    extra.update(beta=0.7, n=10, m=4, causal=True, neginf=False)
    cases.append(extra)
    extra = tao.make_case(rng, 2)          # GQA, per-head ALiBi, causal
    extra.update(beta=0.7, hq=4, hk=2, causal=True, shared=False,
                 kind="alibi", neginf=False)
    cases.append(extra)
    passed = 0
    for i, c in enumerate(cases):
        if c["d"] not in cache:
            cache[c["d"]] = candidate_rows(args.dump, FAMILY, c["d"],
                                           MAX_DEGREE, EPS, MAX_RANK)
        try:
            ok, msg = check(args, c, rng, cache[c["d"]], i)
        except RuntimeError as e:
            ok, msg = False, str(e)
        desc = (f"{c['et']} {c['backend']} batch={c['batch']} hq={c['hq']} "
                f"hk={c['hk']} N={c['n']} M={c['m']} D={c['d']} Dv={c['dv']}"
                f"{' causal' if c['causal'] else ''} "
                f"{'shared' if c['shared'] else 'per-head'} {c['kind']} "
                f"beta={c['beta']}")
        print(f"{'PASS' if ok else 'FAIL'}: {desc}: {msg}", flush=True)
        passed += ok
    print(f"{passed}/{len(cases)} cases passed")
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
