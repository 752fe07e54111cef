//===- ExpandPolynomial.cpp - polynomial-method attention -----------------===//
//
// Part of the ropeattn project.
//
// Rewrites `ropeattn.attention ... method polynomial` into the polynomial
// method of Alman & Song with a run-time certificate and an exact fallback
// (docs/Polynomial.md, docs/Spec.md §10):
//
//   β̂ = |s|·max_i ‖q_i‖·max_j ‖k_j‖ (RoPE preserves norms: computed on q, k)
//   g  = least candidate degree with δ(g, β̂) ≤ ε, else the exact path
//   e^{ℓ} ≈ p_g(ℓ) = ⟨φ_Q(q̃_i), φ_K(k̃_j)⟩ (ropeattn.poly_features)
//
// Non-causal: KV = Σ_j φ_K(k̃_j) ⊗ [v_j | 1], Nm_i = φ_Q(q̃_i)·KV.
// Causal: keys in chunks of C; per-chunk contributions (parallel), an
// exclusive prefix scan over chunks, then per query chunk the prefix state of
// the fully visible key chunks plus the exact exponentials of the (at most
// two) partially visible chunks. O = Nm[:, :Dv] / Nm[:, Dv], lse = log Nm[:,
// Dv].
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h"
#include "ropeattn/Dialect/RopeAttn/Utils/TensorBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>
#include <limits>

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNEXPANDPOLYNOMIAL
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

using utils::IteratorType;
constexpr IteratorType kPar = IteratorType::parallel;
constexpr IteratorType kRed = IteratorType::reduction;

//===----------------------------------------------------------------------===//
// Builders
//===----------------------------------------------------------------------===//

using B = TensorBuilder;

AffineMap amap(MLIRContext *ctx, unsigned dims, ArrayRef<unsigned> res) {
  SmallVector<AffineExpr> e;
  for (unsigned r : res)
    e.push_back(getAffineDimExpr(r, ctx));
  return AffineMap::get(dims, 0, e, ctx);
}

/// max over all rows of Σ_d x² for x : [P, N, D] → a 0-d tensor.
Value maxSquaredNorm(B &bb, Value x, Type t) {
  MLIRContext *ctx = bb.b.getContext();
  Value init = bb.filled({}, t, 0.0);
  // Σ_d first (per row), then max: one generic would mix max and sum, so two.
  auto type = cast<RankedTensorType>(x.getType());
  Value rowsInit = bb.filled({bb.b.getIndexAttr(type.getDimSize(0)),
                              bb.b.getIndexAttr(type.getDimSize(1))},
                             t, 0.0);
  Value sq = bb.generic(
      x, rowsInit, {amap(ctx, 3, {0, 1, 2}), amap(ctx, 3, {0, 1})},
      {kPar, kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
        Value m = arith::MulFOp::create(b, loc, a[0], a[0]);
        linalg::YieldOp::create(
            b, loc, arith::AddFOp::create(b, loc, m, a[1]).getResult());
      });
  return bb.generic(
      sq, init, {amap(ctx, 2, {0, 1}), AffineMap::get(2, 0, ctx)}, {kRed, kRed},
      [&](OpBuilder &b, Location loc, ValueRange a) {
        linalg::YieldOp::create(
            b, loc, arith::MaximumFOp::create(b, loc, a[0], a[1]).getResult());
      });
}

} // namespace

namespace {

/// What the pattern needs to know of one attention op.
struct Shape {
  int64_t batch, hq, hk, group, n, m, d, dv, bhq, bhk;
  bool causal;
  double scale;
  Type t;
  int64_t shift() const { return m - n; }
};

/// φ(x)ᵀ : [R, rows] for x : [rows, D] in T, through ropeattn.poly_features.
Value features(B &bb, Value x, ArrayRef<double> coeffs, PolySide side,
               double scale, int64_t rank) {
  auto xt = cast<RankedTensorType>(x.getType());
  // Transposed (feature-major) layout [R, rows]: vectorizes over rows.
  auto type =
      RankedTensorType::get({rank, xt.getDimSize(0)}, xt.getElementType());
  return PolyFeaturesOp::create(
      bb.b, bb.loc, type, x, bb.b.getDenseF64ArrayAttr(coeffs),
      PolySideAttr::get(bb.b.getContext(), side), bb.b.getF64FloatAttr(scale),
      bb.b.getUnitAttr());
}

/// Builds the chunk states [heads, slots + 1, r, w]: the chunks 0..nChunks-1
/// are split into `slots` groups of consecutive chunks; group p's sum of
/// `contrib` (one [r, w] term per chunk, computed in parallel over heads and
/// groups) is then scanned over the groups, sequentially per head:
///   forward: slot c = Σ_{groups p < c} (slot 0 = 0);
///   reverse: slot c = Σ_{groups p ≥ c} (slot `slots` = 0).
Value scanStates(
    B &bb, int64_t heads, int64_t nChunks, int64_t slots, int64_t r, int64_t w,
    Type t, bool reverse,
    function_ref<Value(B &, Value head, Value chunk, Value acc)> contrib) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  OpFoldResult zero = ia(0), one = ia(1);
  int64_t per = (nChunks + slots - 1) / slots;
  Value states = bb.filled({ia(heads), ia(slots + 1), ia(r), ia(w)}, t, 0.0);
  auto p1 = scf::ForallOp::create(b, loc,
                                  ArrayRef<OpFoldResult>{ia(heads), ia(slots)},
                                  ValueRange{states}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(p1.getBody());
    Value uu = p1.getInductionVar(0), pp = p1.getInductionVar(1);
    Value c0 = bb.min(bb.mul(pp, bb.idx(per)), bb.idx(nChunks));
    Value c1 = bb.min(bb.add(c0, bb.idx(per)), bb.idx(nChunks));
    Value acc0 = bb.filled({ia(r), ia(w)}, t, 0.0);
    auto group = scf::ForOp::create(
        b, loc, c0, c1, bb.idx(1), ValueRange{acc0},
        [&](OpBuilder &gb, Location gl, Value cc, ValueRange it) {
          B g{gb, gl};
          scf::YieldOp::create(gb, gl, contrib(g, uu, cc, it[0]));
        });
    Value slot = reverse ? pp : bb.add(pp, bb.idx(1));
    b.setInsertionPointToStart(p1.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, group.getResult(0), p1.getRegionIterArgs()[0],
        ArrayRef<OpFoldResult>{uu, slot, zero, zero},
        ArrayRef<OpFoldResult>{one, one, ia(r), ia(w)},
        ArrayRef<OpFoldResult>{one, one, one, one});
  }
  states = p1.getResult(0);

  // The scan over the slots: sequential over groups, parallel over heads.
  auto p2 = scf::ForallOp::create(b, loc, ArrayRef<OpFoldResult>{ia(heads)},
                                  ValueRange{states}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(p2.getBody());
    Value uu = p2.getInductionVar(0);
    Value mine = bb.slice(p2.getRegionIterArgs()[0], {uu, zero, zero, zero},
                          {one, ia(slots + 1), ia(r), ia(w)}, 1);
    auto scan = scf::ForOp::create(
        b, loc, bb.idx(0), bb.idx(slots), bb.idx(1), ValueRange{mine},
        [&](OpBuilder &sb, Location sl, Value ii, ValueRange it) {
          B s{sb, sl};
          // forward: slot i + 1 += slot i; reverse: slot c += slot c + 1
          // with c = slots − 1 − i.
          Value from = reverse ? s.sub(s.idx(slots), ii) : ii;
          Value to = reverse ? s.sub(from, s.idx(1)) : s.add(ii, s.idx(1));
          Value prev =
              s.slice(it[0], {from, zero, zero}, {one, ia(r), ia(w)}, 1);
          Value cur = s.slice(it[0], {to, zero, zero}, {one, ia(r), ia(w)}, 1);
          Value sum = s.generic(
              prev, cur, {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0, 1})},
              {kPar, kPar}, [&](OpBuilder &b2, Location l2, ValueRange a) {
                linalg::YieldOp::create(
                    b2, l2,
                    arith::AddFOp::create(b2, l2, a[0], a[1]).getResult());
              });
          Value next =
              s.insert(sum, it[0], {to, zero, zero}, {one, ia(r), ia(w)});
          scf::YieldOp::create(sb, sl, next);
        });
    b.setInsertionPointToStart(p2.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, scan.getResult(0), p2.getRegionIterArgs()[0],
        ArrayRef<OpFoldResult>{uu, zero, zero, zero},
        ArrayRef<OpFoldResult>{one, ia(slots + 1), ia(r), ia(w)},
        ArrayRef<OpFoldResult>{one, one, one, one});
  }
  return p2.getResult(0);
}

/// The key states of the forward, [BHk, slots + 1, r, Dv + 1] (slot c = the
/// sum of Φ_K(k_j)ᵀ·[v_j | 1] over the first c groups of key chunks), and
/// U = [v | 1] : [BHk, M, Dv + 1]. Causal: one chunk per group (the queries
/// need every chunk boundary); non-causal: at most 8 groups, enough
/// parallelism without a state per chunk.
std::pair<Value, Value> buildKeyStates(B &bb, const Shape &sh, Value k, Value v,
                                       ArrayRef<double> c, int64_t chunk) {
  OpBuilder &b = bb.b;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  OpFoldResult zero = ia(0), one = ia(1);
  int64_t r = poly::featureRank(sh.d, c.size() - 1);
  int64_t w = sh.dv + 1;
  int64_t nk = std::max<int64_t>((sh.m + chunk - 1) / chunk, 1);
  Value u = bb.filled({ia(sh.bhk), ia(sh.m), ia(w)}, sh.t, 1.0);
  u = bb.insert(v, u, {zero, zero, zero}, {ia(sh.bhk), ia(sh.m), ia(sh.dv)});
  int64_t slots = sh.causal ? nk : std::min<int64_t>(nk, 8);
  Value states = scanStates(
      bb, sh.bhk, nk, slots, r, w, sh.t, /*reverse=*/false,
      [&](B &g, Value uu, Value cc, Value acc) {
        Value j0 = g.mul(cc, g.idx(chunk));
        Value len = g.min(g.idx(chunk), g.sub(g.idx(sh.m), j0));
        Value kc = g.slice(k, {uu, j0, zero}, {one, len, ia(sh.d)}, 1);
        Value uc = g.slice(u, {uu, j0, zero}, {one, len, ia(w)}, 1);
        Value phi = features(g, kc, c, PolySide::Key, sh.scale, r);
        // acc(a, w) += Σ_j Φᵀ(a, j)·U(j, w): a plain matmul over (a, w, j).
        return g.matmul(
            phi, uc, acc,
            {amap(ctx, 3, {0, 2}), amap(ctx, 3, {2, 1}), amap(ctx, 3, {0, 1})});
      });
  return {states, u};
}

/// The number of key chunks fully visible from query chunk `qc` (all of
/// them, or for causal ops the cf = ⌊(i0 + M − N + 1)/C⌋ chunks whose last
/// key is visible from the chunk's first row i0 = qc·C), as an index value.
Value fullyVisibleChunks(B &bb, const Shape &sh, Value i0, int64_t chunk,
                         int64_t slots) {
  if (!sh.causal)
    return bb.idx(slots);
  int64_t nk = std::max<int64_t>((sh.m + chunk - 1) / chunk, 1);
  Value lim = bb.max(bb.add(i0, bb.idx(sh.shift() + 1)), bb.idx(0));
  return bb.min(bb.div(lim, bb.idx(chunk)), bb.idx(nk));
}

/// e_ij = exp(s·⟨q_i, k_j⟩) for the rows i0 + [0, rows) and the keys
/// [kStart, kStart + cols), 0 where causally hidden (j > i + M − N).
Value exactWeights(B &bb, const Shape &sh, Value qt, Value kl, Value i0,
                   Value kStart, Value rows, Value cols) {
  MLIRContext *ctx = bb.b.getContext();
  Value s = bb.filled({rows, cols}, sh.t, 0.0);
  s = bb.matmul(
      qt, kl, s,
      {amap(ctx, 3, {0, 2}), amap(ctx, 3, {1, 2}), amap(ctx, 3, {0, 1})});
  double scale = sh.scale;
  int64_t shift = sh.shift();
  Type t = sh.t;
  return bb.generic(
      ValueRange{}, s, {amap(ctx, 2, {0, 1})}, {kPar, kPar},
      [&](OpBuilder &b2, Location l2, ValueRange a) {
        Value ri = linalg::IndexOp::create(b2, l2, 0);
        Value ci = linalg::IndexOp::create(b2, l2, 1);
        Value i = arith::AddIOp::create(b2, l2, ri, i0);
        Value j = arith::AddIOp::create(b2, l2, ci, kStart);
        Value lim = arith::AddIOp::create(
            b2, l2, i, arith::ConstantIndexOp::create(b2, l2, shift));
        Value hidden =
            arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::sgt, j, lim);
        Value sv = arith::MulFOp::create(
            b2, l2, a[0],
            arith::ConstantOp::create(b2, l2, t, b2.getFloatAttr(t, scale)));
        Value ex = math::ExpOp::create(b2, l2, sv);
        Value z = arith::ConstantOp::create(b2, l2, t, b2.getFloatAttr(t, 0.0));
        linalg::YieldOp::create(
            b2, l2, arith::SelectOp::create(b2, l2, hidden, z, ex).getResult());
      });
}

/// The polynomial forward for one degree: returns o [BHq, N, Dv] and lse
/// [BHq, N] in T. q, k, v are [BH, ·, ·] in T (already rotated).
std::pair<Value, Value> buildPolyForward(B &bb, const Shape &sh, Value q,
                                         Value k, Value v, ArrayRef<double> c,
                                         int64_t chunk) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  OpFoldResult zero = ia(0), one = ia(1);
  int64_t g = c.size() - 1;
  int64_t r = poly::featureRank(sh.d, g);
  int64_t w = sh.dv + 1;
  int64_t nk = std::max<int64_t>((sh.m + chunk - 1) / chunk, 1);
  int64_t nq = (sh.n + chunk - 1) / chunk;
  int64_t slots = sh.causal ? nk : std::min<int64_t>(nk, 8);
  auto [states, u] = buildKeyStates(bb, sh, k, v, c, chunk);

  // Phase 3: per (query head, query chunk).
  Value oInit = bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.dv)}, sh.t);
  Value lInit = bb.empty({ia(sh.bhq), ia(sh.n)}, sh.t);
  auto p3 = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{ia(sh.bhq), ia(std::max<int64_t>(nq, 1))},
      ValueRange{oInit, lInit}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(p3.getBody());
  Value bh = p3.getInductionVar(0), qc = p3.getInductionVar(1);
  Value i0 = bb.mul(qc, bb.idx(chunk));
  Value rows = bb.min(bb.idx(chunk), bb.sub(bb.idx(sh.n), i0));
  Value kvh = bb.add(bb.mul(bb.div(bh, bb.idx(sh.hq)), bb.idx(sh.hk)),
                     bb.div(bb.rem(bh, bb.idx(sh.hq)), bb.idx(sh.group)));
  Value qt = bb.slice(q, {bh, i0, zero}, {one, rows, ia(sh.d)}, 1);
  Value phiQ = features(bb, qt, c, PolySide::Query, sh.scale, r);
  Value cf = fullyVisibleChunks(bb, sh, i0, chunk, slots);
  Value state =
      bb.slice(states, {kvh, cf, zero, zero}, {one, one, ia(r), ia(w)}, 2);
  Value nm = bb.filled({rows, ia(w)}, sh.t, 0.0);
  // Nm(i, w) += Σ_a Φ_Qᵀ(a, i)·S(a, w): A transposed, over (i, w, a).
  nm = bb.matmul(
      phiQ, state, nm,
      {amap(ctx, 3, {2, 0}), amap(ctx, 3, {2, 1}), amap(ctx, 3, {0, 1})});
  if (sh.causal) {
    // Exact exponentials for the partially visible keys [cf·C, kEnd).
    Value kStart = bb.min(bb.mul(cf, bb.idx(chunk)), bb.idx(sh.m));
    Value kEnd = bb.max(
        bb.min(bb.add(bb.add(i0, rows), bb.idx(sh.shift())), bb.idx(sh.m)),
        kStart);
    Value cols = bb.sub(kEnd, kStart);
    Value kl = bb.slice(k, {kvh, kStart, zero}, {one, cols, ia(sh.d)}, 1);
    Value ul = bb.slice(u, {kvh, kStart, zero}, {one, cols, ia(w)}, 1);
    Value e = exactWeights(bb, sh, qt, kl, i0, kStart, rows, cols);
    nm = bb.matmul(
        e, ul, nm,
        {amap(ctx, 3, {0, 2}), amap(ctx, 3, {2, 1}), amap(ctx, 3, {0, 1})});
  }
  // O = Nm[:, :Dv] / Nm[:, Dv] and lse = log Nm[:, Dv] (0 / −∞ on empty rows).
  Value den = bb.slice(nm, {zero, ia(sh.dv)}, {rows, one}, 0);
  Value denFlat = tensor::CollapseShapeOp::create(
      b, loc, den, ArrayRef<ReassociationIndices>{{0, 1}});
  Value num = bb.slice(nm, {zero, zero}, {rows, ia(sh.dv)}, 0);
  Value oT = bb.generic(
      ValueRange{num, denFlat}, bb.empty({rows, ia(sh.dv)}, sh.t),
      {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0}), amap(ctx, 2, {0, 1})},
      {kPar, kPar}, [&](OpBuilder &b2, Location l2, ValueRange a) {
        Value z =
            arith::ConstantOp::create(b2, l2, sh.t, b2.getFloatAttr(sh.t, 0.0));
        Value isZero =
            arith::CmpFOp::create(b2, l2, arith::CmpFPredicate::OEQ, a[1], z);
        Value qv = arith::DivFOp::create(b2, l2, a[0], a[1]);
        linalg::YieldOp::create(
            b2, l2, arith::SelectOp::create(b2, l2, isZero, z, qv).getResult());
      });
  Value lT = bb.generic(
      denFlat, bb.empty({rows}, sh.t), {amap(ctx, 1, {0}), amap(ctx, 1, {0})},
      {kPar}, [&](OpBuilder &b2, Location l2, ValueRange a) {
        Value z =
            arith::ConstantOp::create(b2, l2, sh.t, b2.getFloatAttr(sh.t, 0.0));
        Value ninf = arith::ConstantOp::create(
            b2, l2, sh.t,
            b2.getFloatAttr(sh.t, -std::numeric_limits<double>::infinity()));
        Value isZero =
            arith::CmpFOp::create(b2, l2, arith::CmpFPredicate::OEQ, a[0], z);
        Value lg = math::LogOp::create(b2, l2, a[0]);
        linalg::YieldOp::create(
            b2, l2,
            arith::SelectOp::create(b2, l2, isZero, ninf, lg).getResult());
      });
  b.setInsertionPointToStart(p3.getTerminator().getBody());
  tensor::ParallelInsertSliceOp::create(
      b, loc, oT, p3.getRegionIterArgs()[0],
      ArrayRef<OpFoldResult>{bh, i0, zero},
      ArrayRef<OpFoldResult>{one, rows, ia(sh.dv)},
      ArrayRef<OpFoldResult>{one, one, one});
  tensor::ParallelInsertSliceOp::create(
      b, loc, lT, p3.getRegionIterArgs()[1], ArrayRef<OpFoldResult>{bh, i0},
      ArrayRef<OpFoldResult>{one, rows}, ArrayRef<OpFoldResult>{one, one});
  return {p3.getResult(0), p3.getResult(1)};
}

} // namespace

namespace {

/// One compiled degree: valid for every β̂ ≤ betaMax with proven weight
/// error ≤ delta (docs/Polynomial.md).
struct Candidate {
  int64_t degree;
  double betaMax, delta;
  SmallVector<double> coeffs;
};

struct ExpandPolynomialAttention : OpRewritePattern<AttentionOp> {
  ExpandPolynomialAttention(MLIRContext *ctx, poly::Family family,
                            double epsilon, int64_t maxDegree, int64_t maxRank,
                            int64_t maxStateBytes, int64_t chunk)
      : OpRewritePattern(ctx), family(family), epsilon(epsilon),
        maxDegree(maxDegree), maxRank(maxRank), maxStateBytes(maxStateBytes),
        chunk(chunk) {}

  /// The largest logit range of degree g whose proven bound meets ε: Taylor
  /// in closed form, the fitted families on the grid 2^(k/2), k = −8..6.
  std::optional<Candidate> candidateFor(int64_t g) const {
    auto make = [&](const poly::ExpApprox &a) -> std::optional<Candidate> {
      if (!a.positive || !(a.delta <= epsilon) || a.coeffs.empty())
        return std::nullopt;
      return Candidate{g, a.beta, a.delta,
                       SmallVector<double>(a.coeffs.begin(), a.coeffs.end())};
    };
    if (family == poly::Family::Taylor) {
      double b = poly::taylorBetaLimit(g, epsilon);
      if (!(b > 0))
        return std::nullopt;
      return make(poly::taylor(g, std::min(b, 8.0)));
    }
    for (int k = 6; k >= -8; --k) {
      double b = std::pow(2.0, k / 2.0);
      if (auto c = make(poly::approximate(family, g, b)))
        return c;
    }
    return std::nullopt;
  }

  /// Falls back to the exact method, saying why in a remark.
  LogicalResult decline(AttentionOp op, PatternRewriter &rewriter,
                        const Twine &why) const {
    op.emitRemark("ropeattn-expand-polynomial: exact path: ") << why;
    rewriter.modifyOpInPlace(op, [&] {
      op.setMethodAttr(MethodAttr::get(op.getContext(), Method::Exact));
    });
    return success();
  }

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getMethodOrDefault() != Method::Polynomial)
      return rewriter.notifyMatchFailure(op, "not the polynomial method");
    RankedTensorType qType = op.getQuery().getType();
    RankedTensorType kType = op.getKey().getType();
    RankedTensorType vType = op.getValue().getType();
    if (op.getBias())
      return decline(op, rewriter,
                     "a relative bias needs the Toeplitz method (the bias "
                     "does not factor through the features)");
    if (op.getRopeAttr())
      return decline(op, rewriter,
                     "fused RoPE is still present (run ropeattn-prerotate "
                     "first; f16/bf16 keep it fused)");
    Type t = qType.getElementType();
    if (!t.isF32() && !t.isF64())
      return decline(op, rewriter, "only f32 and f64 are supported yet");
    for (auto ty : {qType, kType, vType})
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
    sh.scale = op.getScaleOrDefault();
    sh.t = t;
    if (sh.n == 0 || sh.m == 0 || sh.bhq == 0)
      return decline(op, rewriter, "an empty problem");

    // Candidates: each degree within the budgets, with the largest β (on a
    // geometric grid, or Taylor's closed form) for which the family's proven
    // bound meets ε, and the coefficients fitted on [−β, β].
    int64_t bytes = t.getIntOrFloatBitWidth() / 8;
    int64_t nk = (sh.m + chunk - 1) / chunk;
    SmallVector<Candidate> cands;
    std::string why = "no degree ≤ max-degree meets epsilon for any logit "
                      "range";
    for (int64_t g = 1; g <= maxDegree; ++g) {
      if (family == poly::Family::Taylor && g % 2 != 0)
        continue; // odd Taylor polynomials are not positive everywhere
      int64_t r = poly::featureRank(sh.d, g);
      int64_t slots = sh.causal ? nk : std::min<int64_t>(nk, 8);
      long double state =
          (long double)sh.bhk * (slots + 1) * r * (sh.dv + 1) * bytes;
      if (r > maxRank) {
        if (cands.empty())
          why = ("feature rank C(D + g, g) = " + Twine(r) +
                 " for D = " + Twine(sh.d) + ", g = " + Twine(g) +
                 " exceeds max-rank = " + Twine(maxRank))
                    .str();
        break;
      }
      if (state > (long double)maxStateBytes) {
        if (cands.empty())
          why =
              ("the prefix states need " + Twine((int64_t)(state / (1 << 20))) +
               " MiB at degree " + Twine(g) +
               ", over max-state-mib = " + Twine(maxStateBytes >> 20))
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

    // Certificate: β̂ = |s|·max‖q‖·max‖k‖ ≥ max|ℓ| (Cauchy–Schwarz; RoPE is a
    // rotation), evaluated in f64 from the squared norms in T, enlarged by the
    // rounding of those sums ((D + 2)·u relative each).
    Type f64 = rewriter.getF64Type();
    auto scalar = [&](Value sq) -> Value {
      Value x = tensor::ExtractOp::create(rewriter, loc, sq, ValueRange{});
      if (!t.isF64())
        x = arith::ExtFOp::create(rewriter, loc, f64, x);
      return math::SqrtOp::create(rewriter, loc, x);
    };
    double u = t.isF64() ? 0x1p-53 : 0x1p-24;
    double slack = 1.0 + 2.0 * (sh.d + 2) * u;
    Value beta = arith::MulFOp::create(
        rewriter, loc,
        arith::MulFOp::create(rewriter, loc, scalar(maxSquaredNorm(bb, q, t)),
                              scalar(maxSquaredNorm(bb, k, t))),
        bb.flt(f64, std::abs(sh.scale) * slack));
    // sel = the cheapest candidate whose range covers β̂, else #candidates
    // (the exact method).
    Value sel = bb.idx(cands.size());
    for (int64_t i = cands.size() - 1; i >= 0; --i) {
      Value ok = arith::CmpFOp::create(rewriter, loc, arith::CmpFPredicate::OLE,
                                       beta, bb.flt(f64, cands[i].betaMax));
      sel = arith::SelectOp::create(rewriter, loc, ok, bb.idx(i), sel);
    }
    SmallVector<int64_t> cases;
    for (size_t i = 0; i < cands.size(); ++i)
      cases.push_back(i);
    auto sw = scf::IndexSwitchOp::create(rewriter, loc, op->getResultTypes(),
                                         sel, cases, cases.size());
    for (size_t i = 0; i < cands.size(); ++i) {
      Block &blk = sw.getCaseRegions()[i].emplaceBlock();
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(&blk);
      ArrayRef<double> coeffs = cands[i].coeffs;
      auto [o, lse] = buildPolyForward(bb, sh, q, k, v, coeffs, chunk);
      SmallVector<Value> results = {
          bb.expandLeading(o, op.getOutput().getType(), 2)};
      if (Value l = op.getLogsumexp())
        results.push_back(
            bb.expandLeading(lse, cast<RankedTensorType>(l.getType()), 1));
      scf::YieldOp::create(rewriter, loc, results);
    }
    {
      Block &blk = sw.getDefaultRegion().emplaceBlock();
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(&blk);
      auto exact = cast<AttentionOp>(rewriter.clone(*op));
      exact.setMethodAttr(MethodAttr::get(ctx, Method::Exact));
      scf::YieldOp::create(rewriter, loc, exact->getResults());
    }
    rewriter.replaceOp(op, sw.getResults());
    return success();
  }

  poly::Family family;
  double epsilon;
  int64_t maxDegree, maxRank, maxStateBytes, chunk;
};

struct RopeAttnExpandPolynomialPass
    : public ropeattn::impl::RopeAttnExpandPolynomialBase<
          RopeAttnExpandPolynomialPass> {
  using Base::Base;
  void runOnOperation() override {
    if (!(epsilon > 0) || maxDegree < 1 || chunk <= 0 || maxRank <= 0) {
      getOperation()->emitError(
          "ropeattn-expand-polynomial: epsilon must be > 0, max-degree >= 1, "
          "chunk and max-rank > 0");
      return signalPassFailure();
    }
    std::optional<poly::Family> fam = poly::parseFamily(familyName);
    if (!fam) {
      getOperation()->emitError("ropeattn-expand-polynomial: unknown family '")
          << familyName << "'; expected taylor, chebyshev or minimax";
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandPolynomialAttention>(&getContext(), *fam, epsilon,
                                            maxDegree, maxRank,
                                            maxStateMib << 20, chunk);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
