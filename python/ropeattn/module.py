"""Compile MLIR text with the ropeattn compiler and call its functions on
numpy arrays."""

import ctypes

import numpy as np

from . import _capi
from .dtypes import element_dtype

_ALIGNMENT = 64  # bytes; the ABI's alignment of caller-allocated buffers


def _aligned_empty(shape, dtype):
    """An uninitialized C-contiguous array whose data is 64-byte aligned."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count * dtype.itemsize + _ALIGNMENT, dtype=np.uint8)
    offset = (-raw.ctypes.data) % _ALIGNMENT
    return raw[offset:offset + count * dtype.itemsize].view(dtype).reshape(
        shape)


def _as_aligned_input(array, dtype):
    """`array` itself when it is C-contiguous and aligned, else a copy."""
    if (array.flags.c_contiguous and array.ctypes.data % _ALIGNMENT == 0 and
            array.dtype == dtype):
        return array
    copy = _aligned_empty(array.shape, dtype)
    copy[...] = array
    return copy


class TensorType:
    """Element dtype (numpy) and static shape of one input or result."""

    def __init__(self, dtype, shape):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)

    def __repr__(self):
        return f"TensorType({self.dtype.name}, {self.shape})"


class Function:
    """A compiled public function: call it with numpy arrays, one per input;
    it returns a tuple of numpy arrays, one per result."""

    def __init__(self, module, name):
        self._module = module
        self.name = name
        lib = _capi.lib()
        handle = module._handle
        bname = name.encode()
        self.signature = _capi.take_string(
            lib.ropeattnModuleGetSignature(handle, bname, None))
        self.inputs = [self._tensor(lib, handle, bname, 0, i)
                       for i in range(lib.ropeattnModuleGetNumInputs(
                           handle, bname))]
        self.results = [self._tensor(lib, handle, bname, 1, i)
                        for i in range(lib.ropeattnModuleGetNumResults(
                            handle, bname))]

    @staticmethod
    def _tensor(lib, handle, bname, is_result, index):
        element = ctypes.c_int()
        rank = ctypes.c_int64()
        shape = (ctypes.c_int64 * 16)()
        if lib.ropeattnModuleGetTensorType(handle, bname, is_result, index,
                                           ctypes.byref(element),
                                           ctypes.byref(rank), shape, 16):
            raise _capi.RopeAttnError("cannot query the signature")
        if rank.value > 16:
            shape = (ctypes.c_int64 * rank.value)()
            lib.ropeattnModuleGetTensorType(handle, bname, is_result, index,
                                            None, None, shape, rank.value)
        return TensorType(element_dtype(element.value),
                          [shape[i] for i in range(rank.value)])

    def __call__(self, *arrays):
        if len(arrays) != len(self.inputs):
            raise TypeError(f"@{self.name} takes {len(self.inputs)} inputs "
                            f"({self.signature}), {len(arrays)} given")
        keep = []
        for index, (array, expected) in enumerate(zip(arrays, self.inputs)):
            array = np.asarray(array)
            if array.dtype != expected.dtype:
                raise TypeError(
                    f"input {index} of @{self.name}: expected dtype "
                    f"{expected.dtype.name}, got {array.dtype.name} "
                    f"({self.signature})")
            if array.shape != expected.shape:
                raise ValueError(
                    f"input {index} of @{self.name}: expected shape "
                    f"{expected.shape}, got {array.shape} ({self.signature})")
            keep.append(_as_aligned_input(array, expected.dtype))
        results = [_aligned_empty(r.shape, r.dtype) for r in self.results]
        buffers = (ctypes.c_void_p * (len(keep) + len(results)))(
            *[a.ctypes.data for a in keep + results])
        error = ctypes.c_void_p()
        status = _capi.lib().ropeattnModuleInvoke(
            self._module._handle, self.name.encode(), buffers,
            len(keep) + len(results), ctypes.byref(error))
        if status:
            raise _capi.RopeAttnError(_capi.take_string(error.value))
        return tuple(results)

    def __repr__(self):
        return f"<ropeattn function @{self.name}: {self.signature}>"


class Module:
    """A module compiled for the host CPU (MLIR context, lowered module and
    JIT); its public functions are `module[name]` or `module.name`."""

    def __init__(self, handle):
        self._handle = handle
        names = _capi.take_string(
            _capi.lib().ropeattnModuleGetFunctionNames(handle))
        self.functions = {name: Function(self, name)
                          for name in names.split(",") if name}

    def __getitem__(self, name):
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(f"no function @{name} in the module (functions: "
                           f"{', '.join(self.functions) or 'none'})") from None

    def __getattr__(self, name):
        if name.startswith("_") or name == "functions":
            raise AttributeError(name)
        try:
            return self.functions[name]
        except KeyError:
            raise AttributeError(name) from None

    def lowered_ir(self):
        """The LLVM-dialect module that was JIT-compiled."""
        return _capi.take_string(
            _capi.lib().ropeattnModuleGetLoweredIR(self._handle))

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle and _capi is not None and _capi._lib is not None:
            _capi._lib.ropeattnModuleDestroy(handle)


def compile(text, pipeline_options="", pipeline=None, opt_level=3,
            shared_libraries=()):
    """Parses MLIR `text` (a module on tensors), lowers it with
    rope-lower-to-cpu and `pipeline_options` (e.g. "blas=0 epsilon=1e-4"),
    or with the textual `pipeline` instead, and JIT-compiles it at LLVM
    optimization level `opt_level`. Raises RopeAttnError with the compiler's
    diagnostics on failure."""
    if pipeline and pipeline_options:
        raise ValueError("give either pipeline or pipeline_options")
    data = text.encode()
    error = ctypes.c_void_p()
    handle = _capi.lib().ropeattnModuleCompile(
        data, len(data), (pipeline or "").encode(),
        (pipeline_options or "").encode(), int(opt_level),
        ",".join(shared_libraries).encode(), ctypes.byref(error))
    if not handle:
        raise _capi.RopeAttnError(_capi.take_string(error.value))
    return Module(handle)
