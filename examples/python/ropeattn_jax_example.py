#!/usr/bin/env python3
"""ropeattn from Python: numpy kernels (forward, backward, bf16, the low-level
module API), the polynomial method, and a JAX model trained with ropeattn
attention.

Run from a build (after `make build`):
    ROPEATTN_CAPI_LIBRARY=build/lib/libRopeAttnCAPI.so PYTHONPATH=python \
        .venv/bin/python examples/python/ropeattn_jax_example.py
or after `make install PREFIX=...` and `pip install ./python`:
    ROPEATTN_PREFIX=... python examples/python/ropeattn_jax_example.py
"""

import argparse
import time

import numpy as np

import ropeattn


def numpy_demo(n):
    print(f"== numpy: causal GQA RoPE attention, 8 query heads, 2 kv heads, "
          f"n = {n}, d = 64, f32")
    rng = np.random.default_rng(0)
    q = rng.standard_normal((8, n, 64), dtype=np.float32)
    k = rng.standard_normal((2, n, 64), dtype=np.float32)
    v = rng.standard_normal((2, n, 64), dtype=np.float32)
    rope = ropeattn.Rope(base=10000.0, layout="half")
    start = time.perf_counter()
    o, lse = ropeattn.attention(q, k, v, causal=True, rope=rope)
    first = time.perf_counter() - start
    start = time.perf_counter()
    o, lse = ropeattn.attention(q, k, v, causal=True, rope=rope)
    again = time.perf_counter() - start
    print(f"   o {o.shape} {o.dtype}, lse {lse.shape} {lse.dtype}; first call "
          f"(compiles) {first:.2f} s, second call {1e3 * again:.1f} ms")
    do = rng.standard_normal(o.shape, dtype=np.float32)
    dq, dk, dv = ropeattn.attention_grad(q, k, v, o, lse, do, causal=True,
                                         rope=rope)
    print(f"   gradients: dq {dq.shape}, dk {dk.shape}, dv {dv.shape}")
    # The same module through the low-level API.
    shapes = ropeattn.AttentionShapes(q.shape, k.shape, v.shape, "bf16")
    options = ropeattn.AttentionOptions(causal=True, rope=rope)
    text = ropeattn.attention_module(shapes, options, backward=None)
    module = ropeattn.compile(text, pipeline_options="block-q=64")
    fwd = module["attention_fwd"]
    print(f"   low level: {fwd}")
    o16, _ = fwd(q.astype(ropeattn.bfloat16), k.astype(ropeattn.bfloat16),
                 v.astype(ropeattn.bfloat16))
    print(f"   bf16 vs f32 output: max |diff| = "
          f"{np.max(np.abs(o16.astype(np.float32) - o)):.3g}")


def polynomial_demo():
    print("== numpy: method polynomial (f64, small logits) and its error "
          "certificate")
    rng = np.random.default_rng(1)
    q = 0.2 * rng.standard_normal((2, 512, 16))
    k = 0.2 * rng.standard_normal((1, 512, 16))
    v = rng.standard_normal((1, 512, 16))
    o, _, cert = ropeattn.attention(
        q, k, v, rope=ropeattn.Rope(), method="polynomial", certificate=True,
        pipeline_options="epsilon=1e-4 max-degree=4")
    exact, _ = ropeattn.attention(q, k, v, rope=ropeattn.Rope())
    print(f"   certificate: beta-hat {cert.beta:.3f}, degree {cert.degree}, "
          f"delta {cert.delta:.3g}, output bound {cert.output_bound:.3g} "
          f"x max|v|")
    print(f"   max |polynomial - exact| = {np.max(np.abs(o - exact)):.3g} "
          f"<= {cert.output_bound * np.abs(v).max():.3g}")


def jax_demo(steps):
    import jax
    import jax.numpy as jnp
    from ropeattn.jax import attention

    print("== JAX: a one-layer causal RoPE attention model trained with "
          "ropeattn attention (jax.jit + jax.grad)")
    batch, seq, model_dim, heads, head_dim = 4, 32, 32, 4, 8
    rope = ropeattn.Rope()
    rng = np.random.default_rng(2)

    def init(scale):
        def w(*shape):
            return jnp.asarray(scale * rng.standard_normal(shape),
                               jnp.float32)
        return {"wq": w(model_dim, heads * head_dim),
                "wk": w(model_dim, head_dim),  # one kv head (GQA)
                "wv": w(model_dim, head_dim),
                "wo": w(heads * head_dim, model_dim)}

    def forward(params, x):
        def split(y, h):
            return y.reshape(batch, seq, h, head_dim).transpose(0, 2, 1, 3)
        o = attention(split(x @ params["wq"], heads),
                      split(x @ params["wk"], 1),
                      split(x @ params["wv"], 1), causal=True, rope=rope)
        return o.transpose(0, 2, 1, 3).reshape(batch, seq, -1) @ params["wo"]

    x = jnp.asarray(rng.standard_normal((batch, seq, model_dim)),
                    jnp.float32)
    target = forward(init(0.4), x)
    params = init(0.3)

    @jax.jit
    def step(params):
        loss, grads = jax.value_and_grad(
            lambda p: jnp.mean((forward(p, x) - target) ** 2))(params)
        return loss, jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params,
                                            grads)

    for i in range(steps):
        loss, params = step(params)
        if i % max(1, steps // 5) == 0 or i == steps - 1:
            print(f"   step {i:3d}: loss {float(loss):.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--no-jax", action="store_true")
    args = parser.parse_args()
    print(f"ropeattn {ropeattn.__version__}, C API: {ropeattn.library_path()}")
    numpy_demo(args.n)
    polynomial_demo()
    if not args.no_jax:
        jax_demo(args.steps)


if __name__ == "__main__":
    main()
