"""Element types: MLIR names, numpy dtypes (bf16 from ml_dtypes), C API
codes."""

import numpy as np

from . import _capi

try:
    import ml_dtypes
    bfloat16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is a dependency
    bfloat16 = None

_BY_NAME = {
    "f16": np.dtype(np.float16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
}
if bfloat16 is not None:
    _BY_NAME["bf16"] = bfloat16

_BY_CODE = {
    _capi.ELEMENT_F16: np.dtype(np.float16),
    _capi.ELEMENT_BF16: bfloat16,
    _capi.ELEMENT_F32: np.dtype(np.float32),
    _capi.ELEMENT_F64: np.dtype(np.float64),
    _capi.ELEMENT_I1: np.dtype(np.bool_),
    _capi.ELEMENT_I8: np.dtype(np.int8),
    _capi.ELEMENT_I16: np.dtype(np.int16),
    _capi.ELEMENT_I32: np.dtype(np.int32),
    _capi.ELEMENT_I64: np.dtype(np.int64),
    _capi.ELEMENT_INDEX: np.dtype(np.int64),
}


def element_dtype(code):
    dtype = _BY_CODE.get(code)
    if dtype is None:
        raise _capi.RopeAttnError(f"unsupported element type code {code}")
    return dtype


def mlir_name(dtype):
    """'f32' for float32 etc. (a str such as 'bf16' is accepted as is)."""
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return dtype
    dtype = np.dtype(dtype)
    for name, candidate in _BY_NAME.items():
        if candidate == dtype:
            return name
    raise TypeError(f"unsupported floating-point type {dtype} (f16, bf16, "
                    "f32, f64)")


def numpy_dtype(name_or_dtype):
    return _BY_NAME[mlir_name(name_or_dtype)]


def accumulation_dtype(name_or_dtype):
    """acc(E): f64 for f64, else f32 (docs/Spec.md section 2)."""
    return np.dtype(np.float64) if mlir_name(name_or_dtype) == "f64" else \
        np.dtype(np.float32)
