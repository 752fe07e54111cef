//===- GeneralFormTest.cpp - monomials of the general per-offset form -----===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// The monomial enumeration and multinomial coefficients of
// ropeattn-expand-general-attention (ropeattn/Dialect/RopeAttn/Utils/
// GeneralForm.h): |M| = C(|S| + g, g) distinct monomials with |m| ≤ g, and
// the multinomial theorem (Σ_t x_t)^k = Σ_{|m| = k} (k choose m) Π_t x_t^{m_t}
// checked numerically at random points.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Utils/GeneralForm.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>
#include <set>
#include <vector>

using namespace mlir::ropeattn::general;

namespace {

double binomial(int n, int k) {
  double r = 1;
  for (int i = 1; i <= k; ++i)
    r = r * (n - k + i) / i;
  return r;
}

TEST(GeneralForm, MonomialCountAndDistinctness) {
  for (int s = 0; s <= 6; ++s)
    for (int g = 0; g <= 5; ++g) {
      Monomials ms = monomials(s, g);
      EXPECT_EQ(double(ms.size()), binomial(s + g, g)) << s << " " << g;
      std::set<std::vector<int64_t>> seen;
      int64_t lastDeg = 0;
      for (const auto &m : ms) {
        ASSERT_EQ(int64_t(m.size()), s);
        int64_t deg = 0;
        for (int64_t e : m) {
          EXPECT_GE(e, 0);
          deg += e;
        }
        EXPECT_LE(deg, g);
        EXPECT_GE(deg, lastDeg) << "ordered by degree";
        lastDeg = deg;
        EXPECT_TRUE(
            seen.insert(std::vector<int64_t>(m.begin(), m.end())).second);
      }
    }
}

TEST(GeneralForm, MultinomialTheorem) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> dist(-1.5, 1.5);
  for (int s = 1; s <= 5; ++s)
    for (int g = 0; g <= 4; ++g) {
      std::vector<double> x(s);
      for (double &v : x)
        v = dist(rng);
      double sum = 0;
      for (double v : x)
        sum += v;
      // Σ over the monomials of degree exactly k, for each k ≤ g.
      std::vector<double> byDegree(g + 1, 0.0);
      for (const auto &m : monomials(s, g)) {
        double p = multinomial(m);
        int64_t deg = 0;
        for (int t = 0; t < s; ++t) {
          p *= std::pow(x[t], double(m[t]));
          deg += m[t];
        }
        byDegree[deg] += p;
      }
      for (int k = 0; k <= g; ++k)
        EXPECT_NEAR(byDegree[k], std::pow(sum, k),
                    1e-12 * std::pow(1.5 * s, k) + 1e-15)
            << "s=" << s << " k=" << k;
    }
}

TEST(GeneralForm, MultinomialValues) {
  EXPECT_EQ(multinomial({}), 1.0);
  EXPECT_EQ(multinomial({2, 0}), 1.0);
  EXPECT_EQ(multinomial({1, 1}), 2.0);
  EXPECT_EQ(multinomial({2, 1, 1}), 12.0); // 4!/(2!·1!·1!)
  EXPECT_EQ(multinomial({3, 2}), 10.0);    // C(5, 2)
}

} // namespace
