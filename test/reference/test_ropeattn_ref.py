"""Self-checks of the float64 reference (ropeattn_ref.py) against docs/Spec.md.

Run: python3 -m pytest -q test/reference

The checks are independent of each other where it matters:
  * a loop-per-element forward written straight from the spec formulas (with
    the rotation as an explicit D x D matrix) checks the vectorized forward;
  * central finite differences check every analytic gradient;
  * the general form with rotation weights checks the RoPE sign derivation.
"""

import itertools
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ropeattn_ref as ref  # noqa: E402


def rng(seed):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------

def naive_attention(q, k, v, bias=None, scale=None, causal=False, rope=None):
    """Element-by-element forward from the spec: loops over (b.., h, i, j)."""
    batch = q.shape[:-3]
    hq, n, d = q.shape[-3:]
    hk, m, _ = k.shape[-3:]
    dv = v.shape[-1]
    g = hq // hk
    s = (1.0 if d == 0 else 1 / math.sqrt(d)) if scale is None else scale
    o = np.zeros(batch + (hq, n, dv))
    lse = np.full(batch + (hq, n), -np.inf)
    for bidx in np.ndindex(*batch):
        for h in range(hq):
            for i in range(n):
                qi = q[bidx + (h, i)]
                if rope is not None:
                    P = rope.get("position_offset", 0)
                    kw = {x: rope[x] for x in ("base", "layout", "rotary_dim")
                          if x in rope}
                    qi = ref.rope_matrix(P + (m - n) + i, d, **kw) @ qi
                logits, vals = [], []
                for j in range(m):
                    if causal and not j <= i + (m - n):
                        continue
                    kj = k[bidx + (h // g, j)]
                    if rope is not None:
                        kj = ref.rope_matrix(P + j, d, **kw) @ kj
                    lij = s * float(qi @ kj)
                    if bias is not None:
                        lij += (bias[i - j + m - 1] if bias.ndim == 1
                                else bias[h, i - j + m - 1])
                    logits.append(lij)
                    vals.append(v[bidx + (h // g, j)])
                if not logits or max(logits) == -np.inf:
                    continue  # empty row: o = 0, lse = -inf
                mx = max(logits)
                e = [math.exp(x - mx) for x in logits]
                z = sum(e)
                o[bidx + (h, i)] = sum(ej * vj for ej, vj in zip(e, vals)) / z
                lse[bidx + (h, i)] = mx + math.log(z)
    return o, lse


def naive_general(q, k, v, w, support, scale=None, causal=False):
    """Element-by-element general form: l_ij = s sum_t q_{i,a_t} W[.., t] k_{j,b_t}."""
    batch = q.shape[:-3]
    hq, n, d = q.shape[-3:]
    hk, m, _ = k.shape[-3:]
    g = hq // hk
    s = (1.0 if d == 0 else 1 / math.sqrt(d)) if scale is None else scale
    pairs = list(zip(support[0::2], support[1::2]))
    o = np.zeros(batch + (hq, n, v.shape[-1]))
    lse = np.full(batch + (hq, n), -np.inf)
    for bidx in np.ndindex(*batch):
        for h in range(hq):
            for i in range(n):
                logits, vals = [], []
                for j in range(m):
                    if causal and not j <= i + (m - n):
                        continue
                    row = w[i - j + m - 1] if w.ndim == 2 else w[h, i - j + m - 1]
                    lij = s * sum(q[bidx + (h, i, a)] * row[t] * k[bidx + (h // g, j, b)]
                                  for t, (a, b) in enumerate(pairs))
                    logits.append(lij)
                    vals.append(v[bidx + (h // g, j)])
                if not logits:
                    continue
                mx = max(logits)
                e = [math.exp(x - mx) for x in logits]
                o[bidx + (h, i)] = sum(ej * vj for ej, vj in zip(e, vals)) / sum(e)
                lse[bidx + (h, i)] = mx + math.log(sum(e))
    return o, lse


def finite_difference(f, arrays, h=1e-6):
    """Central differences of the scalar f(*arrays) w.r.t. every entry."""
    grads = []
    for x in arrays:
        gx = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            old = x[idx]
            x[idx] = old + h
            fp = f(*arrays)
            x[idx] = old - h
            fm = f(*arrays)
            x[idx] = old
            gx[idx] = (fp - fm) / (2 * h)
        grads.append(gx)
    return grads


def assert_close(a, b, tol=1e-7):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.isfinite(a) == np.isfinite(b))
    fin = np.isfinite(a)
    assert np.array_equal(a[~fin], b[~fin])
    if fin.any():
        err = np.max(np.abs(a[fin] - b[fin]))
        assert err <= tol * max(1.0, np.max(np.abs(b[fin]))), err


def make_problem(r, batch, hq, hk, n, m, d, dv, bias_kind=None):
    q = r.standard_normal(batch + (hq, n, d))
    k = r.standard_normal(batch + (hk, m, d))
    v = r.standard_normal(batch + (hk, m, dv))
    do = r.standard_normal(batch + (hq, n, dv))
    L = max(n + m - 1, 0)
    bias = {None: None,
            "shared": 0.5 * r.standard_normal((L,)),
            "per_head": 0.5 * r.standard_normal((hq, L))}[bias_kind]
    return q, k, v, do, bias


# Attention problems: (batch, Hq, Hk, N, M, D, Dv, causal, rope, bias, scale)
ATTN_CASES = [
    ((2,), 4, 2, 3, 5, 6, 3, True, {}, "shared", None),
    ((), 2, 1, 5, 3, 8, 2, True,
     {"layout": "interleaved", "rotary_dim": 4, "position_offset": 7,
      "base": 100.0}, "per_head", None),
    ((2, 1), 3, 3, 4, 4, 4, 5, False, None, None, 0.3),
    ((1,), 4, 1, 2, 6, 6, 2, True,
     {"rotary_dim": 2, "base": 10.0, "position_offset": -3}, "per_head", None),
    ((), 2, 2, 5, 2, 4, 3, False, {"layout": "interleaved", "base": 10.0},
     "shared", 0.8),
    ((3,), 2, 1, 4, 4, 6, 2, True, {"layout": "half", "base": 10.0}, None, None),
]


def case_id(c):
    b, hq, hk, n, m, d, dv, causal, rope, bias, scale = c
    return (f"B{b}-H{hq}/{hk}-N{n}M{m}-D{d}Dv{dv}-{'causal' if causal else 'full'}"
            f"-rope{rope}-bias{bias}")


# ----------------------------------------------------------------------------
# Rotary
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["half", "interleaved"])
@pytest.mark.parametrize("rotary_dim", [None, 4, 0])
def test_rotary_inverse_undoes_rotary(layout, rotary_dim):
    r = rng(1)
    x = r.standard_normal((2, 3, 7, 8))
    pos = r.integers(-70000, 70000, size=7)
    kw = dict(base=500.0, layout=layout, rotary_dim=rotary_dim,
              position_offset=11, positions=pos)
    y = ref.rotary(x, **kw)
    assert_close(ref.rotary(y, inverse=True, **kw), x, 1e-12)
    assert_close(ref.rotary(ref.rotary(x, inverse=True, **kw), **kw), x, 1e-12)
    # Rotations preserve the norm of every row.
    assert_close(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), 1e-12)
    if rotary_dim == 0:
        assert np.array_equal(y, x)
    if rotary_dim == 4:  # dims >= r pass through unchanged
        assert np.array_equal(y[..., 4:], x[..., 4:])


def test_rotary_hand_values():
    # D = 4, r = 4, base = 10000: theta = (1, 1/100). Row n = 1 is at p = 1.
    x = np.zeros((2, 4))
    x[1, 0] = 1.0
    c, s = math.cos(1.0), math.sin(1.0)
    # half: pairs (0, 2), (1, 3); e_0 -> cos e_0 + sin e_2
    assert_close(ref.rotary(x, layout="half")[1], [c, 0, s, 0], 1e-15)
    # interleaved: pairs (0, 1), (2, 3); e_0 -> cos e_0 + sin e_1
    assert_close(ref.rotary(x, layout="interleaved")[1], [c, s, 0, 0], 1e-15)
    # second element of a pair: e_2 (half) -> -sin e_0 + cos e_2
    x2 = np.zeros((2, 4))
    x2[1, 2] = 1.0
    assert_close(ref.rotary(x2)[1], [-s, 0, c, 0], 1e-15)
    # second frequency, half layout: pair (1, 3), theta_1 = 10000^(-2/4)
    x3 = np.zeros((2, 4))
    x3[1, 1] = 1.0
    assert_close(ref.rotary(x3, position_offset=99)[1],
                 [0, math.cos(1.0), 0, math.sin(1.0)], 1e-15)  # p = 100
    # row 0 (p = 0) is unchanged; inverse rotates the other way
    assert np.array_equal(ref.rotary(x)[0], x[0])
    assert_close(ref.rotary(x, inverse=True)[1], [c, 0, -s, 0], 1e-15)


def test_rotary_positions_operand():
    r = rng(2)
    x = r.standard_normal((3, 5, 6))
    # Default positions are 0..N-1 (+ offset).
    assert_close(ref.rotary(x, positions=np.arange(5), position_offset=4),
                 ref.rotary(x, position_offset=4), 0)
    # Row n only depends on its own position.
    pos = np.array([9, -2, 0, 9, 40000])
    y = ref.rotary(x, positions=pos, layout="interleaved", rotary_dim=4)
    for nrow, p in enumerate(pos):
        single = ref.rotary(x[:, nrow:nrow + 1], position_offset=p,
                            layout="interleaved", rotary_dim=4)
        assert_close(y[:, nrow], single[:, 0], 1e-15)


@pytest.mark.parametrize("layout", ["half", "interleaved"])
@pytest.mark.parametrize("rotary_dim", [None, 6])
def test_rope_matrix_and_relative_identity(layout, rotary_dim):
    r = rng(3)
    d = 10
    kw = dict(base=10000.0, layout=layout, rotary_dim=rotary_dim)
    x = r.standard_normal((1, d))
    for p in (0, 1, -5, 123, 65535):
        R = ref.rope_matrix(p, d, **kw)
        assert_close(R.T @ R, np.eye(d), 1e-13)                 # orthogonal
        assert_close(ref.rotary(x, position_offset=p, **kw)[0], R @ x[0], 1e-12)
    # <R(p1) q, R(p2) k> = q^T R(p2 - p1) k, for any p1, p2.
    q, k = r.standard_normal(d), r.standard_normal(d)
    for p1, p2 in [(0, 0), (3, 10), (10, 3), (-4, 1000), (60000, 65000)]:
        lhs = ref.rotary(q[None], position_offset=p1, **kw)[0] @ \
            ref.rotary(k[None], position_offset=p2, **kw)[0]
        rhs = q @ ref.rope_matrix(p2 - p1, d, **kw) @ k
        assert abs(lhs - rhs) < 1e-10
        # ... and it is not q^T R(p1 - p2) k (the sign matters) unless p1 = p2
        wrong = q @ ref.rope_matrix(p1 - p2, d, **kw) @ k
        assert p1 == p2 or abs(lhs - wrong) > 1e-6


def test_rotary_angle_needs_f64():
    # Spec.md: for p up to 64k an angle p*theta formed in f32 is off by ~1e-3 rad.
    r = 128
    theta = 10000.0 ** (-2.0 * np.arange(r // 2) / r)
    p = np.arange(65536 - 256, 65536, dtype=np.float64)
    exact = p[:, None] * theta[None]
    f32 = (p.astype(np.float32)[:, None] * theta.astype(np.float32)[None])
    err = np.max(np.abs(f32.astype(np.float64) - exact))
    assert 1e-3 < err < 1e-2


# ----------------------------------------------------------------------------
# Attention forward
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", ATTN_CASES, ids=case_id)
def test_attention_matches_naive(case):
    batch, hq, hk, n, m, d, dv, causal, rope, bias_kind, scale = case
    q, k, v, _, bias = make_problem(rng(10), batch, hq, hk, n, m, d, dv, bias_kind)
    o, lse = ref.attention(q, k, v, bias, scale, causal, rope)
    o2, lse2 = naive_attention(q, k, v, bias, scale, causal, rope)
    assert_close(o, o2, 1e-12)
    assert_close(lse, lse2, 1e-12)


def test_attention_default_scale_and_gqa_mapping():
    r = rng(11)
    q = r.standard_normal((4, 3, 9))
    k = r.standard_normal((2, 5, 9))
    v = r.standard_normal((2, 5, 2))
    o, _ = ref.attention(q, k, v)
    o2, _ = ref.attention(q, k, v, scale=1 / 3)
    assert_close(o, o2, 0)
    # Query heads 0, 1 read kv head 0; heads 2, 3 read kv head 1.
    for h in range(4):
        oh, _ = ref.attention(q[h:h + 1], k[h // 2:h // 2 + 1], v[h // 2:h // 2 + 1])
        assert_close(o[h], oh[0], 1e-15)
    # D = 0: scale 1, logits are the bias alone.
    z = np.zeros((1, 2, 0))
    b = np.array([0.0, 1.0, 2.0])
    vv = r.standard_normal((1, 2, 3))
    o3, lse3 = ref.attention(z, z, vv, bias=b)
    w = np.exp(np.array([[1.0, 0.0], [2.0, 1.0]]))  # bias[i - j + 1]
    assert_close(o3[0], (w / w.sum(1, keepdims=True)) @ vv[0], 1e-14)
    assert_close(lse3[0], np.log(w.sum(1)), 1e-14)


def test_attention_rope_decode_alignment():
    # Decode step: the N queries sit at the end of the key sequence, so the
    # last N rows of a full self-attention equal attention of those queries.
    r = rng(12)
    m, n, d = 7, 2, 8
    q = r.standard_normal((2, m, d))
    k = r.standard_normal((2, m, d))
    v = r.standard_normal((2, m, 3))
    rope = {"base": 50.0, "position_offset": 5}
    b = r.standard_normal(2 * m - 1)
    full, lse_full = ref.attention(q, k, v, bias=b, causal=True, rope=rope)
    # offsets i - j in [-(M-1), N-1] of the short problem: slice of b
    b_short = b[m - n:]
    dec, lse_dec = ref.attention(q[:, m - n:], k, v, bias=b_short, causal=True,
                                 rope=rope)
    assert_close(dec, full[:, m - n:], 1e-13)
    assert_close(lse_dec, lse_full[:, m - n:], 1e-13)


# ----------------------------------------------------------------------------
# Empty rows, M = 0, -inf bias
# ----------------------------------------------------------------------------

def test_causal_empty_rows():
    r = rng(20)
    q, k, v, do, bias = make_problem(r, (2,), 2, 1, 6, 2, 4, 3, "shared")
    with np.errstate(all="raise"):
        o, lse = ref.attention(q, k, v, bias, causal=True, rope={})
        dq, dk, dv, db = ref.attention_grad(q, k, v, do, bias, causal=True, rope={})
    # Rows i < N - M = 4 see no key.
    assert np.all(o[..., :4, :] == 0) and np.all(lse[..., :4] == -np.inf)
    assert np.all(np.isfinite(lse[..., 4:]))
    assert np.all(dq[..., :4, :] == 0)
    for g in (dq, dk, dv, db):
        assert np.all(np.isfinite(g))
    # Offsets i - j = delta < N - M = 4 ... only delta in [4, 5] are visible
    # from row i >= 4 (j <= i - 4); all masked offsets get 0.
    visible = {i - j for i in range(6) for j in range(2) if j <= i - 4}
    for idx in range(len(db)):
        if idx - (2 - 1) not in visible:
            assert db[idx] == 0


def test_zero_keys():
    r = rng(21)
    q = r.standard_normal((2, 3, 4, 6))
    k = np.zeros((2, 3, 0, 6))
    v = np.zeros((2, 3, 0, 2))
    do = r.standard_normal((2, 3, 4, 2))
    bias = r.standard_normal((3, 3))  # [Hq, N + M - 1] = [3, 3]
    for causal in (False, True):
        with np.errstate(all="raise"):
            o, lse = ref.attention(q, k, v, bias, causal=causal, rope={})
            dq, dk, dv, db = ref.attention_grad(q, k, v, do, bias, causal=causal,
                                                rope={})
        assert o.shape == (2, 3, 4, 2) and np.all(o == 0)
        assert lse.shape == (2, 3, 4) and np.all(lse == -np.inf)
        assert np.all(dq == 0) and dk.shape == k.shape and dv.shape == v.shape
        assert db.shape == bias.shape and np.all(db == 0)
    w = r.standard_normal((4 - 1, 2))
    o, lse = ref.general_attention(q, k, v, w, [0, 1, 2, 2])
    assert np.all(o == 0) and np.all(lse == -np.inf)
    dq, dk, dv, dw = ref.general_attention_grad(q, k, v, do, w, [0, 1, 2, 2])
    assert np.all(dq == 0) and np.all(dw == 0) and dw.shape == w.shape


def test_zero_queries():
    r = rng(22)
    q = np.zeros((2, 0, 4))
    k = r.standard_normal((1, 3, 4))
    v = r.standard_normal((1, 3, 2))
    bias = r.standard_normal(2)  # N + M - 1 = 2
    o, lse = ref.attention(q, k, v, bias, causal=True, rope={})
    assert o.shape == (2, 0, 2) and lse.shape == (2, 0)
    dq, dk, dv, db = ref.attention_grad(q, k, v, np.zeros((2, 0, 2)), bias)
    assert np.all(dk == 0) and np.all(dv == 0) and np.all(db == 0)


def test_minus_inf_bias_masks():
    # A -inf bias entry removes the key exactly like a mask; a row whose
    # visible logits are all -inf is empty (o = 0, lse = -inf).
    r = rng(23)
    n, m = 3, 4
    q, k, v, do, _ = make_problem(r, (), 2, 2, n, m, 4, 2)
    bias = r.standard_normal(n + m - 1)
    masked = bias.copy()
    masked[:m - 1] = -np.inf  # offsets i - j < 0: acts as a (top-left) causal mask
    with np.errstate(invalid="raise"):
        o, lse = ref.attention(q, k, v, masked)
        g = ref.attention_grad(q, k, v, do, masked)
    o2, lse2 = naive_attention(q, k, v, masked)
    assert_close(o, o2, 1e-13)
    assert_close(lse, lse2, 1e-13)
    assert all(np.all(np.isfinite(x)) for x in g)
    assert np.all(g[3][:m - 1] == 0)
    # All -inf: every row empty.
    o3, lse3 = ref.attention(q, k, v, np.full(n + m - 1, -np.inf))
    assert np.all(o3 == 0) and np.all(lse3 == -np.inf)


# ----------------------------------------------------------------------------
# Gradients vs finite differences
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", ATTN_CASES, ids=case_id)
def test_attention_grad_finite_differences(case):
    batch, hq, hk, n, m, d, dv, causal, rope, bias_kind, scale = case
    q, k, v, do, bias = make_problem(rng(30), batch, hq, hk, n, m, d, dv, bias_kind)
    grads = ref.attention_grad(q, k, v, do, bias, scale, causal, rope)

    def f(q_, k_, v_, *b_):
        o, _ = ref.attention(q_, k_, v_, b_[0] if b_ else None, scale, causal, rope)
        return float(np.sum(do * o))

    arrays = [q, k, v] + ([bias] if bias is not None else [])
    fd = finite_difference(f, arrays)
    for g, gfd in zip(grads, fd):
        assert_close(g, gfd, 1e-7)
    assert (grads[3] is None) == (bias is None)


# General-form problems: (batch, Hq, Hk, N, M, D, Dv, causal, support, per_head)
GEN_CASES = [
    ((2,), 4, 2, 3, 5, 4, 3, True, [0, 0, 1, 3, 3, 1, 2, 2], False),
    ((), 2, 1, 5, 3, 3, 2, True, [0, 1, 0, 2, 2, 0], True),
    ((1, 2), 2, 2, 4, 4, 2, 2, False, [1, 1, 0, 1], True),
    ((), 2, 1, 3, 3, 3, 2, False, [], False),
]


@pytest.mark.parametrize("case", GEN_CASES)
def test_general_attention_matches_naive(case):
    batch, hq, hk, n, m, d, dv, causal, support, per_head = case
    r = rng(40)
    q, k, v, _, _ = make_problem(r, batch, hq, hk, n, m, d, dv)
    S = len(support) // 2
    w = r.standard_normal(((hq,) if per_head else ()) + (n + m - 1, S))
    o, lse = ref.general_attention(q, k, v, w, support, causal=causal)
    o2, lse2 = naive_general(q, k, v, w, support, causal=causal)
    assert_close(o, o2, 1e-12)
    assert_close(lse, lse2, 1e-12)


@pytest.mark.parametrize("case", GEN_CASES)
def test_general_attention_grad_finite_differences(case):
    batch, hq, hk, n, m, d, dv, causal, support, per_head = case
    r = rng(41)
    q, k, v, do, _ = make_problem(r, batch, hq, hk, n, m, d, dv)
    S = len(support) // 2
    w = r.standard_normal(((hq,) if per_head else ()) + (n + m - 1, S))
    grads = ref.general_attention_grad(q, k, v, do, w, support, 0.7, causal)

    def f(q_, k_, v_, w_):
        o, _ = ref.general_attention(q_, k_, v_, w_, support, 0.7, causal)
        return float(np.sum(do * o))

    fd = finite_difference(f, [q, k, v, w])
    for g, gfd in zip(grads, fd):
        assert_close(g, gfd, 1e-7)
    if causal:  # masked offsets delta < -(M - N) get no gradient
        lo = -(m - n)
        for delta in range(-(m - 1), n):
            if delta < lo:
                assert np.all(grads[3][..., delta + m - 1, :] == 0)


# ----------------------------------------------------------------------------
# General form with rotation weights == attention with fused RoPE
# ----------------------------------------------------------------------------

def rope_as_general(n, m, d, rope, heads=None):
    """(weights, support) with W_delta = R(-(delta + M - N)), delta = i - j.

    Query i sits at P + (M - N) + i, key j at P + j, so
    <R(p_i) q, R(p_j) k> = q^T R(p_j - p_i) k and p_j - p_i = -(delta + M - N)."""
    kw = {x: rope[x] for x in ("base", "layout", "rotary_dim") if x in rope}
    mats = [ref.rope_matrix(-(delta + m - n), d, **kw)
            for delta in range(-(m - 1), n)]
    support = [(a, b) for a, b in itertools.product(range(d), repeat=2)
               if any(abs(R[a, b]) > 0 for R in mats)]
    w = np.array([[R[a, b] for a, b in support] for R in mats])
    if heads is not None:
        w = np.broadcast_to(w, (heads,) + w.shape).copy()
    return w, [x for pair in support for x in pair]


@pytest.mark.parametrize("n,m", [(3, 5), (5, 3), (4, 4)])
@pytest.mark.parametrize("rope", [
    {},
    {"layout": "interleaved", "base": 10.0, "position_offset": 13},
    {"layout": "half", "rotary_dim": 4, "base": 30.0, "position_offset": -2},
    {"layout": "interleaved", "rotary_dim": 2},
])
@pytest.mark.parametrize("causal", [False, True])
def test_general_with_rotations_equals_rope_attention(n, m, rope, causal):
    r = rng(50)
    d, dv = 6, 3
    q, k, v, do, _ = make_problem(r, (2,), 4, 2, n, m, d, dv)
    for heads in (None, 4):
        w, support = rope_as_general(n, m, d, rope, heads)
        o1, l1 = ref.attention(q, k, v, causal=causal, rope=rope)
        o2, l2 = ref.general_attention(q, k, v, w, support, causal=causal)
        assert_close(o2, o1, 1e-12)
        assert_close(l2, l1, 1e-12)
        g1 = ref.attention_grad(q, k, v, do, causal=causal, rope=rope)
        g2 = ref.general_attention_grad(q, k, v, do, w, support, causal=causal)
        for a, b in zip(g2[:3], g1[:3]):
            assert_close(a, b, 1e-12)
    # The opposite sign, W_delta = R(+(delta + M - N)), is a different op
    # (unless nothing rotates).
    kw = {x: rope[x] for x in ("base", "layout", "rotary_dim") if x in rope}
    if rope.get("rotary_dim", d) > 0:
        mats = [ref.rope_matrix(+(delta + m - n), d, **kw)
                for delta in range(-(m - 1), n)]
        _, support = rope_as_general(n, m, d, rope)
        pairs = list(zip(support[0::2], support[1::2]))
        wrong = np.array([[R[a, b] for a, b in pairs] for R in mats])
        o3, _ = ref.general_attention(q, k, v, wrong, support, causal=causal)
        o1, _ = ref.attention(q, k, v, causal=causal, rope=rope)
        assert np.max(np.abs(o3 - o1)) > 1e-6


def test_general_with_identity_weights_is_plain_attention():
    # W_delta = identity for every offset (support = the diagonal).
    r = rng(51)
    q, k, v, _, _ = make_problem(r, (), 2, 1, 3, 4, 3, 2)
    support = [x for a in range(3) for x in (a, a)]
    w = np.ones((3 + 4 - 1, 3))
    o1, l1 = ref.attention(q, k, v, causal=True)
    o2, l2 = ref.general_attention(q, k, v, w, support, causal=True)
    assert_close(o2, o1, 1e-13)
    assert_close(l2, l1, 1e-13)


# --- fft and toeplitz_matmul ---


@pytest.mark.parametrize("n", [1, 2, 3, 8, 12, 17])
def test_fft_matches_numpy_and_inverts(n):
    r = rng(n)
    x = r.standard_normal((2, n, 2))
    z = x[..., 0] + 1j * x[..., 1]
    y = ref.fft(x)
    assert_close(y[..., 0] + 1j * y[..., 1], np.fft.fft(z, axis=-1), 1e-12)
    assert_close(ref.fft(y, inverse=True), x, 1e-12)


def test_toeplitz_matmul_hand_values():
    # N = 2, M = 3: symbol indices delta + 2 for delta = i - j in [-2, 1].
    s = np.array([1.0, 2.0, 3.0, 4.0])
    t = ref.toeplitz_matrix(s, 2, 3)
    assert_close(t, np.array([[3.0, 2.0, 1.0], [4.0, 3.0, 2.0]]), 0)
    # causal, bottom-right aligned: keep j <= i + 1
    tc = ref.toeplitz_matrix(s, 2, 3, causal=True)
    assert_close(tc, np.array([[3.0, 2.0, 0.0], [4.0, 3.0, 2.0]]), 0)
    x = np.arange(6.0).reshape(3, 2)
    assert_close(ref.toeplitz_matmul(s, x, 2, 3), t @ x, 0)
    y = np.arange(4.0).reshape(2, 2)
    assert_close(ref.toeplitz_matmul(s, y, 2, 3, transposed=True, causal=True),
                 tc.T @ y, 0)


# ----------------------------------------------------------------------------
# xPos scaling (Spec.md 3.1)
# ----------------------------------------------------------------------------

XPOS_ROPES = [
    {"xpos_scale_base": 8.0},
    {"xpos_scale_base": 5.0, "xpos_gamma": 0.7, "layout": "interleaved",
     "base": 30.0, "position_offset": 11},
    {"xpos_scale_base": 3.0, "rotary_dim": 4, "base": 20.0},
    {"xpos_scale_base": 6.0, "rotary_dim": 2, "layout": "interleaved",
     "position_offset": -4},
]


def test_xpos_zeta_and_hand_values():
    # zeta_a = (2a/r + gamma)/(1 + gamma): r = 4, gamma = 0.4 -> 0.4/1.4, 0.9/1.4
    assert_close(ref.xpos_zeta(4, None), np.array([0.4 / 1.4, 0.9 / 1.4]), 0)
    # One pair (r = D = 2), query side at position p = B: x scaled by zeta_0
    # after the rotation by p*theta_0 = p (theta_0 = 1).
    B = 3.0
    x = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 2.0]])
    yq = ref.rotary(x, xpos_scale_base=B, side="query")
    yk = ref.rotary(x, xpos_scale_base=B, side="key")
    c, s = math.cos(3.0), math.sin(3.0)
    z = 0.4 / 1.4
    assert_close(yq[3], z * np.array([c - 2 * s, s + 2 * c]), 1e-15)
    assert_close(yk[3], np.array([c - 2 * s, s + 2 * c]) / z, 1e-15)


@pytest.mark.parametrize("rope", XPOS_ROPES)
def test_xpos_rotary_inverse_and_transpose(rope):
    r = rng(60)
    x, y = r.standard_normal((2, 7, 6)), r.standard_normal((2, 7, 6))
    for side in ("query", "key"):
        kw = dict(rope, side=side)
        a = ref.rotary(x, **kw)
        assert_close(ref.rotary(a, inverse=True, **kw), x, 1e-13)
        # <A x, y> = <x, A^T y>, row by row
        lhs = np.sum(a * y, axis=-1)
        rhs = np.sum(x * ref.rotary(y, transpose=True, **kw), axis=-1)
        assert_close(lhs, rhs, 1e-13)
        # transpose != inverse once something is scaled
        assert np.max(np.abs(ref.rotary(y, transpose=True, **kw) -
                             ref.rotary(y, inverse=True, **kw))) > 1e-3


@pytest.mark.parametrize("n,m", [(3, 5), (5, 3), (4, 4)])
@pytest.mark.parametrize("rope", XPOS_ROPES)
@pytest.mark.parametrize("causal", [False, True])
def test_xpos_attention_equals_general_form(n, m, rope, causal):
    # Fused xPos (side factors at true positions) vs. the per-offset table
    # zeta^(p/B) R(-p), built entry by entry: checks the sign/side derivation.
    r = rng(61)
    d, dv = 6, 3
    q, k, v, do, _ = make_problem(r, (2,), 4, 2, n, m, d, dv)
    kw = {x: rope[x] for x in ("base", "layout", "rotary_dim", "xpos_gamma")
          if x in rope}
    w, support = ref.xpos_general_weights(
        n, m, d, xpos_scale_base=rope["xpos_scale_base"], **kw)
    o1, l1 = ref.attention(q, k, v, causal=causal, rope=rope)
    o2, l2 = ref.general_attention(q, k, v, w, support, causal=causal)
    assert_close(o2, o1, 1e-12)
    assert_close(l2, l1, 1e-12)
    g1 = ref.attention_grad(q, k, v, do, causal=causal, rope=rope)
    g2 = ref.general_attention_grad(q, k, v, do, w, support, causal=causal)
    for a, b in zip(g2[:3], g1[:3]):
        assert_close(a, b, 1e-12)
    # Swapping the sides (keys zeta^(+p/B)) is a different operator.
    wrong = dict(rope, xpos_gamma=kw.get("xpos_gamma", 0.4),
                 xpos_scale_base=-rope["xpos_scale_base"])
    o3, _ = ref.attention(q, k, v, causal=causal, rope=wrong)
    assert np.max(np.abs(o3 - o1)) > 1e-6


@pytest.mark.parametrize("rope", XPOS_ROPES)
def test_xpos_position_offset_does_not_change_logits(rope):
    r = rng(62)
    q, k, v, _, _ = make_problem(r, (), 2, 1, 5, 7, 6, 3)
    o1, l1 = ref.attention(q, k, v, rope=rope)
    o2, l2 = ref.attention(q, k, v, rope=dict(rope, position_offset=1000))
    assert_close(o2, o1, 1e-12)
    assert_close(l2, l1, 1e-12)


@pytest.mark.parametrize("rope", XPOS_ROPES)
@pytest.mark.parametrize("causal", [False, True])
def test_xpos_attention_grad_finite_differences(rope, causal):
    q, k, v, do, _ = make_problem(rng(63), (), 4, 2, 5, 6, 6, 3)
    grads = ref.attention_grad(q, k, v, do, causal=causal, rope=rope)

    def f(q_, k_, v_):
        o, _ = ref.attention(q_, k_, v_, causal=causal, rope=rope)
        return float(np.sum(do * o))

    fd = finite_difference(f, [q, k, v])
    for g, gfd in zip(grads, fd):
        assert_close(g, gfd, 1e-7)
