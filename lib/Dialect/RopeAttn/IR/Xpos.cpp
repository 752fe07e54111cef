//===- Xpos.cpp - xPos scaling of the rotary embedding --------------------===//
//
// Part of the ropeattn project.
//
// The pieces of #ropeattn.rope's xPos scaling (docs/Spec.md §3.1) shared by
// the verifiers and by every pass that consumes a fused rope: the factor rate
// ln(ζ_a)/B, the centring of attention positions, the exponent range check
// and the construction of per-side rotary ops.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"

#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

using namespace mlir;
using namespace mlir::ropeattn;

double RopeAttr::getXposRate(int64_t a, int64_t r) const {
  double gamma = getXposGammaValue();
  double zeta = (2.0 * double(a) / double(r) + gamma) / (1.0 + gamma);
  return std::log(zeta) / getXposScaleBaseValue();
}

RopeAttr RopeAttr::withPositionOffset(int64_t positionOffset) const {
  return RopeAttr::get(getContext(), getBase(), getLayout(), getRotaryDim(),
                       positionOffset, getXposScaleBase(), getXposGamma());
}

std::pair<RopeAttr, RopeAttr>
mlir::ropeattn::getAttentionSideRopes(RopeAttr rope, int64_t n, int64_t m) {
  if (!rope.hasXpos())
    return {rope.withPositionOffset(rope.getPositionOffset() + (m - n)), rope};
  // Relative positions: keys j ∈ [0, M), queries (M − N) + i ∈ [M − N, M).
  // Their union is [min(0, M − N), M − 1]; its centre c becomes 0.
  int64_t lo = std::min<int64_t>(0, m - n), hi = m - 1;
  int64_t c = llvm::divideFloorSigned(lo + hi, 2);
  return {rope.withPositionOffset((m - n) - c), rope.withPositionOffset(-c)};
}

double mlir::ropeattn::getXposExponentBound(RopeAttr rope, int64_t headDim,
                                            int64_t lo, int64_t hi) {
  int64_t r = rope.getRotaryDimOr(headDim);
  if (!rope.hasXpos() || r < 2 || lo > hi)
    return 0.0;
  double p0 = double(rope.getPositionOffset());
  double far = std::max(std::abs(p0 + double(lo)), std::abs(p0 + double(hi)));
  // ζ_0 = γ/(1 + γ) is the smallest ζ_a, so |ln ζ_0| is the largest rate.
  return far * std::abs(rope.getXposRate(0, r));
}

double mlir::ropeattn::getXposExponentLimit(Type accType) {
  return accType.isF64() ? 512.0 : 64.0;
}

Value mlir::ropeattn::createSideRotary(OpBuilder &b, Location loc, Value x,
                                       RopeAttr rope, RopeSide side,
                                       bool transpose) {
  bool xpos = rope.hasXpos();
  RopeSideAttr sideAttr =
      xpos ? RopeSideAttr::get(b.getContext(), side) : RopeSideAttr();
  return RotaryOp::create(b, loc, x.getType(), x, /*positions=*/Value(),
                          /*inverse=*/transpose && !xpos, rope,
                          /*transpose=*/transpose && xpos, sideAttr)
      .getResult();
}
