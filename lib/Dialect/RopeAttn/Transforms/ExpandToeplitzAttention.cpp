//===- ExpandToeplitzAttention.cpp - relative-bias attention by FFT -------===//
//
// Part of the ropeattn project.
//
// Rewrites `ropeattn.attention ... bias(%b) method toeplitz` into polynomial
// features and one Toeplitz product per head (docs/Spec.md §11):
//
//   e^{ℓ_ij + b_{i−j} − b̄} ≈ Σ_α φ_Q(q_i)_α · φ_K(k_j)_α · E_{i−j},
//   E = e^{b − b̄} (b̄ the largest visible bias of the head)
//   X[:, α·W + c] = φ_K(k)_α ∘ U[:, c],  U = [v | 1],  W = Dv + 1
//   Y = Toeplitz(E)·X  (causal: the mask folded into the product)
//   Nm[i, c] = Σ_α φ_Q(q_i)_α · Y[i, α·W + c]
//   O = Nm[:, :Dv] / Nm[:, Dv],  lse = log Nm[:, Dv] + b̄
//
// with the run-time certificate of the polynomial method (β̂ = |s|·max‖q‖·
// max‖k‖ picks the degree) and the exact path when no degree covers β̂ or a
// visible bias entry is not finite. The certificate logic (β̂, candidates) is
// the one of ExpandPolynomial.cpp, repeated here (that file is not shared).
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "ropeattn/Dialect/RopeAttn/Utils/Correlation.h"
#include "ropeattn/Dialect/RopeAttn/Utils/CostModel.h"
#include "ropeattn/Dialect/RopeAttn/Utils/MethodSwitch.h"
#include "ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h"
#include "ropeattn/Dialect/RopeAttn/Utils/RowGradient.h"
#include "ropeattn/Dialect/RopeAttn/Utils/TensorBuilder.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <limits>

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNEXPANDTOEPLITZATTENTION
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

struct Shape {
  int64_t batch, hq, hk, group, n, m, d, dv, bhq, bhk;
  bool causal, sharedBias;
  double scale;
  Type t;
};

/// One compiled degree: valid for every β̂ ≤ betaMax with proven weight
/// error ≤ delta (docs/Polynomial.md).
struct Candidate {
  int64_t degree;
  double betaMax, delta;
  SmallVector<double> coeffs;
};

/// The bias entry of (query head row h of [BHq], table index u) inside a
/// generic body.
Value biasAt(OpBuilder &b, Location l, const Shape &sh, Value bias, Value h,
             Value u) {
  if (sh.sharedBias)
    return tensor::ExtractOp::create(b, l, bias, ValueRange{u});
  Value hq = arith::ConstantIndexOp::create(b, l, sh.hq);
  Value head = arith::RemUIOp::create(b, l, h, hq);
  return tensor::ExtractOp::create(b, l, bias, ValueRange{head, u});
}

/// Whether table index u is a visible offset (causal: δ = u − M + 1 ≥ N − M).
Value visibleAt(OpBuilder &b, Location l, const Shape &sh, Value u) {
  if (!sh.causal)
    return arith::ConstantIntOp::create(b, l, 1, 1);
  return arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, u,
                               arith::ConstantIndexOp::create(b, l, sh.n - 1));
}

/// The intermediates of the features + Toeplitz forward for one degree,
/// shared by the forward and the backward.
struct Products {
  Value phiQ; // [BHq, N, R]
  Value phiK; // [BHk, M, R]
  Value x;    // [BHq, M, R·W]: φ_K(k_j)_α · [v_j | 1]_c
  Value sym;  // [BHq, N + M − 1]: E = e^{b − b̄}
  Value y4;   // [BHq, N, R, W]: Toeplitz(E)·X
  Value nm;   // [BHq, N, W]: Σ_α φ_Q[:, α]·Y[:, α, :]
};

/// Builds Products for one degree. q, k, v: [BH, ·, ·]; bmax: [BHq], the
/// largest visible bias.
Products buildProducts(B &bb, const Shape &sh, Value q, Value k, Value v,
                       Value bias, Value bmax, ArrayRef<double> coeffs) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  Type t = sh.t;
  int64_t g = coeffs.size() - 1;
  int64_t r = poly::featureRank(sh.d, g);
  int64_t w = sh.dv + 1, len = sh.n + sh.m - 1;

  auto features = [&](Value x, PolySide side, int64_t rows, int64_t heads) {
    auto type = RankedTensorType::get({heads, rows, r}, t);
    return PolyFeaturesOp::create(b, loc, type, x,
                                  b.getDenseF64ArrayAttr(coeffs),
                                  PolySideAttr::get(ctx, side),
                                  b.getF64FloatAttr(sh.scale), UnitAttr())
        .getResult();
  };
  Value phiQ = features(q, PolySide::Query, sh.n, sh.bhq);
  Value phiK = features(k, PolySide::Key, sh.m, sh.bhk);

  // X[h, j, α·W + c] = φ_K(k_j)_α · U[j, c] of the query head's kv head.
  Value x = bb.generic(
      ValueRange{}, bb.empty({ia(sh.bhq), ia(sh.m), ia(r * w)}, t),
      {amap(ctx, 3, {0, 1, 2})}, {kPar, kPar, kPar},
      [&](OpBuilder &nb, Location l, ValueRange) {
        B ib{nb, l};
        Value h = linalg::IndexOp::create(nb, l, 0);
        Value j = linalg::IndexOp::create(nb, l, 1);
        Value col = linalg::IndexOp::create(nb, l, 2);
        Value kv = ib.add(ib.mul(ib.div(h, ib.idx(sh.hq)), ib.idx(sh.hk)),
                          ib.div(ib.rem(h, ib.idx(sh.hq)), ib.idx(sh.group)));
        Value alpha = ib.div(col, ib.idx(w));
        Value c = ib.rem(col, ib.idx(w));
        Value f =
            tensor::ExtractOp::create(nb, l, phiK, ValueRange{kv, j, alpha});
        Value isV = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, c,
                                          ib.idx(sh.dv));
        Value cc = arith::SelectOp::create(nb, l, isV, c, ib.idx(0));
        Value vv = tensor::ExtractOp::create(nb, l, v, ValueRange{kv, j, cc});
        Value u = arith::SelectOp::create(nb, l, isV, vv, ib.flt(t, 1.0));
        linalg::YieldOp::create(nb, l,
                                arith::MulFOp::create(nb, l, f, u).getResult());
      });

  // The symbol E[h, u] = e^{b[u] − b̄_h} (masked offsets are dropped by the
  // causal Toeplitz product, whatever their value).
  Value sym = bb.generic(
      bmax, bb.empty({ia(sh.bhq), ia(len)}, t),
      {amap(ctx, 2, {0}), amap(ctx, 2, {0, 1})}, {kPar, kPar},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value h = linalg::IndexOp::create(nb, l, 0);
        Value u = linalg::IndexOp::create(nb, l, 1);
        Value e =
            arith::SubFOp::create(nb, l, biasAt(nb, l, sh, bias, h, u), a[0]);
        linalg::YieldOp::create(nb, l,
                                math::ExpOp::create(nb, l, e).getResult());
      });
  auto yType = RankedTensorType::get({sh.bhq, sh.n, r * w}, t);
  Value y = ToeplitzMatmulOp::create(b, loc, yType, sym, x,
                                     /*transposed=*/false, sh.causal);
  Value y4 = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({sh.bhq, sh.n, r, w}, t), y,
      ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});

  // Nm[h, i, c] = Σ_α φ_Q[h, i, α] · Y[h, i, α, c].
  Value nm = bb.generic(
      ValueRange{phiQ, y4}, bb.filled({ia(sh.bhq), ia(sh.n), ia(w)}, t, 0.0),
      {amap(ctx, 4, {0, 1, 3}), amap(ctx, 4, {0, 1, 3, 2}),
       amap(ctx, 4, {0, 1, 2})},
      {kPar, kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange a) {
        Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, p, a[2]).getResult());
      });

  return {phiQ, phiK, x, sym, y4, nm};
}

/// The features + Toeplitz forward for one degree: o [BHq, N, Dv] and lse
/// [BHq, N]. q, k, v: [BH, ·, ·]; bmax: [BHq], the largest visible bias.
std::pair<Value, Value> buildForward(B &bb, const Shape &sh, Value q, Value k,
                                     Value v, Value bias, Value bmax,
                                     ArrayRef<double> coeffs) {
  OpBuilder &b = bb.b;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  Type t = sh.t;
  Value nm = buildProducts(bb, sh, q, k, v, bias, bmax, coeffs).nm;

  // Rows that see no key (causal, N > M: i < N − M) are exactly 0 / −∞.
  auto emptyRow = [&](OpBuilder &nb, Location l, Value i) -> Value {
    if (!sh.causal || sh.n <= sh.m)
      return arith::ConstantIntOp::create(nb, l, 1, 0);
    return arith::CmpIOp::create(
        nb, l, arith::CmpIPredicate::ult, i,
        arith::ConstantIndexOp::create(nb, l, sh.n - sh.m));
  };
  AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx);
  AffineExpr cdv = getAffineConstantExpr(sh.dv, ctx);
  Value num =
      bb.slice(nm, {ia(0), ia(0), ia(0)}, {ia(sh.bhq), ia(sh.n), ia(sh.dv)}, 0);
  Value o = bb.generic(
      ValueRange{num, nm}, bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.dv)}, t),
      {amap(ctx, 3, {0, 1, 2}), AffineMap::get(3, 0, {d0, d1, cdv}, ctx),
       amap(ctx, 3, {0, 1, 2})},
      {kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
        B ib{nb, l};
        Value i = linalg::IndexOp::create(nb, l, 1);
        Value qv = arith::DivFOp::create(nb, l, a[0], a[1]);
        linalg::YieldOp::create(nb, l,
                                arith::SelectOp::create(nb, l,
                                                        emptyRow(nb, l, i),
                                                        ib.flt(t, 0.0), qv)
                                    .getResult());
      });
  Value lse = bb.generic(
      ValueRange{nm, bmax}, bb.empty({ia(sh.bhq), ia(sh.n)}, t),
      {AffineMap::get(2, 0, {d0, d1, cdv}, ctx), amap(ctx, 2, {0}),
       amap(ctx, 2, {0, 1})},
      {kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
        B ib{nb, l};
        Value i = linalg::IndexOp::create(nb, l, 1);
        Value lg = arith::AddFOp::create(
            nb, l, math::LogOp::create(nb, l, a[0]), a[1]);
        linalg::YieldOp::create(
            nb, l,
            arith::SelectOp::create(nb, l, emptyRow(nb, l, i), ib.negInf(t), lg)
                .getResult());
      });
  return {o, lse};
}

/// The backward for one degree: the exact gradient of the function
/// buildForward computes (docs/Spec.md §11, "attention_grad, method
/// toeplitz"). With P_ij = Σ_α φ_Q(q_i)_α φ_K(k_j)_α E_{i−j} (visible pairs),
/// Ẑ_i = Nm[i, Dv], D_i = dO_i·o_i (o the given output) and
/// Gs = [dO_i/Ẑ_i | −D_i/Ẑ_i], so that ∂L/∂P_ij = Σ_c Gs[i, c]·U[j, c]:
///
///   dφ_Q[i, α] = Σ_c Y[i, α, c]·Gs[i, c]        (Y = Toeplitz(E)·X, forward)
///   S[i, α·W + c] = φ_Q[i, α]·Gs[i, c],   Z = Toeplitz(E)ᵀ·S
///   dφ_K[j, α] = Σ_{group} Σ_c Z[j, α, c]·U[j, c]
///   dv[j, c]   = Σ_{group} Σ_α Z[j, α, c]·φ_K[j, α]
///   db[δ + M − 1] = E_δ · Σ_col Σ_{i−j=δ} S[i, col]·X[j, col]
///
/// dq, dk by the feature vector-Jacobian products; the d-bias
/// cross-correlations by FFT: IFFT(Σ_col FFT(S_col)·conj(FFT(X_col))).
/// Returns dq [BHq, N, D], dk [BHk, M, D], dv [BHk, M, Dv], db (the bias
/// type).
std::tuple<Value, Value, Value, Value>
buildBackward(B &bb, const Shape &sh, Value q, Value k, Value v, Value o,
              Value dO, Value bias, Value bmax, ArrayRef<double> coeffs) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  Type t = sh.t;
  int64_t g = coeffs.size() - 1;
  int64_t r = poly::featureRank(sh.d, g);
  int64_t w = sh.dv + 1, len = sh.n + sh.m - 1, cols = r * w;
  int64_t fftLen = int64_t(llvm::PowerOf2Ceil(uint64_t(len)));
  Products pr = buildProducts(bb, sh, q, k, v, bias, bmax, coeffs);
  auto mulAdd = [](OpBuilder &nb, Location l, ValueRange a) {
    Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
    linalg::YieldOp::create(nb, l,
                            arith::AddFOp::create(nb, l, p, a[2]).getResult());
  };

  // Gs[h, i, c] = [dO_i | −D_i]_c / Ẑ_i, D_i = dO_i·o_i (0 on rows that
  // see no key: causal with N > M leaves the first N − M rows empty).
  Value gs = buildRowGradient(
      bb, pr.nm, dO, o, [&](OpBuilder &nb, Location l, Value i) -> Value {
        if (!sh.causal || sh.n <= sh.m)
          return Value();
        return arith::CmpIOp::create(
            nb, l, arith::CmpIPredicate::ult, i,
            arith::ConstantIndexOp::create(nb, l, sh.n - sh.m));
      });

  // dq = J_Q(q)ᵀ·dφ_Q, dφ_Q[h, i, α] = Σ_c Y[h, i, α, c]·Gs[h, i, c].
  Value dphiQ = bb.generic(ValueRange{pr.y4, gs},
                           bb.filled({ia(sh.bhq), ia(sh.n), ia(r)}, t, 0.0),
                           {amap(ctx, 4, {0, 1, 2, 3}), amap(ctx, 4, {0, 1, 3}),
                            amap(ctx, 4, {0, 1, 2})},
                           {kPar, kPar, kPar, kRed}, mulAdd);
  auto gradType = [&](int64_t heads, int64_t rows) {
    return RankedTensorType::get({heads, rows, sh.d}, t);
  };
  Value dq = PolyFeaturesGradOp::create(
      b, loc, gradType(sh.bhq, sh.n), q, dphiQ, b.getDenseF64ArrayAttr(coeffs),
      PolySideAttr::get(ctx, PolySide::Query), b.getF64FloatAttr(sh.scale),
      UnitAttr());

  // S[h, i, α·W + c] = φ_Q[h, i, α]·Gs[h, i, c]; Z = Toeplitz(E)ᵀ·S.
  Value s4 = bb.generic(
      ValueRange{pr.phiQ, gs},
      bb.empty({ia(sh.bhq), ia(sh.n), ia(r), ia(w)}, t),
      {amap(ctx, 4, {0, 1, 2}), amap(ctx, 4, {0, 1, 3}),
       amap(ctx, 4, {0, 1, 2, 3})},
      {kPar, kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
        linalg::YieldOp::create(
            nb, l, arith::MulFOp::create(nb, l, a[0], a[1]).getResult());
      });
  Value sm = tensor::CollapseShapeOp::create(
      b, loc, s4, ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});
  Value z = ToeplitzMatmulOp::create(
      b, loc, RankedTensorType::get({sh.bhq, sh.m, cols}, t), pr.sym, sm,
      /*transposed=*/true, sh.causal);
  // Query head h = kv·group + gh: Z5[kv, gh, j, α, c].
  Value z5 = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({sh.bhk, sh.group, sh.m, r, w}, t), z,
      ArrayRef<ReassociationIndices>{{0, 1}, {2}, {3, 4}});
  // U = [v | 1].
  Value u = bb.generic(
      ValueRange{}, bb.empty({ia(sh.bhk), ia(sh.m), ia(w)}, t),
      {amap(ctx, 3, {0, 1, 2})}, {kPar, kPar, kPar},
      [&](OpBuilder &nb, Location l, ValueRange) {
        B ib{nb, l};
        Value kv = linalg::IndexOp::create(nb, l, 0);
        Value j = linalg::IndexOp::create(nb, l, 1);
        Value c = linalg::IndexOp::create(nb, l, 2);
        Value isV = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, c,
                                          ib.idx(sh.dv));
        Value cc = arith::SelectOp::create(nb, l, isV, c, ib.idx(0));
        Value vv = tensor::ExtractOp::create(nb, l, v, ValueRange{kv, j, cc});
        linalg::YieldOp::create(
            nb, l,
            arith::SelectOp::create(nb, l, isV, vv, ib.flt(t, 1.0))
                .getResult());
      });
  Value dphiK = bb.generic(ValueRange{z5, u},
                           bb.filled({ia(sh.bhk), ia(sh.m), ia(r)}, t, 0.0),
                           {amap(ctx, 5, {0, 3, 1, 2, 4}),
                            amap(ctx, 5, {0, 1, 4}), amap(ctx, 5, {0, 1, 2})},
                           {kPar, kPar, kPar, kRed, kRed}, mulAdd);
  Value dk = PolyFeaturesGradOp::create(
      b, loc, gradType(sh.bhk, sh.m), k, dphiK, b.getDenseF64ArrayAttr(coeffs),
      PolySideAttr::get(ctx, PolySide::Key), b.getF64FloatAttr(sh.scale),
      UnitAttr());
  Value z5v =
      bb.slice(z5, {ia(0), ia(0), ia(0), ia(0), ia(0)},
               {ia(sh.bhk), ia(sh.group), ia(sh.m), ia(r), ia(sh.dv)}, 0);
  Value dv = bb.generic(ValueRange{z5v, pr.phiK},
                        bb.filled({ia(sh.bhk), ia(sh.m), ia(sh.dv)}, t, 0.0),
                        {amap(ctx, 5, {0, 3, 1, 4, 2}), amap(ctx, 5, {0, 1, 4}),
                         amap(ctx, 5, {0, 1, 2})},
                        {kPar, kPar, kPar, kRed, kRed}, mulAdd);

  // d-bias: the cross-correlations of the columns of S and X, by FFT
  // (Utils/Correlation.h).
  Value corr = crossCorrelate(bb, sm, pr.x, fftLen);
  // dbh[h, u] = E[h, u]·corr[h, (u − (M − 1)) mod L] on visible offsets.
  Value dbh =
      bb.generic(ValueRange{pr.sym}, bb.empty({ia(sh.bhq), ia(len)}, t),
                 {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0, 1})}, {kPar, kPar},
                 [&](OpBuilder &nb, Location l, ValueRange a) {
                   B ib{nb, l};
                   Value h = linalg::IndexOp::create(nb, l, 0);
                   Value uu = linalg::IndexOp::create(nb, l, 1);
                   Value lag = ib.rem(ib.add(uu, ib.idx(fftLen - (sh.m - 1))),
                                      ib.idx(fftLen));
                   Value cv = tensor::ExtractOp::create(
                       nb, l, corr, ValueRange{h, lag, ib.idx(0)});
                   Value val = arith::MulFOp::create(nb, l, a[0], cv);
                   linalg::YieldOp::create(
                       nb, l,
                       arith::SelectOp::create(nb, l, visibleAt(nb, l, sh, uu),
                                               val, ib.flt(t, 0.0))
                           .getResult());
                 });
  // Sum over the heads that share a table entry.
  Value db;
  auto add = [](OpBuilder &nb, Location l, ValueRange a) {
    linalg::YieldOp::create(
        nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
  };
  if (sh.sharedBias) {
    db = bb.generic(ValueRange{dbh}, bb.filled({ia(len)}, t, 0.0),
                    {amap(ctx, 2, {1, 0}), amap(ctx, 2, {0})}, {kPar, kRed},
                    add);
  } else {
    Value dbh3 = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({sh.batch, sh.hq, len}, t), dbh,
        ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    db = bb.generic(ValueRange{dbh3}, bb.filled({ia(sh.hq), ia(len)}, t, 0.0),
                    {amap(ctx, 3, {2, 0, 1}), amap(ctx, 3, {0, 1})},
                    {kPar, kPar, kRed}, add);
  }
  return {dq, dk, dv, db};
}

/// Rewrites attention (forward) and attention_grad (backward) with `method
/// toeplitz` and a bias.
template <typename OpTy>
struct ExpandToeplitzAttention : OpRewritePattern<OpTy> {
  ExpandToeplitzAttention(MLIRContext *ctx, poly::Family family, double epsilon,
                          int64_t maxDegree, int64_t maxRank,
                          int64_t maxFftBytes)
      : OpRewritePattern<OpTy>(ctx), family(family), epsilon(epsilon),
        maxDegree(maxDegree), maxRank(maxRank), maxFftBytes(maxFftBytes) {}

  static constexpr bool isGrad = std::is_same_v<OpTy, AttentionGradOp>;

  /// As ExpandPolynomial: the largest logit range of degree g whose proven
  /// bound meets ε (cost::polyCandidate).
  std::optional<Candidate> candidateFor(int64_t g) const {
    std::optional<cost::PolyCandidate> c =
        cost::polyCandidate(family, g, epsilon);
    if (!c)
      return std::nullopt;
    return Candidate{g, c->betaMax, c->delta,
                     SmallVector<double>(c->coeffs.begin(), c->coeffs.end())};
  }

  LogicalResult decline(OpTy op, PatternRewriter &rewriter,
                        const Twine &why) const {
    return declineToExact(op, rewriter, "ropeattn-expand-toeplitz-attention",
                          why);
  }

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    if (op.getMethodOrDefault() != Method::Toeplitz)
      return rewriter.notifyMatchFailure(op, "not the Toeplitz method");
    RankedTensorType qType = op.getQuery().getType();
    RankedTensorType kType = op.getKey().getType();
    RankedTensorType vType = op.getValue().getType();
    Value bias = op.getBias();
    if (!bias)
      return decline(op, rewriter, "no bias");
    if (op.getRopeAttr())
      return decline(op, rewriter,
                     "fused RoPE is still present (run ropeattn-prerotate "
                     "first; f16/bf16 keep it fused)");
    // The rewrite yields the output and (optionally) the logsumexp; results
    // beyond those are not produced by this method yet.
    if constexpr (!isGrad)
      if (op->getNumResults() != 1 + (op.getLogsumexp() ? 1u : 0u))
        return decline(op, rewriter, "results other than output and logsumexp");
    Type t = qType.getElementType();
    if (!t.isF32() && !t.isF64())
      return decline(op, rewriter, "only f32 and f64 are supported yet");
    auto bType = cast<RankedTensorType>(bias.getType());
    for (auto ty : {qType, kType, vType, bType})
      if (!ty.hasStaticShape())
        return decline(op, rewriter, "dynamic shapes");
    int64_t rank = qType.getRank();
    Shape sh;
    sh.hq = qType.getDimSize(rank - 3);
    sh.hk = kType.getDimSize(rank - 3);
    sh.group = sh.hq / sh.hk;
    sh.n = qType.getDimSize(rank - 2);
    sh.m = kType.getDimSize(rank - 2);
    sh.d = qType.getDimSize(rank - 1);
    sh.dv = vType.getDimSize(rank - 1);
    sh.batch = 1;
    for (int64_t i = 0; i < rank - 3; ++i)
      sh.batch *= qType.getDimSize(i);
    sh.bhq = sh.batch * sh.hq;
    sh.bhk = sh.batch * sh.hk;
    sh.causal = op.getCausal();
    sh.sharedBias = bType.getRank() == 1;
    sh.scale = op.getScaleOrDefault();
    sh.t = t;
    if (sh.n == 0 || sh.m == 0 || sh.bhq == 0)
      return decline(op, rewriter, "an empty problem");

    int64_t bytes = t.getIntOrFloatBitWidth() / 8;
    int64_t fftLen = int64_t(llvm::PowerOf2Ceil(uint64_t(sh.n + sh.m - 1)));
    SmallVector<Candidate> cands;
    std::string why = "no degree ≤ max-degree meets epsilon for any logit "
                      "range";
    for (int64_t g = 1; g <= maxDegree; ++g) {
      if (family == poly::Family::Taylor && g % 2 != 0)
        continue;
      int64_t r = poly::featureRank(sh.d, g);
      long double buffer = (long double)sh.bhq * ((r * (sh.dv + 1) + 1) / 2) *
                           fftLen * 2 * bytes;
      // The backward's d-bias correlations transform every column of S and
      // X at once: two [BHq, R·W, L, 2] buffers.
      if (isGrad)
        buffer = (long double)sh.bhq * r * (sh.dv + 1) * fftLen * 4 * bytes;
      if (r > maxRank) {
        if (cands.empty())
          why = ("feature rank C(D + g, g) = " + Twine(r) +
                 " for D = " + Twine(sh.d) + ", g = " + Twine(g) +
                 " exceeds max-rank = " + Twine(maxRank))
                    .str();
        break;
      }
      if (buffer > (long double)maxFftBytes) {
        if (cands.empty())
          why = ("an FFT buffer of the Toeplitz products needs " +
                 Twine((int64_t)(buffer / (1 << 20))) + " MiB at degree " +
                 Twine(g) + ", over max-fft-mib = " + Twine(maxFftBytes >> 20))
                    .str();
        break;
      }
      if (std::optional<Candidate> c = candidateFor(g))
        cands.push_back(*c);
    }
    if (cands.empty())
      return decline(op, rewriter, why);

    MLIRContext *ctx = rewriter.getContext();
    Location loc = op.getLoc();
    B bb{rewriter, loc};
    Value q = bb.collapseLeading(op.getQuery(), 2);
    Value k = bb.collapseLeading(op.getKey(), 2);
    Value v = bb.collapseLeading(op.getValue(), 2);

    // b̄_h: the largest visible bias of each query head, and whether every
    // visible bias entry is finite (max of 1 - isfinite over them).
    auto ia = [&](int64_t x) -> OpFoldResult {
      return rewriter.getIndexAttr(x);
    };
    // The bias is read through its indexing map, (h, u) → (u) or
    // (h mod Hq, u), so that every loop has a range.
    AffineExpr hd = getAffineDimExpr(0, ctx), ud = getAffineDimExpr(1, ctx);
    AffineMap biasMap = sh.sharedBias
                            ? AffineMap::get(2, 0, {ud}, ctx)
                            : AffineMap::get(2, 0, {hd % sh.hq, ud}, ctx);
    auto stats = bb.genericOp(
        ValueRange{op.getBias()},
        ValueRange{bb.filled({ia(sh.bhq)}, t,
                             -std::numeric_limits<double>::infinity()),
                   bb.filled({}, t, 0.0)},
        {biasMap, amap(ctx, 2, {0}), AffineMap::get(2, 0, ctx)}, {kPar, kRed},
        [&](OpBuilder &nb, Location l, ValueRange in) {
          B ib{nb, l};
          ValueRange a = in.drop_front();
          Value u = linalg::IndexOp::create(nb, l, 1);
          Value val = in[0];
          Value vis = visibleAt(nb, l, sh, u);
          Value m = arith::SelectOp::create(nb, l, vis, val, ib.negInf(t));
          Value finite = arith::CmpFOp::create(
              nb, l, arith::CmpFPredicate::OLT,
              math::AbsFOp::create(nb, l, val),
              ib.flt(t, std::numeric_limits<double>::infinity()));
          Value bad = arith::SelectOp::create(
              nb, l,
              arith::AndIOp::create(
                  nb, l, vis,
                  arith::XOrIOp::create(
                      nb, l, finite,
                      arith::ConstantIntOp::create(nb, l, 1, 1))),
              ib.flt(t, 1.0), ib.flt(t, 0.0));
          linalg::YieldOp::create(
              nb, l,
              ValueRange{arith::MaximumFOp::create(nb, l, m, a[0]),
                         arith::MaximumFOp::create(nb, l, bad, a[1])});
        });
    Value bmax = stats.getResult(0);
    Value anyBad = tensor::ExtractOp::create(rewriter, loc, stats.getResult(1),
                                             ValueRange{});

    // β̂ and the cheapest covering candidate, as ExpandPolynomial.
    Value beta = bb.logitBound(q, k, t, sh.d, sh.scale);
    SmallVector<double> ranges;
    for (const Candidate &c : cands)
      ranges.push_back(c.betaMax);
    Value sel = bb.selectCovering(beta, ranges);
    Value finite = arith::CmpFOp::create(
        rewriter, loc, arith::CmpFPredicate::OEQ, anyBad, bb.flt(t, 0.0));
    sel = arith::SelectOp::create(rewriter, loc, finite, sel,
                                  bb.idx(cands.size()));

    SmallVector<int64_t> cases;
    for (size_t i = 0; i < cands.size(); ++i)
      cases.push_back(i);
    auto sw = scf::IndexSwitchOp::create(rewriter, loc, op->getResultTypes(),
                                         sel, cases, cases.size());
    for (size_t i = 0; i < cands.size(); ++i) {
      Block &blk = sw.getCaseRegions()[i].emplaceBlock();
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(&blk);
      SmallVector<Value> results;
      if constexpr (isGrad) {
        Value o = bb.collapseLeading(op.getOutput(), 2);
        Value dO = bb.collapseLeading(op.getGradOutput(), 2);
        auto [dq, dk, dv, db] = buildBackward(
            bb, sh, q, k, v, o, dO, op.getBias(), bmax, cands[i].coeffs);
        results = {bb.expandLeading(dq, op.getGradQuery().getType(), 2),
                   bb.expandLeading(dk, op.getGradKey().getType(), 2),
                   bb.expandLeading(dv, op.getGradValue().getType(), 2), db};
      } else {
        auto [o, lse] =
            buildForward(bb, sh, q, k, v, op.getBias(), bmax, cands[i].coeffs);
        results = {bb.expandLeading(o, op.getOutput().getType(), 2)};
        if (Value l = op.getLogsumexp())
          results.push_back(
              bb.expandLeading(lse, cast<RankedTensorType>(l.getType()), 1));
      }
      scf::YieldOp::create(rewriter, loc, results);
    }
    {
      buildExactDefault<OpTy>(rewriter, sw, op);
    }
    rewriter.replaceOp(op, sw.getResults());
    return success();
  }

  poly::Family family;
  double epsilon;
  int64_t maxDegree, maxRank, maxFftBytes;
};

struct RopeAttnExpandToeplitzAttentionPass
    : public ropeattn::impl::RopeAttnExpandToeplitzAttentionBase<
          RopeAttnExpandToeplitzAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    if (!(epsilon > 0) || maxDegree < 1 || maxRank <= 0 || maxFftMib <= 0) {
      getOperation()->emitError(
          "ropeattn-expand-toeplitz-attention: epsilon must be > 0, "
          "max-degree >= 1, max-rank and max-fft-mib > 0");
      return signalPassFailure();
    }
    std::optional<poly::Family> fam = parseFamilyOption(
        getOperation(), "ropeattn-expand-toeplitz-attention", familyName);
    if (!fam)
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandToeplitzAttention<AttentionOp>,
                 ExpandToeplitzAttention<AttentionGradOp>>(
        &getContext(), *fam, epsilon, maxDegree, maxRank, maxFftMib << 20);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
