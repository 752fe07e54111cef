//===- Attention.cpp - hand-written OpenBLAS attention baseline -----------===//
//
// Part of the ropeattn project.
//
// Forward (per (batch, query head, query block), OpenMP dynamic schedule):
//   for each key block that is not fully masked:
//     S = (s·log2 e)·Q_blk·K_blkᵀ                       (sgemm)
//     m' = max(m, rowmax S), P = 2^(S − m'), c = 2^(m − m')
//     l = c·l + rowsum P, O_blk = c·O_blk + P·V_blk      (sgemm)
//   O = O_blk / l, lse = ln 2·(m + log2 l).
// Working in base 2 folds log2 e into the sgemm's alpha.
//
// Backward (FlashAttention-2, per (batch, kv head): the thread owns dK/dV of
// the kv head and dQ of its query heads, so no atomics):
//   Δ = rowsum(dO ∘ O); per block pair: P = 2^(S − lse·log2 e),
//   dV += Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − Δ), dQ += s·dS K, dK += s·dSᵀ Q.
//
// RoPE is applied up front (q̃ = R(M − N + i) q_i, k̃ = R(j) k_j, cos/sin of
// f64 angles rounded to f32) and the gradients are rotated back (Rᵀ).
//
//===----------------------------------------------------------------------===//

#include "Attention.h"
#include "VecMath.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

extern "C" void openblas_set_num_threads(int numThreads);

namespace ropebaseline {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr double kLn2 = 0.69314718055994530942;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Number of visible keys of query row i among [j0, j0 + cols): causal row i
/// sees j ≤ i + (M − N).
int64_t visibleCount(const Problem &p, int64_t i, int64_t j0, int64_t cols) {
  if (!p.causal)
    return cols;
  return std::clamp<int64_t>(i + (p.m - p.n) - j0 + 1, 0, cols);
}

void sgemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
           float alpha, const float *a, int64_t lda, const float *b,
           int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}

//===----------------------------------------------------------------------===//
// RoPE (half layout, rotary_dim = D, positions first + r).
//===----------------------------------------------------------------------===//

/// cos/sin of p·θ_a for the positions p ∈ [first, first + rows).
struct RopeTable {
  int64_t first = 0, half = 0;
  std::vector<float> cosT, sinT; // [rows, D/2]
};

/// Below this many elements a loop runs on one thread: a parallel region
/// costs more than it saves, and on a busy machine every barrier can wait
/// for a descheduled thread.
constexpr int64_t kParallelMin = int64_t(1) << 16;

RopeTable makeRopeTable(int64_t first, int64_t rows, int64_t d, double base) {
  RopeTable t;
  t.first = first;
  t.half = d / 2;
  t.cosT.resize(rows * t.half);
  t.sinT.resize(rows * t.half);
  std::vector<double> theta(t.half);
  for (int64_t a = 0; a < t.half; ++a)
    theta[a] = std::pow(base, -2.0 * static_cast<double>(a) / d);
#pragma omp parallel for schedule(static) if (rows * t.half >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    double pos = static_cast<double>(first + r);
    for (int64_t a = 0; a < t.half; ++a) {
      double angle = pos * theta[a];
      t.cosT[r * t.half + a] = static_cast<float>(std::cos(angle));
      t.sinT[r * t.half + a] = static_cast<float>(std::sin(angle));
    }
  }
  return t;
}

/// y[z, r, :] = R(first + r)·x[z, r, :] (Rᵀ with `inverse`); y may alias x.
/// The table must cover the positions [first, first + rows).
void rotate(float *y, const float *x, int64_t slices, int64_t rows, int64_t d,
            int64_t first, const RopeTable &t, bool inverse) {
  const int64_t half = t.half;
  const float sign = inverse ? -1.0f : 1.0f;
  const float *cosT = t.cosT.data() + (first - t.first) * half;
  const float *sinT = t.sinT.data() + (first - t.first) * half;
#pragma omp parallel for collapse(2)                                           \
    schedule(static) if (slices * rows * d >= kParallelMin)
  for (int64_t z = 0; z < slices; ++z) {
    for (int64_t r = 0; r < rows; ++r) {
      const float *xr = x + (z * rows + r) * d;
      float *yr = y + (z * rows + r) * d;
      const float *c = cosT + r * half;
      const float *s = sinT + r * half;
      for (int64_t a = 0; a < half; ++a) {
        float xu = xr[a], xw = xr[a + half], sn = sign * s[a];
        yr[a] = xu * c[a] - xw * sn;
        yr[a + half] = xu * sn + xw * c[a];
      }
    }
  }
}

/// The pre-rotated q̃, k̃ of a problem (or the inputs themselves without rope).
/// Queries sit at M − N + i, keys at j: one table covers both.
struct Rotated {
  std::vector<float> qBuf, kBuf;
  const float *q = nullptr, *k = nullptr;
  RopeTable table;
};

Rotated prerotate(const Problem &p, const float *q, const float *k) {
  Rotated r;
  if (!p.rope) {
    r.q = q;
    r.k = k;
    return r;
  }
  const int64_t first = std::min<int64_t>(0, p.m - p.n);
  r.table = makeRopeTable(first, p.m - first, p.d, p.ropeBase);
  r.qBuf.resize(p.b * p.hq * p.n * p.d);
  r.kBuf.resize(p.b * p.hk * p.m * p.d);
  rotate(r.qBuf.data(), q, p.b * p.hq, p.n, p.d, p.m - p.n, r.table, false);
  rotate(r.kBuf.data(), k, p.b * p.hk, p.m, p.d, 0, r.table, false);
  r.q = r.qBuf.data();
  r.k = r.kBuf.data();
  return r;
}

//===----------------------------------------------------------------------===//
// Blocked (flash-style) kernels.
//===----------------------------------------------------------------------===//

void forwardBlocked(const Problem &p, const Blocking &blk, const float *q,
                    const float *k, const float *v, float *o, float *lse) {
  const int64_t n = p.n, m = p.m, d = p.d, dv = p.dv, g = p.group();
  const int64_t br = std::max<int64_t>(1, std::min(blk.blockQ, n));
  const int64_t bc = std::max<int64_t>(1, std::min(blk.blockK, m));
  const int64_t numQBlocks = ceilDiv(n, br);
  const int64_t tasks = p.b * p.hq * numQBlocks;
  const float alpha = p.scale * kLog2e;
  const int64_t diag = m - n;

#pragma omp parallel
  {
    std::vector<float> sBuf(br * bc), mRow(br), lRow(br), corr(br);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / numQBlocks, qb = t % numQBlocks;
      const int64_t kvh = (bh / p.hq) * p.hk + (bh % p.hq) / g;
      const int64_t i0 = qb * br, rows = std::min(br, n - i0);
      const float *qi = q + (bh * n + i0) * d;
      const float *kh = k + kvh * m * d;
      const float *vh = v + kvh * m * dv;
      float *oi = o + (bh * n + i0) * dv;
      float *li = lse + bh * n + i0;

      std::fill(oi, oi + rows * dv, 0.0f);
      std::fill(mRow.begin(), mRow.end(), kNegInf);
      std::fill(lRow.begin(), lRow.end(), 0.0f);
      // Keys after the last visible one of the block's last row are skipped.
      const int64_t jEnd =
          p.causal ? std::clamp<int64_t>(i0 + rows + diag, 0, m) : m;
      for (int64_t j0 = 0; j0 < jEnd; j0 += bc) {
        const int64_t cols = std::min(bc, jEnd - j0);
        float *s = sBuf.data();
        sgemm(false, true, rows, cols, d, alpha, qi, d, kh + j0 * d, d, 0.0f, s,
              cols);
        bool anyCorr = false;
        for (int64_t r = 0; r < rows; ++r) {
          float *sr = s + r * cols;
          const int64_t c = visibleCount(p, i0 + r, j0, cols);
          corr[r] = 1.0f;
          if (c > 0) {
            const float mNew = std::max(mRow[r], rowMax(sr, c));
            corr[r] = std::exp2(mRow[r] - mNew); // 0 when mRow[r] = −∞
            lRow[r] = lRow[r] * corr[r] + expShiftSum(sr, c, mNew);
            mRow[r] = mNew;
            anyCorr |= corr[r] != 1.0f;
          }
          std::fill(sr + c, sr + cols, 0.0f);
        }
        if (anyCorr && j0 > 0) {
          for (int64_t r = 0; r < rows; ++r) {
            if (corr[r] == 1.0f)
              continue;
            float *orow = oi + r * dv;
            for (int64_t c = 0; c < dv; ++c)
              orow[c] *= corr[r];
          }
        }
        sgemm(false, false, rows, dv, cols, 1.0f, s, cols, vh + j0 * dv, dv,
              1.0f, oi, dv);
      }
      for (int64_t r = 0; r < rows; ++r) {
        if (!(lRow[r] > 0.0f)) { // empty row: o = 0, lse = −∞
          li[r] = kNegInf;
          continue;
        }
        const float inv = 1.0f / lRow[r];
        float *orow = oi + r * dv;
        for (int64_t c = 0; c < dv; ++c)
          orow[c] *= inv;
        li[r] = static_cast<float>(
            (static_cast<double>(mRow[r]) + std::log2(double(lRow[r]))) * kLn2);
      }
    }
  }
}

/// Δ_i = ⟨dO_i, O_i⟩ and lse_i·log2 e of one head.
void rowStats(const Problem &p, const float *oh, const float *doh,
              const float *lseh, float *delta, float *lse2) {
  for (int64_t i = 0; i < p.n; ++i) {
    float acc = 0.0f;
    const float *a = oh + i * p.dv, *b = doh + i * p.dv;
    for (int64_t c = 0; c < p.dv; ++c)
      acc += a[c] * b[c];
    delta[i] = acc;
    lse2[i] = lseh[i] * kLog2e; // −∞ stays −∞
  }
}

void backwardBlocked(const Problem &p, const Blocking &blk, const float *q,
                     const float *k, const float *v, const float *o,
                     const float *lse, const float *dO, float *dq, float *dk,
                     float *dv) {
  const int64_t n = p.n, m = p.m, d = p.d, dvDim = p.dv, g = p.group();
  const int64_t br = std::max<int64_t>(1, std::min(blk.blockQ, n));
  const int64_t bc = std::max<int64_t>(1, std::min(blk.blockK, m));
  const float alpha = p.scale * kLog2e;
  const int64_t diag = m - n;
  const int64_t tasks = p.b * p.hk;

#pragma omp parallel
  {
    std::vector<float> pBuf(br * bc), dsBuf(br * bc), delta(n), lse2(n);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / p.hk, kvIdx = t % p.hk;
      const float *kh = k + t * m * d;
      const float *vh = v + t * m * dvDim;
      float *dkh = dk + t * m * d;
      float *dvh = dv + t * m * dvDim;
      std::fill(dkh, dkh + m * d, 0.0f);
      std::fill(dvh, dvh + m * dvDim, 0.0f);
      for (int64_t hh = 0; hh < g; ++hh) {
        const int64_t bh = b * p.hq + kvIdx * g + hh;
        const float *qh = q + bh * n * d;
        const float *doh = dO + bh * n * dvDim;
        float *dqh = dq + bh * n * d;
        std::fill(dqh, dqh + n * d, 0.0f);
        rowStats(p, o + bh * n * dvDim, doh, lse + bh * n, delta.data(),
                 lse2.data());
        for (int64_t j0 = 0; j0 < m; j0 += bc) {
          const int64_t cols = std::min(bc, m - j0);
          // The first query row that sees key j0 is j0 − (M − N).
          int64_t iFirst = p.causal ? std::max<int64_t>(0, j0 - diag) : 0;
          for (int64_t i0 = (iFirst / br) * br; i0 < n; i0 += br) {
            const int64_t rows = std::min(br, n - i0);
            float *pm = pBuf.data(), *ds = dsBuf.data();
            sgemm(false, true, rows, cols, d, alpha, qh + i0 * d, d,
                  kh + j0 * d, d, 0.0f, pm, cols);
            for (int64_t r = 0; r < rows; ++r) {
              float *pr = pm + r * cols;
              const float l2 = lse2[i0 + r];
              int64_t c = l2 == kNegInf ? 0 : visibleCount(p, i0 + r, j0, cols);
              expShift(pr, c, l2);
              std::fill(pr + c, pr + cols, 0.0f);
            }
            const float *doi = doh + i0 * dvDim;
            // dV_j += Pᵀ dO_i;  dP = dO_i V_jᵀ.
            sgemm(true, false, cols, dvDim, rows, 1.0f, pm, cols, doi, dvDim,
                  1.0f, dvh + j0 * dvDim, dvDim);
            sgemm(false, true, rows, cols, dvDim, 1.0f, doi, dvDim,
                  vh + j0 * dvDim, dvDim, 0.0f, ds, cols);
            for (int64_t r = 0; r < rows; ++r)
              softmaxGradRow(ds + r * cols, pm + r * cols, cols, delta[i0 + r]);
            // dQ_i += s·dS K_j;  dK_j += s·dSᵀ Q_i.
            sgemm(false, false, rows, d, cols, p.scale, ds, cols, kh + j0 * d,
                  d, 1.0f, dqh + i0 * d, d);
            sgemm(true, false, cols, d, rows, p.scale, ds, cols, qh + i0 * d, d,
                  1.0f, dkh + j0 * d, d);
          }
        }
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// Plain kernels: the whole N × M matrix per head (cross-checking only).
//===----------------------------------------------------------------------===//

void forwardPlain(const Problem &p, const float *q, const float *k,
                  const float *v, float *o, float *lse) {
  const int64_t n = p.n, m = p.m, d = p.d, dv = p.dv, g = p.group();
#pragma omp parallel
  {
    std::vector<float> sBuf(n * m);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < p.b * p.hq; ++bh) {
      const int64_t kvh = (bh / p.hq) * p.hk + (bh % p.hq) / g;
      float *s = sBuf.data();
      sgemm(false, true, n, m, d, p.scale, q + bh * n * d, d, k + kvh * m * d,
            d, 0.0f, s, m);
      for (int64_t i = 0; i < n; ++i) {
        float *sr = s + i * m;
        const int64_t c = visibleCount(p, i, 0, m);
        float mx = kNegInf;
        for (int64_t j = 0; j < c; ++j)
          mx = std::max(mx, sr[j]);
        float sum = 0.0f;
        for (int64_t j = 0; j < c; ++j) {
          sr[j] = std::exp(sr[j] - mx);
          sum += sr[j];
        }
        for (int64_t j = c; j < m; ++j)
          sr[j] = 0.0f;
        if (c == 0) {
          lse[bh * n + i] = kNegInf;
          continue;
        }
        for (int64_t j = 0; j < c; ++j)
          sr[j] /= sum;
        lse[bh * n + i] = mx + std::log(sum);
      }
      sgemm(false, false, n, dv, m, 1.0f, s, m, v + kvh * m * dv, dv, 0.0f,
            o + bh * n * dv, dv);
    }
  }
}

void backwardPlain(const Problem &p, const float *q, const float *k,
                   const float *v, const float *o, const float *lse,
                   const float *dO, float *dq, float *dk, float *dv) {
  const int64_t n = p.n, m = p.m, d = p.d, dvDim = p.dv, g = p.group();
#pragma omp parallel
  {
    std::vector<float> pBuf(n * m), dsBuf(n * m), delta(n), lse2(n);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < p.b * p.hk; ++t) {
      const int64_t b = t / p.hk, kvIdx = t % p.hk;
      const float *kh = k + t * m * d, *vh = v + t * m * dvDim;
      float *dkh = dk + t * m * d, *dvh = dv + t * m * dvDim;
      std::fill(dkh, dkh + m * d, 0.0f);
      std::fill(dvh, dvh + m * dvDim, 0.0f);
      for (int64_t hh = 0; hh < g; ++hh) {
        const int64_t bh = b * p.hq + kvIdx * g + hh;
        const float *qh = q + bh * n * d, *doh = dO + bh * n * dvDim;
        const float *lseh = lse + bh * n;
        float *pm = pBuf.data(), *ds = dsBuf.data();
        rowStats(p, o + bh * n * dvDim, doh, lseh, delta.data(), lse2.data());
        sgemm(false, true, n, m, d, p.scale, qh, d, kh, d, 0.0f, pm, m);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t c = lseh[i] == kNegInf ? 0 : visibleCount(p, i, 0, m);
          for (int64_t j = 0; j < m; ++j)
            pm[i * m + j] = j < c ? std::exp(pm[i * m + j] - lseh[i]) : 0.0f;
        }
        sgemm(true, false, m, dvDim, n, 1.0f, pm, m, doh, dvDim, 1.0f, dvh,
              dvDim);
        sgemm(false, true, n, m, dvDim, 1.0f, doh, dvDim, vh, dvDim, 0.0f, ds,
              m);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < m; ++j)
            ds[i * m + j] = pm[i * m + j] * (ds[i * m + j] - delta[i]);
        sgemm(false, false, n, d, m, p.scale, ds, m, kh, d, 0.0f,
              dq + bh * n * d, d);
        sgemm(true, false, m, d, n, p.scale, ds, m, qh, d, 1.0f, dkh, d);
      }
    }
  }
}

} // namespace

double Problem::forwardFlops() const {
  double f = 2.0 * static_cast<double>(b * hq) * static_cast<double>(n) *
             static_cast<double>(m) * static_cast<double>(d + dv);
  return causal ? 0.5 * f : f;
}

void initBlas() { openblas_set_num_threads(1); }

void attentionForward(const Problem &p, Variant variant, const Blocking &blk,
                      const float *q, const float *k, const float *v, float *o,
                      float *lse) {
  if (p.b * p.hq * p.n == 0)
    return;
  Rotated r = prerotate(p, q, k);
  if (variant == Variant::Plain)
    forwardPlain(p, r.q, r.k, v, o, lse);
  else
    forwardBlocked(p, blk, r.q, r.k, v, o, lse);
}

void attentionBackward(const Problem &p, Variant variant, const Blocking &blk,
                       const float *q, const float *k, const float *v,
                       const float *o, const float *lse, const float *dO,
                       float *dq, float *dk, float *dv) {
  Rotated r = prerotate(p, q, k);
  if (variant == Variant::Plain)
    backwardPlain(p, r.q, r.k, v, o, lse, dO, dq, dk, dv);
  else
    backwardBlocked(p, blk, r.q, r.k, v, o, lse, dO, dq, dk, dv);
  if (p.rope) { // dq = R(π^q)ᵀ dq̃, dk = R(π^k)ᵀ dk̃
    rotate(dq, dq, p.b * p.hq, p.n, p.d, p.m - p.n, r.table, true);
    rotate(dk, dk, p.b * p.hk, p.m, p.d, 0, r.table, true);
  }
}

} // namespace ropebaseline
