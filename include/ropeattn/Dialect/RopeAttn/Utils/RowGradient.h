//===- RowGradient.h - softmax-backward row terms -----------------*- C++
//-*-===//
//
// Part of the ropeattn project. The per-row terms that the Toeplitz backward
// passes (ropeattn-expand-toeplitz-attention for relative bias,
// ropeattn-expand-general-attention for the general form; docs/Spec.md
// §15.1, §16.5) both need before their transposed products.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_UTILS_ROWGRADIENT_H
#define ROPEATTN_DIALECT_ROPEATTN_UTILS_ROWGRADIENT_H

#include "ropeattn/Dialect/RopeAttn/Utils/TensorBuilder.h"

#include "llvm/ADT/STLFunctionalExtras.h"

namespace mlir {
namespace ropeattn {

/// For dO, o : [BHq, N, Dv] and nm : [BHq, N, Dv + 1] (the forward's
/// numerators with the normalizer Ẑ in the last column), D_i = dO_i·o_i and
///
///   Gs[h, i, c] = [dO_i | −D_i]_c / Ẑ_i        c < Dv + 1,
///
/// 0 on rows where Ẑ_i = 0 or `invisible(i)` (an i1; null: no such rows)
/// holds: rows that see no key have a zero gradient.
inline Value buildRowGradient(
    TensorBuilder &bb, Value nm, Value dO, Value o,
    llvm::function_ref<Value(OpBuilder &, Location, Value)> invisible) {
  using utils::IteratorType;
  constexpr IteratorType kPar = IteratorType::parallel;
  constexpr IteratorType kRed = IteratorType::reduction;
  OpBuilder &b = bb.b;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  auto amap = &TensorBuilder::dimMap;
  auto type = cast<RankedTensorType>(dO.getType());
  Type t = type.getElementType();
  int64_t bhq = type.getDimSize(0), n = type.getDimSize(1),
          dv = type.getDimSize(2);
  // D_i = dO_i·o_i.
  Value dd = bb.generic(
      ValueRange{dO, o}, bb.filled({ia(bhq), ia(n)}, t, 0.0),
      {amap(ctx, 3, {0, 1, 2}), amap(ctx, 3, {0, 1, 2}), amap(ctx, 3, {0, 1})},
      {kPar, kPar, kRed}, [](OpBuilder &nb, Location l, ValueRange a) {
        Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, p, a[2]).getResult());
      });
  AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx);
  return bb.generic(
      ValueRange{nm, dd}, bb.empty({ia(bhq), ia(n), ia(dv + 1)}, t),
      {AffineMap::get(3, 0, {d0, d1, getAffineConstantExpr(dv, ctx)}, ctx),
       amap(ctx, 3, {0, 1}), amap(ctx, 3, {0, 1, 2})},
      {kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
        TensorBuilder ib{nb, l};
        Value h = linalg::IndexOp::create(nb, l, 0);
        Value i = linalg::IndexOp::create(nb, l, 1);
        Value c = linalg::IndexOp::create(nb, l, 2);
        Value isLast = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, c,
                                             ib.idx(dv));
        Value cc = arith::SelectOp::create(nb, l, isLast, ib.idx(0), c);
        Value dov = tensor::ExtractOp::create(nb, l, dO, ValueRange{h, i, cc});
        Value num = arith::SelectOp::create(
            nb, l, isLast, arith::NegFOp::create(nb, l, a[1]), dov);
        Value qv = arith::DivFOp::create(nb, l, num, a[0]);
        Value skip = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OEQ,
                                           a[0], ib.flt(t, 0.0));
        if (Value hidden = invisible(nb, l, i))
          skip = arith::OrIOp::create(nb, l, skip, hidden);
        linalg::YieldOp::create(
            nb, l,
            arith::SelectOp::create(nb, l, skip, ib.flt(t, 0.0), qv)
                .getResult());
      });
}

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_UTILS_ROWGRADIENT_H
