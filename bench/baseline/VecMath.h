//===- VecMath.h - exp2 and softmax row kernels for the baseline -*- C++
//-*-===//
//
// Part of the ropeattn project.
//
// A polynomial exp2 (Cephes exp2f: 2^f = 1 + f·P(f) on f ∈ [−½, ½], peak
// relative error ≈ 2e−7) scaled by 2^n through the exponent bits, and the row
// kernels of an online softmax built on it. With ROPEATTN_BASELINE_AVX2 (set
// by CMake when the compiler accepts -mavx2 -mfma and the build machine runs
// them) the kernels are AVX2/FMA intrinsics, 8 lanes; otherwise plain loops
// that the compiler may auto-vectorize. No -ffast-math: −∞ is handled exactly.
//
// exp2 maps every x ≤ −126.5 (−∞ included) to exactly 0.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_BENCH_BASELINE_VECMATH_H
#define ROPEATTN_BENCH_BASELINE_VECMATH_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#ifdef ROPEATTN_BASELINE_AVX2
#include <immintrin.h>
#endif

namespace ropebaseline {

namespace exp2coef {
constexpr float kP0 = 1.535336188319500e-4f;
constexpr float kP1 = 1.339887440266574e-3f;
constexpr float kP2 = 9.618437357674640e-3f;
constexpr float kP3 = 5.550332471162809e-2f;
constexpr float kP4 = 2.402264791363012e-1f;
constexpr float kP5 = 6.931472028550421e-1f;
constexpr float kLo = -127.0f;
constexpr float kHi = 127.0f;
} // namespace exp2coef

/// Scalar 2^x with the same algorithm as the vector version.
inline float exp2Scalar(float x) {
  using namespace exp2coef;
  x = std::min(std::max(x, kLo), kHi); // max(−∞, −127) = −127
  float n = std::nearbyint(x);
  float f = x - n;
  float p = kP0;
  p = p * f + kP1;
  p = p * f + kP2;
  p = p * f + kP3;
  p = p * f + kP4;
  p = p * f + kP5;
  p = p * f + 1.0f;
  // n = −127 gives the exponent field 0, i.e. the scale 0.
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

#ifdef ROPEATTN_BASELINE_AVX2
inline __m256 exp2Vec(__m256 x) {
  using namespace exp2coef;
  x = _mm256_max_ps(x, _mm256_set1_ps(kLo));
  x = _mm256_min_ps(x, _mm256_set1_ps(kHi));
  __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

inline float horizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float horizontalMax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

/// max(x[0..c)); −∞ for c = 0.
inline float rowMax(const float *x, int64_t c) {
  float mx = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
#ifdef ROPEATTN_BASELINE_AVX2
  if (c >= 16) {
    __m256 m0 = _mm256_loadu_ps(x), m1 = _mm256_loadu_ps(x + 8);
    for (j = 16; j + 16 <= c; j += 16) {
      m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
      m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + j + 8));
    }
    mx = horizontalMax(_mm256_max_ps(m0, m1));
  }
#endif
  for (; j < c; ++j)
    mx = std::max(mx, x[j]);
  return mx;
}

/// x[j] ← 2^(x[j] − shift) for j < c; returns Σ_j x[j]. `shift` is finite.
inline float expShiftSum(float *x, int64_t c, float shift) {
  int64_t j = 0;
  float sum = 0.0f;
#ifdef ROPEATTN_BASELINE_AVX2
  __m256 vs = _mm256_set1_ps(shift);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (; j + 16 <= c; j += 16) {
    __m256 e0 = exp2Vec(_mm256_sub_ps(_mm256_loadu_ps(x + j), vs));
    __m256 e1 = exp2Vec(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vs));
    _mm256_storeu_ps(x + j, e0);
    _mm256_storeu_ps(x + j + 8, e1);
    a0 = _mm256_add_ps(a0, e0);
    a1 = _mm256_add_ps(a1, e1);
  }
  for (; j + 8 <= c; j += 8) {
    __m256 e0 = exp2Vec(_mm256_sub_ps(_mm256_loadu_ps(x + j), vs));
    _mm256_storeu_ps(x + j, e0);
    a0 = _mm256_add_ps(a0, e0);
  }
  sum = horizontalSum(_mm256_add_ps(a0, a1));
#endif
  for (; j < c; ++j) {
    x[j] = exp2Scalar(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

/// x[j] ← 2^(x[j] − shift) for j < c (shift may be −∞ only if c = 0).
inline void expShift(float *x, int64_t c, float shift) {
  int64_t j = 0;
#ifdef ROPEATTN_BASELINE_AVX2
  __m256 vs = _mm256_set1_ps(shift);
  for (; j + 8 <= c; j += 8)
    _mm256_storeu_ps(x + j, exp2Vec(_mm256_sub_ps(_mm256_loadu_ps(x + j), vs)));
#endif
  for (; j < c; ++j)
    x[j] = exp2Scalar(x[j] - shift);
}

/// ds[j] ← p[j]·(ds[j] − delta) for j < c.
inline void softmaxGradRow(float *ds, const float *p, int64_t c, float delta) {
  int64_t j = 0;
#ifdef ROPEATTN_BASELINE_AVX2
  __m256 vd = _mm256_set1_ps(delta);
  for (; j + 8 <= c; j += 8)
    _mm256_storeu_ps(ds + j,
                     _mm256_mul_ps(_mm256_loadu_ps(p + j),
                                   _mm256_sub_ps(_mm256_loadu_ps(ds + j), vd)));
#endif
  for (; j < c; ++j)
    ds[j] = p[j] * (ds[j] - delta);
}

} // namespace ropebaseline

#endif // ROPEATTN_BENCH_BASELINE_VECMATH_H
