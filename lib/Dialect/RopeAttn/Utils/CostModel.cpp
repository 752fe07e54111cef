//===- CostModel.cpp - method selection for ropeattn attention ------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Utils/CostModel.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

using namespace mlir::ropeattn;
using namespace mlir::ropeattn::cost;

std::optional<PolyCandidate>
cost::gridPolyCandidate(poly::Family family, int64_t g, double epsilon) {
  auto make = [&](const poly::ExpApprox &a) -> std::optional<PolyCandidate> {
    if (!a.positive || !(a.delta <= epsilon) || a.coeffs.empty())
      return std::nullopt;
    return PolyCandidate{g, a.beta, a.delta, a.coeffs};
  };
  if (family == poly::Family::Taylor) {
    if (g % 2 != 0)
      return std::nullopt; // odd Taylor polynomials are not positive
    double b = poly::taylorBetaLimit(g, epsilon);
    if (!(b > 0))
      return std::nullopt;
    return make(poly::taylor(g, std::min(b, poly::kMaxBeta)));
  }
  for (int k = 6; k >= -8; --k)
    if (auto c = make(poly::approximate(family, g, std::pow(2.0, k / 2.0))))
      return c;
  return std::nullopt;
}

std::optional<PolyCandidate> cost::polyCandidate(poly::Family family, int64_t g,
                                                 double epsilon) {
  using Key = std::tuple<int, int64_t, double>;
  static std::mutex mutex;
  static std::map<Key, std::optional<PolyCandidate>> cache;
  Key key{static_cast<int>(family), g, epsilon};
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end())
      return it->second;
  }
  std::optional<PolyCandidate> best = gridPolyCandidate(family, g, epsilon);
  if (best && family != poly::Family::Taylor) {
    // The grid point above best->betaMax did not qualify (or best is at the
    // top of the supported range).
    double lo = best->betaMax, hi = lo * std::sqrt(2.0);
    if (hi > poly::kMaxBeta)
      hi = poly::kMaxBeta;
    while (hi - lo > kRangeTolerance * lo) {
      double mid = 0.5 * (lo + hi);
      poly::ExpApprox a = poly::approximate(family, g, mid);
      if (a.positive && a.delta <= epsilon && !a.coeffs.empty()) {
        best = PolyCandidate{g, a.beta, a.delta, a.coeffs};
        lo = mid;
      } else {
        hi = mid;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mutex);
  cache.emplace(key, best);
  return best;
}

double cost::visiblePairs(const AttentionShape &s) {
  double n = s.n, m = s.m;
  if (!s.causal)
    return n * m;
  // Row i sees min(M, max(0, i + M − N + 1)) keys.
  double shift = m - n, total = 0;
  // Rows with 0 < i + shift + 1 < M form an arithmetic series; the rest are
  // 0 or M.
  double firstRow = std::max(0.0, -shift);       // first row seeing a key
  double fullRow = std::max(0.0, m - 1 - shift); // first row seeing all keys
  double lo = std::min(firstRow, n), hi = std::min(fullRow, n);
  if (hi > lo) // Σ_{i=lo}^{hi−1} (i + shift + 1)
    total += (hi - lo) * ((lo + shift + 1) + (hi - 1 + shift + 1)) / 2;
  total += (n - std::max(hi, lo)) * m;
  return total;
}

double cost::exactFlops(const AttentionShape &s, bool grad) {
  double pairs = visiblePairs(s) * s.bhq;
  // Forward: S = QKᵀ (2D), exp, O += PV (2Dv). Backward (flash): recompute
  // S (2D) and exp, dP = dO·Vᵀ (2Dv), dV += Pᵀ·dO (2Dv), dQ += dS·K (2D),
  // dK += dSᵀ·Q (2D).
  double perPair = grad ? 2.0 * (3 * s.d + 2 * s.dv) + kExpFlops
                        : 2.0 * (s.d + s.dv) + kExpFlops;
  return pairs * perPair;
}

double cost::polyFlops(const AttentionShape &s, int64_t g, int64_t chunk,
                       bool grad) {
  double r = poly::featureRank(s.d, g);
  double r1 = g > 0 ? poly::featureRank(s.d, g - 1) : 0;
  double w = s.dv + 1;
  double qRows = double(s.bhq) * s.n, kRows = double(s.bhk) * s.m;
  double feat = (qRows + kRows) * r * g; // products of g factors
  double states = 2.0 * kRows * r * w;   // Φ_Kᵀ·[V | 1]
  double queries = 2.0 * qRows * r * w;  // Φ_Q·KV
  // Causal: at most ~C partly visible keys per query row, exactly.
  double partial = s.causal ? qRows * std::min<double>(chunk, s.m) *
                                  (2.0 * (s.d + s.dv) + kExpFlops)
                            : 0;
  if (!grad)
    return feat + states + queries + partial;
  // Backward: features of both sides twice, KV states, per query row Ẑ
  // (2r), W (2rw), the Jacobian (4·R'·D), the query states (2rw); per key
  // row dv (2r·Dv), W (2rw), the Jacobian; the partial blocks twice plus
  // the gradient products.
  double jac = 4.0 * (qRows + kRows) * r1 * s.d;
  return 2 * feat + states + qRows * (2 * r + 4 * r * w) +
         kRows * (2 * r * s.dv + 2 * r * w) + jac + 2.5 * partial;
}

double cost::fftLength(const AttentionShape &s) {
  double len = std::max<double>(1.0, double(s.n + s.m - 1));
  return std::exp2(std::ceil(std::log2(len)));
}

double cost::fftFlops(double length) {
  return length > 1 ? 5.0 * length * std::log2(length) : 0.0;
}

double cost::toeplitzProductFlops(double length, double columns) {
  double pairs = std::ceil(columns / 2.0);
  return pairs * (2.0 * fftFlops(length) + 6.0 * length) + fftFlops(length);
}

double cost::toeplitzBiasFlops(const AttentionShape &s, int64_t g) {
  double r = poly::featureRank(s.d, g);
  double w = s.dv + 1;
  double qRows = double(s.bhq) * s.n, kRows = double(s.bhk) * s.m;
  double feat = (qRows + kRows) * r * g;  // features, g factors each
  double x = double(s.bhq) * s.m * r * w; // X = φ_K ∘ [V | 1]
  double products = double(s.bhq) * toeplitzProductFlops(fftLength(s), r * w);
  double contract = 2.0 * qRows * r * w; // Σ_α φ_Q · Y
  return feat + x + products + contract;
}

double cost::generalExactFlops(const AttentionShape &s, int64_t support) {
  // Per visible pair: the logit Σ_t q̂·w·k̂ (3|S|), exp, P·V (2Dv).
  return visiblePairs(s) * s.bhq * (3.0 * support + kExpFlops + 2.0 * s.dv);
}

double cost::generalToeplitzFlops(const AttentionShape &s, int64_t support,
                                  int64_t g) {
  double terms = poly::featureRank(support, g); // |M| = C(|S| + g, g)
  double w = s.dv + 1;
  double len = double(s.n + s.m - 1);
  // u_m, v_m and the symbols t_m: g + |S| products per entry and monomial.
  double mono =
      (double(s.bhq) * s.n + double(s.bhk) * s.m + double(s.bhq) * len) *
      terms * double(g + support);
  double x = double(s.bhq) * s.m * terms * w;
  // One symbol per (head, monomial), W columns each.
  double products =
      double(s.bhq) * terms * toeplitzProductFlops(fftLength(s), w);
  double contract = 3.0 * double(s.bhq) * s.n * terms * w; // coef·u_m·Y_m
  return mono + x + products + contract;
}

double cost::generalExactGradFlops(const AttentionShape &s, int64_t support) {
  // Per visible pair: the logit (3|S|), exp and normalization (11), dP and
  // dv (2Dv each), Δ and dℓ (4), dq̂, dk̂ and dW (4|S| each).
  return visiblePairs(s) * s.bhq *
         (15.0 * support + kExpFlops + 5.0 + 4.0 * s.dv);
}

double cost::generalToeplitzGradFlops(const AttentionShape &s, int64_t support,
                                      int64_t g, int64_t tables) {
  double terms = poly::featureRank(support, g); // |M|
  double w = s.dv + 1;
  double len = double(s.n + s.m - 1), fft = fftLength(s);
  double heads = double(s.bhq), qRows = heads * s.n,
         kRows = double(s.bhk) * s.m;
  // The forward's products (u_m, v_m, t_m, X, Y, Nm).
  double forward = generalToeplitzFlops(s, support, g);
  // D and Gs; du (3 per entry of Y), S (2 per entry).
  double rows = 2.0 * qRows * s.dv + qRows * w + 5.0 * qRows * terms * w;
  // Z = Toeplitz(t_m)ᵀ·S_m: as the forward's products.
  double products = heads * terms * toeplitzProductFlops(fft, w);
  // dv_m and dv (2 per entry of Z each).
  double keys = 2.0 * heads * s.m * terms * (w + s.dv);
  // d-weights correlations: one complex FFT per real column of S_m and X_m,
  // the spectrum products (8 per point and column), one inverse FFT per
  // (head, monomial).
  double corr =
      heads * terms * (2.0 * w * fftFlops(fft) + 8.0 * w * fft + fftFlops(fft));
  // The monomial VJPs: per entry, |S| powers of ≤ g factors and 2 more.
  double vjp = (qRows + kRows + double(tables) * len) * support * terms *
               (double(support) * g + 2.0);
  return forward + rows + products + keys + corr + vjp;
}
