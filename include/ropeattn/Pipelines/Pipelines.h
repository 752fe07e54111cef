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
};

/// ropeattn (and linalg/tensor) IR on tensors → LLVM dialect for the host CPU.
/// After it, every public function `f` has a C interface
/// `_mlir_ciface_f(inputs..., outputs...)` taking pointers to ranked memref
/// descriptors, results as out-parameters, and carries its original signature
/// in `ropeattn.abi` (see the ropeattn-export-abi pass).
void buildLowerToCPUPipeline(OpPassManager &pm,
                             const LowerToCPUOptions &options);

/// Registers `rope-lower-to-cpu` (and later pipelines) with the global
/// registry.
void registerRopeAttnPipelines();

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_PIPELINES_PIPELINES_H
