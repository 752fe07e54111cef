"""A pure-JAX RoPE attention, written from docs/Spec.md (sections 1, 3, 6),
independent of ropeattn: the oracle of the JAX tests, differentiated by
jax.grad (never by ropeattn's backward).

It materializes the N x M logits and uses jnp only, so it runs in any
precision: float64 (with jax_enable_x64) is the reference; the same code in
float32 measures what a straightforward f32 implementation achieves, which
sets the f32 tolerances.
"""

import jax.numpy as jnp
import numpy as np


def rope_rotate(x, positions, base=10000.0, layout="half", rotary_dim=None):
    """R(p_n) x[..., n, :] for the positions `positions` (numpy ints).

    Angles p * theta_a are formed in float64 (numpy) and only cos/sin are
    rounded to x's dtype, as docs/Spec.md section 3 requires."""
    x = jnp.asarray(x)
    d = x.shape[-1]
    r = d if rotary_dim is None else rotary_dim
    if r == 0:
        return x
    a = np.arange(r // 2)
    theta = np.power(float(base), -2.0 * a / r)
    angle = np.asarray(positions, dtype=np.float64)[:, None] * theta[None, :]
    cos = jnp.asarray(np.cos(angle), dtype=x.dtype)
    sin = jnp.asarray(np.sin(angle), dtype=x.dtype)
    if layout == "half":
        u, w = a, a + r // 2
    elif layout == "interleaved":
        u, w = 2 * a, 2 * a + 1
    else:
        raise ValueError(layout)
    xu, xw = x[..., u], x[..., w]
    y = x.at[..., u].set(xu * cos - xw * sin)
    return y.at[..., w].set(xu * sin + xw * cos)


def probabilities(q, k, bias=None, causal=False, scale=None, rope=None):
    """(P [B.., Hq, N, M], q~, k~ expanded to the query heads): the softmax
    weights of docs/Spec.md section 1 (0 for masked keys and empty rows)."""
    q, k = jnp.asarray(q), jnp.asarray(k)
    hq, n, d = q.shape[-3:]
    hk, m = k.shape[-3], k.shape[-2]
    g = hq // hk
    s = (1.0 / np.sqrt(d) if d else 1.0) if scale is None else scale
    if rope is not None:
        offset = rope.position_offset
        q = rope_rotate(q, offset + (m - n) + np.arange(n), rope.base,
                        rope.layout, rope.rotary_dim)
        k = rope_rotate(k, offset + np.arange(m), rope.base, rope.layout,
                        rope.rotary_dim)
    # Query head h reads kv head h // g.
    k = jnp.repeat(k, g, axis=-3)
    logits = jnp.asarray(s, q.dtype) * jnp.einsum("...id,...jd->...ij", q, k)
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    if bias is not None:
        table = jnp.asarray(bias)[..., i - j + m - 1]  # [N, M] or [Hq, N, M]
        logits = logits + table
    visible = (j <= i + (m - n)) if causal else np.ones((n, m), bool)
    logits = jnp.where(visible, logits, -jnp.inf)
    row_max = jnp.max(logits, axis=-1, keepdims=True, initial=-jnp.inf)
    row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    weights = jnp.where(visible, jnp.exp(logits - row_max), 0.0)
    total = jnp.sum(weights, axis=-1, keepdims=True)
    return weights / jnp.where(total > 0, total, 1.0), q, k


def attention(q, k, v, bias=None, causal=False, scale=None, rope=None):
    """o = softmax(s * <q~_i, k~_j> + bias[i - j + M - 1], masked) v.

    q [B.., Hq, N, D], k [B.., Hk, M, D], v [B.., Hk, M, Dv]; rope: None or an
    object with base, layout, rotary_dim, position_offset. Empty rows give 0.
    """
    p, _, _ = probabilities(q, k, bias, causal, scale, rope)
    v = jnp.asarray(v)
    g = p.shape[-3] // v.shape[-3]
    return jnp.einsum("...ij,...jc->...ic", p, jnp.repeat(v, g, axis=-3))
