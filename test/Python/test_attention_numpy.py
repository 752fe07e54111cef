"""ropeattn.attention / attention_grad (numpy in, numpy out) against the
independent fp64 numpy reference test/reference/ropeattn_ref.py, in f32, f64,
f16 and bf16, with the derived tolerances of tolerances.py."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_reference as jref
import ropeattn
import ropeattn_ref as ref
from tolerances import (F64_FORWARD, F64_GRADIENT, check_f32,
                        f32_tolerance, relative_error, term_scales, ulp16)


@dataclasses.dataclass(frozen=True)
class Case:
    batch: tuple
    hq: int
    hk: int
    n: int
    m: int
    d: int
    dv: int
    causal: bool = False
    scale: float = None
    rope: ropeattn.Rope = None
    bias: str = None

    def arrays(self, seed, dtype):
        rng = np.random.default_rng(seed)
        q = rng.standard_normal(self.batch + (self.hq, self.n, self.d))
        k = rng.standard_normal(self.batch + (self.hk, self.m, self.d))
        v = rng.standard_normal(self.batch + (self.hk, self.m, self.dv))
        do = rng.standard_normal(self.batch + (self.hq, self.n, self.dv))
        length = self.n + self.m - 1
        bias = None
        if self.bias:
            shape = (length,) if self.bias == "shared" else (self.hq, length)
            bias = 0.5 * rng.standard_normal(shape)
        cast = (lambda x: None if x is None else x.astype(dtype))
        return cast(q), cast(k), cast(v), cast(do), cast(bias)

    def ref_rope(self):
        return None if self.rope is None else dataclasses.asdict(self.rope)

    def kwargs(self):
        return dict(causal=self.causal, scale=self.scale, rope=self.rope)


CASES = [
    Case((), 2, 1, 17, 17, 16, 16, causal=True, rope=ropeattn.Rope()),
    Case((2,), 4, 2, 9, 23, 8, 5, rope=ropeattn.Rope(layout="interleaved",
                                                     base=500.0)),
    Case((), 3, 3, 30, 12, 16, 8, causal=True, scale=0.3,  # N > M: empty rows
         rope=ropeattn.Rope(rotary_dim=8, position_offset=5)),
    Case((1, 2), 2, 2, 6, 6, 4, 4, bias="per_head", causal=True),
    Case((), 2, 1, 11, 14, 8, 8, bias="shared",
         rope=ropeattn.Rope(layout="interleaved")),
]
IDS = [f"case{i}" for i in range(len(CASES))]


def f64(x):
    return None if x is None else np.asarray(x, dtype=np.float64)


def reference(case, q, k, v, do, bias):
    o, lse = ref.attention(f64(q), f64(k), f64(v), f64(bias), case.scale,
                           case.causal, case.ref_rope())
    grads = ref.attention_grad(f64(q), f64(k), f64(v), f64(do), f64(bias),
                               case.scale, case.causal, case.ref_rope())
    return o, lse, grads


def straightforward_f32(case, q, k, v, do, bias):
    """o and the gradients of a plain f32 JAX implementation (materialized
    softmax) on the same inputs: what sets the f32 tolerance."""
    args = [jnp.asarray(x, jnp.float32) for x in (q, k, v)]
    b = None if bias is None else jnp.asarray(bias, jnp.float32)
    w = jnp.asarray(do, jnp.float32)

    def loss(q, k, v, b):
        o = jref.attention(q, k, v, b, **case.kwargs())
        return jnp.sum(o * w), o

    argnums = (0, 1, 2) + ((3,) if b is not None else ())
    grads, o = jax.jit(jax.grad(loss, argnums=argnums, has_aux=True))(
        *args, b)
    return np.asarray(o), [np.asarray(g) for g in grads]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_f32(case):
    q, k, v, do, bias = case.arrays(1, np.float32)
    o, lse = ropeattn.attention(q, k, v, bias, **case.kwargs())
    assert o.dtype == np.float32 and lse.dtype == np.float32
    grads = ropeattn.attention_grad(q, k, v, o, lse, do, bias,
                                    **case.kwargs())
    o_ref, lse_ref, grads_ref = reference(case, q, k, v, do, bias)
    o_32, grads_32 = straightforward_f32(case, q, k, v, do, bias)
    scales = term_scales(q, k, v, do, case.scale)
    check_f32("o", o, o_ref, o_32, scales["o"])
    finite = np.isfinite(lse_ref)
    np.testing.assert_array_equal(np.isfinite(lse), finite)  # empty rows
    assert np.all(lse[~finite] == -np.inf)
    assert np.max(np.abs(lse[finite] - lse_ref[finite]), initial=0) <= \
        2.0 ** -21 * max(1.0, np.max(np.abs(lse_ref[finite]), initial=0))
    names = ["dq", "dk", "dv", "dbias"]
    assert len(grads) == (4 if bias is not None else 3)
    for name, g, g_ref, g_32 in zip(names, grads, grads_ref, grads_32):
        check_f32(name, g, g_ref, g_32, scales[name])


@pytest.mark.parametrize("case", CASES[:3], ids=IDS[:3])
def test_f64(case):
    q, k, v, do, bias = case.arrays(2, np.float64)
    o, lse = ropeattn.attention(q, k, v, bias, **case.kwargs())
    grads = ropeattn.attention_grad(q, k, v, o, lse, do, bias,
                                    **case.kwargs())
    o_ref, lse_ref, grads_ref = reference(case, q, k, v, do, bias)
    assert relative_error(o, o_ref) <= F64_FORWARD
    for g, g_ref in zip(grads, grads_ref):
        assert relative_error(g, g_ref) <= F64_GRADIENT


def _delta_bound(case, q, k, o16, o_ref, do, p):
    """Bounds (per row of dq, per row of dk) of what the backward's use of
    the 16-bit forward output o (instead of the exact O) changes: it enters
    only through Delta_i = <dO_i, O_i> (docs/Spec.md section 7), with error
    eps_i = <dO_i, o16_i - O_i>; then dl changes by -P_ij eps_i, so
    |d(dq_i)| <= |s| |eps_i| max_j |k_j| and
    |d(dk_j)| <= |s| max_i |q_i| sum_{h->kv, i} P_ij |eps_i| (rotations keep
    norms, sum_j P_ij <= 1)."""
    s = case.scale if case.scale is not None else 1 / math.sqrt(case.d)
    eps = np.abs(np.sum(f64(do) * (f64(o16) - o_ref), axis=-1))  # [.., Hq, N]
    kmax = np.max(np.linalg.norm(f64(k), axis=-1))
    qmax = np.max(np.linalg.norm(f64(q), axis=-1))
    dq_bound = abs(s) * eps * kmax
    per_head = np.einsum("...hij,...hi->...hj", p, eps)  # [.., Hq, M]
    g = case.hq // case.hk
    per_kv = per_head.reshape(per_head.shape[:-2] + (case.hk, g, case.m)
                              ).sum(axis=-2)
    dk_bound = abs(s) * qmax * per_kv
    return dq_bound[..., None], dk_bound[..., None]


@pytest.mark.parametrize("dtype_name", ["f16", "bf16"])
@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=[IDS[0], IDS[2]])
def test_16bit(case, dtype_name):
    dtype = ropeattn.dtypes.numpy_dtype(dtype_name)
    q, k, v, do, bias = case.arrays(3, dtype)
    o, lse = ropeattn.attention(q, k, v, **case.kwargs())
    assert o.dtype == dtype and lse.dtype == np.float32
    dq, dk, dv = ropeattn.attention_grad(q, k, v, o, lse, do,
                                         **case.kwargs())
    assert dq.dtype == dk.dtype == dv.dtype == dtype
    # The reference runs on the 16-bit values themselves.
    o_ref, _, (dq_ref, dk_ref, dv_ref, _) = reference(case, q, k, v, do,
                                                      None)
    o_32, (dq_32, dk_32, dv_32) = straightforward_f32(case, q, k, v, do,
                                                      None)
    # Forward: computed in f32, rounded once: within one ulp of the type
    # plus the f32 allowance.
    allowance = f32_tolerance(relative_error(o_32, o_ref)) * np.max(
        np.abs(o_ref))
    assert np.all(np.abs(f64(o) - o_ref) <= ulp16(o_ref, dtype_name) +
                  allowance)
    # Backward: one ulp + the f32 allowance + the effect of the rounded o.
    p = np.asarray(jax.jit(lambda q, k: jref.probabilities(
        q, k, None, case.causal, case.scale, case.rope)[0])(f64(q), f64(k)))
    dq_bound, dk_bound = _delta_bound(case, q, k, o, o_ref, do, p)
    for name, g, g_ref, g_32, extra in [("dq", dq, dq_ref, dq_32, dq_bound),
                                        ("dk", dk, dk_ref, dk_32, dk_bound),
                                        ("dv", dv, dv_ref, dv_32, 0.0)]:
        allowance = f32_tolerance(relative_error(g_32, g_ref)) * np.max(
            np.abs(g_ref))
        excess = np.abs(f64(g) - g_ref) - (ulp16(g_ref, dtype_name) +
                                           allowance + extra)
        assert np.max(excess) <= 0, (name, np.max(excess))


def _bound_factor(delta):
    return 2 * delta / (1 + math.sqrt(1 - delta * delta))


@pytest.mark.parametrize("causal", [False, True])
def test_polynomial_f64_and_certificate(causal):
    """method polynomial with its certificate (docs/Spec.md section 11), in
    f64 where the rounding allowance is negligible: the certificate's numbers
    are consistent (degree >= 1, delta <= epsilon, B(delta) and
    -log(1 - delta) as specified, beta-hat the Cauchy-Schwarz bound), and the
    output and logsumexp are within the certified bounds of the fp64
    reference; the result is not the exact path's."""
    rng = np.random.default_rng(4)
    q = 0.15 * rng.standard_normal((2, 300, 8))
    k = 0.15 * rng.standard_normal((1, 300, 8))
    v = rng.standard_normal((1, 300, 8))
    rope = ropeattn.Rope()
    eps = 1e-4
    options = f"epsilon={eps:g} poly-chunk=64 max-degree=4"
    o, lse, cert = ropeattn.attention(q, k, v, causal=causal, rope=rope,
                                      method="polynomial",
                                      pipeline_options=options,
                                      certificate=True)
    assert isinstance(cert, ropeattn.Certificate)
    assert cert.degree >= 1 and not cert.exact
    assert 0 < cert.delta <= eps
    assert cert.output_bound == pytest.approx(_bound_factor(cert.delta),
                                              rel=1e-14)
    assert cert.lse_bound == pytest.approx(-math.log1p(-cert.delta),
                                           rel=1e-12)
    # beta-hat = |s| max|q_i| max|k_j| (1 + 2(D + 2)u), u = 2^-53.
    cauchy_schwarz = (1 / math.sqrt(8)) * np.max(
        np.linalg.norm(q, axis=-1)) * np.max(np.linalg.norm(k, axis=-1))
    assert cauchy_schwarz <= cert.beta <= cauchy_schwarz * (1 + 1e-13)
    o_exact, _ = ropeattn.attention(q, k, v, causal=causal, rope=rope)
    o_ref, lse_ref = ref.attention(q, k, v, None, None, causal,
                                   dataclasses.asdict(rope))
    bound = cert.output_bound * np.max(np.abs(v), axis=-2)  # per column
    assert np.all(np.abs(o - o_ref) <= bound[:, None, :] * (1 + 1e-9) + 1e-12)
    assert np.all(np.abs(lse - lse_ref) <= cert.lse_bound * (1 + 1e-9)
                  + 1e-12)
    assert not np.array_equal(o, o_exact)


def test_certificate_of_exact_and_fallback():
    """The exact method's certificate is [NaN, 0, 0, 0, 0]; a polynomial op
    whose beta-hat no candidate covers falls back to the exact path (degree
    0, beta-hat evaluated) and returns the exact path's output bit for bit."""
    rng = np.random.default_rng(8)
    q = rng.standard_normal((2, 64, 8)).astype(np.float32)
    k = rng.standard_normal((1, 64, 8)).astype(np.float32)
    v = rng.standard_normal((1, 64, 8)).astype(np.float32)
    o_exact, lse_exact, cert = ropeattn.attention(q, k, v, causal=True,
                                                  certificate=True)
    assert math.isnan(cert.beta) and not cert.evaluated
    assert cert[1:] == (0, 0.0, 0.0, 0.0)
    big_q, big_k = 4 * q, 4 * k  # beta-hat ~ 4^2 * 0.35 * |q| |k| >> ranges
    o_exact, lse_exact = ropeattn.attention(big_q, big_k, v, causal=True)
    o, lse, cert = ropeattn.attention(
        big_q, big_k, v, causal=True, method="polynomial", certificate=True,
        pipeline_options="epsilon=1e-4 max-degree=4")
    assert cert.exact and cert.evaluated and cert.beta > 10
    assert cert[1:] == (0, 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(o, o_exact)
    np.testing.assert_array_equal(lse, lse_exact)


def test_polynomial_gradient_is_the_derivative_of_the_polynomial_forward():
    """method polynomial backward (f64): <grad, u> equals the central finite
    difference of F(x) = sum(do * o_polynomial(x)) along random directions u
    (the error of the difference is estimated from two step sizes: for a
    smooth F the h/2 estimate is off by about |D(h) - D(h/2)| / 3)."""
    rng = np.random.default_rng(6)
    q = 0.3 * rng.standard_normal((2, 40, 8))
    k = 0.3 * rng.standard_normal((1, 48, 8))
    v = rng.standard_normal((1, 48, 8))
    do = rng.standard_normal((2, 40, 8))
    kwargs = dict(causal=True, rope=ropeattn.Rope(), method="polynomial",
                  pipeline_options="epsilon=1e-4 poly-chunk=16 max-degree=4")
    o, lse = ropeattn.attention(q, k, v, **kwargs)
    grads = ropeattn.attention_grad(q, k, v, o, lse, do, **kwargs)
    exact = ropeattn.attention_grad(q, k, v, *ropeattn.attention(
        q, k, v, causal=True, rope=kwargs["rope"]), do, causal=True,
        rope=kwargs["rope"])
    assert any(not np.array_equal(g, e) for g, e in zip(grads, exact))

    def objective(q, k, v):
        return float(np.sum(do * ropeattn.attention(q, k, v, **kwargs)[0]))

    for index in range(3):
        u = rng.standard_normal(grads[index].shape)

        def along(h):
            args_plus, args_minus = [q, k, v], [q, k, v]
            args_plus[index] = args_plus[index] + h * u
            args_minus[index] = args_minus[index] - h * u
            return (objective(*args_plus) - objective(*args_minus)) / (2 * h)

        d1, d2 = along(1e-3), along(5e-4)
        directional = float(np.sum(grads[index] * u))
        assert abs(directional - d2) <= abs(d1 - d2) + 1e-9 * max(
            1.0, abs(d2)), (index, directional, d1, d2)


def test_polynomial_bf16_with_certificate():
    """bf16 through the polynomial path (docs/Spec.md section 11, "16-bit
    operands"): the certificate reports a degree >= 1, and the output is
    within the certified bound of the fp64 reference on the same bf16
    inputs plus the final rounding to bf16 (one ulp) and an f32 evaluation
    allowance (the f32 criterion of the exact path, from a straightforward
    f32 implementation on the same inputs)."""
    case = Case((), 2, 1, 64, 64, 8, 8, causal=True, rope=ropeattn.Rope())
    q, k, v, do, _ = case.arrays(10, np.float32)
    q, k = 0.2 * q, 0.2 * k
    q, k, v, do = (x.astype(ropeattn.bfloat16) for x in (q, k, v, do))
    o, lse, cert = ropeattn.attention(
        q, k, v, causal=True, rope=case.rope, method="polynomial",
        certificate=True, pipeline_options="epsilon=1e-3 max-degree=4")
    assert o.dtype == ropeattn.bfloat16 and cert.degree >= 1
    o_ref, _, _ = reference(case, q, k, v, do, None)
    o_32, _ = straightforward_f32(case, q, k, v, do, None)
    allowance = f32_tolerance(relative_error(o_32, o_ref)) * np.max(
        np.abs(o_ref))
    certified = cert.output_bound * np.max(f64(np.abs(v)), axis=-2)
    assert np.all(np.abs(f64(o) - o_ref) <= certified[:, None, :] +
                  ulp16(o_ref, "bf16") + allowance)
