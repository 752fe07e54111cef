//===- PolyFeatures.cpp - exact lowering of ropeattn.poly_features --------===//
//
// Part of the ropeattn project.
//
// ropeattn.poly_features → linalg/tensor/arith on tensors (docs/Spec.md,
// "ropeattn.poly_features"). Everything that depends only on D, g, the
// coefficients, the scale and the side is computed here, at compile time, in
// double:
//
//   * g index columns col_t : [R] (t < g): feature a is the product
//     Π_t x[col_t[a]] of its nondecreasing index tuple (i_1 .. i_k), padded
//     with D up to length g; x is extended with a column x[D] = 1.0, so the
//     padding multiplies by 1 (exactly);
//   * the weight vector w : [R] in T, w^side_a of the spec.
//
// The run-time work is one linalg.generic over [B.., N, R]:
//
//   φ[z, n, a] = w[a] · x̂[z, n, col_0[a]] · … · x̂[z, n, col_{g-1}[a]]
//
// with x̂ : [B.., N, D + 1] the input extended to T (tensor.extract in the
// body): O(N·R·g) multiplications, each result rounded once per factor.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Conversion/Passes.h"

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>
#include <map>

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

/// Largest R·(g + 1) (table entries plus weights) lowered: the tables are
/// dense constants built at compile time.
constexpr int64_t kMaxTableEntries = int64_t(1) << 26;

/// The compile-time part of the lowering.
struct FeatureTables {
  /// columns[t][a]: the t-th index of feature a's tuple, D past its degree.
  SmallVector<SmallVector<int64_t>> columns;
  /// The signed/unsigned square roots of the feature weights, w^side_a.
  SmallVector<double> weights;
};

/// Calls `fn(tuple)` for every nondecreasing index tuple over [0, d) of
/// length 0..g, in graded-lexicographic order (the feature order of the spec).
template <typename Fn> void forEachTuple(int64_t d, int64_t g, Fn &&fn) {
  SmallVector<int64_t> tuple;
  for (int64_t k = 0; k <= g; ++k) {
    if (k > 0 && d == 0)
      break; // no index to draw from: only the degree-0 feature
    tuple.assign(k, 0);
    while (true) {
      fn(ArrayRef<int64_t>(tuple));
      // Next nondecreasing tuple in lexicographic order: bump the last
      // entry that is not maximal and copy it to the right.
      int64_t p = k - 1;
      while (p >= 0 && tuple[p] == d - 1)
        --p;
      if (p < 0)
        break;
      ++tuple[p];
      for (int64_t q = p + 1; q < k; ++q)
        tuple[q] = tuple[p];
    }
  }
}

/// w^side_a = ±√|c_k · s^k · k!/Π_j α_j!| for the tuple of feature a
/// (docs/Spec.md): the signed root on the query side.
double featureWeight(ArrayRef<int64_t> tuple, ArrayRef<double> coefficients,
                     double scale, PolySide side) {
  int64_t k = tuple.size();
  // Multinomial k!/Π α_j!: the product over the runs of equal indices of
  // C(run end, run length), built factor by factor (exact in double while
  // below 2^53).
  double multinomial = 1.0;
  for (int64_t pos = 0, run = 0; pos < k; ++pos) {
    run = (pos > 0 && tuple[pos] == tuple[pos - 1]) ? run + 1 : 1;
    multinomial = multinomial * double(pos + 1) / double(run);
  }
  double scalePower = 1.0; // s^k, by repeated products as the spec says
  for (int64_t i = 0; i < k; ++i)
    scalePower *= scale;
  double w = coefficients[k] * scalePower * multinomial;
  double root = std::sqrt(std::fabs(w));
  return side == PolySide::Query && w < 0 ? -root : root;
}

/// Enumerates the features in graded-lexicographic order of their
/// nondecreasing index tuples and computes w_a = c_k · s^k · k!/Π_j α_j!,
/// split by side (docs/Spec.md).
FeatureTables buildTables(int64_t d, ArrayRef<double> coefficients,
                          double scale, PolySide side, int64_t r) {
  int64_t g = static_cast<int64_t>(coefficients.size()) - 1;
  FeatureTables tables;
  tables.columns.assign(g, SmallVector<int64_t>());
  for (SmallVector<int64_t> &column : tables.columns)
    column.reserve(r);
  tables.weights.reserve(r);
  forEachTuple(d, g, [&](ArrayRef<int64_t> tuple) {
    tables.weights.push_back(featureWeight(tuple, coefficients, scale, side));
    for (int64_t t = 0; t < g; ++t)
      tables.columns[t].push_back(t < int64_t(tuple.size()) ? tuple[t] : d);
  });
  assert(static_cast<int64_t>(tables.weights.size()) == r &&
         "feature count differs from C(D + g, g)");
  (void)r;
  return tables;
}

/// The narrowest integer type whose unsigned range holds 0..d.
IntegerType indexTableType(MLIRContext *ctx, int64_t d) {
  for (unsigned width : {8u, 16u, 32u})
    if (d < (int64_t(1) << width))
      return IntegerType::get(ctx, width);
  return IntegerType::get(ctx, 64);
}

/// A dense constant [size..] of integers 0..d in the narrowest type.
Value indexTable(PatternRewriter &rewriter, Location loc, int64_t d,
                 ArrayRef<int64_t> shape, ArrayRef<int64_t> values) {
  IntegerType it = indexTableType(rewriter.getContext(), d);
  SmallVector<APInt> ints;
  ints.reserve(values.size());
  for (int64_t v : values)
    ints.push_back(APInt(it.getWidth(), v));
  return arith::ConstantOp::create(
      rewriter, loc,
      DenseElementsAttr::get(RankedTensorType::get(shape, it), ints));
}

/// A dense constant of doubles rounded to the float type t.
Value floatTable(PatternRewriter &rewriter, Location loc, Type t,
                 ArrayRef<int64_t> shape, ArrayRef<double> values) {
  SmallVector<APFloat> floats;
  floats.reserve(values.size());
  for (double w : values) {
    APFloat v(w);
    bool losesInfo;
    v.convert(cast<FloatType>(t).getFloatSemantics(),
              APFloat::rmNearestTiesToEven, &losesInfo);
    floats.push_back(v);
  }
  return arith::ConstantOp::create(
      rewriter, loc,
      DenseElementsAttr::get(RankedTensorType::get(shape, t), floats));
}

/// x̂ = [extf(x), 1]: the input in T with a trailing column of ones; for
/// the transposed layout, x̂ᵀ : [B.., D + 1, N] (feature-major), so that the
/// innermost loop (over rows) reads contiguously and vectorizes. `rows` are
/// the sizes [B.., N].
Value buildExtended(PatternRewriter &rewriter, Location loc, Value x,
                    ArrayRef<OpFoldResult> rows, bool transposed, Type t) {
  MLIRContext *ctx = rewriter.getContext();
  auto inType = cast<RankedTensorType>(x.getType());
  int64_t rank = inType.getRank();
  int64_t d = inType.getShape().back();
  auto sizesWith = [&](int64_t last) {
    SmallVector<OpFoldResult> sizes(rows);
    sizes.push_back(rewriter.getIndexAttr(last));
    if (transposed)
      std::swap(sizes[rank - 1], sizes[rank - 2]);
    return sizes;
  };
  AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
  SmallVector<utils::IteratorType> parallel(rank,
                                            utils::IteratorType::parallel);
  Value ext;
  {
    Value empty = tensor::EmptyOp::create(rewriter, loc, sizesWith(d + 1), t);
    Value one = arith::ConstantOp::create(rewriter, loc, t,
                                          rewriter.getFloatAttr(t, 1.0));
    ext = linalg::FillOp::create(rewriter, loc, one, empty).getResult(0);
    if (d > 0) {
      SmallVector<OpFoldResult> zeros(rank, rewriter.getIndexAttr(0));
      SmallVector<OpFoldResult> ones(rank, rewriter.getIndexAttr(1));
      SmallVector<OpFoldResult> sizes = sizesWith(d);
      Value slice = tensor::ExtractSliceOp::create(rewriter, loc, ext, zeros,
                                                   sizes, ones);
      SmallVector<int64_t> sliceShape(
          cast<RankedTensorType>(slice.getType()).getShape());
      if (transposed)
        std::swap(sliceShape[rank - 1], sliceShape[rank - 2]);
      if (ArrayRef<int64_t>(sliceShape) != inType.getShape())
        x = tensor::CastOp::create(
            rewriter, loc,
            RankedTensorType::get(sliceShape, inType.getElementType()), x);
      auto extend = [&](OpBuilder &b, Location l, ValueRange a) {
        Value v = a[0];
        if (v.getType() != t)
          v = arith::ExtFOp::create(b, l, t, v);
        linalg::YieldOp::create(b, l, v);
      };
      // Transposed: read x[z, n, c] while writing x̂ᵀ[z, c, n].
      SmallVector<unsigned> perm;
      for (int64_t i = 0; i < rank; ++i)
        perm.push_back(i);
      if (transposed)
        std::swap(perm[rank - 1], perm[rank - 2]);
      AffineMap readMap = AffineMap::getPermutationMap(perm, ctx);
      Value converted = linalg::GenericOp::create(
                            rewriter, loc, TypeRange{slice.getType()},
                            ValueRange{x}, ValueRange{slice},
                            ArrayRef<AffineMap>{readMap, id}, parallel, extend)
                            .getResult(0);
      ext = tensor::InsertSliceOp::create(rewriter, loc, converted, ext, zeros,
                                          sizes, ones);
    }
  }
  return ext;
}

struct LowerPolyFeatures : OpRewritePattern<PolyFeaturesOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(PolyFeaturesOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    RankedTensorType inType = op.getInput().getType();
    RankedTensorType resType = op.getResult().getType();
    int64_t rank = inType.getRank();
    int64_t d = inType.getShape().back();
    int64_t g = op.getDegree();
    FailureOr<int64_t> r = PolyFeaturesOp::getFeatureCount(d, g);
    if (failed(r))
      return rewriter.notifyMatchFailure(op, "feature count overflows");
    if (*r > kMaxTableEntries / (g + 1)) {
      // Not a pattern failure the driver could recover from: say why.
      op.emitOpError("cannot be lowered: expected at most ")
          << kMaxTableEntries
          << " feature-table entries R·(g + 1), found R = " << *r
          << ", g = " << g;
      return failure();
    }
    Type t = getAccumulationType(inType.getElementType());
    FeatureTables tables = buildTables(
        d, op.getCoefficients(), op.getScaleOrDefault(), op.getSide(), *r);

    // Sizes [B.., N]: static where either the input or the result is.
    SmallVector<OpFoldResult> rows =
        tensor::getMixedSizes(rewriter, loc, op.getInput());
    rows.pop_back();
    for (int64_t i = 0; i + 1 < rank; ++i) {
      // The result's size of input dim i (N is last in the transposed form).
      int64_t size = resType.getDimSize(
          op.getTransposed() && i == rank - 2 ? rank - 1 : i);
      if (!ShapedType::isDynamic(size))
        rows[i] = rewriter.getIndexAttr(size);
    }
    auto sizesWith = [&](int64_t last) {
      SmallVector<OpFoldResult> sizes(rows);
      sizes.push_back(rewriter.getIndexAttr(last));
      if (op.getTransposed())
        std::swap(sizes[rank - 1], sizes[rank - 2]);
      return sizes;
    };
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    SmallVector<utils::IteratorType> parallel(rank,
                                              utils::IteratorType::parallel);

    bool transposed = op.getTransposed();
    Value ext;
    if (g > 0)
      ext = buildExtended(rewriter, loc, op.getInput(), rows, transposed, t);

    // Constant tables: g index columns [R] and the weights [R].
    SmallVector<Value> ins;
    for (ArrayRef<int64_t> column : tables.columns)
      ins.push_back(indexTable(rewriter, loc, d, {*r}, column));
    ins.push_back(floatTable(rewriter, loc, t, {*r}, tables.weights));

    // φ[z, n, a] = w[a] · Π_t x̂[z, n, col_t[a]]; transposed: φᵀ[z, a, n] =
    // w[a] · Π_t x̂ᵀ[z, col_t[a], n].
    unsigned featureDim = transposed ? rank - 2 : rank - 1;
    AffineMap feature =
        AffineMap::get(rank, 0, getAffineDimExpr(featureDim, ctx), ctx);
    SmallVector<AffineMap> maps(ins.size(), feature);
    maps.push_back(id);
    Value out = tensor::EmptyOp::create(rewriter, loc, sizesWith(*r), t);
    auto body = [&](OpBuilder &b, Location l, ValueRange a) {
      Value prod = a[g];
      SmallVector<Value> at;
      for (int64_t i = 0; i < rank; ++i)
        at.push_back(i == int64_t(featureDim)
                         ? Value()
                         : linalg::IndexOp::create(b, l, i).getResult());
      for (int64_t k = 0; k < g; ++k) {
        at[featureDim] =
            arith::IndexCastUIOp::create(b, l, b.getIndexType(), a[k]);
        Value v = tensor::ExtractOp::create(b, l, ext, at);
        prod = arith::MulFOp::create(b, l, prod, v);
      }
      linalg::YieldOp::create(b, l, prod);
    };
    Value phi =
        linalg::GenericOp::create(rewriter, loc, TypeRange{out.getType()}, ins,
                                  ValueRange{out}, maps, parallel, body)
            .getResult(0);
    if (phi.getType() != resType)
      phi = tensor::CastOp::create(rewriter, loc, resType, phi);
    rewriter.replaceOp(op, phi);
    return success();
  }
};

/// Jᵀw for ropeattn.poly_features_grad. With φ_a = w_a·x^α(a), the
/// derivative ∂φ_a/∂x_j = w_a·α_j·x^(α − e_j) is a monomial of degree one
/// less; grouping by β = α − e_j:
///
///   out[z, n, j] = Σ_β m_β(x_n) · C[β, j] · cot[z, n, G[β, j]]
///
/// over the R' = C(D + g − 1, g − 1) tuples β of degree ≤ g − 1, with the
/// compile-time tables G[β, j] = index of the feature β + e_j and C[β, j] =
/// w_G·(β_j + 1). Cost O(N·R'·D) = O(N·R·D·g/(D + g)) multiply-adds.
///
/// With `vectorBits` > 0 the transposed rank-2 form (the polynomial
/// backward's blocks, [R, N] → [D, N]) is built as register-blocked vector
/// loops instead (buildVectorContraction); otherwise the contraction is one
/// linalg.generic whose innermost loop runs over the rows.
struct LowerPolyFeaturesGrad : OpRewritePattern<PolyFeaturesGradOp> {
  LowerPolyFeaturesGrad(MLIRContext *ctx, int64_t vectorBits)
      : OpRewritePattern(ctx), vectorBits(vectorBits) {}

  LogicalResult matchAndRewrite(PolyFeaturesGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    RankedTensorType inType = op.getInput().getType();
    RankedTensorType resType = op.getResult().getType();
    int64_t rank = inType.getRank();
    int64_t nb = rank - 2;
    int64_t d = inType.getShape().back();
    int64_t g = op.getDegree();
    bool tr = op.getTransposed();
    FailureOr<int64_t> r = PolyFeaturesOp::getFeatureCount(d, g);
    FailureOr<int64_t> r1 =
        PolyFeaturesOp::getFeatureCount(d, std::max<int64_t>(g - 1, 0));
    if (failed(r) || failed(r1))
      return rewriter.notifyMatchFailure(op, "feature count overflows");
    if (*r1 > kMaxTableEntries / (g + d + 1)) {
      op.emitOpError("cannot be lowered: expected at most ")
          << kMaxTableEntries << " table entries R'·(g + D), found R' = " << *r1
          << ", g = " << g << ", D = " << d;
      return failure();
    }
    Type t = getAccumulationType(inType.getElementType());

    // Sizes [B.., N]: static where either the input or the result is.
    SmallVector<OpFoldResult> rows =
        tensor::getMixedSizes(rewriter, loc, op.getInput());
    rows.pop_back();
    for (int64_t i = 0; i + 1 < rank; ++i) {
      int64_t size = resType.getDimSize(tr && i == rank - 2 ? rank - 1 : i);
      if (!ShapedType::isDynamic(size))
        rows[i] = rewriter.getIndexAttr(size);
    }
    auto sizesWith = [&](int64_t last) {
      SmallVector<OpFoldResult> sizes(rows);
      sizes.push_back(rewriter.getIndexAttr(last));
      if (tr)
        std::swap(sizes[rank - 1], sizes[rank - 2]);
      return sizes;
    };
    Value zero = arith::ConstantOp::create(rewriter, loc, t,
                                           rewriter.getFloatAttr(t, 0));
    Value out =
        linalg::FillOp::create(
            rewriter, loc, zero,
            tensor::EmptyOp::create(rewriter, loc, sizesWith(d), t).getResult())
            .getResult(0);
    if (g == 0 || d == 0) {
      // A constant feature map: the derivative is zero.
      if (out.getType() != resType)
        out = tensor::CastOp::create(rewriter, loc, resType, out);
      rewriter.replaceOp(op, out);
      return success();
    }

    // Compile-time tables.
    std::map<SmallVector<int64_t>, int64_t> indexOf;
    SmallVector<double> weights;
    weights.reserve(*r);
    forEachTuple(d, g, [&](ArrayRef<int64_t> tuple) {
      indexOf.emplace(SmallVector<int64_t>(tuple), weights.size());
      weights.push_back(featureWeight(tuple, op.getCoefficients(),
                                      op.getScaleOrDefault(), op.getSide()));
    });
    SmallVector<SmallVector<int64_t>> columns(g - 1);
    SmallVector<int64_t> gather;
    SmallVector<double> coeff;
    gather.reserve(*r1 * d);
    coeff.reserve(*r1 * d);
    forEachTuple(d, g - 1, [&](ArrayRef<int64_t> beta) {
      for (int64_t t = 0; t < g - 1; ++t)
        columns[t].push_back(t < int64_t(beta.size()) ? beta[t] : d);
      for (int64_t j = 0; j < d; ++j) {
        SmallVector<int64_t> alpha(beta);
        alpha.insert(llvm::upper_bound(alpha, j), j);
        int64_t a = indexOf.at(alpha);
        gather.push_back(a);
        coeff.push_back(weights[a] * double(llvm::count(beta, j) + 1));
      }
    });

    Value ext = buildExtended(rewriter, loc, op.getInput(), rows, tr, t);

    // m_β(x_n) : [B.., N, R'] or, transposed, [B.., R', N].
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    unsigned featureDim = tr ? rank - 2 : rank - 1;
    SmallVector<Value> ins;
    for (ArrayRef<int64_t> column : columns)
      ins.push_back(indexTable(rewriter, loc, d, {*r1}, column));
    SmallVector<AffineMap> maps(
        ins.size(),
        AffineMap::get(rank, 0, getAffineDimExpr(featureDim, ctx), ctx));
    maps.push_back(id);
    SmallVector<utils::IteratorType> parallel(rank,
                                              utils::IteratorType::parallel);
    Value monoInit = tensor::EmptyOp::create(rewriter, loc, sizesWith(*r1), t);
    Value mono =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{monoInit.getType()}, ins,
            ValueRange{monoInit}, maps, parallel,
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value prod =
                  arith::ConstantOp::create(b, l, t, b.getFloatAttr(t, 1.0));
              SmallVector<Value> at;
              for (int64_t i = 0; i < rank; ++i)
                at.push_back(
                    i == int64_t(featureDim)
                        ? Value()
                        : linalg::IndexOp::create(b, l, i).getResult());
              for (int64_t k = 0; k + 1 < g; ++k) {
                at[featureDim] =
                    arith::IndexCastUIOp::create(b, l, b.getIndexType(), a[k]);
                Value v = tensor::ExtractOp::create(b, l, ext, at);
                prod = arith::MulFOp::create(b, l, prod, v);
              }
              linalg::YieldOp::create(b, l, prod);
            })
            .getResult(0);

    Value gatherTable = indexTable(rewriter, loc, *r, {*r1, d}, gather);
    Value coeffTable = floatTable(rewriter, loc, t, {*r1, d}, coeff);
    Value cot = op.getCotangent();
    int64_t lanes = vectorBits / t.getIntOrFloatBitWidth();
    if (tr && rank == 2 && lanes >= 2 && (t.isF32() || t.isF64()) &&
        cast<RankedTensorType>(cot.getType()).getElementType() == t) {
      Value res =
          buildVectorContraction(rewriter, loc, mono, gatherTable, coeffTable,
                                 cot, sizesWith(d), t, d, *r1, lanes);
      if (res.getType() != resType)
        res = tensor::CastOp::create(rewriter, loc, resType, res);
      rewriter.replaceOp(op, res);
      return success();
    }

    // The contraction over β. Iteration dims: (z.., n, j, β), or transposed
    // (z.., β, j, n): the innermost loop runs over rows, and the transposed
    // form reads m_β once per β with the D output rows in cache.
    unsigned dims = rank + 1;
    unsigned nDim = tr ? nb + 2 : nb, jDim = nb + 1, bDim = tr ? nb : nb + 2;
    auto map = [&](ArrayRef<unsigned> res) {
      SmallVector<AffineExpr> e;
      for (unsigned x : res)
        e.push_back(getAffineDimExpr(x, ctx));
      return AffineMap::get(dims, 0, e, ctx);
    };
    SmallVector<unsigned> batch;
    for (int64_t i = 0; i < nb; ++i)
      batch.push_back(i);
    auto with = [&](unsigned x, unsigned y) {
      SmallVector<unsigned> res(batch);
      res.push_back(x);
      res.push_back(y);
      return map(res);
    };
    AffineMap monoMap = tr ? with(bDim, nDim) : with(nDim, bDim);
    AffineMap tableMap = map({bDim, jDim});
    AffineMap outMap = tr ? with(jDim, nDim) : with(nDim, jDim);
    SmallVector<utils::IteratorType> iters(dims, utils::IteratorType::parallel);
    iters[bDim] = utils::IteratorType::reduction;
    Value res =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{out.getType()},
            ValueRange{mono, gatherTable, coeffTable}, ValueRange{out},
            ArrayRef<AffineMap>{monoMap, tableMap, tableMap, outMap}, iters,
            [&](OpBuilder &b, Location l, ValueRange a) {
              SmallVector<Value> at;
              for (int64_t i = 0; i < nb; ++i)
                at.push_back(linalg::IndexOp::create(b, l, i));
              Value gi =
                  arith::IndexCastUIOp::create(b, l, b.getIndexType(), a[1]);
              Value n = linalg::IndexOp::create(b, l, nDim);
              if (tr) {
                at.push_back(gi);
                at.push_back(n);
              } else {
                at.push_back(n);
                at.push_back(gi);
              }
              Value w = tensor::ExtractOp::create(b, l, cot, at);
              Value prod = arith::MulFOp::create(
                  b, l, arith::MulFOp::create(b, l, a[0], a[2]), w);
              linalg::YieldOp::create(
                  b, l, arith::AddFOp::create(b, l, a[3], prod).getResult());
            })
            .getResult(0);
    if (res.getType() != resType)
      res = tensor::CastOp::create(rewriter, loc, resType, res);
    rewriter.replaceOp(op, res);
    return success();
  }

  /// out[j, n] = Σ_β m[β, n]·C[β, j]·cot[G[β, j], n] for mono m [R', N],
  /// cot [R, N], out [D, N] (sizes `outSizes`): per tile of `lanes` rows and
  /// group of at most kMaxAccumulators output rows j, one vector accumulator
  /// per j stays in a register through the loop over β (m_β loaded once per
  /// β, one FMA per (β, j) on a row of cot); the last tile is masked
  /// (out-of-bounds transfers).
  Value buildVectorContraction(PatternRewriter &rw, Location loc, Value mono,
                               Value gatherTable, Value coeffTable, Value cot,
                               ArrayRef<OpFoldResult> outSizes, Type t,
                               int64_t d, int64_t r1, int64_t lanes) const {
    constexpr int64_t kMaxAccumulators = 16;
    auto vecType = VectorType::get({lanes}, t);
    Value c0 = arith::ConstantIndexOp::create(rw, loc, 0);
    Value c1 = arith::ConstantIndexOp::create(rw, loc, 1);
    Value zero = arith::ConstantOp::create(rw, loc, t, rw.getFloatAttr(t, 0));
    Value zeroVec = arith::ConstantOp::create(
        rw, loc, vecType,
        DenseElementsAttr::get(vecType, rw.getFloatAttr(t, 0)));
    Value init = tensor::EmptyOp::create(rw, loc, outSizes, t);
    Value cols = tensor::DimOp::create(rw, loc, init, 1);
    SmallVector<Value> jIdx;
    for (int64_t j = 0; j < d; ++j)
      jIdx.push_back(arith::ConstantIndexOp::create(rw, loc, j));
    auto read = [&](OpBuilder &b, Location l, Value src, Value row,
                    Value col) -> Value {
      return vector::TransferReadOp::create(b, l, vecType, src,
                                            ValueRange{row, col}, zero,
                                            ArrayRef<bool>{false});
    };
    auto tiles = scf::ForOp::create(
        rw, loc, c0, cols, arith::ConstantIndexOp::create(rw, loc, lanes),
        ValueRange{init},
        [&](OpBuilder &b, Location l, Value n0, ValueRange tileArgs) {
          Value res = tileArgs[0];
          for (int64_t j0 = 0; j0 < d; j0 += kMaxAccumulators) {
            int64_t count = std::min(kMaxAccumulators, d - j0);
            SmallVector<Value> accInit(count, zeroVec);
            auto betas = scf::ForOp::create(
                b, l, c0, arith::ConstantIndexOp::create(b, l, r1), c1, accInit,
                [&](OpBuilder &bb, Location bl, Value beta, ValueRange acc) {
                  Value m = read(bb, bl, mono, beta, n0);
                  SmallVector<Value> next;
                  for (int64_t j = 0; j < count; ++j) {
                    ValueRange at{beta, jIdx[j0 + j]};
                    Value g = arith::IndexCastUIOp::create(
                        bb, bl, bb.getIndexType(),
                        tensor::ExtractOp::create(bb, bl, gatherTable, at));
                    Value c = vector::BroadcastOp::create(
                        bb, bl, vecType,
                        tensor::ExtractOp::create(bb, bl, coeffTable, at));
                    Value mc = arith::MulFOp::create(bb, bl, m, c);
                    next.push_back(vector::FMAOp::create(
                        bb, bl, read(bb, bl, cot, g, n0), mc, acc[j]));
                  }
                  scf::YieldOp::create(bb, bl, next);
                });
            for (int64_t j = 0; j < count; ++j)
              res = vector::TransferWriteOp::create(
                        b, l, betas.getResult(j), res,
                        ValueRange{jIdx[j0 + j], n0}, ArrayRef<bool>{false})
                        .getResult();
          }
          scf::YieldOp::create(b, l, res);
        });
    return tiles.getResult(0);
  }

  int64_t vectorBits;
};

} // namespace

void mlir::ropeattn::populatePolyFeaturesLoweringPatterns(
    RewritePatternSet &patterns, int64_t vectorBits) {
  patterns.add<LowerPolyFeatures>(patterns.getContext());
  patterns.add<LowerPolyFeaturesGrad>(patterns.getContext(), vectorBits);
}
