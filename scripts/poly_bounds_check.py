#!/usr/bin/env python3
"""Independent check of ropeattn's certified polynomial approximations of e^x.

Usage: poly_bounds_check.py PATH/TO/poly-approx-dump [--quick]

Reads the coefficients and the proven bounds of the C++ library
(ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h) through the
poly-approx-dump tool and checks them with numpy (long double) and Python's
decimal module, which share no code with the C++ side:

  1. grid: |p(x) − e^x| ≤ δ·e^x on 20001 points of [−β, β] (long double
     Horner, plus its rounding allowance), the relative error at x = −β
     recomputed with 40-digit decimals, and the tightness max/δ;
  2. logits: the same for logits ℓ = s·⟨q, k⟩ of random q, k (d = 16, 64,
     s = 1/√d) scaled so that s·‖q‖·‖k‖ ≤ β, half of them nearly (anti)parallel
     to reach the ends of the interval; plus the feature-map identity
     Σ_α w_α q^α k^α = p(s⟨q, k⟩) with C(d+g, g) features;
  3. attention: random problems with logit bound β̂ = s·max‖q‖·max‖k‖ = β:
     |Õ_ic − O_ic| ≤ outputErrorBound(δ)·max_j |V_jc| and
     |LSẼ_i − LSE_i| ≤ lseErrorBound(δ) in every trial, with the bound
     re-derived here (2δ/(1 + √(1 − δ²)), −log(1 − δ)); and the two-key
     problem that attains the output bound (MATH.md's 2δ/(1 − δ) is about
     twice as large).

Prints one line per check and "poly-bounds: all checks passed"; exits 1 on
the first failure (docs/Polynomial.md §5).
"""

import itertools
import json
import math
import subprocess
import sys
from decimal import Decimal, getcontext

import numpy as np

LD = np.longdouble
U_LD = float(np.finfo(LD).eps) / 2
BETAS = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
FAMILIES = ["taylor", "chebyshev", "minimax"]
getcontext().prec = 40

failures = []


def check(ok, msg):
    if not ok:
        failures.append(msg)
        print("FAIL: " + msg)


def dump(tool, *args):
    out = subprocess.run([tool, *args], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def gamma(n, u):
    return n * u / (1 - n * u)


def horner_ld(coeffs, x):
    """p(x) and Σ|c_k||x|^k in long double (x an array)."""
    p = np.zeros_like(x)
    s = np.zeros_like(x)
    ax = np.abs(x)
    for c in reversed(coeffs):
        p = p * x + LD(c)
        s = s * ax + LD(abs(c))
    return p, s


def rel_errors(a, x):
    """|p(x)/e^x − 1| and the allowance for long double evaluation."""
    x = np.asarray(x, dtype=LD)
    p, s = horner_ld(a["coeffs"], x)
    ex = np.exp(x)
    rel = np.abs(p / ex - 1)
    allowance = gamma(2 * len(a["coeffs"]) + 4, U_LD) * s / ex + 64 * U_LD
    return rel, allowance


def decimal_rel(a, x):
    """|p(x)e^{−x} − 1| with 40 significant digits (x a float)."""
    xd = Decimal(x)
    p = Decimal(0)
    for c in reversed(a["coeffs"]):
        p = p * xd + Decimal(c)
    return abs(p * (-xd).exp() - 1)


def output_bound(delta):
    """The bound re-derived here (docs/Polynomial.md §4)."""
    if delta >= 1:
        return math.inf
    return 2 * delta / (1 + math.sqrt(1 - delta * delta))


def lse_bound(delta):
    return math.inf if delta >= 1 else -math.log1p(-delta)


def check_grid(approxs):
    tight = {f: 1.0 for f in FAMILIES}
    for a in approxs:
        f, g, beta, delta = a["family"], a["degree"], a["beta"], a["delta"]
        tag = f"{f} g={g} beta={beta}"
        x = np.linspace(-beta, beta, 20001)
        rel, allowance = rel_errors(a, x)
        for key in ("delta", "delta_apriori", "delta_certified"):
            bad = rel > LD(a[key]) + allowance
            check(not bad.any(), f"grid {tag}: {key} = {a[key]:.3e} exceeded "
                  f"at x = {x[bad][0] if bad.any() else 0}: "
                  f"{float(rel.max()):.3e}")
        # Decimal spot checks at −β, β, 0 and the grid maximum.
        worst = float(x[int(np.argmax(rel))])
        for pt in {-beta, beta, 0.0, worst}:
            r = decimal_rel(a, pt)
            check(r <= Decimal(delta) * (1 + Decimal(10) ** -30),
                  f"decimal {tag}: |p e^-x - 1| = {r:.6e} > delta at x={pt}")
        if a["positive"]:
            p, _ = horner_ld(a["coeffs"], np.asarray(x, dtype=LD))
            check((p > 0).all(), f"grid {tag}: positive but p <= 0")
        # Taylor and Chebyshev: δ is the supremum, attained at −β (§1, §2):
        # the 40-digit value there must be within 1% of δ above the floor.
        if f != "minimax" and delta > 1e-12:
            r = float(decimal_rel(a, -beta))
            check(r >= 0.99 * delta,
                  f"decimal {tag}: bound {delta:.6e} not attained ({r:.6e})")
        if delta > 1e-12:
            tight[f] = min(tight[f], float(rel.max()) / delta)
    for f in FAMILIES:
        print(f"poly-bounds: grid {f}: bound holds on 20001 points x "
              f"{sum(a['family'] == f for a in approxs)} fits; "
              f"min tightness max|rel|/delta = {tight[f]:.4f}")


def random_logits(rng, beta, n, d):
    """ℓ = s⟨q, k⟩ with s‖q‖‖k‖ ≤ β; half the pairs nearly (anti)parallel."""
    s = 1 / math.sqrt(d)
    q = rng.standard_normal((n, d))
    k = rng.standard_normal((n, d))
    half = n // 2
    sign = rng.choice([-1.0, 1.0], size=(half, 1))
    k[:half] = sign * q[:half] + 1e-3 * rng.standard_normal((half, d))
    t = rng.uniform(0, 1, size=n) ** 0.25
    t[:8] = 1.0
    scale = np.sqrt(beta * t / (s * np.linalg.norm(q, axis=1) *
                                np.linalg.norm(k, axis=1)))
    q *= scale[:, None]
    k *= scale[:, None]
    logits = s * np.einsum("nd,nd->n", q, k)
    return logits[np.abs(logits) <= beta]


def check_logits(approxs, rng):
    worst = {f: 0.0 for f in FAMILIES}
    count = 0
    for a in approxs:
        for d in (16, 64):
            logits = random_logits(rng, a["beta"], 4000, d)
            rel, allowance = rel_errors(a, logits)
            bad = rel > LD(a["delta"]) + allowance
            check(not bad.any(),
                  f"logits {a['family']} g={a['degree']} beta={a['beta']} "
                  f"d={d}: {float(rel.max()):.3e} > {a['delta']:.3e}")
            count += len(logits)
            if a["delta"] > 1e-12:
                worst[a["family"]] = max(worst[a["family"]],
                                         float(rel.max()) / a["delta"])
    print(f"poly-bounds: logits: {count} random logits within delta; "
          "max |rel|/delta " +
          ", ".join(f"{f} {worst[f]:.4f}" for f in FAMILIES))


def check_features(tool, rng):
    """Σ_{|α|≤g} c_|α| s^|α| multinomial(α) q^α k^α = p(s⟨q, k⟩)."""
    for d, g in ((3, 3), (4, 4), (2, 6)):
        a = dump(tool, "--family=minimax", f"--degree={g}", "--beta=2")
        c = a["coeffs"]
        s = 1 / math.sqrt(d)
        alphas = [al for m in range(g + 1)
                  for al in itertools.product(range(m + 1), repeat=d)
                  if sum(al) == m]
        check(len(alphas) == math.comb(d + g, g),
              f"features: {len(alphas)} != C({d}+{g}, {g})")
        for _ in range(20):
            q = rng.standard_normal(d) * 0.5
            k = rng.standard_normal(d) * 0.5
            phi = 0.0
            for al in alphas:
                m = sum(al)
                multi = math.factorial(m)
                for ai in al:
                    multi //= math.factorial(ai)
                phi += c[m] * s ** m * multi * np.prod(q ** np.array(al)) * \
                    np.prod(k ** np.array(al))
            ell = s * float(q @ k)
            direct = sum(ck * ell ** j for j, ck in enumerate(c))
            check(abs(phi - direct) <= 1e-12 * max(1.0, abs(direct)),
                  f"features d={d} g={g}: {phi} != {direct}")
    print("poly-bounds: feature map: sum over C(d+g, g) multi-indices "
          "equals p(s<q,k>)")
    for d, g, r in ((16, 4, 4845), (32, 2, 561), (64, 2, 2145),
                    (64, 4, 814385)):
        check(math.comb(d + g, g) == r, f"rank C({d}+{g}, {g}) != {r}")


def attention(rng, a, n, m, d, dv, adversarial):
    beta = a["beta"]
    s = 1 / math.sqrt(d)
    q = rng.standard_normal((n, d))
    k = rng.standard_normal((m, d))
    v = rng.standard_normal((m, dv)) + rng.uniform(-2, 2)
    # Logit bound β̂ = s·max‖q‖·max‖k‖ = β (times 1 − 1e-12 for rounding).
    qs = math.sqrt(beta * (1 - 1e-12) / s) / np.linalg.norm(q, axis=1).max()
    ks = math.sqrt(beta * (1 - 1e-12) / s) / np.linalg.norm(k, axis=1).max()
    q *= qs
    k *= ks
    logits = s * (q @ k.T)
    assert np.abs(logits).max() <= beta
    x = np.asarray(logits, dtype=LD)
    w = np.exp(x)
    wt, sabs = horner_ld(a["coeffs"], x)
    if adversarial:
        # V_j = sign of the weight's relative error (row 0): the direction in
        # which the error of O_0 is largest for these weights.
        v = np.repeat(np.sign(np.asarray(wt[0] / w[0] - 1,
                                         dtype=np.float64))[:, None], dv, 1)
    vl = np.asarray(v, dtype=LD)
    o = (w @ vl) / w.sum(axis=1, keepdims=True)
    ot = (wt @ vl) / wt.sum(axis=1, keepdims=True)
    lse = np.log(w.sum(axis=1))
    lset = np.log(wt.sum(axis=1))
    # The weights' relative error, with long double evaluation included.
    allow = gamma(2 * a["degree"] + 4, U_LD) * sabs / w + 64 * U_LD
    delta = a["delta"] + float(allow.max())
    vmax = np.abs(v).max(axis=0)
    err = np.abs(np.asarray(ot - o, dtype=np.float64))
    lerr = np.abs(np.asarray(lset - lse, dtype=np.float64))
    return err, vmax, lerr, delta


def check_attention(tool, approxs, rng, trials):
    ratio_max = 0.0
    adv_max = 0.0
    checked = 0
    for a in approxs:
        if a["delta"] >= 0.5 or a["degree"] not in (2, 4, 6, 8):
            continue
        for trial in range(trials):
            adversarial = trial % 4 == 3
            err, vmax, lerr, delta = attention(rng, a, 16, 96, 16, 8,
                                               adversarial)
            bound = output_bound(delta)
            check(a["output_bound"] >= output_bound(a["delta"]) * (1 - 1e-15),
                  f"attention: C++ output_bound {a['output_bound']} < "
                  f"{output_bound(a['delta'])}")
            slack = 1e-15 * vmax
            bad = err > bound * vmax * (1 + 1e-9) + slack
            check(not bad.any(),
                  f"attention {a['family']} g={a['degree']} beta={a['beta']}:"
                  f" |O~ - O| = {err.max():.3e} > {bound:.3e} max|v|")
            lb = lse_bound(delta)
            check((lerr <= lb * (1 + 1e-9) + 1e-15).all(),
                  f"attention {a['family']} g={a['degree']} beta={a['beta']}:"
                  f" |LSE~ - LSE| = {lerr.max():.3e} > {lb:.3e}")
            r = float((err / (bound * vmax)).max()) if bound > 0 else 0.0
            if adversarial:
                adv_max = max(adv_max, r)
            else:
                ratio_max = max(ratio_max, r)
            checked += 1
    print(f"poly-bounds: attention: {checked} problems within "
          f"outputErrorBound and lseErrorBound; max |O~ - O|/(bound max|v|) "
          f"random V {ratio_max:.4f}, adversarial V {adv_max:.4f}")

    # The bound is attained: two keys of weights a, 1 − a with ε = ±δ and
    # v = ±1, 2a − 1 = (√(1 − δ²) − 1)/δ.
    for delta in (1e-6, 1e-3, 0.1, 0.5):
        b = dump(tool, "--bounds", f"--delta={delta!r}")
        check(b["output_bound"] >= output_bound(delta),
              f"bounds: C++ output_bound({delta}) below the derivation")
        check(b["output_bound"] <= output_bound(delta) * (1 + 1e-14),
              f"bounds: C++ output_bound({delta}) looser than derived")
        check(b["lse_bound"] >= lse_bound(delta) * (1 - 1e-15),
              f"bounds: C++ lse_bound({delta}) below -log(1 - delta)")
        aa = (1 + (math.sqrt(1 - delta * delta) - 1) / delta) / 2
        w = np.array([aa, 1 - aa], dtype=LD)
        wt = w * np.array([1 + delta, 1 - delta], dtype=LD)
        vv = np.array([1, -1], dtype=LD)
        attained = float(abs((wt @ vv) / wt.sum() - (w @ vv) / w.sum()))
        check(abs(attained / b["output_bound"] - 1) < 1e-9,
              f"bounds: two-key problem gives {attained}, bound "
              f"{b['output_bound']}")
        math_md = 2 * delta / (1 - delta)
        print(f"poly-bounds: delta={delta:g}: output bound "
              f"{b['output_bound']:.6e} attained by the two-key problem "
              f"({attained:.6e}); MATH.md's 2d/(1-d) = {math_md:.6e}")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    tool = sys.argv[1]
    quick = "--quick" in sys.argv[2:]
    rng = np.random.default_rng(20240611)
    degrees = "2,4,6,8" if quick else "1-10"
    approxs = dump(tool, "--family=" + ",".join(FAMILIES),
                   "--degree=" + degrees,
                   "--beta=" + ",".join(repr(b) for b in BETAS))
    check_grid(approxs)
    check_logits(approxs, rng)
    check_features(tool, rng)
    check_attention(tool, approxs, rng, trials=4 if quick else 8)
    if failures:
        print(f"poly-bounds: {len(failures)} check(s) FAILED")
        return 1
    print("poly-bounds: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
