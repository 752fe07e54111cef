"""A tiny training loop: a one-layer causal GQA RoPE attention model whose
attention is ropeattn.jax.attention, trained by gradient descent under
jax.jit(jax.value_and_grad) to imitate a random teacher of the same shape.
The loss must decrease; the same loop with the pure-JAX reference attention
must follow the same trajectory."""

import jax
import jax.numpy as jnp
import numpy as np

import jax_reference as jref
import ropeattn
from ropeattn.jax import attention

BATCH, SEQ, MODEL, HQ, HK, HEAD = 4, 16, 16, 2, 1, 8
ROPE = ropeattn.Rope()
STEPS, LEARNING_RATE = 25, 0.5


def init(rng, scale=0.4):
    def w(*shape):
        return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)
    return {"wq": w(MODEL, HQ * HEAD), "wk": w(MODEL, HK * HEAD),
            "wv": w(MODEL, HK * HEAD), "wo": w(HQ * HEAD, MODEL)}


def model(params, x, attend):
    def heads(w, h):  # [B, S, M] -> [B, h, S, HEAD]
        return (x @ w).reshape(BATCH, SEQ, h, HEAD).transpose(0, 2, 1, 3)
    o = attend(heads(params["wq"], HQ), heads(params["wk"], HK),
               heads(params["wv"], HK))
    return o.transpose(0, 2, 1, 3).reshape(BATCH, SEQ, HQ * HEAD) @ \
        params["wo"]


def ours(q, k, v):
    return attention(q, k, v, causal=True, rope=ROPE)


def reference(q, k, v):
    return jref.attention(q, k, v, causal=True, rope=ROPE)


def train(attend, params, x, y):
    def loss(params):
        return jnp.mean((model(params, x, attend) - y) ** 2)

    step = jax.jit(jax.value_and_grad(loss))
    losses = []
    for _ in range(STEPS):
        value, grads = step(params)
        losses.append(float(value))
        params = jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g,
                                        params, grads)
    return np.array(losses)


def test_training_loss_decreases():
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.standard_normal((BATCH, SEQ, MODEL)), jnp.float32)
    y = model(init(rng, 0.5), x, reference)  # the teacher
    params = init(rng)
    losses = train(ours, params, x, y)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses
    assert np.all(np.diff(losses) < 0), losses  # small steps: monotone
    # The same loop with the reference attention (both in f32): the two
    # trajectories agree to f32 rounding amplified over 25 steps; 1e-4
    # relative is a consistency check (accuracy is checked in test_jax.py).
    reference_losses = train(reference, params, x, y)
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-4)
