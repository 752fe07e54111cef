#!/usr/bin/env python3
"""Correctness of rope-baseline against the fp64 reference.

    python test_baseline.py path/to/rope-baseline [-v]

For each case (odd sizes, N != M, GQA, causal with empty rows, batch dims,
Dv != D, several block sizes, both variants) it writes random float32 inputs
as .npy, runs `rope-baseline --backward --in-dir --out-dir`, and compares o,
lse, dq, dk, dv with test/reference/ropeattn_ref.py (float64). The tolerance
is relative to what a straightforward float32 numpy implementation of the
same formulas achieves against the same reference: the baseline's max abs
error must be within RATIO x that (with a floor of a few float32 ulps of the
largest reference value). Rows with no visible key must give o = 0,
lse = -inf and zero gradients exactly.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "reference"))
import ropeattn_ref as ref  # noqa: E402

RATIO = 4.0
EPS32 = float(np.finfo(np.float32).eps)

# name, batch dims, hq, hk, n, m, d, dv, causal, rope, extra CLI flags
CASES = [
    ("gqa-small-blocks", (2,), 4, 2, 37, 53, 16, 16, False, True,
     ["--block-q=8", "--block-k=16"]),
    ("gqa-causal-small-blocks", (2,), 4, 2, 37, 53, 16, 16, True, True,
     ["--block-q=8", "--block-k=16"]),
    ("causal-n>m-empty-rows", (1,), 6, 2, 53, 37, 16, 16, True, True,
     ["--block-q=16", "--block-k=8"]),
    ("odd-d-dv-batch2d-norope", (2, 3), 2, 1, 29, 29, 15, 9, True, False,
     ["--block-q=7", "--block-k=5"]),
    ("default-blocks-causal", (1,), 2, 1, 300, 517, 64, 64, True, True, []),
    ("default-blocks-scale", (1,), 2, 2, 257, 129, 32, 32, False, True,
     ["--scale=0.3"]),
    ("decode-mqa", (1,), 4, 1, 1, 200, 32, 32, True, True,
     ["--block-k=64"]),
    ("d128-causal", (1,), 2, 2, 150, 150, 128, 128, True, True,
     ["--block-q=32", "--block-k=64"]),
    ("plain-gqa-causal", (2,), 4, 2, 37, 53, 16, 16, True, True, ["--plain"]),
    ("plain-n>m", (1,), 6, 2, 53, 37, 16, 16, True, True, ["--plain"]),
]


def scale_of(d, flags):
    for f in flags:
        if f.startswith("--scale="):
            return float(f.split("=", 1)[1])
    return None


def rotate32(x, positions, inverse=False):
    """RoPE (half layout, r = D) in float32 with cos/sin of f64 angles."""
    d = x.shape[-1]
    half = d // 2
    theta = 10000.0 ** (-2.0 * np.arange(half, dtype=np.float64) / d)
    phi = positions.astype(np.float64)[:, None] * theta[None, :]
    c = np.cos(phi).astype(np.float32)
    s = np.sin(phi).astype(np.float32)
    if inverse:
        s = -s
    xu, xw = x[..., :half], x[..., half:]
    return np.concatenate([xu * c - xw * s, xu * s + xw * c], axis=-1)


def numpy32(q, k, v, do, causal, rope, scale):
    """Straightforward float32 attention forward + backward (the yardstick)."""
    bt = q.shape[:-3]
    hq, n, d = q.shape[-3:]
    hk, m, _ = k.shape[-3:]
    g = hq // hk
    s = np.float32(1.0 / np.sqrt(d) if scale is None else scale)
    pq = (m - n) + np.arange(n)
    pk = np.arange(m)
    qr = rotate32(q, pq) if rope else q
    kr = rotate32(k, pk) if rope else k
    ke = np.repeat(kr, g, axis=-3)
    ve = np.repeat(v, g, axis=-3)
    logits = s * (qr @ np.swapaxes(ke, -1, -2))
    vis = np.arange(m)[None, :] <= np.arange(n)[:, None] + (m - n)
    if causal:
        logits = np.where(vis, logits, np.float32(-np.inf))
    mx = logits.max(axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, np.float32(0))
    e = np.exp(logits - mx)
    ssum = e.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(ssum > 0, e / ssum, np.float32(0))
        lse = np.where(ssum > 0, mx + np.log(ssum), -np.inf)[..., 0]
    o = p @ ve
    dv_e = np.swapaxes(p, -1, -2) @ do
    dp = do @ np.swapaxes(ve, -1, -2)
    delta = np.sum(do * o, axis=-1, keepdims=True)
    ds = p * (dp - delta)
    dq = s * (ds @ ke)
    dk_e = s * (np.swapaxes(ds, -1, -2) @ qr)
    dk = dk_e.reshape(bt + (hk, g, m, d)).sum(axis=-3)
    dv = dv_e.reshape(bt + (hk, g, m, v.shape[-1])).sum(axis=-3)
    if rope:
        dq = rotate32(dq, pq, inverse=True)
        dk = rotate32(dk, pk, inverse=True)
    return dict(o=o, lse=lse.astype(np.float32), dq=dq, dk=dk, dv=dv)


def max_err(x, r):
    x = np.asarray(x, dtype=np.float64)
    fin = np.isfinite(r)
    return float(np.max(np.abs(x[fin] - r[fin]), initial=0.0))


def run_case(binary, case, rng, verbose):
    name, bt, hq, hk, n, m, d, dv, causal, rope, flags = case
    q = rng.standard_normal(bt + (hq, n, d)).astype(np.float32)
    k = rng.standard_normal(bt + (hk, m, d)).astype(np.float32)
    v = rng.standard_normal(bt + (hk, m, dv)).astype(np.float32)
    do = rng.standard_normal(bt + (hq, n, dv)).astype(np.float32)
    scale = scale_of(d, flags)
    with tempfile.TemporaryDirectory() as tmp:
        for nm, x in (("q", q), ("k", k), ("v", v), ("do", do)):
            np.save(os.path.join(tmp, nm + ".npy"), x)
        cmd = [binary, "--backward", "--in-dir=" + tmp, "--out-dir=" + tmp]
        cmd += ([] if rope else ["--no-rope"]) + (["--causal"] if causal
                                                  else []) + flags
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"FAIL {name}: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
            return False
        got = {nm: np.load(os.path.join(tmp, nm + ".npy"))
               for nm in ("o", "lse", "dq", "dk", "dv")}
    rope_attr = {} if rope else None
    o64, lse64 = ref.attention(q, k, v, scale=scale, causal=causal,
                               rope=rope_attr)
    dq64, dk64, dv64, _ = ref.attention_grad(q, k, v, do, scale=scale,
                                             causal=causal, rope=rope_attr)
    want = dict(o=o64, lse=lse64, dq=dq64, dk=dk64, dv=dv64)
    y32 = numpy32(q, k, v, do, causal, rope, scale)

    ok = True
    notes = []
    for nm in ("o", "lse", "dq", "dk", "dv"):
        g, r = got[nm], want[nm]
        if g.shape != r.shape or g.dtype != np.float32:
            notes.append(f"{nm}: shape/dtype {g.shape} {g.dtype} != {r.shape}")
            ok = False
            continue
        if nm == "lse":
            if not np.array_equal(np.isneginf(g), np.isneginf(r)):
                notes.append("lse: -inf rows differ")
                ok = False
            if not np.all(np.isfinite(g) | np.isneginf(g)):
                notes.append("lse: NaN/+inf")
                ok = False
        elif not np.all(np.isfinite(g)):
            notes.append(f"{nm}: non-finite values")
            ok = False
            continue
        eb = max_err(g, r)
        e32 = max_err(y32[nm], r)
        scale_ref = float(np.max(np.abs(r[np.isfinite(r)]), initial=1.0))
        tol = RATIO * max(e32, 4 * EPS32 * scale_ref)
        if not eb <= tol:
            ok = False
        notes.append(f"{nm} {eb:.2e} (np32 {e32:.2e}, x{eb / max(e32, 1e-30):.2f})")
    # Empty rows (causal, N > M): exact zeros.
    empty = np.isneginf(lse64)
    if empty.any():
        if np.any(got["o"][empty] != 0) or np.any(got["dq"][empty] != 0):
            notes.append("empty rows: o/dq not exactly 0")
            ok = False
    status = "ok  " if ok else "FAIL"
    if verbose or not ok:
        print(f"{status} {name}: " + "; ".join(notes))
    return ok


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    verbose = "-v" in sys.argv[2:]
    rng = np.random.default_rng(20260125)
    failures = [c[0] for c in CASES if not run_case(binary, c, rng, verbose)]
    if failures:
        print(f"baseline: {len(failures)} of {len(CASES)} cases FAILED: "
              + ", ".join(failures))
        return 1
    print(f"baseline: all {len(CASES)} cases OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
