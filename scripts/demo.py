"""make demo: compile an example RoPE attention with ropeattn, run it on the
CPU, check it against the independent fp64 reference, print time and GFLOP/s.

The example is examples/rope_attention.mlir's shape family (Llama-style GQA,
causal, fused RoPE), at a size where the fp64 reference stays quick.
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "reference"))
import ropeattn_ref as ref  # noqa: E402

B, HQ, HK, N, D = 1, 8, 2, 1024, 64


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    rope_run = os.path.join(build, "bin", "rope-run")
    tq = f"tensor<{B}x{HQ}x{N}x{D}xf32>"
    tk = f"tensor<{B}x{HK}x{N}x{D}xf32>"
    tl = f"tensor<{B}x{HQ}x{N}xf32>"
    src = (f"func.func @forward(%q: {tq}, %k: {tk}, %v: {tk}) -> ({tq}, {tl}) {{\n"
           f"  %o, %lse = ropeattn.attention %q, %k, %v causal rope <base = 5.0e5>\n"
           f"      : ({tq}, {tk}, {tk}) -> ({tq}, {tl})\n"
           f"  return %o, %lse : {tq}, {tl}\n}}\n")
    print("== ropeattn demo: causal GQA RoPE attention, "
          f"B={B} Hq={HQ} Hk={HK} N=M={N} D={D}, f32, CPU")
    print(src)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((B, HQ, N, D)).astype(np.float32)
    k = rng.standard_normal((B, HK, N, D)).astype(np.float32)
    v = rng.standard_normal((B, HK, N, D)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "demo.mlir")
        with open(path, "w") as fh:
            fh.write(src)
        args = []
        for name, x in zip("qkv", (q, k, v)):
            np.save(os.path.join(tmp, f"{name}.npy"), x)
            args.append(f"--input=@{os.path.join(tmp, name)}.npy")
        outs = [os.path.join(tmp, "o.npy"), os.path.join(tmp, "lse.npy")]
        cmd = [rope_run, path, "--function=forward", "--benchmark=5"] + args + \
            [f"--output=@{p}" for p in outs]
        print("$ " + " ".join(os.path.basename(c) if c == rope_run else c
                              for c in cmd[:4]) + " --input=@q.npy ...")
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stdout, res.stderr)
            sys.exit("demo: rope-run failed")
        for line in res.stdout.splitlines():
            if re.search(r"compile:|benchmark:", line):
                print("  " + line)
        o, lse = np.load(outs[0]), np.load(outs[1])
    rope = {"base": 5.0e5, "layout": "half", "rotary_dim": None,
            "position_offset": 0}
    o_ref, lse_ref = ref.attention(q.astype(np.float64), k.astype(np.float64),
                                   v.astype(np.float64), causal=True,
                                   rope=rope)
    err_o = np.max(np.abs(o - o_ref)) / np.max(np.abs(o_ref))
    err_l = np.max(np.abs(lse - lse_ref)) / np.max(np.abs(lse_ref))
    print(f"== vs. the fp64 numpy reference (test/reference/ropeattn_ref.py): "
          f"max rel. error o {err_o:.2e}, lse {err_l:.2e}")
    ok = err_o < 1e-5 and err_l < 1e-5
    ok = polynomial_vs_exact(rope_run) and ok
    print("== demo " + ("OK" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


def polynomial_vs_exact(rope_run, n=65536, d=16):
    """The same long non-causal attention, exact vs `method polynomial`
    (certificate chosen at run time), side by side."""
    print(f"\n== exact vs polynomial: B=1 H=1 N=M={n} D=Dv={d}, non-causal, "
          "logits |l| <= 0.9 (rows scaled), epsilon = 1e-3")
    rng = np.random.default_rng(1)
    scale = 1.0 / np.sqrt(d)
    # Row norms sqrt(0.9 / scale) give the certificate beta = 0.9.
    x = [rng.standard_normal((1, 1, n, d)) for _ in range(3)]
    for i in (0, 1):
        x[i] *= np.sqrt(0.9 / scale) / np.linalg.norm(x[i], axis=-1,
                                                      keepdims=True)
    x = [a.astype(np.float32) for a in x]
    t = f"tensor<1x1x{n}x{d}xf32>"
    outs, times = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for name, a in zip("qkv", x):
            np.save(os.path.join(tmp, f"{name}.npy"), a)
            args.append(f"--input=@{os.path.join(tmp, name)}.npy")
        c = "tensor<5xf64>"
        for method in ("exact", "polynomial"):
            path = os.path.join(tmp, f"{method}.mlir")
            with open(path, "w") as fh:
                fh.write(f"func.func @f(%q: {t}, %k: {t}, %v: {t}) -> "
                         f"({t}, {c}) {{\n"
                         f"  %o, %c = ropeattn.attention %q, %k, %v method "
                         f"{method} : ({t}, {t}, {t}) -> ({t}, {c})\n"
                         f"  return %o, %c : {t}, {c}\n}}\n")
            out = os.path.join(tmp, f"{method}.npy")
            cert = os.path.join(tmp, f"{method}_cert.npy")
            res = subprocess.run([rope_run, path, "--function=f",
                                  "--benchmark=3", f"--output=@{out}",
                                  f"--output=@{cert}"] + args,
                                 capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stderr)
                return False
            m = re.search(r"median ([0-9.]+) ms", res.stdout)
            times[method] = float(m.group(1))
            outs[method] = np.load(out)
            outs[method + "_cert"] = np.load(cert)
    err = float(np.max(np.abs(outs["polynomial"] - outs["exact"])))
    vmax = float(np.max(np.abs(x[2])))
    beta, g, delta, obound, lbound = outs["polynomial_cert"]
    print(f"  exact:      {times['exact']:8.1f} ms (median of 3)")
    print(f"  polynomial: {times['polynomial']:8.1f} ms  -> "
          f"{times['exact'] / times['polynomial']:.1f}x faster")
    print(f"  certificate (the op's certificate result): beta = {beta:.4f}, "
          f"degree {int(g)}, delta = {delta:.2e}; guaranteed |O_poly - O| <= "
          f"{obound:.2e} * max|v| = {obound * vmax:.2e} (exact arithmetic)")
    print(f"  measured max |O_poly - O_exact| = {err:.2e} (max |v| = "
          f"{vmax:.2f})")
    return int(g) > 0 and err <= obound * vmax + 1e-5 * vmax


if __name__ == "__main__":
    main()
