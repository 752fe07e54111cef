//===- LowerToCPU.cpp - the rope-lower-to-cpu pipeline --------------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Pipelines/Pipelines.h"

#include "ropeattn/Codegen/Passes.h"
#include "ropeattn/Conversion/Passes.h"
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "mlir/Dialect/Bufferization/Transforms/OneShotAnalysis.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/TargetParser/Host.h"

using namespace mlir;

/// (vector bits, max rows) of the skinny-matmul kernels for the pipeline's
/// `vector-bits` option: rows = 0 turns them off. The row bound keeps the
/// accumulators plus the loaded vector and a broadcast in the register file:
/// 32 vector registers with AVX-512, 16 with AVX2.
static std::pair<int64_t, int64_t> skinnyKernelShape(int64_t option) {
  if (option < 0)
    return {0, 0};
  if (option == 0) {
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    if (features.lookup("avx512f"))
      option = 512;
    else if (features.lookup("avx2") && features.lookup("fma"))
      option = 256;
    else
      return {0, 0};
  }
  return {option, option >= 512 ? 24 : 12};
}

void ropeattn::buildLowerToCPUPipeline(OpPassManager &pm,
                                       const LowerToCPUOptions &options) {
  pm.addPass(ropeattn::createRopeAttnExportABI());
  pm.addPass(createCanonicalizerPass());
  if (options.autoMethod == AutoMethod::CostModel) {
    ropeattn::RopeAttnSelectMethodOptions select;
    select.familyName = options.family;
    select.epsilon = options.epsilon;
    select.maxDegree = options.maxDegree;
    select.maxRank = options.maxRank;
    select.chunk = options.polyChunk;
    select.assumedBeta = options.assumedBeta;
    pm.addNestedPass<func::FuncOp>(
        ropeattn::createRopeAttnSelectMethod(select));
  }
  pm.addNestedPass<func::FuncOp>(ropeattn::createRopeAttnPrerotate());
  ropeattn::RopeAttnExpandPolynomialOptions poly;
  poly.familyName = options.family;
  poly.epsilon = options.epsilon;
  poly.maxDegree = options.maxDegree;
  poly.maxRank = options.maxRank;
  poly.chunk = options.polyChunk;
  pm.addNestedPass<func::FuncOp>(
      ropeattn::createRopeAttnExpandPolynomial(poly));
  ropeattn::RopeAttnExpandToeplitzAttentionOptions toeplitz;
  toeplitz.familyName = options.family;
  toeplitz.epsilon = options.epsilon;
  pm.addNestedPass<func::FuncOp>(
      ropeattn::createRopeAttnExpandToeplitzAttention(toeplitz));
  // The general per-offset form: monomials + Toeplitz for `method toeplitz`
  // (exact fallback inside), then the exact lowering of what remains.
  ropeattn::RopeAttnExpandGeneralAttentionOptions general;
  general.familyName = options.family;
  general.epsilon = options.epsilon;
  pm.addNestedPass<func::FuncOp>(
      ropeattn::createRopeAttnExpandGeneralAttention(general));
  pm.addNestedPass<func::FuncOp>(
      ropeattn::createRopeAttnLowerGeneralAttention());
  pm.addNestedPass<func::FuncOp>(ropeattn::createRopeAttnExpandToeplitz());
  ropeattn::RopeAttnLowerFftOptions fft;
  fft.backend = options.fft;
  pm.addPass(ropeattn::createRopeAttnLowerFft(fft));
  ropeattn::ConvertRopeAttnToLinalgOptions lowering;
  lowering.blockQ = options.blockQ;
  lowering.blockK = options.blockK;
  lowering.vectorBits = skinnyKernelShape(options.vectorBits).first;
  pm.addPass(ropeattn::createConvertRopeAttnToLinalg(lowering));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  // Bufferization: tensors → memrefs, results become caller-owned buffers,
  // every temporary buffer is freed (ownership-based deallocation).
  std::string upstream =
      "one-shot-bufferize{bufferize-function-boundaries "
      "function-boundary-type-conversion=identity-layout-map},"
      // No hoist-static-allocs: upstream crashes when one buffer is returned
      // twice (e.g. two equal results CSE'd together); the copy it saves is
      // O(output), negligible next to attention.
      "buffer-results-to-out-params{modify-public-functions},"
      "canonicalize,cse,buffer-deallocation-pipeline,canonicalize,";
  // scf.forall → OpenMP; the canonicalizer then inlines the alloca scopes
  // the conversion wraps around loop bodies (there are no allocas in them).
  upstream += options.parallel
                  ? "scf-forall-to-parallel,convert-scf-to-openmp,canonicalize,"
                  : "scf-forall-to-for,";
  // Products with a few output rows (the polynomial method's value columns)
  // get register-blocked vector loops; BLAS takes the rest.
  if (auto [bits, rows] = skinnyKernelShape(options.vectorBits); rows > 0)
    upstream +=
        "ropeattn-vectorize-skinny-matmul{max-rows=" + std::to_string(rows) +
        " vector-bits=" + std::to_string(bits) + "},";
  if (options.useBlas)
    upstream += "ropeattn-matmul-to-blas,";
  upstream +=
      "func.func(convert-linalg-to-loops),"
      "func.func(ropeattn-approximate-math),"
      // vector.transfer_read/write (the short FFT stages) become loads and
      // stores here: convert-to-llvm alone does not lower them.
      "lower-affine,convert-scf-to-cf,expand-strided-metadata,lower-affine,"
      "convert-vector-to-llvm,"
      "finalize-memref-to-llvm,convert-to-llvm,convert-openmp-to-llvm,"
      "reconcile-unrealized-casts";
  if (failed(parsePassPipeline(upstream, pm)))
    llvm::report_fatal_error("rope-lower-to-cpu: bad upstream pipeline");
}

void ropeattn::registerRopeAttnPipelines() {
  PassPipelineRegistration<LowerToCPUOptions>(
      "rope-lower-to-cpu",
      "Lowers ropeattn/linalg on tensors to the LLVM dialect for the host CPU",
      buildLowerToCPUPipeline);
  PassPipelineRegistration<LowerToCUDAOptions>(
      "rope-lower-to-cuda",
      "Lowers ropeattn attention functions to LLVM-dialect host code that "
      "launches CUDA kernels (embedded cubin); calls the mgpu* runtime",
      buildLowerToCUDAPipeline);
}
