"""Derived tolerances shared by the Python tests (the criteria of
test/Integration/CPU/attention_oracle.py)."""

import numpy as np

F32_FLOOR = 2.0 ** -21  # 8 f32 ulps at 1, relative to max |reference|
F64_FORWARD = 1e-11
F64_GRADIENT = 1e-10
# Unit roundoff (half an ulp at 1) of the 16-bit types.
UNIT_ROUNDOFF = {"f16": 2.0 ** -11, "bf16": 2.0 ** -8}


def relative_error(x, reference):
    """max |x - reference| / max |reference| (absolute when reference = 0)."""
    x = np.asarray(x, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    assert x.shape == reference.shape, (x.shape, reference.shape)
    if x.size == 0:
        return 0.0
    scale = np.max(np.abs(reference))
    error = np.max(np.abs(x - reference))
    return error / scale if scale > 0 else error


def f32_tolerance(f32_reference_error):
    """2x what a straightforward f32 implementation achieves on the same
    inputs, with a floor of 8 f32 ulps."""
    return max(2.0 * f32_reference_error, F32_FLOOR)


def ulp16(reference, dtype_name):
    """One ulp of the 16-bit type at each |reference| (normal range; the
    smallest normal's ulp below it)."""
    u = UNIT_ROUNDOFF[dtype_name]
    smallest_normal = 2.0 ** -14 if dtype_name == "f16" else 2.0 ** -126
    magnitude = np.maximum(np.abs(np.asarray(reference, np.float64)),
                           smallest_normal)
    return 2.0 * u * 2.0 ** np.floor(np.log2(magnitude))


def term_scales(q, k, v, do, scale):
    """Bounds of the magnitude of one term of the sums that make each result
    (o: P_ij v_j; dq: s dl_ij k_j with |dl_ij| <= 2 P_ij |dO_i| max|v|; dk
    likewise with q; dv: P_ij dO_i; dbias: dl_ij). Floors are expressed in
    ulps of these, not only of max |reference|: a result that cancels to 0
    (e.g. dq with a single visible key) is still the sum of such terms, and
    its rounding error scales with them."""
    def norm(x):
        x = np.asarray(x, np.float64)
        return float(np.max(np.linalg.norm(x, axis=-1), initial=0.0))
    d = np.shape(q)[-1]
    s = abs((1.0 / np.sqrt(d) if d else 1.0) if scale is None else scale)
    dl = 2.0 * norm(do) * norm(v)
    return {"o": norm(v), "dq": s * dl * norm(k), "dk": s * dl * norm(q),
            "dv": norm(do), "dbias": dl}


def check_f32(name, x, reference, straightforward, term_scale):
    """Asserts max |x - reference| <= max(2 max |straightforward - reference|,
    2^-21 max(max |reference|, term_scale))."""
    x = np.asarray(x, np.float64)
    reference = np.asarray(reference, np.float64)
    straightforward = np.asarray(straightforward, np.float64)
    assert x.shape == reference.shape, (name, x.shape, reference.shape)
    if x.size == 0:
        return
    err = np.max(np.abs(x - reference))
    err_32 = np.max(np.abs(straightforward - reference))
    tol = max(2.0 * err_32,
              F32_FLOOR * max(np.max(np.abs(reference)), term_scale))
    assert err <= tol, f"{name}: error {err:.3g} > tolerance {tol:.3g} " \
        f"(straightforward f32: {err_32:.3g})"
