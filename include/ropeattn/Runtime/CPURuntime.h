//===- CPURuntime.h - functions generated CPU code calls --------*- C++ -*-===//
//
// Part of the ropeattn project. The shared library `ropeattn_runtime`
// (libropeattn_runtime.so) is loaded by rope-run and linked by AOT users.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_RUNTIME_CPURUNTIME_H
#define ROPEATTN_RUNTIME_CPURUNTIME_H

#include "mlir/ExecutionEngine/CRunnerUtils.h"

#include <cstdint>

extern "C" {
/// C[M×N] = op(A)·op(B) (+ C when `accumulate` is non-zero), op = transpose
/// when `transA`/`transB` is non-zero (A is then K×M, B N×K). Any strides;
/// unit-stride rows go to OpenBLAS, others to a plain loop. What
/// `ropeattn-matmul-to-blas` emits.
MLIR_CRUNNERUTILS_EXPORT void
_mlir_ciface_ropeattn_matmul_f32(StridedMemRefType<float, 2> *a,
                                 StridedMemRefType<float, 2> *b,
                                 StridedMemRefType<float, 2> *c, int32_t transA,
                                 int32_t transB, int32_t accumulate);
MLIR_CRUNNERUTILS_EXPORT void _mlir_ciface_ropeattn_matmul_f64(
    StridedMemRefType<double, 2> *a, StridedMemRefType<double, 2> *b,
    StridedMemRefType<double, 2> *c, int32_t transA, int32_t transB,
    int32_t accumulate);
}

#endif // ROPEATTN_RUNTIME_CPURUNTIME_H
