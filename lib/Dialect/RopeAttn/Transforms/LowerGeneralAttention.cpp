//===- LowerGeneralAttention.cpp - exact lowering of general_attention ----===//
//
// Part of the ropeattn project.
//
// The exact lowering of `ropeattn.general_attention` (docs/Spec.md §8) and
// of its gradient `ropeattn.general_attention_grad` (§9; the formulas are at
// LowerGeneralAttentionGrad) to linalg on tensors, per query head row h of
// [B·Hq]:
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

/// L[h, i, j] = Σ_t q̂[h, i, t] · W[(h,) i − j + M − 1, t] · k̂[κ(h), j, t]
/// (unscaled, every (i, j)), in the accumulation type ct.
Value buildLogits(B &bb, const general::Shape &sh, Value qh, Value w, Value kh,
                  Type ct) {
  MLIRContext *ctx = bb.b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return bb.b.getIndexAttr(x); };
  AffineExpr h = getAffineDimExpr(0, ctx), i = getAffineDimExpr(1, ctx),
             j = getAffineDimExpr(2, ctx), t = getAffineDimExpr(3, ctx);
  AffineExpr kv = general::kvHead(h, sh);
  return bb.generic(
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

    AffineExpr h = getAffineDimExpr(0, ctx), i = getAffineDimExpr(1, ctx);
    AffineExpr kv = general::kvHead(h, sh);

    Value logits = buildLogits(bb, sh, qh, w, kh, ct);

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

/// The exact gradient (docs/Spec.md §9), per query head row h of [B·Hq]:
///
///   P_ij = e^{ℓ_ij − lse_i} (the logsumexp operand) or e^{ℓ_ij − m_i}/Z_i
///   (recomputed), 0 on masked pairs and empty rows
///   dP_ij = ⟨dO_i, v_j⟩,  Δ_i = Σ_j P_ij·dP_ij (= ⟨dO_i, O_i⟩),
///   dℓ_ij = P_ij·(dP_ij − Δ_i)
///   dq̂_it = s·Σ_j dℓ_ij·w_t(i − j)·k̂_jt,  dq_ia = Σ_{t: a_t = a} dq̂_it
///   dk̂_jt = s·Σ_i dℓ_ij·w_t(i − j)·q̂_it,  dk_jb = Σ_group Σ_{t: b_t = b} dk̂_jt
///   dv_j = Σ_group Σ_i P_ij·dO_i
///   dW_(h)[u, t] = s·Σ_{i − j = u − M + 1} dℓ_ij·q̂_it·k̂_jt (summed over the
///   heads/batch entries sharing the table row)
///
/// Δ is formed from the recomputed P, not from the `output` operand (which
/// is not read): the same value, without the output's rounding to E.
struct LowerGeneralAttentionGrad : OpRewritePattern<GeneralAttentionGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GeneralAttentionGradOp op,
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
    Type ct = sh.t.isF64() ? rewriter.getF64Type() : rewriter.getF32Type();
    auto load = [&](Value x, int64_t keep) {
      return general::convertElements(bb, bb.collapseLeading(x, keep), ct);
    };
    Value q = load(op.getQuery(), 2), k = load(op.getKey(), 2),
          v = load(op.getValue(), 2), dO = load(op.getGradOutput(), 2);
    Value w = general::convertElements(bb, op.getWeights(), ct);
    Value qh = general::gatherColumns(bb, q, sh.as);
    Value kh = general::gatherColumns(bb, k, sh.bs);
    Value logits = buildLogits(bb, sh, qh, w, kh, ct);
    AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx),
               d2 = getAffineDimExpr(2, ctx), d3 = getAffineDimExpr(3, ctx);
    auto mulAdd = [](OpBuilder &nb, Location l, ValueRange a) {
      Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
      linalg::YieldOp::create(
          nb, l, arith::AddFOp::create(nb, l, a[2], p).getResult());
    };
    auto id3 = amap(ctx, 3, {0, 1, 2});
    auto rows3 = amap(ctx, 3, {0, 1});

    // P: normalized probabilities (0 on masked pairs and empty rows).
    Value probs;
    if (Value lseIn = op.getLogsumexp()) {
      Value lse =
          general::convertElements(bb, bb.collapseLeading(lseIn, 1), ct);
      probs = bb.generic(
          ValueRange{logits, lse},
          bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.m)}, ct), {id3, rows3, id3},
          {kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
            B ib{nb, l};
            Value ii = linalg::IndexOp::create(nb, l, 1);
            Value jj = linalg::IndexOp::create(nb, l, 2);
            Value sx = arith::MulFOp::create(nb, l, a[0], ib.flt(ct, sh.scale));
            Value e = math::ExpOp::create(
                nb, l, arith::SubFOp::create(nb, l, sx, a[1]));
            Value live = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT,
                                               a[1], ib.negInf(ct));
            live =
                arith::AndIOp::create(nb, l, live, visible(nb, l, sh, ii, jj));
            linalg::YieldOp::create(
                nb, l,
                arith::SelectOp::create(nb, l, live, e, ib.flt(ct, 0.0))
                    .getResult());
          });
    } else {
      Value rowMax = bb.generic(
          logits,
          bb.filled({ia(sh.bhq), ia(sh.n)}, ct,
                    -std::numeric_limits<double>::infinity()),
          {id3, rows3}, {kPar, kPar, kRed},
          [&](OpBuilder &nb, Location l, ValueRange a) {
            B ib{nb, l};
            Value ii = linalg::IndexOp::create(nb, l, 1);
            Value jj = linalg::IndexOp::create(nb, l, 2);
            Value sx = arith::MulFOp::create(nb, l, a[0], ib.flt(ct, sh.scale));
            Value x = arith::SelectOp::create(nb, l, visible(nb, l, sh, ii, jj),
                                              sx, ib.negInf(ct));
            linalg::YieldOp::create(
                nb, l, arith::MaximumFOp::create(nb, l, x, a[1]).getResult());
          });
      Value unnorm = bb.generic(
          ValueRange{logits, rowMax},
          bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.m)}, ct), {id3, rows3, id3},
          {kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
            B ib{nb, l};
            Value ii = linalg::IndexOp::create(nb, l, 1);
            Value jj = linalg::IndexOp::create(nb, l, 2);
            Value sx = arith::MulFOp::create(nb, l, a[0], ib.flt(ct, sh.scale));
            Value e = math::ExpOp::create(
                nb, l, arith::SubFOp::create(nb, l, sx, a[1]));
            linalg::YieldOp::create(
                nb, l,
                arith::SelectOp::create(nb, l, visible(nb, l, sh, ii, jj), e,
                                        ib.flt(ct, 0.0))
                    .getResult());
          });
      Value z = bb.generic(
          unnorm, bb.filled({ia(sh.bhq), ia(sh.n)}, ct, 0.0), {id3, rows3},
          {kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange a) {
            linalg::YieldOp::create(
                nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
          });
      probs = bb.generic(
          ValueRange{unnorm, z}, bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.m)}, ct),
          {id3, rows3, id3}, {kPar, kPar, kPar},
          [&](OpBuilder &nb, Location l, ValueRange a) {
            B ib{nb, l};
            Value pos = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT,
                                              a[1], ib.flt(ct, 0.0));
            Value r = arith::DivFOp::create(nb, l, a[0], a[1]);
            linalg::YieldOp::create(
                nb, l,
                arith::SelectOp::create(nb, l, pos, r, ib.flt(ct, 0.0))
                    .getResult());
          });
    }

    // dP[h, i, j] = Σ_c dO[h, i, c]·v[κ(h), j, c]  (dims h, i, j, c).
    Value dP = bb.generic(
        ValueRange{dO, v}, bb.filled({ia(sh.bhq), ia(sh.n), ia(sh.m)}, ct, 0.0),
        {AffineMap::get(4, 0, {d0, d1, d3}, ctx),
         AffineMap::get(4, 0, {general::kvHead(d0, sh), d2, d3}, ctx),
         amap(ctx, 4, {0, 1, 2})},
        {kPar, kPar, kPar, kRed}, mulAdd);
    // Δ_i = Σ_j P_ij·dP_ij.
    Value delta = bb.generic(ValueRange{probs, dP},
                             bb.filled({ia(sh.bhq), ia(sh.n)}, ct, 0.0),
                             {id3, id3, rows3}, {kPar, kPar, kRed}, mulAdd);
    // dℓ = P ∘ (dP − Δ).
    Value dl = bb.generic(
        ValueRange{probs, dP, delta},
        bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.m)}, ct), {id3, id3, rows3, id3},
        {kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
          Value dd = arith::SubFOp::create(nb, l, a[1], a[2]);
          linalg::YieldOp::create(
              nb, l, arith::MulFOp::create(nb, l, a[0], dd).getResult());
        });
    auto scaledTriple = [&](OpBuilder &nb, Location l, ValueRange a) {
      B ib{nb, l};
      Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
      p = arith::MulFOp::create(nb, l, p, a[2]);
      p = arith::MulFOp::create(nb, l, p, ib.flt(ct, sh.scale));
      linalg::YieldOp::create(
          nb, l, arith::AddFOp::create(nb, l, a[3], p).getResult());
    };
    // dq̂[h, i, t] = s·Σ_j dℓ·w_t(i − j)·k̂[κ(h), j, t]  (dims h, i, t, j).
    Value dqh = bb.generic(
        ValueRange{dl, w, kh},
        bb.filled({ia(sh.bhq), ia(sh.n), ia(sh.s)}, ct, 0.0),
        {AffineMap::get(4, 0, {d0, d1, d3}, ctx),
         general::weightsMap(ctx, 4, sh, d0, d1 - d3 + (sh.m - 1), d2),
         AffineMap::get(4, 0, {general::kvHead(d0, sh), d3, d2}, ctx),
         amap(ctx, 4, {0, 1, 2})},
        {kPar, kPar, kPar, kRed}, scaledTriple);
    // dk̂[h, j, t] = s·Σ_i dℓ·w_t(i − j)·q̂[h, i, t]  (dims h, j, t, i).
    Value dkh = bb.generic(
        ValueRange{dl, w, qh},
        bb.filled({ia(sh.bhq), ia(sh.m), ia(sh.s)}, ct, 0.0),
        {AffineMap::get(4, 0, {d0, d3, d1}, ctx),
         general::weightsMap(ctx, 4, sh, d0, d3 - d1 + (sh.m - 1), d2),
         AffineMap::get(4, 0, {d0, d3, d2}, ctx), amap(ctx, 4, {0, 1, 2})},
        {kPar, kPar, kPar, kRed}, scaledTriple);

    // Back to the feature dims (and the key side summed over the group).
    Value dq = general::scatterColumns(bb, dqh, sh.as, sh.d, sh.bhq, 1);
    Value dk = general::scatterColumns(bb, dkh, sh.bs, sh.d, sh.bhk, sh.group);
    // dv[r, j, c] = Σ_{g, i} P[r·G + g, i, j]·dO[r·G + g, i, c]
    // (dims r, j, c, g, i).
    Value dv = bb.generic(
        ValueRange{general::splitLeading(bb, probs, sh.bhk, sh.group),
                   general::splitLeading(bb, dO, sh.bhk, sh.group)},
        bb.filled({ia(sh.bhk), ia(sh.m), ia(sh.dv)}, ct, 0.0),
        {amap(ctx, 5, {0, 3, 4, 1}), amap(ctx, 5, {0, 3, 4, 2}),
         amap(ctx, 5, {0, 1, 2})},
        {kPar, kPar, kPar, kRed, kRed}, mulAdd);

    // dWh[h, u, t] = s·Σ_i dℓ[h, i, j]·q̂[h, i, t]·k̂[κ(h), j, t] with
    // j = i + M − 1 − u when 0 ≤ j < M  (dims h, u, t, i).
    Value dwh = bb.generic(
        ValueRange{qh}, bb.filled({ia(sh.bhq), ia(sh.len), ia(sh.s)}, ct, 0.0),
        {AffineMap::get(4, 0, {d0, d3, d2}, ctx), amap(ctx, 4, {0, 1, 2})},
        {kPar, kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange a) {
          B ib{nb, l};
          Value hh = linalg::IndexOp::create(nb, l, 0);
          Value uu = linalg::IndexOp::create(nb, l, 1);
          Value tt = linalg::IndexOp::create(nb, l, 2);
          Value ii = linalg::IndexOp::create(nb, l, 3);
          Value top = ib.add(ii, ib.idx(sh.m - 1)); // i + M − 1 ≥ 0
          Value inRange = arith::AndIOp::create(
              nb, l,
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::uge, top, uu),
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult,
                                    arith::SubIOp::create(nb, l, top, uu),
                                    ib.idx(sh.m)));
          Value jj = arith::SelectOp::create(
              nb, l, inRange, arith::SubIOp::create(nb, l, top, uu), ib.idx(0));
          Value kv =
              ib.add(ib.mul(ib.div(hh, ib.idx(sh.hq)), ib.idx(sh.hk)),
                     ib.div(ib.rem(hh, ib.idx(sh.hq)), ib.idx(sh.group)));
          Value dlv =
              tensor::ExtractOp::create(nb, l, dl, ValueRange{hh, ii, jj});
          Value kval =
              tensor::ExtractOp::create(nb, l, kh, ValueRange{kv, jj, tt});
          Value p = arith::MulFOp::create(nb, l, dlv, a[0]);
          p = arith::MulFOp::create(nb, l, p, kval);
          p = arith::MulFOp::create(nb, l, p, ib.flt(ct, sh.scale));
          p = arith::SelectOp::create(nb, l, inRange, p, ib.flt(ct, 0.0));
          linalg::YieldOp::create(
              nb, l, arith::AddFOp::create(nb, l, a[1], p).getResult());
        });
    // Sum over the rows of [B·Hq] that share a table: all (shared) or the
    // batch entries of a head (per head).
    auto addBody = [](OpBuilder &nb, Location l, ValueRange a) {
      linalg::YieldOp::create(
          nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
    };
    Value dw;
    if (!sh.perHead)
      dw = bb.generic(dwh, bb.filled({ia(sh.len), ia(sh.s)}, ct, 0.0),
                      {amap(ctx, 3, {2, 0, 1}), amap(ctx, 3, {0, 1})},
                      {kPar, kPar, kRed}, addBody);
    else
      dw = bb.generic(general::splitLeading(bb, dwh, sh.batch, sh.hq),
                      bb.filled({ia(sh.hq), ia(sh.len), ia(sh.s)}, ct, 0.0),
                      {amap(ctx, 4, {3, 0, 1, 2}), amap(ctx, 4, {0, 1, 2})},
                      {kPar, kPar, kPar, kRed}, addBody);

    auto store = [&](Value x, Value like, int64_t keep) {
      auto type = cast<RankedTensorType>(like.getType());
      return bb.expandLeading(
          general::convertElements(bb, x, type.getElementType()), type, keep);
    };
    rewriter.replaceOp(op, {store(dq, op.getGradQuery(), 2),
                            store(dk, op.getGradKey(), 2),
                            store(dv, op.getGradValue(), 2),
                            general::convertElements(bb, dw, sh.t)});
    return success();
  }
};

struct RopeAttnLowerGeneralAttentionPass
    : public ropeattn::impl::RopeAttnLowerGeneralAttentionBase<
          RopeAttnLowerGeneralAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    WalkResult dynamic = getOperation()->walk([](Operation *op) {
      std::optional<general::Shape> sh;
      if (auto fwd = dyn_cast<GeneralAttentionOp>(op))
        sh = general::getShape(fwd);
      else if (auto grad = dyn_cast<GeneralAttentionGradOp>(op))
        sh = general::getShape(grad);
      else
        return WalkResult::advance();
      if (sh)
        return WalkResult::advance();
      op->emitOpError("ropeattn-lower-general-attention: dynamic shapes are "
                      "not supported (the exact lowering needs static sizes)");
      return WalkResult::interrupt();
    });
    if (dynamic.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    patterns.add<LowerGeneralAttention, LowerGeneralAttentionGrad>(
        &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
