//===- Pipelines.h - ropeattn pass pipelines --------------------*- C++ -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_PIPELINES_PIPELINES_H
#define ROPEATTN_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir {
namespace ropeattn {

/// What `method auto` means in a pipeline.
enum class AutoMethod { Exact, CostModel };

/// Options of `rope-lower-to-cpu`.
struct LowerToCPUOptions : public PassPipelineOptions<LowerToCPUOptions> {
  PassOptions::Option<bool> useBlas{
      *this, "blas",
      llvm::cl::desc("Lower f32/f64 matmuls on tiles to OpenBLAS calls "
                     "(ropeattn runtime); otherwise to loops"),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> blockQ{
      *this, "block-q", llvm::cl::desc("Query rows per attention block"),
      llvm::cl::init(128)};
  PassOptions::Option<int64_t> blockK{
      *this, "block-k", llvm::cl::desc("Key rows per attention block"),
      llvm::cl::init(256)};
  PassOptions::Option<std::string> family{
      *this, "family",
      llvm::cl::desc("Polynomial method: taylor, chebyshev or minimax"),
      llvm::cl::init("minimax")};
  PassOptions::Option<double> epsilon{
      *this, "epsilon",
      llvm::cl::desc("Polynomial method: bound on the relative error of each "
                     "attention weight"),
      llvm::cl::init(1e-3)};
  PassOptions::Option<int64_t> maxDegree{
      *this, "max-degree",
      llvm::cl::desc("Polynomial method: largest degree considered"),
      llvm::cl::init(6)};
  PassOptions::Option<int64_t> maxRank{
      *this, "max-rank",
      llvm::cl::desc("Polynomial method: largest feature rank C(D+g, g)"),
      llvm::cl::init(32768)};
  PassOptions::Option<int64_t> polyChunk{
      *this, "poly-chunk", llvm::cl::desc("Polynomial method: rows per chunk"),
      llvm::cl::init(256)};
  PassOptions::Option<AutoMethod> autoMethod{
      *this, "auto", llvm::cl::desc("What `method auto` means"),
      llvm::cl::init(AutoMethod::Exact),
      llvm::cl::values(
          clEnumValN(AutoMethod::Exact, "exact",
                     "the exact method (no approximation unless asked for)"),
          clEnumValN(AutoMethod::CostModel, "cost-model",
                     "ropeattn-select-method chooses exact or polynomial "
                     "(under epsilon) by estimated cost"))};
  PassOptions::Option<double> assumedBeta{
      *this, "assumed-beta",
      llvm::cl::desc("Cost model: the logit bound the estimate assumes"),
      llvm::cl::init(1.0)};

  PassOptions::Option<std::string> fft{
      *this, "fft",
      llvm::cl::desc("FFTs (ropeattn.fft, Toeplitz products): codegen "
                     "(radix-2 Stockham, power-of-two lengths) or library "
                     "(FFTW through the ropeattn runtime)"),
      llvm::cl::init("library")};
  PassOptions::Option<bool> parallel{
      *this, "parallel",
      llvm::cl::desc("Run scf.forall/scf.parallel loops with OpenMP"),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> vectorBits{
      *this, "vector-bits",
      llvm::cl::desc("Vector width of the skinny-matmul kernels "
                     "(ropeattn-vectorize-skinny-matmul) and of the feature "
                     "Jacobian's vector loops (convert-ropeattn-to-linalg): "
                     "512, 256, 0 = the host's (512 with AVX-512F, 256 with "
                     "AVX2+FMA, else off), -1 = off (BLAS for every product, "
                     "scalar loops)"),
      llvm::cl::init(0)};
};

/// ropeattn (and linalg/tensor) IR on tensors → LLVM dialect for the host CPU.
/// After it, every public function `f` has a C interface
/// `_mlir_ciface_f(inputs..., outputs...)` taking pointers to ranked memref
/// descriptors, results as out-parameters, and carries its original signature
/// in `ropeattn.abi` (see the ropeattn-export-abi pass).
void buildLowerToCPUPipeline(OpPassManager &pm,
                             const LowerToCPUOptions &options);

/// Options of `rope-lower-to-cuda`.
struct LowerToCUDAOptions : public PassPipelineOptions<LowerToCUDAOptions> {
  PassOptions::Option<int64_t> blockQ{
      *this, "block-q",
      llvm::cl::desc("Query rows per thread block (= threads per block)"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> blockK{
      *this, "block-k",
      llvm::cl::desc("Key rows per tile staged in shared memory"),
      llvm::cl::init(32)};
  PassOptions::Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("CUDA architecture of the cubin (sm_80, "
                     "sm_90, ...)"),
      llvm::cl::init("sm_90")};
  PassOptions::Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX features; the default PTX ISA (6.0) is rejected by "
                     "CUDA 13's ptxas"),
      llvm::cl::init("+ptx80")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("What gpu-module-to-binary embeds: bin (cubin), fatbin, "
                     "isa (PTX text, no ptxas needed) or offload (LLVM IR)"),
      llvm::cl::init("bin")};
  PassOptions::Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit root (ptxas, libdevice); default: the one "
                     "found at configure time"),
      llvm::cl::init("")};
  PassOptions::Option<int64_t> optLevel{
      *this, "opt-level",
      llvm::cl::desc("LLVM optimization level of the device code"),
      llvm::cl::init(3)};
  // The polynomial method on CUDA (convert-ropeattn-to-gpu's options).
  PassOptions::Option<std::string> family{
      *this, "family",
      llvm::cl::desc("Polynomial method: taylor, chebyshev or minimax"),
      llvm::cl::init("minimax")};
  PassOptions::Option<double> epsilon{
      *this, "epsilon",
      llvm::cl::desc("Polynomial method: bound on the relative error of each "
                     "attention weight"),
      llvm::cl::init(1e-3)};
  PassOptions::Option<int64_t> maxDegree{
      *this, "max-degree",
      llvm::cl::desc("Polynomial method: largest degree considered"),
      llvm::cl::init(6)};
  PassOptions::Option<int64_t> maxRank{
      *this, "max-rank",
      llvm::cl::desc("Polynomial method: largest feature rank C(D+g, g)"),
      llvm::cl::init(32768)};
  PassOptions::Option<int64_t> maxStateMib{
      *this, "max-state-mib",
      llvm::cl::desc("Polynomial method: device memory for the key states"),
      llvm::cl::init(1024)};
  PassOptions::Option<int64_t> polyChunk{
      *this, "poly-chunk", llvm::cl::desc("Polynomial method: keys per chunk"),
      llvm::cl::init(256)};
};

/// ropeattn IR on tensors → LLVM dialect host code that launches CUDA kernels
/// embedded as a `gpu.binary` (cubin for `chip`). Every public function `f`
/// takes device buffers: `_mlir_ciface_f(inputs..., outputs...)` with pointers
/// to ranked memref descriptors whose data pointers are device pointers; it
/// returns when the results are written. Calls the `mgpu*` runtime
/// (libropeattn_cuda_runtime.so).
void buildLowerToCUDAPipeline(OpPassManager &pm,
                              const LowerToCUDAOptions &options);

/// Registers `rope-lower-to-cpu` (and later pipelines) with the global
/// registry.
void registerRopeAttnPipelines();

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_PIPELINES_PIPELINES_H
