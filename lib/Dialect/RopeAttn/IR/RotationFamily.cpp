//===- RotationFamily.cpp - general_attention with rotation weights -------===//
//
// Part of the ropeattn project.
//
// Canonicalization of `ropeattn.general_attention`: per-offset matrices given
// as constants that are the RoPE rotation family W_δ = R(−(δ + M − N))
// (docs/Spec.md §8, "RoPE as a special case") become `ropeattn.attention`
// with the matching `rope` attribute, which runs by pre-rotation (O(n·d))
// instead of the general form. The xPos-scaled family W_δ = diag(ζ^(p/B))·R(−p)
// (p = δ + M − N) is recognized too, with ζ and B recovered from the data.
// docs/Spec.md §16.3 states exactly what is recognized.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

#include "llvm/ADT/DenseMap.h"

#include "llvm/Support/MathExtras.h"
#include <cmath>
#include <optional>

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

/// The recognized parameters: layout, rotated dims r, base.
struct Rotation {
  RopeLayout layout;
  int64_t r;
  double base;
};

struct Table {
  int64_t heads, len, s;
  SmallVector<double> w; // [heads, len, s]
  double at(int64_t h, int64_t u, int64_t t) const {
    return w[(h * len + u) * s + t];
  }
};

/// The pairs (first, second) of a layout with r rotated dims.
SmallVector<std::pair<int64_t, int64_t>> pairsOf(RopeLayout layout, int64_t r) {
  SmallVector<std::pair<int64_t, int64_t>> out;
  for (int64_t a = 0; a < r / 2; ++a)
    out.push_back(layout == RopeLayout::Half
                      ? std::make_pair(a, a + r / 2)
                      : std::make_pair(2 * a, 2 * a + 1));
  return out;
}

struct RecognizeRotationFamily : OpRewritePattern<GeneralAttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GeneralAttentionOp op,
                                PatternRewriter &rewriter) const override {
    DenseElementsAttr attr;
    if (!matchPattern(op.getWeights(), m_Constant(&attr)))
      return rewriter.notifyMatchFailure(op, "weights are not a constant");
    RankedTensorType qT = op.getQuery().getType(), kT = op.getKey().getType();
    if (!qT.hasStaticShape() || !kT.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "dynamic shapes");
    int64_t rank = qT.getRank();
    int64_t n = qT.getDimSize(rank - 2), m = kT.getDimSize(rank - 2),
            d = qT.getDimSize(rank - 1);
    auto wT = cast<RankedTensorType>(attr.getType());
    Table tab;
    tab.heads = wT.getRank() == 3 ? wT.getDimSize(0) : 1;
    tab.len = wT.getDimSize(wT.getRank() - 2);
    tab.s = wT.getDimSize(wT.getRank() - 1);
    if (tab.len < 2)
      return rewriter.notifyMatchFailure(op, "fewer than two offsets");
    for (const APFloat &f : attr.getValues<APFloat>()) {
      bool lost;
      APFloat x = f;
      x.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
      tab.w.push_back(x.convertToDouble());
    }

    // The support must hold every diagonal entry and, off the diagonal,
    // exactly both orders of the pairs of one layout.
    llvm::DenseMap<std::pair<int64_t, int64_t>, int64_t> col;
    ArrayRef<int64_t> sup = op.getSupport();
    for (int64_t t = 0; t < tab.s; ++t)
      col[{sup[2 * t], sup[2 * t + 1]}] = t;
    int64_t offDiag = 0;
    for (int64_t t = 0; t < tab.s; ++t)
      offDiag += sup[2 * t] != sup[2 * t + 1];
    for (int64_t c = 0; c < d; ++c)
      if (!col.count({c, c}))
        return rewriter.notifyMatchFailure(op, "a diagonal entry is missing");
    int64_t r = offDiag;
    if (r % 2 != 0 || r > d || tab.s != d + r)
      return rewriter.notifyMatchFailure(op, "not a rotation support");
    std::optional<RopeLayout> layout;
    for (RopeLayout l : {RopeLayout::Half, RopeLayout::Interleaved}) {
      bool ok = true;
      for (auto [u, w] : pairsOf(l, r))
        ok = ok && col.count({u, w}) && col.count({w, u});
      if (ok) {
        layout = l;
        break;
      }
    }
    if (!layout)
      return rewriter.notifyMatchFailure(op, "no layout matches the support");
    auto pairs = pairsOf(*layout, r);

    // Angles: offset table index u holds p = u − (N − 1) = δ + M − N.
    // θ_a from p = ±1, refined by unwrapping at p = ±2, ±4, … .
    // Causal ops use only visible rows (p ≥ 0).
    int64_t pMax = std::max(m - 1, n - 1), sign = m - 1 >= n - 1 ? 1 : -1;
    if (op.getCausal()) {
      pMax = m - 1;
      sign = 1;
    }
    if (pMax < 1)
      return rewriter.notifyMatchFailure(op, "no offset with p = ±1");
    auto angleAt = [&](int64_t a, int64_t p) {
      int64_t u = p + n - 1;
      double c = tab.at(0, u, col[{pairs[a].first, pairs[a].first}]);
      double s = tab.at(0, u, col[{pairs[a].first, pairs[a].second}]);
      return std::atan2(s, c);
    };
    // The magnitude ρ_a(p) = ζ_a^(p/B) of pair a's block (1 without xPos).
    auto magnitudeAt = [&](int64_t a, int64_t p) {
      int64_t u = p + n - 1;
      double c = tab.at(0, u, col[{pairs[a].first, pairs[a].first}]);
      double s = tab.at(0, u, col[{pairs[a].first, pairs[a].second}]);
      return std::hypot(c, s);
    };
    const double twoPi = 2 * llvm::numbers::pi;
    SmallVector<double> theta;
    for (int64_t a = 0; a < r / 2; ++a) {
      double th = angleAt(a, sign) * sign;
      for (int64_t p = 2; p <= pMax; p *= 2) {
        double al = angleAt(a, sign * p);
        double pred = sign * p * th;
        th = (al + twoPi * std::round((pred - al) / twoPi)) / (sign * p);
      }
      theta.push_back(th);
    }
    // base from θ_a = base^(−2a/r) (least squares on log θ_a, a ≥ 1).
    double baseFit = 10000.0;
    if (r >= 4) {
      double num = 0, den = 0;
      for (int64_t a = 1; a < r / 2; ++a) {
        if (!(theta[a] > 0))
          return rewriter.notifyMatchFailure(op, "non-positive frequency");
        double x = 2.0 * a / r;
        num += -x * std::log(theta[a]);
        den += x * x;
      }
      baseFit = std::exp(num / den);
    }

    Type et = wT.getElementType();
    double u = et.isF64()   ? 0x1p-53
               : et.isF32() ? 0x1p-24
               : et.isF16() ? 0x1p-11
                            : 0x1p-8;
    bool causal = op.getCausal();
    // xPos parameters (B, γ); none for the pure rotation.
    using Xpos = std::optional<std::pair<double, double>>;
    auto verifies = [&](double base, Xpos xpos) {
      for (int64_t h = 0; h < tab.heads; ++h)
        for (int64_t idx = causal ? n - 1 : 0; idx < tab.len; ++idx) {
          double p = double(idx - (n - 1));
          // Entries are ρ·(cos φ or ±sin φ): rounding to E (u·ρ), the f64
          // angle (|φ|·2⁻⁵³·ρ) and the f64 exponent (|p·ln ζ/B|·2⁻⁵³·ρ).
          auto near = [&](double got, double want, double phi, double rho,
                          double expo) {
            return std::abs(got - want) <=
                   rho *
                       (8 * u + 8 * (std::abs(phi) + std::abs(expo)) * 0x1p-53);
          };
          for (int64_t c = r; c < d; ++c)
            if (!near(tab.at(h, idx, col[{c, c}]), 1.0, 0, 1, 0))
              return false;
          for (int64_t a = 0; a < r / 2; ++a) {
            double phi = p * std::pow(base, -2.0 * a / r);
            double expo = 0;
            if (xpos) {
              auto [scaleBase, gamma] = *xpos;
              expo = p * std::log((2.0 * a / r + gamma) / (1.0 + gamma)) /
                     scaleBase;
            }
            double rho = std::exp(expo);
            double cs = rho * std::cos(phi), sn = rho * std::sin(phi);
            auto [f, s] = pairs[a];
            if (!near(tab.at(h, idx, col[{f, f}]), cs, phi, rho, expo) ||
                !near(tab.at(h, idx, col[{s, s}]), cs, phi, rho, expo) ||
                !near(tab.at(h, idx, col[{f, s}]), sn, phi, rho, expo) ||
                !near(tab.at(h, idx, col[{s, f}]), -sn, phi, rho, expo))
              return false;
          }
        }
      return true;
    };
    // `x` rounded to `digits` significant digits (round parameters are
    // tried first).
    auto snap = [](double x, int digits) {
      if (!(x > 0) || !std::isfinite(x))
        return x;
      double scale = std::pow(10.0, digits - 1 - std::floor(std::log10(x)));
      return std::round(x * scale) / scale;
    };
    // xPos candidates from the magnitudes at the farthest visible offset:
    // λ_a = ln ρ_a(p)/p = ln(ζ_a)/B. With two or more pairs, γ solves
    // λ_last/λ_0 = ln ζ_last / ln ζ_0 (monotone in γ: bisection on ln γ), then
    // B = ln ζ_0 / λ_0; with one pair only λ_0 is seen and γ = 0.4 is taken.
    SmallVector<Xpos> xposCandidates = {std::nullopt};
    {
      int64_t pFar = sign * pMax;
      SmallVector<double> lambda;
      bool decays = r >= 2;
      for (int64_t a = 0; decays && a < r / 2; ++a) {
        double rho = magnitudeAt(a, pFar);
        double l = std::log(rho) / double(pFar);
        decays = rho > 0 && std::isfinite(l) && l < 0;
        lambda.push_back(l);
      }
      std::optional<double> gamma;
      if (decays && r == 2)
        gamma = 0.4;
      if (decays && r >= 4) {
        double x = 1.0 - 2.0 / r; // 2a/r of the last pair
        double target = lambda.back() / lambda.front();
        auto ratio = [&](double g) {
          return std::log1p((x - 1.0) / (1.0 + g)) / -std::log1p(1.0 / g);
        };
        if (target > 0 && target < 1.0 - x) {
          double lo = -40, hi = 40; // ln γ
          for (int it = 0; it < 200; ++it) {
            double mid = 0.5 * (lo + hi);
            (ratio(std::exp(mid)) < target ? lo : hi) = mid;
          }
          gamma = std::exp(0.5 * (lo + hi));
        }
      }
      if (gamma) {
        double scaleBase = -std::log1p(1.0 / *gamma) / lambda.front();
        if (scaleBase > 0 && std::isfinite(scaleBase)) {
          // Fewest significant digits first: with few rows the data fix
          // (B, γ) only to ~1e-5, and a round value that reproduces every
          // entry is the one meant.
          for (int digits : {3, 4, 5, 6})
            xposCandidates.push_back(std::make_pair(
                snap(scaleBase, digits), r == 2 ? 0.4 : snap(*gamma, digits)));
          xposCandidates.push_back(std::make_pair(scaleBase, *gamma));
        }
      }
    }
    // A base of six significant digits when that reproduces the table (the
    // bases in use are round numbers), else the fitted one.
    double snapped = snap(baseFit, 6);
    std::optional<double> base;
    Xpos xpos;
    for (const Xpos &cand : xposCandidates) {
      if (verifies(snapped, cand))
        base = snapped;
      else if (verifies(baseFit, cand))
        base = baseFit;
      if (base) {
        xpos = cand;
        break;
      }
    }
    if (!base)
      return rewriter.notifyMatchFailure(
          op, "not the rotation family, plain or xPos-scaled");

    MLIRContext *ctx = op.getContext();
    std::optional<double> scaleBase, gamma;
    if (xpos) {
      scaleBase = xpos->first;
      if (xpos->second != 0.4)
        gamma = xpos->second;
    }
    RopeAttr rope = RopeAttr::get(
        ctx, r >= 4 ? *base : 10000.0, *layout,
        r == d ? std::nullopt : std::optional<int64_t>(r), 0, scaleBase, gamma);
    if (xpos) {
      // The attention op must verify: its centred xPos factors in range.
      auto [qRope, kRope] = getAttentionSideRopes(rope, n, m);
      double bound = std::max(getXposExponentBound(qRope, d, 0, n - 1),
                              getXposExponentBound(kRope, d, 0, m - 1));
      if (bound > getXposExponentLimit(getAccumulationType(et)))
        return rewriter.notifyMatchFailure(op, "xPos factors out of range");
    }
    // `toeplitz` asked for the FFT form; pre-rotation makes it moot.
    MethodAttr method;
    if (op.getMethod() && *op.getMethod() == Method::Exact)
      method = MethodAttr::get(ctx, Method::Exact);
    Type lseType = op.getLogsumexp() ? op.getLogsumexp().getType() : Type();
    auto att = AttentionOp::create(
        rewriter, op.getLoc(), op.getOutput().getType(), lseType, Type(),
        op.getQuery(), op.getKey(), op.getValue(), Value(), op.getScaleAttr(),
        op.getCausalAttr(), rope, method);
    SmallVector<Value> results = {att.getOutput()};
    if (op.getLogsumexp())
      results.push_back(att.getLogsumexp());
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void GeneralAttentionOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                                     MLIRContext *context) {
  results.add<RecognizeRotationFamily>(context);
}
