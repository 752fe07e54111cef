//===- consumer.cpp - embeds ropeattn via find_package(RopeAttn) ----------===//
//
// Parses RoPE attention IR, runs a ropeattn pass from a textual pipeline and
// prints the result: what an ML compiler embedding the dialect does.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/InitRopeAttn.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

static const char *kInput = R"mlir(
func.func @attn(%q: tensor<4x16x8xf32>, %k: tensor<2x32x8xf32>, %v: tensor<2x32x8xf32>) -> tensor<4x16x8xf32> {
  %o = ropeattn.attention %q, %k, %v causal rope <> : (tensor<4x16x8xf32>, tensor<2x32x8xf32>, tensor<2x32x8xf32>) -> tensor<4x16x8xf32>
  return %o : tensor<4x16x8xf32>
}
)mlir";

int main() {
  mlir::DialectRegistry registry;
  mlir::registerRopeAttnDialect(registry);
  registry.insert<mlir::func::FuncDialect>();
  mlir::registerRopeAttnPasses();
  mlir::MLIRContext context(registry);

  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(kInput, &context);
  if (!module) {
    llvm::errs() << "consumer: failed to parse the input\n";
    return 1;
  }
  mlir::PassManager pm(&context);
  if (mlir::failed(
          mlir::parsePassPipeline("func.func(ropeattn-prerotate)", pm))) {
    llvm::errs() << "consumer: unknown pipeline\n";
    return 1;
  }
  if (mlir::failed(pm.run(*module))) {
    llvm::errs() << "consumer: pass pipeline failed\n";
    return 1;
  }
  int rotaries = 0;
  module->walk([&](mlir::ropeattn::RotaryOp) { ++rotaries; });
  module->print(llvm::outs());
  llvm::outs() << "consumer: " << rotaries << " rotary ops\n";
  return rotaries == 2 ? 0 : 1;
}
