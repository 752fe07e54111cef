"""ctypes binding of libRopeAttnCAPI.so (include/ropeattn-c/RopeAttn.h).

Where the library is looked for, in order:
  1. $ROPEATTN_CAPI_LIBRARY: the path of libRopeAttnCAPI.so itself;
  2. $ROPEATTN_PREFIX: an install prefix (`make install PREFIX=...`), its
     lib/ (or lib64/, lib/<multiarch>/);
  3. the build tree of a source checkout this package is imported from
     (<repo>/build/lib, when the package is used from <repo>/python);
  4. the dynamic loader's search path (LD_LIBRARY_PATH, ldconfig), by name.
"""

import ctypes
import glob
import os
import threading

LIBRARY_NAME = "libRopeAttnCAPI.so"
CAPI_VERSION = 1

ELEMENT_F16, ELEMENT_BF16, ELEMENT_F32, ELEMENT_F64 = 1, 2, 3, 4
ELEMENT_I1, ELEMENT_I8, ELEMENT_I16, ELEMENT_I32, ELEMENT_I64 = 5, 6, 7, 8, 9
ELEMENT_INDEX = 10


class RopeAttnError(RuntimeError):
    """A compile or call failure reported by the ropeattn C API."""


class LibraryNotFoundError(ImportError):
    """libRopeAttnCAPI.so could not be found or loaded."""


def _candidates():
    env = os.environ.get("ROPEATTN_CAPI_LIBRARY")
    if env:
        yield env, "$ROPEATTN_CAPI_LIBRARY"
        return
    prefix = os.environ.get("ROPEATTN_PREFIX")
    if prefix:
        for sub in ("lib", "lib64"):
            yield os.path.join(prefix, sub, LIBRARY_NAME), "$ROPEATTN_PREFIX"
        for path in sorted(glob.glob(os.path.join(prefix, "lib", "*",
                                                  LIBRARY_NAME))):
            yield path, "$ROPEATTN_PREFIX"
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    yield os.path.join(repo, "build", "lib", LIBRARY_NAME), "source checkout"
    yield LIBRARY_NAME, "dynamic loader search path"


def _load():
    tried = []
    for path, origin in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} ({origin}: no such file)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as error:
            tried.append(f"{path} ({origin}: {error})")
            if origin.startswith("$"):
                break
    raise LibraryNotFoundError(
        "cannot load the ropeattn C API library " + LIBRARY_NAME +
        "; set ROPEATTN_CAPI_LIBRARY to its path or ROPEATTN_PREFIX to the "
        "install prefix (make install PREFIX=...). Tried:\n  " +
        "\n  ".join(tried))


_lock = threading.Lock()
_lib = None
_lib_path = None


def _declare(lib):
    c = ctypes
    cp, i64, vp = c.c_char_p, c.c_int64, c.c_void_p
    err = c.POINTER(c.c_void_p)  # char ** (freed with ropeattnFreeString)
    sigs = {
        "ropeattnGetCAPIVersion": (c.c_int, []),
        "ropeattnFreeString": (None, [vp]),
        "ropeattnModuleCompile": (vp, [cp, c.c_size_t, cp, cp, c.c_int, cp,
                                       err]),
        "ropeattnModuleDestroy": (None, [vp]),
        "ropeattnModuleGetFunctionNames": (vp, [vp]),
        "ropeattnModuleGetSignature": (vp, [vp, cp, err]),
        "ropeattnModuleGetNumInputs": (i64, [vp, cp]),
        "ropeattnModuleGetNumResults": (i64, [vp, cp]),
        "ropeattnModuleGetTensorType": (c.c_int, [
            vp, cp, c.c_int, i64, c.POINTER(c.c_int), c.POINTER(i64),
            c.POINTER(i64), i64]),
        "ropeattnModuleInvoke": (c.c_int, [vp, cp, c.POINTER(vp), i64, err]),
        "ropeattnModuleInvokePacked": (c.c_int, [vp, cp, c.POINTER(vp), i64,
                                                 err]),
        "ropeattnModuleGetLoweredIR": (vp, [vp]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def lib():
    """The loaded library (loaded on first use)."""
    global _lib, _lib_path
    with _lock:
        if _lib is None:
            handle, path = _load()
            _declare(handle)
            version = handle.ropeattnGetCAPIVersion()
            if version != CAPI_VERSION:
                raise LibraryNotFoundError(
                    f"{path} implements C API version {version}; this package "
                    f"needs version {CAPI_VERSION}")
            _lib, _lib_path = handle, path
    return _lib


def library_path():
    """The path the C API library was loaded from."""
    lib()
    return _lib_path


def take_string(pointer):
    """The Python str of a char * returned by the library, which is freed."""
    if not pointer:
        return None
    try:
        return ctypes.string_at(pointer).decode("utf-8", errors="replace")
    finally:
        lib().ropeattnFreeString(pointer)
