//===- RopeAttnToLinalg.cpp - exact flash-style lowering ------------------===//
//
// Part of the ropeattn project.
//
// The exact lowering of ropeattn ops to linalg/tensor/arith/math/scf on
// tensors: the oracle every other path is tested against (docs/Spec.md).
//
// Notation in comments: T is the accumulation type (f32 or f64), BHq/BHk the
// collapsed batch·head dimensions, r/c the row/column of a tile, Bq/Bk the
// block sizes.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Conversion/Passes.h"

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/Dialect/RopeAttn/Utils/TensorBuilder.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>
#include <limits>

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_CONVERTROPEATTNTOLINALG
#include "ropeattn/Conversion/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

using utils::IteratorType;
constexpr IteratorType kPar = IteratorType::parallel;
constexpr IteratorType kRed = IteratorType::reduction;

//===----------------------------------------------------------------------===//
// Small builders
//===----------------------------------------------------------------------===//

using KB = TensorBuilder;

AffineMap map(MLIRContext *ctx, unsigned dims, ArrayRef<AffineExpr> results) {
  return AffineMap::get(dims, 0, results, ctx);
}

/// Converts every element of `t` to `elementType` (extf/truncf), optionally
/// multiplying by `scale` (in the wider type) on the way.
Value convert(KB &kb, Value t, Type elementType,
              std::optional<double> scale = std::nullopt) {
  auto type = cast<RankedTensorType>(t.getType());
  if (type.getElementType() == elementType && !scale)
    return t;
  SmallVector<OpFoldResult> shape = tensor::getMixedSizes(kb.b, kb.loc, t);
  Value out = kb.empty(shape, elementType);
  unsigned rank = type.getRank();
  AffineMap id = AffineMap::getMultiDimIdentityMap(rank, kb.b.getContext());
  SmallVector<IteratorType> iters(rank, kPar);
  return kb.generic(
      t, out, {id, id}, iters, [&](OpBuilder &b, Location loc, ValueRange a) {
        Value x = a[0];
        Type from = x.getType();
        unsigned fromWidth = from.getIntOrFloatBitWidth();
        unsigned toWidth = elementType.getIntOrFloatBitWidth();
        if (fromWidth < toWidth)
          x = arith::ExtFOp::create(b, loc, elementType, x);
        if (scale) {
          Type st = fromWidth < toWidth ? elementType : from;
          Value s =
              arith::ConstantOp::create(b, loc, st, b.getFloatAttr(st, *scale));
          x = arith::MulFOp::create(b, loc, x, s);
        }
        if (fromWidth > toWidth)
          x = arith::TruncFOp::create(b, loc, elementType, x);
        linalg::YieldOp::create(b, loc, x);
      });
}

//===----------------------------------------------------------------------===//
// Rotary embedding
//===----------------------------------------------------------------------===//

/// How buildRotation applies the map A(p) = D(p)·R(p) of one row (D the xPos
/// factors ζ_a^(±p/B), the identity without xPos).
enum class RotationMode { Forward, Inverse, Transpose };

/// Rotates x : [P, N, D] (element type T) by RoPE at positions
/// `offset + (positions[n] or n)`: A(p)·x, A(p)⁻¹·x or A(p)ᵀ·x by `mode`
/// (the last two are R(−p)·x without xPos). `side` picks the sign of the
/// xPos exponent (+ for queries, − for keys); it is ignored without xPos.
Value buildRotation(KB &kb, Value x, RopeAttr rope, Value positions,
                    int64_t offset, RotationMode mode,
                    RopeSide side = RopeSide::Query) {
  bool inverse = mode != RotationMode::Forward;
  MLIRContext *ctx = kb.b.getContext();
  auto type = cast<RankedTensorType>(x.getType());
  Type t = type.getElementType();
  int64_t p = type.getDimSize(0), n = type.getDimSize(1),
          d = type.getDimSize(2);
  int64_t r = rope.getRotaryDimOr(d);
  if (r == 0 || n == 0 || p == 0)
    return x;
  int64_t half = r / 2;
  bool interleaved = rope.getLayout() == RopeLayout::Interleaved;
  double logBase = std::log(rope.getBaseValue());
  int64_t totalOffset = offset + rope.getPositionOffset();
  Type f64 = kb.b.getF64Type();

  // cos/sin tables [N, r/2] in T, angles in f64.
  SmallVector<OpFoldResult> tableShape = {kb.b.getIndexAttr(n),
                                          kb.b.getIndexAttr(half)};
  Value cosT = kb.empty(tableShape, t), sinT = kb.empty(tableShape, t);
  AffineExpr dn = getAffineDimExpr(0, ctx), da = getAffineDimExpr(1, ctx);
  SmallVector<Value> tableIns;
  SmallVector<AffineMap> tableMaps;
  if (positions) {
    tableIns.push_back(positions);
    tableMaps.push_back(map(ctx, 2, {dn}));
  }
  tableMaps.push_back(map(ctx, 2, {dn, da}));
  tableMaps.push_back(map(ctx, 2, {dn, da}));
  auto tables = kb.genericOp(
      tableIns, ValueRange{cosT, sinT}, tableMaps, {kPar, kPar},
      [&](OpBuilder &b, Location loc, ValueRange args) {
        Value pos;
        if (positions) {
          pos = args[0];
          if (pos.getType().isIndex())
            pos = arith::IndexCastOp::create(b, loc, b.getI64Type(), pos);
        } else {
          Value ni = linalg::IndexOp::create(b, loc, 0);
          pos = arith::IndexCastOp::create(b, loc, b.getI64Type(), ni);
        }
        Value off = arith::ConstantOp::create(b, loc, b.getI64Type(),
                                              b.getI64IntegerAttr(totalOffset));
        pos = arith::AddIOp::create(b, loc, pos, off);
        Value posF = arith::SIToFPOp::create(b, loc, f64, pos);
        Value ai = linalg::IndexOp::create(b, loc, 1);
        Value a64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), ai);
        Value aF = arith::SIToFPOp::create(b, loc, f64, a64);
        // θ_a = base^(−2a/r) = exp(−(2/r)·ln(base)·a).
        Value coef = arith::ConstantOp::create(
            b, loc, f64, b.getF64FloatAttr(-2.0 * logBase / double(r)));
        Value theta = math::ExpOp::create(
            b, loc, arith::MulFOp::create(b, loc, aF, coef));
        Value angle = arith::MulFOp::create(b, loc, posF, theta);
        if (inverse)
          angle = arith::NegFOp::create(b, loc, angle);
        Value c = math::CosOp::create(b, loc, angle);
        Value s = math::SinOp::create(b, loc, angle);
        if (rope.hasXpos()) {
          // xPos factor exp(σ·p·ln(ζ_a)/B), ζ_a = (2a/r + γ)/(1 + γ), σ = +1
          // for queries, −1 for keys, negated again by the inverse. Folded
          // into the cos/sin tables (all in f64 until the final rounding).
          double gamma = rope.getXposGammaValue();
          double sign = side == RopeSide::Query ? 1.0 : -1.0;
          if (mode == RotationMode::Inverse)
            sign = -sign;
          auto cst = [&](double v) {
            return arith::ConstantOp::create(b, loc, f64, b.getF64FloatAttr(v));
          };
          Value zeta = arith::MulFOp::create(
              b, loc,
              arith::AddFOp::create(
                  b, loc, arith::MulFOp::create(b, loc, aF, cst(2.0 / r)),
                  cst(gamma)),
              cst(1.0 / (1.0 + gamma)));
          Value rate =
              arith::MulFOp::create(b, loc, math::LogOp::create(b, loc, zeta),
                                    cst(sign / rope.getXposScaleBaseValue()));
          Value factor = math::ExpOp::create(
              b, loc, arith::MulFOp::create(b, loc, posF, rate));
          c = arith::MulFOp::create(b, loc, c, factor);
          s = arith::MulFOp::create(b, loc, s, factor);
        }
        if (t != f64) {
          c = arith::TruncFOp::create(b, loc, t, c);
          s = arith::TruncFOp::create(b, loc, t, s);
        }
        linalg::YieldOp::create(b, loc, ValueRange{c, s});
      });

  // Pairs (u_a, w_a): half → (a, a + r/2); interleaved → (2a, 2a + 1),
  // taken as (strided) slices so that every map below is the identity.
  AffineExpr e0 = getAffineDimExpr(0, ctx), e1 = getAffineDimExpr(1, ctx),
             e2 = getAffineDimExpr(2, ctx);
  SmallVector<OpFoldResult> pairShape = {
      kb.b.getIndexAttr(p), kb.b.getIndexAttr(n), kb.b.getIndexAttr(half)};
  OpFoldResult zero = kb.b.getIndexAttr(0), one = kb.b.getIndexAttr(1);
  int64_t stride = interleaved ? 2 : 1;
  int64_t offU = 0, offW = interleaved ? 1 : half;
  auto pairType = RankedTensorType::get({p, n, half}, t);
  auto pick = [&](int64_t off) -> Value {
    return tensor::ExtractSliceOp::create(
        kb.b, kb.loc, pairType, x,
        ArrayRef<OpFoldResult>{zero, zero, kb.b.getIndexAttr(off)}, pairShape,
        ArrayRef<OpFoldResult>{one, one, kb.b.getIndexAttr(stride)});
  };
  Value xu = pick(offU), xw = pick(offW);
  Value y1 = kb.empty(pairShape, t), y2 = kb.empty(pairShape, t);
  auto rot = kb.genericOp(
      ValueRange{xu, xw, tables.getResult(0), tables.getResult(1)},
      ValueRange{y1, y2},
      {map(ctx, 3, {e0, e1, e2}), map(ctx, 3, {e0, e1, e2}),
       map(ctx, 3, {e1, e2}), map(ctx, 3, {e1, e2}), map(ctx, 3, {e0, e1, e2}),
       map(ctx, 3, {e0, e1, e2})},
      {kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
        Value xu = a[0], xw = a[1], c = a[2], s = a[3];
        Value yu =
            arith::SubFOp::create(b, loc, arith::MulFOp::create(b, loc, xu, c),
                                  arith::MulFOp::create(b, loc, xw, s));
        Value yw =
            arith::AddFOp::create(b, loc, arith::MulFOp::create(b, loc, xu, s),
                                  arith::MulFOp::create(b, loc, xw, c));
        linalg::YieldOp::create(b, loc, ValueRange{yu, yw});
      });

  // Assemble: the pass-through dims come from x itself.
  SmallVector<OpFoldResult> sizes = pairShape;
  auto insertAt = [&](Value src, Value dest, int64_t off, int64_t stride) {
    SmallVector<OpFoldResult> offsets = {zero, zero, kb.b.getIndexAttr(off)};
    SmallVector<OpFoldResult> strides = {one, one, kb.b.getIndexAttr(stride)};
    return tensor::InsertSliceOp::create(kb.b, kb.loc, src, dest, offsets,
                                         sizes, strides)
        .getResult();
  };
  Value y = insertAt(rot.getResult(0), x, offU, stride);
  return insertAt(rot.getResult(1), y, offW, stride);
}

//===----------------------------------------------------------------------===//
// Attention kernels
//===----------------------------------------------------------------------===//

/// Static description of one attention problem after collapsing batch dims.
struct Problem {
  int64_t bhq, bhk, hq, hk, group, n, m, d, dv;
  bool causal;
  Value bias; // [L] or [Hq, L] in T, or null
  bool biasPerHead;
  Type t; // accumulation type
  int64_t blockQ, blockK;

  int64_t shift() const { return m - n; } // query i sits at key i + (M − N)
};

/// kv head of a (collapsed) query head: (bh / Hq)·Hk + (bh mod Hq) / G.
Value kvHeadOf(KB &kb, const Problem &pb, Value bh) {
  Value b = kb.div(bh, kb.idx(pb.hq));
  Value h = kb.rem(bh, kb.idx(pb.hq));
  return kb.add(kb.mul(b, kb.idx(pb.hk)), kb.div(h, kb.idx(pb.group)));
}

/// Reduction steps with fast-math flags, so that LLVM may reassociate them
/// (vectorize the row reductions). The inputs are finite or −∞, never NaN.
Value reduceMax(OpBuilder &b, Location loc, Value x, Value acc) {
  return arith::MaxNumFOp::create(b, loc, x, acc, arith::FastMathFlags::fast);
}
Value reduceAdd(OpBuilder &b, Location loc, Value x, Value acc) {
  return arith::AddFOp::create(b, loc, x, acc, arith::FastMathFlags::fast);
}

Value maskedTile(KB &kb, const Problem &pb, Value s, Value rowMax,
                 Value *rowMaxOut, Value i0, Value j0, Value bh);

/// Logits of a tile: S = Qs·Kᵀ (q already scaled), then the bias and the
/// causal mask at rows i0 + r, columns j0 + c.
///
/// With `rowMax` (a [rows] tensor), the same pass also folds max_c S into it
/// (the first step of the online softmax) and returns it in `rowMaxOut`.
Value logitsTile(KB &kb, const Problem &pb, Value qt, Value kt, Value rows,
                 Value cols, Value i0, Value j0, Value bh, Value rowMax = {},
                 Value *rowMaxOut = nullptr) {
  MLIRContext *ctx = kb.b.getContext();
  AffineExpr r = getAffineDimExpr(0, ctx), c = getAffineDimExpr(1, ctx),
             k = getAffineDimExpr(2, ctx);
  Value s = kb.filled({rows, cols}, pb.t, 0.0);
  s = kb.matmul(
      qt, kt, s,
      {map(ctx, 3, {r, k}), map(ctx, 3, {c, k}), map(ctx, 3, {r, c})});
  bool adjust = pb.bias || pb.causal;
  if (!adjust && !rowMax)
    return s;
  AffineMap id = map(ctx, 2, {r, c});
  auto plainMax = [&](KB &k2) {
    return k2.generic(s, rowMax, {id, map(ctx, 2, {r})}, {kPar, kRed},
                      [&](OpBuilder &b, Location loc, ValueRange a) {
                        linalg::YieldOp::create(b, loc,
                                                reduceMax(b, loc, a[0], a[1]));
                      });
  };
  if (!adjust) {
    *rowMaxOut = plainMax(kb);
    return s;
  }
  if (pb.causal && !pb.bias && rowMax) {
    // Key blocks wholly visible from the block's first row (j0 + cols − 1 ≤
    // i0 + M − N) need no mask: only the row max. The others are masked.
    Value last = kb.add(j0, cols);
    Value lim = kb.add(i0, kb.idx(pb.shift() + 1));
    Value visible = arith::CmpIOp::create(kb.b, kb.loc,
                                          arith::CmpIPredicate::sle, last, lim);
    auto ifOp = scf::IfOp::create(
        kb.b, kb.loc, visible,
        [&](OpBuilder &tb, Location tl) {
          KB kt{tb, tl};
          scf::YieldOp::create(tb, tl, ValueRange{s, plainMax(kt)});
        },
        [&](OpBuilder &eb, Location el) {
          KB ke{eb, el};
          Value m2;
          Value s2 = maskedTile(ke, pb, s, rowMax, &m2, i0, j0, bh);
          scf::YieldOp::create(eb, el, ValueRange{s2, m2});
        });
    *rowMaxOut = ifOp.getResult(1);
    return ifOp.getResult(0);
  }
  return maskedTile(kb, pb, s, rowMax, rowMaxOut, i0, j0, bh);
}

/// The bias / causal-mask pass over a logits tile (with the row max folded in
/// when `rowMax` is given).
Value maskedTile(KB &kb, const Problem &pb, Value s, Value rowMax,
                 Value *rowMaxOut, Value i0, Value j0, Value bh) {
  MLIRContext *ctx = kb.b.getContext();
  AffineExpr r = getAffineDimExpr(0, ctx), c = getAffineDimExpr(1, ctx);
  AffineMap id = map(ctx, 2, {r, c});
  Value head;
  if (pb.bias && pb.biasPerHead)
    head = kb.rem(bh, kb.idx(pb.hq));
  SmallVector<Value> outs = {s};
  SmallVector<AffineMap> maps = {id};
  if (rowMax) {
    outs.push_back(rowMax);
    maps.push_back(map(ctx, 2, {r}));
  }
  auto g = kb.genericOp(
      ValueRange{}, outs, maps, {kPar, rowMax ? kRed : kPar},
      [&](OpBuilder &b, Location loc, ValueRange a) {
        Value v = a[0];
        Value ri = linalg::IndexOp::create(b, loc, 0);
        Value ci = linalg::IndexOp::create(b, loc, 1);
        Value i = arith::AddIOp::create(b, loc, ri, i0);
        Value j = arith::AddIOp::create(b, loc, ci, j0);
        if (pb.bias) {
          // bias[δ + M − 1], δ = i − j.
          Value di = arith::SubIOp::create(b, loc, i, j);
          Value at = arith::AddIOp::create(
              b, loc, di, arith::ConstantIndexOp::create(b, loc, pb.m - 1));
          SmallVector<Value> idx;
          if (pb.biasPerHead)
            idx.push_back(head);
          idx.push_back(at);
          Value bv = tensor::ExtractOp::create(b, loc, pb.bias, idx);
          v = arith::AddFOp::create(b, loc, v, bv);
        }
        if (pb.causal) {
          // Visible iff j ≤ i + (M − N).
          Value lim = arith::AddIOp::create(
              b, loc, i, arith::ConstantIndexOp::create(b, loc, pb.shift()));
          Value hidden =
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, j, lim);
          Value ninf = arith::ConstantOp::create(
              b, loc, pb.t,
              b.getFloatAttr(pb.t, -std::numeric_limits<double>::infinity()));
          v = arith::SelectOp::create(b, loc, hidden, ninf, v);
        }
        if (rowMax)
          linalg::YieldOp::create(b, loc,
                                  ValueRange{v, reduceMax(b, loc, v, a[1])});
        else
          linalg::YieldOp::create(b, loc, v);
      });
  if (rowMax)
    *rowMaxOut = g.getResult(1);
  return g.getResult(0);
}

/// −∞ → 0, so that exp(x − m) is exp(−∞) = 0 rather than NaN on empty rows.
Value finiteOrZero(OpBuilder &b, Location loc, Value m) {
  Type t = m.getType();
  Value ninf = arith::ConstantOp::create(
      b, loc, t, b.getFloatAttr(t, -std::numeric_limits<double>::infinity()));
  Value zero = arith::ConstantOp::create(b, loc, t, b.getFloatAttr(t, 0.0));
  Value isInf =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, m, ninf);
  return arith::SelectOp::create(b, loc, isInf, zero, m);
}

/// exp(x); exp(−∞) = 0 exactly, both for libm (f64) and for the f32
/// polynomial of ropeattn-approximate-math (checked by the integration tests
/// on fully masked rows), so no select is needed here.
Value safeExp(OpBuilder &b, Location loc, Value x) {
  return math::ExpOp::create(b, loc, x);
}

/// Number of keys visible to the last row of the query block [i0, i0+rows):
/// clamp(i0 + rows + (M − N), 0, M) when causal, M otherwise.
Value keyEnd(KB &kb, const Problem &pb, Value i0, Value rows) {
  if (!pb.causal)
    return kb.idx(pb.m);
  Value e = kb.add(kb.add(i0, rows), kb.idx(pb.shift()));
  return kb.max(kb.min(e, kb.idx(pb.m)), kb.idx(0));
}

/// Forward: o [BHq, N, Dv] (element type `outType`) and lse [BHq, N] (T) from
/// qs = s·q̃ [BHq, N, D], k̃ [BHk, M, D], v [BHk, M, Dv], all in T.
std::pair<Value, Value> buildForward(KB &kb, const Problem &pb, Value qs,
                                     Value k, Value v, Type outType) {
  MLIRContext *ctx = kb.b.getContext();
  OpBuilder &b = kb.b;
  Location loc = kb.loc;
  Value oInit = kb.empty(
      {b.getIndexAttr(pb.bhq), b.getIndexAttr(pb.n), b.getIndexAttr(pb.dv)},
      outType);
  Value lInit = kb.empty({b.getIndexAttr(pb.bhq), b.getIndexAttr(pb.n)}, pb.t);
  int64_t numQ = (pb.n + pb.blockQ - 1) / pb.blockQ;
  auto forall = scf::ForallOp::create(
      b, loc,
      ArrayRef<OpFoldResult>{b.getIndexAttr(pb.bhq), b.getIndexAttr(numQ)},
      ValueRange{oInit, lInit}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  Value bh = forall.getInductionVar(0), qb = forall.getInductionVar(1);
  Value i0 = kb.mul(qb, kb.idx(pb.blockQ));
  Value rows = kb.min(kb.idx(pb.blockQ), kb.sub(kb.idx(pb.n), i0));
  Value kvh = kvHeadOf(kb, pb, bh);
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  Value qt = kb.slice(qs, {bh, i0, zero}, {one, rows, b.getIndexAttr(pb.d)}, 1);

  AffineExpr r = getAffineDimExpr(0, ctx), c = getAffineDimExpr(1, ctx),
             e2 = getAffineDimExpr(2, ctx);
  Value m0 = kb.filled({rows}, pb.t, -std::numeric_limits<double>::infinity());
  Value l0 = kb.filled({rows}, pb.t, 0.0);
  Value a0 = kb.filled({rows, b.getIndexAttr(pb.dv)}, pb.t, 0.0);
  Value kEnd = keyEnd(kb, pb, i0, rows);
  auto loop = scf::ForOp::create(
      b, loc, kb.idx(0), kEnd, kb.idx(pb.blockK), ValueRange{m0, l0, a0},
      [&](OpBuilder &bb, Location l, Value j0, ValueRange it) {
        KB kb2{bb, l};
        Value m = it[0], sum = it[1], acc = it[2];
        Value cols = kb2.min(kb2.idx(pb.blockK), kb2.sub(kEnd, j0));
        Value kt = kb2.slice(k, {kvh, j0, zero},
                             {one, cols, bb.getIndexAttr(pb.d)}, 1);
        Value vt = kb2.slice(v, {kvh, j0, zero},
                             {one, cols, bb.getIndexAttr(pb.dv)}, 1);
        // S (+ bias, mask) and m' = max(m, max_c S) in one pass; m' goes
        // to a temporary since m is still needed for α (m is overwritten in
        // place, for bufferization, at the end of the iteration).
        Value mInit = linalg::CopyOp::create(bb, l, m, kb2.empty({rows}, pb.t))
                          .getResult(0);
        Value mNew;
        Value s =
            logitsTile(kb2, pb, qt, kt, rows, cols, i0, j0, bh, mInit, &mNew);
        // α = exp(m − m'); ℓ ← α·ℓ.
        Value alpha = kb2.generic(
            ValueRange{m, mNew}, kb2.empty({rows}, pb.t),
            {map(ctx, 1, {r}), map(ctx, 1, {r}), map(ctx, 1, {r})}, {kPar},
            [&](OpBuilder &b, Location loc, ValueRange a) {
              Value ms = finiteOrZero(b, loc, a[1]);
              linalg::YieldOp::create(
                  b, loc,
                  safeExp(b, loc, arith::SubFOp::create(b, loc, a[0], ms)));
            });
        Value scaledSum = kb2.generic(
            alpha, sum, {map(ctx, 1, {r}), map(ctx, 1, {r})}, {kPar},
            [&](OpBuilder &b, Location loc, ValueRange a) {
              linalg::YieldOp::create(
                  b, loc,
                  arith::MulFOp::create(b, loc, a[0], a[1]).getResult());
            });
        // P = exp(S − m') in place of S, and ℓ' = α·ℓ + Σ_c P, in one pass.
        auto expSum = kb2.genericOp(
            mNew, ValueRange{s, scaledSum},
            {map(ctx, 2, {r}), map(ctx, 2, {r, c}), map(ctx, 2, {r})},
            {kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
              Value ms = finiteOrZero(b, loc, a[0]);
              Value e =
                  safeExp(b, loc, arith::SubFOp::create(b, loc, a[1], ms));
              linalg::YieldOp::create(
                  b, loc, ValueRange{e, reduceAdd(b, loc, e, a[2])});
            });
        Value p = expSum.getResult(0), sumNew = expSum.getResult(1);
        // acc' = α·acc + P·V
        Value accScaled = kb2.generic(
            alpha, acc, {map(ctx, 2, {r}), map(ctx, 2, {r, c})}, {kPar, kPar},
            [&](OpBuilder &b, Location loc, ValueRange a) {
              linalg::YieldOp::create(
                  b, loc,
                  arith::MulFOp::create(b, loc, a[0], a[1]).getResult());
            });
        Value accNew = kb2.matmul(
            p, vt, accScaled,
            {map(ctx, 3, {r, e2}), map(ctx, 3, {e2, c}), map(ctx, 3, {r, c})});
        Value mOut = linalg::CopyOp::create(bb, l, mNew, m).getResult(0);
        scf::YieldOp::create(bb, l, ValueRange{mOut, sumNew, accNew});
      });
  Value m = loop.getResult(0), sum = loop.getResult(1), acc = loop.getResult(2);
  // O = acc / ℓ (0 on empty rows), rounded once to the output type.
  Value oTile = kb.generic(
      ValueRange{acc, sum}, kb.empty({rows, b.getIndexAttr(pb.dv)}, outType),
      {map(ctx, 2, {r, c}), map(ctx, 2, {r}), map(ctx, 2, {r, c})},
      {kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
        Value zero =
            arith::ConstantOp::create(b, loc, pb.t, b.getFloatAttr(pb.t, 0.0));
        Value empty = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                            a[1], zero);
        Value q = arith::DivFOp::create(b, loc, a[0], a[1]);
        Value o = arith::SelectOp::create(b, loc, empty, zero, q);
        if (outType != pb.t)
          o = arith::TruncFOp::create(b, loc, outType, o);
        linalg::YieldOp::create(b, loc, o);
      });
  // lse = m + log ℓ (−∞ on empty rows).
  Value lseTile = kb.generic(
      ValueRange{m, sum}, kb.empty({rows}, pb.t),
      {map(ctx, 1, {r}), map(ctx, 1, {r}), map(ctx, 1, {r})}, {kPar},
      [&](OpBuilder &b, Location loc, ValueRange a) {
        Value zero =
            arith::ConstantOp::create(b, loc, pb.t, b.getFloatAttr(pb.t, 0.0));
        Value ninf = arith::ConstantOp::create(
            b, loc, pb.t,
            b.getFloatAttr(pb.t, -std::numeric_limits<double>::infinity()));
        Value empty = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                            a[1], zero);
        Value lse = arith::AddFOp::create(b, loc, a[0],
                                          math::LogOp::create(b, loc, a[1]));
        linalg::YieldOp::create(
            b, loc,
            arith::SelectOp::create(b, loc, empty, ninf, lse).getResult());
      });
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  tensor::ParallelInsertSliceOp::create(
      b, loc, oTile, forall.getRegionIterArgs()[0],
      ArrayRef<OpFoldResult>{bh, i0, zero},
      ArrayRef<OpFoldResult>{one, rows, b.getIndexAttr(pb.dv)},
      ArrayRef<OpFoldResult>{one, one, one});
  tensor::ParallelInsertSliceOp::create(
      b, loc, lseTile, forall.getRegionIterArgs()[1],
      ArrayRef<OpFoldResult>{bh, i0}, ArrayRef<OpFoldResult>{one, rows},
      ArrayRef<OpFoldResult>{one, one});
  return {forall.getResult(0), forall.getResult(1)};
}

/// Backward, parallel over key/value heads. Inputs in T: qs = s·q̃, k̃, v, dO,
/// lse, Δ = rowsum(dO∘O). Returns dq̃ (already multiplied by s), dk̃, dv in T
/// and the per-unit partial d-bias ([BHk, L] or [BHk, G, L]) when biased.
struct GradResults {
  Value dq, dk, dv, dbiasPartial;
};
GradResults buildBackward(KB &kb, const Problem &pb, double scale, Value qs,
                          Value k, Value v, Value dO, Value lse, Value delta) {
  MLIRContext *ctx = kb.b.getContext();
  OpBuilder &b = kb.b;
  Location loc = kb.loc;
  int64_t len = std::max<int64_t>(pb.n + pb.m - 1, 0);
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  auto ia = [&](int64_t v) -> OpFoldResult { return b.getIndexAttr(v); };

  // Each unit (one kv head of one batch entry) owns G query heads.
  Value dqInit = kb.empty({ia(pb.bhq), ia(pb.n), ia(pb.d)}, pb.t);
  Value dkInit = kb.empty({ia(pb.bhk), ia(pb.m), ia(pb.d)}, pb.t);
  Value dvInit = kb.empty({ia(pb.bhk), ia(pb.m), ia(pb.dv)}, pb.t);
  SmallVector<Value> outs = {dqInit, dkInit, dvInit};
  SmallVector<OpFoldResult> dbShape;
  if (pb.bias) {
    dbShape = {ia(pb.bhk)};
    if (pb.biasPerHead)
      dbShape.push_back(ia(pb.group));
    dbShape.push_back(ia(len));
    outs.push_back(kb.empty(dbShape, pb.t));
  }
  auto forall = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{ia(pb.bhk)}, outs, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  Value u = forall.getInductionVar(0);
  // First query head of this unit: (u / Hk)·Hq + (u mod Hk)·G.
  Value bh0 = kb.add(kb.mul(kb.div(u, kb.idx(pb.hk)), kb.idx(pb.hq)),
                     kb.mul(kb.rem(u, kb.idx(pb.hk)), kb.idx(pb.group)));
  Value dqg = kb.filled({ia(pb.group), ia(pb.n), ia(pb.d)}, pb.t, 0.0);
  Value dku = kb.empty({ia(pb.m), ia(pb.d)}, pb.t);
  Value dvu = kb.empty({ia(pb.m), ia(pb.dv)}, pb.t);
  SmallVector<Value> unitInits = {dqg, dku, dvu};
  if (pb.bias) {
    SmallVector<OpFoldResult> shape(dbShape.begin() + 1, dbShape.end());
    unitInits.push_back(kb.filled(shape, pb.t, 0.0));
  }

  AffineExpr r = getAffineDimExpr(0, ctx), c = getAffineDimExpr(1, ctx),
             e2 = getAffineDimExpr(2, ctx);
  auto keyLoop = scf::ForOp::create(
      b, loc, kb.idx(0), kb.idx(pb.m), kb.idx(pb.blockK), unitInits,
      [&](OpBuilder &bb, Location l, Value j0, ValueRange it) {
        KB kk{bb, l};
        Value cols = kk.min(kk.idx(pb.blockK), kk.sub(kk.idx(pb.m), j0));
        Value kt = kk.slice(k, {u, j0, zero}, {one, cols, ia(pb.d)}, 1);
        Value vt = kk.slice(v, {u, j0, zero}, {one, cols, ia(pb.dv)}, 1);
        Value dkb = kk.filled({cols, ia(pb.d)}, pb.t, 0.0);
        Value dvb = kk.filled({cols, ia(pb.dv)}, pb.t, 0.0);
        // First query row that sees key j0: i + (M − N) ≥ j0.
        Value iStart = kk.idx(0);
        if (pb.causal)
          iStart = kk.min(kk.max(kk.sub(j0, kk.idx(pb.shift())), kk.idx(0)),
                          kk.idx(pb.n));
        SmallVector<Value> headInits = {it[0], dkb, dvb};
        if (pb.bias)
          headInits.push_back(it[3]);
        auto headLoop = scf::ForOp::create(
            bb, l, kk.idx(0), kk.idx(pb.group), kk.idx(1), headInits,
            [&](OpBuilder &hb, Location hl, Value g, ValueRange hit) {
              KB kh{hb, hl};
              Value bh = kh.add(bh0, g);
              auto qLoop = scf::ForOp::create(
                  hb, hl, iStart, kh.idx(pb.n), kh.idx(pb.blockQ), hit,
                  [&](OpBuilder &qb, Location ql, Value i0, ValueRange qit) {
                    KB kq{qb, ql};
                    Value dqAll = qit[0], dkAcc = qit[1], dvAcc = qit[2];
                    Value rows =
                        kq.min(kq.idx(pb.blockQ), kq.sub(kq.idx(pb.n), i0));
                    Value qt =
                        kq.slice(qs, {bh, i0, zero}, {one, rows, ia(pb.d)}, 1);
                    Value dot =
                        kq.slice(dO, {bh, i0, zero}, {one, rows, ia(pb.dv)}, 1);
                    Value lt = kq.slice(lse, {bh, i0}, {one, rows}, 1);
                    Value dt = kq.slice(delta, {bh, i0}, {one, rows}, 1);
                    Value s =
                        logitsTile(kq, pb, qt, kt, rows, cols, i0, j0, bh);
                    // P = exp(S − lse) (0 on empty rows / masked entries).
                    Value p = kq.generic(
                        lt, s, {map(ctx, 2, {r}), map(ctx, 2, {r, c})},
                        {kPar, kPar},
                        [&](OpBuilder &b, Location loc, ValueRange a) {
                          Value ls = finiteOrZero(b, loc, a[0]);
                          linalg::YieldOp::create(
                              b, loc,
                              safeExp(b, loc,
                                      arith::SubFOp::create(b, loc, a[1], ls)));
                        });
                    // dV += Pᵀ·dO   over (c, d, r)
                    Value dvNew =
                        kq.matmul(p, dot, dvAcc,
                                  {map(ctx, 3, {e2, r}), map(ctx, 3, {e2, c}),
                                   map(ctx, 3, {r, c})});
                    // dP = dO·Vᵀ   over (r, c, d)
                    Value dp = kq.filled({rows, cols}, pb.t, 0.0);
                    dp = kq.matmul(dot, vt, dp,
                                   {map(ctx, 3, {r, e2}), map(ctx, 3, {c, e2}),
                                    map(ctx, 3, {r, c})});
                    // dS = P∘(dP − Δ)
                    Value ds = kq.generic(
                        ValueRange{p, dt}, dp,
                        {map(ctx, 2, {r, c}), map(ctx, 2, {r}),
                         map(ctx, 2, {r, c})},
                        {kPar, kPar},
                        [&](OpBuilder &b, Location loc, ValueRange a) {
                          Value diff =
                              arith::SubFOp::create(b, loc, a[2], a[1]);
                          linalg::YieldOp::create(
                              b, loc,
                              arith::MulFOp::create(b, loc, a[0], diff)
                                  .getResult());
                        });
                    // dK += dSᵀ·Qs  over (c, d, r)
                    Value dkNew =
                        kq.matmul(ds, qt, dkAcc,
                                  {map(ctx, 3, {e2, r}), map(ctx, 3, {e2, c}),
                                   map(ctx, 3, {r, c})});
                    // dQ[g, i0:] += dS·K  over (r, d, c)
                    Value dqt = kq.slice(dqAll, {g, i0, zero},
                                         {one, rows, ia(pb.d)}, 1);
                    dqt = kq.matmul(ds, kt, dqt,
                                    {map(ctx, 3, {r, e2}), map(ctx, 3, {e2, c}),
                                     map(ctx, 3, {r, c})});
                    Value dqNew = tensor::InsertSliceOp::create(
                        qb, ql, dqt, dqAll, ArrayRef<OpFoldResult>{g, i0, zero},
                        ArrayRef<OpFoldResult>{one, rows, ia(pb.d)},
                        ArrayRef<OpFoldResult>{one, one, one});
                    SmallVector<Value> yields = {dqNew, dkNew, dvNew};
                    if (pb.bias) {
                      // d-bias[δ + M − 1] += dS[r, c] with δ = i − j: scalar
                      // loops (not on the hot path of the exact method).
                      Value db = qit[3];
                      auto rl = scf::ForOp::create(
                          qb, ql, kq.idx(0), rows, kq.idx(1), ValueRange{db},
                          [&](OpBuilder &rb, Location rl, Value ri,
                              ValueRange rit) {
                            auto cl = scf::ForOp::create(
                                rb, rl,
                                arith::ConstantIndexOp::create(rb, rl, 0), cols,
                                arith::ConstantIndexOp::create(rb, rl, 1), rit,
                                [&](OpBuilder &cb, Location cl, Value ci,
                                    ValueRange cit) {
                                  Value dsv = tensor::ExtractOp::create(
                                      cb, cl, ds, ValueRange{ri, ci});
                                  Value i =
                                      arith::AddIOp::create(cb, cl, ri, i0);
                                  Value j =
                                      arith::AddIOp::create(cb, cl, ci, j0);
                                  Value at = arith::AddIOp::create(
                                      cb, cl,
                                      arith::SubIOp::create(cb, cl, i, j),
                                      arith::ConstantIndexOp::create(cb, cl,
                                                                     pb.m - 1));
                                  SmallVector<Value> idx;
                                  if (pb.biasPerHead)
                                    idx.push_back(g);
                                  idx.push_back(at);
                                  Value old = tensor::ExtractOp::create(
                                      cb, cl, cit[0], idx);
                                  Value nv =
                                      arith::AddFOp::create(cb, cl, old, dsv);
                                  Value ins = tensor::InsertOp::create(
                                      cb, cl, nv, cit[0], idx);
                                  scf::YieldOp::create(cb, cl, ins);
                                });
                            scf::YieldOp::create(rb, rl, cl.getResult(0));
                          });
                      yields.push_back(rl.getResult(0));
                    }
                    scf::YieldOp::create(qb, ql, yields);
                  });
              scf::YieldOp::create(hb, hl, qLoop.getResults());
            });
        Value dkuNew = kk.insert(headLoop.getResult(1), it[1], {j0, zero},
                                 {cols, ia(pb.d)});
        Value dvuNew = kk.insert(headLoop.getResult(2), it[2], {j0, zero},
                                 {cols, ia(pb.dv)});
        SmallVector<Value> yields = {headLoop.getResult(0), dkuNew, dvuNew};
        if (pb.bias)
          yields.push_back(headLoop.getResult(3));
        scf::YieldOp::create(bb, l, yields);
      });

  b.setInsertionPointToStart(forall.getTerminator().getBody());
  auto iter = forall.getRegionIterArgs();
  tensor::ParallelInsertSliceOp::create(
      b, loc, keyLoop.getResult(0), iter[0],
      ArrayRef<OpFoldResult>{bh0, zero, zero},
      ArrayRef<OpFoldResult>{ia(pb.group), ia(pb.n), ia(pb.d)},
      ArrayRef<OpFoldResult>{one, one, one});
  tensor::ParallelInsertSliceOp::create(
      b, loc, keyLoop.getResult(1), iter[1],
      ArrayRef<OpFoldResult>{u, zero, zero},
      ArrayRef<OpFoldResult>{one, ia(pb.m), ia(pb.d)},
      ArrayRef<OpFoldResult>{one, one, one});
  tensor::ParallelInsertSliceOp::create(
      b, loc, keyLoop.getResult(2), iter[2],
      ArrayRef<OpFoldResult>{u, zero, zero},
      ArrayRef<OpFoldResult>{one, ia(pb.m), ia(pb.dv)},
      ArrayRef<OpFoldResult>{one, one, one});
  if (pb.bias) {
    SmallVector<OpFoldResult> offs(dbShape.size(), zero),
        sizes = dbShape, strides(dbShape.size(), one);
    offs[0] = u;
    sizes[0] = one;
    tensor::ParallelInsertSliceOp::create(b, loc, keyLoop.getResult(3), iter[3],
                                          offs, sizes, strides);
  }
  b.setInsertionPointAfter(forall);
  GradResults res;
  // dq = s·Σ dS·K.
  res.dq = convert(kb, forall.getResult(0), pb.t, scale);
  res.dk = forall.getResult(1);
  res.dv = forall.getResult(2);
  if (pb.bias)
    res.dbiasPartial = forall.getResult(3);
  return res;
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

bool allStatic(Operation *op) {
  for (Type t : op->getOperandTypes())
    if (auto s = dyn_cast<ShapedType>(t); s && !s.hasStaticShape())
      return false;
  for (Type t : op->getResultTypes())
    if (auto s = dyn_cast<ShapedType>(t); s && !s.hasStaticShape())
      return false;
  return true;
}

struct LowerRotary : OpRewritePattern<RotaryOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RotaryOp op,
                                PatternRewriter &rewriter) const override {
    if (!allStatic(op))
      return rewriter.notifyMatchFailure(op, "dynamic shapes");
    KB kb{rewriter, op.getLoc()};
    RankedTensorType type = op.getInput().getType();
    Type e = type.getElementType();
    Type t = getAccumulationType(e);
    Value x = op.getInput();
    if (type.getRank() == 2) {
      auto t3 =
          RankedTensorType::get({1, type.getDimSize(0), type.getDimSize(1)}, e);
      x = tensor::ExpandShapeOp::create(
          rewriter, op.getLoc(), t3, x,
          ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    } else {
      x = kb.collapseLeading(x, 2);
    }
    x = convert(kb, x, t);
    RotationMode mode = op.getInverse()     ? RotationMode::Inverse
                        : op.getTranspose() ? RotationMode::Transpose
                                            : RotationMode::Forward;
    Value y = buildRotation(kb, x, op.getRopeOrDefault(), op.getPositions(),
                            /*offset=*/0, mode,
                            op.getSide().value_or(RopeSide::Query));
    y = convert(kb, y, e);
    if (type.getRank() == 2)
      y = tensor::CollapseShapeOp::create(
          rewriter, op.getLoc(), y,
          ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    else
      y = kb.expandLeading(y, type, 2);
    rewriter.replaceOp(op, y);
    return success();
  }
};

/// A tensor of `type` filled with `value`.
Value constantTensor(KB &kb, RankedTensorType type, double value) {
  SmallVector<OpFoldResult> shape;
  for (int64_t d : type.getShape())
    shape.push_back(kb.b.getIndexAttr(d));
  return kb.filled(shape, type.getElementType(), value);
}

/// N = 0, M = 0 or no head: every result is a constant.
template <typename OpTy> bool isEmptyProblem(OpTy op) {
  auto q = op.getQuery().getType(), k = op.getKey().getType();
  int64_t rank = q.getRank();
  return (q.getNumElements() == 0 && q.getDimSize(rank - 1) != 0) ||
         k.getDimSize(rank - 2) == 0;
}

/// Static shapes; a zero head dimension with keys present is not lowered
/// (its slices would be degenerate) — reported by the pass.
template <typename OpTy>
LogicalResult checkSizes(OpTy op, PatternRewriter &rewriter) {
  if (!allStatic(op))
    return rewriter.notifyMatchFailure(op, "dynamic shapes");
  auto q = op.getQuery().getType(), v = op.getValue().getType();
  if (isEmptyProblem(op))
    return success();
  if (q.getShape().back() == 0 || v.getShape().back() == 0)
    return rewriter.notifyMatchFailure(op, "zero head dimension");
  return success();
}

/// The parts of attention and attention_grad that are the same: collapse,
/// convert to T, rotate, scale q.
struct Prepared {
  Problem pb;
  Value qs, k, v; // [BHq, N, D] (scaled), [BHk, M, D], [BHk, M, Dv] in T
  double scale;
};

template <typename OpTy>
FailureOr<Prepared> prepare(OpTy op, PatternRewriter &rewriter, int64_t blockQ,
                            int64_t blockK) {
  if (!allStatic(op))
    return rewriter.notifyMatchFailure(op, "dynamic shapes");
  KB kb{rewriter, op.getLoc()};
  RankedTensorType qType = op.getQuery().getType();
  RankedTensorType kType = op.getKey().getType();
  RankedTensorType vType = op.getValue().getType();
  int64_t rank = qType.getRank();
  Prepared pr;
  Problem &pb = pr.pb;
  pb.t = getAccumulationType(qType.getElementType());
  pb.hq = qType.getDimSize(rank - 3);
  pb.hk = kType.getDimSize(rank - 3);
  pb.group = pb.hq / pb.hk;
  pb.n = qType.getDimSize(rank - 2);
  pb.m = kType.getDimSize(rank - 2);
  pb.d = qType.getDimSize(rank - 1);
  pb.dv = vType.getDimSize(rank - 1);
  int64_t batch = 1;
  for (int64_t i = 0; i < rank - 3; ++i)
    batch *= qType.getDimSize(i);
  pb.bhq = batch * pb.hq;
  pb.bhk = batch * pb.hk;
  pb.causal = op.getCausal();
  pb.blockQ = blockQ;
  pb.blockK = blockK;
  pb.bias = Value();
  pb.biasPerHead = false;
  if (Value bias = op.getBias()) {
    pb.bias = convert(kb, bias, pb.t);
    pb.biasPerHead = cast<RankedTensorType>(bias.getType()).getRank() == 2;
  }
  pr.scale = op.getScaleOrDefault();
  Value q = convert(kb, kb.collapseLeading(op.getQuery(), 2), pb.t);
  Value k = convert(kb, kb.collapseLeading(op.getKey(), 2), pb.t);
  if (RopeAttr rope = op.getRopeAttr()) {
    auto [qRope, kRope] = getAttentionSideRopes(rope, pb.n, pb.m);
    q = buildRotation(kb, q, qRope, Value(), 0, RotationMode::Forward,
                      RopeSide::Query);
    k = buildRotation(kb, k, kRope, Value(), 0, RotationMode::Forward,
                      RopeSide::Key);
  }
  pr.qs = convert(kb, q, pb.t, pr.scale);
  pr.k = k;
  pr.v = convert(kb, kb.collapseLeading(op.getValue(), 2), pb.t);
  return pr;
}

struct LowerAttention : OpRewritePattern<AttentionOp> {
  LowerAttention(MLIRContext *ctx, int64_t bq, int64_t bk)
      : OpRewritePattern(ctx), blockQ(bq), blockK(bk) {}
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (failed(checkSizes(op, rewriter)))
      return failure();
    KB kb{rewriter, op.getLoc()};
    RankedTensorType oType = op.getOutput().getType();
    if (isEmptyProblem(op)) {
      // No key, or nothing to compute: o = 0, lse = −∞ (docs/Spec.md).
      SmallVector<Value> results = {constantTensor(kb, oType, 0.0)};
      if (Value l = op.getLogsumexp())
        results.push_back(
            constantTensor(kb, cast<RankedTensorType>(l.getType()),
                           -std::numeric_limits<double>::infinity()));
      if (Value c = op.getCertificate())
        results.push_back(exactCertificate(kb, c));
      rewriter.replaceOp(op, results);
      return success();
    }
    FailureOr<Prepared> pr = prepare(op, rewriter, blockQ, blockK);
    if (failed(pr))
      return failure();
    auto [o, lse] =
        buildForward(kb, pr->pb, pr->qs, pr->k, pr->v, oType.getElementType());
    SmallVector<Value> results = {kb.expandLeading(o, oType, 2)};
    if (Value l = op.getLogsumexp())
      results.push_back(
          kb.expandLeading(lse, cast<RankedTensorType>(l.getType()), 1));
    if (Value c = op.getCertificate())
      results.push_back(exactCertificate(kb, c));
    rewriter.replaceOp(op, results);
    return success();
  }

  /// The exact method's certificate: [NaN (β̂ not evaluated), 0 (degree:
  /// exact), 0, 0, 0] (docs/Spec.md §11).
  static Value exactCertificate(KB &kb, Value certificate) {
    auto type = cast<RankedTensorType>(certificate.getType());
    SmallVector<double> values(type.getNumElements(), 0.0);
    values[0] = std::numeric_limits<double>::quiet_NaN();
    return arith::ConstantOp::create(
        kb.b, kb.loc, DenseElementsAttr::get(type, ArrayRef<double>(values)));
  }
  int64_t blockQ, blockK;
};

struct LowerAttentionGrad : OpRewritePattern<AttentionGradOp> {
  LowerAttentionGrad(MLIRContext *ctx, int64_t bq, int64_t bk)
      : OpRewritePattern(ctx), blockQ(bq), blockK(bk) {}
  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &rewriter) const override {
    if (failed(checkSizes(op, rewriter)))
      return failure();
    if (isEmptyProblem(op)) {
      // Every gradient of an empty problem is 0 (no visible key anywhere).
      KB kb{rewriter, op.getLoc()};
      SmallVector<Value> results;
      for (Value r : op->getResults())
        results.push_back(
            constantTensor(kb, cast<RankedTensorType>(r.getType()), 0.0));
      rewriter.replaceOp(op, results);
      return success();
    }
    FailureOr<Prepared> pr = prepare(op, rewriter, blockQ, blockK);
    if (failed(pr))
      return failure();
    const Problem &pb = pr->pb;
    KB kb{rewriter, op.getLoc()};
    MLIRContext *ctx = rewriter.getContext();
    Value o = convert(kb, kb.collapseLeading(op.getOutput(), 2), pb.t);
    Value dO = convert(kb, kb.collapseLeading(op.getGradOutput(), 2), pb.t);
    Value lse;
    if (Value l = op.getLogsumexp())
      lse = kb.collapseLeading(l, 1);
    else
      lse = buildForward(kb, pb, pr->qs, pr->k, pr->v, pb.t).second;
    // Δ_i = Σ_c dO_ic·O_ic
    AffineExpr a0 = getAffineDimExpr(0, ctx), a1 = getAffineDimExpr(1, ctx),
               a2 = getAffineDimExpr(2, ctx);
    Value delta = kb.generic(
        ValueRange{dO, o},
        kb.filled({rewriter.getIndexAttr(pb.bhq), rewriter.getIndexAttr(pb.n)},
                  pb.t, 0.0),
        {map(ctx, 3, {a0, a1, a2}), map(ctx, 3, {a0, a1, a2}),
         map(ctx, 3, {a0, a1})},
        {kPar, kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value prod = arith::MulFOp::create(b, loc, a[0], a[1]);
          linalg::YieldOp::create(
              b, loc, arith::AddFOp::create(b, loc, prod, a[2]).getResult());
        });
    GradResults g =
        buildBackward(kb, pb, pr->scale, pr->qs, pr->k, pr->v, dO, lse, delta);
    Value dq = g.dq, dk = g.dk;
    if (RopeAttr rope = op.getRopeAttr()) {
      // q~ = A q ⇒ dq = Aᵀ dq~ (= R(−p) dq~ without xPos).
      auto [qRope, kRope] = getAttentionSideRopes(rope, pb.n, pb.m);
      dq = buildRotation(kb, dq, qRope, Value(), 0, RotationMode::Transpose,
                         RopeSide::Query);
      dk = buildRotation(kb, dk, kRope, Value(), 0, RotationMode::Transpose,
                         RopeSide::Key);
    }
    auto finish = [&](Value x, Value like) {
      auto type = cast<RankedTensorType>(like.getType());
      return kb.expandLeading(convert(kb, x, type.getElementType()), type, 2);
    };
    SmallVector<Value> results = {finish(dq, op.getGradQuery()),
                                  finish(dk, op.getGradKey()),
                                  finish(g.dv, op.getGradValue())};
    if (Value bias = op.getBias()) {
      // Sum the per-unit partials: shared [BHk, L] → [L]; per head
      // [B·Hk, G, L] = [B, Hq, L] → [Hq, L].
      auto bType = cast<RankedTensorType>(bias.getType());
      int64_t len = bType.getShape().back();
      Value part = g.dbiasPartial;
      Value db;
      if (!pb.biasPerHead) {
        db = kb.generic(
            part, kb.filled({rewriter.getIndexAttr(len)}, pb.t, 0.0),
            {map(ctx, 2, {a0, a1}), map(ctx, 2, {a1})}, {kRed, kPar},
            [&](OpBuilder &b, Location loc, ValueRange a) {
              linalg::YieldOp::create(
                  b, loc,
                  arith::AddFOp::create(b, loc, a[0], a[1]).getResult());
            });
      } else {
        int64_t batch = pb.bhk / pb.hk;
        auto t3 = RankedTensorType::get({batch, pb.hq, len}, pb.t);
        Value flat = tensor::CollapseShapeOp::create(
            rewriter, op.getLoc(), part,
            ArrayRef<ReassociationIndices>{{0, 1}, {2}});
        Value b3 = tensor::ExpandShapeOp::create(
            rewriter, op.getLoc(), t3, flat,
            ArrayRef<ReassociationIndices>{{0, 1}, {2}});
        db = kb.generic(
            b3,
            kb.filled(
                {rewriter.getIndexAttr(pb.hq), rewriter.getIndexAttr(len)},
                pb.t, 0.0),
            {map(ctx, 3, {a0, a1, a2}), map(ctx, 3, {a1, a2})},
            {kRed, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
              linalg::YieldOp::create(
                  b, loc,
                  arith::AddFOp::create(b, loc, a[0], a[1]).getResult());
            });
      }
      results.push_back(convert(kb, db, bType.getElementType()));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
  int64_t blockQ, blockK;
};

struct ConvertRopeAttnToLinalgPass
    : public ropeattn::impl::ConvertRopeAttnToLinalgBase<
          ConvertRopeAttnToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    if (blockQ <= 0 || blockK <= 0) {
      getOperation()->emitError("convert-ropeattn-to-linalg: block-q and "
                                "block-k must be positive");
      return signalPassFailure();
    }
    if (vectorBits != 0 &&
        (vectorBits < 64 || (vectorBits & (vectorBits - 1)) != 0)) {
      getOperation()->emitError("convert-ropeattn-to-linalg: vector-bits "
                                "must be 0 or a power of two >= 64, got ")
          << std::to_string(vectorBits);
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<LowerRotary>(&getContext());
    patterns.add<LowerAttention, LowerAttentionGrad>(&getContext(), blockQ,
                                                     blockK);
    populatePolyFeaturesLoweringPatterns(patterns, vectorBits);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
    // What is left cannot be lowered (yet): say so, precisely.
    WalkResult res = getOperation()->walk([&](Operation *op) {
      if (!isa_and_nonnull<RopeAttnDialect>(op->getDialect()))
        return WalkResult::advance();
      if (isa<GeneralAttentionOp, GeneralAttentionGradOp>(op))
        op->emitError("convert-ropeattn-to-linalg: '")
            << op->getName()
            << "' is not lowered by this pass: run "
               "ropeattn-lower-general-attention first (rope-lower-to-cpu "
               "does)";
      else if (!allStatic(op))
        op->emitError("convert-ropeattn-to-linalg: cannot lower '")
            << op->getName()
            << "' with dynamic shapes yet; all sizes must be static";
      else
        op->emitError("convert-ropeattn-to-linalg: cannot lower '")
            << op->getName()
            << "' with a zero head dimension (D = 0 or Dv = 0) and keys";
      return WalkResult::interrupt();
    });
    if (res.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
