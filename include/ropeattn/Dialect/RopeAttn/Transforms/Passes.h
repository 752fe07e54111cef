//===- Passes.h - ropeattn transformation passes ----------------*- C++ -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_TRANSFORMS_PASSES_H
#define ROPEATTN_DIALECT_ROPEATTN_TRANSFORMS_PASSES_H

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
namespace ropeattn {

#define GEN_PASS_DECL
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h.inc"

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_TRANSFORMS_PASSES_H
