"""JAX integration: `attention`, a jax.custom_vjp whose forward and backward
run the compiled ropeattn CPU kernels through jax.pure_callback.

    import jax, jax.numpy as jnp
    from ropeattn.jax import attention
    from ropeattn import Rope
    loss = lambda q, k, v: attention(q, k, v, causal=True, rope=Rope()).sum()
    dq, dk, dv = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)

Works under jax.jit, jax.grad / jax.vjp and jax.vmap (the batched call goes
to one kernel with an extra leading batch dimension). Kernels are compiled on
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
from .ir import AttentionOptions, AttentionShapes, Rope

__all__ = ["attention", "Rope"]


def _shapes(q, k, v):
    return AttentionShapes(q.shape, k.shape, v.shape, np.dtype(q.dtype))


def _kernel(options, pipeline_options, q, k, v):
    return get_kernel(_shapes(q, k, v), options, pipeline_options)


def _forward(options, pipeline_options, q, k, v, bias):
    shapes = _shapes(q, k, v)
    structs = (jax.ShapeDtypeStruct(shapes.o, q.dtype),
               jax.ShapeDtypeStruct(shapes.lse, accumulation_dtype(q.dtype)))

    def host(q, k, v, *bias):
        q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
        kernel = _kernel(options, pipeline_options, q, k, v)
        return kernel.forward(q, k, v, np.asarray(bias[0]) if bias else None)

    args = (q, k, v) + ((bias,) if bias is not None else ())
    return jax.pure_callback(host, structs, *args,
                             vmap_method="broadcast_all")


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
                                   vmap_method="broadcast_all"))


@functools.lru_cache(maxsize=None)
def _attention_fn(options, pipeline_options, with_bias):
    if with_bias:
        @jax.custom_vjp
        def f(q, k, v, bias):
            return _forward(options, pipeline_options, q, k, v, bias)[0]

        def f_fwd(q, k, v, bias):
            o, lse = _forward(options, pipeline_options, q, k, v, bias)
            return o, (q, k, v, bias, o, lse)
    else:
        @jax.custom_vjp
        def f(q, k, v):
            return _forward(options, pipeline_options, q, k, v, None)[0]

        def f_fwd(q, k, v):
            o, lse = _forward(options, pipeline_options, q, k, v, None)
            return o, (q, k, v, None, o, lse)

    def f_bwd(residuals, do):
        q, k, v, bias, o, lse = residuals
        return _backward(options, pipeline_options, q, k, v, bias, o, lse, do)

    f.defvjp(f_fwd, f_bwd)
    return f


def attention(q, k, v, bias=None, *, causal=False, scale=None, rope=None,
              method="exact", pipeline_options=""):
    """RoPE attention (docs/Spec.md section 6) computed by ropeattn on the CPU.

    q [B.., Hq, N, D], k [B.., Hk, M, D], v [B.., Hk, M, Dv] (GQA when
    Hk < Hq), one element type (float16, bfloat16, float32, float64 -- the
    last needs jax_enable_x64); bias: None, [N + M - 1] or [Hq, N + M - 1]
    (differentiable); rope: None or ropeattn.Rope; method: 'exact' or
    'polynomial' (f32/f64, no bias; pipeline_options such as 'epsilon=1e-4';
    the backward is then the gradient of the polynomial forward).
    Returns o [B.., Hq, N, Dv]."""
    dtypes = {np.dtype(x.dtype) for x in (q, k, v) + (
        (bias,) if bias is not None else ())}
    if len(dtypes) != 1:
        raise TypeError("q, k, v (and bias) must share one element type, "
                        f"got {sorted(d.name for d in dtypes)}")
    mlir_name(dtypes.pop())
    options = AttentionOptions(causal=bool(causal), scale=scale, rope=rope,
                               method=method, bias=_bias_kind(bias))
    fn = _attention_fn(options, pipeline_options, bias is not None)
    return fn(q, k, v, bias) if bias is not None else fn(q, k, v)
