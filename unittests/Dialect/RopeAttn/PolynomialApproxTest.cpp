//===- PolynomialApproxTest.cpp - tests of the certified e^x fits --------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// The bounds of ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h against
// dense grids (long double reference e^x), and their tightness: each test
// below would fail if its bound were wrong, and the tightness tests fail if a
// bound became loose (docs/Polynomial.md §5).
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

using namespace mlir::ropeattn::poly;

namespace {

using LD = long double;

const std::vector<double> kBetas = {0.25, 0.5, 1, 2, 4, 8};
const std::vector<Family> kFamilies = {Family::Taylor, Family::Chebyshev,
                                       Family::Minimax};
constexpr int kGrid = 100000; // intervals: 100001 points, ends included
const double kUD = std::numeric_limits<double>::epsilon() / 2;
const double kUF = std::numeric_limits<float>::epsilon() / 2;
/// Relative error allowed for the long double reference expl and for forming
/// the relative error |p − e^x|/e^x in long double.
const LD kRefSlack = 16 * std::numeric_limits<LD>::epsilon();

std::string name(Family f, int g, double beta) {
  return std::string(familyName(f)) + " g=" + std::to_string(g) +
         " beta=" + std::to_string(beta);
}

/// Σ_k |c_k||x|^k.
LD absPoly(const ExpApprox &a, LD x) {
  LD s = 0;
  for (size_t k = a.coeffs.size(); k-- > 0;)
    s = s * std::fabs(x) + std::fabs(static_cast<LD>(a.coeffs[k]));
  return s;
}

/// The grid measurement of one approximation.
struct GridResult {
  /// max |p(x)e^{−x} − 1| with p by Horner in long double.
  LD maxRel = 0;
  /// Whether every point met |fl64(p(x)) − e^x| ≤ (bound + Horner
  /// allowance)·e^x, for each of the three bounds.
  bool deltaHolds = true, aprioriHolds = true, certifiedHolds = true;
  double worstX = 0;
  bool positiveOnGrid = true;
};

GridResult measure(const ExpApprox &a) {
  GridResult r;
  const LD hornerGamma = 2 * a.degree * kUD / (1 - 2 * a.degree * kUD);
  for (int i = 0; i <= kGrid; ++i) {
    double x = i == kGrid ? a.beta : -a.beta + 2.0 * a.beta * i / kGrid;
    LD ex = std::exp(static_cast<LD>(x));
    double p64 = evaluate(a, x);
    LD pLD = 0;
    for (size_t k = a.coeffs.size(); k-- > 0;)
      pLD = pLD * x + a.coeffs[k];
    LD rel = std::fabs(pLD / ex - 1);
    if (rel > r.maxRel) {
      r.maxRel = rel;
      r.worstX = x;
    }
    // Double evaluation: the proven bound plus the rounding of Horner's rule
    // in double, γ_{2g}·Σ|c_k||x|^k/e^x, and the reference's own error.
    LD rel64 = std::fabs(static_cast<LD>(p64) / ex - 1);
    LD allowance = hornerGamma * absPoly(a, x) / ex + kRefSlack;
    if (rel64 > a.delta + allowance)
      r.deltaHolds = false;
    if (rel64 > a.deltaApriori + allowance)
      r.aprioriHolds = false;
    if (rel64 > a.deltaCertified + allowance)
      r.certifiedHolds = false;
    if (!(p64 > 0))
      r.positiveOnGrid = false;
  }
  return r;
}

//===----------------------------------------------------------------------===//
// The bounds hold on a dense grid, and are tight
//===----------------------------------------------------------------------===//

TEST(PolynomialApprox, BoundsHoldOnDenseGridAndAreTight) {
  std::printf("family     g  beta   delta       measured/delta\n");
  for (Family f : kFamilies)
    for (double beta : kBetas)
      for (int g = 1; g <= 10; ++g) {
        SCOPED_TRACE(name(f, g, beta));
        ExpApprox a = approximate(f, g, beta);
        ASSERT_EQ(a.coeffs.size(), static_cast<size_t>(g + 1));
        ASSERT_TRUE(std::isfinite(a.delta));
        EXPECT_EQ(a.delta, std::min(a.deltaApriori, a.deltaCertified));
        GridResult r = measure(a);
        EXPECT_TRUE(r.deltaHolds);
        EXPECT_TRUE(r.aprioriHolds);
        EXPECT_TRUE(r.certifiedHolds);
        if (a.positive) {
          EXPECT_TRUE(r.positiveOnGrid);
        }
        double ratio = static_cast<double>(r.maxRel / a.delta);
        std::printf("%-9s %2d %5.2f  %.3e   %.4f\n", familyName(f), g, beta,
                    a.delta, ratio);
        // Tightness: away from the rounding floor, half the bound is violated
        // somewhere (for Taylor and Chebyshev the bound is the supremum of
        // the exact polynomial, attained at x = −β, plus rounding terms; for
        // Minimax it is the cell enclosure, within 1% of the maximum).
        if (a.delta > 1e-12) {
          EXPECT_GT(r.maxRel, 0.5L * a.delta);
          EXPECT_GT(ratio, 0.99);
        }
        // Taylor and Chebyshev: the supremum is attained at x = −β (§1, §2).
        if (f != Family::Minimax && a.delta > 1e-12) {
          EXPECT_EQ(r.worstX, -beta);
        }
        // The two independent bounds agree where both are far above the
        // rounding floor.
        if (f != Family::Minimax && a.delta > 1e-10) {
          EXPECT_NEAR(a.deltaCertified / a.deltaApriori, 1.0, 0.01);
        }
      }
}

TEST(PolynomialApprox, HalfTheTaylorBoundFails) {
  // The brief's "can the test fail" check, spelled out: with 0.5·delta the
  // grid check of the test above fails for Taylor (and is not absurdly loose
  // for the others).
  for (Family f : kFamilies)
    for (double beta : {0.5, 1.0, 2.0})
      for (int g : {2, 4, 6}) {
        SCOPED_TRACE(name(f, g, beta));
        ExpApprox a = approximate(f, g, beta);
        ExpApprox half = a;
        half.delta = a.delta / 2;
        EXPECT_FALSE(measure(half).deltaHolds);
      }
}

TEST(PolynomialApprox, FloatEvaluationWithinRoundingAllowance) {
  // p with float coefficients evaluated by Horner in float: n = 2g + 1
  // roundings per path (the coefficient's own rounding counts once).
  for (Family f : kFamilies)
    for (double beta : {0.5, 1.0, 4.0})
      for (int g : {2, 5, 8}) {
        SCOPED_TRACE(name(f, g, beta));
        ExpApprox a = approximate(f, g, beta);
        double allowance = roundingAllowance(a, 2 * g + 1, kUF);
        ASSERT_TRUE(std::isfinite(allowance));
        std::vector<float> cf(a.coeffs.begin(), a.coeffs.end());
        for (int i = 0; i <= 20000; ++i) {
          float x = static_cast<float>(-beta + 2.0 * beta * i / 20000);
          if (std::fabs(x) > beta)
            continue;
          float p = 0;
          for (size_t k = cf.size(); k-- > 0;)
            p = p * x + cf[k];
          LD ex = std::exp(static_cast<LD>(x));
          EXPECT_LE(std::fabs(p / ex - 1), a.delta + allowance + kRefSlack)
              << "x = " << x;
        }
      }
}

//===----------------------------------------------------------------------===//
// Positivity
//===----------------------------------------------------------------------===//

TEST(PolynomialApprox, Positivity) {
  for (double beta : kBetas)
    for (int g = 0; g <= kMaxDegree; ++g) {
      SCOPED_TRACE(name(Family::Taylor, g, beta));
      ExpApprox t = taylor(g, beta);
      if (g % 2 == 0) {
        // Even Taylor polynomials are ≥ 1/g! on R (§1.2).
        EXPECT_TRUE(t.positive);
      } else {
        // Odd: T_g increases, T_g(−β) = e^{−β}(1 − δ*): positive iff δ < 1.
        EXPECT_EQ(t.positive, t.delta < 1);
      }
      // Delta < 1 proves positivity for every family.
      for (Family f : kFamilies) {
        ExpApprox a = approximate(f, g, beta);
        if (a.delta < 1) {
          EXPECT_TRUE(a.positive);
        }
      }
    }
  // T_1(−1) = 0: relative error exactly 1, not positive.
  ExpApprox t1 = taylor(1, 1);
  EXPECT_FALSE(t1.positive);
  EXPECT_NEAR(t1.delta, 1.0, 1e-11);
  // Remez fits stay positive even where δ ≥ 1 (β = 8, low degree).
  for (int g = 0; g <= 4; ++g)
    EXPECT_TRUE(minimax(g, 8).positive) << g;
}

//===----------------------------------------------------------------------===//
// Closed forms
//===----------------------------------------------------------------------===//

TEST(PolynomialApprox, ClosedForms) {
  for (double beta : kBetas) {
    // Degree 0: Taylor/Chebyshev p = 1, δ = e^β − 1; Minimax p = 1/cosh β,
    // δ = tanh β.
    EXPECT_NEAR(taylor(0, beta).delta / std::expm1(beta), 1.0, 1e-10);
    EXPECT_NEAR(chebyshev(0, beta).delta / std::expm1(beta), 1.0, 1e-10);
    ExpApprox m0 = minimax(0, beta);
    EXPECT_NEAR(m0.coeffs[0] * std::cosh(beta), 1.0, 1e-9);
    EXPECT_GE(m0.delta, std::tanh(beta));
    EXPECT_LE(m0.delta, std::tanh(beta) * (1 + 0.01));
  }
  // Taylor: the supremum is the relative error at x = −β; for g = 1 it is
  // |e^β(1 − β) − 1| (coefficients 1, 1 are exact).
  for (double beta : {0.25, 0.5, 2.0}) {
    double exact = std::fabs(std::exp(beta) * (1 - beta) - 1);
    EXPECT_NEAR(taylor(1, beta).deltaApriori / exact, 1.0, 1e-11);
  }
  // β = 0: p(0) = c_0 = 1 exactly.
  for (Family f : kFamilies)
    for (int g : {0, 3, 8}) {
      ExpApprox a = approximate(f, g, 0);
      EXPECT_EQ(a.coeffs[0], 1.0);
      EXPECT_LE(a.delta, 1e-15);
      EXPECT_TRUE(a.positive);
    }
  // Monomial coefficients of Taylor.
  ExpApprox t = taylor(4, 1);
  EXPECT_EQ(t.coeffs[0], 1.0);
  EXPECT_EQ(t.coeffs[1], 1.0);
  EXPECT_EQ(t.coeffs[2], 0.5);
  EXPECT_EQ(t.coeffs[3], 1.0 / 6);
  EXPECT_EQ(t.coeffs[4], 1.0 / 24);
}

TEST(PolynomialApprox, FamiliesOrdered) {
  // At equal degree Minimax ≤ Chebyshev (or equal, when it falls back to the
  // interpolant), and Chebyshev beats Taylor by about 2^g for small β.
  for (double beta : kBetas)
    for (int g = 1; g <= 10; ++g) {
      SCOPED_TRACE(std::to_string(g) + " " + std::to_string(beta));
      EXPECT_LE(minimax(g, beta).delta, chebyshev(g, beta).delta);
    }
  for (int g = 2; g <= 8; ++g)
    EXPECT_LT(chebyshev(g, 0.5).delta * (1 << (g - 1)), taylor(g, 0.5).delta);
}

//===----------------------------------------------------------------------===//
// Degree selection
//===----------------------------------------------------------------------===//

TEST(PolynomialApprox, LeastDegree) {
  const std::vector<double> epss = {1e-1, 1e-3, 1e-6, 1e-9, 1e-12};
  for (Family f : kFamilies) {
    std::vector<int> previousByEps(epss.size(), -1);
    for (double beta : kBetas) {
      int previous = -1;
      for (size_t e = 0; e < epss.size(); ++e) {
        SCOPED_TRACE(name(f, 0, beta) + " eps=" + std::to_string(epss[e]));
        auto a = leastDegree(f, beta, epss[e], kMaxDegree);
        int g = a ? a->degree : kMaxDegree + 1;
        if (a) {
          EXPECT_LE(a->delta, epss[e]);
          EXPECT_TRUE(a->positive);
          if (f == Family::Taylor) {
            EXPECT_EQ(a->degree % 2, 0);
          }
          // Least: the previous candidate degree fails.
          int step = f == Family::Taylor ? 2 : 1;
          if (g >= step) {
            ExpApprox lower = approximate(f, g - step, beta);
            EXPECT_FALSE(lower.positive && lower.delta <= epss[e]);
          }
        }
        // Monotone in ε (smaller ε, no smaller degree) ...
        EXPECT_GE(g, previous);
        previous = g;
        // ... and in β (larger β, no smaller degree).
        EXPECT_GE(g, previousByEps[e]);
        previousByEps[e] = g;
      }
    }
  }
  // The cap is honoured.
  EXPECT_FALSE(leastDegree(Family::Taylor, 1, 1e-6, 8).has_value());
  EXPECT_TRUE(leastDegree(Family::Taylor, 1, 1e-6, 10).has_value());
  // MATH.md §3's data point: d = 16, β ≈ 1, g = 4 measured 2.9e-4 on random
  // data; the worst case over [−1, 1] is δ(4, 1) ≈ 1.9e-2.
  EXPECT_NEAR(taylor(4, 1).delta, 1.9356e-2, 1e-5);
}

TEST(PolynomialApprox, TaylorBetaLimit) {
  for (int g = 0; g <= kMaxDegree; g += 2)
    for (double eps : {1e-2, 1e-4, 1e-6, 1e-9}) {
      SCOPED_TRACE(std::to_string(g) + " " + std::to_string(eps));
      double b = taylorBetaLimit(g, eps);
      ASSERT_GE(b, 0);
      if (b < kMaxBeta) {
        ASSERT_GT(b, 0);
        EXPECT_LE(taylor(g, b).deltaApriori, eps);
        // Tight: a slightly larger β fails.
        EXPECT_GT(taylor(g, b * (1 + 1e-9)).deltaApriori, eps);
        // And the grid agrees (δ(β') ≤ ε holds with a margin of 1e-12·ε,
        // below the reference's noise for small ε).
        ExpApprox a = taylor(g, b);
        EXPECT_LE(measure(a).maxRel, eps + kRefSlack);
      }
    }
  EXPECT_TRUE(std::isnan(taylorBetaLimit(-1, 1e-3)));
  EXPECT_EQ(taylorBetaLimit(4, 0), 0);
}

//===----------------------------------------------------------------------===//
// Attention error
//===----------------------------------------------------------------------===//

/// |Õ − O| for weights w, perturbations eps and values v (one column).
LD outputError(const std::vector<LD> &w, const std::vector<LD> &eps,
               const std::vector<LD> &v) {
  LD num = 0, den = 0, numT = 0, denT = 0;
  for (size_t j = 0; j < w.size(); ++j) {
    num += w[j] * v[j];
    den += w[j];
    numT += w[j] * (1 + eps[j]) * v[j];
    denT += w[j] * (1 + eps[j]);
  }
  return std::fabs(numT / denT - num / den);
}

TEST(PolynomialApprox, OutputErrorBound) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> uni(0, 1);
  for (double delta : {1e-8, 1e-4, 1e-2, 0.1, 0.5, 0.9}) {
    SCOPED_TRACE(delta);
    double bound = outputErrorBound(delta);
    // Between δ and MATH.md's 2δ/(1 − δ), about half of it for small δ.
    EXPECT_GE(bound, delta);
    EXPECT_LE(bound, 2 * delta / (1 - delta));
    // Random problems never exceed it.
    LD worst = 0;
    for (int trial = 0; trial < 2000; ++trial) {
      int m = 1 + static_cast<int>(uni(rng) * 40);
      std::vector<LD> w(m), eps(m), v(m);
      LD vmax = 0;
      for (int j = 0; j < m; ++j) {
        w[j] = std::exp(8 * uni(rng) - 4);
        eps[j] = trial % 2 ? (uni(rng) < 0.5 ? -delta : delta)
                           : delta * (2 * uni(rng) - 1);
        v[j] = 2 * uni(rng) - 1;
        vmax = std::max(vmax, std::fabs(v[j]));
      }
      worst = std::max(worst, outputError(w, eps, v) / vmax);
    }
    EXPECT_LE(worst, bound);
    // The extremal two-key problem attains it: ε = +δ on a set of weight a,
    // −δ on the rest, v = ±1, with 2a − 1 = (√(1 − δ²) − 1)/δ (§4).
    LD b = (std::sqrt(static_cast<LD>(1) - delta * delta) - 1) / delta;
    LD a = (1 + b) / 2;
    LD attained = outputError({a, 1 - a}, {delta, -delta}, {1, -1});
    EXPECT_NEAR(static_cast<double>(attained / bound), 1.0, 1e-12);
    EXPECT_LE(attained, bound);
  }
  EXPECT_EQ(outputErrorBound(0), 0);
  EXPECT_TRUE(std::isinf(outputErrorBound(1)));
  EXPECT_TRUE(std::isnan(outputErrorBound(-1e-3)));
}

TEST(PolynomialApprox, LseErrorBound) {
  for (double delta : {1e-12, 1e-6, 1e-3, 0.1, 0.5, 0.75, 0.99}) {
    SCOPED_TRACE(delta);
    double bound = lseErrorBound(delta);
    // Attained by ε_j = −δ for all j: log(1 − δ).
    LD exact = -std::log1p(-static_cast<LD>(delta));
    EXPECT_GE(static_cast<LD>(bound), exact);
    EXPECT_LE(static_cast<LD>(bound), exact * (1 + 1e-14L));
    EXPECT_GE(bound, std::log1p(delta)); // the ε = +δ side
  }
  EXPECT_EQ(lseErrorBound(0), 0);
  EXPECT_TRUE(std::isinf(lseErrorBound(1)));
}

//===----------------------------------------------------------------------===//
// Ranks, ranges, names
//===----------------------------------------------------------------------===//

TEST(PolynomialApprox, FeatureRank) {
  EXPECT_EQ(featureRank(16, 4), 4845);
  EXPECT_EQ(featureRank(32, 2), 561);
  EXPECT_EQ(featureRank(64, 2), 2145);
  EXPECT_EQ(featureRank(64, 4), 814385);
  EXPECT_EQ(featureRank(0, 5), 1);
  EXPECT_EQ(featureRank(7, 0), 1);
  EXPECT_EQ(featureRank(128, 8), 2353351951665LL); // C(136, 8)
  EXPECT_EQ(featureRank(-1, 2), 0);
  EXPECT_EQ(featureRank(3, -1), 0);
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(featureRank(1000000, 16), kMax);
  EXPECT_EQ(featureRank(kMax, 1), kMax);
  EXPECT_EQ(featureRank(kMax - 1, 1), kMax);
  EXPECT_EQ(featureRank(kMax - 2, 1), kMax - 1);
  // C(66, 33) = 7219428434016265740 fits, C(68, 34) does not.
  EXPECT_EQ(featureRank(33, 33), 7219428434016265740LL);
  EXPECT_EQ(featureRank(34, 34), kMax);
}

TEST(PolynomialApprox, UnsupportedInputs) {
  for (auto [g, beta] : std::vector<std::pair<int, double>>{
           {-1, 1},
           {kMaxDegree + 1, 1},
           {2, -0.5},
           {2, kMaxBeta * 1.0001},
           {2, std::numeric_limits<double>::quiet_NaN()},
           {2, std::numeric_limits<double>::infinity()}}) {
    EXPECT_FALSE(isSupported(g, beta));
    for (Family f : kFamilies) {
      ExpApprox a = approximate(f, g, beta);
      EXPECT_TRUE(a.coeffs.empty());
      EXPECT_TRUE(std::isinf(a.delta));
      EXPECT_FALSE(a.positive);
    }
  }
  EXPECT_FALSE(leastDegree(Family::Minimax, 9, 0.5, 16).has_value());
  EXPECT_FALSE(leastDegree(Family::Minimax, 1, std::nan(""), 16).has_value());
  EXPECT_TRUE(isSupported(kMaxDegree, kMaxBeta));
  EXPECT_TRUE(isSupported(0, 0));
}

TEST(PolynomialApprox, Names) {
  for (Family f : kFamilies)
    EXPECT_EQ(parseFamily(familyName(f)), f);
  EXPECT_FALSE(parseFamily("remez").has_value());
}

TEST(PolynomialApprox, Gamma) {
  EXPECT_EQ(gamma(0, kUD), 0);
  EXPECT_GE(gamma(10, kUD), 10 * kUD);
  EXPECT_TRUE(std::isinf(gamma(1 << 30, 0.5)));
}

} // namespace

//===----------------------------------------------------------------------===//
// The derivative certificate (the polynomial backward's weights)
//===----------------------------------------------------------------------===//

TEST(PolynomialApprox, DerivativeDeltaHoldsOnDenseGridAndIsTight) {
  for (Family f : kFamilies)
    for (double beta : kBetas)
      for (int g = 1; g <= 10; ++g) {
        SCOPED_TRACE(name(f, g, beta));
        ExpApprox a = approximate(f, g, beta);
        double dd = derivativeDelta(a);
        ASSERT_TRUE(std::isfinite(dd));
        LD worst = 0;
        for (int i = 0; i <= kGrid; ++i) {
          double x = i == kGrid ? beta : -beta + 2.0 * beta * i / kGrid;
          // p'(x) in long double, from the double coefficients.
          LD d = 0;
          for (size_t k = a.coeffs.size(); k-- > 1;)
            d = d * x + static_cast<LD>(k) * a.coeffs[k];
          worst =
              std::max(worst, std::fabs(d / std::exp(static_cast<LD>(x)) - 1));
        }
        EXPECT_LE(worst, dd * (1 + 1e-9) + kRefSlack);
        // Tight: the certificate is a cell enclosure of the supremum.
        if (dd > 1e-12) {
          EXPECT_GT(worst, 0.98L * dd);
        }
      }
  // Taylor's p' is the Taylor polynomial of degree g − 1.
  ExpApprox t4 = taylor(4, 1.0), t3 = taylor(3, 1.0);
  EXPECT_NEAR(derivativeDelta(t4) / t3.delta, 1.0, 0.01);
  EXPECT_TRUE(std::isinf(derivativeDelta(ExpApprox{})));
}
