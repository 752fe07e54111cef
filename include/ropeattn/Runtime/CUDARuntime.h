//===- CUDARuntime.h - the mgpu* runtime of generated CUDA code -*- C++ -*-===//
//
// Part of the ropeattn project.
//
// Declarations of libropeattn_cuda_runtime.so, the functions MLIR 22's
// gpu-to-llvm lowering and gpu.binary translation call (see
// lib/Runtime/CUDARuntime.cpp). Opaque handles are CUmodule, CUfunction,
// CUstream and CUevent of the CUDA driver API, passed as pointers.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_RUNTIME_CUDARUNTIME_H
#define ROPEATTN_RUNTIME_CUDARUNTIME_H

#include <cstddef>
#include <cstdint>

/// A ranked memref descriptor {allocated, aligned, offset, sizes[rank],
/// strides[rank]} seen through its common prefix.
struct ropeattn_memref_descriptor {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizesAndStrides[1];
};

#ifndef __cuda_cuda_h__
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
#endif

extern "C" {
CUmodule mgpuModuleLoad(void *data, size_t gpuBlobSize);
CUmodule mgpuModuleLoadJIT(void *data, int optLevel);
void mgpuModuleUnload(CUmodule module);
CUfunction mgpuModuleGetFunction(CUmodule module, const char *name);
void mgpuLaunchKernel(CUfunction function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, CUstream stream,
                      void **params, void **extra, size_t paramsCount);
void mgpuLaunchClusterKernel(CUfunction function, intptr_t clusterX,
                             intptr_t clusterY, intptr_t clusterZ,
                             intptr_t gridX, intptr_t gridY, intptr_t gridZ,
                             intptr_t blockX, intptr_t blockY, intptr_t blockZ,
                             int32_t smem, CUstream stream, void **params,
                             void **extra);
CUstream mgpuStreamCreate();
void mgpuStreamDestroy(CUstream stream);
void mgpuStreamSynchronize(CUstream stream);
void mgpuStreamWaitEvent(CUstream stream, CUevent event);
CUevent mgpuEventCreate();
void mgpuEventDestroy(CUevent event);
void mgpuEventSynchronize(CUevent event);
void mgpuEventRecord(CUevent event, CUstream stream);
void *mgpuMemAlloc(uint64_t sizeBytes, CUstream stream, bool isHostShared);
void mgpuMemFree(void *ptr, CUstream stream);
void mgpuMemcpy(void *dst, void *src, size_t sizeBytes, CUstream stream);
void mgpuMemset32(void *dst, unsigned int value, size_t count, CUstream stream);
void mgpuMemset16(void *dst, unsigned short value, size_t count,
                  CUstream stream);
void mgpuMemHostRegister(void *ptr, uint64_t sizeBytes);
void mgpuMemHostUnregister(void *ptr);
void mgpuMemHostRegisterMemRef(int64_t rank,
                               ropeattn_memref_descriptor *descriptor,
                               int64_t elementSizeBytes);
void mgpuMemHostUnregisterMemRef(int64_t rank,
                                 ropeattn_memref_descriptor *descriptor,
                                 int64_t elementSizeBytes);
void mgpuSetDefaultDevice(int32_t device);
}

/// cuFFT (only when the library was built with ROPEATTN_HAVE_CUFFT, i.e. the
/// toolkit has cuFFT): the *unnormalized* DFT `out[b, k] = Σ_n in[b, n]·
/// e^{∓2πi·n·k/L}` (`+` when `inverse` is non-zero) of the complex sequences
/// of contiguous [B, L, 2] memrefs on the device (`_mlir_ciface_` convention:
/// pointers to rank-3 descriptors). Runs on the legacy default stream and
/// returns when done; convert-ropeattn-to-gpu scales inverse transforms by 1/L
/// itself. Plans are cached per (L, B). libcufft is loaded with dlopen on the
/// first call (ROPEATTN_CUFFT_LIBRARY overrides the name).
extern "C" {
void _mlir_ciface_ropeattn_cuda_fft_f32(ropeattn_memref_descriptor *in,
                                        ropeattn_memref_descriptor *out,
                                        int32_t inverse);
void _mlir_ciface_ropeattn_cuda_fft_f64(ropeattn_memref_descriptor *in,
                                        ropeattn_memref_descriptor *out,
                                        int32_t inverse);
}

#endif // ROPEATTN_RUNTIME_CUDARUNTIME_H
