#!/usr/bin/env python3
"""Python-surface benchmark: what the ropeattn package costs on top of the
compiled kernels, and ropeattn inside JAX against XLA's own attention.

For causal GQA RoPE attention (8 query heads, 2 kv heads, d = 64, f32, batch
1) and each n, the median wall time (after one warm-up call) of
  numpy      ropeattn.attention(q, k, v, ...)  (cached kernel; includes the
             dtype/shape checks, result allocation and the ctypes call)
  jax        jax.jit(ropeattn.jax.attention)   (pure_callback: host copies)
  xla        jax.jit(pure-JAX attention)       (test/Python/jax_reference.py,
             materialized softmax, compiled by XLA for the CPU)
and the same for forward + backward (jax.grad of sum(o * w); numpy: forward
then attention_grad). Plus the fixed per-call cost at n = 16.

Writes bench/results/NAME.{md,json,png}. Needs the C API library
(ROPEATTN_CAPI_LIBRARY or a build in build/) and jax.

  ROPEATTN_CAPI_LIBRARY=build/lib/libRopeAttnCAPI.so PYTHONPATH=python \\
      .venv/bin/python bench/run_python_bench.py [--n 256,1024,4096] [--reps 5]
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "Python"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jax_reference as jref  # noqa: E402
import ropeattn  # noqa: E402
from ropeattn.jax import attention as jax_attention  # noqa: E402

HQ, HK, D = 8, 2, 64
ROPE = ropeattn.Rope()


def median_ms(fn, reps):
    fn()  # warm-up (compiles)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def measure(n, reps):
    rng = np.random.default_rng(n)
    q = rng.standard_normal((HQ, n, D), dtype=np.float32)
    k = rng.standard_normal((HK, n, D), dtype=np.float32)
    v = rng.standard_normal((HK, n, D), dtype=np.float32)
    w = rng.standard_normal((HQ, n, D), dtype=np.float32)
    jq, jk, jv, jw = (jnp.asarray(x) for x in (q, k, v, w))
    kw = dict(causal=True, rope=ROPE)
    row = {"n": n}

    row["numpy_fwd"] = median_ms(lambda: ropeattn.attention(q, k, v, **kw),
                                 reps)

    def numpy_fwd_bwd():
        o, lse = ropeattn.attention(q, k, v, **kw)
        ropeattn.attention_grad(q, k, v, o, lse, w, **kw)
    row["numpy_fwd_bwd"] = median_ms(numpy_fwd_bwd, reps)

    for name, attend in [("jax", lambda q, k, v: jax_attention(q, k, v, **kw)),
                         ("xla", lambda q, k, v: jref.attention(q, k, v,
                                                                **kw))]:
        fwd = jax.jit(attend)
        row[f"{name}_fwd"] = median_ms(
            lambda: fwd(jq, jk, jv).block_until_ready(), reps)
        grad = jax.jit(jax.grad(lambda q, k, v: jnp.sum(attend(q, k, v) * jw),
                                argnums=(0, 1, 2)))
        row[f"{name}_fwd_bwd"] = median_ms(
            lambda: jax.block_until_ready(grad(jq, jk, jv)), reps)
    # Causal forward FLOPs (FlashAttention's convention, as rope-run).
    row["gflop_fwd"] = HQ * (2 * n * n * D + 2 * n * n * D) / 2 / 1e9
    return row


COLUMNS = ["numpy_fwd", "jax_fwd", "xla_fwd", "numpy_fwd_bwd",
           "jax_fwd_bwd", "xla_fwd_bwd"]


def write(rows, overhead, out_dir, name, command):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"rows": rows, "overhead_us": overhead, "command": command},
                  f, indent=1)
    lines = [
        "# ropeattn from Python: numpy API, JAX (pure_callback) and XLA",
        "",
        f"Causal GQA RoPE attention, Hq = {HQ}, Hk = {HK}, d = {D}, f32, "
        "batch 1; median ms of the timed calls after one warm-up, all in one "
        "run on this machine (2 cores, shared). `xla` is the pure-JAX "
        "reference attention (materialized softmax) compiled by XLA.",
        "",
        f"Command: `{command}`",
        "",
        "| n | numpy fwd | jax fwd | xla fwd | numpy fwd+bwd | jax fwd+bwd |"
        " xla fwd+bwd | xla/jax fwd | xla/jax fwd+bwd |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r[c]:.3g}" for c in COLUMNS]
        lines.append(f"| {r['n']} | " + " | ".join(cells) +
                     f" | {r['xla_fwd'] / r['jax_fwd']:.2f} | "
                     f"{r['xla_fwd_bwd'] / r['jax_fwd_bwd']:.2f} |")
    lines += ["", "Fixed cost per call (n = 16, same heads): " +
              ", ".join(f"{k} {v:.0f} µs" for k, v in overhead.items()), ""]
    with open(os.path.join(out_dir, name + ".md"), "w") as f:
        f.write("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ns = [r["n"] for r in rows]
    for ax, suffix, title in [(axes[0], "fwd", "forward"),
                              (axes[1], "fwd_bwd", "forward + backward")]:
        for method in ["numpy", "jax", "xla"]:
            ax.plot(ns, [r[f"{method}_{suffix}"] for r in rows], "o-",
                    label=method)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n = m")
        ax.set_ylabel("median ms")
        ax.set_title(title)
        ax.legend()
    fig.suptitle(f"causal GQA RoPE attention, Hq={HQ}, Hk={HK}, d={D}, f32")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name + ".png"), dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="256,1024,4096")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--name", default="python_cpu")
    args = parser.parse_args()
    command = "bench/run_python_bench.py " + " ".join(sys.argv[1:])
    rows = []
    for n in [int(x) for x in args.n.split(",")]:
        rows.append(measure(n, args.reps))
        print(json.dumps(rows[-1]), flush=True)
    small = measure(16, 50)
    overhead = {k: 1e3 * small[k] for k in ("numpy_fwd", "jax_fwd",
                                            "xla_fwd")}
    print("overhead_us", overhead)
    write(rows, overhead, args.out_dir, args.name, command)


if __name__ == "__main__":
    main()
