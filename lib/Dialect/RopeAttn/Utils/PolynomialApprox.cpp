//===- PolynomialApprox.cpp - certified polynomial approximations of e^x -===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// The derivations are in docs/Polynomial.md; the section numbers below refer
// to it. All bound computations use IEEE long double (or double) arithmetic in
// round-to-nearest with the standard model fl(a op b) = (a op b)(1 + ε),
// |ε| ≤ u, and never call libm: e^x and cos are computed by series whose
// truncation and rounding are bounded here.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

using namespace mlir::ropeattn::poly;

namespace {

using LD = long double;

/// Unit roundoff of long double (2^-64 for x87 extended, 2^-53 where long
/// double is double) and of double.
const LD kU = std::numeric_limits<LD>::epsilon() / 2;
const double kUD = std::numeric_limits<double>::epsilon() / 2;
/// π correctly rounded to long double by the compiler.
const LD kPi = 3.14159265358979323846264338327950288419716939937510L;
/// Blanket relative margin applied to every final bound, on top of the
/// explicit rounding accounting (which is below 1e-15 relative in the
/// supported range).
const LD kMargin = 1e-12L;
/// Cells of the a posteriori certificate (§3).
constexpr int kCells = 4096;

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Higham's γ_n for long double.
LD gammaL(int n) { return n * kU / (1 - n * kU); }

/// The least double ≥ v.
double roundUp(LD v) {
  double d = static_cast<double>(v);
  if (static_cast<LD>(d) < v)
    d = std::nextafter(d, kInf);
  return d;
}

/// A value v with |v − exact| ≤ rel·exact.
struct Enclosure {
  LD value;
  LD rel;
  LD upper() const { return value * (1 + 2 * rel) * (1 + 2 * kU); }
};

/// e^a for 0 ≤ a ≤ 64 by the positive series Σ a^m/m!. The m-th computed term
/// fl(fl(t·a)/m) carries relative error ≤ γ_{2m}; summing m+1 positive terms
/// adds γ_m. The loop stops when m+1 > 2a (so the ratio of consecutive
/// omitted terms is ≤ 1/2 and the tail is ≤ the last term) and the last term
/// is below u·sum/1000.
Enclosure expNonNeg(LD a) {
  assert(a >= 0 && a <= 64 && "expNonNeg: argument out of range");
  LD term = 1, sum = 1;
  int m = 0;
  do {
    ++m;
    term = term * a / m;
    sum += term;
  } while (m + 1 <= 2 * a || term > sum * kU / 1000);
  LD tail = term * (1 + gammaL(2 * m));
  return {sum, gammaL(3 * m + 3) + tail / sum};
}

/// e^x for |x| ≤ 64.
Enclosure expEnclosure(LD x) {
  if (x >= 0)
    return expNonNeg(x);
  Enclosure e = expNonNeg(-x);
  // 1/(v(1+ρ)) = (1/v)(1 − ρ/(1+ρ)); the division rounds once more.
  return {1 / e.value, e.rel / (1 - e.rel) * (1 + kU) + kU};
}

/// cos θ for 0 ≤ θ ≤ π/2 by its alternating series; absolute error ≤ 32u
/// (the omitted tail is below the last term, itself < u/1000; rounding is
/// γ_{3K}·Σ|terms| ≤ γ_{3K}·cosh(π/2) with K ≤ 20 terms).
LD cosSeries(LD t) {
  LD term = 1, sum = 1, t2 = t * t;
  for (int k = 1; k < 40; ++k) {
    term = -term * t2 / ((2 * k - 1) * (2 * k));
    sum += term;
    if (std::fabs(term) < kU / 1000)
      break;
  }
  return sum;
}

/// cos(π·num/den) for 0 < num < den (both small integers); absolute error
/// ≤ 40u: the argument π·num/den rounds three times (relative 3u, so at most
/// 3u·π/2 absolute after reduction to [0, π/2]) and the series adds 32u.
LD cosPiFraction(int num, int den) {
  bool negate = 2 * num > den;
  if (negate)
    num = den - num;
  LD c = cosSeries(kPi * num / den);
  return negate ? -c : c;
}

/// Absolute error bound of a node β·cosPiFraction(...): 40u·β from the cosine
/// plus the final product's rounding, doubled for margin.
LD nodeError(LD beta) { return 96 * kU * beta; }

/// The divided difference F(y) = f[y_0, …, y_n, 0] of exp at y_i ≥ 0, as the
/// positive series Σ_k h_k(y)/(n+1+k)! (h_k the complete homogeneous
/// symmetric polynomial), with its rounding and truncation (§1.3). Returns an
/// upper bound.
LD dividedDifferenceUpper(const std::vector<LD> &y) {
  const int n = static_cast<int>(y.size()) - 1;
  LD ymax = 0;
  for (LD v : y)
    ymax = std::max(ymax, v);
  // 1/n!, 1/(n+1)!.
  LD invNFact = 1;
  for (int i = 2; i <= n; ++i)
    invNFact /= i;
  // Choose K: tail ≤ Y^{K+1}/((K+1)!·n!)/(1 − Y/(K+2)) tiny against
  // F ≥ 1/(n+1)!.
  int kMax = 0;
  LD tailTerm = ymax * invNFact; // Y^{K+1}/((K+1)!·n!) for K = kMax
  while (kMax + 2 <= 2 * ymax ||
         tailTerm / (1 - ymax / (kMax + 2)) > 1e-30L * invNFact / (n + 1)) {
    ++kMax;
    tailTerm = tailTerm * ymax / (kMax + 1);
  }
  LD tail = tailTerm / (1 - ymax / (kMax + 2)) * 2;
  // h_0..h_K by the recurrence h_k(S ∪ {y}) = h_k(S) + y·h_{k−1}(S ∪ {y}).
  std::vector<LD> h(kMax + 1, 0);
  h[0] = 1;
  for (LD v : y)
    for (int k = 1; k <= kMax; ++k)
      h[k] += v * h[k - 1];
  LD sum = 0;
  LD inv = invNFact / (n + 1); // 1/(n+1+k)! for k = 0
  for (int k = 0; k <= kMax; ++k) {
    sum += h[k] * inv;
    inv /= (n + 2 + k);
  }
  // Every operation is on positive values: relative error ≤ γ of the longest
  // chain of roundings, 2(n+1+K) in h_k, n+1+K in the factorial, K+1 in the
  // sum.
  return sum * (1 + gammaL(4 * (n + kMax + 2))) + tail;
}

/// Σ_k |c_k| b^k for b ≥ 0, rounded up.
LD absSumUpper(const std::vector<double> &c, LD b) {
  LD s = 0;
  for (size_t k = c.size(); k-- > 0;)
    s = s * b + std::fabs(static_cast<LD>(c[k]));
  return s * (1 + gammaL(2 * static_cast<int>(c.size()) + 2));
}

/// The a posteriori certificate of §3: an upper bound on
/// sup_{|x|≤β} |p(x)e^{−x} − 1| and whether p > 0 is proven on [−β, β].
struct Certificate {
  LD delta;
  bool positive;
};

Certificate certify(const std::vector<LD> &c, double beta) {
  const int g = static_cast<int>(c.size()) - 1;
  const int cells = beta > 0 ? kCells : 1;
  // Cell i is [x0 − H, x0 + H]; H is enlarged so that the computed centres'
  // rounding (≤ 4u·β) cannot open gaps: the cells cover [−β, β].
  const LD width = static_cast<LD>(beta) / cells;
  const LD hh = width * (1 + 1e-9L);
  std::vector<LD> hPow(g + 1);
  hPow[0] = 1;
  for (int k = 1; k <= g; ++k)
    hPow[k] = hPow[k - 1] * hh;
  // e^H − T_g(H) ≤ H^{g+1}/(g+1)!/(1 − H/(g+2)) (H < 1 here).
  LD tailT = hh;
  for (int k = 1; k <= g; ++k)
    tailT = tailT * hh / (k + 1);
  tailT = tailT / (1 - hh / (g + 2)) * 2;
  const LD eH = expNonNeg(hh).upper();
  std::vector<LD> pk(g + 1), ak(g + 1);
  const LD gp = gammaL(4 * g + 8);

  LD worst = 0;
  bool positive = true;
  // e^{x0} from the series every kAnchor cells, by e^{x0} = e^{x0'}·e^{2w}
  // (x0' the previous centre) in between: the centres' rounding makes
  // |x0 − x0' − 2w| ≤ 8u·β, one more product rounds once.
  constexpr int kAnchor = 8;
  const Enclosure stepExp = expNonNeg(2 * width);
  Enclosure ex0 = {1, 0};
  for (int i = 0; i < cells; ++i) {
    const LD x0 = -static_cast<LD>(beta) + (2 * i + 1) * width;
    // P_k = p^{(k)}(x0)/k! = Σ_{j≥k} c_j C(j,k) x0^{j−k} by repeated
    // synthetic division (Taylor shift): after pass k, pk[k] = P_k. Every
    // term reaches P̃_k through at most 2g roundings, so
    // |P̃_k − P_k| ≤ γ_{4g+8}·A_k with A_k = Σ_j |c_j| C(j,k) |x0|^{j−k},
    // computed by the same recurrence on |c_j|, |x0| (and inflated by its
    // own rounding).
    const LD ax0 = std::fabs(x0);
    for (int j = 0; j <= g; ++j) {
      pk[j] = c[j];
      ak[j] = std::fabs(c[j]);
    }
    for (int k = 0; k < g; ++k)
      for (int j = g - 1; j >= k; --j) {
        pk[j] += x0 * pk[j + 1];
        ak[j] += ax0 * ak[j + 1];
      }
    for (int k = 0; k <= g; ++k)
      ak[k] *= 1 + gp;
    if (i % kAnchor == 0) {
      ex0 = expEnclosure(x0);
    } else {
      ex0.value *= stepExp.value;
      ex0.rel = (ex0.rel + stepExp.rel + 9 * kU * beta + kU) * (1 + 1e-6L);
    }
    const LD eRel = ex0.rel * (1 + 1e-6L) + 2 * kU;
    // |E(x0 + h)| ≤ Σ_{k≤g} |d_k||h|^k + e^{x0}(e^{|h|} − T_g(|h|)) with
    // d_k = P_k − e^{x0}/k!.
    LD sum = 0, invFact = 1;
    for (int k = 0; k <= g; ++k) {
      if (k > 0)
        invFact /= k;
      LD ek = ex0.value * invFact;
      LD dk = pk[k] - ek;
      LD err = gp * ak[k] + eRel * ek + kU * std::fabs(dk);
      sum += (std::fabs(dk) + err) * hPow[k];
    }
    // e^{−x0} = 1/e^{x0}: relative error ρ/(1 − ρ) plus the division.
    const LD einvUpper =
        (1 / ex0.value) * (1 + 2 * (ex0.rel / (1 - ex0.rel) + kU));
    LD cellBound = eH * (einvUpper * sum + tailT);
    cellBound *= 1 + gammaL(4 * g + 16);
    worst = std::max(worst, cellBound);
    if (cellBound >= 1) {
      // Direct positivity: p(x0 + h) ≥ P_0 − Σ_{k≥1} |P_k| H^k.
      LD low = pk[0] - gp * ak[0], rest = 0;
      for (int k = 1; k <= g; ++k)
        rest += (std::fabs(pk[k]) + gp * ak[k]) * hPow[k];
      rest *= 1 + gammaL(2 * g + 4);
      if (!(low * (1 - 2 * kU) > rest))
        positive = false;
    }
  }
  return {worst * (1 + kMargin), positive};
}

Certificate certify(const std::vector<double> &c, double beta) {
  return certify(std::vector<LD>(c.begin(), c.end()), beta);
}

ExpApprox unsupported(Family family, int degree, double beta) {
  ExpApprox a;
  a.family = family;
  a.degree = degree;
  a.beta = beta;
  a.delta = a.deltaApriori = a.deltaCertified = a.absSum = kInf;
  a.positive = false;
  return a;
}

/// Fills delta, deltaCertified, positive and absSum from coeffs and a given
/// a priori bound (§3).
void finish(ExpApprox &a, LD apriori, bool aprioriPositive) {
  Certificate cert = certify(a.coeffs, a.beta);
  a.deltaApriori = roundUp(apriori);
  a.deltaCertified = roundUp(cert.delta);
  a.delta = std::min(a.deltaApriori, a.deltaCertified);
  a.positive = aprioriPositive || cert.positive || a.delta < 1;
  a.absSum = roundUp(absSumUpper(a.coeffs, a.beta));
}

/// c_k = 1/k! rounded to double: k! is exact in double for k ≤ 18 and the
/// division rounds once, so |ĉ_k − 1/k!| ≤ u·ĉ_k/(1 − u); exact for k ≤ 2.
std::vector<double> taylorCoeffs(int g) {
  std::vector<double> c(g + 1);
  double fact = 1;
  for (int k = 0; k <= g; ++k) {
    if (k > 0)
      fact *= k;
    c[k] = 1.0 / fact;
  }
  return c;
}

/// Upper bound on sup_{|x|≤β} e^{−x} Σ_k |ĉ_k − c_k||x|^k for the Taylor
/// coefficients (§1.4) and on the absolute Σ_k |ĉ_k − c_k| β^k.
std::pair<LD, LD> taylorRoundingUpper(const std::vector<double> &c, LD beta) {
  LD s = 0, bk = 1;
  for (size_t k = 0; k < c.size(); ++k) {
    if (k >= 3)
      s += static_cast<LD>(c[k]) * bk;
    bk *= beta;
  }
  LD abs = s * (kUD / (1 - kUD)) * (1 + gammaL(2 * int(c.size()) + 4));
  return {abs * expNonNeg(beta).upper(), abs};
}

/// The a priori Taylor bound (§1): β^{g+1}·f[β,…,β,0] plus coefficient
/// rounding; its second member says whether positivity is proven by §1.2
/// (even g: T_g ≥ 1/g!, and ≥ 2^g/g! for g ≥ 6, everywhere, more than the
/// coefficient rounding).
std::pair<LD, bool> taylorApriori(int g, double beta,
                                  const std::vector<double> &c) {
  const LD b = beta;
  std::vector<LD> y(g + 1, b);
  LD w = 1;
  for (int k = 0; k <= g; ++k)
    w *= b;
  w *= 1 + gammaL(g + 1);
  LD interp = w * dividedDifferenceUpper(y);
  auto [rel, abs] = taylorRoundingUpper(c, b);
  LD total = (interp + rel) * (1 + kMargin);
  bool positive = false;
  if (g % 2 == 0) {
    // min_R T_g = x*^g/g! with x* ≤ −1, and x* ≤ −2 for g ≥ 6 (§1.2).
    LD minT = 1;
    for (int k = 2; k <= g; ++k)
      minT /= k;
    if (g >= 6)
      minT = std::ldexp(minT, g);
    positive = minT * (1 - gammaL(2 * g + 2)) > abs;
  }
  return {total, positive};
}

/// Monomial coefficients (in t) of T_0..T_n.
std::vector<std::vector<LD>> chebyshevMonomials(int n) {
  std::vector<std::vector<LD>> t(n + 1, std::vector<LD>(n + 1, 0));
  t[0][0] = 1;
  if (n >= 1)
    t[1][1] = 1;
  for (int j = 2; j <= n; ++j)
    for (int k = 0; k <= j; ++k)
      t[j][k] = (k > 0 ? 2 * t[j - 1][k - 1] : 0) - t[j - 2][k];
  return t;
}

/// Σ_j a_j T_j(x/β) (a_0 with full weight) as rounded monomial coefficients
/// in x.
std::vector<double> toMonomial(const std::vector<LD> &a, LD beta) {
  const int n = static_cast<int>(a.size()) - 1;
  auto t = chebyshevMonomials(n);
  std::vector<double> c(n + 1);
  LD bk = 1;
  for (int k = 0; k <= n; ++k) {
    LD m = 0;
    for (int j = k; j <= n; ++j)
      m += a[j] * t[j][k];
    c[k] = static_cast<double>(m / bk);
    bk *= beta;
  }
  return c;
}

/// Σ_k a_k T_k(t) by Clenshaw's recurrence.
LD clenshaw(const std::vector<LD> &a, LD t) {
  LD b1 = 0, b2 = 0;
  for (size_t k = a.size(); k-- > 1;) {
    LD b0 = 2 * t * b1 - b2 + a[k];
    b2 = b1;
    b1 = b0;
  }
  return t * b1 - b2 + a[0];
}

/// Chebyshev coefficients (a_0 with full weight) of the interpolant of
/// e^{βt} at the nodes cos(π(2i+1)/(2n+2)).
std::vector<LD> interpolationCoeffs(int n, LD beta) {
  std::vector<LD> nodes(n + 1), f(n + 1);
  for (int i = 0; i <= n; ++i) {
    nodes[i] = cosPiFraction(2 * i + 1, 2 * n + 2);
    f[i] = expEnclosure(beta * nodes[i]).value;
  }
  std::vector<LD> a(n + 1, 0);
  for (int i = 0; i <= n; ++i) {
    LD tPrev = 1, tCur = nodes[i];
    a[0] += f[i];
    for (int j = 1; j <= n; ++j) {
      a[j] += f[i] * tCur;
      LD tNext = 2 * nodes[i] * tCur - tPrev;
      tPrev = tCur;
      tCur = tNext;
    }
  }
  for (int j = 0; j <= n; ++j)
    a[j] *= (j == 0 ? 1 : 2) / static_cast<LD>(n + 1);
  return a;
}

/// The a priori Chebyshev bound (§2): (β^{n+1}/2^n)·e^η·F(ŷ) for the exact
/// interpolant, plus (2n+1)·max_i |p̂(x_i) − e^{x_i}|·e^β for the rounded
/// coefficients.
LD chebyshevApriori(int n, double beta, const std::vector<double> &c) {
  const LD b = beta;
  const LD eta = nodeError(b);
  std::vector<LD> y(n + 1), x(n + 1);
  for (int i = 0; i <= n; ++i) {
    x[i] = b * cosPiFraction(2 * i + 1, 2 * n + 2);
    y[i] = b + x[i];
    if (y[i] < 0)
      y[i] = 0;
  }
  LD w = 1;
  for (int k = 0; k <= n; ++k)
    w *= b;
  w = std::ldexp(w, -n) * (1 + gammaL(n + 1));
  LD interp = w * dividedDifferenceUpper(y) * expNonNeg(2 * eta).upper();
  // Residual at the exact nodes: |q(x_i)| ≤ |q(x̂_i)| + η·sup|q'| with
  // sup|q'| ≤ Σ k|c_k|(β+η)^{k−1} + e^{β+η}.
  LD dSum = 0, bk = 1;
  for (int k = 1; k <= n; ++k) {
    dSum += k * std::fabs(static_cast<LD>(c[k])) * bk;
    bk *= b + eta;
  }
  const LD slope = dSum * (1 + gammaL(2 * n + 4)) + expNonNeg(b + eta).upper();
  LD worst = 0;
  for (int i = 0; i <= n; ++i) {
    LD p = 0, s = 0, ax = std::fabs(x[i]);
    for (int k = n; k >= 0; --k) {
      p = p * x[i] + c[k];
      s = s * ax + std::fabs(static_cast<LD>(c[k]));
    }
    Enclosure e = expEnclosure(x[i]);
    LD q = std::fabs(p - e.value) +
           gammaL(2 * n + 2) * s * (1 + gammaL(2 * n + 2)) +
           e.upper() * e.rel * 2 + kU * std::fabs(p - e.value);
    worst = std::max(worst, q + eta * slope);
  }
  LD conversion = (2 * n + 1) * worst * expNonNeg(b).upper();
  return (interp + conversion) * (1 + kMargin);
}

/// Solves the dense system m·z = r by Gaussian elimination with partial
/// pivoting; false if singular.
bool solve(std::vector<std::vector<LD>> m, std::vector<LD> &r) {
  const int n = static_cast<int>(r.size());
  for (int col = 0; col < n; ++col) {
    int piv = col;
    for (int row = col + 1; row < n; ++row)
      if (std::fabs(m[row][col]) > std::fabs(m[piv][col]))
        piv = row;
    if (m[piv][col] == 0)
      return false;
    std::swap(m[piv], m[col]);
    std::swap(r[piv], r[col]);
    for (int row = col + 1; row < n; ++row) {
      LD f = m[row][col] / m[col][col];
      for (int k = col; k < n; ++k)
        m[row][k] -= f * m[col][k];
      r[row] -= f * r[col];
    }
  }
  for (int row = n - 1; row >= 0; --row) {
    LD s = r[row];
    for (int k = row + 1; k < n; ++k)
      s -= m[row][k] * r[k];
    r[row] = s / m[row][row];
  }
  return true;
}

/// Relative error p(βt)e^{−βt} − 1 of the Chebyshev-basis polynomial a (fast,
/// uncertified: it only steers the exchange).
LD relErr(const std::vector<LD> &a, LD beta, LD t) {
  return clenshaw(a, t) * std::exp(-beta * t) - 1;
}

/// Remez exchange for min_a max_{t∈[−1,1]} |Σ a_k T_k(t)·e^{−βt} − 1|.
/// Returns the best iterate found (by the maximum over the search grid), or
/// the interpolant if no iterate beats it.
std::vector<LD> remez(int n, LD beta) {
  std::vector<LD> best = interpolationCoeffs(n, beta);
  const int gridSize = 64 * (n + 2) + 1;
  std::vector<LD> grid(gridSize);
  for (int m = 0; m < gridSize; ++m)
    grid[m] = -cosPiFraction(m, gridSize - 1);
  grid.front() = -1;
  grid.back() = 1;
  auto gridMax = [&](const std::vector<LD> &a) {
    LD w = 0;
    for (LD t : grid)
      w = std::max(w, std::fabs(relErr(a, beta, t)));
    return w;
  };
  LD bestMax = gridMax(best);

  std::vector<LD> ref(n + 2);
  for (int i = 0; i <= n + 1; ++i)
    ref[i] = i == 0 ? -1 : (i == n + 1 ? 1 : -cosPiFraction(i, n + 1));
  for (int iter = 0; iter < 60; ++iter) {
    // Σ_k a_k T_k(t_i)e^{−βt_i} − (−1)^i E = 1.
    std::vector<std::vector<LD>> m(n + 2, std::vector<LD>(n + 2));
    std::vector<LD> rhs(n + 2, 1);
    for (int i = 0; i <= n + 1; ++i) {
      LD w = std::exp(-beta * ref[i]);
      LD tPrev = 1, tCur = ref[i];
      m[i][0] = w;
      for (int k = 1; k <= n; ++k) {
        m[i][k] = tCur * w;
        LD tNext = 2 * ref[i] * tCur - tPrev;
        tPrev = tCur;
        tCur = tNext;
      }
      m[i][n + 1] = (i % 2 == 0) ? -1 : 1;
    }
    if (!solve(m, rhs))
      break;
    std::vector<LD> a(rhs.begin(), rhs.begin() + n + 1);
    const LD levelled = std::fabs(rhs[n + 1]);

    // Alternating extrema: one per maximal run of equal sign on the grid.
    std::vector<LD> r(gridSize);
    for (int i = 0; i < gridSize; ++i)
      r[i] = relErr(a, beta, grid[i]);
    std::vector<int> ext;
    for (int i = 0; i < gridSize; ++i) {
      if (!ext.empty() && (r[i] >= 0) == (r[ext.back()] >= 0)) {
        if (std::fabs(r[i]) > std::fabs(r[ext.back()]))
          ext.back() = i;
      } else {
        ext.push_back(i);
      }
    }
    while (static_cast<int>(ext.size()) > n + 2) {
      size_t excess = ext.size() - (n + 2);
      size_t j = 0;
      for (size_t i = 1; i < ext.size(); ++i)
        if (std::fabs(r[ext[i]]) < std::fabs(r[ext[j]]))
          j = i;
      if (excess == 1 || j == 0 || j + 1 == ext.size()) {
        if (excess == 1)
          j = std::fabs(r[ext.front()]) < std::fabs(r[ext.back()])
                  ? 0
                  : ext.size() - 1;
        ext.erase(ext.begin() + j);
      } else {
        // Drop the smallest and merge its two (now adjacent, same-sign)
        // neighbours into the larger one.
        size_t keep = std::fabs(r[ext[j - 1]]) >= std::fabs(r[ext[j + 1]])
                          ? j - 1
                          : j + 1;
        size_t drop = keep == j - 1 ? j + 1 : j - 1;
        ext.erase(ext.begin() + std::max(j, drop));
        ext.erase(ext.begin() + std::min(j, drop));
      }
    }
    if (static_cast<int>(ext.size()) != n + 2)
      break;
    // Refine each extremum by golden-section search on |r| over its two
    // neighbouring grid intervals.
    LD maxAbs = 0;
    for (int i = 0; i <= n + 1; ++i) {
      int idx = ext[i];
      LD t = grid[idx];
      if (idx > 0 && idx + 1 < gridSize) {
        LD lo = grid[idx - 1], hi = grid[idx + 1];
        const LD phi = 0.6180339887498948482045868343656381L;
        for (int it = 0; it < 60; ++it) {
          LD m1 = hi - phi * (hi - lo), m2 = lo + phi * (hi - lo);
          if (std::fabs(relErr(a, beta, m1)) >= std::fabs(relErr(a, beta, m2)))
            hi = m2;
          else
            lo = m1;
        }
        LD cand = (lo + hi) / 2;
        if (std::fabs(relErr(a, beta, cand)) > std::fabs(r[idx]))
          t = cand;
      }
      ref[i] = t;
      maxAbs = std::max(maxAbs, std::fabs(relErr(a, beta, t)));
    }
    LD gm = std::max(maxAbs, gridMax(a));
    if (gm < bestMax) {
      bestMax = gm;
      best = a;
    }
    // Converged: levelled to 10⁻⁶, or to the long double noise of r (far
    // below the rounding of the coefficients to double).
    if (maxAbs <= levelled * (1 + 1e-6L) || maxAbs - levelled < 1000 * kU)
      break;
  }
  return best;
}

} // namespace

namespace mlir {
namespace ropeattn {
namespace poly {

bool isSupported(int degree, double beta) {
  return degree >= 0 && degree <= kMaxDegree && std::isfinite(beta) &&
         beta >= 0 && beta <= kMaxBeta;
}

ExpApprox taylor(int degree, double beta) {
  if (!isSupported(degree, beta))
    return unsupported(Family::Taylor, degree, beta);
  ExpApprox a;
  a.family = Family::Taylor;
  a.degree = degree;
  a.beta = beta;
  a.coeffs = taylorCoeffs(degree);
  auto [apriori, positive] = taylorApriori(degree, beta, a.coeffs);
  finish(a, apriori, positive);
  return a;
}

ExpApprox chebyshev(int degree, double beta) {
  if (!isSupported(degree, beta))
    return unsupported(Family::Chebyshev, degree, beta);
  if (beta == 0) {
    // All nodes coincide at 0: Hermite interpolation is the Taylor
    // polynomial.
    ExpApprox a = taylor(degree, beta);
    a.family = Family::Chebyshev;
    return a;
  }
  ExpApprox a;
  a.family = Family::Chebyshev;
  a.degree = degree;
  a.beta = beta;
  a.coeffs = toMonomial(interpolationCoeffs(degree, beta), beta);
  finish(a, chebyshevApriori(degree, beta, a.coeffs), false);
  return a;
}

ExpApprox minimax(int degree, double beta) {
  if (!isSupported(degree, beta))
    return unsupported(Family::Minimax, degree, beta);
  if (beta == 0) {
    ExpApprox a = taylor(degree, beta);
    a.family = Family::Minimax;
    a.deltaApriori = kInf;
    return a;
  }
  ExpApprox a;
  a.family = Family::Minimax;
  a.degree = degree;
  a.beta = beta;
  a.coeffs = toMonomial(remez(degree, beta), beta);
  finish(a, std::numeric_limits<LD>::infinity(), false);
  // Rounding the coefficients to double can cost more than the exchange
  // gained where the error is near the rounding floor: never be worse than
  // the interpolant.
  ExpApprox interp = chebyshev(degree, beta);
  if (interp.delta < a.delta) {
    interp.family = Family::Minimax;
    return interp;
  }
  return a;
}

ExpApprox approximate(Family family, int degree, double beta) {
  switch (family) {
  case Family::Taylor:
    return taylor(degree, beta);
  case Family::Chebyshev:
    return chebyshev(degree, beta);
  case Family::Minimax:
    return minimax(degree, beta);
  }
  return unsupported(family, degree, beta);
}

std::optional<ExpApprox> leastDegree(Family family, double beta, double eps,
                                     int maxDegree) {
  if (!isSupported(0, beta) || !(eps >= 0))
    return std::nullopt;
  const int step = family == Family::Taylor ? 2 : 1;
  for (int g = 0; g <= std::min(maxDegree, kMaxDegree); g += step) {
    ExpApprox a = approximate(family, g, beta);
    if (a.positive && a.delta <= eps)
      return a;
  }
  return std::nullopt;
}

double taylorBetaLimit(int degree, double eps) {
  if (!isSupported(degree, 0) || !(eps >= 0))
    return kNaN;
  const std::vector<double> c = taylorCoeffs(degree);
  auto ok = [&](double b) {
    return taylorApriori(degree, b, c).first <= static_cast<LD>(eps);
  };
  if (ok(kMaxBeta))
    return kMaxBeta;
  if (!ok(0))
    return 0;
  double lo = 0, hi = kMaxBeta;
  for (int it = 0; it < 200 && lo < hi; ++it) {
    double mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi)
      break;
    (ok(mid) ? lo : hi) = mid;
  }
  // The returned β' satisfies the check itself; the true supremum over
  // [−β̂, β̂] ⊆ [−β', β'] can only be smaller.
  return lo;
}

double evaluate(const ExpApprox &approx, double x) {
  double p = 0;
  for (size_t k = approx.coeffs.size(); k-- > 0;)
    p = p * x + approx.coeffs[k];
  return p;
}

double gamma(int64_t n, double unitRoundoff) {
  LD nu = static_cast<LD>(n) * unitRoundoff;
  if (n < 0 || !(unitRoundoff >= 0))
    return kNaN;
  if (nu >= 1)
    return kInf;
  return roundUp(nu / (1 - nu) * (1 + 4 * kU));
}

double roundingAllowance(const ExpApprox &approx, int64_t n,
                         double unitRoundoff) {
  if (!std::isfinite(approx.absSum) || !isSupported(0, approx.beta))
    return kInf;
  LD g = gamma(n, unitRoundoff);
  return roundUp(g * approx.absSum * expNonNeg(approx.beta).upper() *
                 (1 + 4 * kU));
}

double derivativeDelta(const ExpApprox &approx) {
  if (approx.coeffs.empty() || !isSupported(0, approx.beta))
    return kInf;
  // p'(x) = Σ_k k·c_k x^{k−1}: k ≤ 17 widens a double mantissa by at most
  // 5 bits, so the long double coefficients are exact.
  std::vector<LD> d;
  for (size_t k = 1; k < approx.coeffs.size(); ++k)
    d.push_back(static_cast<LD>(k) * approx.coeffs[k]);
  if (d.empty())
    d.push_back(0);
  return roundUp(certify(d, approx.beta).delta);
}

double outputErrorBound(double delta) {
  if (!(delta >= 0))
    return kNaN;
  if (delta >= 1)
    return kInf;
  // 2δ/(1 + √(1 − δ²)), the stable form of 2(1 − √(1 − δ²))/δ (§4).
  LD d = delta;
  LD s = std::sqrt(static_cast<double>((1 - d) * (1 + d)));
  // The double square root is within one ulp (plus the product's rounding);
  // shrink it before dividing so that the result stays an upper bound.
  s *= 1 - 4 * static_cast<LD>(kUD);
  return roundUp(2 * d / (1 + s) * (1 + 4 * kU));
}

double lseErrorBound(double delta) {
  if (!(delta >= 0))
    return kNaN;
  if (delta >= 1)
    return kInf;
  // −log(1 − δ) = Σ_{m≥1} δ^m/m, a positive series: for δ ≤ 1/2 sum it
  // (ratio ≤ 1/2 after the first term); for larger δ use libm's log1p,
  // with a relative margin of 16 ulp.
  if (delta <= 0.5) {
    LD d = delta, term = d, sum = 0;
    int m = 1;
    for (; m < 400 && term > sum * kU / 1000 + 1e-4000L; ++m) {
      sum += term / m;
      term *= d;
    }
    sum += term * 2; // tail ≤ Σ_{j≥m} δ^j ≤ 2δ^m
    return roundUp(sum * (1 + gammaL(3 * m + 3)));
  }
  return roundUp(-std::log1p(-static_cast<LD>(delta)) * (1 + 16 * kU) +
                 16 * kU);
}

int64_t featureRank(int64_t d, int g) {
  if (d < 0 || g < 0)
    return 0;
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  // C(d+k, k) = C(d+k−1, k−1)·(d+k)/k, exact at every step: divide first by
  // the common factors so that the product cannot overflow needlessly.
  int64_t r = 1;
  for (int64_t k = 1; k <= g; ++k) {
    if (d > kMax - k)
      return kMax;
    int64_t num = d + k, den = k;
    int64_t g1 = std::gcd(r, den);
    int64_t rr = r / g1;
    den /= g1;
    // den now divides num (C(d+k, k) is an integer and gcd(rr, den) = 1).
    num /= den;
    if (rr > kMax / num)
      return kMax;
    r = rr * num;
  }
  return r;
}

const char *familyName(Family family) {
  switch (family) {
  case Family::Taylor:
    return "taylor";
  case Family::Chebyshev:
    return "chebyshev";
  case Family::Minimax:
    return "minimax";
  }
  return "unknown";
}

std::optional<Family> parseFamily(const std::string &name) {
  if (name == "taylor")
    return Family::Taylor;
  if (name == "chebyshev")
    return Family::Chebyshev;
  if (name == "minimax")
    return Family::Minimax;
  return std::nullopt;
}

} // namespace poly
} // namespace ropeattn
} // namespace mlir
