//===- FFTRuntime.h - FFTs generated CPU code calls -------------*- C++ -*-===//
//
// Part of the ropeattn project. Part of libropeattn_runtime.so; what
// `ropeattn-lower-fft{backend=library}` emits calls to.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_RUNTIME_FFTRUNTIME_H
#define ROPEATTN_RUNTIME_FFTRUNTIME_H

#include "mlir/ExecutionEngine/CRunnerUtils.h"

#include <cstdint>

extern "C" {
/// `out[b, k] = Σ_n in[b, n]·e^{∓2πi·n·k/L}` for the complex sequences
/// `in[b, :, 0] + i·in[b, :, 1]` of shape [B, L, 2] (any strides; pairs need
/// not be contiguous), `−` unless `inverse` is non-zero, in which case the
/// result is also scaled by 1/L (docs/Spec.md, "ropeattn.fft"). `out` must
/// not overlap `in`. Runs FFTW; plans are cached per (L, B, strides,
/// alignment) and made with FFTW_MEASURE unless the environment variable
/// ROPEATTN_FFTW_PLANNER is `estimate`, `measure` or `patient`.
MLIR_CRUNNERUTILS_EXPORT void
_mlir_ciface_ropeattn_fft_f32(StridedMemRefType<float, 3> *in,
                              StridedMemRefType<float, 3> *out,
                              int32_t inverse);
MLIR_CRUNNERUTILS_EXPORT void
_mlir_ciface_ropeattn_fft_f64(StridedMemRefType<double, 3> *in,
                              StridedMemRefType<double, 3> *out,
                              int32_t inverse);
}

#endif // ROPEATTN_RUNTIME_FFTRUNTIME_H
