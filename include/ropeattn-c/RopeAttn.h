/*===- ropeattn-c/RopeAttn.h - C API of ropeattn ------------------*- C -*-===*\
|*                                                                            *|
|* Part of the ropeattn project.                                              *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * A C interface (mlir-c style: opaque handles, plain C types, no exceptions,
 * no aborts on bad input) to compile a ropeattn module for the host CPU and
 * call its functions. libRopeAttnCAPI.so; the Python package `ropeattn`
 * binds it with ctypes.
 *
 *   char *error = NULL;
 *   RopeAttnModule *m = ropeattnModuleCompile(text, strlen(text), NULL, "",
 *                                             3, NULL, &error);
 *   if (!m) { fprintf(stderr, "%s\n", error); ropeattnFreeString(error); }
 *   void *args[] = {q, k, v, o, lse};  // inputs, then results
 *   if (ropeattnModuleInvoke(m, "fwd", args, 5, &error)) ...
 *   ropeattnModuleDestroy(m);
 *
 * Every function that can fail returns a failure indication (NULL, or a
 * non-zero status) and, when `errorMessage` is not NULL, stores a message in
 * *errorMessage (owned by the caller, release with ropeattnFreeString).
 * A module may be invoked from several threads at once (each call with its
 * own buffers); compiling is thread-safe too (one MLIR context per module).
 */

#ifndef ROPEATTN_C_ROPEATTN_H
#define ROPEATTN_C_ROPEATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ROPEATTN_CAPI_EXPORTED __attribute__((visibility("default")))
#else
#define ROPEATTN_CAPI_EXPORTED
#endif

/* Version of this interface; changes when a declaration below changes. */
#define ROPEATTN_CAPI_VERSION 1

/* Element types of a function's tensors (stable numbering). INDEX is 64 bits
 * on every supported host. */
typedef enum RopeAttnElementType {
  ROPEATTN_ELEMENT_INVALID = 0,
  ROPEATTN_ELEMENT_F16 = 1,
  ROPEATTN_ELEMENT_BF16 = 2,
  ROPEATTN_ELEMENT_F32 = 3,
  ROPEATTN_ELEMENT_F64 = 4,
  ROPEATTN_ELEMENT_I1 = 5,
  ROPEATTN_ELEMENT_I8 = 6,
  ROPEATTN_ELEMENT_I16 = 7,
  ROPEATTN_ELEMENT_I32 = 8,
  ROPEATTN_ELEMENT_I64 = 9,
  ROPEATTN_ELEMENT_INDEX = 10
} RopeAttnElementType;

/* A compiled module: its MLIR context, the lowered module and the JIT. */
typedef struct RopeAttnModule RopeAttnModule;

/* ROPEATTN_CAPI_VERSION of the library. */
ROPEATTN_CAPI_EXPORTED int ropeattnGetCAPIVersion(void);

/* Releases a string returned by this library (NULL is allowed). */
ROPEATTN_CAPI_EXPORTED void ropeattnFreeString(char *string);

/* Parses `irText` (`irLength` bytes; MLIR text of a module on tensors:
 * ropeattn, linalg, tensor, func, ...), lowers it and JIT-compiles it for the
 * host CPU.
 *   pipeline: NULL or "" for rope-lower-to-cpu; otherwise a textual pass
 *     pipeline to the LLVM dialect ("builtin.module(...)" optional) that keeps
 *     the ropeattn ABI (ropeattn-export-abi + C interfaces).
 *   pipelineOptions: options of rope-lower-to-cpu (e.g. "blas=0
 *     epsilon=1e-4"), NULL or "" for the defaults; must be empty when
 *     `pipeline` is given.
 *   optLevel: LLVM optimization level of the JIT, 0-3.
 *   sharedLibraries: NULL, or a comma-separated list of more shared
 *     libraries for the JIT (beside the MLIR C runner utils, the OpenMP
 *     runtime and libropeattn_runtime.so, found next to this library).
 * Every public func.func with tensor (or memref) arguments and results
 * becomes callable; shapes must be static. Returns NULL on failure (parse
 * errors and pass diagnostics are in the message, with line:column). */
ROPEATTN_CAPI_EXPORTED RopeAttnModule *
ropeattnModuleCompile(const char *irText, size_t irLength, const char *pipeline,
                      const char *pipelineOptions, int optLevel,
                      const char *sharedLibraries, char **errorMessage);

/* Destroys a module (NULL is allowed). */
ROPEATTN_CAPI_EXPORTED void ropeattnModuleDestroy(RopeAttnModule *module);

/* The names of the callable functions, comma-separated, in module order
 * (release with ropeattnFreeString). */
ROPEATTN_CAPI_EXPORTED char *
ropeattnModuleGetFunctionNames(RopeAttnModule *module);

/* The original signature of @name as MLIR prints it, e.g.
 * "(tensor<2x4xf32>) -> tensor<2x4xf32>"; NULL (and a message) when there is
 * no such function. Release with ropeattnFreeString. */
ROPEATTN_CAPI_EXPORTED char *ropeattnModuleGetSignature(RopeAttnModule *module,
                                                        const char *name,
                                                        char **errorMessage);

/* Number of inputs / results of @name; -1 when there is no such function. */
ROPEATTN_CAPI_EXPORTED int64_t
ropeattnModuleGetNumInputs(RopeAttnModule *module, const char *name);
ROPEATTN_CAPI_EXPORTED int64_t
ropeattnModuleGetNumResults(RopeAttnModule *module, const char *name);

/* Input (isResult = 0) or result (isResult = 1) `index` of @name: its element
 * type, its rank, and its sizes in shape[0 .. min(rank, maxRank)). Returns 0,
 * or non-zero when there is no such function or tensor. */
ROPEATTN_CAPI_EXPORTED int
ropeattnModuleGetTensorType(RopeAttnModule *module, const char *name,
                            int isResult, int64_t index,
                            RopeAttnElementType *elementType, int64_t *rank,
                            int64_t *shape, int64_t maxRank);

/* Calls @name on contiguous row-major buffers: data[0 .. numInputs) are the
 * inputs (read only), data[numInputs .. numInputs + numResults) the results,
 * allocated by the caller with the sizes and element types of the signature
 * (64-byte alignment recommended). `numBuffers` must be numInputs +
 * numResults. Returns 0, or non-zero with a message. */
ROPEATTN_CAPI_EXPORTED int ropeattnModuleInvoke(RopeAttnModule *module,
                                                const char *name,
                                                void *const *data,
                                                int64_t numBuffers,
                                                char **errorMessage);

/* Low level: calls _mlir_ciface_<name> with `descriptors[i]` = a pointer to
 * a ranked memref descriptor {T *allocated, T *aligned, int64_t offset,
 * int64_t sizes[R], int64_t strides[R]} for each input, then each result.
 * Nothing is checked beyond the function's existence and `numDescriptors`. */
ROPEATTN_CAPI_EXPORTED int ropeattnModuleInvokePacked(RopeAttnModule *module,
                                                      const char *name,
                                                      void *const *descriptors,
                                                      int64_t numDescriptors,
                                                      char **errorMessage);

/* The LLVM-dialect module that was JIT-compiled (debugging). */
ROPEATTN_CAPI_EXPORTED char *ropeattnModuleGetLoweredIR(RopeAttnModule *module);

#ifdef __cplusplus
}
#endif

#endif /* ROPEATTN_C_ROPEATTN_H */
