//===- rope-opt.cpp - mlir-opt with the ropeattn dialect ------------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/InitRopeAttn.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary (rope-lower-to-cuda) translates gpu.module to LLVM IR.
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::registerAllPasses();
  mlir::registerRopeAttnDialect(registry);
  mlir::registerRopeAttnPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "ropeattn optimizer driver\n", registry));
}
