//===- ApproximateMath.cpp - vectorizable f32 math ------------------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Codegen/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNAPPROXIMATEMATH
#include "ropeattn/Codegen/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;

namespace {
struct RopeAttnApproximateMathPass
    : public ropeattn::impl::RopeAttnApproximateMathBase<
          RopeAttnApproximateMathPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    auto wanted = [](StringRef name) {
      name.consume_front("math.");
      return name == "exp" || name == "log" || name == "expm1" ||
             name == "log1p" || name == "tanh";
    };
    populateMathPolynomialApproximationPatterns(patterns, wanted);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
