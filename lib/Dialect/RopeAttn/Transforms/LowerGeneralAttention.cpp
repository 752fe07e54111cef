//===- LowerGeneralAttention.cpp - exact lowering of general_attention ----===//
//
// Part of the ropeattn project.
//
// The exact lowering of `ropeattn.general_attention` (docs/Spec.md §8) to
// linalg on tensors, per query head row h of [B·Hq]:
//
//   L[h, i, j] = Σ_t q̂[h, i, t] · W_(h)[i − j + M − 1, t] · k̂[κ(h), j, t]
//   ℓ = s·L on visible (i, j), −∞ elsewhere;  m_i = max_j ℓ_ij
//   P_ij = e^{ℓ_ij − m_i},  Z_i = Σ_j P_ij
//   O_i = Σ_j P_ij v_j / Z_i,  lse_i = m_i + log Z_i  (0 / −∞ if Z_i = 0)
//
// with q̂ = q[..., a_t], k̂ = k[..., b_t] (the support gather). The logits are
// materialized (O(N·M) memory per head): this is the reference path the
// FFT rewrite falls back to and is checked against, not a fast kernel.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "ropeattn/Dialect/RopeAttn/Utils/GeneralForm.h"
#include "ropeattn/Dialect/RopeAttn/Utils/TensorBuilder.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <limits>

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNLOWERGENERALATTENTION
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

using utils::IteratorType;
constexpr IteratorType kPar = IteratorType::parallel;
constexpr IteratorType kRed = IteratorType::reduction;
using B = TensorBuilder;
constexpr auto amap = &TensorBuilder::dimMap;

/// Whether (i, j) is visible: always, or j + N ≤ i + M (causal).
Value visible(OpBuilder &b, Location l, const general::Shape &sh, Value i,
              Value j) {
  if (!sh.causal)
    return arith::ConstantIntOp::create(b, l, 1, 1);
  B ib{b, l};
  return arith::CmpIOp::create(b, l, arith::CmpIPredicate::ule,
                               ib.add(j, ib.idx(sh.n)),
                               ib.add(i, ib.idx(sh.m)));
}

struct LowerGeneralAttention : OpRewritePattern<GeneralAttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GeneralAttentionOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<general::Shape> maybe = general::getShape(op);
    if (!maybe)
      return rewriter.notifyMatchFailure(op, "dynamic shapes");
    general::Shape sh = *maybe;
    MLIRContext *ctx = rewriter.getContext();
    Location loc = op.getLoc();
    B bb{rewriter, loc};
    auto ia = [&](int64_t x) -> OpFoldResult {
      return rewriter.getIndexAttr(x);
    };
    // Accumulation type (docs/Spec.md §2): f64 for f64, else f32.
    Type ct = sh.t.isF64() ? rewriter.getF64Type() : rewriter.getF32Type();
    Value q =
        general::convertElements(bb, bb.collapseLeading(op.getQuery(), 2), ct);
    Value k =
        general::convertElements(bb, bb.collapseLeading(op.getKey(), 2), ct);
    Value v =
        general::convertElements(bb, bb.collapseLeading(op.getValue(), 2), ct);
    Value w = general::convertElements(bb, op.getWeights(), ct);
    Value qh = general::gatherColumns(bb, q, sh.as);
    Value kh = general::gatherColumns(bb, k, sh.bs);

    AffineExpr h = getAffineDimExpr(0, ctx), i = getAffineDimExpr(1, ctx),
               j = getAffineDimExpr(2, ctx), t = getAffineDimExpr(3, ctx);
    AffineExpr kv = general::kvHead(h, sh);

    // L[h, i, j] = Σ_t q̂[h, i, t] · W[(h,) i − j + M − 1, t] · k̂[κ(h), j, t].
    Value logits = bb.generic(
        ValueRange{qh, w, kh},
        bb.filled({ia(sh.bhq), ia(sh.n), ia(sh.m)}, ct, 0.0),
        {amap(ctx, 4, {0, 1, 3}),
         general::weightsMap(ctx, 4, sh, h, i - j + (sh.m - 1), t),
         AffineMap::get(4, 0, {kv, j, t}, ctx), amap(ctx, 4, {0, 1, 2})},
        {kPar, kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange a) {
          Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
          p = arith::MulFOp::create(nb, l, p, a[2]);
          linalg::YieldOp::create(
              nb, l, arith::AddFOp::create(nb, l, a[3], p).getResult());
        });

    auto scaledVisible = [&](OpBuilder &nb, Location l, Value x) -> Value {
      B ib{nb, l};
      Value ii = linalg::IndexOp::create(nb, l, 1);
      Value jj = linalg::IndexOp::create(nb, l, 2);
      Value sx = arith::MulFOp::create(nb, l, x, ib.flt(ct, sh.scale));
      return arith::SelectOp::create(nb, l, visible(nb, l, sh, ii, jj), sx,
                                     ib.negInf(ct));
    };
    // m_i = max over visible j of s·L (−∞ for an empty row).
    Value rowMax = bb.generic(
        logits,
        bb.filled({ia(sh.bhq), ia(sh.n)}, ct,
                  -std::numeric_limits<double>::infinity()),
        {amap(ctx, 3, {0, 1, 2}), amap(ctx, 3, {0, 1})}, {kPar, kPar, kRed},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          linalg::YieldOp::create(
              nb, l,
              arith::MaximumFOp::create(nb, l, scaledVisible(nb, l, a[0]), a[1])
                  .getResult());
        });
    // P = e^{ℓ − m} on visible entries, 0 elsewhere.
    Value probs = bb.generic(
        ValueRange{logits, rowMax},
        bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.m)}, ct),
        {amap(ctx, 3, {0, 1, 2}), amap(ctx, 3, {0, 1}),
         amap(ctx, 3, {0, 1, 2})},
        {kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
          B ib{nb, l};
          Value ii = linalg::IndexOp::create(nb, l, 1);
          Value jj = linalg::IndexOp::create(nb, l, 2);
          Value sx = arith::MulFOp::create(nb, l, a[0], ib.flt(ct, sh.scale));
          Value e = math::ExpOp::create(nb, l,
                                        arith::SubFOp::create(nb, l, sx, a[1]));
          linalg::YieldOp::create(
              nb, l,
              arith::SelectOp::create(nb, l, visible(nb, l, sh, ii, jj), e,
                                      ib.flt(ct, 0.0))
                  .getResult());
        });
    Value z = bb.generic(
        probs, bb.filled({ia(sh.bhq), ia(sh.n)}, ct, 0.0),
        {amap(ctx, 3, {0, 1, 2}), amap(ctx, 3, {0, 1})}, {kPar, kPar, kRed},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          linalg::YieldOp::create(
              nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
        });
    // num[h, i, c] = Σ_j P[h, i, j] · v[κ(h), j, c]  (dims h, i, c, j).
    AffineExpr c = getAffineDimExpr(2, ctx), jr = getAffineDimExpr(3, ctx);
    Value num = bb.generic(
        ValueRange{probs, v},
        bb.filled({ia(sh.bhq), ia(sh.n), ia(sh.dv)}, ct, 0.0),
        {AffineMap::get(4, 0, {h, i, jr}, ctx),
         AffineMap::get(4, 0, {kv, jr, c}, ctx), amap(ctx, 4, {0, 1, 2})},
        {kPar, kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange a) {
          Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
          linalg::YieldOp::create(
              nb, l, arith::AddFOp::create(nb, l, a[2], p).getResult());
        });
    Value o = bb.generic(
        ValueRange{num, z}, bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.dv)}, ct),
        {amap(ctx, 3, {0, 1, 2}), amap(ctx, 3, {0, 1}),
         amap(ctx, 3, {0, 1, 2})},
        {kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
          B ib{nb, l};
          Value pos = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT,
                                            a[1], ib.flt(ct, 0.0));
          Value r = arith::DivFOp::create(nb, l, a[0], a[1]);
          linalg::YieldOp::create(
              nb, l,
              arith::SelectOp::create(nb, l, pos, r, ib.flt(ct, 0.0))
                  .getResult());
        });
    SmallVector<Value> results;
    auto oType = cast<RankedTensorType>(op.getOutput().getType());
    results.push_back(bb.expandLeading(
        general::convertElements(bb, o, oType.getElementType()), oType, 2));
    if (Value lseRes = op.getLogsumexp()) {
      auto lType = cast<RankedTensorType>(lseRes.getType());
      Value lse = bb.generic(
          ValueRange{rowMax, z}, bb.empty({ia(sh.bhq), ia(sh.n)}, ct),
          {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0, 1}), amap(ctx, 2, {0, 1})},
          {kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
            B ib{nb, l};
            Value pos = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT,
                                              a[1], ib.flt(ct, 0.0));
            Value r = arith::AddFOp::create(nb, l, a[0],
                                            math::LogOp::create(nb, l, a[1]));
            linalg::YieldOp::create(
                nb, l,
                arith::SelectOp::create(nb, l, pos, r, ib.negInf(ct))
                    .getResult());
          });
      results.push_back(bb.expandLeading(
          general::convertElements(bb, lse, lType.getElementType()), lType, 1));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct RopeAttnLowerGeneralAttentionPass
    : public ropeattn::impl::RopeAttnLowerGeneralAttentionBase<
          RopeAttnLowerGeneralAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    WalkResult dynamic = getOperation()->walk([](GeneralAttentionOp op) {
      if (general::getShape(op))
        return WalkResult::advance();
      op.emitOpError("ropeattn-lower-general-attention: dynamic shapes are "
                     "not supported (the exact lowering needs static sizes)");
      return WalkResult::interrupt();
    });
    if (dynamic.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    patterns.add<LowerGeneralAttention>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
