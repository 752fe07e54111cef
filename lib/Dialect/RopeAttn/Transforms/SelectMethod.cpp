//===- SelectMethod.cpp - the method cost model ---------------------------===//
//
// Part of the ropeattn project.
//
// `ropeattn-select-method`: for every attention / attention_grad with
// `method auto`, estimates the exact and the polynomial method's flops
// (lib/Dialect/RopeAttn/Utils/CostModel.cpp) and writes the cheaper one as
// its method; explicit methods are honoured.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/Dialect/RopeAttn/Utils/CostModel.h"

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
    std::string why = ineligible(op);
    if (!why.empty())
      return set(Method::Exact, why);
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
        !(assumedBeta >= 0) || !(polyEfficiency > 0)) {
      getOperation()->emitError(
          "ropeattn-select-method: epsilon, poly-efficiency, chunk, "
          "max-rank must be > 0, max-degree >= 1, assumed-beta >= 0");
      return signalPassFailure();
    }
    std::optional<poly::Family> family = poly::parseFamily(familyName);
    if (!family) {
      getOperation()->emitError("ropeattn-select-method: unknown family '")
          << familyName << "'; expected taylor, chebyshev or minimax";
      return signalPassFailure();
    }
    getOperation()->walk([&](Operation *op) {
      if (auto a = dyn_cast<AttentionOp>(op))
        select(a, *family);
      else if (auto g = dyn_cast<AttentionGradOp>(op))
        select(g, *family);
    });
  }
};

} // namespace
