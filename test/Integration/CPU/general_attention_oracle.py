"""ropeattn.general_attention on the CPU (rope-run, rope-lower-to-cpu) against
the independent fp64 numpy reference (test/reference/ropeattn_ref.py).

Three groups of random cases (batch dims, GQA, N < M / N = M / N > M, causal
incl. empty rows, shared or per-head weights, f32/f64, |S| from 0 to 4):

  * exact: `method exact` (ropeattn-lower-general-attention). Tolerances as
    attention_oracle.py: f64 1e-11 relative to max|reference|; f32 twice the
    error of a straightforward fp32 numpy implementation of the same formula
    (materialized logits) against the fp64 reference, floor 2^-21.
  * toeplitz: `method toeplitz` (ropeattn-expand-general-attention). Which
    path ran is recomputed here as the pass does it: beta^ = omega |s|
    max|q^_i| max|k^_j| (1 + 2(|S| + 2)u)(1 + 4u) (q^ = q[.., a_t],
    k^ = k[.., b_t], omega = max visible |W|), the candidates of
    poly-approx-dump (degree g <= 4, C(|S| + g, g) <= 512, the largest range
    B_g of the grid 2^(k/2) with delta <= epsilon = 1e-2), the least g with
    beta^ <= B_g, exact when none covers or a visible weight is not finite.
    Exact fallback: equal to `method exact` bit for bit. Toeplitz path: with
    the degree's coefficients c and delta,
      |O~ - O| <= B(delta') max_j |v_jc| + (dN + |O~| dD) / (D~ - dD) + u|O~|
    B(d) = 2d/(1 + sqrt(1 - d^2)), delta' = delta + gamma_{3(g+|S|)+4} A
    e^beta / (1 - delta) (the rounding of the monomial vectors, symbols and
    coefficients: every term of p(l) is a product of at most 3(g + |S|) + 4
    rounded factors, and sum_m |term_m| <= A = sum_k |c_k| beta^k), D~ =
    e^{lse~} the computed denominator and dN, dD the bounds on the Toeplitz
    product errors of each row: per monomial m, the normwise FFT bound of
    toeplitz_oracle.py for each pair of columns of X_m = v_m U with the
    masked symbol t_m, plus u |T_m| |X_m| (forming X), propagated through
    Nm = sum_m coef_m u_m Y_m with gamma_{|M|+2};
      |lse~ - lse| <= -log(1 - delta') - log(1 - dD/D~) + 4u(|lse| + 1).
    The check that the number of monomials is C(|S| + g, g) is in the lit
    test of the pass (its remark).
  * rotation: W_delta = R(-(delta + M - N)) given as a constant table (the
    canonicalizer turns the op into ropeattn.attention with RoPE): the result
    must match the reference's *general* formula within the exact tolerances.

Usage: general_attention_oracle.py ROPE_RUN POLY_APPROX_DUMP WORKDIR
       [--configs N] [--seed S]
"""

import argparse
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "reference"))
import ropeattn_ref as ref  # noqa: E402
from fft_oracle import fft_bound, U  # noqa: E402
from polynomial_oracle import fitted_candidate  # noqa: E402

MAX_DEGREE, MAX_TERMS, EPS, FAMILY = 4, 512, 1e-2, "minimax"


def candidates(dump, s):
    out = []
    for g in range(1, MAX_DEGREE + 1):
        if math.comb(s + g, g) > MAX_TERMS:
            break
        row = fitted_candidate(dump, FAMILY, g, EPS)
        if row:
            out.append((g, row["beta"], row["delta"], row["coeffs"]))
    return out


def ttype(shape, et):
    return "tensor<" + "".join(f"{s}x" for s in shape) + et + ">"


def gamma(n, u):
    return n * u / (1 - n * u)


def output_bound(d):
    return 2 * d / (1 + math.sqrt(1 - d * d)) if d < 1 else math.inf


def fft_pair_bound(c1, c2, z, eps, u, length):
    """toeplitz_oracle.py's normwise bound for the packed column z."""
    g2 = math.sqrt(2) * 2 * u / (1 - 2 * u)
    sl = math.sqrt(length)
    z1, z2 = np.sum(np.abs(z)), math.sqrt(np.sum(np.abs(z) ** 2))
    e1 = eps * sl * c2 * (z1 + eps * sl * z2) + c1 * eps * sl * z2
    gg = (c1 + eps * sl * c2) * (1 + eps) * sl * z2
    return (e1 + g2 * gg + eps * (1 + g2) * gg) / sl


def monomials(s, g):
    """All m : S -> N with |m| <= g (any order)."""
    out = []

    def rec(t, left, cur):
        if t == s:
            out.append(tuple(cur))
            return
        for e in range(left + 1):
            rec(t + 1, left - e, cur + [e])
    rec(0, g, [])
    return out


def multinomial(m):
    r = math.factorial(sum(m))
    for e in m:
        r //= math.factorial(e)
    return r


def make_case(rng, i, kind):
    et = ["f32", "f64"][i % 2]
    hk = int(rng.integers(1, 3))
    grp = int(rng.integers(1, 3))
    n = int(rng.integers(1, 14))
    m = int(rng.integers(1, 14))
    d = int(rng.integers(1, 5))
    s = int(rng.integers(0 if kind == "exact" else 1, min(4, d * d) + 1))
    pairs = [(a, b) for a in range(d) for b in range(d)]
    sel = rng.choice(len(pairs), size=s, replace=False)
    support = [pairs[j] for j in sorted(sel)]
    return dict(et=et, batch=[int(rng.integers(1, 3))] if i % 3 else [],
                hq=hk * grp, hk=hk, n=n, m=m, d=d, dv=int(rng.integers(1, 5)),
                support=support, causal=bool(rng.integers(0, 2)),
                shared=bool(rng.integers(0, 2)),
                beta=float(rng.choice([0.2, 0.6, 1.2, 2.5, 6.0])),
                neginf=False)


def inputs(c, rng):
    dt = np.float32 if c["et"] == "f32" else np.float64
    b, hq, hk, n, m, d, dv = (c["batch"], c["hq"], c["hk"], c["n"], c["m"],
                              c["d"], c["dv"])
    q = rng.standard_normal(tuple(b) + (hq, n, d))
    k = rng.standard_normal(tuple(b) + (hk, m, d))
    v = rng.standard_normal(tuple(b) + (hk, m, dv))
    length, s = n + m - 1, len(c["support"])
    rows = 1 if c["shared"] else hq
    w = rng.uniform(-1.5, 1.5, (rows, length, s))
    # Scaled so that beta^ (the certificate) is about c["beta"].
    sc = 1 / math.sqrt(d)
    qa = q[..., [a for a, _ in c["support"]]]
    kb = k[..., [bb for _, bb in c["support"]]]
    nq = np.max(np.linalg.norm(qa, axis=-1)) if s else 1.0
    nk = np.max(np.linalg.norm(kb, axis=-1)) if s else 1.0
    om = np.max(np.abs(w)) if s else 1.0
    f = math.sqrt(c["beta"] / (sc * om * max(nq, 1e-3) * max(nk, 1e-3)))
    q *= f
    k *= f
    if c["neginf"] and s:
        w[:, length - 1, 0] = np.inf
    if c["shared"]:
        w = w[0]
    return [x.astype(dt) for x in (q, k, v, w)]


def mlir(c, xs, method, const_w=None):
    et = c["et"]
    tq, tk, tv, tw = (ttype(x.shape, et) for x in xs)
    o = tuple(c["batch"]) + (c["hq"], c["n"], c["dv"])
    lse = tuple(c["batch"]) + (c["hq"], c["n"])
    to, tl = ttype(o, et), ttype(lse, et)
    causal = " causal" if c["causal"] else ""
    sup = ", ".join(f"{a}, {b}" for a, b in c["support"])
    meth = f" method {method}" if method else ""
    if const_w is None:
        head = f"%q: {tq}, %k: {tk}, %v: {tv}, %w: {tw}"
        wdef = ""
    else:
        head = f"%q: {tq}, %k: {tk}, %v: {tv}"
        lit = "[" + ", ".join(
            "[" + ", ".join("%.17e" % x for x in row) + "]"
            for row in const_w.astype(np.float64)) + "]"
        wdef = f"  %w = arith.constant dense<{lit}> : {tw}\n"
    return (f"func.func @f({head}) -> ({to}, {tl}) {{\n{wdef}"
            f"  %o, %l = ropeattn.general_attention %q, %k, %v weights(%w) "
            f"support [{sup}]{causal}{meth} : ({tq}, {tk}, {tv}, {tw}) -> "
            f"({to}, {tl})\n  return %o, %l : {to}, {tl}\n}}\n")


def run(args, c, xs, method, tag, const_w=None):
    base = os.path.join(args.workdir, tag)
    with open(base + ".mlir", "w") as fh:
        fh.write(mlir(c, xs, method, const_w))
    cmd = [args.rope_run, base + ".mlir", "--function=f",
           f"--pipeline-options=family={FAMILY} epsilon={EPS}"]
    ins = xs if const_w is None else xs[:3]
    for j, x in enumerate(ins):
        np.save(f"{base}_in{j}.npy", x)
        cmd.append(f"--input=@{base}_in{j}.npy")
    cmd += [f"--output=@{base}_o.npy", f"--output=@{base}_l.npy"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"rope-run failed: {p.stderr[-800:]}")
    return np.load(base + "_o.npy"), np.load(base + "_l.npy")


def flat_support(c):
    return [x for ab in c["support"] for x in ab]


def relerr(x, want):
    x = np.asarray(x, np.float64)
    fin = np.isfinite(want)
    if not np.array_equal(np.isfinite(x), fin):
        return math.inf
    if not np.all(x[~fin] == want[~fin]):
        return math.inf
    scale = max(np.max(np.abs(want[fin])) if fin.any() else 0.0, 1e-300)
    return float(np.max(np.abs(x[fin] - want[fin]), initial=0.0) / scale)


def naive32(c, xs):
    """The formula in plain fp32 numpy (materialized logits)."""
    q, k, v, w = (np.asarray(x, np.float32) for x in xs)
    n, m, hq, hk = c["n"], c["m"], c["hq"], c["hk"]
    grp = hq // hk
    a = [x for x, _ in c["support"]]
    b = [y for _, y in c["support"]]
    s = np.float32(1 / math.sqrt(c["d"]))
    qf = q.reshape((-1, hq, n, c["d"]))
    kf = np.repeat(k.reshape((-1, hk, m, c["d"])), grp, axis=1)
    vf = np.repeat(v.reshape((-1, hk, m, c["dv"])), grp, axis=1)
    idx = np.arange(n)[:, None] - np.arange(m)[None, :] + m - 1
    wg = w[idx][None] if w.ndim == 2 else w[:, idx]
    wg = np.broadcast_to(wg, (hq, n, m, len(a))).astype(np.float32)
    lg = s * np.einsum("bhit,hijt,bhjt->bhij", qf[..., a], wg, kf[..., b])
    if c["causal"]:
        vis = np.arange(m)[None, :] <= np.arange(n)[:, None] + (m - n)
        lg = np.where(vis, lg, np.float32(-np.inf))
    mx = np.max(lg, axis=-1, keepdims=True) if m else np.full(
        lg.shape[:-1] + (1,), -np.inf, np.float32)
    with np.errstate(invalid="ignore"):
        e = np.where(np.isfinite(mx), np.exp(lg - mx), np.float32(0))
    z = np.sum(e, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        o = np.where(z > 0, np.einsum("bhij,bhjc->bhic", e, vf) / z, 0)
        lse = np.where(z[..., 0] > 0, mx[..., 0] + np.log(z[..., 0]), -np.inf)
    return (o.reshape(tuple(c["batch"]) + (hq, n, c["dv"])),
            lse.reshape(tuple(c["batch"]) + (hq, n)))


def exact_tolerance(c, xs, o_ref, l_ref):
    if c["et"] == "f64":
        return 1e-11, 1e-11
    o32, l32 = naive32(c, xs)
    fl = 2.0 ** -21
    return 2 * max(relerr(o32, o_ref), fl), 2 * max(relerr(l32, l_ref), fl)


def check_exact(args, c, rng, idx):
    xs = inputs(c, rng)
    f64 = [x.astype(np.float64) for x in xs]
    o_ref, l_ref = ref.general_attention(f64[0], f64[1], f64[2], f64[3],
                                         flat_support(c), causal=c["causal"])
    o, lse = run(args, c, xs, "exact", f"ge{idx}")
    to, tl = exact_tolerance(c, xs, o_ref, l_ref)
    eo, el = relerr(o, o_ref), relerr(lse, l_ref)
    return eo <= to and el <= tl, (f"exact: err o={eo:.2e} (tol {to:.2e}) "
                                   f"lse={el:.2e} (tol {tl:.2e})")


def check_toeplitz(args, c, rng, cands, idx):
    xs = inputs(c, rng)
    q, k, v, w = xs
    et = c["et"]
    u = U[et]
    o_t, l_t = run(args, c, xs, "toeplitz", f"gt{idx}")
    o_x, l_x = run(args, c, xs, "exact", f"gx{idx}")
    d, n, m, dv = c["d"], c["n"], c["m"], c["dv"]
    s = 1 / math.sqrt(d)
    sa = [a for a, _ in c["support"]]
    sb = [b for _, b in c["support"]]
    S = len(sa)
    qf, kf, vf, wf = (x.astype(np.float64) for x in xs)
    length = n + m - 1
    vis = np.ones(length, bool)
    if c["causal"]:
        vis[: n - 1] = False
    wvis = wf[..., vis, :]
    finite = bool(np.all(np.isfinite(wvis)))
    omega = float(np.max(np.abs(wvis), initial=0.0)) if finite else math.inf
    qa, kb = qf[..., sa], kf[..., sb]
    beta_hat = (s * math.sqrt(np.max(np.sum(qa * qa, -1))) *
                math.sqrt(np.max(np.sum(kb * kb, -1))) *
                (1 + 2 * (S + 2) * u)) * omega * (1 + 4 * u)
    chosen = next((cd for cd in cands if beta_hat <= cd[1]), None)
    if chosen is None or not finite:
        same = (np.array_equal(o_t, o_x, equal_nan=True) and
                np.array_equal(l_t, l_x, equal_nan=True))
        why = "no degree covers beta" if finite else "non-finite weight"
        return same, (f"exact fallback ({why}, beta^={beta_hat:.3f}), "
                      f"bit-identical: {same}")
    g, bmax_g, delta, coeffs = chosen
    o_ref, l_ref = ref.general_attention(qf, kf, vf, wf, flat_support(c),
                                         causal=c["causal"])
    a_sum = sum(abs(ck) * beta_hat ** j for j, ck in enumerate(coeffs))
    nf = 3 * (g + S) + 4
    dprime = delta + gamma(nf, u) * a_sum * math.exp(beta_hat) / (1 - delta)
    ms = monomials(S, g)
    nm_terms = len(ms)
    assert nm_terms == math.comb(S + g, g)
    wc = dv + 1
    lfft = 1 << (length - 1).bit_length() if length > 1 else 1
    eps = fft_bound(lfft, et, False)
    hq, hk = c["hq"], c["hk"]
    grp = hq // hk
    qh = qa.reshape((-1, hq, n, S))
    kh = kb.reshape((-1, hk, m, S))
    vh = vf.reshape((-1, hk, m, dv))
    oh = o_t.astype(np.float64).reshape((-1, hq, n, dv))
    lh = l_t.astype(np.float64).reshape((-1, hq, n))
    orf = o_ref.reshape((-1, hq, n, dv))
    lrf = l_ref.reshape((-1, hq, n))
    ii = np.arange(n)[:, None]
    jj = np.arange(m)[None, :]
    mask = (jj <= ii + (m - n)) if c["causal"] else np.ones((n, m), bool)
    offs = ii - jj + m - 1
    worst = 0.0
    for z in range(qh.shape[0]):
        for h in range(hq):
            kv = h // grp
            wt = wf if c["shared"] else wf[h]                  # [L, S]
            uu = np.concatenate([vh[z, kv], np.ones((m, 1))], axis=1)
            dnm = np.zeros((n, wc))
            for mm in ms:
                e = np.array(mm)
                coef = (coeffs[sum(mm)] * s ** sum(mm) * multinomial(mm))
                um = coef * np.prod(qh[z, h] ** e, axis=-1)    # [N]
                vm = np.prod(kh[z, kv] ** e, axis=-1)         # [M]
                tm = np.prod(wt ** e, axis=-1) * vis          # [L]
                a = np.where(mask, tm[offs], 0.0)             # [N, M]
                x = vm[:, None] * uu                          # [M, W]
                c1 = float(np.sum(np.abs(tm)))
                c2 = float(math.sqrt(np.sum(tm ** 2)))
                yabs = np.abs(a) @ np.abs(x)                  # [N, W]
                dy = np.empty(wc)
                for p0 in range(0, wc, 2):
                    zc = x[:, p0].astype(complex)
                    if p0 + 1 < wc:
                        zc = zc + 1j * x[:, p0 + 1]
                    dy[p0:p0 + 2] = fft_pair_bound(c1, c2, zc, eps, u, lfft)
                dyt = dy[None, :] + u * yabs
                dnm += (np.abs(um)[:, None] * dyt +
                        gamma(nm_terms + 2, u) * np.abs(um)[:, None] * yabs)
            dden, dnum = dnm[:, dv], dnm[:, :dv]
            for i in range(n):
                if not np.isfinite(lrf[z, h, i]):  # empty row: exact 0/-inf
                    ok = (np.all(oh[z, h, i] == 0) and lh[z, h, i] == -np.inf)
                    worst = max(worst, 0.0 if ok else math.inf)
                    continue
                den = math.exp(lh[z, h, i])
                if not den > dden[i]:
                    worst = math.inf
                    continue
                vmax = np.max(np.abs(vh[z, kv]), axis=0)
                bound = (output_bound(dprime) * vmax +
                         (dnum[i] + np.abs(oh[z, h, i]) * dden[i]) /
                         (den - dden[i]) + u * np.abs(oh[z, h, i]))
                err = np.abs(oh[z, h, i] - orf[z, h, i])
                worst = max(worst, float(np.max(err / bound)))
                lb = (-math.log1p(-dprime) - math.log1p(-dden[i] / den) +
                      4 * u * (abs(lrf[z, h, i]) + 1))
                worst = max(worst, abs(lh[z, h, i] - lrf[z, h, i]) / lb)
    return worst <= 1.0, (f"toeplitz g={g} |M|={nm_terms} (beta^="
                          f"{beta_hat:.3f} <= {bmax_g:.3f}, delta={delta:.1e})"
                          f": max err/bound = {worst:.3f}")


def rotation_table(d, r, layout, base, n, m):
    pairs = [(a, a + r // 2) if layout == "half" else (2 * a, 2 * a + 1)
             for a in range(r // 2)]
    sup = [(x, x) for x in range(d)]
    for f, sd in pairs:
        sup += [(f, sd), (sd, f)]
    w = np.zeros((n + m - 1, len(sup)))
    for uix in range(n + m - 1):
        p = uix - (n - 1)
        val = {(x, x): 1.0 for x in range(d)}
        for a, (f, sd) in enumerate(pairs):
            phi = p * base ** (-2.0 * a / r)
            val[(f, f)] = val[(sd, sd)] = math.cos(phi)
            val[(f, sd)], val[(sd, f)] = math.sin(phi), -math.sin(phi)
        w[uix] = [val[x] for x in sup]
    return w, sup


def check_rotation(args, c, rng, idx, layout, r, base):
    w, sup = rotation_table(c["d"], r, layout, base, c["n"], c["m"])
    c.update(support=sup, shared=True)
    dt = np.float32 if c["et"] == "f32" else np.float64
    q = rng.standard_normal(tuple(c["batch"]) + (c["hq"], c["n"], c["d"]))
    k = rng.standard_normal(tuple(c["batch"]) + (c["hk"], c["m"], c["d"]))
    v = rng.standard_normal(tuple(c["batch"]) + (c["hk"], c["m"], c["dv"]))
    xs = [x.astype(dt) for x in (q, k, v, w)]
    f64 = [x.astype(np.float64) for x in xs]
    o_ref, l_ref = ref.general_attention(f64[0], f64[1], f64[2], f64[3],
                                         flat_support(c), causal=c["causal"])
    base_path = os.path.join(args.workdir, f"gr{idx}")
    o, lse = run(args, c, xs, None, f"gr{idx}", const_w=xs[3])
    # The canonicalizer must have produced ropeattn.attention with RoPE.
    p = subprocess.run([args.rope_opt, base_path + ".mlir", "-canonicalize"],
                       capture_output=True, text=True)
    rewritten = ("ropeattn.attention" in p.stdout and
                 "general_attention" not in p.stdout)
    to, tl = exact_tolerance(c, xs, o_ref, l_ref)
    eo, el = relerr(o, o_ref), relerr(lse, l_ref)
    return (rewritten and eo <= to and el <= tl,
            f"rotation {layout} r={r} base={base}: rewritten={rewritten} "
            f"err o={eo:.2e} (tol {to:.2e}) lse={el:.2e} (tol {tl:.2e})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("dump")
    ap.add_argument("workdir")
    ap.add_argument("--configs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    args.rope_opt = os.path.join(os.path.dirname(args.rope_run), "rope-opt")
    os.makedirs(args.workdir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    cache = {}
    jobs = []
    for i in range(args.configs):
        jobs.append(("exact", make_case(rng, i, "exact")))
    for i in range(args.configs):
        jobs.append(("toeplitz", make_case(rng, i, "toeplitz")))
    # Forced fallbacks: beta^ beyond every range; a non-finite visible weight.
    c = make_case(rng, 0, "toeplitz")
    c.update(beta=40.0)
    jobs.append(("toeplitz", c))
    c = make_case(rng, 1, "toeplitz")
    c.update(beta=0.3, neginf=True, causal=False)
    jobs.append(("toeplitz", c))
    # Causal with N > M (rows i < N - M see no key), small beta: Toeplitz path.
    c = make_case(rng, 0, "toeplitz")
    c.update(beta=0.5, n=9, m=4, causal=True)
    jobs.append(("toeplitz", c))
    for i, (layout, r, base) in enumerate([("half", 4, 10000.0),
                                           ("interleaved", 2, 10000.0),
                                           ("half", 6, 500.0)]):
        c = make_case(rng, i, "exact")
        c.update(d=max(r, 4), n=int(rng.integers(3, 9)),
                 m=int(rng.integers(3, 9)))
        jobs.append((("rotation", layout, r, base), c))
    passed = 0
    for i, (kind, c) in enumerate(jobs):
        try:
            if kind == "exact":
                ok, msg = check_exact(args, c, rng, i)
            elif kind == "toeplitz":
                s = len(c["support"])
                if s not in cache:
                    cache[s] = candidates(args.dump, s)
                ok, msg = check_toeplitz(args, c, rng, cache[s], i)
            else:
                ok, msg = check_rotation(args, c, rng, i, *kind[1:])
        except RuntimeError as e:
            ok, msg = False, str(e)
        desc = (f"{c['et']} batch={c['batch']} hq={c['hq']} hk={c['hk']} "
                f"N={c['n']} M={c['m']} D={c['d']} Dv={c['dv']} "
                f"|S|={len(c['support'])}{' causal' if c['causal'] else ''} "
                f"{'shared' if c['shared'] else 'per-head'} beta={c['beta']}")
        print(f"{'PASS' if ok else 'FAIL'}: {desc}: {msg}", flush=True)
        passed += ok
    print(f"{passed}/{len(jobs)} cases passed")
    return 0 if passed == len(jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
