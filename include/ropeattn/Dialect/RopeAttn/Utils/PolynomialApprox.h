//===- PolynomialApprox.h - certified polynomial approximations of e^x ---===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// Polynomials p(x) = Σ_k c_k x^k that approximate e^x on [−β, β] with a
// proven relative error bound, for the polynomial method of attention
// (docs/Polynomial.md has the derivations, the tables and the measured
// tightness; docs/Spec.md §10).
//
// Every bound here is about the polynomial with the stored double
// coefficients `coeffs`, evaluated exactly; the rounding of a particular
// evaluation scheme is added with `roundingAllowance`. Bounds are computed
// with IEEE arithmetic only (no libm), with every rounding accounted for, and
// are rounded up to double.
//
// The library is plain C++17 (no MLIR or LLVM types).
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_UTILS_POLYNOMIALAPPROX_H
#define ROPEATTN_DIALECT_ROPEATTN_UTILS_POLYNOMIALAPPROX_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir {
namespace ropeattn {
namespace poly {

/// How the coefficients are chosen.
enum class Family {
  /// c_k = 1/k!. Even degrees are positive on all of R (exact coefficients).
  Taylor,
  /// Interpolation of e^x at the g+1 Chebyshev nodes (first kind) of [−β, β].
  Chebyshev,
  /// Remez exchange for the least maximal *relative* error on [−β, β].
  Minimax,
};

/// Supported range of every constructor: 0 ≤ degree ≤ kMaxDegree and
/// 0 ≤ β ≤ kMaxBeta (finite). Outside it the constructors return an
/// approximation with no coefficients, delta = +inf and positive = false.
constexpr int kMaxDegree = 16;
constexpr double kMaxBeta = 8.0;

struct ExpApprox {
  Family family = Family::Taylor;
  int degree = 0;
  double beta = 0;
  /// Monomial coefficients c_0..c_g of p(x) = Σ c_k x^k (size degree + 1).
  std::vector<double> coeffs;
  /// Proven: |p(x) − e^x| ≤ delta·e^x for all |x| ≤ β, p with `coeffs`
  /// evaluated in exact arithmetic. The least of the two bounds below.
  double delta = 0;
  /// The closed-form (a priori) bound of the family: exact supremum of the
  /// relative error of the exact-coefficient polynomial, attained at x = −β,
  /// plus an allowance for the coefficients' rounding to double. +inf for
  /// Minimax (no a priori bound) unless it fell back to the interpolant.
  double deltaApriori = 0;
  /// The a posteriori bound: a Taylor-model enclosure of p(x)e^{−x} − 1 over
  /// a cover of [−β, β] by small cells (family-independent).
  double deltaCertified = 0;
  /// Proven: p(x) > 0 for all |x| ≤ β (with `coeffs`).
  bool positive = false;
  /// Upper bound on Σ_k |c_k| β^k: the magnitude that rounding errors of any
  /// evaluation of p scale with.
  double absSum = 0;
};

/// Whether the constructors accept (degree, β).
bool isSupported(int degree, double beta);

/// Degree-g Taylor polynomial of e^x at 0 (c_k = 1/k! rounded to double).
ExpApprox taylor(int degree, double beta);
/// Interpolant of e^x at the Chebyshev nodes β·cos(π(2i+1)/(2g+2)), i ≤ g.
ExpApprox chebyshev(int degree, double beta);
/// Best relative approximation (Remez exchange; certified whatever the
/// exchange achieved). Falls back to the Chebyshev interpolant's coefficients
/// if the exchange fails to improve on them.
ExpApprox minimax(int degree, double beta);
/// Dispatches on `family`.
ExpApprox approximate(Family family, int degree, double beta);

/// The least degree g ≤ min(maxDegree, kMaxDegree) (even g only for Taylor)
/// whose approximation is proven positive with delta ≤ eps; nullopt if none
/// or if β is unsupported.
std::optional<ExpApprox> leastDegree(Family family, double beta, double eps,
                                     int maxDegree);

/// For Taylor, whose coefficients do not depend on β: the largest β' ≤
/// kMaxBeta (found by bisection, then rounded down) with
/// taylor(degree, β').deltaApriori ≤ eps. That bound increases with β, so
/// any logit bound β̂ ≤ β' certifies delta ≤ eps at run time. 0 if even
/// β' = 0 fails (eps below the coefficient rounding), NaN if unsupported.
double taylorBetaLimit(int degree, double eps);

/// p(x) by Horner's rule in double.
double evaluate(const ExpApprox &approx, double x);

/// γ_n(u) = n·u / (1 − n·u) (Higham), +inf when n·u ≥ 1.
double gamma(int64_t n, double unitRoundoff);

/// Relative allowance for evaluating p at |x| ≤ β by a scheme whose absolute
/// rounding error is at most γ_n(u)·Σ_k |c_k||x|^k (Horner in precision u:
/// n = 2·degree; a feature dot product of length r whose features take m
/// roundings each: n = r + m): returns γ_n(u)·absSum·e^β, so that the
/// computed value p̃ satisfies |p̃ − e^x| ≤ (delta + allowance)·e^x.
double roundingAllowance(const ExpApprox &approx, int64_t n,
                         double unitRoundoff);

/// A proven δ' with |p'(x) − eˣ| ≤ δ'·eˣ on [−β, β] for the derivative of
/// the approximation's polynomial (the weights of the polynomial method's
/// backward; the certificate of §3.2 applied to p'), or +inf when β is not
/// supported or there are no coefficients.
double derivativeDelta(const ExpApprox &approx);

/// Attention with weights w̃_j = w_j(1 + ε_j), |ε_j| ≤ δ < 1 (w_j > 0):
/// the tight bound on |Õ_i − O_i| / max_j |v_j|, 2δ / (1 + √(1 − δ²))
/// (≈ δ; docs/Polynomial.md §4). +inf for δ ≥ 1, NaN for δ < 0 or NaN.
double outputErrorBound(double delta);
/// The tight bound on |log Σ_j w̃_j − log Σ_j w_j|: −log(1 − δ). +inf for
/// δ ≥ 1, NaN for δ < 0 or NaN.
double lseErrorBound(double delta);

/// Rank of the degree-g feature map in dimension d: C(d + g, g), saturating
/// at INT64_MAX; 0 if d < 0 or g < 0.
int64_t featureRank(int64_t d, int g);

/// "taylor", "chebyshev", "minimax".
const char *familyName(Family family);
/// Inverse of familyName.
std::optional<Family> parseFamily(const std::string &name);

} // namespace poly
} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_UTILS_POLYNOMIALAPPROX_H
