//===- RopeAttnOps.cpp - ropeattn operations
//-------------------------------===//
//
// Part of the ropeattn project. Verifiers follow docs/Spec.md; every
// diagnostic says what was expected and what was found, and each has a case in
// test/Dialect/RopeAttn/invalid.mlir.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::ropeattn;

//===----------------------------------------------------------------------===//
// Shared shape checking
//===----------------------------------------------------------------------===//

namespace {

/// A dimension size as text, `?` for dynamic ones.
std::string Dim(int64_t value) {
  return ShapedType::isDynamic(value) ? std::string("?")
                                      : std::to_string(value);
}

/// Two sizes agree unless both are static and differ.
bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// The relative-offset count max(N + M - 1, 0) when both are static.
int64_t offsetCount(int64_t n, int64_t m) {
  if (ShapedType::isDynamic(n) || ShapedType::isDynamic(m))
    return ShapedType::kDynamic;
  return std::max<int64_t>(n + m - 1, 0);
}

/// Sizes of an attention problem, read off query/key/value.
struct AttentionDims {
  SmallVector<int64_t> batch;
  int64_t hq, hk, n, m, d, dv;
  Type elementType;

  /// [B.., Hq, N, Dv]
  SmallVector<int64_t> outputShape() const {
    SmallVector<int64_t> s(batch);
    s.append({hq, n, dv});
    return s;
  }
  /// [B.., Hq, N]
  SmallVector<int64_t> lseShape() const {
    SmallVector<int64_t> s(batch);
    s.append({hq, n});
    return s;
  }
};

/// Verifies query [B.., Hq, N, D], key [B.., Hk, M, D], value [B.., Hk, M, Dv].
FailureOr<AttentionDims> verifyQueryKeyValue(Operation *op, RankedTensorType q,
                                             RankedTensorType k,
                                             RankedTensorType v) {
  int64_t rank = q.getRank();
  if (rank < 3)
    return op->emitOpError("expected query of rank >= 3 ([B.., H, N, D]), "
                           "found rank ")
           << rank;
  for (auto [name, t] :
       {std::make_pair("key", k), std::make_pair("value", v)}) {
    if (t.getRank() != rank)
      return op->emitOpError("expected ")
             << name << " of rank " << rank << " (the query's), found rank "
             << t.getRank();
    if (t.getElementType() != q.getElementType())
      return op->emitOpError("expected ")
             << name << " element type " << q.getElementType()
             << " (the query's), found " << t.getElementType();
  }
  AttentionDims dims;
  dims.elementType = q.getElementType();
  for (int64_t i = 0; i < rank - 3; ++i) {
    for (auto [name, t] :
         {std::make_pair("key", k), std::make_pair("value", v)}) {
      if (!compatible(q.getDimSize(i), t.getDimSize(i)))
        return op->emitOpError("expected ")
               << name << " batch dimension " << i << " to be "
               << Dim(q.getDimSize(i)) << " (the query's), found "
               << Dim(t.getDimSize(i));
    }
    dims.batch.push_back(q.getDimSize(i));
  }
  dims.hq = q.getDimSize(rank - 3);
  dims.n = q.getDimSize(rank - 2);
  dims.d = q.getDimSize(rank - 1);
  dims.hk = k.getDimSize(rank - 3);
  dims.m = k.getDimSize(rank - 2);
  dims.dv = v.getDimSize(rank - 1);
  if (!compatible(dims.hk, v.getDimSize(rank - 3)))
    return op->emitOpError("expected value to have ")
           << Dim(dims.hk) << " heads (the key's), found "
           << Dim(v.getDimSize(rank - 3));
  if (!ShapedType::isDynamic(dims.hk) && dims.hk == 0)
    return op->emitOpError("expected at least one key/value head, found 0");
  if (!ShapedType::isDynamic(dims.hq) && !ShapedType::isDynamic(dims.hk) &&
      dims.hq % dims.hk != 0)
    return op->emitOpError("expected the number of query heads (")
           << dims.hq << ") to be a multiple of the number of key/value heads ("
           << dims.hk << ")";
  if (!compatible(dims.d, k.getDimSize(rank - 1)))
    return op->emitOpError("expected key head dimension ")
           << Dim(dims.d) << " (the query's), found "
           << Dim(k.getDimSize(rank - 1));
  if (ShapedType::isDynamic(dims.d))
    dims.d = k.getDimSize(rank - 1);
  if (!compatible(dims.m, v.getDimSize(rank - 2)))
    return op->emitOpError("expected value sequence length ")
           << Dim(dims.m) << " (the key's), found "
           << Dim(v.getDimSize(rank - 2));
  if (ShapedType::isDynamic(dims.m))
    dims.m = v.getDimSize(rank - 2);
  return dims;
}

/// Verifies that `type` has shape `shape` and element type `elementType`.
LogicalResult verifyTensor(Operation *op, StringRef name, RankedTensorType type,
                           ArrayRef<int64_t> shape, StringRef shapeText,
                           Type elementType) {
  auto expected = RankedTensorType::get(shape, elementType);
  bool ok = type.getRank() == static_cast<int64_t>(shape.size()) &&
            type.getElementType() == elementType;
  for (int64_t i = 0; ok && i < type.getRank(); ++i)
    ok = compatible(type.getDimSize(i), shape[i]);
  if (!ok)
    return op->emitOpError("expected ")
           << name << " of type " << expected << " (" << shapeText
           << "), found " << type;
  return success();
}

LogicalResult verifyScale(Operation *op, std::optional<double> scale) {
  if (scale && !std::isfinite(*scale))
    return op->emitOpError("expected a finite scale, found ") << *scale;
  return success();
}

LogicalResult verifyRopeFor(Operation *op, RopeAttr rope, int64_t headDim) {
  if (!rope || ShapedType::isDynamic(headDim))
    return success();
  if (!rope.getRotaryDim()) {
    if (headDim % 2 != 0)
      return op->emitOpError("expected an even head dimension for rope with "
                             "the default rotary_dim (= D), found ")
             << headDim << "; set rotary_dim explicitly";
    return success();
  }
  if (*rope.getRotaryDim() > headDim)
    return op->emitOpError("expected rope rotary_dim <= head dimension ")
           << headDim << ", found " << *rope.getRotaryDim();
  return success();
}

/// The xPos factors exp(±p·ln(ζ_a)/B) of rows at positions P + [lo, hi] (one
/// range per side, each with its own rope) must stay within the range of the
/// accumulation type (docs/Spec.md §3.1).
LogicalResult verifyXposRange(Operation *op, RopeAttr rope, int64_t headDim,
                              ArrayRef<std::pair<int64_t, int64_t>> ranges,
                              Type acc, ArrayRef<RopeAttr> sideRopes = {}) {
  if (!rope || !rope.hasXpos() || ShapedType::isDynamic(headDim) ||
      rope.getRotaryDimOr(headDim) > headDim)
    return success();
  double bound = 0;
  for (auto [i, range] : llvm::enumerate(ranges))
    bound = std::max(
        bound, getXposExponentBound(sideRopes.empty() ? rope : sideRopes[i],
                                    headDim, range.first, range.second));
  double limit = getXposExponentLimit(acc);
  if (bound > limit)
    return op->emitOpError("expected xPos factors exp(±p·ln(ζ)/B) within "
                           "exp(±")
           << llvm::formatv("{0:F0}", limit).str() << ") for " << acc
           << " accumulation, found exponents up to "
           << llvm::formatv("{0:F1}", bound).str()
           << "; use a larger xpos_scale_base, fewer positions or f64";
  return success();
}

/// Bias: [N + M - 1] (shared) or [Hq, N + M - 1] (per query head).
LogicalResult verifyBias(Operation *op, RankedTensorType bias,
                         const AttentionDims &dims) {
  int64_t len = offsetCount(dims.n, dims.m);
  if (bias.getRank() != 1 && bias.getRank() != 2)
    return op->emitOpError("expected bias of shape [N + M - 1] or "
                           "[Hq, N + M - 1], found rank ")
           << bias.getRank();
  if (bias.getElementType() != dims.elementType)
    return op->emitOpError("expected bias element type ")
           << dims.elementType << " (the query's), found "
           << bias.getElementType();
  if (!compatible(bias.getDimSize(bias.getRank() - 1), len))
    return op->emitOpError("expected bias length N + M - 1 = ")
           << Dim(len) << ", found "
           << Dim(bias.getDimSize(bias.getRank() - 1));
  if (bias.getRank() == 2 && !compatible(bias.getDimSize(0), dims.hq))
    return op->emitOpError("expected per-head bias to have ")
           << Dim(dims.hq) << " rows (the query heads), found "
           << Dim(bias.getDimSize(0));
  return success();
}

/// Weights of the general form: [N + M - 1, |S|] or [Hq, N + M - 1, |S|];
/// support: flat (a, b) pairs, each index in [0, D), no pair twice.
LogicalResult verifyGeneralWeights(Operation *op, RankedTensorType weights,
                                   ArrayRef<int64_t> support,
                                   const AttentionDims &dims) {
  if (support.size() % 2 != 0)
    return op->emitOpError("expected support to list (a, b) pairs (an even "
                           "number of indices), found ")
           << support.size() << " indices";
  llvm::DenseSet<std::pair<int64_t, int64_t>> seen;
  for (size_t i = 0; i < support.size(); i += 2) {
    int64_t a = support[i], b = support[i + 1];
    for (int64_t idx : {a, b}) {
      bool outOfRange =
          idx < 0 || (!ShapedType::isDynamic(dims.d) && idx >= dims.d);
      if (outOfRange)
        return op->emitOpError("expected support indices in [0, ")
               << Dim(dims.d) << "), found " << idx << " in pair " << i / 2;
    }
    if (!seen.insert({a, b}).second)
      return op->emitOpError("expected distinct support pairs, found (")
             << a << ", " << b << ") twice";
  }
  int64_t numPairs = support.size() / 2;
  int64_t len = offsetCount(dims.n, dims.m);
  if (weights.getRank() != 2 && weights.getRank() != 3)
    return op->emitOpError("expected weights of shape [N + M - 1, |S|] or "
                           "[Hq, N + M - 1, |S|], found rank ")
           << weights.getRank();
  if (weights.getElementType() != dims.elementType)
    return op->emitOpError("expected weights element type ")
           << dims.elementType << " (the query's), found "
           << weights.getElementType();
  int64_t r = weights.getRank();
  if (!compatible(weights.getDimSize(r - 1), numPairs))
    return op->emitOpError("expected weights to have |S| = ")
           << numPairs << " columns (one per support pair), found "
           << Dim(weights.getDimSize(r - 1));
  if (!compatible(weights.getDimSize(r - 2), len))
    return op->emitOpError("expected weights to have N + M - 1 = ")
           << Dim(len) << " offsets, found " << Dim(weights.getDimSize(r - 2));
  if (r == 3 && !compatible(weights.getDimSize(0), dims.hq))
    return op->emitOpError("expected per-head weights to have ")
           << Dim(dims.hq) << " heads (the query heads), found "
           << Dim(weights.getDimSize(0));
  return success();
}

/// Output [B.., Hq, N, Dv] and logsumexp [B.., Hq, N] of a forward op.
LogicalResult verifyForwardResults(Operation *op, const AttentionDims &dims,
                                   RankedTensorType output,
                                   RankedTensorType lse) {
  if (failed(verifyTensor(op, "output", output, dims.outputShape(),
                          "[B.., Hq, N, Dv]", dims.elementType)))
    return failure();
  if (lse && failed(verifyTensor(op, "logsumexp", lse, dims.lseShape(),
                                 "[B.., Hq, N], accumulation type",
                                 getAccumulationType(dims.elementType))))
    return failure();
  return success();
}

/// o, dO and optional logsumexp operands of a backward op.
LogicalResult verifyBackwardOperands(Operation *op, const AttentionDims &dims,
                                     RankedTensorType output,
                                     RankedTensorType gradOutput,
                                     RankedTensorType lse) {
  if (failed(verifyForwardResults(op, dims, output, lse)))
    return failure();
  if (gradOutput != output)
    return op->emitOpError("expected grad_output of type ")
           << output << " (the output's), found " << gradOutput;
  return success();
}

/// Each gradient has the type of the operand it differentiates.
LogicalResult verifyGradResult(Operation *op, StringRef name, Type result,
                               Type operand) {
  if (result != operand)
    return op->emitOpError("expected ")
           << name << " of type " << operand
           << " (the differentiated operand's), found " << result;
  return success();
}

RankedTensorType rankedOrNull(Value v) {
  return v ? cast<RankedTensorType>(v.getType()) : RankedTensorType();
}

double defaultScale(Value query) {
  int64_t d = cast<RankedTensorType>(query.getType()).getShape().back();
  if (ShapedType::isDynamic(d) || d == 0)
    return 1.0;
  return 1.0 / std::sqrt(static_cast<double>(d));
}

/// Drops a fused RoPE attribute that rotates nothing.
template <typename OpTy> struct DropIdentityRope : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    RopeAttr rope = op.getRopeAttr();
    int64_t d = op.getQuery().getType().getShape().back();
    bool identity =
        rope && ((rope.getRotaryDim() && *rope.getRotaryDim() == 0) ||
                 (!ShapedType::isDynamic(d) && d == 0));
    if (!identity)
      return rewriter.notifyMatchFailure(op, "rope rotates some dimension");
    rewriter.modifyOpInPlace(op, [&] { op.removeRopeAttr(); });
    return success();
  }
};

/// `method(auto)` is the default: drop it so equal ops print alike.
template <typename OpTy> struct DropAutoMethod : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    auto method = op.getMethod();
    if (!method || *method != Method::Auto)
      return rewriter.notifyMatchFailure(op, "no explicit auto method");
    rewriter.modifyOpInPlace(op, [&] { op.removeMethodAttr(); });
    return success();
  }
};

} // namespace

//===----------------------------------------------------------------------===//
// RotaryOp
//===----------------------------------------------------------------------===//

RopeAttr RotaryOp::getRopeOrDefault() {
  if (RopeAttr rope = getRopeAttr())
    return rope;
  return RopeAttr::get(getContext(), 10000.0, RopeLayout::Half, std::nullopt,
                       0);
}

LogicalResult RotaryOp::verify() {
  RankedTensorType type = getInput().getType();
  if (type.getRank() < 2)
    return emitOpError("expected input of rank >= 2 ([..., N, D]), found rank ")
           << type.getRank();
  int64_t n = type.getDimSize(type.getRank() - 2);
  int64_t d = type.getShape().back();
  if (Value positions = getPositions()) {
    int64_t len = cast<RankedTensorType>(positions.getType()).getDimSize(0);
    if (!compatible(len, n))
      return emitOpError("expected positions of length N = ")
             << Dim(n) << ", found " << Dim(len);
  }
  RopeAttr rope = getRopeOrDefault();
  if (failed(verifyRopeFor(*this, rope, d)))
    return failure();
  if (getInverse() && getTransposeAttr())
    return emitOpError("expected at most one of 'inverse' and 'transpose', "
                       "found both");
  if (rope.hasXpos() && !getSide())
    return emitOpError("expected a 'side' (query or key) for a rope with xPos "
                       "scaling, found none");
  if (!rope.hasXpos() && getSide())
    return emitOpError("expected no 'side' for a rope without xPos scaling "
                       "(it selects the sign of the xPos exponent), found ")
           << stringifyRopeSide(*getSide());
  if (!getPositions() && !ShapedType::isDynamic(n) && !ShapedType::isDynamic(d))
    return verifyXposRange(*this, rope, d, {{0, n - 1}},
                           getAccumulationType(type.getElementType()));
  return success();
}

OpFoldResult RotaryOp::fold(FoldAdaptor) {
  int64_t d = getInput().getType().getShape().back();
  RopeAttr rope = getRopeOrDefault();
  if (rope.getRotaryDim() ? *rope.getRotaryDim() == 0
                          : (!ShapedType::isDynamic(d) && d == 0))
    return getInput();
  return {};
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

double AttentionOp::getScaleOrDefault() {
  return getScale() ? getScale()->convertToDouble() : defaultScale(getQuery());
}

Method AttentionOp::getMethodOrDefault() {
  return getMethod().value_or(Method::Auto);
}

/// Shared by attention and attention_grad: q/k/v, bias, rope, scale, method.
template <typename OpTy>
static FailureOr<AttentionDims> verifyAttentionCommon(OpTy op) {
  FailureOr<AttentionDims> dims =
      verifyQueryKeyValue(op, op.getQuery().getType(), op.getKey().getType(),
                          op.getValue().getType());
  if (failed(dims))
    return failure();
  if (failed(verifyScale(
          op, op.getScale()
                  ? std::optional<double>(op.getScale()->convertToDouble())
                  : std::nullopt)) ||
      failed(verifyRopeFor(op, op.getRopeAttr(), dims->d)))
    return failure();
  if (RopeAttr rope = op.getRopeAttr(); rope && rope.hasXpos() &&
                                        !ShapedType::isDynamic(dims->n) &&
                                        !ShapedType::isDynamic(dims->m)) {
    // Centred positions, as every lowering evaluates them.
    auto [qRope, kRope] = getAttentionSideRopes(rope, dims->n, dims->m);
    if (failed(verifyXposRange(
            op, rope, dims->d, {{0, dims->n - 1}, {0, dims->m - 1}},
            getAccumulationType(dims->elementType), {qRope, kRope})))
      return failure();
  }
  if (Value bias = op.getBias()) {
    if (failed(verifyBias(op, cast<RankedTensorType>(bias.getType()), *dims)))
      return failure();
  } else if (op.getMethod() && *op.getMethod() == Method::Toeplitz) {
    return op.emitOpError("method 'toeplitz' requires a bias operand (the "
                          "Toeplitz factor), found none; use 'polynomial'");
  }
  return dims;
}

LogicalResult AttentionOp::verify() {
  FailureOr<AttentionDims> dims = verifyAttentionCommon(*this);
  if (failed(dims))
    return failure();
  if (Value c = getCertificate()) {
    auto type = cast<RankedTensorType>(c.getType());
    if (type.getRank() != 1 || type.getDimSize(0) != kCertificateSize)
      return emitOpError("expected certificate of type 'tensor<")
             << kCertificateSize
             << "xf64>' ([beta, degree, delta, output bound, logsumexp "
                "bound]), found "
             << type;
  }
  return verifyForwardResults(*this, *dims, getOutput().getType(),
                              rankedOrNull(getLogsumexp()));
}

/// `T` for one result, `(T1, T2[, T3])` for more, like functional-type. The
/// certificate is the last type when it is rank 1 (output and logsumexp have
/// rank ≥ 3 and ≥ 2).
static ParseResult parseAttentionResults(OpAsmParser &parser, Type &output,
                                         Type &lse, Type &certificate) {
  SMLoc loc = parser.getCurrentLocation();
  SmallVector<Type> types;
  if (succeeded(parser.parseOptionalLParen())) {
    if (parser.parseTypeList(types) || parser.parseRParen())
      return failure();
  } else {
    Type t;
    if (parser.parseType(t))
      return failure();
    types.push_back(t);
  }
  if (types.empty() || types.size() > 3)
    return parser.emitError(loc, "expected 1 to 3 result types (output, "
                                 "[logsumexp], [certificate]), found ")
           << types.size();
  output = types.front();
  ArrayRef<Type> rest = ArrayRef<Type>(types).drop_front();
  auto isCertificate = [](Type t) {
    auto r = dyn_cast<RankedTensorType>(t);
    return r && r.getRank() == 1;
  };
  if (!rest.empty() && isCertificate(rest.back())) {
    certificate = rest.back();
    rest = rest.drop_back();
  }
  if (!rest.empty()) {
    if (rest.size() > 1)
      return parser.emitError(loc, "expected the certificate (tensor<")
             << kCertificateSize << "xf64>) as the last result";
    lse = rest.front();
  }
  return success();
}

static void printAttentionResults(OpAsmPrinter &printer, Operation *,
                                  Type output, Type lse, Type certificate) {
  SmallVector<Type> types = {output};
  if (lse)
    types.push_back(lse);
  if (certificate)
    types.push_back(certificate);
  if (types.size() == 1) {
    printer << output;
    return;
  }
  printer << "(";
  llvm::interleaveComma(types, printer);
  printer << ")";
}

void AttentionOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<DropIdentityRope<AttentionOp>, DropAutoMethod<AttentionOp>>(
      context);
}

//===----------------------------------------------------------------------===//
// AttentionGradOp
//===----------------------------------------------------------------------===//

double AttentionGradOp::getScaleOrDefault() {
  return getScale() ? getScale()->convertToDouble() : defaultScale(getQuery());
}

Method AttentionGradOp::getMethodOrDefault() {
  return getMethod().value_or(Method::Auto);
}

LogicalResult AttentionGradOp::verify() {
  FailureOr<AttentionDims> dims = verifyAttentionCommon(*this);
  if (failed(dims))
    return failure();
  if (failed(verifyBackwardOperands(*this, *dims, getOutput().getType(),
                                    getGradOutput().getType(),
                                    rankedOrNull(getLogsumexp()))))
    return failure();
  if (failed(verifyGradResult(*this, "grad_query", getGradQuery().getType(),
                              getQuery().getType())) ||
      failed(verifyGradResult(*this, "grad_key", getGradKey().getType(),
                              getKey().getType())) ||
      failed(verifyGradResult(*this, "grad_value", getGradValue().getType(),
                              getValue().getType())))
    return failure();
  Value bias = getBias(), gradBias = getGradBias();
  if (bias && !gradBias)
    return emitOpError("expected a grad_bias result since a bias operand is "
                       "present, found none");
  if (!bias && gradBias)
    return emitOpError("expected no grad_bias result since there is no bias "
                       "operand, found one");
  if (bias)
    return verifyGradResult(*this, "grad_bias", gradBias.getType(),
                            bias.getType());
  return success();
}

void AttentionGradOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                                  MLIRContext *context) {
  results
      .add<DropIdentityRope<AttentionGradOp>, DropAutoMethod<AttentionGradOp>>(
          context);
}

//===----------------------------------------------------------------------===//
// GeneralAttentionOp / GeneralAttentionGradOp
//===----------------------------------------------------------------------===//

template <typename OpTy>
static FailureOr<AttentionDims> verifyGeneralCommon(OpTy op) {
  FailureOr<AttentionDims> dims =
      verifyQueryKeyValue(op, op.getQuery().getType(), op.getKey().getType(),
                          op.getValue().getType());
  if (failed(dims))
    return failure();
  if (failed(verifyScale(
          op, op.getScale()
                  ? std::optional<double>(op.getScale()->convertToDouble())
                  : std::nullopt)) ||
      failed(verifyGeneralWeights(op, op.getWeights().getType(),
                                  op.getSupport(), *dims)))
    return failure();
  return dims;
}

double GeneralAttentionOp::getScaleOrDefault() {
  return getScale() ? getScale()->convertToDouble() : defaultScale(getQuery());
}

LogicalResult GeneralAttentionOp::verify() {
  FailureOr<AttentionDims> dims = verifyGeneralCommon(*this);
  if (failed(dims))
    return failure();
  if (getMethod() && *getMethod() == Method::Polynomial)
    return emitOpError("method 'polynomial' does not apply to per-offset "
                       "weights (position dependence does not factor); use "
                       "'toeplitz' or 'exact'");
  return verifyForwardResults(*this, *dims, getOutput().getType(),
                              rankedOrNull(getLogsumexp()));
}

double GeneralAttentionGradOp::getScaleOrDefault() {
  return getScale() ? getScale()->convertToDouble() : defaultScale(getQuery());
}

LogicalResult GeneralAttentionGradOp::verify() {
  FailureOr<AttentionDims> dims = verifyGeneralCommon(*this);
  if (failed(dims))
    return failure();
  if (getMethod() && *getMethod() == Method::Polynomial)
    return emitOpError("method 'polynomial' does not apply to per-offset "
                       "weights (position dependence does not factor); use "
                       "'toeplitz' or 'exact'");
  if (failed(verifyBackwardOperands(*this, *dims, getOutput().getType(),
                                    getGradOutput().getType(),
                                    rankedOrNull(getLogsumexp()))))
    return failure();
  if (failed(verifyGradResult(*this, "grad_query", getGradQuery().getType(),
                              getQuery().getType())) ||
      failed(verifyGradResult(*this, "grad_key", getGradKey().getType(),
                              getKey().getType())) ||
      failed(verifyGradResult(*this, "grad_value", getGradValue().getType(),
                              getValue().getType())) ||
      failed(verifyGradResult(*this, "grad_weights", getGradWeights().getType(),
                              getWeights().getType())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// PolyFeaturesOp
//===----------------------------------------------------------------------===//

double PolyFeaturesOp::getScaleOrDefault() {
  return getScale() ? getScale()->convertToDouble() : 1.0;
}

FailureOr<int64_t> PolyFeaturesOp::getFeatureCount(int64_t headDim,
                                                   int64_t degree) {
  if (headDim < 0 || degree < 0)
    return failure();
  // C(D + g, g) = C(t + m, m) with t = max(D, g), m = min(D, g): after step
  // i the value is C(t + i, i), an integer, so each division is exact; the
  // product fits in 128 bits since the running value is < 2^63 and the
  // factor t + i < 2^64.
  int64_t m = std::min(headDim, degree);
  unsigned __int128 top =
      static_cast<unsigned __int128>(std::max(headDim, degree));
  unsigned __int128 value = 1;
  const unsigned __int128 limit = std::numeric_limits<int64_t>::max();
  for (int64_t i = 1; i <= m; ++i) {
    value = value * (top + static_cast<unsigned __int128>(i)) /
            static_cast<unsigned __int128>(i);
    if (value > limit)
      return failure();
  }
  return static_cast<int64_t>(value);
}

/// The checks shared by poly_features and poly_features_grad: input rank,
/// coefficients, scale, a static D and the feature count R; returns R.
static FailureOr<int64_t> verifyPolyCommon(Operation *op, RankedTensorType type,
                                           ArrayRef<double> coefficients,
                                           std::optional<APFloat> scale) {
  int64_t rank = type.getRank();
  if (rank < 2)
    return op->emitOpError(
               "expected input of rank >= 2 ([B.., N, D]), found rank ")
           << rank;
  if (coefficients.empty())
    return op->emitOpError("expected at least one coefficient (c_0 .. c_g), "
                           "found none");
  for (auto [i, c] : llvm::enumerate(coefficients))
    if (!std::isfinite(c))
      return op->emitOpError("expected finite coefficients, found ")
             << c << " at index " << i;
  if (failed(verifyScale(op,
                         scale ? std::optional<double>(scale->convertToDouble())
                               : std::nullopt)))
    return failure();
  int64_t d = type.getShape().back();
  if (ShapedType::isDynamic(d))
    return op->emitOpError("expected a static feature dimension D (the "
                           "number of features depends on it), found ?");
  int64_t g = static_cast<int64_t>(coefficients.size()) - 1;
  FailureOr<int64_t> r = PolyFeaturesOp::getFeatureCount(d, g);
  if (failed(r))
    return op->emitOpError("expected C(D + g, g) features to fit in int64, "
                           "found an overflow for D = ")
           << d << ", g = " << g;
  return *r;
}

/// `[B.., N, R]` (or `[B.., R, N]`) described for diagnostics.
static std::string featureShapeText(bool transposed, int64_t d, int64_t g,
                                    int64_t r) {
  return std::string(transposed ? "[B.., R, N]" : "[B.., N, R]") + ", R = C(" +
         std::to_string(d) + " + " + std::to_string(g) + ", " +
         std::to_string(g) + ") = " + std::to_string(r) + ", accumulation type";
}

LogicalResult PolyFeaturesOp::verify() {
  RankedTensorType type = getInput().getType();
  FailureOr<int64_t> r =
      verifyPolyCommon(*this, type, getCoefficients(), getScale());
  if (failed(r))
    return failure();
  int64_t rank = type.getRank();
  SmallVector<int64_t> shape(type.getShape());
  int64_t d = shape.back();
  shape.back() = *r;
  if (getTransposed())
    std::swap(shape[rank - 1], shape[rank - 2]);
  return verifyTensor(*this, "result", getResult().getType(), shape,
                      featureShapeText(getTransposed(), d, getDegree(), *r),
                      getAccumulationType(type.getElementType()));
}

//===----------------------------------------------------------------------===//
// PolyFeaturesGradOp
//===----------------------------------------------------------------------===//

LogicalResult PolyFeaturesGradOp::verify() {
  RankedTensorType type = getInput().getType();
  FailureOr<int64_t> r =
      verifyPolyCommon(*this, type, getCoefficients(), getScale());
  if (failed(r))
    return failure();
  int64_t rank = type.getRank();
  bool transposed = getTransposed();
  Type acc = getAccumulationType(type.getElementType());
  SmallVector<int64_t> shape(type.getShape());
  int64_t d = shape.back();
  shape.back() = *r;
  if (transposed)
    std::swap(shape[rank - 1], shape[rank - 2]);
  if (failed(verifyTensor(*this, "cotangent", getCotangent().getType(), shape,
                          featureShapeText(transposed, d, getDegree(), *r),
                          acc)))
    return failure();
  shape.assign(type.getShape().begin(), type.getShape().end());
  if (transposed)
    std::swap(shape[rank - 1], shape[rank - 2]);
  return verifyTensor(*this, "result", getResult().getType(), shape,
                      std::string(transposed ? "[B.., D, N]" : "[B.., N, D]") +
                          ", accumulation type",
                      acc);
}

/// `[c0, c1, ...]` printed exactly (shortest round-trip form of each double):
/// the stripped DenseF64ArrayAttr form rounds to 7 digits, which would change
/// the polynomial, and its certified bound, on a round trip through text.
static ParseResult parseExactF64Array(OpAsmParser &parser,
                                      DenseF64ArrayAttr &attr) {
  SmallVector<double> values;
  if (parser.parseCommaSeparatedList(OpAsmParser::Delimiter::Square, [&] {
        double v;
        if (parser.parseFloat(v))
          return failure();
        values.push_back(v);
        return success();
      }))
    return failure();
  attr = DenseF64ArrayAttr::get(parser.getContext(), values);
  return success();
}

static void printExactF64Array(OpAsmPrinter &printer, Operation *,
                               DenseF64ArrayAttr attr) {
  printer << "[";
  llvm::interleaveComma(attr.asArrayRef(), printer,
                        [&](double v) { printer.printFloat(APFloat(v)); });
  printer << "]";
}

/// `side query|key`: the bare keyword (an enum attribute printed directly
/// would get a second leading space).
static ParseResult parsePolySide(OpAsmParser &parser, PolySideAttr &side) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<PolySide> value = symbolizePolySide(keyword);
  if (!value)
    return parser.emitError(loc, "expected 'query' or 'key', found '")
           << keyword << "'";
  side = PolySideAttr::get(parser.getContext(), *value);
  return success();
}

static void printPolySide(OpAsmPrinter &printer, Operation *,
                          PolySideAttr side) {
  printer << stringifyPolySide(side.getValue());
}

namespace {
/// `scale(1.0)` is the default: drop it so equal ops print alike.
struct DropUnitPolyScale : OpRewritePattern<PolyFeaturesOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(PolyFeaturesOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getScale() || op.getScale()->convertToDouble() != 1.0)
      return rewriter.notifyMatchFailure(op, "no explicit unit scale");
    rewriter.modifyOpInPlace(op, [&] { op.removeScaleAttr(); });
    return success();
  }
};
} // namespace

void PolyFeaturesOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                                 MLIRContext *context) {
  results.add<DropUnitPolyScale>(context);
}

//===----------------------------------------------------------------------===//
// FftOp
//===----------------------------------------------------------------------===//

LogicalResult FftOp::verify() {
  RankedTensorType type = getInput().getType();
  if (type.getRank() < 2)
    return emitOpError("expected input of rank >= 2 ([B.., L, 2]), found rank ")
           << type.getRank();
  int64_t pair = type.getShape().back();
  if (pair != 2)
    return emitOpError("expected a trailing dimension of size 2 (real, "
                       "imaginary), found ")
           << Dim(pair);
  return success();
}

//===----------------------------------------------------------------------===//
// ToeplitzMatmulOp
//===----------------------------------------------------------------------===//

std::pair<int64_t, int64_t> ToeplitzMatmulOp::getRowsAndCols() {
  int64_t rank = getInput().getType().getRank();
  int64_t in = getInput().getType().getDimSize(rank - 2);
  int64_t out = getResult().getType().getDimSize(rank - 2);
  // T is N × M; T·x maps M rows to N rows, Tᵀ·x maps N rows to M rows.
  return getTransposed() ? std::make_pair(in, out) : std::make_pair(out, in);
}

LogicalResult ToeplitzMatmulOp::verify() {
  RankedTensorType symbol = getSymbol().getType();
  RankedTensorType input = getInput().getType();
  RankedTensorType result = getResult().getType();
  int64_t rank = input.getRank();
  if (rank < 2)
    return emitOpError("expected input of rank >= 2 ([B.., rows, C]), found "
                       "rank ")
           << rank;
  Type e = input.getElementType();
  for (auto [name, t] :
       {std::make_pair("symbol", symbol), std::make_pair("result", result)})
    if (t.getElementType() != e)
      return emitOpError("expected ")
             << name << " element type " << e << " (the input's), found "
             << t.getElementType();
  if (result.getRank() != rank)
    return emitOpError("expected result of rank ")
           << rank << " (the input's), found rank " << result.getRank();
  for (int64_t i = 0; i + 2 < rank; ++i)
    if (!compatible(result.getDimSize(i), input.getDimSize(i)))
      return emitOpError("expected result batch dimension ")
             << i << " to be " << Dim(input.getDimSize(i))
             << " (the input's), found " << Dim(result.getDimSize(i));
  if (!compatible(result.getDimSize(rank - 1), input.getDimSize(rank - 1)))
    return emitOpError("expected result to have ")
           << Dim(input.getDimSize(rank - 1))
           << " columns (the input's), found "
           << Dim(result.getDimSize(rank - 1));
  if (symbol.getRank() != 1 && symbol.getRank() != rank - 1)
    return emitOpError("expected symbol of shape [N + M - 1] or "
                       "[B.., N + M - 1] (rank 1 or ")
           << rank - 1 << "), found rank " << symbol.getRank();
  if (symbol.getRank() > 1)
    for (int64_t i = 0; i + 2 < rank; ++i)
      if (!compatible(symbol.getDimSize(i), input.getDimSize(i)))
        return emitOpError("expected symbol batch dimension ")
               << i << " to be " << Dim(input.getDimSize(i))
               << " (the input's), found " << Dim(symbol.getDimSize(i));
  auto [n, m] = getRowsAndCols();
  int64_t len = offsetCount(n, m);
  int64_t found = symbol.getDimSize(symbol.getRank() - 1);
  if (!compatible(found, len))
    return emitOpError("expected symbol length N + M - 1 = ")
           << Dim(len) << " (N = " << Dim(n) << ", M = " << Dim(m)
           << "), found " << Dim(found);
  return success();
}

#define GET_OP_CLASSES
#include "ropeattn/Dialect/RopeAttn/IR/RopeAttnOps.cpp.inc"
