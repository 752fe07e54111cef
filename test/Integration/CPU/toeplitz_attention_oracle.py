"""method toeplitz (relative-bias attention by features + FFT Toeplitz
products, ropeattn-expand-toeplitz-attention in rope-lower-to-cpu) against
the fp64 reference and the exact path.

Random configurations: batch dims, GQA, N < M / N = M / N > M, causal or not,
shared or per-head bias (uniform, spread 0.5..3, or ALiBi-like slopes), D in
{2, 3, 4}, Dv in {1..4}, logit ranges beta from 0.2 to 6, f32 and f64,
fft=codegen and fft=library. Per case:

  * which path ran: recomputed here exactly as the pass does it: beta =
    |s| max|q_i| max|k_j| (1 + 2(D + 2)u), the candidate table (degree g <=
    max-degree = 4, C(D + g, g) <= max-rank = 1024, largest logit range B_g of
    the grid 2^(k/2) whose proven bound delta(g, B_g) <= epsilon = 1e-2, from
    poly-approx-dump), the least g with beta <= B_g, and the exact path when
    none covers beta or a visible bias entry is not finite; the exact path
    must equal the `method exact` output bit for bit;
  * when the Toeplitz path ran, with the degree's coefficients c and delta:
      |O~ - O| <= B(delta') max_j |v_jc| + (dN + |O~| dD) / (D~ - dD) + u|O~|
    B(d) = 2d/(1 + sqrt(1 - d^2)) (docs/Polynomial.md), delta' = delta +
    gamma_{2g+4} A e^beta / (1 - delta) (the rounding of the features, A =
    sum_k |c_k| beta^k), D~ = e^{lse~ - b_max} the computed denominator (in the
    shifted scale of the symbol E = e^{b - b_max}), and dN, dD the bounds on
    the Toeplitz-product errors of each row: per product column, the FFT
    bound of toeplitz_oracle.py (normwise per pair of columns (2p, 2p+1),
    from |c|_1, |c|_2 of the masked circulant and the columns' norms, computed
    here in float64 from numpy features) plus u times |E| |X| (the product
    that forms X), propagated through Nm = sum_a phi_Q[:, a] Y[:, a] with
    gamma_R for that sum;
    |lse~ - lse| <= -log(1 - delta') - log(1 - dD/D~) + 4u(|lse| + 1).

Usage: toeplitz_attention_oracle.py ROPE_RUN POLY_APPROX_DUMP WORKDIR
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
from poly_features import features  # noqa: E402

MAX_DEGREE, MAX_RANK, EPS, FAMILY = 4, 1024, 1e-2, "minimax"


def candidates(dump, d):
    out = []
    for g in range(1, MAX_DEGREE + 1):
        if math.comb(d + g, g) > MAX_RANK:
            break
        row = fitted_candidate(dump, FAMILY, g, EPS)
        if row:
            out.append((g, row["beta"], row["delta"], row["coeffs"]))
    return out


def ttype(shape, et):
    return "tensor<" + "".join(f"{s}x" for s in shape) + et + ">"


def gamma(n, u):
    return n * u / (1 - n * u)


def make_case(rng, i):
    et = ["f32", "f64"][i % 2]
    backend = ["codegen", "library"][(i // 2) % 2]
    batch = [[], [2]][int(rng.integers(2))]
    hk = int(rng.integers(1, 3))
    hq = hk * int(rng.integers(1, 3))
    n = int(rng.integers(1, 40))
    m = [n, int(rng.integers(1, 40))][int(rng.integers(2))]
    d = int(rng.integers(2, 5))
    dv = int(rng.integers(1, 5))
    causal = bool(rng.integers(2))
    shared = bool(rng.integers(2))
    beta = [0.2, 0.7, 1.2, 1.3, 8.0][int(rng.integers(5))]
    kind = ["uniform", "alibi", "uniform"][int(rng.integers(3))]
    return dict(et=et, backend=backend, batch=batch, hq=hq, hk=hk, n=n, m=m,
                d=d, dv=dv, causal=causal, shared=shared, beta=beta,
                kind=kind, spread=float(rng.choice([0.5, 3.0])), neginf=False)


def inputs(c, rng):
    dt = np.float32 if c["et"] == "f32" else np.float64
    b, hq, hk, n, m, d, dv = (c["batch"], c["hq"], c["hk"], c["n"], c["m"],
                              c["d"], c["dv"])
    q = rng.standard_normal(tuple(b) + (hq, n, d))
    k = rng.standard_normal(tuple(b) + (hk, m, d))
    v = rng.standard_normal(tuple(b) + (hk, m, dv))
    s = 1 / math.sqrt(d)
    # Rows scaled so that s·max|q|·max|k| = beta.
    q *= math.sqrt(c["beta"] / s) / np.max(np.linalg.norm(q, axis=-1))
    k *= math.sqrt(c["beta"] / s) / np.max(np.linalg.norm(k, axis=-1))
    length = n + m - 1
    rows = 1 if c["shared"] else hq
    if c["kind"] == "alibi":
        delta = np.arange(length) - (m - 1)
        slopes = c["spread"] / max(length, 1) * (1 + np.arange(rows))
        bias = -slopes[:, None] * np.abs(delta)[None, :]
    else:
        bias = rng.uniform(-c["spread"], c["spread"], (rows, length))
    if c["neginf"]:
        bias[:, length // 2] = -np.inf
    if c["shared"]:
        bias = bias[0]
    return [x.astype(dt) for x in (q, k, v, bias)]


def mlir(c, xs, method):
    et = c["et"]
    tq, tk, tv, tb = (ttype(x.shape, et) for x in xs)
    o = tuple(c["batch"]) + (c["hq"], c["n"], c["dv"])
    lse = tuple(c["batch"]) + (c["hq"], c["n"])
    to, tl = ttype(o, et), ttype(lse, "f64" if et == "f64" else "f32")
    causal = " causal" if c["causal"] else ""
    return (f"func.func @f(%q: {tq}, %k: {tk}, %v: {tv}, %b: {tb}) -> "
            f"({to}, {tl}) {{\n  %o, %l = ropeattn.attention %q, %k, %v "
            f"bias(%b){causal} method {method} : ({tq}, {tk}, {tv}, {tb}) -> "
            f"({to}, {tl})\n  return %o, %l : {to}, {tl}\n}}\n")


def run(args, c, xs, method, tag):
    base = os.path.join(args.workdir, tag)
    with open(base + ".mlir", "w") as fh:
        fh.write(mlir(c, xs, method))
    cmd = [args.rope_run, base + ".mlir", "--function=f",
           f"--pipeline-options=fft={c['backend']} family={FAMILY} "
           f"epsilon={EPS}"]
    for j, x in enumerate(xs):
        np.save(f"{base}_in{j}.npy", x)
        cmd.append(f"--input=@{base}_in{j}.npy")
    cmd += [f"--output=@{base}_o.npy", f"--output=@{base}_l.npy"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"rope-run failed: {p.stderr[-500:]}")
    return np.load(base + "_o.npy"), np.load(base + "_l.npy")


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


def check(args, c, rng, cands, idx):
    xs = inputs(c, rng)
    q, k, v, bias = xs
    et = c["et"]
    u = U[et]
    o_t, l_t = run(args, c, xs, "toeplitz", f"ta{idx}")
    o_x, l_x = run(args, c, xs, "exact", f"tx{idx}")
    d, n, m, dv = c["d"], c["n"], c["m"], c["dv"]
    s = 1 / math.sqrt(d)
    qf, kf, vf, bf = (x.astype(np.float64) for x in xs)
    beta_hat = (s * math.sqrt(np.max(np.sum(qf * qf, -1))) *
                math.sqrt(np.max(np.sum(kf * kf, -1))) *
                (1 + 2 * (d + 2) * u))
    length = n + m - 1
    vis = np.ones(length, bool)
    if c["causal"]:
        vis[: n - 1] = False
    finite = bool(np.all(np.isfinite(bf[..., vis])))
    chosen = next((cd for cd in cands if beta_hat <= cd[1]), None)
    if chosen is None or not finite:
        same = (np.array_equal(o_t, o_x, equal_nan=True) and
                np.array_equal(l_t, l_x, equal_nan=True))
        why = "no degree covers beta" if finite else "non-finite bias"
        return same, f"exact fallback ({why}), bit-identical: {same}"
    g, bmax_g, delta, coeffs = chosen
    o_ref, l_ref = ref.attention(qf, kf, vf, bias=bf, causal=c["causal"])
    a_sum = sum(abs(ck) * beta_hat ** j for j, ck in enumerate(coeffs))
    dprime = delta + gamma(2 * g + 4, u) * a_sum * math.exp(beta_hat) / (
        1 - delta)
    r = math.comb(d + g, g)
    w = dv + 1
    lfft = 1 << (length - 1).bit_length() if length > 1 else 1
    eps = fft_bound(lfft, et, c["backend"] == "library")
    hq, hk = c["hq"], c["hk"]
    grp = hq // hk
    qh = qf.reshape((-1, hq, n, d))
    kh = kf.reshape((-1, hk, m, d))
    vh = vf.reshape((-1, hk, m, dv))
    oh = o_t.astype(np.float64).reshape((-1, hq, n, dv))
    lh = l_t.astype(np.float64).reshape((-1, hq, n))
    orf = o_ref.reshape((-1, hq, n, dv))
    lrf = l_ref.reshape((-1, hq, n))
    worst = 0.0
    for z in range(qh.shape[0]):
        for h in range(hq):
            kv = h // grp
            brow = bf if c["shared"] else bf[h]
            bmax = np.max(brow[vis])
            e = np.exp(brow - bmax)
            a = np.zeros((n, m))
            for i in range(n):
                for j in range(m):
                    if not c["causal"] or j <= i + (m - n):
                        a[i, j] = e[i - j + m - 1]
            c1 = float(np.sum(e[vis]))
            c2 = float(math.sqrt(np.sum(e[vis] ** 2)))
            phq = features(qh[z, h], coeffs, s, "query")       # [N, R]
            phk = features(kh[z, kv], coeffs, s, "key")        # [M, R]
            uu = np.concatenate([vh[z, kv], np.ones((m, 1))], axis=1)
            x = (phk[:, :, None] * uu[:, None, :]).reshape(m, r * w)
            yabs = np.abs(a) @ np.abs(x)                       # [N, R W]
            dy = np.empty(r * w)
            for p0 in range(0, r * w, 2):
                zc = x[:, p0].astype(complex)
                if p0 + 1 < r * w:
                    zc = zc + 1j * x[:, p0 + 1]
                bnd = fft_pair_bound(c1, c2, zc, eps, u, lfft)
                dy[p0:p0 + 2] = bnd
            dyt = dy[None, :] + u * yabs                      # [N, R W]
            dyt = dyt.reshape(n, r, w)
            ya = yabs.reshape(n, r, w)
            ap = np.abs(phq)                                   # [N, R]
            dnm = (np.einsum("ia,iac->ic", ap, dyt) +
                   gamma(r, u) * np.einsum("ia,iac->ic", ap, ya))
            dden = dnm[:, dv]
            dnum = dnm[:, :dv]
            for i in range(n):
                if not np.isfinite(lrf[z, h, i]):  # empty row: exact 0/-inf
                    ok = (np.all(oh[z, h, i] == 0) and lh[z, h, i] == -np.inf)
                    worst = max(worst, 0.0 if ok else math.inf)
                    continue
                den = math.exp(lh[z, h, i] - bmax)
                if not den > dden[i]:
                    worst = math.inf
                    continue
                vmax = np.max(np.abs(vh[z, kv][: m]), axis=0)
                bound = (output_bound(dprime) * vmax +
                         (dnum[i] + np.abs(oh[z, h, i]) * dden[i]) /
                         (den - dden[i]) + u * np.abs(oh[z, h, i]))
                err = np.abs(oh[z, h, i] - orf[z, h, i])
                worst = max(worst, float(np.max(err / bound)))
                lb = (-math.log1p(-dprime) - math.log1p(-dden[i] / den) +
                      4 * u * (abs(lrf[z, h, i]) + 1))
                worst = max(worst, abs(lh[z, h, i] - lrf[z, h, i]) / lb)
    return worst <= 1.0, (f"toeplitz g={g} (beta^={beta_hat:.3f} <= "
                          f"{bmax_g:.3f}, delta={delta:.1e}): max err/bound "
                          f"= {worst:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rope_run")
    ap.add_argument("dump")
    ap.add_argument("workdir")
    ap.add_argument("--configs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    cache = {}
    cases = [make_case(rng, i) for i in range(args.configs)]
    # A -inf bias entry: the exact path, bit for bit.
    extra = make_case(rng, 0)
    extra.update(beta=0.2, neginf=True, n=9, m=9, causal=False)
    cases.append(extra)
    # Causal with N > M: rows i < N - M see no key (exactly 0 / -inf).
    extra = make_case(rng, 1)
    extra.update(beta=0.7, n=10, m=4, causal=True, neginf=False)
    cases.append(extra)
    passed = 0
    for i, c in enumerate(cases):
        if c["d"] not in cache:
            cache[c["d"]] = candidates(args.dump, c["d"])
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
