//===- InitRopeAttn.cpp - ropeattn registration entry points --------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/InitRopeAttn.h"

#include "ropeattn/Codegen/Passes.h"
#include "ropeattn/Conversion/Passes.h"
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"
#include "ropeattn/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"

void mlir::registerRopeAttnDialect(DialectRegistry &registry) {
  registry.insert<ropeattn::RopeAttnDialect, tensor::TensorDialect>();
}

void mlir::registerRopeAttnPasses() {
  ropeattn::registerRopeAttnPasses();
  ropeattn::registerRopeAttnCodegenPasses();
  ropeattn::registerRopeAttnConversionPasses();
  ropeattn::registerRopeAttnPipelines();
}
