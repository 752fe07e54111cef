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

#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>

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
  double scalePower = 1.0; // s^k
  SmallVector<int64_t> tuple;
  for (int64_t k = 0; k <= g; ++k) {
    if (k > 0)
      scalePower *= scale;
    if (k > 0 && d == 0)
      break; // no index to draw from: only the degree-0 feature
    tuple.assign(k, 0);
    while (true) {
      // Multinomial k!/Π α_j!: the product over the runs of equal indices
      // of C(run end, run length), built factor by factor (exact in double
      // while below 2^53).
      double multinomial = 1.0;
      for (int64_t pos = 0, run = 0; pos < k; ++pos) {
        run = (pos > 0 && tuple[pos] == tuple[pos - 1]) ? run + 1 : 1;
        multinomial = multinomial * double(pos + 1) / double(run);
      }
      double w = coefficients[k] * scalePower * multinomial;
      double root = std::sqrt(std::fabs(w));
      tables.weights.push_back(side == PolySide::Query && w < 0 ? -root : root);
      for (int64_t t = 0; t < g; ++t)
        tables.columns[t].push_back(t < k ? tuple[t] : d);
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
    // x̂ = [extf(x), 1]: the input in T with a trailing column of ones; for
    // the transposed layout, x̂ᵀ : [B.., D + 1, N] (feature-major), so that
    // the innermost loop (over rows) reads contiguously and vectorizes.
    Value ext;
    if (g > 0) {
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
        Value x = op.getInput();
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
        Value converted =
            linalg::GenericOp::create(rewriter, loc, TypeRange{slice.getType()},
                                      ValueRange{x}, ValueRange{slice},
                                      ArrayRef<AffineMap>{readMap, id},
                                      parallel, extend)
                .getResult(0);
        ext = tensor::InsertSliceOp::create(rewriter, loc, converted, ext,
                                            zeros, sizes, ones);
      }
    }

    // Constant tables: g index columns [R] and the weights [R].
    SmallVector<Value> ins;
    IntegerType it = indexTableType(ctx, d);
    auto columnType = RankedTensorType::get({*r}, it);
    for (ArrayRef<int64_t> column : tables.columns) {
      SmallVector<APInt> values;
      values.reserve(column.size());
      for (int64_t v : column)
        values.push_back(APInt(it.getWidth(), v));
      ins.push_back(arith::ConstantOp::create(
          rewriter, loc, DenseElementsAttr::get(columnType, values)));
    }
    auto weightType = RankedTensorType::get({*r}, t);
    SmallVector<APFloat> weights;
    weights.reserve(tables.weights.size());
    for (double w : tables.weights) {
      APFloat v(w);
      bool losesInfo;
      v.convert(cast<FloatType>(t).getFloatSemantics(),
                APFloat::rmNearestTiesToEven, &losesInfo);
      weights.push_back(v);
    }
    ins.push_back(arith::ConstantOp::create(
        rewriter, loc, DenseElementsAttr::get(weightType, weights)));

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

} // namespace

void mlir::ropeattn::populatePolyFeaturesLoweringPatterns(
    RewritePatternSet &patterns) {
  patterns.add<LowerPolyFeatures>(patterns.getContext());
}
