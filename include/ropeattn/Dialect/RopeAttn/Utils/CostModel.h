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

/// The largest logit range of degree g on the grid 2^(k/2), k = 6 … −8
/// (largest first), whose proven bound meets ε: Taylor in closed form (even
/// g only). None when no range qualifies. The starting point of
/// polyCandidate's bisection.
std::optional<PolyCandidate> gridPolyCandidate(poly::Family family, int64_t g,
                                               double epsilon);

/// The polynomial method's candidate of degree g, with the widest fitted
/// range: gridPolyCandidate, then, for the fitted families, bisection between
/// its grid point B (qualifies) and the next grid point up (does not) on the
/// range of the fit itself, to a relative width of kRangeTolerance; every
/// range tried is fitted and certified afresh, and the returned candidate is
/// the widest one that qualified (δ ≤ ε, positive). Taylor: as
/// gridPolyCandidate (already its largest range). Results are cached per
/// (family, g, ε); thread-safe. Every method takes its fits from here
/// (polynomial, Toeplitz, general form, CUDA, the cost model;
/// docs/Polynomial.md §8), so that they compute the same function for the same
/// ε.
std::optional<PolyCandidate> polyCandidate(poly::Family family, int64_t g,
                                           double epsilon);

/// The relative width to which polyCandidate bisects the range.
constexpr double kRangeTolerance = 1e-3;

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

/// The FFT length of a Toeplitz product of N + M − 1 offsets: the power of
/// two 2^⌈log2(N + M − 1)⌉ (≥ 1), as ropeattn-expand-toeplitz embeds it.
double fftLength(const AttentionShape &s);

/// Flops of one complex FFT of length L: 5·L·log2 L.
double fftFlops(double length);

/// Flops of Toeplitz products of one symbol with `columns` real columns:
/// ⌈columns / 2⌉ complex column pairs × (forward + inverse FFT + pointwise
/// complex product 6L), plus the symbol's FFT.
double toeplitzProductFlops(double length, double columns);

/// Estimated flops of `method toeplitz` on relative-bias attention at degree
/// g (rank r = C(D + g, g), docs/Spec.md §16.4).
double toeplitzBiasFlops(const AttentionShape &s, int64_t g);

/// The general per-offset form with support size `support`: the exact
/// (materialized) lowering, and the monomial/Toeplitz rewrite at degree g
/// with |M| = C(|S| + g, g) terms (docs/Spec.md §16.4).
double generalExactFlops(const AttentionShape &s, int64_t support);
double generalToeplitzFlops(const AttentionShape &s, int64_t support,
                            int64_t g);

/// The same for general_attention_grad (docs/Spec.md §16.5): the exact
/// lowering's gradient, and the Toeplitz backward at degree g with `tables`
/// weight tables (1 shared, Hq per head).
double generalExactGradFlops(const AttentionShape &s, int64_t support);
double generalToeplitzGradFlops(const AttentionShape &s, int64_t support,
                                int64_t g, int64_t tables);

} // namespace cost
} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_UTILS_COSTMODEL_H
