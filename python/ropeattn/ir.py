"""A small builder of ropeattn IR text: attention forward / backward
functions for given shapes, element type and options (docs/Spec.md sections
3, 6, 7)."""

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from .dtypes import mlir_name

METHODS = ("auto", "exact", "polynomial", "toeplitz")
LAYOUTS = ("half", "interleaved")
BIAS_KINDS = (None, "shared", "per_head")
CERTIFICATE_SIZE = 5


def _f64(x):
    """An MLIR float literal that round-trips `x` exactly."""
    return f"{float(x):.17e}"


@dataclass(frozen=True)
class Rope:
    """#ropeattn.rope parameters (defaults as in docs/Spec.md section 3)."""
    base: float = 10000.0
    layout: str = "half"
    rotary_dim: Optional[int] = None
    position_offset: int = 0

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"rope layout must be one of {LAYOUTS}, got "
                             f"{self.layout!r}")
        if not (math.isfinite(self.base) and self.base > 0):
            raise ValueError("rope base must be a finite positive number")
        if self.rotary_dim is not None and (self.rotary_dim < 0 or
                                            self.rotary_dim % 2):
            raise ValueError("rope rotary_dim must be even and non-negative")

    def text(self):
        parts = []
        if self.base != 10000.0:
            parts.append(f"base = {_f64(self.base)}")
        if self.layout != "half":
            parts.append(f"layout = {self.layout}")
        if self.rotary_dim is not None:
            parts.append(f"rotary_dim = {int(self.rotary_dim)}")
        if self.position_offset:
            parts.append(f"position_offset = {int(self.position_offset)}")
        return "rope <" + ", ".join(parts) + ">"


@dataclass(frozen=True)
class AttentionOptions:
    """Attributes of ropeattn.attention / attention_grad.

    causal: bottom-right aligned causal mask; scale: None for 1/sqrt(D);
    rope: a Rope (fused RoPE) or None; method: the algorithm hint of the
    forward and, unless `backward_method` is given, of the backward (with
    'polynomial' the backward is the gradient of the polynomial forward);
    bias: None,
    "shared" ([N + M - 1]) or "per_head" ([Hq, N + M - 1]) relative bias
    operand; certificate: the forward also returns the error certificate
    tensor<5xf64> [beta-hat, degree g (0: exact), delta_g, output bound
    B(delta_g) relative to max_j |v_jc|, logsumexp bound] (docs/Spec.md
    section 11; [NaN, 0, 0, 0, 0] when the exact lowering ran from the
    start)."""
    causal: bool = False
    scale: Optional[float] = None
    rope: Optional[Rope] = None
    method: str = "exact"
    backward_method: Optional[str] = None
    bias: Optional[str] = None
    certificate: bool = False

    def __post_init__(self):
        for m in (self.method, self.backward_method or self.method):
            if m not in METHODS:
                raise ValueError(f"method must be one of {METHODS}, got {m!r}")
        if self.bias not in BIAS_KINDS:
            raise ValueError(f"bias must be one of {BIAS_KINDS}, got "
                             f"{self.bias!r}")
        if self.scale is not None and not math.isfinite(self.scale):
            raise ValueError("scale must be finite")

    def attributes(self, method):
        parts = []
        if self.causal:
            parts.append("causal")
        if self.scale is not None:
            parts.append(f"scale({_f64(self.scale)})")
        if self.rope is not None:
            parts.append(self.rope.text())
        if method != "auto":
            parts.append(f"method {method}")
        return (" " + " ".join(parts)) if parts else ""


@dataclass(frozen=True)
class AttentionShapes:
    """q [B.., Hq, N, D], k [B.., Hk, M, D], v [B.., Hk, M, Dv] and the
    element type ('f16', 'bf16', 'f32', 'f64' or a numpy dtype)."""
    q: Tuple[int, ...]
    k: Tuple[int, ...]
    v: Tuple[int, ...]
    dtype: str = "f32"

    def __post_init__(self):
        object.__setattr__(self, "q", tuple(int(s) for s in self.q))
        object.__setattr__(self, "k", tuple(int(s) for s in self.k))
        object.__setattr__(self, "v", tuple(int(s) for s in self.v))
        object.__setattr__(self, "dtype", mlir_name(self.dtype))
        if len(self.q) < 3:
            raise ValueError(f"q must have rank >= 3 ([B.., H, N, D]), got "
                             f"shape {self.q}")
        if not (len(self.k) == len(self.v) == len(self.q)):
            raise ValueError(f"q, k, v must have the same rank, got {self.q}, "
                             f"{self.k}, {self.v}")

    @property
    def batch(self):
        return self.q[:-3]

    @property
    def o(self):
        return self.q[:-1] + (self.v[-1],)

    @property
    def lse(self):
        return self.q[:-1]

    def bias_shape(self, kind):
        n, m = self.q[-2], self.k[-2]
        length = n + m - 1
        return None if kind is None else (
            (length,) if kind == "shared" else (self.q[-3], length))

    @property
    def acc(self):
        return "f64" if self.dtype == "f64" else "f32"


def _tensor(shape, element):
    return "tensor<" + "".join(f"{s}x" for s in shape) + element + ">"


def attention_module(shapes: AttentionShapes, options: AttentionOptions,
                     forward: Optional[str] = "attention_fwd",
                     backward: Optional[str] = "attention_bwd") -> str:
    """MLIR text of a module with

      @forward(q, k, v [, bias]) -> (o, lse)
      @backward(q, k, v, o, dO, lse [, bias]) -> (dq, dk, dv [, dbias])

    (either is left out when its name is None)."""
    e, acc = shapes.dtype, shapes.acc
    tq, tk, tv = (_tensor(shapes.q, e), _tensor(shapes.k, e),
                  _tensor(shapes.v, e))
    to, tl = _tensor(shapes.o, e), _tensor(shapes.lse, acc)
    bias_shape = shapes.bias_shape(options.bias)
    tb = _tensor(bias_shape, e) if bias_shape else None
    lines = []

    fwd_args = [f"%q: {tq}", f"%k: {tk}", f"%v: {tv}"]
    fwd_types = [tq, tk, tv]
    bias_use = ""
    if tb:
        fwd_args.append(f"%bias: {tb}")
        fwd_types.append(tb)
        bias_use = " bias(%bias)"
    if forward:
        outs, names = [to, tl], "%o, %lse"
        if options.certificate:
            outs.append(f"tensor<{CERTIFICATE_SIZE}xf64>")
            names += ", %certificate"
        outs = ", ".join(outs)
        lines += [
            f"func.func @{forward}({', '.join(fwd_args)}) -> ({outs}) {{",
            f"  {names} = ropeattn.attention %q, %k, %v{bias_use}"
            f"{options.attributes(options.method)} : "
            f"({', '.join(fwd_types)}) -> ({outs})",
            f"  return {names} : {outs}",
            "}",
        ]
    if backward:
        bwd_args = [f"%q: {tq}", f"%k: {tk}", f"%v: {tv}", f"%o: {to}",
                    f"%do: {to}", f"%lse: {tl}"]
        op_types = [tq, tk, tv, to, to, tl]
        results = [tq, tk, tv]
        names = "%dq, %dk, %dv"
        if tb:
            bwd_args.append(f"%bias: {tb}")
            op_types.append(tb)
            results.append(tb)
            names += ", %dbias"
        lines += [
            f"func.func @{backward}({', '.join(bwd_args)}) -> "
            f"({', '.join(results)}) {{",
            f"  {names} = ropeattn.attention_grad %q, %k, %v, %o, %do "
            f"logsumexp(%lse){bias_use}"
            f"{options.attributes(options.backward_method or options.method)} : "
            f"({', '.join(op_types)}) -> ({', '.join(results)})",
            f"  return {names} : {', '.join(results)}",
            "}",
        ]
    return "module {\n" + "\n".join("  " + l for l in lines) + "\n}\n"
