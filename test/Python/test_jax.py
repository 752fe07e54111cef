"""ropeattn.jax.attention (custom_vjp over the compiled CPU kernels) against
the pure-JAX reference of jax_reference.py differentiated by jax.grad (an
independent oracle): random shapes, causal, GQA, both RoPE layouts, partial
rotary, bias; under jax.jit, jax.grad and jax.vmap."""

import math

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import jax_reference as jref
import ropeattn
from ropeattn.jax import attention
from tolerances import (F64_FORWARD, F64_GRADIENT, check_f32,
                        f32_tolerance, relative_error, term_scales, ulp16)


def random_config(rng, causal, layout, gqa):
    hk = int(rng.choice([1, 2]))
    hq = hk * (int(rng.choice([2, 3])) if gqa else 1)
    n = int(rng.integers(1, 40))
    m = int(rng.choice([n, int(rng.integers(1, 48))]))
    d = int(rng.choice([4, 8, 16]))
    dv = int(rng.choice([d, 8, 5]))
    batch = tuple(int(x) for x in rng.integers(1, 3, size=rng.integers(0, 2)))
    rope = None
    if layout is not None:
        rotary = int(rng.choice([d, d // 2 - (d // 2) % 2]))
        rope = ropeattn.Rope(base=float(rng.choice([10000.0, 500.0])),
                             layout=layout,
                             rotary_dim=None if rotary == d else rotary,
                             position_offset=int(rng.choice([0, 7])))
    scale = None if rng.integers(0, 2) else float(rng.uniform(0.1, 0.6))
    return dict(batch=batch, hq=hq, hk=hk, n=n, m=m, d=d, dv=dv,
                options=dict(causal=causal, scale=scale, rope=rope))


# Every combination of causal x RoPE layout (and no RoPE) x GQA, random sizes.
CONFIGS = []
_rng = np.random.default_rng(2026)
for _causal in (False, True):
    for _layout in ("half", "interleaved", None):
        CONFIGS.append(random_config(_rng, _causal, _layout,
                                     gqa=_layout != "interleaved"))
IDS = [f"{'causal' if c['options']['causal'] else 'full'}-"
       f"{c['options']['rope'].layout if c['options']['rope'] else 'norope'}"
       f"-hq{c['hq']}hk{c['hk']}-n{c['n']}m{c['m']}d{c['d']}dv{c['dv']}"
       for c in CONFIGS]


def make_inputs(config, seed, dtype):
    rng = np.random.default_rng(seed)
    b, hq, hk = config["batch"], config["hq"], config["hk"]
    n, m, d, dv = config["n"], config["m"], config["d"], config["dv"]
    arrays = [rng.standard_normal(b + (hq, n, d)),
              rng.standard_normal(b + (hk, m, d)),
              rng.standard_normal(b + (hk, m, dv)),
              rng.standard_normal(b + (hq, n, dv))]  # cotangent
    return [jnp.asarray(x.astype(dtype)) for x in arrays]


def value_and_grads(fn, q, k, v, w, *extra):
    """o and d(sum(o * w))/d(q, k, v, extra...) under jax.jit."""
    def loss(q, k, v, *extra):
        o = fn(q, k, v, *extra)
        return jnp.sum(o.astype(w.dtype) * w), o

    argnums = tuple(range(3 + len(extra)))
    grads, o = jax.jit(jax.grad(loss, argnums=argnums, has_aux=True))(
        q, k, v, *extra)
    return np.asarray(o), [np.asarray(g) for g in grads]


def ours(options):
    return lambda q, k, v, *bias: attention(q, k, v, *bias, **options)


def reference(options):
    return lambda q, k, v, *bias: jref.attention(q, k, v, *bias, **options)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_f32_forward_and_gradients(config):
    q, k, v, w = make_inputs(config, 11, np.float32)
    o, grads = value_and_grads(ours(config["options"]), q, k, v, w)
    as64 = [x.astype(jnp.float64) for x in (q, k, v, w)]
    o_ref, grads_ref = value_and_grads(reference(config["options"]), *as64)
    o_32, grads_32 = value_and_grads(reference(config["options"]), q, k, v,
                                     w)
    scales = term_scales(q, k, v, w, config["options"]["scale"])
    assert o.dtype == np.float32
    check_f32("o", o, o_ref, o_32, scales["o"])
    for name, g, g_ref, g_32 in zip(["dq", "dk", "dv"], grads, grads_ref,
                                    grads_32):
        assert g.dtype == np.float32
        check_f32(name, g, g_ref, g_32, scales[name])


@pytest.mark.parametrize("config", CONFIGS[3:5], ids=IDS[3:5])
def test_f64_forward_and_gradients(config):
    q, k, v, w = make_inputs(config, 12, np.float64)
    o, grads = value_and_grads(ours(config["options"]), q, k, v, w)
    o_ref, grads_ref = value_and_grads(reference(config["options"]), q, k, v,
                                       w)
    assert relative_error(o, o_ref) <= F64_FORWARD
    for g, g_ref in zip(grads, grads_ref):
        assert relative_error(g, g_ref) <= F64_GRADIENT


@pytest.mark.parametrize("kind", ["shared", "per_head"])
def test_bias_gradient(kind):
    config = CONFIGS[4]
    q, k, v, w = make_inputs(config, 13, np.float32)
    n, m, hq = config["n"], config["m"], config["hq"]
    shape = (n + m - 1,) if kind == "shared" else (hq, n + m - 1)
    bias = jnp.asarray(0.5 * np.random.default_rng(5).standard_normal(shape),
                       jnp.float32)
    options = config["options"]
    o, grads = value_and_grads(ours(options), q, k, v, w, bias)
    as64 = [x.astype(jnp.float64) for x in (q, k, v, w, bias)]
    o_ref, grads_ref = value_and_grads(reference(options), *as64)
    o_32, grads_32 = value_and_grads(reference(options), q, k, v, w, bias)
    scales = term_scales(q, k, v, w, options["scale"])
    check_f32("o", o, o_ref, o_32, scales["o"])
    assert len(grads) == 4
    for name, g, g_ref, g_32 in zip(["dq", "dk", "dv", "dbias"], grads,
                                    grads_ref, grads_32):
        check_f32(name, g, g_ref, g_32, scales[name])


def test_vmap():
    """vmap over a new leading axis: one kernel call with an extra batch
    dimension; same values as the reference per slice."""
    config = CONFIGS[1]
    slices = [make_inputs(config, 20 + i, np.float32) for i in range(3)]
    q, k, v, w = [jnp.stack(x) for x in zip(*slices)]
    options = config["options"]
    o = jax.jit(jax.vmap(ours(options)))(q, k, v)
    o_ref = jax.jit(jax.vmap(reference(options)))(
        *(x.astype(jnp.float64) for x in (q, k, v)))
    o_32 = jax.jit(jax.vmap(reference(options)))(q, k, v)
    scales = term_scales(q, k, v, w, options["scale"])
    check_f32("o", o, o_ref, o_32, scales["o"])

    def loss(q, k, v):
        return jnp.sum(jax.vmap(ours(options))(q, k, v) * w)

    def loss_ref(q, k, v):
        return jnp.sum(jax.vmap(reference(options))(q, k, v) * w)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
    grad_ref = jax.jit(jax.grad(loss_ref, argnums=(0, 1, 2)))
    grads_ref = grad_ref(*(x.astype(jnp.float64) for x in (q, k, v)))
    grads_32 = grad_ref(q, k, v)
    for name, g, g_ref, g_32 in zip(["dq", "dk", "dv"], grads, grads_ref,
                                    grads_32):
        check_f32(name, g, g_ref, g_32, scales[name])


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_16bit_forward(dtype):
    """bf16 / f16 through JAX: computed in f32, rounded once (docs/Spec.md
    section 2): within one ulp of the type of the f64 reference on the same
    16-bit inputs, plus the f32 allowance."""
    config = CONFIGS[3]
    q, k, v, _ = make_inputs(config, 14, dtype)
    o = np.asarray(jax.jit(ours(config["options"]))(q, k, v))
    assert o.dtype == np.dtype(dtype)
    as64 = [x.astype(jnp.float64) for x in (q, k, v)]
    fn = jax.jit(reference(config["options"]))
    o_ref = np.asarray(fn(*as64))
    o_32 = fn(*(x.astype(jnp.float32) for x in (q, k, v)))
    name = "bf16" if dtype == jnp.bfloat16 else "f16"
    allowance = f32_tolerance(relative_error(o_32, o_ref)) * np.max(
        np.abs(o_ref))
    assert np.all(np.abs(o.astype(np.float64) - o_ref) <=
                  ulp16(o_ref, name) + allowance)


def test_bf16_gradients_have_their_dtype_and_are_close():
    """bf16 gradients through JAX: their dtype, and bit-identical to the
    numpy API's kernels on the same values (whose accuracy against the fp64
    reference, with a derived per-element bound, is checked by
    test_attention_numpy.test_16bit); here the JAX plumbing is checked."""
    config = CONFIGS[0]
    q, k, v, w = make_inputs(config, 15, jnp.bfloat16)
    _, grads = value_and_grads(ours(config["options"]), q, k, v,
                               w.astype(jnp.float32))
    assert all(g.dtype == np.dtype(ml_dtypes.bfloat16) for g in grads)
    # The same kernel through the numpy API gives bit-identical gradients.
    o, lse = ropeattn.attention(*(np.asarray(x) for x in (q, k, v)),
                                **config["options"])
    do = np.asarray(w.astype(jnp.float32).astype(jnp.bfloat16))
    expected = ropeattn.attention_grad(*(np.asarray(x) for x in (q, k, v)),
                                       o, lse, do, **config["options"])
    for g, e in zip(grads, expected):
        np.testing.assert_array_equal(g, e)


def test_mixed_dtypes_are_rejected():
    config = CONFIGS[0]
    q, k, v, _ = make_inputs(config, 16, np.float32)
    with pytest.raises(TypeError, match="must share one element type"):
        attention(q, k.astype(jnp.float16), v)
    with pytest.raises(TypeError, match="unsupported floating-point type"):
        attention(q.astype(jnp.int32), k.astype(jnp.int32),
                  v.astype(jnp.int32))


def test_compile_error_surfaces():
    # Hq not a multiple of Hk: the verifier's message reaches the caller.
    q = jnp.zeros((3, 4, 8), jnp.float32)
    k = jnp.zeros((2, 4, 8), jnp.float32)
    with pytest.raises(Exception, match="multiple of the number of key/value"):
        jax.block_until_ready(attention(q, k, k))


def test_certificate_through_jax():
    """return_certificate: the certificate of the JAX call equals the numpy
    API's for the same inputs (the same kernel); the output still has its
    gradient (the polynomial backward's; the certificate has none); under
    vmap each slice gets the batched call's certificate."""
    rng = np.random.default_rng(30)
    q = jnp.asarray(0.2 * rng.standard_normal((2, 64, 8)), jnp.float32)
    k = jnp.asarray(0.2 * rng.standard_normal((1, 64, 8)), jnp.float32)
    v = jnp.asarray(rng.standard_normal((1, 64, 8)), jnp.float32)
    kwargs = dict(causal=True, rope=ropeattn.Rope(), method="polynomial",
                  pipeline_options="epsilon=1e-3 max-degree=4")
    o, cert = jax.jit(lambda q, k, v: attention(
        q, k, v, return_certificate=True, **kwargs))(q, k, v)
    o_np, _, cert_np = ropeattn.attention(*(np.asarray(x) for x in (q, k, v)),
                                          certificate=True, **kwargs)
    assert cert.dtype == np.float64 and cert.shape == (5,)
    assert ropeattn.Certificate.from_array(cert) == cert_np
    assert cert_np.degree >= 1
    np.testing.assert_array_equal(o, o_np)

    def loss(q):
        o, cert = attention(q, k, v, return_certificate=True, **kwargs)
        return jnp.sum(o) + 0 * jnp.sum(cert)

    _, lse_np, _ = ropeattn.attention(*(np.asarray(x) for x in (q, k, v)),
                                      certificate=True, **kwargs)
    dq_np = ropeattn.attention_grad(*(np.asarray(x) for x in (q, k, v)),
                                    o_np, lse_np, np.ones_like(o_np),
                                    **kwargs)[0]
    np.testing.assert_array_equal(jax.grad(loss)(q), dq_np)
    # vmap (the exact method here, to save a compile): each slice gets the
    # batched call's certificate, [NaN, 0, 0, 0, 0] for the exact lowering.
    qs = jnp.stack([q, 0.5 * q])
    _, certs = jax.vmap(lambda q: attention(q, k, v, return_certificate=True,
                                            causal=True))(qs)
    assert certs.shape == (2, 5)
    assert np.all(np.isnan(certs[:, 0])) and np.all(certs[:, 1:] == 0)


def test_vmap_with_bias():
    """With a bias the vmapped slices run one by one (a bias has no batch
    dimension in ropeattn); values and bias gradient as the reference."""
    config = CONFIGS[4]
    options = config["options"]
    slices = [make_inputs(config, 40 + i, np.float32) for i in range(2)]
    q, k, v, w = [jnp.stack(x) for x in zip(*slices)]
    n, m = config["n"], config["m"]
    bias = jnp.asarray(0.5 * np.random.default_rng(9).standard_normal(
        n + m - 1), jnp.float32)

    def loss(fn, q, k, v, bias):
        return jnp.sum(jax.vmap(fn, in_axes=(0, 0, 0, None))(q, k, v, bias)
                       * w)

    grad = jax.jit(jax.grad(lambda *a: loss(ours(options), *a),
                            argnums=(0, 1, 2, 3)))
    grad_ref = jax.jit(jax.grad(lambda *a: loss(reference(options), *a),
                                argnums=(0, 1, 2, 3)))
    grads = grad(q, k, v, bias)
    grads_ref = grad_ref(*(x.astype(jnp.float64) for x in (q, k, v, bias)))
    grads_32 = grad_ref(q, k, v, bias)
    scales = term_scales(q, k, v, w, options["scale"])
    for name, g, g_ref, g_32 in zip(["dq", "dk", "dv", "dbias"], grads,
                                    grads_ref, grads_32):
        check_f32(name, g, g_ref, g_32, scales[name])
