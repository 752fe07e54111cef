"""JAX integration: `attention`, a jax.custom_vjp whose forward and backward
run the compiled ropeattn CPU kernels through jax.pure_callback.

    import jax, jax.numpy as jnp
    from ropeattn.jax import attention
    from ropeattn import Rope
    loss = lambda q, k, v: attention(q, k, v, causal=True, rope=Rope()).sum()
    dq, dk, dv = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)

Works under jax.jit, jax.grad / jax.vjp and jax.vmap (the batched call goes
to one kernel with an extra leading batch dimension; with a bias, one call
per slice). Kernels are compiled on
the first call with a new shape / element type / option set and cached.
The forward saves (q, k, v, [bias,] o, lse) for the backward, which runs
ropeattn.attention_grad with the saved logsumexp. Higher-order derivatives
(grad of grad) are not supported: the backward is not itself differentiable.
"""

import functools

import jax
import numpy as np

from .attention import _bias_kind, get_kernel
from .dtypes import accumulation_dtype, mlir_name
from .ir import CERTIFICATE_SIZE, AttentionOptions, AttentionShapes, Rope

__all__ = ["attention", "Rope"]


def _shapes(q, k, v):
    return AttentionShapes(q.shape, k.shape, v.shape, np.dtype(q.dtype))


def _kernel(options, pipeline_options, q, k, v):
    return get_kernel(_shapes(q, k, v), options, pipeline_options)


def _vmap_method(bias):
    """broadcast_all: a vmapped axis becomes a leading batch dimension of q,
    k, v (one kernel call). A bias has no batch dimension in ropeattn, so
    with a bias the slices run one by one."""
    return "sequential" if bias is not None else "broadcast_all"


def _forward(options, pipeline_options, q, k, v, bias):
    shapes = _shapes(q, k, v)
    structs = [jax.ShapeDtypeStruct(shapes.o, q.dtype),
               jax.ShapeDtypeStruct(shapes.lse, accumulation_dtype(q.dtype))]
    # f64 when jax_enable_x64, else f32 (JAX's canonical float type).
    cert_dtype = jax.dtypes.canonicalize_dtype(np.float64)
    if options.certificate:
        structs.append(jax.ShapeDtypeStruct((CERTIFICATE_SIZE,), cert_dtype))
    traced_rank = q.ndim

    def host(q, k, v, *bias):
        q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
        kernel = _kernel(options, pipeline_options, q, k, v)
        results = kernel.forward(q, k, v,
                                 np.asarray(bias[0]) if bias else None)
        if options.certificate:
            # Under vmap one call covers every slice: its certificate (beta
            # is the max over all of them) holds for each.
            extra = q.shape[:q.ndim - traced_rank]
            cert = np.broadcast_to(results[2].astype(cert_dtype),
                                   extra + (CERTIFICATE_SIZE,))
            results = results[:2] + (np.ascontiguousarray(cert),)
        return results

    args = (q, k, v) + ((bias,) if bias is not None else ())
    return jax.pure_callback(host, tuple(structs), *args,
                             vmap_method=_vmap_method(bias))


def _backward(options, pipeline_options, q, k, v, bias, o, lse, do):
    structs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (q, k, v)]
    if bias is not None:
        structs.append(jax.ShapeDtypeStruct(bias.shape, bias.dtype))

    def host(q, k, v, o, lse, do, *bias):
        q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
        kernel = _kernel(options, pipeline_options, q, k, v)
        return kernel.backward(q, k, v, np.asarray(o), np.asarray(lse),
                               np.asarray(do),
                               np.asarray(bias[0]) if bias else None)

    args = (q, k, v, o, lse, do.astype(o.dtype)) + (
        (bias,) if bias is not None else ())
    return tuple(jax.pure_callback(host, tuple(structs), *args,
                                   vmap_method=_vmap_method(bias)))


@functools.lru_cache(maxsize=None)
def _attention_fn(options, pipeline_options, with_bias):
    """The custom_vjp function of one option set: (q, k, v[, bias]) -> o, or
    (o, certificate) when options.certificate (the certificate has no
    gradient)."""
    def primal(results):
        return (results[0], results[2]) if options.certificate else results[0]

    def run(q, k, v, bias):
        return _forward(options, pipeline_options, q, k, v, bias)

    if with_bias:
        @jax.custom_vjp
        def f(q, k, v, bias):
            return primal(run(q, k, v, bias))

        def f_fwd(q, k, v, bias):
            results = run(q, k, v, bias)
            return primal(results), (q, k, v, bias, results[0], results[1])
    else:
        @jax.custom_vjp
        def f(q, k, v):
            return primal(run(q, k, v, None))

        def f_fwd(q, k, v):
            results = run(q, k, v, None)
            return primal(results), (q, k, v, None, results[0], results[1])

    def f_bwd(residuals, cotangent):
        q, k, v, bias, o, lse = residuals
        do = cotangent[0] if options.certificate else cotangent
        grads = _backward(options, pipeline_options, q, k, v, bias, o, lse,
                          do)
        return grads

    f.defvjp(f_fwd, f_bwd)
    return f


def attention(q, k, v, bias=None, *, causal=False, scale=None, rope=None,
              method="exact", pipeline_options="", return_certificate=False):
    """RoPE attention (docs/Spec.md section 6) computed by ropeattn on the CPU.

    q [B.., Hq, N, D], k [B.., Hk, M, D], v [B.., Hk, M, Dv] (GQA when
    Hk < Hq), one element type (float16, bfloat16, float32, float64 -- the
    last needs jax_enable_x64); bias: None, [N + M - 1] or [Hq, N + M - 1]
    (differentiable); rope: None or ropeattn.Rope; method: 'exact' or
    'polynomial' (no bias; pipeline_options such as 'epsilon=1e-4';
    the backward is then the gradient of the polynomial forward).
    Returns o [B.., Hq, N, Dv]; with return_certificate=True, (o, cert) where
    cert is the forward's error certificate [beta-hat, degree, delta, output
    bound, lse bound] (ropeattn.Certificate.from_array reads it; f32 unless
    jax_enable_x64), which has no gradient."""
    dtypes = {np.dtype(x.dtype) for x in (q, k, v) + (
        (bias,) if bias is not None else ())}
    if len(dtypes) != 1:
        raise TypeError("q, k, v (and bias) must share one element type, "
                        f"got {sorted(d.name for d in dtypes)}")
    mlir_name(dtypes.pop())
    options = AttentionOptions(causal=bool(causal), scale=scale, rope=rope,
                               method=method, bias=_bias_kind(bias),
                               certificate=bool(return_certificate))
    fn = _attention_fn(options, pipeline_options, bias is not None)
    return fn(q, k, v, bias) if bias is not None else fn(q, k, v)
