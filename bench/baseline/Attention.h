//===- Attention.h - hand-written OpenBLAS attention baseline ----*- C++
//-*-===//
//
// Part of the ropeattn project.
//
// The CPU attention "a user would write": RoPE applied up front to q and k,
// then a flash-style blocked forward (sgemm per block pair, online softmax)
// and the FlashAttention-2 backward from the saved logsumexp, parallel with
// OpenMP, OpenBLAS single-threaded inside. Semantics: docs/Spec.md §6–§7 for
// fp32, no bias, `rope <>` (base 10000, half layout, rotary_dim = D, offset 0)
// when `rope` is set.
//
// Layout: q [B, Hq, N, D], k [B, Hk, M, D], v [B, Hk, M, Dv], o / dO
// [B, Hq, N, Dv], lse [B, Hq, N], all contiguous row-major float32.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_BENCH_BASELINE_ATTENTION_H
#define ROPEATTN_BENCH_BASELINE_ATTENTION_H

#include <cstdint>

namespace ropebaseline {

struct Problem {
  int64_t b = 1, hq = 1, hk = 1, n = 1, m = 1, d = 1, dv = 1;
  bool causal = false;
  bool rope = true;
  double ropeBase = 10000.0;
  /// Softmax scale s; the caller sets it (default 1/√D).
  float scale = 1.0f;

  int64_t group() const { return hq / hk; }
  /// FlashAttention convention: 2·N·M·(D + Dv) per (batch, query head)
  /// (= 4·N·M·D when Dv = D), halved with `causal`; backward 2.5×.
  double forwardFlops() const;
  double backwardFlops() const { return 2.5 * forwardFlops(); }
};

enum class Variant {
  /// Flash-style: query blocks × key blocks, online softmax.
  Blocked,
  /// The full N × M logits per head, one sgemm, scalar softmax (checks only).
  Plain,
};

struct Blocking {
  int64_t blockQ = 128;
  int64_t blockK = 256;
};

/// Must be called once before the kernels: OpenBLAS single-threaded (the
/// parallelism is OpenMP's, over heads and query blocks).
void initBlas();

/// o and lse (lse = −∞ and o = 0 on rows with no visible key).
void attentionForward(const Problem &p, Variant variant, const Blocking &blk,
                      const float *q, const float *k, const float *v, float *o,
                      float *lse);

/// dq, dk, dv from the forward's o and lse.
void attentionBackward(const Problem &p, Variant variant, const Blocking &blk,
                       const float *q, const float *k, const float *v,
                       const float *o, const float *lse, const float *dO,
                       float *dq, float *dk, float *dv);

} // namespace ropebaseline

#endif // ROPEATTN_BENCH_BASELINE_ATTENTION_H
