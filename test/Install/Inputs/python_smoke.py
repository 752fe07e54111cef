"""The pip-installed package with the library of a `make install` prefix
(found through $ROPEATTN_PREFIX): the library's location, and one f64
attention forward + backward against the fp64 numpy reference."""
import os
import sys

import numpy as np

import ropeattn

prefix = os.path.realpath(sys.argv[1])
sys.path.insert(0, sys.argv[2])  # test/reference
import ropeattn_ref as ref  # noqa: E402

path = os.path.realpath(ropeattn.library_path())
print("library in prefix:", path.startswith(prefix + os.sep))
print("package from the pip target:",
      os.path.realpath(ropeattn.__file__).startswith(
          os.path.realpath(sys.argv[3]) + os.sep))
rng = np.random.default_rng(0)
q, k, v, do = (rng.standard_normal(s) for s in [(4, 10, 8), (2, 12, 8),
                                                 (2, 12, 8), (4, 10, 8)])
rope = ropeattn.Rope(layout="interleaved")
o, lse = ropeattn.attention(q, k, v, causal=True, rope=rope)
dq, dk, dv = ropeattn.attention_grad(q, k, v, o, lse, do, causal=True,
                                     rope=rope)
rope_ref = {"layout": "interleaved"}
o_ref, _ = ref.attention(q, k, v, None, None, True, rope_ref)
grads_ref = ref.attention_grad(q, k, v, do, None, None, True, rope_ref)[:3]


def rel(x, r):
    return np.max(np.abs(x - r)) / np.max(np.abs(r))


# f64: 1e-11 / 1e-10 relative, the oracle criteria of the lit suite.
print("forward ok:", rel(o, o_ref) <= 1e-11)
print("backward ok:", all(rel(g, r) <= 1e-10 for g, r in zip((dq, dk, dv),
                                                               grads_ref)))
