"""Generates the constant tables of canonicalize-rotation-xpos.mlir.

The tables are the xPos-scaled rotation family of docs/Spec.md §16.3,
W_delta = diag(zeta^(p/B)) R(-p), p = delta + M - N, built by
test/reference/ropeattn_ref.py (xpos_general_weights, written from the spec)
and rounded to the element type. Run once; its output was pasted into the
test (kept here so the tables can be regenerated and audited).
Usage: python3 gen_xpos_tables.py > tables.txt
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                "reference"))
import ropeattn_ref as ref  # noqa: E402


def dense(w, et):
    np_t = np.float32 if et == "f32" else np.float64
    w = np.asarray(w).astype(np_t)
    fmt = (lambda x: f"{float(x):.9e}") if et == "f32" else \
        (lambda x: repr(float(x)))

    def rec(a):
        if a.ndim == 1:
            return "[" + ", ".join(fmt(x) for x in a) + "]"
        return "[" + ", ".join(rec(x) for x in a) + "]"
    ty = "tensor<" + "x".join(str(s) for s in w.shape) + "x" + et + ">"
    return f"dense<{rec(w)}> : {ty}", ty


def emit(name, n, m, d, et, support, w, causal=False, heads=2, lse=False):
    cst, wty = dense(w, et)
    q = f"tensor<{heads}x{n}x{d}x{et}>"
    k = f"tensor<{heads}x{m}x{d}x{et}>"
    v = f"tensor<{heads}x{m}x3x{et}>"
    o = f"tensor<{heads}x{n}x3x{et}>"
    ll = f"tensor<{heads}x{n}x{et}>"
    res = f"({o}, {ll})" if lse else f"({o})"
    names = "%o, %l" if lse else "%o"
    rty = f"{o}, {ll}" if lse else o
    sup = ", ".join(str(x) for x in support)
    c = " causal" if causal else ""
    print(f"// ----- {name}")
    print(f"func.func @{name}(%q: {q}, %k: {k}, %v: {v}) -> {res} {{")
    print(f"  %w = arith.constant {cst}")
    print(f"  {names} = ropeattn.general_attention %q, %k, %v weights(%w) "
          f"support [{sup}]{c} : ({q}, {k}, {v}, {wty}) -> {res}")
    print(f"  return {names} : {rty}")
    print("}")


# 1. half layout, r = D = 8, B = 512, gamma = 0.4 (the paper's), N = 5, M = 7.
w, s = ref.xpos_general_weights(5, 7, 8, xpos_scale_base=512.0)
emit("xpos_half", 5, 7, 8, "f32", s, w)
# 2. interleaved, r = 4 < D = 6, base 100, B = 16, gamma = 0.7, f64, causal,
#    N = 6 > M = 4, logsumexp; invisible rows (u < N - 1) hold garbage.
w, s = ref.xpos_general_weights(6, 4, 6, base=100.0, layout="interleaved",
                                rotary_dim=4, xpos_scale_base=16.0,
                                xpos_gamma=0.7)
w[:5] = 7.0
emit("xpos_interleaved_partial", 6, 4, 6, "f64", s, w, causal=True, lse=True)
# 3. one pair (r = D = 2), per-head table [Hq, L, |S|], B = 4.
w, s = ref.xpos_general_weights(4, 4, 2, xpos_scale_base=4.0)
emit("xpos_one_pair_per_head", 4, 4, 2, "f32", s, np.stack([w, w]))
# 4. negative: one visible entry off by 1e-3.
w, s = ref.xpos_general_weights(5, 7, 8, xpos_scale_base=512.0)
w[3, 9] += 1e-3
emit("xpos_perturbed", 5, 7, 8, "f32", s, w)
# 5. negative: sides swapped (keys zeta^(+p/B)): the magnitudes grow with p.
w, s = ref.xpos_general_weights(5, 7, 8, xpos_scale_base=-512.0)
emit("xpos_growing", 5, 7, 8, "f32", s, w)
# 6. negative: per-pair decays (0.3, 0.5, 0.95) for r = 6: a (gamma, B) fits
#    any two pairs, the third is off.
w, s = ref.xpos_general_weights(5, 5, 6, xpos_scale_base=8.0)
zeta_true = ref.xpos_zeta(6, None)
zeta_bad = np.array([0.3, 0.5, 0.95])
for idx in range(9):
    p = idx - 4
    for a in range(3):
        f = (zeta_bad[a] / zeta_true[a]) ** (p / 8.0)
        u, v_ = a, a + 3
        for t, (x, y) in enumerate(zip(s[0::2], s[1::2])):
            if {x, y} <= {u, v_}:
                w[idx, t] *= f
emit("xpos_not_xpos_decay", 5, 5, 6, "f32", s, w)
