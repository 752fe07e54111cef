#!/usr/bin/env python3
"""Benchmark driver: exact RoPE attention on the CPU.

For every configuration (batch, heads, n = m, head dim d, causal or not) it
runs, back to back:

  baseline  build/bin/rope-baseline: hand-written OpenBLAS sgemm + online
            softmax + OpenMP, RoPE applied up front (bench/baseline);
  ropeattn  build/bin/rope-run on a generated .mlir calling
            `ropeattn.attention ... rope <> method exact` (or
            `ropeattn.attention_grad` with --backward), "n/a" when rope-run is
            missing or fails;
  jax       jax.nn.dot_product_attention (jax.jit, CPU) with the same RoPE,
            when `import jax` works (optional: `pip install jax`).

and writes RESULTS/NAME.md (table), RESULTS/NAME.json (raw numbers) and
RESULTS/NAME.png (GFLOP/s vs n). See bench/README.md.

    .venv/bin/python bench/run_bench.py              # full forward run
    .venv/bin/python bench/run_bench.py --backward   # backward
    .venv/bin/python bench/run_bench.py --quick      # smoke run (< 1 min)
    .venv/bin/python bench/run_bench.py --replot bench/results/exact_cpu.json
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------

def int_list(text):
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        mult = 1
        if item.endswith("k"):
            mult, item = 1024, item[:-1]
        out.append(int(item) * mult)
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: n=256,1024, d=16,64, 2 reps, no long run")
    p.add_argument("--backward", action="store_true",
                   help="benchmark the backward (attention_grad) instead")
    p.add_argument("--n", type=int_list, default=None,
                   help="sequence lengths n = m (default 1k,4k,16k)")
    p.add_argument("--d", type=int_list, default=None,
                   help="head dimensions (default 16,64,128)")
    p.add_argument("--causal", choices=["both", "yes", "no"], default="both")
    p.add_argument("--b", type=int, default=1, help="batch (default 1)")
    p.add_argument("--hq", type=int, default=4, help="query heads (default 4)")
    p.add_argument("--hk", type=int, default=None,
                   help="key/value heads (default = hq)")
    p.add_argument("--long-n", type=int_list, default=None,
                   help="extra forward-only long run(s) at --long-d "
                        "(default 64k; 0 disables)")
    p.add_argument("--long-d", type=int, default=64)
    p.add_argument("--reps", type=int, default=None,
                   help="timed repetitions for every config (default: 5 for "
                        "n <= 4k, 3 up to 16k, 1 above)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed runs before timing (default 1; 0 for the "
                        "long run)")
    p.add_argument("--methods", default="baseline,ropeattn,jax",
                   help="comma-separated subset of baseline,ropeattn,jax")
    p.add_argument("--method-attr", default="exact",
                   help="ropeattn `method` attribute in the generated IR")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS for every method (default: all cores)")
    p.add_argument("--gomp-spincount", type=int, default=10000,
                   help="GOMP_SPINCOUNT for the child processes unless already "
                        "set (default 10000; 0 leaves libgomp's default). "
                        "libgomp's default 300k pauses (~7 ms here) let a "
                        "thread waiting at a barrier steal the core of a "
                        "working one whenever another process holds the "
                        "other core")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds allowed per method and config (default 600)")
    p.add_argument("--jax-slow-s", type=float, default=5.0,
                   help="jax gets 1 timed run and no warm-up where its run "
                        "time, extrapolated (x n*m) from the previous n, "
                        "exceeds this (default 5 s)")
    p.add_argument("--jax-max-s", type=float, default=15.0,
                   help="... and is skipped where it exceeds this "
                        "(default 15 s)")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--baseline", default=None,
                   help="rope-baseline binary (default BUILD/bin/rope-baseline)")
    p.add_argument("--rope-run", default=None,
                   help="rope-run binary (default BUILD/bin/rope-run)")
    p.add_argument("--out-dir", default=None,
                   help="where the results go (default bench/results, "
                        "bench/results/quick with --quick)")
    p.add_argument("--name", default=None,
                   help="file stem (default exact_cpu, exact_cpu_bwd)")
    p.add_argument("--keep-ir", action="store_true",
                   help="keep the generated .mlir files (printed paths)")
    args = p.parse_args(argv)

    if args.quick:
        args.n = args.n or [256, 1024]
        args.d = args.d or [16, 64]
        args.reps = args.reps or 2
        if args.long_n is None:
            args.long_n = []
    args.n = args.n or [1024, 4096, 16384]
    args.d = args.d or [16, 64, 128]
    if args.long_n is None:
        args.long_n = [65536]
    args.long_n = [n for n in args.long_n if n > 0]
    if args.backward:
        args.long_n = []            # the long run is forward only
    args.hk = args.hk or args.hq
    if args.hq % args.hk:
        p.error("--hq must be a multiple of --hk")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in args.methods:
        if m not in ("baseline", "ropeattn", "jax"):
            p.error(f"unknown method {m!r}")
    args.baseline = args.baseline or os.path.join(args.build_dir, "bin",
                                                  "rope-baseline")
    args.rope_run = args.rope_run or os.path.join(args.build_dir, "bin",
                                                  "rope-run")
    if args.out_dir is None:
        args.out_dir = os.path.join(ROOT, "bench", "results",
                                    "quick" if args.quick else "")
    args.name = args.name or ("exact_cpu_bwd" if args.backward else "exact_cpu")
    return args


def make_configs(args):
    causals = {"both": [False, True], "yes": [True], "no": [False]}[args.causal]
    cfgs = []
    for causal in causals:
        for d in args.d:
            for n in args.n:
                cfgs.append(dict(b=args.b, hq=args.hq, hk=args.hk, n=n, m=n,
                                 d=d, causal=causal, long=False))
    for n in args.long_n:
        for causal in causals:
            cfgs.append(dict(b=args.b, hq=args.hq, hk=args.hk, n=n, m=n,
                             d=args.long_d, causal=causal, long=True))
    for c in cfgs:
        if args.reps is not None:
            c["reps"] = args.reps
        else:
            c["reps"] = 5 if c["n"] <= 4096 else 3 if c["n"] <= 16384 else 1
        if args.warmup is not None:
            c["warmup"] = args.warmup
        else:
            c["warmup"] = 0 if c["long"] else 1
    # Small first: a broken method shows up early.
    cfgs.sort(key=lambda c: (c["long"], c["n"], c["d"], c["causal"]))
    return cfgs


def flops(cfg, backward):
    """FlashAttention convention: 4·N·M·D per (batch, head), causal halved,
    backward 2.5× the forward."""
    f = 4.0 * cfg["b"] * cfg["hq"] * cfg["n"] * cfg["m"] * cfg["d"]
    if cfg["causal"]:
        f *= 0.5
    return 2.5 * f if backward else f


def cfg_label(cfg):
    heads = (f"h={cfg['hq']}" if cfg["hq"] == cfg["hk"]
             else f"hq={cfg['hq']}/hk={cfg['hk']}")
    return (f"b={cfg['b']} {heads} n={cfg['n']} d={cfg['d']} "
            f"{'causal' if cfg['causal'] else 'full'}")


def run_env(args):
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    if args.gomp_spincount > 0:
        env.setdefault("GOMP_SPINCOUNT", str(args.gomp_spincount))
    return env


def run(cmd, args, timeout=None):
    """(returncode or None on timeout, combined output, seconds)."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=timeout or args.timeout, env=run_env(args))
        return proc.returncode, proc.stdout, time.monotonic() - t0
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        return None, out, time.monotonic() - t0
    except OSError as e:
        return 127, str(e), time.monotonic() - t0


def last_line(text, limit=160):
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    if not lines:
        return "(no output)"
    # Temporary file names would make every note unique.
    line = re.sub(r"'?\S*rope-bench-[^/\s]*/\S*'?", "FILE.mlir", lines[-1])
    return line[:limit]


# ---------------------------------------------------------------------------
# Output parsing (rope-baseline's format is fixed; rope-run's is parsed
# leniently: any line with "median" and a number with a time unit).
# ---------------------------------------------------------------------------

_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_UNIT = r"(ms|msec|s|sec|us|µs|usec|ns)"
_UNITS = {"s": 1e3, "sec": 1e3, "ms": 1.0, "msec": 1.0, "us": 1e-3,
          "µs": 1e-3, "usec": 1e-3, "ns": 1e-6}


def parse_stat(text, key):
    """Milliseconds of `key` (median/min/max) in a benchmark printout, or None.

    Takes the first line containing `key` followed by a number: preferably a
    number with a time unit ('median 12.3 ms', 'median: 0.0123 s'), else the
    first number, in the unit named before it ('median_ms=12.3',
    'median (us): 12300') or ms."""
    for line in text.splitlines():
        pos = line.lower().find(key)
        if pos < 0:
            continue
        rest = line[pos + len(key):]
        m = re.search(_NUM + r"\s*" + _UNIT + r"(?![A-Za-z])", rest)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
        m = re.search(_NUM, rest)
        if not m:
            continue
        u = re.search(r"(?<![A-Za-z])" + _UNIT + r"(?![A-Za-z])",
                      rest[:m.start()].replace("_", " "))
        return float(m.group(1)) * (_UNITS[u.group(1)] if u else 1.0)
    return None


def parse_timing(text):
    med = parse_stat(text, "median")
    if med is None or not math.isfinite(med) or med <= 0:
        return None
    return dict(ms=med, min_ms=parse_stat(text, "min"),
                max_ms=parse_stat(text, "max"))


# ---------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------

def bench_baseline(cfg, args):
    if not os.access(args.baseline, os.X_OK):
        return dict(status="n/a", note=f"{args.baseline} not built")
    cmd = [args.baseline, f"--b={cfg['b']}", f"--hq={cfg['hq']}",
           f"--hk={cfg['hk']}", f"--n={cfg['n']}", f"--m={cfg['m']}",
           f"--d={cfg['d']}", f"--reps={cfg['reps']}",
           f"--warmup={cfg['warmup']}"]
    if cfg["causal"]:
        cmd.append("--causal")
    if args.backward:
        cmd.append("--backward")
    rc, out, wall = run(cmd, args)
    if rc is None:
        return dict(status="timeout", note=f"rope-baseline > {args.timeout:.0f} s")
    t = parse_timing(out) if rc == 0 else None
    if t is None:
        return dict(status="failed", note=f"rope-baseline: {last_line(out)}")
    t.update(status="ok", cmd=" ".join(shlex.quote(c) for c in cmd),
             wall_s=wall)
    return t


def tensor(*dims):
    return "tensor<" + "x".join(str(x) for x in dims) + "xf32>"


def mlir_source(cfg, backward, method):
    b, hq, hk, n, m, d = (cfg[k] for k in ("b", "hq", "hk", "n", "m", "d"))
    tq, tk, tl = tensor(b, hq, n, d), tensor(b, hk, m, d), tensor(b, hq, n)
    attrs = ("causal " if cfg["causal"] else "") + "rope <>"
    if method:
        attrs += f" method {method}"
    if not backward:
        return (
            f"func.func @fwd(%q: {tq}, %k: {tk}, %v: {tk}) -> {tq} {{\n"
            f"  %o = ropeattn.attention %q, %k, %v {attrs}"
            f" : ({tq}, {tk}, {tk}) -> {tq}\n"
            f"  return %o : {tq}\n"
            f"}}\n"), "fwd", [tq, tk, tk]
    return (
        f"func.func @bwd(%q: {tq}, %k: {tk}, %v: {tk}, %o: {tq}, %do: {tq},"
        f" %lse: {tl}) -> ({tq}, {tk}, {tk}) {{\n"
        f"  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do"
        f" logsumexp(%lse) {attrs}"
        f" : ({tq}, {tk}, {tk}, {tq}, {tq}, {tl}) -> ({tq}, {tk}, {tk})\n"
        f"  return %dq, %dk, %dv : {tq}, {tk}, {tk}\n"
        f"}}\n"), "bwd", [tq, tk, tk, tq, tq, tl]


def bench_ropeattn(cfg, args, tmpdir, timeout):
    if not os.access(args.rope_run, os.X_OK):
        return dict(status="n/a", note=f"{args.rope_run} not built")
    src, fn, types = mlir_source(cfg, args.backward, args.method_attr)
    path = os.path.join(tmpdir, f"{fn}_n{cfg['n']}_d{cfg['d']}_"
                                f"{'causal' if cfg['causal'] else 'full'}.mlir")
    with open(path, "w") as f:
        f.write(src)
    if args.keep_ir:
        print(f"  ir: {path}", file=sys.stderr)
    cmd = [args.rope_run, path, f"--function={fn}"]
    for i, ty in enumerate(types):
        shape = ty[len("tensor<"):-1]
        cmd.append(f"--input={shape}=random:{i + 1}")
    cmd.append(f"--benchmark={cfg['reps']}")
    rc, out, _ = run(cmd, args, timeout=timeout)
    if rc is None:
        return dict(status="timeout", note=f"rope-run: no result within "
                                           f"{timeout:.0f} s")
    if rc != 0:
        return dict(status="failed",
                    note=f"rope-run exit {rc}: {last_line(out)}")
    t = parse_timing(out)
    if t is None:
        return dict(status="failed",
                    note=f"no 'median ... ms' in rope-run output: "
                         f"{last_line(out)}")
    t.update(status="ok", cmd=" ".join(shlex.quote(c) for c in cmd))
    return t


_JAX = {"checked": False, "mod": None, "why": ""}


def load_jax():
    if not _JAX["checked"]:
        _JAX["checked"] = True
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        try:
            import jax  # noqa: F401
            import jax.numpy  # noqa: F401
            _JAX["mod"] = jax
        except Exception as e:   # ImportError, or a broken install
            _JAX["why"] = f"jax not importable ({type(e).__name__}; "\
                          "pip install jax)"
    return _JAX["mod"]


def mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def bench_jax(cfg, args, predicted_s=None):
    jax = load_jax()
    if jax is None:
        return dict(status="n/a", note=_JAX["why"])
    import numpy as np
    import jax.numpy as jnp

    b, hq, hk, n, m, d = (cfg[k] for k in ("b", "hq", "hk", "n", "m", "d"))
    # The XLA CPU path materializes the [B, H, N, M] logits (and more for the
    # backward): skip what cannot fit.
    need = 4.0 * b * hq * n * m * (6 if args.backward else 3)
    avail = mem_available()
    if avail is not None and need > 0.8 * avail:
        return dict(status="n/a", note=f"jax: skipped where its [B, H, N, M] "
                                       "intermediates would exceed 80% of "
                                       "the available memory")
    if n != m:
        return dict(status="n/a", note="jax is_causal is top-left aligned")
    reps, warmup = cfg["reps"], cfg["warmup"]
    if predicted_s is not None and predicted_s > args.jax_max_s:
        return dict(status="skipped",
                    note=f"jax: skipped where its run time, extrapolated from "
                         f"the previous n, exceeds {args.jax_max_s:g} s "
                         "(--jax-max-s)")
    if predicted_s is not None and predicted_s > args.jax_slow_s:
        reps, warmup = 1, 0
    rng = np.random.default_rng(0)
    # jax.nn.dot_product_attention takes [B, T, heads, D].
    q = rng.uniform(-1, 1, (b, n, hq, d)).astype(np.float32)
    k = rng.uniform(-1, 1, (b, m, hk, d)).astype(np.float32)
    v = rng.uniform(-1, 1, (b, m, hk, d)).astype(np.float32)
    half = d // 2
    theta = 10000.0 ** (-2.0 * np.arange(half, dtype=np.float64) / d)

    def table(pos):
        phi = pos.astype(np.float64)[:, None] * theta[None, :]
        return (np.cos(phi).astype(np.float32)[None, :, None, :],
                np.sin(phi).astype(np.float32)[None, :, None, :])

    cq, sq = table((m - n) + np.arange(n))
    ck, sk = table(np.arange(m))
    causal = cfg["causal"]

    def rot(x, c, s):
        xu, xw = x[..., :half], x[..., half:]
        return jnp.concatenate([xu * c - xw * s, xu * s + xw * c], axis=-1)

    def fwd(q, k, v, cq, sq, ck, sk):
        return jax.nn.dot_product_attention(rot(q, cq, sq), rot(k, ck, sk), v,
                                            is_causal=causal)

    if args.backward:
        def fn(q, k, v, do, cq, sq, ck, sk):
            _, vjp = jax.vjp(lambda a, b_, c: fwd(a, b_, c, cq, sq, ck, sk),
                             q, k, v)
            return vjp(do)
        do = rng.uniform(-1, 1, (b, n, hq, d)).astype(np.float32)
        inputs = (q, k, v, do, cq, sq, ck, sk)
    else:
        fn = fwd
        inputs = (q, k, v, cq, sq, ck, sk)
    try:
        f = jax.jit(fn)
        dev = [jnp.asarray(x) for x in inputs]
        jax.block_until_ready(f(*dev))          # compile + first run
        for _ in range(warmup):
            jax.block_until_ready(f(*dev))
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            jax.block_until_ready(f(*dev))
            times.append((time.perf_counter() - t0) * 1e3)
    except Exception as e:  # out of memory, unsupported shape, ...
        return dict(status="failed", note=f"jax: {type(e).__name__}: "
                                          f"{str(e).splitlines()[0][:120]}")
    return dict(status="ok", ms=statistics.median(times), min_ms=min(times),
                max_ms=max(times), reps=reps, warmup=warmup)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def machine_info(args):
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(l.split(":", 1) for l in out.splitlines() if ":" in l)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields.get("Model name", platform.processor())
        info["cpus"] = fields.get("CPU(s)", str(os.cpu_count()))
        info["threads_per_core"] = fields.get("Thread(s) per core", "?")
        flags = fields.get("Flags", "").split()
        info["simd"] = ", ".join(f for f in ("avx2", "fma", "avx512f")
                                 if f in flags)
    except OSError:
        info["cpu"], info["cpus"] = platform.processor(), str(os.cpu_count())
    info["nproc"] = os.cpu_count()
    if os.access(args.baseline, os.X_OK):
        rc, out, _ = run([args.baseline, "--info"], args, timeout=30)
        if rc == 0:
            info["baseline"] = last_line(out, 400).replace("rope-baseline: ",
                                                           "")
    try:
        info["commit"] = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", ROOT, "status", "--porcelain", "--", "bench"],
            capture_output=True, text=True).stdout.strip()
        if dirty:
            info["commit"] += " (bench/ modified)"
    except OSError:
        info["commit"] = "?"
    return info


def fmt_ms(r):
    return f"{r['ms']:.2f}" if r.get("status") == "ok" else r.get("status", "n/a")


def fmt_gf(r):
    return f"{r['gflops']:.1f}" if r.get("status") == "ok" else "n/a"


def command_line():
    exe = sys.executable or "python3"
    if exe.startswith(ROOT + os.sep):
        exe = os.path.relpath(exe, ROOT)
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    return " ".join(shlex.quote(a) for a in [exe, script] + sys.argv[1:])


def write_markdown(path, args, info, results, meta, methods):
    direction = "backward" if args.backward else "forward"
    started = datetime.datetime.fromisoformat(meta["started"])
    cmd, elapsed = meta["command"], meta["elapsed_s"]
    load_before, load_after = meta["load_before"], meta["load_after"]
    lines = [
        f"# Exact RoPE attention on the CPU ({direction})",
        "",
        f"- Machine: {info.get('cpu', '?')}, {info.get('cpus', '?')} CPUs "
        f"({info.get('threads_per_core', '?')} thread(s) per core; "
        f"{info.get('simd', '')}); {info.get('platform', '')}",
        f"- Baseline build: {info.get('baseline', 'n/a')}",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()}; "
        f"commit {info.get('commit', '?')}; total {elapsed / 60:.1f} min",
        f"- Command (from the repository root): `{cmd}`",
        f"- Load average (1 min) before / after: {load_before:.2f} / "
        f"{load_after:.2f} (other processes distort timings on this machine)",
        f"- jax: {info.get('jax', 'not used')}",
        f"- Threads: {meta['threads']}",
        "",
        "Median wall time over `reps` timed runs after `warmup` untimed ones "
        "(rope-baseline `--reps/--warmup`; rope-run `--benchmark=reps`; jax "
        "in-process after a compile run). GFLOP/s use the FlashAttention "
        "convention: forward 4·N·M·D per (batch, head), backward 2.5× that, "
        "causal halved, computed from the median. "
        "`ropeattn/baseline` is the GFLOP/s ratio (> 1: ropeattn faster). "
        "All methods apply RoPE (base 10000, half layout); fp32; n = m.",
        "",
    ]
    header = "| config | reps |"
    sep = "|---|---|"
    for m in methods:
        header += f" {m} ms | {m} GFLOP/s |"
        sep += "---:|---:|"
    if "baseline" in methods and "ropeattn" in methods:
        header += " ropeattn/baseline |"
        sep += "---:|"
    lines += [header, sep]
    notes = []
    for r in results:
        reps = str(r["cfg"]["reps"])
        if r.get("jax", {}).get("status") == "ok" and \
                r["jax"].get("reps", r["cfg"]["reps"]) != r["cfg"]["reps"]:
            reps += f" (jax {r['jax']['reps']})"
        row = f"| {cfg_label(r['cfg'])} | {reps} |"
        for m in methods:
            res = r[m]
            row += f" {fmt_ms(res)} | {fmt_gf(res)} |"
            if res.get("status") != "ok" and res.get("note"):
                if res["note"] not in notes:
                    notes.append(res["note"])
        if "baseline" in methods and "ropeattn" in methods:
            a, b = r["ropeattn"], r["baseline"]
            ratio = (f"{a['gflops'] / b['gflops']:.2f}"
                     if a.get("status") == "ok" and b.get("status") == "ok"
                     else "n/a")
            row += f" {ratio} |"
        lines.append(row)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    if args.backward and "jax" in methods:
        lines += ["", "jax backward is `jax.vjp` of the forward: its time "
                      "includes the forward pass."]
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_plot(path, args, results, methods):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:
        print(f"warning: no plot ({e})", file=sys.stderr)
        return False
    ds = sorted({r["cfg"]["d"] for r in results})
    ns = sorted({r["cfg"]["n"] for r in results})
    causals = sorted({r["cfg"]["causal"] for r in results})
    fig, axes = plt.subplots(len(ds), len(causals), squeeze=False,
                             figsize=(5.5 * len(causals), 3.2 * len(ds)),
                             sharex=True)
    styles = {"baseline": "o-", "ropeattn": "s-", "jax": "^--"}
    for i, d in enumerate(ds):
        for j, causal in enumerate(causals):
            ax = axes[i][j]
            rows = sorted((r for r in results if r["cfg"]["d"] == d
                           and r["cfg"]["causal"] == causal),
                          key=lambda r: r["cfg"]["n"])
            for m in methods:
                pts = [(r["cfg"]["n"], r[m]["gflops"]) for r in rows
                       if r[m].get("status") == "ok"]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts],
                            styles.get(m, "x-"), label=m)
            ax.set_xscale("log", base=2)
            ax.set_xticks(ns)
            ax.set_xticklabels([f"{n // 1024}k" if n % 1024 == 0 else str(n)
                                for n in ns])
            ax.minorticks_off()
            ax.set_title(f"d={d}, {'causal' if causal else 'non-causal'}",
                         fontsize=10)
            ax.grid(True, alpha=0.3)
            top = max([r[m]["gflops"] for r in rows for m in methods
                       if r[m].get("status") == "ok"], default=1.0)
            ax.set_ylim(0, 1.12 * top)
            if j == 0:
                ax.set_ylabel("GFLOP/s")
            if i == len(ds) - 1:
                ax.set_xlabel("n = m")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.suptitle(f"exact RoPE attention, CPU, "
                 f"{'backward' if args.backward else 'forward'} "
                 f"(b={args.b}, hq={args.hq}, hk={args.hk}, fp32)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def write_outputs(stem, args, info, results, meta):
    methods = args.methods
    write_markdown(stem + ".md", args, info, results, meta, methods)
    plotted = write_plot(stem + ".png", args, results, methods)
    return plotted


def replot(path):
    """Rewrites NAME.md and NAME.png next to NAME.json from its contents."""
    with open(path) as f:
        data = json.load(f)
    args = argparse.Namespace(**data["args"])
    stem = os.path.splitext(path)[0]
    write_outputs(stem, args, data["machine"], data["results"], data["meta"])
    print(f"run_bench: rewrote {stem}.md and {stem}.png", file=sys.stderr)
    return 0


def main(argv):
    if argv[:1] == ["--replot"]:
        if len(argv) != 2:
            print("usage: run_bench.py --replot RESULTS.json", file=sys.stderr)
            return 2
        return replot(argv[1])
    args = parse_args(argv)
    cfgs = make_configs(args)
    methods = args.methods
    os.makedirs(args.out_dir, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.monotonic()
    load_before = os.getloadavg()[0]
    info = machine_info(args)
    print(f"run_bench: {len(cfgs)} configs x {methods} "
          f"({'backward' if args.backward else 'forward'}) on "
          f"{info.get('cpu', '?')}, {info.get('cpus', '?')} CPUs; "
          f"load {load_before:.2f}", file=sys.stderr)
    if load_before > 0.5:
        print("run_bench: warning: the machine is busy (load average "
              f"{load_before:.2f}); timings will be noisy", file=sys.stderr)

    results = []
    # (method, d, causal) -> n at which the method ran out of time: larger n
    # are skipped, which bounds the run when a method is far too slow.
    gave_up = {}
    last_ok = {}     # (method, d, causal) -> (cfg, median ms) at the last n
    tmpdir = tempfile.mkdtemp(prefix="rope-bench-")
    try:
        for idx, cfg in enumerate(cfgs, 1):
            entry = {"cfg": cfg}
            f = flops(cfg, args.backward)
            # A method gets 30x the baseline's wall time (at least 60 s, at
            # most --timeout) per config.
            timeout = args.timeout
            for m in ("baseline", "ropeattn", "jax"):
                if m not in methods:
                    entry[m] = dict(status="skipped")
                    continue
                key = (m, cfg["d"], cfg["causal"])
                if key in gave_up and cfg["n"] > gave_up[key]:
                    res = dict(status="skipped",
                               note=f"{m}: skipped above n={gave_up[key]} "
                                    "(timed out there)")
                elif m == "baseline":
                    res = bench_baseline(cfg, args)
                    if res.get("status") == "ok":
                        timeout = min(args.timeout,
                                      max(60.0, 30.0 * res["wall_s"]))
                elif m == "ropeattn":
                    res = bench_ropeattn(cfg, args, tmpdir, timeout)
                else:
                    prev = last_ok.get(key)
                    pred = (None if prev is None else prev[1] * 1e-3 *
                            (cfg["n"] * cfg["m"]) / (prev[0]["n"] * prev[0]["m"]))
                    res = bench_jax(cfg, args, pred)
                if res.get("status") == "ok":
                    last_ok[key] = (cfg, res["ms"])
                if res.get("status") == "timeout":
                    gave_up[key] = cfg["n"]
                if res.get("status") == "ok":
                    res["gflops"] = f / (res["ms"] * 1e6)
                entry[m] = res
            results.append(entry)
            msg = "; ".join(
                f"{m} " + (f"{entry[m]['ms']:.2f} ms {entry[m]['gflops']:.1f} "
                           f"GFLOP/s" if entry[m].get("status") == "ok"
                           else entry[m].get("status", "?"))
                for m in methods)
            print(f"[{idx}/{len(cfgs)}] {cfg_label(cfg)} reps={cfg['reps']}: "
                  f"{msg}  ({(time.monotonic() - t_start) / 60:.1f} min)",
                  file=sys.stderr)
    finally:
        if not args.keep_ir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    if _JAX["mod"] is not None:
        info["jax"] = f"{_JAX['mod'].__version__} ({_JAX['mod'].devices()[0]})"
    elif "jax" in methods:
        info["jax"] = _JAX["why"] or "not used"
    elapsed = time.monotonic() - t_start
    load_after = os.getloadavg()[0]
    stem = os.path.join(args.out_dir, args.name)
    env = run_env(args)
    meta = dict(command=command_line(), started=started.isoformat(),
                elapsed_s=elapsed, load_before=load_before,
                load_after=load_after,
                threads=f"OMP_NUM_THREADS="
                        f"{env.get('OMP_NUM_THREADS', 'unset (all cores)')}; "
                        f"GOMP_SPINCOUNT={env.get('GOMP_SPINCOUNT', 'unset')}")
    with open(stem + ".json", "w") as f:
        json.dump({"args": vars(args), "machine": info, "meta": meta,
                   "results": results}, f, indent=1)
    plotted = write_outputs(stem, args, info, results, meta)
    print(f"run_bench: wrote {stem}.md, {stem}.json"
          + (f", {stem}.png" if plotted else "")
          + f" in {elapsed / 60:.1f} min", file=sys.stderr)
    failed = [r for r in results
              if r.get("baseline", {}).get("status") not in ("ok", "skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
