//===- CostModel.h - method selection for ropeattn attention ----*- C++ -*-===//
//
// Part of the ropeattn project.
//
// The polynomial method's compile-time candidates (degree, covered logit
// range, proven δ, coefficients) and the flop estimates the method selection
// compares. Formulas: docs/Spec.md §11 ("Cost model") and docs/Design.md.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_UTILS_COSTMODEL_H
#define ROPEATTN_DIALECT_ROPEATTN_UTILS_COSTMODEL_H

#include "ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace mlir {
namespace ropeattn {
namespace cost {

/// One compilable degree of the polynomial method: valid for every logit
/// bound β̂ ≤ betaMax with proven weight error ≤ delta.
struct PolyCandidate {
  int64_t degree = 0;
  double betaMax = 0, delta = 0;
  std::vector<double> coeffs;
};

/// The largest logit range of degree g whose proven bound meets ε: Taylor in
/// closed form (even g only), the fitted families on the grid 2^(k/2),
/// k = 6 … −8, largest first. None when no range qualifies.
std::optional<PolyCandidate> polyCandidate(poly::Family family, int64_t g,
                                           double epsilon);

/// The sizes the estimates depend on (B·H folded).
struct AttentionShape {
  int64_t bhq = 0, bhk = 0, n = 0, m = 0, d = 0, dv = 0;
  bool causal = false;
};

/// Visible (query, key) pairs per head: N·M, or the causal count with the
/// bottom-right alignment (key j visible from query i iff j ≤ i + M − N).
double visiblePairs(const AttentionShape &s);

/// Estimated flops of the exact (flash) method; `grad` for attention_grad.
/// One exponential counts as kExpFlops.
double exactFlops(const AttentionShape &s, bool grad);

/// Estimated flops of the polynomial method at degree g with chunk C.
double polyFlops(const AttentionShape &s, int64_t g, int64_t chunk, bool grad);

/// What one exp costs, in flops, in these estimates.
constexpr double kExpFlops = 10.0;

} // namespace cost
} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_UTILS_COSTMODEL_H
