//===- SelectMethod.cpp - the method cost model ---------------------------===//
//
// Part of the ropeattn project.
//
// `ropeattn-select-method`: for every attention / attention_grad /
// general_attention with `method auto`, estimates the flops of the methods
// that apply (exact and polynomial without a bias; exact and toeplitz with a
// bias (forward) and for the general per-offset form;
// lib/Dialect/RopeAttn/Utils/CostModel.cpp) and writes the cheapest one as
// its method; explicit methods are honoured.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/Dialect/RopeAttn/Utils/CostModel.h"
#include "ropeattn/Dialect/RopeAttn/Utils/MethodSwitch.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstdio>

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNSELECTMETHOD
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

struct RopeAttnSelectMethodPass
    : public ropeattn::impl::RopeAttnSelectMethodBase<
          RopeAttnSelectMethodPass> {
  using Base::Base;

  /// Why the polynomial method cannot take `op`, or "" when it can.
  template <typename OpTy> static std::string ineligible(OpTy op) {
    if (op.getBias())
      return "a relative bias (the polynomial features cannot carry it)";
    for (Value v : op->getOperands())
      if (!cast<RankedTensorType>(v.getType()).hasStaticShape())
        return "dynamic shapes";
    return "";
  }

  /// The sizes of an attention-like op (static shapes).
  template <typename OpTy> static cost::AttentionShape shapeOf(OpTy op) {
    RankedTensorType q = op.getQuery().getType(), k = op.getKey().getType(),
                     v = op.getValue().getType();
    int64_t rank = q.getRank();
    cost::AttentionShape s;
    int64_t batch = 1;
    for (int64_t i = 0; i < rank - 3; ++i)
      batch *= q.getDimSize(i);
    s.bhq = batch * q.getDimSize(rank - 3);
    s.bhk = batch * k.getDimSize(rank - 3);
    s.n = q.getDimSize(rank - 2);
    s.m = k.getDimSize(rank - 2);
    s.d = q.getDimSize(rank - 1);
    s.dv = v.getDimSize(rank - 1);
    s.causal = op.getCausal();
    return s;
  }

  /// The least degree g ≤ `maxG` (with `size(g)` ≤ `maxSize`) whose
  /// certified range covers assumed-beta, and its range.
  std::optional<std::pair<int64_t, double>>
  leastCovering(poly::Family family, int64_t maxG,
                function_ref<int64_t(int64_t)> size, int64_t maxSize) {
    for (int64_t g = 1; g <= maxG; ++g) {
      if (size(g) > maxSize)
        break;
      std::optional<cost::PolyCandidate> c =
          cost::polyCandidate(family, g, epsilon);
      if (c && c->betaMax >= assumedBeta)
        return std::make_pair(g, c->betaMax);
    }
    return std::nullopt;
  }

  static bool staticF32OrF64(Operation *op) {
    for (Value v : op->getOperands()) {
      auto t = cast<RankedTensorType>(v.getType());
      if (!t.hasStaticShape() ||
          !(t.getElementType().isF32() || t.getElementType().isF64()))
        return false;
    }
    return true;
  }

  /// Relative-bias attention (forward): exact or toeplitz.
  void selectBias(AttentionOp op, poly::Family family,
                  function_ref<void(Method, const Twine &)> set) {
    if (!staticF32OrF64(op))
      return set(Method::Exact, "a relative bias (toeplitz needs static f32 "
                                "or f64 operands)");
    if (op->getNumResults() != 1 + (op.getLogsumexp() ? 1u : 0u))
      return set(Method::Exact, "a relative bias and a certificate result");
    cost::AttentionShape s = shapeOf(op);
    if (s.n == 0 || s.m == 0 || s.bhq == 0)
      return set(Method::Exact, "an empty problem");
    double exact = cost::exactFlops(s, /*grad=*/false);
    auto cand = leastCovering(
        family, toeplitzMaxDegree,
        [&](int64_t g) { return poly::featureRank(s.d, g); }, toeplitzMaxRank);
    if (!cand)
      return set(Method::Exact,
                 llvm::formatv("a relative bias; no degree ≤ {0} within "
                               "toeplitz-max-rank {1} covers assumed-beta {2}",
                               int64_t(toeplitzMaxDegree),
                               int64_t(toeplitzMaxRank), double(assumedBeta))
                     .str());
    double toeplitz =
        cost::toeplitzBiasFlops(s, cand->first) / toeplitzEfficiency;
    set(toeplitz < exact ? Method::Toeplitz : Method::Exact,
        llvm::formatv("estimated {0:e2} flops by toeplitz at degree {1} "
                      "(rank {2}, β̂ ≤ {3}, FFT length {4}) vs {5:e2} exact",
                      toeplitz, cand->first,
                      poly::featureRank(s.d, cand->first), cand->second,
                      int64_t(cost::fftLength(s)), exact)
            .str());
  }

  /// The general per-offset form (forward): exact or toeplitz.
  void selectGeneral(GeneralAttentionOp op, poly::Family family) {
    if (op.getMethod())
      return;
    auto set = [&](Method m, const Twine &why) {
      op.setMethodAttr(MethodAttr::get(op.getContext(), m));
      if (remarks)
        op.emitRemark("ropeattn-select-method: ")
            << stringifyMethod(m) << ": " << why;
    };
    if (!staticF32OrF64(op))
      return set(Method::Exact, "toeplitz needs static f32 or f64 operands");
    cost::AttentionShape s = shapeOf(op);
    int64_t sup = op.getSupportSize();
    if (s.n == 0 || s.m == 0 || s.bhq == 0)
      return set(Method::Exact, "an empty problem");
    double exact = cost::generalExactFlops(s, sup) / generalExactEfficiency;
    auto cand = leastCovering(
        family, toeplitzMaxDegree,
        [&](int64_t g) { return poly::featureRank(sup, g); }, maxTerms);
    if (!cand)
      return set(Method::Exact,
                 llvm::formatv("no degree ≤ {0} with |M| = C(|S| + g, g) ≤ "
                               "max-terms {1} covers assumed-beta {2} "
                               "(|S| = {3})",
                               int64_t(toeplitzMaxDegree), int64_t(maxTerms),
                               double(assumedBeta), sup)
                     .str());
    double toeplitz =
        cost::generalToeplitzFlops(s, sup, cand->first) / toeplitzEfficiency;
    set(toeplitz < exact ? Method::Toeplitz : Method::Exact,
        llvm::formatv("estimated {0:e2} flops by toeplitz at degree {1} "
                      "(|M| = C({2} + {1}, {1}) = {3}, β̂ ≤ {4}, FFT length "
                      "{5}) vs {6:e2} exact",
                      toeplitz, cand->first, sup,
                      poly::featureRank(sup, cand->first), cand->second,
                      int64_t(cost::fftLength(s)), exact)
            .str());
  }

  template <typename OpTy> void select(OpTy op, poly::Family family) {
    if (op.getMethod())
      return; // an explicit method is the user's
    constexpr bool grad = std::is_same_v<OpTy, AttentionGradOp>;
    auto set = [&](Method m, const Twine &why) {
      op.setMethodAttr(MethodAttr::get(op.getContext(), m));
      if (remarks)
        op.emitRemark("ropeattn-select-method: ")
            << stringifyMethod(m) << ": " << why;
    };
    if constexpr (!grad) {
      if (op.getBias())
        return selectBias(op, family, set);
    }
    std::string why = ineligible(op);
    if (!why.empty())
      return set(Method::Exact, why);
    cost::AttentionShape s = shapeOf(op);
    if (s.n == 0 || s.m == 0 || s.bhq == 0)
      return set(Method::Exact, "an empty problem");
    double exact = cost::exactFlops(s, grad);
    // The least degree whose certified range covers the assumed β̂.
    for (int64_t g = 1; g <= maxDegree; ++g) {
      if (poly::featureRank(s.d, g) > maxRank)
        break;
      std::optional<cost::PolyCandidate> c =
          cost::polyCandidate(family, g, epsilon);
      if (!c || c->betaMax < assumedBeta)
        continue;
      double polynomial = cost::polyFlops(s, g, chunk, grad) / polyEfficiency;
      std::string text = llvm::formatv(
          "estimated {0:e2} flops at degree {1} (rank {2}, β̂ ≤ {3}) vs "
          "{4:e2} exact",
          polynomial, g, poly::featureRank(s.d, g), c->betaMax, exact);
      return set(polynomial < exact ? Method::Polynomial : Method::Exact, text);
    }
    char text[160];
    std::snprintf(text, sizeof(text),
                  "no degree ≤ %lld within max-rank %lld covers assumed-beta "
                  "%g at epsilon %g",
                  static_cast<long long>(maxDegree),
                  static_cast<long long>(maxRank), double(assumedBeta),
                  double(epsilon));
    set(Method::Exact, text);
  }

  void runOnOperation() override {
    if (!(epsilon > 0) || maxDegree < 1 || chunk <= 0 || maxRank <= 0 ||
        !(assumedBeta >= 0) || !(polyEfficiency > 0) ||
        !(toeplitzEfficiency > 0) || !(generalExactEfficiency > 0) ||
        toeplitzMaxDegree < 1 || toeplitzMaxRank <= 0 || maxTerms <= 0) {
      getOperation()->emitError(
          "ropeattn-select-method: epsilon, poly-efficiency, "
          "toeplitz-efficiency, general-exact-efficiency, chunk, max-rank, "
          "toeplitz-max-rank, "
          "max-terms must be > 0, max-degree and toeplitz-max-degree >= 1, "
          "assumed-beta >= 0");
      return signalPassFailure();
    }
    std::optional<poly::Family> family =
        parseFamilyOption(getOperation(), "ropeattn-select-method", familyName);
    if (!family)
      return signalPassFailure();
    getOperation()->walk([&](Operation *op) {
      if (auto a = dyn_cast<AttentionOp>(op))
        select(a, *family);
      else if (auto g = dyn_cast<AttentionGradOp>(op))
        select(g, *family);
      else if (auto ga = dyn_cast<GeneralAttentionOp>(op))
        selectGeneral(ga, *family);
    });
  }
};

} // namespace
