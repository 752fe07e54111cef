//===- ExportABI.cpp - record public signatures for runners ---------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Codegen/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNEXPORTABI
#include "ropeattn/Codegen/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;

namespace {
struct RopeAttnExportABIPass
    : public ropeattn::impl::RopeAttnExportABIBase<RopeAttnExportABIPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isPrivate() || func.isExternal())
        continue;
      func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                    UnitAttr::get(&getContext()));
      if (!func->hasAttr("ropeattn.abi"))
        func->setAttr("ropeattn.abi", TypeAttr::get(func.getFunctionType()));
      // The caller's inputs are read-only: bufferization must copy rather
      // than update them in place (e.g. a RoPE rotating q into its buffer).
      for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
        if (isa<TensorType>(func.getArgument(i).getType()))
          func.setArgAttr(i, "bufferization.writable",
                          BoolAttr::get(&getContext(), false));
    }
  }
};
} // namespace
