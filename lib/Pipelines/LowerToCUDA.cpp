//===- LowerToCUDA.cpp - the rope-lower-to-cuda pipeline ------------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Pipelines/Pipelines.h"

#include "ropeattn/Codegen/Passes.h"
#include "ropeattn/Conversion/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Support/FormatVariadic.h"

#ifndef ROPEATTN_CUDA_TOOLKIT_DIR
#define ROPEATTN_CUDA_TOOLKIT_DIR ""
#endif

using namespace mlir;

void ropeattn::buildLowerToCUDAPipeline(OpPassManager &pm,
                                        const LowerToCUDAOptions &options) {
  pm.addPass(ropeattn::createRopeAttnExportABI());
  pm.addPass(createCanonicalizerPass());
  ropeattn::ConvertRopeAttnToGPUOptions lowering;
  lowering.blockQ = options.blockQ;
  lowering.blockK = options.blockK;
  lowering.familyName = options.family;
  lowering.epsilon = options.epsilon;
  lowering.maxDegree = options.maxDegree;
  lowering.maxRank = options.maxRank;
  lowering.maxStateMib = options.maxStateMib;
  lowering.polyChunk = options.polyChunk;
  pm.addPass(ropeattn::createConvertRopeAttnToGPU(lowering));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  std::string toolkit = options.toolkit.empty()
                            ? std::string(ROPEATTN_CUDA_TOOLKIT_DIR)
                            : std::string(options.toolkit);
  std::string toBinary =
      toolkit.empty()
          ? llvm::formatv("gpu-module-to-binary{{format={0}}", options.format)
                .str()
          : llvm::formatv("gpu-module-to-binary{{format={0} toolkit={1}}",
                          options.format, toolkit)
                .str();
  std::string upstream = llvm::formatv(
      // Device code: the chip and PTX features are always explicit.
      "nvvm-attach-target{{chip={0} features={1} O={2}},"
      "gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm,canonicalize,cse,"
      "reconcile-unrealized-casts),"
      // Host code: memref descriptors, launches and runtime calls.
      "expand-strided-metadata,lower-affine,convert-scf-to-cf,gpu-to-llvm,"
      "finalize-memref-to-llvm,convert-to-llvm,reconcile-unrealized-casts,"
      "{3}",
      options.chip, options.features, options.optLevel, toBinary);
  if (failed(parsePassPipeline(upstream, pm)))
    llvm::report_fatal_error("rope-lower-to-cuda: bad upstream pipeline");
}
