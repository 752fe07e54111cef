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
/// The same for an optional parameter (`xpos_scale_base`, `xpos_gamma`).
FailureOr<std::optional<llvm::APFloat>>
parseOptionalF64Parameter(AsmParser &parser);
/// Bitwise equality of two optional f64 parameters.
bool sameOptionalF64(const std::optional<llvm::APFloat> &a,
                     const std::optional<llvm::APFloat> &b);

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

namespace mlir {
namespace ropeattn {
/// The `rope` of the query side and of the key side of attention with fused
/// `rope`, N queries and M keys (docs/Spec.md §3): keys sit at P + j,
/// queries at P + (M − N) + i. With xPos scaling both sides are shifted by
/// the same centre (the logits depend on positions only through p_q − p_k),
/// which keeps the factors ζ^(±p/B) in range (docs/Spec.md §3.1).
std::pair<RopeAttr, RopeAttr> getAttentionSideRopes(RopeAttr rope, int64_t n,
                                                    int64_t m);

/// max over rows at positions P + [lo, hi] and pairs a of |p·ln(ζ_a)/B|: the
/// largest exponent of an xPos factor (0 without xPos or rotated pairs).
double getXposExponentBound(RopeAttr rope, int64_t headDim, int64_t lo,
                            int64_t hi);

/// The largest xPos exponent allowed for accumulation type `accType`
/// (docs/Spec.md §3.1): 64 for f32, 512 for f64.
double getXposExponentLimit(Type accType);

/// Builds `ropeattn.rotary` of `x` with `rope` for one side of the logits
/// (`side` is set only when `rope` has xPos). `transpose` applies the
/// transposed map (what the backward needs); without xPos it is written as
/// `inverse`, which is the same map for a pure rotation.
Value createSideRotary(OpBuilder &b, Location loc, Value x, RopeAttr rope,
                       RopeSide side, bool transpose);
} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_IR_ROPEATTN_H
