//===- Passes.h - ropeattn conversion passes --------------------*- C++ -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_CONVERSION_PASSES_H
#define ROPEATTN_CONVERSION_PASSES_H

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
namespace ropeattn {

#define GEN_PASS_DECL
#include "ropeattn/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "ropeattn/Conversion/Passes.h.inc"

/// Adds the exact lowering of `ropeattn.poly_features` and
/// `ropeattn.poly_features_grad` to linalg/tensor/arith on tensors
/// (lib/Conversion/RopeAttnToLinalg/PolyFeatures.cpp); part of
/// convert-ropeattn-to-linalg. `vectorBits` > 0 builds the transposed
/// rank-2 Jacobian contraction as register-blocked vector loops of that
/// width (0: loops only).
void populatePolyFeaturesLoweringPatterns(RewritePatternSet &patterns,
                                          int64_t vectorBits = 0);

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_CONVERSION_PASSES_H
