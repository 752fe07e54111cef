//===- TensorBuilder.h - small builder for tensor-level kernels -*- C++ -*-===//
//
// Part of the ropeattn project. Shared by the exact lowering
// (convert-ropeattn-to-linalg) and the polynomial rewrite
// (ropeattn-expand-polynomial).
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_UTILS_TENSORBUILDER_H
#define ROPEATTN_DIALECT_ROPEATTN_UTILS_TENSORBUILDER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Builders.h"

#include <cmath>
#include <limits>

namespace mlir {
namespace ropeattn {

/// A builder with the handful of helpers the ropeattn kernels need (index and
/// float constants, index arithmetic, tensors, slices, generics, matmuls).
struct TensorBuilder {
  OpBuilder &b;
  Location loc;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value flt(Type t, double v) {
    return arith::ConstantOp::create(b, loc, t, b.getFloatAttr(t, v));
  }
  Value negInf(Type t) {
    return flt(t, -std::numeric_limits<double>::infinity());
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return arith::DivUIOp::create(b, loc, x, y); }
  Value rem(Value x, Value y) { return arith::RemUIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }

  Value empty(ArrayRef<OpFoldResult> shape, Type t) {
    return tensor::EmptyOp::create(b, loc, shape, t);
  }
  Value filled(ArrayRef<OpFoldResult> shape, Type t, double v) {
    Value e = empty(shape, t);
    return linalg::FillOp::create(b, loc, flt(t, v), e).getResult(0);
  }

  /// extract_slice of `src` at `offsets` with `sizes`, dropping the leading
  /// `drop` unit dimensions.
  Value slice(Value src, ArrayRef<OpFoldResult> offsets,
              ArrayRef<OpFoldResult> sizes, unsigned drop) {
    auto srcType = cast<RankedTensorType>(src.getType());
    SmallVector<OpFoldResult> strides(offsets.size(), b.getIndexAttr(1));
    SmallVector<int64_t> staticSizes;
    for (OpFoldResult s : sizes.drop_front(drop)) {
      std::optional<int64_t> c = getConstantIntValue(s);
      staticSizes.push_back(c ? *c : ShapedType::kDynamic);
    }
    auto type = RankedTensorType::get(staticSizes, srcType.getElementType());
    return tensor::ExtractSliceOp::create(b, loc, type, src, offsets, sizes,
                                          strides);
  }
  Value insert(Value src, Value dest, ArrayRef<OpFoldResult> offsets,
               ArrayRef<OpFoldResult> sizes) {
    SmallVector<OpFoldResult> strides(offsets.size(), b.getIndexAttr(1));
    return tensor::InsertSliceOp::create(b, loc, src, dest, offsets, sizes,
                                         strides);
  }

  /// linalg.generic with one result per output.
  Value generic(ValueRange ins, ValueRange outs, ArrayRef<AffineMap> maps,
                ArrayRef<utils::IteratorType> iters,
                function_ref<void(OpBuilder &, Location, ValueRange)> body,
                unsigned result = 0) {
    auto op = linalg::GenericOp::create(b, loc, ValueRange(outs).getTypes(),
                                        ins, outs, maps, iters, body);
    return op.getResult(result);
  }
  linalg::GenericOp
  genericOp(ValueRange ins, ValueRange outs, ArrayRef<AffineMap> maps,
            ArrayRef<utils::IteratorType> iters,
            function_ref<void(OpBuilder &, Location, ValueRange)> body) {
    return linalg::GenericOp::create(b, loc, ValueRange(outs).getTypes(), ins,
                                     outs, maps, iters, body);
  }

  /// C += A·B with indexing maps over (i, j, k) chosen by the caller.
  /// (d_0, …, d_{dims−1}) → (d_res[0], …): a projection/permutation map.
  static AffineMap dimMap(MLIRContext *ctx, unsigned dims,
                          ArrayRef<unsigned> res) {
    SmallVector<AffineExpr> e;
    for (unsigned r : res)
      e.push_back(getAffineDimExpr(r, ctx));
    return AffineMap::get(dims, 0, e, ctx);
  }

  /// max over all rows of Σ_d x² for x : [P, N, D] (static P, N), as a 0-d
  /// tensor in t: the squared-norm half of the polynomial methods' run-time
  /// certificate β̂ (docs/Spec.md §11).
  Value maxSquaredNorm(Value x, Type t) {
    MLIRContext *ctx = b.getContext();
    auto type = cast<RankedTensorType>(x.getType());
    auto map = [&](unsigned dims, ArrayRef<unsigned> res) {
      return dimMap(ctx, dims, res);
    };
    using utils::IteratorType;
    // Σ_d first (per row), then max: one generic would mix max and sum.
    Value rows = filled({b.getIndexAttr(type.getDimSize(0)),
                         b.getIndexAttr(type.getDimSize(1))},
                        t, 0.0);
    Value sq =
        generic(x, rows, {map(3, {0, 1, 2}), map(3, {0, 1})},
                {IteratorType::parallel, IteratorType::parallel,
                 IteratorType::reduction},
                [&](OpBuilder &nb, Location l, ValueRange a) {
                  Value m = arith::MulFOp::create(nb, l, a[0], a[0]);
                  linalg::YieldOp::create(
                      nb, l, arith::AddFOp::create(nb, l, m, a[1]).getResult());
                });
    return generic(
        sq, filled({}, t, 0.0), {map(2, {0, 1}), AffineMap::get(2, 0, ctx)},
        {IteratorType::reduction, IteratorType::reduction},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          linalg::YieldOp::create(
              nb, l, arith::MaximumFOp::create(nb, l, a[0], a[1]).getResult());
        });
  }

  /// The polynomial methods' run-time certificate (docs/Spec.md §11), in
  /// f64: β̂ = |s|·max‖q‖·max‖k‖ ≥ max|ℓ| (Cauchy–Schwarz; RoPE is a
  /// rotation) from the squared row norms of q, k : [P, N, D] in t, enlarged
  /// by the rounding of those sums ((D + 2)·u relative each).
  Value logitBound(Value q, Value k, Type t, int64_t d, double scale) {
    Type f64 = b.getF64Type();
    auto norm = [&](Value x) -> Value {
      Value sq =
          tensor::ExtractOp::create(b, loc, maxSquaredNorm(x, t), ValueRange{});
      if (!t.isF64())
        sq = arith::ExtFOp::create(b, loc, f64, sq);
      return math::SqrtOp::create(b, loc, sq);
    };
    double u = t.isF64() ? 0x1p-53 : 0x1p-24;
    double slack = 1.0 + 2.0 * (d + 2) * u;
    return arith::MulFOp::create(
        b, loc, arith::MulFOp::create(b, loc, norm(q), norm(k)),
        flt(f64, std::abs(scale) * slack));
  }

  /// The index of the first range in `betaMax` (candidates in order of cost)
  /// with β̂ ≤ betaMax[i], else betaMax.size() (the exact method).
  Value selectCovering(Value beta, ArrayRef<double> betaMax) {
    Value sel = idx(betaMax.size());
    for (int64_t i = betaMax.size() - 1; i >= 0; --i) {
      Value ok = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLE, beta,
                                       flt(b.getF64Type(), betaMax[i]));
      sel = arith::SelectOp::create(b, loc, ok, idx(i), sel);
    }
    return sel;
  }

  Value matmul(Value a, Value bb, Value c, ArrayRef<AffineMap> maps) {
    SmallVector<Attribute> attrs;
    for (AffineMap m : maps)
      attrs.push_back(AffineMapAttr::get(m));
    NamedAttribute mapsAttr(b.getStringAttr("indexing_maps"),
                            b.getArrayAttr(attrs));
    return linalg::MatmulOp::create(b, loc, TypeRange{c.getType()},
                                    ValueRange{a, bb}, ValueRange{c},
                                    ArrayRef<NamedAttribute>{mapsAttr})
        .getResult(0);
  }

  /// Groups all dims but the trailing `keep` into one: [B.., H, X, Y] →
  /// [B..·H, X, Y] for keep = 2 (a no-op when there is one leading dim).
  static SmallVector<ReassociationIndices> leadingGroups(int64_t rank,
                                                         int64_t keep) {
    SmallVector<ReassociationIndices> re;
    ReassociationIndices first;
    for (int64_t i = 0; i < rank - keep; ++i)
      first.push_back(i);
    re.push_back(first);
    for (int64_t i = rank - keep; i < rank; ++i)
      re.push_back({i});
    return re;
  }
  Value collapseLeading(Value t, int64_t keep) {
    int64_t rank = cast<RankedTensorType>(t.getType()).getRank();
    if (rank == keep + 1)
      return t;
    return tensor::CollapseShapeOp::create(b, loc, t,
                                           leadingGroups(rank, keep));
  }
  /// Inverse of collapseLeading, to the shape of `type` (element type of t).
  Value expandLeading(Value t, RankedTensorType type, int64_t keep) {
    int64_t rank = type.getRank();
    if (rank == keep + 1)
      return t;
    auto resultType = RankedTensorType::get(
        type.getShape(), cast<RankedTensorType>(t.getType()).getElementType());
    return tensor::ExpandShapeOp::create(b, loc, resultType, t,
                                         leadingGroups(rank, keep));
  }
};

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_UTILS_TENSORBUILDER_H
