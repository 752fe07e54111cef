//===- Passes.h - ropeattn code generation passes ---------------*- C++ -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_CODEGEN_PASSES_H
#define ROPEATTN_CODEGEN_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
namespace ropeattn {

#define GEN_PASS_DECL
#include "ropeattn/Codegen/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "ropeattn/Codegen/Passes.h.inc"

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_CODEGEN_PASSES_H
