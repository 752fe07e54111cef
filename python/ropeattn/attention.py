"""RoPE attention on numpy arrays: compiled kernels (forward and backward),
cached per shape, element type and options."""

import dataclasses
import math
import threading
from typing import NamedTuple

import numpy as np

from .dtypes import mlir_name, numpy_dtype
from .ir import AttentionOptions, AttentionShapes, Rope, attention_module
from .module import compile

FORWARD, BACKWARD = "attention_fwd", "attention_bwd"


class Certificate(NamedTuple):
    """The error certificate of one forward call (docs/Spec.md section 11):
    beta: the run-time bound of every |logit| (NaN when not evaluated: the
    exact lowering ran from the start); degree: of the polynomial that ran
    (0: an exact method ran); delta: proven relative error bound of every
    weight; output_bound: |o - O|_ic <= output_bound * max_j |v_jc|;
    lse_bound: |lse - LSE|_i <= lse_bound (exact arithmetic; rounding is not
    included)."""
    beta: float
    degree: int
    delta: float
    output_bound: float
    lse_bound: float

    @classmethod
    def from_array(cls, array):
        a = [float(x) for x in np.asarray(array, dtype=np.float64)]
        return cls(a[0], int(a[1]), a[2], a[3], a[4])

    @property
    def exact(self):
        """True when an exact method produced the output."""
        return self.degree == 0

    @property
    def evaluated(self):
        """False when the exact lowering ran without evaluating beta."""
        return not math.isnan(self.beta)


class AttentionKernel:
    """The compiled forward and backward of one attention configuration.

    forward(q, k, v[, bias]) -> (o, lse[, certificate array])
    backward(q, k, v, o, lse, do[, bias]) -> (dq, dk, dv[, dbias])
    """

    def __init__(self, shapes: AttentionShapes, options: AttentionOptions,
                 pipeline_options="", opt_level=3):
        self.shapes = shapes
        self.options = options
        self.pipeline_options = pipeline_options
        self.opt_level = opt_level
        self._modules = {}
        self._lock = threading.Lock()

    def _function(self, name):
        """The compiled @name; the forward and the backward are separate
        modules, each compiled on first use."""
        with self._lock:
            module = self._modules.get(name)
            if module is None:
                text = attention_module(
                    self.shapes, self.options,
                    forward=FORWARD if name == FORWARD else None,
                    backward=BACKWARD if name == BACKWARD else None)
                module = compile(text, pipeline_options=self.pipeline_options,
                                 opt_level=self.opt_level)
                self._modules[name] = module
        return module[name]

    @property
    def text(self):
        """The MLIR text of both functions."""
        return attention_module(self.shapes, self.options, FORWARD, BACKWARD)

    def _bias_args(self, bias):
        if (bias is None) != (self.options.bias is None):
            raise ValueError("this kernel was compiled " +
                             ("with" if self.options.bias else "without") +
                             " a bias operand")
        return () if bias is None else (bias,)

    def forward(self, q, k, v, bias=None):
        return self._function(FORWARD)(q, k, v, *self._bias_args(bias))

    def backward(self, q, k, v, o, lse, do, bias=None):
        if self.options.certificate:
            # The backward does not depend on the forward's certificate
            # result: share the kernel of the options without it.
            plain = dataclasses.replace(self.options, certificate=False)
            return get_kernel(self.shapes, plain, self.pipeline_options,
                              self.opt_level).backward(q, k, v, o, lse, do,
                                                       bias)
        return self._function(BACKWARD)(q, k, v, o, do, lse,
                                        *self._bias_args(bias))


_cache = {}
_cache_lock = threading.Lock()


def get_kernel(shapes: AttentionShapes, options: AttentionOptions,
               pipeline_options="", opt_level=3) -> AttentionKernel:
    """The kernel of this configuration, cached (thread-safe); its forward
    and backward are compiled on first use."""
    key = (shapes, options, pipeline_options, opt_level)
    with _cache_lock:
        kernel = _cache.get(key)
        if kernel is None:
            kernel = AttentionKernel(shapes, options, pipeline_options,
                                     opt_level)
            _cache[key] = kernel
    return kernel


def clear_cache():
    with _cache_lock:
        _cache.clear()


def _bias_kind(bias):
    if bias is None:
        return None
    ndim = np.ndim(bias)
    if ndim == 1:
        return "shared"
    if ndim == 2:
        return "per_head"
    raise ValueError(f"bias must be [N + M - 1] or [Hq, N + M - 1], got "
                     f"shape {np.shape(bias)}")


def _common_dtype(*arrays):
    dtypes = {np.asarray(a).dtype for a in arrays if a is not None}
    if len(dtypes) != 1:
        raise TypeError("q, k, v (and bias, o, do) must share one element "
                        f"type, got {sorted(d.name for d in dtypes)}")
    dtype = dtypes.pop()
    mlir_name(dtype)  # raises on unsupported types
    return dtype


def _make(q, k, v, bias, causal, scale, rope, method, pipeline_options,
          extra=(), certificate=False):
    dtype = _common_dtype(q, k, v, bias, *extra)
    shapes = AttentionShapes(np.shape(q), np.shape(k), np.shape(v), dtype)
    options = AttentionOptions(causal=bool(causal), scale=scale, rope=rope,
                               method=method, bias=_bias_kind(bias),
                               certificate=bool(certificate))
    return get_kernel(shapes, options, pipeline_options)


def attention(q, k, v, bias=None, *, causal=False, scale=None, rope=None,
              method="exact", pipeline_options="", certificate=False):
    """ropeattn.attention on numpy arrays; returns (o, lse), or
    (o, lse, Certificate) with certificate=True.

    q [B.., Hq, N, D], k [B.., Hk, M, D], v [B.., Hk, M, Dv], one element type
    (float16, ml_dtypes.bfloat16, float32, float64); bias None, [N + M - 1] or
    [Hq, N + M - 1]; rope None or a ropeattn.Rope; method 'exact' or
    'polynomial' (pipeline_options: e.g. 'epsilon=1e-4 max-degree=6')."""
    kernel = _make(q, k, v, bias, causal, scale, rope, method,
                   pipeline_options, certificate=certificate)
    results = kernel.forward(q, k, v, bias)
    if certificate:
        return results[0], results[1], Certificate.from_array(results[2])
    return results


def attention_grad(q, k, v, o, lse, do, bias=None, *, causal=False,
                   scale=None, rope=None, method="exact", pipeline_options=""):
    """ropeattn.attention_grad on numpy arrays: (dq, dk, dv[, dbias]) for the
    forward results o, lse and the output gradient do (method 'polynomial':
    the gradient of the polynomial forward of the same options)."""
    kernel = _make(q, k, v, bias, causal, scale, rope, method,
                   pipeline_options, extra=(o, do))
    return kernel.backward(q, k, v, o, lse, do, bias)
