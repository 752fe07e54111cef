//===- CUDARuntime.cpp - the mgpu* runtime of generated CUDA host code ----===//
//
// Part of the ropeattn project.
//
// libropeattn_cuda_runtime.so: the `mgpu*` functions that MLIR 22's
// gpu-to-llvm lowering (and the gpu.binary translation) call, written against
// the CUDA driver API. Debian ships no MLIR CUDA runtime; this is ours.
// test/Runtime/cuda-runtime-abi.test pins the declarations MLIR emits and
// checks that this library exports every one of them.
//
// Conventions:
//  * every call works in the primary context of the default device (device
//    0 unless mgpuSetDefaultDevice says otherwise), the context that the CUDA
//    runtime API (and PyTorch) use too;
//  * streams are created blocking (CU_STREAM_DEFAULT), so that work on the
//    legacy default stream (e.g. the events a benchmark records there)
//    orders with the generated code's streams;
//  * a failing CUDA call prints `ropeattn-cuda-runtime: error: ...` with the
//    call, its error name and description, then exits with status 1: the
//    generated code has no error path, so going on would crash later with a
//    less useful message.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Runtime/CUDARuntime.h"

#include <cuda.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace {

int defaultDevice = 0;
CUcontext primaryContext = nullptr;
std::mutex contextMutex;

[[noreturn]] void fail(const char *expr, CUresult result, const char *where) {
  const char *name = "unknown";
  const char *text = "unknown error";
  cuGetErrorName(result, &name);
  cuGetErrorString(result, &text);
  std::fprintf(stderr,
               "ropeattn-cuda-runtime: error: %s failed in %s: %s (CUresult "
               "%d: %s)\n",
               expr, where, name, int(result), text);
  std::fflush(stderr);
  std::_Exit(1);
}

#define CUDA_CHECK(expr)                                                       \
  do {                                                                         \
    CUresult result_ = (expr);                                                 \
    if (result_ != CUDA_SUCCESS)                                               \
      fail(#expr, result_, __func__);                                          \
  } while (false)

/// Makes the default device's primary context current (retaining it once).
void useContext(const char *where) {
  {
    std::lock_guard<std::mutex> lock(contextMutex);
    if (!primaryContext) {
      CUresult init = cuInit(0);
      if (init != CUDA_SUCCESS)
        fail("cuInit(0)", init, where);
      CUdevice device;
      CUresult get = cuDeviceGet(&device, defaultDevice);
      if (get != CUDA_SUCCESS)
        fail("cuDeviceGet", get, where);
      CUresult retain = cuDevicePrimaryCtxRetain(&primaryContext, device);
      if (retain != CUDA_SUCCESS)
        fail("cuDevicePrimaryCtxRetain", retain, where);
    }
  }
  CUcontext current = nullptr;
  CUDA_CHECK(cuCtxGetCurrent(&current));
  if (current != primaryContext)
    CUDA_CHECK(cuCtxSetCurrent(primaryContext));
}

} // namespace

//===----------------------------------------------------------------------===//
// Modules and launches.
//===----------------------------------------------------------------------===//

extern "C" CUmodule mgpuModuleLoad(void *data, size_t gpuBlobSize) {
  (void)gpuBlobSize; // cubin/fatbin/PTX images carry their own size
  useContext(__func__);
  CUmodule module = nullptr;
  CUDA_CHECK(cuModuleLoadData(&module, data));
  return module;
}

extern "C" CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  useContext(__func__);
  CUmodule module = nullptr;
  char log[8192] = {0};
  CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL, CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {reinterpret_cast<void *>(static_cast<intptr_t>(optLevel)),
                    log, reinterpret_cast<void *>(sizeof(log) - 1)};
  CUresult result = cuModuleLoadDataEx(&module, data, 3, options, values);
  if (result != CUDA_SUCCESS) {
    std::fprintf(stderr, "ropeattn-cuda-runtime: PTX JIT log:\n%s\n", log);
    fail("cuModuleLoadDataEx", result, __func__);
  }
  return module;
}

extern "C" void mgpuModuleUnload(CUmodule module) {
  useContext(__func__);
  CUDA_CHECK(cuModuleUnload(module));
}

extern "C" CUfunction mgpuModuleGetFunction(CUmodule module, const char *name) {
  useContext(__func__);
  CUfunction function = nullptr;
  CUresult result = cuModuleGetFunction(&function, module, name);
  if (result != CUDA_SUCCESS) {
    std::fprintf(stderr, "ropeattn-cuda-runtime: kernel '%s' not found\n",
                 name ? name : "(null)");
    fail("cuModuleGetFunction", result, __func__);
  }
  return function;
}

extern "C" void mgpuLaunchKernel(CUfunction function, intptr_t gridX,
                                 intptr_t gridY, intptr_t gridZ,
                                 intptr_t blockX, intptr_t blockY,
                                 intptr_t blockZ, int32_t smem, CUstream stream,
                                 void **params, void **extra,
                                 size_t paramsCount) {
  (void)paramsCount;
  useContext(__func__);
  // More than 48 KiB of dynamic shared memory must be opted into.
  if (smem > 48 * 1024)
    CUDA_CHECK(cuFuncSetAttribute(
        function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem));
  CUDA_CHECK(cuLaunchKernel(function, gridX, gridY, gridZ, blockX, blockY,
                            blockZ, smem, stream, params, extra));
}

/// A launch with thread-block clusters (sm_90): cluster sizes come first.
extern "C" void mgpuLaunchClusterKernel(CUfunction function, intptr_t clusterX,
                                        intptr_t clusterY, intptr_t clusterZ,
                                        intptr_t gridX, intptr_t gridY,
                                        intptr_t gridZ, intptr_t blockX,
                                        intptr_t blockY, intptr_t blockZ,
                                        int32_t smem, CUstream stream,
                                        void **params, void **extra) {
  useContext(__func__);
  if (smem > 48 * 1024)
    CUDA_CHECK(cuFuncSetAttribute(
        function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem));
  CUlaunchAttribute cluster;
  cluster.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  cluster.value.clusterDim.x = unsigned(clusterX);
  cluster.value.clusterDim.y = unsigned(clusterY);
  cluster.value.clusterDim.z = unsigned(clusterZ);
  CUlaunchConfig config = {};
  config.gridDimX = unsigned(gridX);
  config.gridDimY = unsigned(gridY);
  config.gridDimZ = unsigned(gridZ);
  config.blockDimX = unsigned(blockX);
  config.blockDimY = unsigned(blockY);
  config.blockDimZ = unsigned(blockZ);
  config.sharedMemBytes = unsigned(smem);
  config.hStream = stream;
  config.attrs = &cluster;
  config.numAttrs = 1;
  CUDA_CHECK(cuLaunchKernelEx(&config, function, params, extra));
}

//===----------------------------------------------------------------------===//
// Streams and events.
//===----------------------------------------------------------------------===//

extern "C" CUstream mgpuStreamCreate() {
  useContext(__func__);
  CUstream stream = nullptr;
  CUDA_CHECK(cuStreamCreate(&stream, CU_STREAM_DEFAULT));
  return stream;
}

extern "C" void mgpuStreamDestroy(CUstream stream) {
  useContext(__func__);
  CUDA_CHECK(cuStreamDestroy(stream));
}

extern "C" void mgpuStreamSynchronize(CUstream stream) {
  useContext(__func__);
  CUDA_CHECK(cuStreamSynchronize(stream));
}

extern "C" void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  useContext(__func__);
  CUDA_CHECK(cuStreamWaitEvent(stream, event, /*flags=*/0));
}

extern "C" CUevent mgpuEventCreate() {
  useContext(__func__);
  CUevent event = nullptr;
  CUDA_CHECK(cuEventCreate(&event, CU_EVENT_DISABLE_TIMING));
  return event;
}

extern "C" void mgpuEventDestroy(CUevent event) {
  useContext(__func__);
  CUDA_CHECK(cuEventDestroy(event));
}

extern "C" void mgpuEventSynchronize(CUevent event) {
  useContext(__func__);
  CUDA_CHECK(cuEventSynchronize(event));
}

extern "C" void mgpuEventRecord(CUevent event, CUstream stream) {
  useContext(__func__);
  CUDA_CHECK(cuEventRecord(event, stream));
}

//===----------------------------------------------------------------------===//
// Memory.
//===----------------------------------------------------------------------===//

extern "C" void *mgpuMemAlloc(uint64_t sizeBytes, CUstream stream,
                              bool isHostShared) {
  (void)stream; // the allocation is usable as soon as it returns
  useContext(__func__);
  if (sizeBytes == 0)
    return nullptr;
  CUdeviceptr ptr = 0;
  if (isHostShared)
    CUDA_CHECK(cuMemAllocManaged(&ptr, sizeBytes, CU_MEM_ATTACH_GLOBAL));
  else
    CUDA_CHECK(cuMemAlloc(&ptr, sizeBytes));
  return reinterpret_cast<void *>(ptr);
}

extern "C" void mgpuMemFree(void *ptr, CUstream stream) {
  useContext(__func__);
  if (!ptr)
    return;
  // The buffer may still be in use by work queued on `stream`.
  if (stream)
    CUDA_CHECK(cuStreamSynchronize(stream));
  CUDA_CHECK(cuMemFree(reinterpret_cast<CUdeviceptr>(ptr)));
}

extern "C" void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                           CUstream stream) {
  useContext(__func__);
  if (sizeBytes == 0)
    return;
  CUDA_CHECK(cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                           reinterpret_cast<CUdeviceptr>(src), sizeBytes,
                           stream));
}

extern "C" void mgpuMemset32(void *dst, unsigned int value, size_t count,
                             CUstream stream) {
  useContext(__func__);
  CUDA_CHECK(cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                              stream));
}

extern "C" void mgpuMemset16(void *dst, unsigned short value, size_t count,
                             CUstream stream) {
  useContext(__func__);
  CUDA_CHECK(cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                              stream));
}

extern "C" void mgpuMemHostRegister(void *ptr, uint64_t sizeBytes) {
  useContext(__func__);
  CUDA_CHECK(cuMemHostRegister(ptr, sizeBytes, /*Flags=*/0));
}

extern "C" void mgpuMemHostUnregister(void *ptr) {
  useContext(__func__);
  CUDA_CHECK(cuMemHostUnregister(ptr));
}

namespace {
/// The bytes spanned by a ranked memref descriptor
/// {allocated, aligned, offset, sizes[rank], strides[rank]}, and its first
/// element.
struct Span {
  char *begin;
  uint64_t bytes;
};
Span spanOf(int64_t rank, ropeattn_memref_descriptor *descriptor,
            int64_t elementSizeBytes) {
  const int64_t *sizes = descriptor->sizesAndStrides;
  const int64_t *strides = sizes + rank;
  int64_t last = 0; // offset of the last element, in elements
  for (int64_t i = 0; i < rank; ++i) {
    if (sizes[i] == 0)
      return {nullptr, 0};
    last += (sizes[i] - 1) * strides[i];
  }
  char *begin = static_cast<char *>(descriptor->aligned) +
                descriptor->offset * elementSizeBytes;
  return {begin, uint64_t(last + 1) * uint64_t(elementSizeBytes)};
}
} // namespace

extern "C" void
mgpuMemHostRegisterMemRef(int64_t rank, ropeattn_memref_descriptor *descriptor,
                          int64_t elementSizeBytes) {
  Span span = spanOf(rank, descriptor, elementSizeBytes);
  if (span.bytes)
    mgpuMemHostRegister(span.begin, span.bytes);
}

extern "C" void
mgpuMemHostUnregisterMemRef(int64_t rank,
                            ropeattn_memref_descriptor *descriptor,
                            int64_t elementSizeBytes) {
  Span span = spanOf(rank, descriptor, elementSizeBytes);
  if (span.bytes)
    mgpuMemHostUnregister(span.begin);
}

extern "C" void mgpuSetDefaultDevice(int32_t device) {
  std::lock_guard<std::mutex> lock(contextMutex);
  if (primaryContext && device != defaultDevice) {
    CUdevice old;
    CUDA_CHECK(cuDeviceGet(&old, defaultDevice));
    CUDA_CHECK(cuDevicePrimaryCtxRelease(old));
    primaryContext = nullptr;
  }
  defaultDevice = device;
}

//===----------------------------------------------------------------------===//
// cuFFT (what convert-ropeattn-to-gpu emits for ropeattn.fft).
//===----------------------------------------------------------------------===//

#ifdef ROPEATTN_HAVE_CUFFT
#include <cufft.h>
#include <dlfcn.h>

#include <cstring>
#include <map>
#include <utility>

namespace {

/// cuFFT is loaded on first use (dlopen), so that the library (and every
/// program linked to it) starts on machines without cuFFT; only ropeattn.fft
/// needs it. ROPEATTN_CUFFT_LIBRARY names a specific file.
struct CuFFT {
  decltype(&cufftPlan1d) plan1d = nullptr;
  decltype(&cufftSetStream) setStream = nullptr;
  decltype(&cufftExecC2C) execC2C = nullptr;
  decltype(&cufftExecZ2Z) execZ2Z = nullptr;
};

const CuFFT &cufft(const char *where) {
  static CuFFT api;
  static std::once_flag once;
  std::call_once(once, [&] {
    const char *names[] = {std::getenv("ROPEATTN_CUFFT_LIBRARY"), "libcufft.so",
                           "libcufft.so.12", "libcufft.so.11"};
    void *handle = nullptr;
    for (const char *name : names)
      if (name && *name && (handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL)))
        break;
    if (!handle)
      return;
    api.plan1d =
        reinterpret_cast<decltype(api.plan1d)>(dlsym(handle, "cufftPlan1d"));
    api.setStream = reinterpret_cast<decltype(api.setStream)>(
        dlsym(handle, "cufftSetStream"));
    api.execC2C =
        reinterpret_cast<decltype(api.execC2C)>(dlsym(handle, "cufftExecC2C"));
    api.execZ2Z =
        reinterpret_cast<decltype(api.execZ2Z)>(dlsym(handle, "cufftExecZ2Z"));
  });
  if (!api.plan1d || !api.setStream || !api.execC2C || !api.execZ2Z) {
    std::fprintf(stderr,
                 "ropeattn-cuda-runtime: error: %s: cannot load cuFFT "
                 "(libcufft.so, .so.12 or .so.11; set ROPEATTN_CUFFT_LIBRARY "
                 "to its path)\n",
                 where);
    std::fflush(stderr);
    std::_Exit(1);
  }
  return api;
}

[[noreturn]] void cufftFail(const char *expr, cufftResult result,
                            const char *where) {
  std::fprintf(stderr,
               "ropeattn-cuda-runtime: error: %s failed in %s: cufftResult "
               "%d\n",
               expr, where, int(result));
  std::fflush(stderr);
  std::_Exit(1);
}

#define CUFFT_CHECK(expr)                                                      \
  do {                                                                         \
    cufftResult result_ = (expr);                                              \
    if (result_ != CUFFT_SUCCESS)                                              \
      cufftFail(#expr, result_, __func__);                                     \
  } while (false)

std::mutex planMutex;
std::map<std::pair<int64_t, int64_t>, cufftHandle> plans[2];

/// Sizes [B, L, 2] of a rank-3 descriptor; the layout must be contiguous.
void shapeOf(ropeattn_memref_descriptor *m, const char *where, int64_t &b,
             int64_t &l) {
  const int64_t *ss = m->sizesAndStrides;
  b = ss[0];
  l = ss[1];
  if (ss[2] != 2 || ss[5] != 1 || ss[4] != 2 || (b > 1 && ss[3] != 2 * l)) {
    std::fprintf(stderr,
                 "ropeattn-cuda-runtime: error: %s expects contiguous "
                 "[B, L, 2] buffers\n",
                 where);
    std::_Exit(1);
  }
}

template <typename T>
void runFFT(ropeattn_memref_descriptor *in, ropeattn_memref_descriptor *out,
            int32_t inverse, bool f64, const char *where) {
  useContext(where);
  const CuFFT &api = cufft(where);
  int64_t b, l, bo, lo;
  shapeOf(in, where, b, l);
  shapeOf(out, where, bo, lo);
  if (b != bo || l != lo) {
    std::fprintf(stderr, "ropeattn-cuda-runtime: error: %s: shapes differ\n",
                 where);
    std::_Exit(1);
  }
  if (b == 0 || l == 0)
    return;
  cufftHandle plan;
  {
    std::lock_guard<std::mutex> lock(planMutex);
    auto &cache = plans[f64 ? 1 : 0];
    auto it = cache.find({l, b});
    if (it == cache.end()) {
      CUFFT_CHECK(
          api.plan1d(&plan, int(l), f64 ? CUFFT_Z2Z : CUFFT_C2C, int(b)));
      cache[{l, b}] = plan;
    } else {
      plan = it->second;
    }
  }
  CUFFT_CHECK(api.setStream(plan, nullptr)); // the legacy default stream
  T *src = static_cast<T *>(in->aligned) + in->offset;
  T *dst = static_cast<T *>(out->aligned) + out->offset;
  int direction = inverse ? CUFFT_INVERSE : CUFFT_FORWARD;
  if constexpr (sizeof(T) == 4)
    CUFFT_CHECK(api.execC2C(plan, reinterpret_cast<cufftComplex *>(src),
                            reinterpret_cast<cufftComplex *>(dst), direction));
  else
    CUFFT_CHECK(api.execZ2Z(plan, reinterpret_cast<cufftDoubleComplex *>(src),
                            reinterpret_cast<cufftDoubleComplex *>(dst),
                            direction));
  CUDA_CHECK(cuStreamSynchronize(nullptr));
}

} // namespace

extern "C" void
_mlir_ciface_ropeattn_cuda_fft_f32(ropeattn_memref_descriptor *in,
                                   ropeattn_memref_descriptor *out,
                                   int32_t inverse) {
  runFFT<float>(in, out, inverse, false, __func__);
}

extern "C" void
_mlir_ciface_ropeattn_cuda_fft_f64(ropeattn_memref_descriptor *in,
                                   ropeattn_memref_descriptor *out,
                                   int32_t inverse) {
  runFFT<double>(in, out, inverse, true, __func__);
}
#endif // ROPEATTN_HAVE_CUFFT
