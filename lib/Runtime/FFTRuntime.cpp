//===- FFTRuntime.cpp - FFTW behind the ropeattn runtime ------------------===//
//
// Part of the ropeattn project.
//
// One entry point per precision. The [B, L, 2] buffers are handed to FFTW's
// advanced interface (fftw_plan_many_dft: B transforms of length L, element
// stride and batch distance in complex units) when their pairs are
// contiguous and their strides are even; other layouts are packed into a
// contiguous scratch buffer first. Plans are made once per (precision, L, B,
// strides, sign, alignment) under a mutex (the FFTW planner is not
// thread-safe), on scratch arrays so that FFTW_MEASURE does not overwrite
// the caller's data, and executed with the new-array interface (thread-safe).
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Runtime/FFTRuntime.h"

#include <fftw3.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace {

unsigned plannerFlags() {
  static unsigned flags = [] {
    const char *env = std::getenv("ROPEATTN_FFTW_PLANNER");
    if (env && !std::strcmp(env, "estimate"))
      return unsigned(FFTW_ESTIMATE);
    if (env && !std::strcmp(env, "patient"))
      return unsigned(FFTW_PATIENT);
    return unsigned(FFTW_MEASURE);
  }();
  return flags;
}

/// The FFTW API of one precision.
template <typename T> struct Fftw;

template <> struct Fftw<float> {
  using Complex = fftwf_complex;
  using Plan = fftwf_plan;
  static Plan plan(int n, int howmany, Complex *in, int istride, int idist,
                   Complex *out, int ostride, int odist, int sign,
                   unsigned flags) {
    return fftwf_plan_many_dft(1, &n, howmany, in, nullptr, istride, idist, out,
                               nullptr, ostride, odist, sign, flags);
  }
  static void execute(Plan p, Complex *in, Complex *out) {
    fftwf_execute_dft(p, in, out);
  }
  static int alignment(float *p) { return fftwf_alignment_of(p); }
  static void *malloc(size_t n) { return fftwf_malloc(n); }
  static void free(void *p) { fftwf_free(p); }
};

template <> struct Fftw<double> {
  using Complex = fftw_complex;
  using Plan = fftw_plan;
  static Plan plan(int n, int howmany, Complex *in, int istride, int idist,
                   Complex *out, int ostride, int odist, int sign,
                   unsigned flags) {
    return fftw_plan_many_dft(1, &n, howmany, in, nullptr, istride, idist, out,
                              nullptr, ostride, odist, sign, flags);
  }
  static void execute(Plan p, Complex *in, Complex *out) {
    fftw_execute_dft(p, in, out);
  }
  static int alignment(double *p) { return fftw_alignment_of(p); }
  static void *malloc(size_t n) { return fftw_malloc(n); }
  static void free(void *p) { fftw_free(p); }
};

/// (L, B, istride, idist, ostride, odist, sign, unaligned)
using PlanKey =
    std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, bool>;

template <typename T> typename Fftw<T>::Plan getPlan(const PlanKey &key) {
  using F = Fftw<T>;
  static std::mutex mutex;
  static std::map<PlanKey, typename F::Plan> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = plans.find(key);
  if (it != plans.end())
    return it->second;
  auto [len, batch, is, id, os, od, sign, unaligned] = key;
  // Scratch arrays that span the strided layouts.
  size_t inSpan = size_t((batch - 1) * id + (len - 1) * is + 1);
  size_t outSpan = size_t((batch - 1) * od + (len - 1) * os + 1);
  auto *in = static_cast<typename F::Complex *>(
      F::malloc(sizeof(typename F::Complex) * inSpan));
  auto *out = static_cast<typename F::Complex *>(
      F::malloc(sizeof(typename F::Complex) * outSpan));
  unsigned flags = plannerFlags() | (unaligned ? FFTW_UNALIGNED : 0);
  typename F::Plan p = F::plan(int(len), int(batch), in, int(is), int(id), out,
                               int(os), int(od), sign, flags);
  F::free(in);
  F::free(out);
  plans.emplace(key, p);
  return p;
}

template <typename T>
void fft(StridedMemRefType<T, 3> *inM, StridedMemRefType<T, 3> *outM,
         bool inverse) {
  using F = Fftw<T>;
  int64_t batch = inM->sizes[0], len = inM->sizes[1];
  if (batch == 0 || len == 0)
    return;
  T *in = inM->data + inM->offset;
  T *out = outM->data + outM->offset;
  // Pack layouts FFTW's advanced interface cannot describe (pairs not
  // contiguous, odd strides) into contiguous buffers.
  auto describable = [](StridedMemRefType<T, 3> *m) {
    return m->strides[2] == 1 && m->strides[1] % 2 == 0 &&
           m->strides[0] % 2 == 0 && m->strides[1] > 0 && m->strides[0] >= 0;
  };
  std::vector<T> inCopy, outCopy;
  int64_t is = inM->strides[1] / 2, id = inM->strides[0] / 2;
  int64_t os = outM->strides[1] / 2, od = outM->strides[0] / 2;
  if (!describable(inM)) {
    inCopy.resize(size_t(batch * len * 2));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t n = 0; n < len; ++n)
        for (int64_t c = 0; c < 2; ++c)
          inCopy[(b * len + n) * 2 + c] =
              in[b * inM->strides[0] + n * inM->strides[1] +
                 c * inM->strides[2]];
    in = inCopy.data();
    is = 1;
    id = len;
  }
  bool packOut = !describable(outM);
  T *target = out;
  if (packOut) {
    outCopy.resize(size_t(batch * len * 2));
    target = outCopy.data();
    os = 1;
    od = len;
  }
  if (batch == 1)
    id = od = len; // any distance describes a single transform
  bool unaligned = F::alignment(in) != 0 || F::alignment(target) != 0;
  int sign = inverse ? FFTW_BACKWARD : FFTW_FORWARD;
  typename F::Plan p =
      getPlan<T>(PlanKey{len, batch, is, id, os, od, sign, unaligned});
  F::execute(p, reinterpret_cast<typename F::Complex *>(in),
             reinterpret_cast<typename F::Complex *>(target));
  if (!inverse && !packOut)
    return; // nothing to scale or unpack
  const T scale = inverse ? T(1) / T(len) : T(1);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t n = 0; n < len; ++n)
      for (int64_t c = 0; c < 2; ++c) {
        T &v = target[2 * (b * od + n * os) + c];
        if (inverse)
          v *= scale;
        if (packOut)
          out[b * outM->strides[0] + n * outM->strides[1] +
              c * outM->strides[2]] = v;
      }
}

} // namespace

extern "C" void _mlir_ciface_ropeattn_fft_f32(StridedMemRefType<float, 3> *in,
                                              StridedMemRefType<float, 3> *out,
                                              int32_t inverse) {
  fft(in, out, inverse != 0);
}

extern "C" void _mlir_ciface_ropeattn_fft_f64(StridedMemRefType<double, 3> *in,
                                              StridedMemRefType<double, 3> *out,
                                              int32_t inverse) {
  fft(in, out, inverse != 0);
}
