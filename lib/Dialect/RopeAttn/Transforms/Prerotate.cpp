//===- Prerotate.cpp - fused RoPE to explicit rotary ops ------------------===//
//
// Part of the ropeattn project.
//
// ⟨rot(q_i, P + i), rot(k_j, j')⟩ depends on positions only through the
// rotation of each operand, so attention with fused RoPE equals attention
// without it on pre-rotated operands (docs/Spec.md, "Rotary embedding"). The
// backward follows from the chain rule: q̃ = R q ⇒ dq = Rᵀ dq̃. With xPos
// scaling (docs/Spec.md §3.1) q̃ = D R q with a diagonal D, still per
// operand: dq = Rᵀ D dq̃ (the rotary op's `transpose`), and both sides'
// positions are centred so that the factors D stay in range.
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
    auto [qRope, kRope] = getAttentionSideRopes(rope, n, m);
    Location loc = op.getLoc();
    Value q = createSideRotary(rewriter, loc, op.getQuery(), qRope,
                               RopeSide::Query, /*transpose=*/false);
    Value k = createSideRotary(rewriter, loc, op.getKey(), kRope, RopeSide::Key,
                               /*transpose=*/false);
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
    auto [qRope, kRope] = getAttentionSideRopes(rope, n, m);
    Location loc = op.getLoc();
    Value q = createSideRotary(rewriter, loc, op.getQuery(), qRope,
                               RopeSide::Query, /*transpose=*/false);
    Value k = createSideRotary(rewriter, loc, op.getKey(), kRope, RopeSide::Key,
                               /*transpose=*/false);
    rewriter.modifyOpInPlace(op, [&] {
      op.getQueryMutable().assign(q);
      op.getKeyMutable().assign(k);
      op.removeRopeAttr();
    });
    rewriter.setInsertionPointAfter(op);
    // q~ = A q with A = D·R (D the xPos factors, identity without xPos), so
    // dq = Aᵀ dq~ = D·Rᵀ dq~: the transposed map, not the inverse.
    Value dq = createSideRotary(rewriter, loc, op.getGradQuery(), qRope,
                                RopeSide::Query, /*transpose=*/true);
    Value dk = createSideRotary(rewriter, loc, op.getGradKey(), kRope,
                                RopeSide::Key, /*transpose=*/true);
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
