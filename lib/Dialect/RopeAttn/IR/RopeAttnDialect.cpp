//===- RopeAttnDialect.cpp - ropeattn dialect and attributes -------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::ropeattn;

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnDialect.cpp.inc"
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnAttrs.cpp.inc"

void RopeAttnDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnOps.cpp.inc"
      >();
}

FailureOr<APFloat> mlir::ropeattn::parseF64Parameter(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return APFloat(value);
}

FailureOr<std::optional<APFloat>>
mlir::ropeattn::parseOptionalF64Parameter(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return std::optional<APFloat>(APFloat(value));
}

bool mlir::ropeattn::sameOptionalF64(const std::optional<APFloat> &a,
                                     const std::optional<APFloat> &b) {
  if (a.has_value() != b.has_value())
    return false;
  return !a || a->bitwiseIsEqual(*b);
}

Type mlir::ropeattn::getAccumulationType(Type elementType) {
  if (elementType.isF64())
    return elementType;
  return Float32Type::get(elementType.getContext());
}

LogicalResult RopeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               APFloat baseValue, RopeLayout layout,
                               std::optional<int64_t> rotaryDim,
                               int64_t positionOffset,
                               std::optional<APFloat> xposScaleBase,
                               std::optional<APFloat> xposGamma) {
  double base = baseValue.convertToDouble();
  if (!std::isfinite(base) || base <= 0.0)
    return emitError() << "expected a finite positive rope base, found "
                       << base;
  if (rotaryDim) {
    if (*rotaryDim < 0)
      return emitError() << "expected a non-negative rope rotary_dim, found "
                         << *rotaryDim;
    if (*rotaryDim % 2 != 0)
      return emitError() << "expected an even rope rotary_dim, found "
                         << *rotaryDim;
  }
  if (xposScaleBase) {
    double b = xposScaleBase->convertToDouble();
    if (!std::isfinite(b) || b <= 0.0)
      return emitError()
             << "expected a finite positive rope xpos_scale_base, found " << b;
  }
  if (xposGamma) {
    if (!xposScaleBase)
      return emitError() << "expected rope xpos_gamma only together with "
                            "xpos_scale_base (xPos is off without it)";
    double g = xposGamma->convertToDouble();
    if (!std::isfinite(g) || g <= 0.0)
      return emitError() << "expected a finite positive rope xpos_gamma, found "
                         << g;
  }
  return success();
}
