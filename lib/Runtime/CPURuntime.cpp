//===- CPURuntime.cpp - functions generated CPU code calls ----------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Runtime/CPURuntime.h"

#include <cblas.h>

#include <mutex>

namespace {

/// The generated code parallelizes with OpenMP around the BLAS calls; a
/// threaded OpenBLAS inside would oversubscribe the cores.
void initBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

template <typename T> struct View {
  StridedMemRefType<T, 2> *m;
  T *data() const { return m->data + m->offset; }
  int64_t rows() const { return m->sizes[0]; }
  int64_t cols() const { return m->sizes[1]; }
  /// Leading dimension for BLAS (row-major), or -1 when rows are strided.
  int64_t ld() const {
    if (m->sizes[1] > 1 && m->strides[1] != 1)
      return -1;
    int64_t ld = m->sizes[0] > 1 ? m->strides[0] : m->sizes[1];
    return ld >= std::max<int64_t>(m->sizes[1], 1) ? ld : -1;
  }
  T &at(int64_t i, int64_t j) const {
    return m->data[m->offset + i * m->strides[0] + j * m->strides[1]];
  }
};

template <typename T>
void referenceMatmul(View<T> a, View<T> b, View<T> c, bool ta, bool tb,
                     bool accumulate) {
  int64_t mm = c.rows(), nn = c.cols(), kk = ta ? a.rows() : a.cols();
  for (int64_t i = 0; i < mm; ++i)
    for (int64_t j = 0; j < nn; ++j) {
      T acc = 0;
      for (int64_t k = 0; k < kk; ++k)
        acc += (ta ? a.at(k, i) : a.at(i, k)) * (tb ? b.at(j, k) : b.at(k, j));
      c.at(i, j) = accumulate ? c.at(i, j) + acc : acc;
    }
}

template <typename T, typename Gemm>
void matmul(StridedMemRefType<T, 2> *am, StridedMemRefType<T, 2> *bm,
            StridedMemRefType<T, 2> *cm, int32_t transA, int32_t transB,
            int32_t accumulate, Gemm gemm) {
  View<T> a{am}, b{bm}, c{cm};
  int64_t mm = c.rows(), nn = c.cols(), kk = transA ? a.rows() : a.cols();
  if (mm == 0 || nn == 0)
    return;
  if (kk == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < mm; ++i)
        for (int64_t j = 0; j < nn; ++j)
          c.at(i, j) = T(0);
    return;
  }
  int64_t lda = a.ld(), ldb = b.ld(), ldc = c.ld();
  if (lda < 0 || ldb < 0 || ldc < 0)
    return referenceMatmul(a, b, c, transA, transB, accumulate);
  initBlas();
  gemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
       transB ? CblasTrans : CblasNoTrans, mm, nn, kk, T(1), a.data(), lda,
       b.data(), ldb, accumulate ? T(1) : T(0), c.data(), ldc);
}

} // namespace

extern "C" void _mlir_ciface_ropeattn_matmul_f32(StridedMemRefType<float, 2> *a,
                                                 StridedMemRefType<float, 2> *b,
                                                 StridedMemRefType<float, 2> *c,
                                                 int32_t transA, int32_t transB,
                                                 int32_t accumulate) {
  matmul(a, b, c, transA, transB, accumulate,
         [](auto... args) { cblas_sgemm(args...); });
}

extern "C" void _mlir_ciface_ropeattn_matmul_f64(
    StridedMemRefType<double, 2> *a, StridedMemRefType<double, 2> *b,
    StridedMemRefType<double, 2> *c, int32_t transA, int32_t transB,
    int32_t accumulate) {
  matmul(a, b, c, transA, transB, accumulate,
         [](auto... args) { cblas_dgemm(args...); });
}
