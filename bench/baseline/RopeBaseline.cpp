//===- RopeBaseline.cpp - CLI of the OpenBLAS attention baseline ----------===//
//
// Part of the ropeattn project.
//
//   rope-baseline --b=1 --hq=8 --hk=8 --n=4096 --m=4096 --d=64 [--dv=D]
//                 [--causal] [--backward] [--no-rope] [--scale=S]
//                 [--reps=N] [--warmup=W] [--threads=T] [--plain]
//                 [--block-q=BQ] [--block-k=BK] [--seed=S]
//                 [--in-dir=DIR] [--out-dir=DIR]
//
// With --in-dir the shapes come from DIR/{q,k,v}.npy (and do.npy with
// --backward; leading dimensions before [H, N, D] are batch dimensions);
// otherwise the inputs are uniform random in [−1, 1). With --out-dir the
// results go to o.npy, lse.npy (and dq.npy, dk.npy, dv.npy).
//
//===----------------------------------------------------------------------===//

#include "Attention.h"
#include "NpyIO.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

extern "C" char *openblas_get_config(void);
extern "C" char *openblas_get_corename(void);

using namespace ropebaseline;

namespace {

const char *kUsage =
    "usage: rope-baseline [--b=1 --hq=8 --hk=8 --n=4096 --m=4096 --d=64 "
    "--dv=D]\n"
    "         [--causal] [--backward] [--no-rope] [--scale=S] [--rope-base=F]\n"
    "         [--reps=N] [--warmup=W] [--threads=T] [--plain]\n"
    "         [--block-q=128] [--block-k=256] [--seed=1]\n"
    "         [--in-dir=DIR] [--out-dir=DIR]\n"
    "       rope-baseline --info   (OpenBLAS build, kernels, threads)\n"
    "       rope-baseline --sgemm=N [--k=N] [--cols=N] [--reps=R]\n"
    "         (the machine's fp32 matmul throughput: OpenBLAS sgemm of\n"
    "          [N, k] x [k, cols], all threads; median GFLOP/s)\n"
    "Attention forward (or forward + timed backward) of fp32 [B, H, N, D]\n"
    "tensors with RoPE (base 10000, half layout) applied up front, OpenBLAS\n"
    "sgemm + online softmax, OpenMP. --reps prints median/min/max ms and\n"
    "GFLOP/s (forward 4*N*M*D per batch*head, backward 2.5x, causal 0.5x).\n";

[[noreturn]] void fail(const std::string &msg) {
  std::fprintf(stderr, "rope-baseline: error: %s\n", msg.c_str());
  std::exit(1);
}

struct Args {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> used;

  bool has(const std::string &key) {
    used[key] = true;
    return values.count(key) != 0;
  }
  std::string str(const std::string &key, const std::string &def) {
    return has(key) ? values[key] : def;
  }
  int64_t integer(const std::string &key, int64_t def) {
    if (!has(key))
      return def;
    char *end = nullptr;
    long long v = std::strtoll(values[key].c_str(), &end, 10);
    if (values[key].empty() || *end != '\0')
      fail("--" + key + " expects an integer, got '" + values[key] + "'");
    return v;
  }
  double real(const std::string &key, double def) {
    if (!has(key))
      return def;
    char *end = nullptr;
    double v = std::strtod(values[key].c_str(), &end);
    if (values[key].empty() || *end != '\0')
      fail("--" + key + " expects a number, got '" + values[key] + "'");
    return v;
  }
  bool flag(const std::string &key) {
    if (!has(key))
      return false;
    if (!values[key].empty())
      fail("--" + key + " takes no value");
    return true;
  }
};

NpyArray load(const std::string &dir, const std::string &name) {
  NpyArray a;
  std::string error;
  if (!readNpy(dir + "/" + name, a, error))
    fail(error);
  if (a.shape.size() < 3)
    fail(name + ": expected rank >= 3 ([B.., H, N, D])");
  return a;
}

void store(const std::string &dir, const std::string &name,
           const std::vector<int64_t> &shape, const std::vector<float> &data) {
  std::string error;
  if (!writeNpy(dir + "/" + name, shape, data.data(), error))
    fail(error);
}

void fillRandom(std::vector<float> &x, uint64_t &state) {
  for (float &e : x) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    e = static_cast<float>((state >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
  }
}

double nowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch())
      .count();
}

} // namespace

int main(int argc, char **argv) {
#ifdef ROPEATTN_BASELINE_AVX2
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    fail("built with AVX2/FMA kernels but this CPU lacks them; reconfigure "
         "with -DROPEATTN_BASELINE_SIMD=OFF");
#endif
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a.rfind("--", 0) != 0)
      fail("unexpected argument '" + a + "'\n" + kUsage);
    std::string::size_type eq = a.find('=');
    if (eq == std::string::npos)
      args.values[a.substr(2)] = "";
    else
      args.values[a.substr(2, eq - 2)] = a.substr(eq + 1);
  }

  if (args.flag("info")) {
#ifdef ROPEATTN_BASELINE_AVX2
    const char *kernels = "avx2+fma";
#else
    const char *kernels = "portable";
#endif
    std::printf("rope-baseline: openblas %s (core %s), softmax kernels %s, "
                "%d OpenMP threads\n",
                openblas_get_config(), openblas_get_corename(), kernels,
                omp_get_max_threads());
    return 0;
  }

  if (args.has("sgemm")) {
    // The reference fp32 throughput ("machine peak" in bench/): one
    // OpenBLAS sgemm, C = A·B, with all of OpenBLAS's threads.
    const int64_t n = args.integer("sgemm", 2048);
    const int64_t k = args.integer("k", n), cols = args.integer("cols", n);
    const int64_t reps = args.integer("reps", 5);
    if (n <= 0 || k <= 0 || cols <= 0 || reps <= 0)
      fail("--sgemm, --k, --cols and --reps must be positive");
    std::vector<float> a(n * k, 0.5f), b(k * cols, 0.25f), c(n * cols);
    std::vector<double> times;
    for (int64_t r = -1; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, cols, k, 1.0f,
                  a.data(), k, b.data(), cols, 0.0f, c.data(), cols);
      auto t1 = std::chrono::steady_clock::now();
      if (r >= 0)
        times.push_back(
            std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    const double flops = 2.0 * n * k * cols;
    std::printf("sgemm %lldx%lldx%lld: median %.3f ms  %.2f GFLOP/s\n",
                (long long)n, (long long)k, (long long)cols, median,
                flops / (median * 1e6));
    return 0;
  }

  Problem p;
  const std::string inDir = args.str("in-dir", "");
  const std::string outDir = args.str("out-dir", "");
  const bool backward = args.flag("backward");
  p.causal = args.flag("causal");
  p.rope = !args.flag("no-rope");
  p.ropeBase = args.real("rope-base", 10000.0);
  const Variant variant =
      args.flag("plain") ? Variant::Plain : Variant::Blocked;
  Blocking blk;
  blk.blockQ = args.integer("block-q", blk.blockQ);
  blk.blockK = args.integer("block-k", blk.blockK);
  const int64_t reps = args.integer("reps", 1);
  const int64_t warmup = args.integer("warmup", args.has("reps") ? 1 : 0);
  const int64_t threads = args.integer("threads", 0);
  uint64_t seed = static_cast<uint64_t>(args.integer("seed", 1));

  std::vector<int64_t> batchShape;
  std::vector<float> q, k, v, dO;
  if (!inDir.empty()) {
    NpyArray qa = load(inDir, "q.npy"), ka = load(inDir, "k.npy"),
             va = load(inDir, "v.npy");
    const size_t rank = qa.shape.size();
    if (ka.shape.size() != rank || va.shape.size() != rank)
      fail("q, k, v must share one rank");
    batchShape.assign(qa.shape.begin(), qa.shape.end() - 3);
    p.b = 1;
    for (size_t i = 0; i + 3 < rank; ++i) {
      if (ka.shape[i] != qa.shape[i] || va.shape[i] != qa.shape[i])
        fail("batch dimensions of q, k, v must agree");
      p.b *= qa.shape[i];
    }
    p.hq = qa.shape[rank - 3];
    p.n = qa.shape[rank - 2];
    p.d = qa.shape[rank - 1];
    p.hk = ka.shape[rank - 3];
    p.m = ka.shape[rank - 2];
    p.dv = va.shape[rank - 1];
    if (ka.shape[rank - 1] != p.d || va.shape[rank - 3] != p.hk ||
        va.shape[rank - 2] != p.m)
      fail("inconsistent q/k/v shapes");
    q = std::move(qa.data);
    k = std::move(ka.data);
    v = std::move(va.data);
    if (backward) {
      NpyArray da = load(inDir, "do.npy");
      std::vector<int64_t> want = batchShape;
      want.insert(want.end(), {p.hq, p.n, p.dv});
      if (da.shape != want)
        fail("do.npy must have the shape of the output [B.., Hq, N, Dv]");
      dO = std::move(da.data);
    }
  } else {
    p.b = args.integer("b", 1);
    p.hq = args.integer("hq", 8);
    p.hk = args.integer("hk", p.hq);
    p.n = args.integer("n", 4096);
    p.m = args.integer("m", p.n);
    p.d = args.integer("d", 64);
    p.dv = args.integer("dv", p.d);
    batchShape = {p.b};
  }
  p.scale = static_cast<float>(args.real("scale", 1.0 / std::sqrt(p.d)));
  for (auto &kv : args.values)
    if (!args.used.count(kv.first))
      fail("unknown or inapplicable option --" + kv.first + "\n" + kUsage);
  if (p.b < 1 || p.hq < 1 || p.hk < 1 || p.n < 1 || p.m < 1 || p.d < 1 ||
      p.dv < 1)
    fail("all sizes must be >= 1");
  if (p.hq % p.hk != 0)
    fail("hq must be a multiple of hk");
  if (p.rope && p.d % 2 != 0)
    fail("rope needs an even head dimension (use --no-rope)");
  if (blk.blockQ < 1 || blk.blockK < 1 || reps < 1 || warmup < 0)
    fail("block sizes and --reps must be >= 1, --warmup >= 0");

  if (threads > 0)
    omp_set_num_threads(static_cast<int>(threads));
  initBlas();

  if (inDir.empty()) {
    q.resize(p.b * p.hq * p.n * p.d);
    k.resize(p.b * p.hk * p.m * p.d);
    v.resize(p.b * p.hk * p.m * p.dv);
    fillRandom(q, seed);
    fillRandom(k, seed);
    fillRandom(v, seed);
    if (backward) {
      dO.resize(p.b * p.hq * p.n * p.dv);
      fillRandom(dO, seed);
    }
  }

  std::vector<float> o(p.b * p.hq * p.n * p.dv), lse(p.b * p.hq * p.n);
  std::vector<float> dq, dk, dv;
  if (backward) {
    dq.resize(q.size());
    dk.resize(k.size());
    dv.resize(v.size());
    attentionForward(p, variant, blk, q.data(), k.data(), v.data(), o.data(),
                     lse.data());
  }
  auto runOnce = [&] {
    if (backward)
      attentionBackward(p, variant, blk, q.data(), k.data(), v.data(), o.data(),
                        lse.data(), dO.data(), dq.data(), dk.data(), dv.data());
    else
      attentionForward(p, variant, blk, q.data(), k.data(), v.data(), o.data(),
                       lse.data());
  };
  for (int64_t i = 0; i < warmup; ++i)
    runOnce();
  std::vector<double> times;
  for (int64_t i = 0; i < reps; ++i) {
    double t0 = nowMs();
    runOnce();
    times.push_back(nowMs() - t0);
  }
  std::sort(times.begin(), times.end());
  const double median =
      times.size() % 2
          ? times[times.size() / 2]
          : 0.5 * (times[times.size() / 2 - 1] + times[times.size() / 2]);
  const double flops = backward ? p.backwardFlops() : p.forwardFlops();
  std::printf("rope-baseline: %s %s b=%lld hq=%lld hk=%lld n=%lld m=%lld "
              "d=%lld dv=%lld causal=%d rope=%d threads=%d block=%lldx%lld\n",
              backward ? "backward" : "forward",
              variant == Variant::Plain ? "plain" : "blocked", (long long)p.b,
              (long long)p.hq, (long long)p.hk, (long long)p.n, (long long)p.m,
              (long long)p.d, (long long)p.dv, p.causal ? 1 : 0, p.rope ? 1 : 0,
              omp_get_max_threads(), (long long)blk.blockQ,
              (long long)blk.blockK);
  std::printf("median %.3f ms  min %.3f ms  max %.3f ms  %.2f GFLOP/s  "
              "(reps=%lld, %.4g GFLOP)\n",
              median, times.front(), times.back(), flops / (median * 1e6),
              (long long)reps, flops * 1e-9);

  if (!outDir.empty()) {
    std::vector<int64_t> oShape = batchShape, lseShape = batchShape;
    oShape.insert(oShape.end(), {p.hq, p.n, p.dv});
    lseShape.insert(lseShape.end(), {p.hq, p.n});
    store(outDir, "o.npy", oShape, o);
    store(outDir, "lse.npy", lseShape, lse);
    if (backward) {
      std::vector<int64_t> qShape = batchShape, kShape = batchShape,
                           vShape = batchShape;
      qShape.insert(qShape.end(), {p.hq, p.n, p.d});
      kShape.insert(kShape.end(), {p.hk, p.m, p.d});
      vShape.insert(vShape.end(), {p.hk, p.m, p.dv});
      store(outDir, "dq.npy", qShape, dq);
      store(outDir, "dk.npy", kShape, dk);
      store(outDir, "dv.npy", vShape, dv);
    }
  }
  return 0;
}
