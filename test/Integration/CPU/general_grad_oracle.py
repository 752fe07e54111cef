"""ropeattn.general_attention_grad on the CPU: the exact lowering and `method
toeplitz` (monomials + transposed Toeplitz products + FFT cross-correlations)
against independent float64 numpy models and the exact fp64 gradient.

Random configurations (batch dims, GQA, N < M / N = M / N > M, causal incl.
empty rows, shared or per-head weights, |S| = 1..4, logit ranges beta, f32 and
f64). Each case is one module compiled through the Python package
(ropeattn.compile, rope-lower-to-cpu): @f / @fx the toeplitz / exact forward,
@g / @gx the toeplitz / exact gradient fed with @f's output (as a training
step does), @gl the exact gradient given the fp64 reference's logsumexp.

(E) exact lowering. A dense numpy model of the spec (docs/Spec.md §9; class
    Dense below: logits, softmax with the row max, dl = P (dP - D), dq, dk,
    dv, dW by einsum and np.add.at binning) is, in float64 and with w = exp,
    checked against test/reference/ropeattn_ref.py's general_attention_grad
    (itself validated by finite differences in test_ropeattn_ref.py) within
    1e-12 relative, and against central finite differences of <dO, O> in q,
    k, v and W here (f64 cases). @gx and @gl must then match the fp64
    reference within: f64 1e-10 relative to max|reference| per output; f32
    twice the error of the same model evaluated in plain float32 numpy,
    floor 2^-20.

(T) method toeplitz. Which path ran is recomputed as the pass does it:
    beta^ = omega |s| max|q^_i| max|k^_j| (1 + 2(|S| + 2)u)(1 + 4u), the
    candidates of poly-approx-dump (degree g <= 4, C(|S| + g, g) <= 512, the
    largest range B_g of the grid 2^(k/2) with delta <= epsilon = 1e-2), the
    least g with beta^ <= B_g; exact when none covers or a visible weight is
    not finite. On the exact path the four gradients must equal @gx bit for
    bit. On the Toeplitz path:
    (1) model: the same Dense model with w = p (the certified polynomial,
        polyval) and p', D_i from the given output, is the function whose
        exact gradient the rewrite computes; it is validated by finite
        differences of its own forward (f64 cases). First-order rounding
        allowance per entry: rel Mag with rel = 4 gamma_n C + 3 eps amp,
        n = |M| W + M + N + 3(g + |S|) + 16, C = A e^beta^/(1 - delta) + 2
        (A = sum_k |c_k| beta^k), eps the normwise FFT bound of fft_oracle.py
        for the padded length, amp = max(1, sqrt(M) max_i sum_m |coef_m
        u_m[i]| |t_m|_1 |v_m|_inf / min_i Z_i) per head (a normwise FFT error
        of the products relative to the row denominators); Mag the natural
        magnitudes of (2) below; for dW also 3 eps sum_m m_t omega^(|m|-1)
        sum_c |S_m,c|_2 |X_m,c|_1 (the FFT cross-correlations).
    (2) certificate, against the exact fp64 gradient (docs/Spec.md §16.5):
        eta0 = 2 delta/(1 - delta), eta = (delta + delta')/(1 - delta),
        kappa = eta (2 + eta0) + eta0, Vmax = max|v_j|, k-bar_ja =
        sum_{t: a_t = a} |k_j,b_t|, q-bar_ib = sum_{t: b_t = b} |q_i,a_t|:
          |dq~_i - dq_i| <= |s| omega max|k-bar| Vmax kappa |dO_i|
          |dk~_j - dk_j| <= |s| omega max|q-bar| Vmax kappa sum_i A_ij |dO_i|
          |dv~_j - dv_j| <= eta0 sum_i A_ij |dO_i|
          |dW~ - dW|[u,t] <= |s| Vmax kappa sum_{i-j=u-M+1} A_ij |dO_i|
                             |q_i,a_t| |k_j,b_t|
        (A the exact probabilities; sums over a GQA group / the heads that
        share a table row) plus the allowance of (1); delta, delta' are
        enlarged by gamma_n C.

Usage: general_grad_oracle.py POLY_APPROX_DUMP WORKDIR [--configs N]
       [--seed S] [--bug]
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
import general_attention_oracle as gao  # noqa: E402
from fft_oracle import fft_bound, U  # noqa: E402
from polynomial_oracle import candidate_rows  # noqa: E402

MAX_DEGREE, MAX_TERMS, EPS, FAMILY = 4, 512, 1e-2, "minimax"
P = np.polynomial.polynomial


def module_text(c, xs):
    et = c["et"]
    tq, tk, tv, tw = (gao.ttype(x.shape, et) for x in xs)
    to = gao.ttype(tuple(c["batch"]) + (c["hq"], c["n"], c["dv"]), et)
    tl = gao.ttype(tuple(c["batch"]) + (c["hq"], c["n"]), et)
    causal = " causal" if c["causal"] else ""
    sup = ", ".join(f"{a}, {b}" for a, b in c["support"])
    text = ""
    for name, meth in (("f", "toeplitz"), ("fx", "exact")):
        text += (f"func.func @{name}(%q: {tq}, %k: {tk}, %v: {tv}, %w: {tw}) "
                 f"-> ({to}, {tl}) {{\n  %o, %l = ropeattn.general_attention "
                 f"%q, %k, %v weights(%w) support [{sup}]{causal} method "
                 f"{meth} : ({tq}, {tk}, {tv}, {tw}) -> ({to}, {tl})\n"
                 f"  return %o, %l : {to}, {tl}\n}}\n")
    res = f"({tq}, {tk}, {tv}, {tw})"
    for name, meth, lse in (("g", "toeplitz", False), ("gx", "exact", False),
                            ("gl", "exact", True)):
        lsearg = f", %l: {tl}" if lse else ""
        lseop = " logsumexp(%l)" if lse else ""
        lsety = f", {tl}" if lse else ""
        text += (f"func.func @{name}(%q: {tq}, %k: {tk}, %v: {tv}, %o: {to}, "
                 f"%do: {to}{lsearg}, %w: {tw}) -> {res} {{\n"
                 f"  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, "
                 f"%k, %v, %o, %do{lseop} weights(%w) support [{sup}]{causal} "
                 f"method {meth} : ({tq}, {tk}, {tv}, {to}, {to}{lsety}, {tw})"
                 f" -> {res}\n  return %dq, %dk, %dv, %dw : "
                 f"{tq}, {tk}, {tv}, {tw}\n}}\n")
    return text


class Dense:
    """general_attention with weights f(l) (exp or a polynomial) on the
    visible pairs, densely, in dtype `dt`, and its exact gradient."""

    def __init__(self, c, q, k, v, w, dt, coeffs=None):
        self.c, self.dt = c, dt
        n, m, hq, hk = c["n"], c["m"], c["hq"], c["hk"]
        self.grp = hq // hk
        self.s = dt(1 / math.sqrt(c["d"]))
        self.a = [a for a, _ in c["support"]]
        self.b = [b for _, b in c["support"]]
        self.q = np.asarray(q, dt).reshape((-1, hq, n, c["d"]))
        self.k = np.asarray(k, dt).reshape((-1, hk, m, c["d"]))
        self.v = np.asarray(v, dt).reshape((-1, hk, m, c["dv"]))
        self.w = np.asarray(w, dt)
        self.ke = np.repeat(self.k, self.grp, axis=1)
        self.ve = np.repeat(self.v, self.grp, axis=1)
        i = np.arange(n)[:, None]
        j = np.arange(m)[None, :]
        self.idx = i - j + m - 1
        self.vis = (j <= i + (m - n)) if c["causal"] else np.ones((n, m),
                                                                  bool)
        wg = self.w[self.idx][None] if self.w.ndim == 2 else \
            self.w[:, self.idx]
        self.wg = np.broadcast_to(wg, (hq, n, m, len(self.a)))
        self.qa, self.kb = self.q[..., self.a], self.ke[..., self.b]
        lg = self.s * np.einsum("zhit,hijt,zhjt->zhij", self.qa, self.wg,
                                self.kb)
        if coeffs is None:  # exp, shifted by the visible row max
            lm = np.where(self.vis, lg, -np.inf)
            mx = np.max(lm, -1, keepdims=True) if m else lm[..., :1]
            mx = np.where(np.isfinite(mx), mx, 0)
            e = np.where(self.vis, np.exp(np.where(self.vis, lg, 0) - mx), 0)
            self.Pw, self.Pd = e.astype(dt), e.astype(dt)
        else:
            cf = np.asarray(coeffs, np.float64)
            self.Pw = np.where(self.vis, P.polyval(lg, cf), 0).astype(dt)
            self.Pd = np.where(self.vis, P.polyval(lg, P.polyder(cf)),
                               0).astype(dt)
        self.Z = self.Pw.sum(-1)
        with np.errstate(divide="ignore"):
            self.zinv = np.where(self.Z > 0,
                                 1 / np.where(self.Z > 0, self.Z, 1),
                                 0).astype(dt)

    def forward(self):
        return np.einsum("zhij,zhjc->zhic", self.Pw * self.zinv[..., None],
                         self.ve)

    def grad(self, do, o=None):
        c, dt = self.c, self.dt
        n, m, hq = c["n"], c["m"], c["hq"]
        do = np.asarray(do, dt).reshape(self.q.shape[:3] + (c["dv"],))
        if o is None:
            o = self.forward()
        o = np.asarray(o, dt).reshape(do.shape)
        dd = np.sum(do * o, -1)
        dp = np.einsum("zhic,zhjc->zhij", do, self.ve)
        dl = (dp - dd[..., None]) * self.zinv[..., None] * self.Pd
        dqa = self.s * np.einsum("zhij,hijt,zhjt->zhit", dl, self.wg, self.kb)
        dkb = self.s * np.einsum("zhij,hijt,zhit->zhjt", dl, self.wg, self.qa)
        dq = np.zeros(self.q.shape, dt)
        dke = np.zeros(self.ke.shape, dt)
        for t in range(len(self.a)):
            dq[..., self.a[t]] += dqa[..., t]
            dke[..., self.b[t]] += dkb[..., t]
        dve = np.einsum("zhij,zhic->zhjc", self.Pw * self.zinv[..., None], do)
        red = (lambda x: x.reshape(x.shape[0], -1, self.grp, *x.shape[2:])
               .sum(2))
        dwg = self.s * np.einsum("zhij,zhit,zhjt->hijt", dl, self.qa, self.kb)
        dw = np.zeros((hq, n + m - 1, len(self.a)), dt)
        for h in range(hq):
            np.add.at(dw[h], self.idx, dwg[h])
        if self.w.ndim == 2:
            dw = dw.sum(0)
        return dq, red(dke), red(dve), dw


def fd_check(c, xs, do, coeffs, rng):
    """Dense.grad against central differences of <dO, O(q, k, v, W)>."""
    xs = [np.asarray(x, np.float64) for x in xs]
    base = Dense(c, *xs, np.float64, coeffs)
    grads = base.grad(do)
    us = [rng.standard_normal(x.shape) for x in xs]
    h = 1e-6
    dof = np.asarray(do, np.float64).reshape(base.forward().shape)

    def f(t):
        mm = Dense(c, *(x + t * u for x, u in zip(xs, us)), np.float64,
                   coeffs)
        return float(np.sum(dof * mm.forward()))
    fd = (f(h) - f(-h)) / (2 * h)
    an = sum(float(np.sum(g.reshape(x.shape) * u))
             for g, x, u in zip(grads, xs, us))
    return abs(fd - an) <= 1e-6 * max(1.0, abs(an)), abs(fd - an)


def relerr(x, want):
    x = np.asarray(x, np.float64)
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    return float(np.max(np.abs(x - want), initial=0.0)) / scale


def rownorm(x):
    return np.linalg.norm(x, axis=-1)


def check_exact(c, mod, xs, do, o_ref, l_ref, grads_ref, rng):
    dt = xs[0].dtype
    out = [list(mod["gx"](xs[0], xs[1], xs[2], o_ref.astype(dt), do, xs[3])),
           list(mod["gl"](xs[0], xs[1], xs[2], o_ref.astype(dt), do,
                          l_ref.astype(dt), xs[3]))]
    f64 = [x.astype(np.float64) for x in xs]
    model = Dense(c, *f64, np.float64).grad(do.astype(np.float64))
    em = max(relerr(a.reshape(b.shape), b) for a, b in zip(model, grads_ref))
    ok = em <= 1e-12
    line = f"exact: model vs reference {em:.1e}"
    if c["et"] == "f64":
        tols = [1e-10] * 4
        okf, err = fd_check(c, f64, do, None, rng)
        ok = ok and okf
        line += f", model vs finite differences {err:.1e}"
    else:
        m32 = Dense(c, *xs, np.float32).grad(do)
        tols = [max(2 * relerr(a.reshape(b.shape), b), 2.0 ** -20)
                for a, b in zip(m32, grads_ref)]
    errs = [[relerr(a, b) for a, b in zip(o, grads_ref)] for o in out]
    ok = ok and all(e <= t for es in errs for e, t in zip(es, tols))
    line += ("; dq/dk/dv/dW err " +
             ", ".join(f"{max(e0, e1):.1e} (tol {t:.1e})"
                       for e0, e1, t in zip(errs[0], errs[1], tols)))
    return ok, line


def check_toeplitz(c, mod, xs, do, cands, grads_ref, rng):
    q, k, v, w = xs
    et = c["et"]
    u = U[et]
    o_t, _ = mod["f"](q, k, v, w)
    got = [np.asarray(x, np.float64)
           for x in mod["g"](q, k, v, o_t, do, w)]
    d, n, m, dv = c["d"], c["n"], c["m"], c["dv"]
    s = 1 / math.sqrt(d)
    sa = [a for a, _ in c["support"]]
    sb = [b for _, b in c["support"]]
    S = len(sa)
    f64 = [x.astype(np.float64) for x in xs]
    qf, kf, vf, wf = f64
    length = n + m - 1
    vis = np.ones(length, bool)
    if c["causal"]:
        vis[: n - 1] = False
    wvis = wf[..., vis, :]
    finite = bool(np.all(np.isfinite(wvis)))
    omega = float(np.max(np.abs(wvis), initial=0.0)) if finite else math.inf
    qa, kb = qf[..., sa], kf[..., sb]
    beta = (s * math.sqrt(np.max(np.sum(qa * qa, -1))) *
            math.sqrt(np.max(np.sum(kb * kb, -1))) *
            (1 + 2 * (S + 2) * u)) * omega * (1 + 4 * u)
    chosen = next((cd for cd in cands if beta <= cd["beta"]), None)
    if chosen is None or not finite:
        ex = [np.asarray(x, np.float64)
              for x in mod["gx"](q, k, v, o_t, do, w)]
        same = all(np.array_equal(a, b, equal_nan=True)
                   for a, b in zip(got, ex))
        why = "no degree covers beta" if finite else "non-finite weight"
        return same, (f"exact fallback ({why}, beta^={beta:.3f}), "
                      f"bit-identical: {same}")
    g, delta, ddelta = (chosen["degree"], chosen["delta"],
                        chosen["delta_derivative"])
    coeffs = chosen["coeffs"]
    hq, hk, grp = c["hq"], c["hk"], c["hq"] // c["hk"]
    ms = gao.monomials(S, g)
    assert len(ms) == math.comb(S + g, g)
    wc = dv + 1
    nops = len(ms) * wc + m + n + 3 * (g + S) + 16
    gam = gao.gamma(nops, u)
    asum = sum(abs(ck) * beta ** i for i, ck in enumerate(coeffs))
    cc = asum * math.exp(beta) / (1 - delta) + 2
    lfft = 1 << (length - 1).bit_length() if length > 1 else 1
    eps = fft_bound(lfft, et, False)

    model = Dense(c, *f64, np.float64, coeffs)
    of = o_t.astype(np.float64).reshape(model.q.shape[:3] + (dv,))
    dof = do.astype(np.float64).reshape(of.shape)
    mdq, mdk, mdv, mdw = model.grad(dof, of)
    nz = model.q.shape[0]
    # Per head: the normwise FFT amplification and the correlation sums.
    amp = np.ones(hq)
    corr = np.zeros((hq, S))
    for h in range(hq):
        wt = wf if wf.ndim == 2 else wf[h]
        fsum = np.zeros(n)
        zh = model.Z[:, h]
        for z in range(nz):
            zi = model.zinv[z, h]
            dd = np.sum(dof[z, h] * of[z, h], -1)
            gs = np.concatenate([dof[z, h], -dd[:, None]], 1) * zi[:, None]
            uu = np.concatenate([model.v[z, h // grp], np.ones((m, 1))], 1)
            for mm in ms:
                e = np.array(mm)
                coef = coeffs[sum(mm)] * s ** sum(mm) * gao.multinomial(mm)
                um = np.prod(model.qa[z, h] ** e, -1)
                vm = np.prod(model.kb[z, h] ** e, -1)
                tm = np.prod(wt ** e, -1) * vis
                if z == 0:
                    fsum += (abs(coef) * np.abs(um) * np.sum(np.abs(tm)) *
                             np.max(np.abs(vm), initial=0.0))
                sm = coef * um[:, None] * gs
                xm = vm[:, None] * uu
                cs = float(np.sum(np.linalg.norm(sm, axis=0) *
                                  np.sum(np.abs(xm), axis=0)))
                for t in range(S):
                    if mm[t]:
                        corr[h, t] += mm[t] * omega ** (sum(mm) - 1) * cs
        zpos = zh[zh > 0]
        if zpos.size:
            amp[h] = max(1.0, math.sqrt(m) * float(np.max(fsum)) /
                         float(np.min(zpos)))
    rel = gam * cc * 4 + 3 * eps * amp                     # [Hq]
    relk = np.max(rel.reshape(hk, grp), axis=1)             # [Hk]

    # Natural magnitudes (exact probabilities A).
    lg = s * np.einsum("zhit,hijt,zhjt->zhij", model.qa, model.wg, model.kb)
    lg = np.where(model.vis, lg, -np.inf)
    pa, _ = ref._softmax(lg)
    vmax = float(np.max(rownorm(model.v), initial=0.0))
    kbar = np.zeros(model.k.shape[:3] + (d,))
    qbar = np.zeros(model.q.shape[:3] + (d,))
    for t in range(S):
        kbar[..., sa[t]] += np.abs(model.k[..., sb[t]])
        qbar[..., sb[t]] += np.abs(model.q[..., sa[t]])
    kbm = float(np.max(rownorm(kbar), initial=0.0))
    qbm = float(np.max(rownorm(qbar), initial=0.0))
    don = rownorm(dof)                                      # [z, Hq, N]
    wa = pa * don[..., None]
    colw = wa.sum(2).reshape(nz, hk, grp, m).sum(2)         # [z, Hk, M]
    offw = np.zeros((hq, length, S))
    termw = np.einsum("zhij,zhit,zhjt->hijt", wa, np.abs(model.qa),
                      np.abs(model.kb))
    for h in range(hq):
        np.add.at(offw[h], model.idx, termw[h])
    mag_q = abs(s) * omega * kbm * vmax * don * 3 * rel[None, :, None]
    mag_k = (abs(s) * omega * qbm * vmax * colw * 3 + 1e-300) * \
        relk[None, :, None]
    mag_v = (colw + 1e-300) * relk[None, :, None]
    mag_wh = (abs(s) * vmax * offw * 3 * rel[:, None, None] +
              3 * eps * corr[:, None, :] * (1 + gam * cc))
    mag_w = mag_wh if wf.ndim == 3 else mag_wh.sum(0)

    gq, gk, gv, gw = got
    gq, gk, gv = (x.reshape(y.shape) for x, y in
                  ((gq, mdq), (gk, mdk), (gv, mdv)))
    e1 = [float(np.max(rownorm(a - b) / (mg + 1e-300), initial=0))
          for a, b, mg in ((gq, mdq, mag_q), (gk, mdk, mag_k),
                           (gv, mdv, mag_v))]
    e1.append(float(np.max(np.abs(gw - mdw) / (mag_w + 1e-300), initial=0)))
    # Never visible offsets: exactly 0.
    zero_ok = bool(np.all(gw[..., ~vis, :] == 0))
    ok1 = all(e <= 1.0 for e in e1) and zero_ok

    rho = gam * cc
    d_eff, dd_eff = delta + rho, ddelta + rho
    eta = (d_eff + dd_eff) / (1 - d_eff)
    eta0 = 2 * d_eff / (1 - d_eff)
    kappa = eta * (2 + eta0) + eta0
    rq, rk, rv, rw = grads_ref
    rq, rk, rv = (x.reshape(y.shape) for x, y in
                  ((rq, mdq), (rk, mdk), (rv, mdv)))
    bq = abs(s) * omega * kbm * don * vmax * kappa + mag_q
    bk = abs(s) * omega * qbm * vmax * kappa * colw + mag_k
    bv = eta0 * colw + mag_v
    bwh = abs(s) * vmax * kappa * offw
    bw = (bwh if wf.ndim == 3 else bwh.sum(0)) + mag_w
    r2 = [float(np.max(rownorm(a - b) / (bnd + 1e-300), initial=0))
          for a, b, bnd in ((gq, rq, bq), (gk, rk, bk), (gv, rv, bv))]
    r2.append(float(np.max(np.abs(gw - rw) / (bw + 1e-300), initial=0)))
    ok2 = all(x <= 1.0 for x in r2)
    line = (f"toeplitz g={g} |M|={len(ms)} (beta^={beta:.3f}, "
            f"delta={delta:.1e}, delta'={ddelta:.1e}): vs model {max(e1):.2g} "
            f"of its tolerance (dq/dk/dv/dW "
            f"{', '.join(f'{e:.2g}' for e in e1)}); vs exact {max(r2):.2f} "
            f"of the bound ({', '.join(f'{e:.2g}' for e in r2)})")
    ok = ok1 and ok2
    if et == "f64":
        okf, err = fd_check(c, f64, do, coeffs, rng)
        ok = ok and okf
        line += f"; model vs finite differences {err:.1e}"
    return ok, line


def run_case(args, c, rng, cands):
    xs = gao.inputs(c, rng)
    f64 = [x.astype(np.float64) for x in xs]
    try:
        mod = ropeattn.compile(module_text(c, xs),
                               pipeline_options=f"family={FAMILY} "
                                                f"epsilon={EPS}")
    except ropeattn.RopeAttnError as e:
        raise RuntimeError(f"compile failed: {str(e)[-600:]}")
    o_ref, l_ref = ref.general_attention(*f64, gao.flat_support(c),
                                         causal=c["causal"])
    do = rng.standard_normal(o_ref.shape).astype(xs[0].dtype)
    grads_ref = ref.general_attention_grad(
        f64[0], f64[1], f64[2], do.astype(np.float64), f64[3],
        gao.flat_support(c), causal=c["causal"])
    if c["kind"] == "exact":
        return check_exact(c, mod, xs, do, o_ref, l_ref, grads_ref, rng)
    return check_toeplitz(c, mod, xs, do, cands, grads_ref, rng)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("workdir")
    ap.add_argument("--configs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    cases = []
    for kind in ("exact", "toeplitz"):
        for i in range(args.configs):
            c = gao.make_case(rng, i, kind)
            c["kind"] = kind
            if kind == "exact" and i % 2 == 0:
                c["causal"] = True  # causal with N > M: empty rows
                c["n"], c["m"] = max(c["n"], c["m"] + 2), c["m"]
            cases.append(c)
    # Forced: beta^ beyond every range; a non-finite visible weight; causal
    # N > M on the Toeplitz path; GQA per-head f64 and shared f32.
    extra = [dict(beta=40.0), dict(beta=0.3, neginf=True, causal=False),
             dict(beta=0.5, n=9, m=4, causal=True),
             dict(beta=0.6, hq=4, hk=2, shared=False, batch=[2], et="f64"),
             dict(beta=0.6, hq=4, hk=2, shared=True, causal=True, et="f32")]
    for i, upd in enumerate(extra):
        c = gao.make_case(rng, i, "toeplitz")
        c.update(upd)
        c["kind"] = "toeplitz"
        cases.append(c)
    cache = {}
    passed = 0
    for i, c in enumerate(cases):
        s = len(c["support"])
        if s not in cache:
            cache[s] = candidate_rows(args.dump, FAMILY, s, MAX_DEGREE, EPS,
                                      MAX_TERMS)
        try:
            ok, msg = run_case(args, c, rng, cache[s])
        except RuntimeError as e:
            ok, msg = False, str(e)
        desc = (f"{c['et']} batch={c['batch']} hq={c['hq']} hk={c['hk']} "
                f"N={c['n']} M={c['m']} D={c['d']} Dv={c['dv']} "
                f"|S|={s}{' causal' if c['causal'] else ''} "
                f"{'shared' if c['shared'] else 'per-head'} beta={c['beta']}")
        print(f"{'PASS' if ok else 'FAIL'}: {desc}: {msg}", flush=True)
        passed += ok
    print(f"{passed}/{len(cases)} cases passed")
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
