//===- RopeAttn.h - ropeattn dialect ----------------------------*- C++ -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTN_H
#define ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTN_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnDialect.h.inc"
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnEnums.h.inc"

namespace mlir {
namespace ropeattn {
/// Parses a float literal for the `base` parameter of #ropeattn.rope (stored
/// as an APFloat).
FailureOr<llvm::APFloat> parseF64Parameter(AsmParser &parser);

/// The element type in which softmax statistics (logsumexp) are kept for
/// inputs of element type `elementType`: f64 for f64, f32 otherwise.
Type getAccumulationType(Type elementType);

/// Entries of the `certificate` result of ropeattn.attention: [β̂, degree,
/// δ, output bound, logsumexp bound] (docs/Spec.md §11).
constexpr int64_t kCertificateSize = 5;
} // namespace ropeattn
} // namespace mlir

#define GET_ATTRDEF_CLASSES
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnAttrs.h.inc"

#define GET_OP_CLASSES
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnOps.h.inc"

#endif // ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTN_H
