//===- Prerotate.cpp - fused RoPE to explicit rotary ops ------------------===//
//
// Part of the ropeattn project.
//
// ⟨rot(q_i, P + i), rot(k_j, j')⟩ depends on positions only through the
// rotation of each operand, so attention with fused RoPE equals attention
// without it on pre-rotated operands (docs/Spec.md, "Rotary embedding"). The
// backward follows from the chain rule: q̃ = R q ⇒ dq = Rᵀ dq̃.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNPREROTATE
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

/// The RoPE of the queries: keys sit at offset + j, queries at
/// offset + (M - N) + i (bottom-right alignment).
RopeAttr queryRope(RopeAttr rope, int64_t n, int64_t m) {
  return RopeAttr::get(rope.getContext(), rope.getBase(), rope.getLayout(),
                       rope.getRotaryDim(), rope.getPositionOffset() + (m - n));
}

/// Reads N and M, or reports why the op is left alone.
template <typename OpTy>
FailureOr<std::pair<int64_t, int64_t>>
staticLengths(OpTy op, PatternRewriter &rewriter) {
  auto q = op.getQuery().getType();
  auto k = op.getKey().getType();
  // The rotary ops produce tensors of the element type E; for f16/bf16 that
  // would round q~, k~ to E, which docs/Spec.md (accuracy contract) forbids.
  if (getAccumulationType(q.getElementType()) != q.getElementType()) {
    op.emitRemark("ropeattn-prerotate: left fused RoPE in place: rotating ")
        << q.getElementType()
        << " operands outside the op would round them before the logits";
    return rewriter.notifyMatchFailure(op, "narrow element type");
  }
  int64_t n = q.getDimSize(q.getRank() - 2);
  int64_t m = k.getDimSize(k.getRank() - 2);
  if (ShapedType::isDynamic(n) || ShapedType::isDynamic(m)) {
    op.emitRemark("ropeattn-prerotate: left fused RoPE in place: the query "
                  "position offset M - N needs static N and M");
    return rewriter.notifyMatchFailure(op, "dynamic sequence length");
  }
  return std::make_pair(n, m);
}

Value rotate(PatternRewriter &rewriter, Location loc, Value input,
             RopeAttr rope, bool inverse) {
  auto op = RotaryOp::create(rewriter, loc, input.getType(), input,
                             /*positions=*/Value(), inverse, rope);
  return op.getResult();
}

struct PrerotateAttention : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    RopeAttr rope = op.getRopeAttr();
    if (!rope)
      return rewriter.notifyMatchFailure(op, "no fused rope");
    auto lengths = staticLengths(op, rewriter);
    if (failed(lengths))
      return failure();
    auto [n, m] = *lengths;
    Location loc = op.getLoc();
    Value q = rotate(rewriter, loc, op.getQuery(), queryRope(rope, n, m),
                     /*inverse=*/false);
    Value k = rotate(rewriter, loc, op.getKey(), rope, /*inverse=*/false);
    rewriter.modifyOpInPlace(op, [&] {
      op.getQueryMutable().assign(q);
      op.getKeyMutable().assign(k);
      op.removeRopeAttr();
    });
    return success();
  }
};

struct PrerotateAttentionGrad : OpRewritePattern<AttentionGradOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &rewriter) const override {
    RopeAttr rope = op.getRopeAttr();
    if (!rope)
      return rewriter.notifyMatchFailure(op, "no fused rope");
    auto lengths = staticLengths(op, rewriter);
    if (failed(lengths))
      return failure();
    auto [n, m] = *lengths;
    RopeAttr qRope = queryRope(rope, n, m);
    Location loc = op.getLoc();
    Value q = rotate(rewriter, loc, op.getQuery(), qRope, /*inverse=*/false);
    Value k = rotate(rewriter, loc, op.getKey(), rope, /*inverse=*/false);
    rewriter.modifyOpInPlace(op, [&] {
      op.getQueryMutable().assign(q);
      op.getKeyMutable().assign(k);
      op.removeRopeAttr();
    });
    rewriter.setInsertionPointAfter(op);
    Value dq =
        rotate(rewriter, loc, op.getGradQuery(), qRope, /*inverse=*/true);
    Value dk = rotate(rewriter, loc, op.getGradKey(), rope, /*inverse=*/true);
    rewriter.replaceAllUsesExcept(op.getGradQuery(), dq, dq.getDefiningOp());
    rewriter.replaceAllUsesExcept(op.getGradKey(), dk, dk.getDefiningOp());
    return success();
  }
};

struct RopeAttnPrerotatePass
    : public ropeattn::impl::RopeAttnPrerotateBase<RopeAttnPrerotatePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<PrerotateAttention, PrerotateAttentionGrad>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
