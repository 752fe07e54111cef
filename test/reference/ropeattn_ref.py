"""Independent float64 numpy reference for the ropeattn dialect.

Written from docs/Spec.md only (not from any C++ in this repository). Every
function computes the exact formula of the spec in float64 and materializes
the N x M logit matrix; it is meant to be simple to audit, not fast.

Conventions (docs/Spec.md, "Conventions"):
  * q: [B.., Hq, N, D], k: [B.., Hk, M, D], v: [B.., Hk, M, Dv]; B.. are zero
    or more batch dimensions (must agree), Hq = G * Hk and query head h reads
    key/value head h // G.
  * Relative offset delta = i - j in [-(M-1), N-1] is stored at index
    delta + M - 1 of a bias / weights table of length L = N + M - 1.
  * Causal keeps j <= i + (M - N) (bottom-right aligned).
  * A row with no visible key (or only -inf logits) gives output 0 and
    logsumexp -inf; it contributes 0 to every gradient.

Public functions:
  rotary, attention, attention_grad, general_attention, general_attention_grad
"""

import math

import numpy as np

__all__ = [
    "rotary",
    "rope_matrix",
    "xpos_zeta",
    "xpos_general_weights",
    "attention",
    "attention_grad",
    "general_attention",
    "general_attention_grad",
    "fft",
    "toeplitz_matmul",
]

_ROPE_DEFAULTS = {"base": 10000.0, "layout": "half", "rotary_dim": None,
                  "position_offset": 0, "xpos_scale_base": None,
                  "xpos_gamma": None}


# ----------------------------------------------------------------------------
# Rotary position embedding (Spec.md, "#ropeattn.rope" and "ropeattn.rotary")
# ----------------------------------------------------------------------------

def _pairs(r, layout):
    """Index arrays (u, w) of the r/2 rotated pairs, pair a has frequency a."""
    a = np.arange(r // 2)
    if layout == "half":
        return a, a + r // 2
    if layout == "interleaved":
        return 2 * a, 2 * a + 1
    raise ValueError(f"unknown rope layout {layout!r}")


def _check_rotary_dim(rotary_dim, d):
    r = d if rotary_dim is None else int(rotary_dim)
    if r < 0 or r % 2 != 0 or r > d:
        raise ValueError(f"rotary_dim must be even and in [0, D={d}], got {r}")
    return r


def _angles(positions, r, base):
    """phi[n, a] = p_n * theta_a with theta_a = base^(-2a/r), all in float64."""
    theta = float(base) ** (-2.0 * np.arange(r // 2, dtype=np.float64) / r)
    p = np.asarray(positions, dtype=np.int64).astype(np.float64)
    return p[:, None] * theta[None, :]


def _rotate(x, positions, base, layout, rotary_dim, inverse):
    """Rotates x [..., N, D] by +p_n*theta_a (or -p_n*theta_a if inverse)."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    r = _check_rotary_dim(rotary_dim, d)
    y = x.copy()
    if r == 0:
        return y
    u, w = _pairs(r, layout)
    phi = _angles(positions, r, base)               # [N, r/2]
    if inverse:
        phi = -phi
    c, s = np.cos(phi), np.sin(phi)
    xu, xw = x[..., u], x[..., w]
    y[..., u] = xu * c - xw * s
    y[..., w] = xu * s + xw * c
    return y


def xpos_zeta(r, gamma):
    """zeta_a = (2a/r + gamma) / (1 + gamma), a < r/2 (Spec.md 3.1)."""
    g = 0.4 if gamma is None else float(gamma)
    return (2.0 * np.arange(r // 2, dtype=np.float64) / r + g) / (1.0 + g)


def _xpos_factors(positions, r, scale_base, gamma, sign):
    """f[n, a] = zeta_a^(sign * p_n / B), in float64."""
    zeta = xpos_zeta(r, gamma)
    p = np.asarray(positions, dtype=np.int64).astype(np.float64)
    return zeta[None, :] ** (sign * p[:, None] / float(scale_base))


def rotary(x, base=10000.0, layout="half", rotary_dim=None, position_offset=0,
           positions=None, inverse=False, transpose=False, side=None,
           xpos_scale_base=None, xpos_gamma=None):
    """ropeattn.rotary: x [..., N, D]; row n is at position
    position_offset + (positions[n] if positions is given else n).

    With xPos (xpos_scale_base = B), the map of a row at position p is
    A(p) = Z(p) R(p), Z(p) scaling pair a by zeta_a^(+p/B) (side "query") or
    zeta_a^(-p/B) (side "key"); inverse applies A(p)^-1 = Z(p)^-1 R(-p),
    transpose A(p)^T = Z(p) R(-p) (Spec.md 3.1, 5)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError("rotary expects rank >= 2 ([..., N, D])")
    n = x.shape[-2]
    if positions is None:
        pos = np.arange(n, dtype=np.int64)
    else:
        pos = np.asarray(positions, dtype=np.int64)
        if pos.shape != (n,):
            raise ValueError(f"positions must have shape ({n},), got {pos.shape}")
    pos = pos + int(position_offset)
    if inverse and transpose:
        raise ValueError("at most one of inverse and transpose")
    if xpos_scale_base is None:
        if side is not None or xpos_gamma is not None:
            raise ValueError("side / xpos_gamma need xpos_scale_base")
        return _rotate(x, pos, base, layout, rotary_dim, inverse or transpose)
    if side not in ("query", "key"):
        raise ValueError("xPos needs side 'query' or 'key'")
    sign = 1.0 if side == "query" else -1.0
    y = _rotate(x, pos, base, layout, rotary_dim, inverse or transpose)
    if inverse:
        sign = -sign
    return _xpos_scale(y, pos, layout, rotary_dim, xpos_scale_base, xpos_gamma,
                       sign)


def _xpos_scale(y, positions, layout, rotary_dim, scale_base, gamma, sign):
    """Multiplies both dims of pair a of row n of y [..., N, D] by
    zeta_a^(sign * p_n / B); the pass-through dims are left alone.
    (Z(p) commutes with R(p): it is a scalar on each rotated plane.)"""
    y = np.asarray(y, dtype=np.float64)
    d = y.shape[-1]
    r = _check_rotary_dim(rotary_dim, d)
    if r == 0 or scale_base is None:
        return y
    u, w = _pairs(r, layout)
    f = _xpos_factors(positions, r, scale_base, gamma, sign)   # [N, r/2]
    y = y.copy()
    y[..., u] = y[..., u] * f
    y[..., w] = y[..., w] * f
    return y


def rope_matrix(phi_scale, d, base=10000.0, layout="half", rotary_dim=None):
    """The D x D matrix R(p) of the rotation at (real) position p = phi_scale:
    rotary(x)[n] = R(p_n) @ x[n]. Built entry-wise from the spec formula
    (independently of _rotate), used for the relative-position identity."""
    r = _check_rotary_dim(rotary_dim, d)
    R = np.eye(d)
    if r == 0:
        return R
    u, w = _pairs(r, layout)
    theta = float(base) ** (-2.0 * np.arange(r // 2, dtype=np.float64) / r)
    c, s = np.cos(phi_scale * theta), np.sin(phi_scale * theta)
    R[u, u] = c
    R[u, w] = -s
    R[w, u] = s
    R[w, w] = c
    return R


def xpos_general_weights(n, m, d, base=10000.0, layout="half",
                         rotary_dim=None, xpos_scale_base=512.0,
                         xpos_gamma=None):
    """The general form (Spec.md 8) of attention with an xPos rope: support
    and table W [N + M - 1, |S|] with, for p = delta + M - N and pair a,
    (W_delta)_{u u} = (W_delta)_{w w} = rho cos(p theta_a),
    (W_delta)_{u w} = +rho sin(p theta_a), (W_delta)_{w u} = -rho sin(...),
    rho = zeta_a^(p/B), and 1 on the diagonal of the pass-through dims.
    Written from the formula zeta^(p_q/B) zeta^(-p_k/B) R(p_q)^T R(p_k) =
    zeta^(p/B) R(-p), entry by entry (independently of _rotate)."""
    r = _check_rotary_dim(rotary_dim, d)
    u, w = _pairs(r, layout)
    support = [(c, c) for c in range(d)]
    for a in range(r // 2):
        support += [(int(u[a]), int(w[a])), (int(w[a]), int(u[a]))]
    L = _table_len(n, m)
    W = np.zeros((L, len(support)))
    theta = float(base) ** (-2.0 * np.arange(r // 2, dtype=np.float64) / r)
    zeta = xpos_zeta(r, xpos_gamma)
    col = {pair: t for t, pair in enumerate(support)}
    for idx in range(L):
        p = float(idx - (n - 1))             # delta + M - N
        for c in range(r, d):
            W[idx, col[(c, c)]] = 1.0
        for a in range(r // 2):
            rho = zeta[a] ** (p / float(xpos_scale_base))
            phi = p * theta[a]
            W[idx, col[(int(u[a]), int(u[a]))]] = rho * math.cos(phi)
            W[idx, col[(int(w[a]), int(w[a]))]] = rho * math.cos(phi)
            W[idx, col[(int(u[a]), int(w[a]))]] = rho * math.sin(phi)
            W[idx, col[(int(w[a]), int(u[a]))]] = -rho * math.sin(phi)
    flat = [x for pair in support for x in pair]
    return W, flat


def _rope_params(rope):
    params = dict(_ROPE_DEFAULTS)
    if rope is not None:
        unknown = set(rope) - set(_ROPE_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown rope keys {sorted(unknown)}")
        params.update(rope)
    return params


# ----------------------------------------------------------------------------
# Shapes, GQA, offsets, masks
# ----------------------------------------------------------------------------

def _flatten(q, k, v):
    """Checks shapes and folds the batch dims B.. into one leading axis."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    if q.ndim < 3 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError("q, k, v must share one rank >= 3")
    batch = q.shape[:-3]
    if k.shape[:-3] != batch or v.shape[:-3] != batch:
        raise ValueError("batch dimensions of q, k, v must agree")
    hq, n, d = q.shape[-3:]
    hk, m, dk = k.shape[-3:]
    if dk != d or v.shape[-3] != hk or v.shape[-2] != m:
        raise ValueError("inconsistent q/k/v shapes")
    if hk == 0 or hq % hk != 0:
        raise ValueError("Hq must be a multiple of Hk >= 1")
    dv = v.shape[-1]
    bf = int(np.prod(batch, dtype=np.int64))
    dims = dict(batch=batch, bf=bf, hq=hq, hk=hk, g=hq // hk, n=n, m=m, d=d,
                dv=dv)
    return (q.reshape(bf, hq, n, d), k.reshape(bf, hk, m, d),
            v.reshape(bf, hk, m, dv), dims)


def _expand_kv(x, g):
    """[Bf, Hk, ...] -> [Bf, Hk*G, ...]: query head h reads kv head h // G."""
    return np.repeat(x, g, axis=1)


def _reduce_kv(x, g):
    """Adjoint of _expand_kv: sums the G query heads that share a kv head."""
    bf, hq = x.shape[:2]
    return x.reshape(bf, hq // g, g, *x.shape[2:]).sum(axis=2)


def _offset_index(n, m):
    """idx[i, j] = i - j + M - 1, the position of offset i - j in a table."""
    return np.arange(n)[:, None] - np.arange(m)[None, :] + m - 1


def _table_len(n, m):
    return max(n + m - 1, 0)


def _visible(n, m, causal):
    """[N, M] boolean mask of visible keys (bottom-right aligned causal)."""
    if not causal:
        return np.ones((n, m), dtype=bool)
    return np.arange(m)[None, :] <= np.arange(n)[:, None] + (m - n)


def _default_scale(d, scale):
    if scale is not None:
        return float(scale)
    return 1.0 if d == 0 else 1.0 / np.sqrt(d)


def _softmax(logits):
    """Row softmax with the empty-row convention.

    logits: [..., N, M] with -inf at masked entries. Returns P (0 on rows that
    have no finite logit) and lse (-inf on those rows)."""
    mx = logits.max(axis=-1, initial=-np.inf)
    finite_row = np.isfinite(mx)
    shift = np.where(finite_row, mx, 0.0)
    e = np.exp(logits - shift[..., None])           # exp(-inf) = 0
    ssum = e.sum(axis=-1)
    nonempty = ssum > 0
    with np.errstate(divide="ignore"):
        lse = np.where(nonempty, shift + np.log(np.where(nonempty, ssum, 1.0)),
                       -np.inf)
    p = e / np.where(nonempty, ssum, 1.0)[..., None]
    return p, lse


def _bin_offsets(x, n, m):
    """Sums x[..., i, j] into a table t[..., i - j + M - 1] of length N+M-1."""
    lead = x.shape[:-2]
    out = np.zeros(lead + (_table_len(n, m),))
    if n == 0 or m == 0:
        return out
    idx = _offset_index(n, m).ravel()
    flat = x.reshape(-1, n * m)
    o2 = out.reshape(-1, out.shape[-1])
    for row in range(flat.shape[0]):
        o2[row] = np.bincount(idx, weights=flat[row], minlength=out.shape[-1])
    return out


# ----------------------------------------------------------------------------
# ropeattn.attention / ropeattn.attention_grad
# ----------------------------------------------------------------------------

def _rope_positions(n, m, offset):
    """Query positions P + (M - N) + i and key positions P + j."""
    return (offset + (m - n) + np.arange(n, dtype=np.int64),
            offset + np.arange(m, dtype=np.int64))


def _attention_logits(q, k, v, bias, scale, causal, rope):
    """Shared forward: returns (logits, q_rot, k_rot_expanded, v_expanded,
    scale, dims, rope params or None, bias as [1 or Hq, N, M] or None)."""
    qf, kf, vf, dims = _flatten(q, k, v)
    n, m, g = dims["n"], dims["m"], dims["g"]
    s = _default_scale(dims["d"], scale)
    rp = None
    if rope is not None:
        rp = _rope_params(rope)
        pq, pk = _rope_positions(n, m, int(rp["position_offset"]))
        qf = _rotate(qf, pq, rp["base"], rp["layout"], rp["rotary_dim"], False)
        kf = _rotate(kf, pk, rp["base"], rp["layout"], rp["rotary_dim"], False)
        # xPos (Spec.md 3.1): queries times zeta^(+p/B), keys zeta^(-p/B), at
        # the true (uncentred) positions: float64 has the range here.
        qf = _xpos_scale(qf, pq, rp["layout"], rp["rotary_dim"],
                         rp["xpos_scale_base"], rp["xpos_gamma"], 1.0)
        kf = _xpos_scale(kf, pk, rp["layout"], rp["rotary_dim"],
                         rp["xpos_scale_base"], rp["xpos_gamma"], -1.0)
    ke, ve = _expand_kv(kf, g), _expand_kv(vf, g)
    logits = s * np.einsum("bhid,bhjd->bhij", qf, ke)
    beta = None
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        L = _table_len(n, m)
        if bias.shape not in ((L,), (dims["hq"], L)):
            raise ValueError(f"bias must be [{L}] or [{dims['hq']}, {L}]")
        idx = _offset_index(n, m)
        beta = bias[idx][None] if bias.ndim == 1 else bias[:, idx]
        logits = logits + beta[None]
    logits = np.where(_visible(n, m, causal), logits, -np.inf)
    return logits, qf, ke, ve, s, dims, rp, beta


def attention(q, k, v, bias=None, scale=None, causal=False, rope=None):
    """ropeattn.attention. Returns (o [B.., Hq, N, Dv], lse [B.., Hq, N])."""
    logits, _, _, ve, _, dims, _, _ = _attention_logits(
        q, k, v, bias, scale, causal, rope)
    p, lse = _softmax(logits)
    o = np.einsum("bhij,bhjc->bhic", p, ve)
    b, hq, n, dv = dims["batch"], dims["hq"], dims["n"], dims["dv"]
    return o.reshape(b + (hq, n, dv)), lse.reshape(b + (hq, n))


def _softmax_backward(p, ve, do, o=None):
    """dV (expanded over query heads) and dlogits from P, V and dO (Delta from
    the given o, else from O = P V)."""
    if o is None:
        o = np.einsum("bhij,bhjc->bhic", p, ve)
    dv_e = np.einsum("bhij,bhic->bhjc", p, do)            # P^T dO
    dp = np.einsum("bhic,bhjc->bhij", do, ve)             # dO V^T
    delta = np.sum(do * o, axis=-1)                       # Delta_i
    dl = p * (dp - delta[..., None])                      # 0 where P = 0
    return dv_e, dl


def attention_grad(q, k, v, do, bias=None, scale=None, causal=False,
                   rope=None, o=None):
    """ropeattn.attention_grad: gradients of F = sum(do * attention(...)[0]).

    Returns (dq, dk, dv, dbias); dbias is None without a bias. With `o` (the
    op's output operand, e.g. the forward's result rounded to E), Delta_i =
    <dO_i, o_i> is formed from it, as Spec.md 7 allows an implementation to do;
    by default from the exact O."""
    logits, qr, ke, ve, s, dims, rp, _ = _attention_logits(
        q, k, v, bias, scale, causal, rope)
    bf, hq, n, m, g = dims["bf"], dims["hq"], dims["n"], dims["m"], dims["g"]
    do = np.asarray(do, dtype=np.float64).reshape(bf, hq, n, dims["dv"])
    p, _ = _softmax(logits)
    if o is not None:
        o = np.asarray(o, dtype=np.float64).reshape(bf, hq, n, dims["dv"])
    dv_e, dl = _softmax_backward(p, ve, do, o)
    dq = s * np.einsum("bhij,bhjd->bhid", dl, ke)         # dq~ = s dl K~
    dk = _reduce_kv(s * np.einsum("bhij,bhid->bhjd", dl, qr), g)
    dv = _reduce_kv(dv_e, g)
    if rp is not None:                    # (Z R)^T = R^T Z: transposed maps
        pq, pk = _rope_positions(n, m, int(rp["position_offset"]))
        dq = _xpos_scale(dq, pq, rp["layout"], rp["rotary_dim"],
                         rp["xpos_scale_base"], rp["xpos_gamma"], 1.0)
        dk = _xpos_scale(dk, pk, rp["layout"], rp["rotary_dim"],
                         rp["xpos_scale_base"], rp["xpos_gamma"], -1.0)
        dq = _rotate(dq, pq, rp["base"], rp["layout"], rp["rotary_dim"], True)
        dk = _rotate(dk, pk, rp["base"], rp["layout"], rp["rotary_dim"], True)
    dbias = None
    if bias is not None:
        per_offset = _bin_offsets(dl.sum(axis=0), n, m)   # [Hq, L]
        dbias = per_offset if np.ndim(bias) == 2 else per_offset.sum(axis=0)
    b = dims["batch"]
    return (dq.reshape(b + (hq, n, dims["d"])),
            dk.reshape(b + (dims["hk"], m, dims["d"])),
            dv.reshape(b + (dims["hk"], m, dims["dv"])), dbias)


# ----------------------------------------------------------------------------
# ropeattn.general_attention / ropeattn.general_attention_grad
# ----------------------------------------------------------------------------

def _support_pairs(support, d):
    sup = np.asarray(support, dtype=np.int64).ravel()
    if sup.size % 2 != 0:
        raise ValueError("support must list (a, b) pairs")
    a, b = sup[0::2], sup[1::2]
    if np.any(sup < 0) or np.any(sup >= d):
        raise ValueError(f"support indices must be in [0, {d})")
    if len(set(zip(a.tolist(), b.tolist()))) != a.size:
        raise ValueError("support pairs must be distinct")
    return a, b


def _general_logits(q, k, v, weights, support, scale, causal):
    qf, kf, vf, dims = _flatten(q, k, v)
    n, m, g = dims["n"], dims["m"], dims["g"]
    a, b = _support_pairs(support, dims["d"])
    s = _default_scale(dims["d"], scale)
    w = np.asarray(weights, dtype=np.float64)
    L, S = _table_len(n, m), a.size
    if w.shape not in ((L, S), (dims["hq"], L, S)):
        raise ValueError(f"weights must be [{L}, {S}] or [{dims['hq']}, {L}, {S}]")
    idx = _offset_index(n, m)
    wg = w[idx][None] if w.ndim == 2 else w[:, idx]       # [1|Hq, N, M, S]
    wg = np.broadcast_to(wg, (dims["hq"], n, m, S))       # [Hq, N, M, S]
    ke, ve = _expand_kv(kf, g), _expand_kv(vf, g)
    qa, kb = qf[..., a], ke[..., b]                       # [Bf, Hq, N|M, S]
    logits = s * np.einsum("bhit,hijt,bhjt->bhij", qa, wg, kb)
    logits = np.where(_visible(n, m, causal), logits, -np.inf)
    return logits, qa, kb, wg, ve, a, b, s, dims


def general_attention(q, k, v, weights, support, scale=None, causal=False):
    """ropeattn.general_attention. Returns (o, lse) as for attention."""
    logits, _, _, _, ve, _, _, _, dims = _general_logits(
        q, k, v, weights, support, scale, causal)
    p, lse = _softmax(logits)
    o = np.einsum("bhij,bhjc->bhic", p, ve)
    bt, hq, n = dims["batch"], dims["hq"], dims["n"]
    return o.reshape(bt + (hq, n, dims["dv"])), lse.reshape(bt + (hq, n))


def general_attention_grad(q, k, v, do, weights, support, scale=None,
                           causal=False):
    """ropeattn.general_attention_grad. Returns (dq, dk, dv, dweights)."""
    logits, qa, kb, wg, ve, a, b, s, dims = _general_logits(
        q, k, v, weights, support, scale, causal)
    bf, hq, n, m, g, d = (dims[x] for x in ("bf", "hq", "n", "m", "g", "d"))
    do = np.asarray(do, dtype=np.float64).reshape(bf, hq, n, dims["dv"])
    p, _ = _softmax(logits)
    dv_e, dl = _softmax_backward(p, ve, do)
    # dl/d q_{i,a_t} = s sum_j dl_ij W_ijt k_{j,b_t}; likewise for k.
    dqa = s * np.einsum("bhij,hijt,bhjt->bhit", dl, wg, kb)
    dkb = s * np.einsum("bhij,hijt,bhit->bhjt", dl, wg, qa)
    dq = np.zeros((bf, hq, n, d))
    dke = np.zeros((bf, hq, m, d))
    for t in range(a.size):                   # a_t / b_t may repeat across t
        dq[..., a[t]] += dqa[..., t]
        dke[..., b[t]] += dkb[..., t]
    dk = _reduce_kv(dke, g)
    dv = _reduce_kv(dv_e, g)
    # dW[h?, i-j+M-1, t] = s sum dl_ij q_{i,a_t} k_{j,b_t}
    dwg = s * np.einsum("bhij,bhit,bhjt->hijt", dl, qa, kb)   # [Hq, N, M, S]
    if np.ndim(weights) == 2:
        dwg = dwg.sum(axis=0, keepdims=True)
    dw = _bin_offsets(np.moveaxis(dwg, -1, 1), n, m)          # [1|Hq, S, L]
    dw = np.moveaxis(dw, 1, -1)                               # [1|Hq, L, S]
    if np.ndim(weights) == 2:
        dw = dw[0]
    bt = dims["batch"]
    return (dq.reshape(bt + (hq, n, d)), dk.reshape(bt + (dims["hk"], m, d)),
            dv.reshape(bt + (dims["hk"], m, dims["dv"])), dw)


# --- ropeattn.fft and ropeattn.toeplitz_matmul (docs/Spec.md sections 13, 14) ---


def fft(x, inverse=False):
    """ropeattn.fft: x [B.., L, 2] (re, im) -> [B.., L, 2], as a naive DFT.

    y[k] = sum_n x[n] e^{-2 pi i n k / L} (inverse: + sign and 1/L). The
    angle is reduced exactly, (n * k) mod L in integers, before the float64
    cos/sin; O(L^2), written from the spec, not from numpy.fft.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != 2:
        raise ValueError("expected [B.., L, 2]")
    z = x[..., 0] + 1j * x[..., 1]
    n = x.shape[-2]
    if n == 0:
        return np.zeros(x.shape)
    idx = np.arange(n)
    r = np.outer(idx, idx) % n
    sign = 1.0 if inverse else -1.0
    w = np.exp(sign * 2j * np.pi * r / n)
    y = np.einsum("...n,nk->...k", z, w)
    if inverse:
        y = y / n
    return np.stack([y.real, y.imag], axis=-1)


def toeplitz_matrix(symbol, n, m, causal=False):
    """The N x M matrix T[i, j] = symbol[i - j + M - 1] (causal: 0 unless
    j <= i + (M - N)), for a 1-D symbol of length N + M - 1."""
    symbol = np.asarray(symbol, dtype=np.float64)
    t = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            if not causal or j <= i + (m - n):
                t[i, j] = symbol[i - j + m - 1]
    return t


def toeplitz_matmul(symbol, x, n, m, transposed=False, causal=False):
    """ropeattn.toeplitz_matmul: T (N x M, from symbol [L] or [B.., L]) times
    x [B.., M, C] (transposed: T^T times x [B.., N, C]), dense, float64."""
    symbol = np.asarray(symbol, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    batch = x.shape[:-2]
    rows = m if transposed else n
    out = np.zeros(batch + (rows, x.shape[-1]))
    for z in np.ndindex(*batch):
        s = symbol if symbol.ndim == 1 else symbol[z]
        t = toeplitz_matrix(s, n, m, causal)
        out[z] = (t.T if transposed else t) @ x[z]
    return out
