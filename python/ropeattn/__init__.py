"""ropeattn: compile RoPE attention (forward and backward) with the ropeattn
MLIR compiler and run it on numpy arrays; `ropeattn.jax` integrates it with
JAX (custom_vjp, jit, grad).

    import numpy as np, ropeattn
    q = np.random.randn(4, 128, 64).astype(np.float32)   # [H, N, D]
    o, lse = ropeattn.attention(q, q, q, causal=True, rope=ropeattn.Rope())

Lower level: ropeattn.compile(mlir_text, pipeline_options=...) returns a
Module whose functions take and return numpy arrays; ropeattn.ir builds the
text of attention functions.
"""

from ._capi import LibraryNotFoundError, RopeAttnError, library_path
from .attention import (AttentionKernel, Certificate, attention,
                        attention_grad, clear_cache, get_kernel)
from .dtypes import bfloat16
from .ir import AttentionOptions, AttentionShapes, Rope, attention_module
from .module import Function, Module, TensorType, compile

__all__ = [
    "AttentionKernel", "AttentionOptions", "AttentionShapes", "Certificate",
    "Function",
    "LibraryNotFoundError", "Module", "Rope", "RopeAttnError", "TensorType",
    "attention", "attention_grad", "attention_module", "bfloat16",
    "clear_cache", "compile", "get_kernel", "library_path",
]
__version__ = "0.1.0"
