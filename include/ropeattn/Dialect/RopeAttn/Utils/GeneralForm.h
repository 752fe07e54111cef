//===- GeneralForm.h - helpers for ropeattn.general_attention ---*- C++ -*-===//
//
// Part of the ropeattn project. Shared by the exact lowering
// (ropeattn-lower-general-attention) and the monomial/Toeplitz rewrite
// (ropeattn-expand-general-attention) of ropeattn.general_attention
// (docs/Spec.md §8, §16).
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_UTILS_GENERALFORM_H
#define ROPEATTN_DIALECT_ROPEATTN_UTILS_GENERALFORM_H

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/Dialect/RopeAttn/Utils/TensorBuilder.h"

#include <functional>
#include <optional>

namespace mlir {
namespace ropeattn {
namespace general {

/// The sizes of a general_attention op with static shapes (B.. and H folded:
/// bhq = B·Hq rows of query heads).
struct Shape {
  int64_t batch = 1, hq = 0, hk = 0, group = 1, n = 0, m = 0, d = 0, dv = 0;
  int64_t bhq = 0, bhk = 0, len = 0, s = 0;
  bool causal = false, perHead = false;
  double scale = 1.0;
  Type t;
  SmallVector<int64_t> as, bs; // support pairs (a_t, b_t)
};

/// The shape of `op` (general_attention or general_attention_grad), or
/// nullopt when an operand has a dynamic shape.
template <typename OpTy> inline std::optional<Shape> getShape(OpTy op) {
  RankedTensorType qT = op.getQuery().getType(), kT = op.getKey().getType(),
                   vT = op.getValue().getType(), wT = op.getWeights().getType();
  for (Value operand : op->getOperands())
    if (!cast<RankedTensorType>(operand.getType()).hasStaticShape())
      return std::nullopt;
  Shape sh;
  int64_t rank = qT.getRank();
  sh.hq = qT.getDimSize(rank - 3);
  sh.hk = kT.getDimSize(rank - 3);
  sh.group = sh.hk ? sh.hq / sh.hk : 1;
  sh.n = qT.getDimSize(rank - 2);
  sh.m = kT.getDimSize(rank - 2);
  sh.d = qT.getDimSize(rank - 1);
  sh.dv = vT.getDimSize(rank - 1);
  for (int64_t i = 0; i < rank - 3; ++i)
    sh.batch *= qT.getDimSize(i);
  sh.bhq = sh.batch * sh.hq;
  sh.bhk = sh.batch * sh.hk;
  sh.len = sh.n + sh.m - 1;
  sh.s = op.getSupportSize();
  sh.causal = op.getCausal();
  sh.perHead = wT.getRank() == 3;
  sh.scale = op.getScaleOrDefault();
  sh.t = qT.getElementType();
  ArrayRef<int64_t> sup = op.getSupport();
  for (int64_t i = 0; i < sh.s; ++i) {
    sh.as.push_back(sup[2 * i]);
    sh.bs.push_back(sup[2 * i + 1]);
  }
  return sh;
}

/// The kv head row of query head row h (of [B·Hq]): (h div Hq)·Hk +
/// (h mod Hq) div G.
inline AffineExpr kvHead(AffineExpr h, const Shape &sh) {
  return (h.floorDiv(sh.hq)) * sh.hk + (h % sh.hq).floorDiv(sh.group);
}

/// The map of the weights table for loops (h, ·, u, ·): (u) column t of a
/// shared table or (h mod Hq, u, t) per head; `u` and `t` are given as
/// expressions of the loop dims.
inline AffineMap weightsMap(MLIRContext *ctx, unsigned dims, const Shape &sh,
                            AffineExpr h, AffineExpr u, AffineExpr t) {
  if (sh.perHead)
    return AffineMap::get(dims, 0, {h % sh.hq, u, t}, ctx);
  return AffineMap::get(dims, 0, {u, t}, ctx);
}

/// x : [P, R, D] → [P, R, |S|] with column t = x[:, :, cols[t]] (the support
/// gather q̂ or k̂), in x's element type.
inline Value gatherColumns(TensorBuilder &bb, Value x, ArrayRef<int64_t> cols) {
  OpBuilder &b = bb.b;
  MLIRContext *ctx = b.getContext();
  auto xT = cast<RankedTensorType>(x.getType());
  int64_t s = cols.size();
  auto tableT = RankedTensorType::get({s}, b.getI64Type());
  Value table = arith::ConstantOp::create(b, bb.loc, tableT,
                                          DenseElementsAttr::get(tableT, cols));
  Value out = bb.empty({b.getIndexAttr(xT.getDimSize(0)),
                        b.getIndexAttr(xT.getDimSize(1)), b.getIndexAttr(s)},
                       xT.getElementType());
  return bb.generic(
      table, out,
      {TensorBuilder::dimMap(ctx, 3, {2}),
       TensorBuilder::dimMap(ctx, 3, {0, 1, 2})},
      {utils::IteratorType::parallel, utils::IteratorType::parallel,
       utils::IteratorType::parallel},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value p = linalg::IndexOp::create(nb, l, 0);
        Value r = linalg::IndexOp::create(nb, l, 1);
        Value c = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[0]);
        linalg::YieldOp::create(
            nb, l,
            tensor::ExtractOp::create(nb, l, x, ValueRange{p, r, c})
                .getResult());
      });
}

/// x : [A·B, rest..] → [A, B, rest..] (expand_shape of the leading dim), so
/// that a reduction over B has a loop dim of its own.
inline Value splitLeading(TensorBuilder &bb, Value x, int64_t a, int64_t b) {
  auto xT = cast<RankedTensorType>(x.getType());
  SmallVector<int64_t> shape = {a, b};
  llvm::append_range(shape, xT.getShape().drop_front());
  SmallVector<ReassociationIndices> re = {{0, 1}};
  for (int64_t i = 1; i < xT.getRank(); ++i)
    re.push_back({i + 1});
  return tensor::ExpandShapeOp::create(
      bb.b, bb.loc, RankedTensorType::get(shape, xT.getElementType()), x, re);
}

/// The transpose of gatherColumns, summed over groups of `group` consecutive
/// rows of src: for src : [P·G, R, |S|],
///   out[r, x, a] = Σ_{g < G} Σ_{t : cols[t] = a} src[r·G + g, x, t]
/// (out : [P, R, D], src's element type; P = heads). With G = 1 it scatters
/// dq̂ to dq; with G the GQA group it also sums the query heads of a kv head.
inline Value scatterColumns(TensorBuilder &bb, Value src,
                            ArrayRef<int64_t> cols, int64_t d, int64_t heads,
                            int64_t group) {
  OpBuilder &b = bb.b;
  MLIRContext *ctx = b.getContext();
  auto srcT = cast<RankedTensorType>(src.getType());
  Type t = srcT.getElementType();
  int64_t s = cols.size();
  Value src4 = splitLeading(bb, src, heads, group);
  auto tableT = RankedTensorType::get({s}, b.getI64Type());
  Value table = arith::ConstantOp::create(b, bb.loc, tableT,
                                          DenseElementsAttr::get(tableT, cols));
  using utils::IteratorType;
  return bb.generic(
      ValueRange{src4, table},
      bb.filled({b.getIndexAttr(heads), b.getIndexAttr(srcT.getDimSize(1)),
                 b.getIndexAttr(d)},
                t, 0.0),
      {TensorBuilder::dimMap(ctx, 5, {0, 3, 1, 4}),
       TensorBuilder::dimMap(ctx, 5, {4}),
       TensorBuilder::dimMap(ctx, 5, {0, 1, 2})},
      {IteratorType::parallel, IteratorType::parallel, IteratorType::parallel,
       IteratorType::reduction, IteratorType::reduction},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value col = linalg::IndexOp::create(nb, l, 2);
        Value c = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[1]);
        Value hit =
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, c, col);
        Value zero =
            arith::ConstantOp::create(nb, l, t, nb.getFloatAttr(t, 0.0));
        Value x = arith::SelectOp::create(nb, l, hit, a[0], zero);
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, a[2], x).getResult());
      });
}

/// All monomials m : S → ℕ with |m| = Σ_t m_t ≤ g, by degree, then
/// lexicographically (exponent of t = 0 largest first); there are
/// C(|S| + g, g) of them.
using Monomials = SmallVector<SmallVector<int64_t>>;
inline Monomials monomials(int64_t s, int64_t g) {
  Monomials out;
  SmallVector<int64_t> cur(s, 0);
  // Fills positions t.. with exactly `left` units, largest first at t.
  std::function<void(int64_t, int64_t)> rec = [&](int64_t t, int64_t left) {
    if (t == s - 1 || s == 0) {
      if (s > 0)
        cur[t] = left;
      if (s > 0 || left == 0)
        out.push_back(cur);
      return;
    }
    for (int64_t e = left; e >= 0; --e) {
      cur[t] = e;
      rec(t + 1, left - e);
    }
    cur[t] = 0;
  };
  for (int64_t deg = 0; deg <= g; ++deg)
    rec(0, deg);
  return out;
}

/// The multinomial coefficient (|m| choose m) = |m|! / Π_t m_t!.
inline double multinomial(ArrayRef<int64_t> m) {
  double r = 1.0;
  int64_t n = 0;
  for (int64_t e : m)
    for (int64_t k = 1; k <= e; ++k) {
      ++n;
      r = r * double(n) / double(k);
    }
  return r;
}

/// Elementwise conversion of a static tensor to element type `to` (extf or
/// truncf; the value itself when the types agree).
inline Value convertElements(TensorBuilder &bb, Value x, Type to) {
  auto xT = cast<RankedTensorType>(x.getType());
  Type from = xT.getElementType();
  if (from == to)
    return x;
  OpBuilder &b = bb.b;
  SmallVector<OpFoldResult> shape;
  for (int64_t s : xT.getShape())
    shape.push_back(b.getIndexAttr(s));
  unsigned rank = xT.getRank();
  AffineMap id = AffineMap::getMultiDimIdentityMap(rank, b.getContext());
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  bool widen = to.getIntOrFloatBitWidth() > from.getIntOrFloatBitWidth();
  return bb.generic(
      x, bb.empty(shape, to), {id, id}, iters,
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value r = widen ? arith::ExtFOp::create(nb, l, to, a[0]).getResult()
                        : arith::TruncFOp::create(nb, l, to, a[0]).getResult();
        linalg::YieldOp::create(nb, l, r);
      });
}

} // namespace general
} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_UTILS_GENERALFORM_H
