"""n = 65536 forward on one head: peak memory and sampled exactness.

The exact path must be flash-style (no N x M matrix): this runs a causal
RoPE attention with N = M = 65536, D = 64 under rope-run, reads the peak
resident set size of that process (getrusage of the child, i.e. including the
JIT and all buffers), requires it to be below 1 GiB, and checks 48 sampled
query rows (first, last and random) against an fp64 numpy evaluation of just
those rows from docs/Spec.md (the reference module's rotary function).

Usage: long_sequence.py ROPE_RUN WORKDIR
"""
import os
import resource
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "reference"))
import ropeattn_ref as ref  # noqa: E402

N, D = 65536, 64
LIMIT = 1 << 30


def main():
    rope_run, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    t = f"tensor<1x{N}x{D}xf32>"
    mlir = os.path.join(work, "long.mlir")
    with open(mlir, "w") as fh:
        fh.write(f"func.func @fwd(%q: {t}, %k: {t}, %v: {t}) -> ({t}, "
                 f"tensor<1x{N}xf32>) {{\n"
                 f"  %o, %l = ropeattn.attention %q, %k, %v causal rope <> : "
                 f"({t}, {t}, {t}) -> ({t}, tensor<1x{N}xf32>)\n"
                 f"  return %o, %l : {t}, tensor<1x{N}xf32>\n}}\n")
    rng = np.random.default_rng(64)
    q, k, v = (rng.standard_normal((1, N, D)).astype(np.float32)
               for _ in range(3))
    for name, x in zip("qkv", (q, k, v)):
        np.save(os.path.join(work, f"{name}.npy"), x)
    cmd = [rope_run, mlir, "--function=fwd"] + \
        [f"--input=@{os.path.join(work, n)}.npy" for n in "qkv"] + \
        [f"--output=@{os.path.join(work, 'o.npy')}",
         f"--output=@{os.path.join(work, 'lse.npy')}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"peak RSS of rope-run at N = M = {N}, D = {D}: {peak / 2**20:.0f} MiB")
    ok = peak < LIMIT
    o = np.load(os.path.join(work, "o.npy"))[0]
    lse = np.load(os.path.join(work, "lse.npy"))[0]
    rows = np.concatenate([[0, 1, N - 1], rng.integers(0, N, 45)])
    # fp64 evaluation of the sampled rows straight from the spec, and the
    # same rows the straightforward fp32 way (f32 angles, f32 softmax): the
    # tolerance is 2x the latter's error (the criterion of the oracle test).
    q64, k64, v64 = (x[0].astype(np.float64) for x in (q, k, v))
    qr = ref.rotary(q64[None], positions=np.arange(N))[0]
    kr = ref.rotary(k64[None], positions=np.arange(N))[0]
    inv = (np.float32(10000.0) ** (-np.arange(0, D, 2, dtype=np.float32) /
                                   np.float32(D)))
    ang = np.arange(N, dtype=np.float32)[:, None] * inv[None, :]
    c, s_ = np.cos(ang), np.sin(ang)

    def rot32(x):
        a, b = x[:, : D // 2], x[:, D // 2:]
        return np.concatenate([a * c - b * s_, a * s_ + b * c], axis=1)

    qr32, kr32 = rot32(q[0]), rot32(k[0])
    err, err32 = 0.0, 0.0
    for i in rows:
        logits = (qr[i] @ kr[: i + 1].T) / np.sqrt(D)
        mx = logits.max()
        p = np.exp(logits - mx)
        o_ref = p @ v64[: i + 1] / p.sum()
        lse_ref = mx + np.log(p.sum())
        l32 = (qr32[i] @ kr32[: i + 1].T) * np.float32(1 / np.sqrt(D))
        m32 = l32.max()
        p32 = np.exp(l32 - m32)
        o32 = (p32 @ v[0, : i + 1]) / p32.sum()
        lse32 = m32 + np.log(p32.sum())
        scale = max(np.max(np.abs(o_ref)), 1e-30)
        err = max(err, np.max(np.abs(o[i] - o_ref)) / scale,
                  abs(lse[i] - lse_ref) / abs(lse_ref))
        err32 = max(err32, np.max(np.abs(o32 - o_ref)) / scale,
                    abs(lse32 - lse_ref) / abs(lse_ref))
    tol = 2 * max(err32, 2.0 ** -21)
    print(f"max relative error on {len(rows)} sampled rows: {err:.2e} "
          f"(fp32 numpy: {err32:.2e}, tol {tol:.2e})")
    ok = ok and err <= tol
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
