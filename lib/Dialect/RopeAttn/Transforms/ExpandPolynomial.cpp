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

#include "ropeattn/Dialect/RopeAttn/Utils/CostModel.h"
#include "ropeattn/Dialect/RopeAttn/Utils/MethodSwitch.h"
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
#include <type_traits>

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

constexpr auto amap = &TensorBuilder::dimMap;

} // namespace

namespace {

/// x converted elementwise to the float type t (extf or truncf; x itself
/// when it already has it).
Value widen(B &bb, Value x, Type t) {
  auto type = cast<RankedTensorType>(x.getType());
  Type from = type.getElementType();
  if (from == t)
    return x;
  MLIRContext *ctx = bb.b.getContext();
  SmallVector<unsigned> dims;
  for (int64_t i = 0; i < type.getRank(); ++i)
    dims.push_back(i);
  SmallVector<IteratorType> iters(type.getRank(), kPar);
  bool extend = t.getIntOrFloatBitWidth() > from.getIntOrFloatBitWidth();
  return bb.generic(
      x, bb.empty(tensor::getMixedSizes(bb.b, bb.loc, x), t),
      {amap(ctx, type.getRank(), dims), amap(ctx, type.getRank(), dims)}, iters,
      [&](OpBuilder &b2, Location l2, ValueRange a) {
        Value r = extend ? arith::ExtFOp::create(b2, l2, t, a[0]).getResult()
                         : arith::TruncFOp::create(b2, l2, t, a[0]).getResult();
        linalg::YieldOp::create(b2, l2, r);
      });
}

/// What the pattern needs to know of one attention op.
struct Shape {
  int64_t batch, hq, hk, group, n, m, d, dv, bhq, bhk;
  bool causal;
  double scale;
  Type t;
  int64_t shift() const { return m - n; }
};

/// φ(x)ᵀ : [R, rows] for x : [rows, D] in T, through ropeattn.poly_features.
///
/// The feature-major layout vectorizes the feature generation over rows, and
/// every product with the Dv + 1 value columns is built as C[w, ·] +=
/// Σ L(w, ·)·φᵀ, which ropeattn-vectorize-skinny-matmul turns into a
/// register-blocked loop (docs/Design.md, "Skinny products"): over the rows
/// of φᵀ when the rows of x are the output columns (queries), over blocks of
/// φᵀ transposed in registers when the features are (key states).
Value features(B &bb, Value x, ArrayRef<double> coeffs, PolySide side,
               double scale, int64_t rank) {
  auto xt = cast<RankedTensorType>(x.getType());
  auto type =
      RankedTensorType::get({rank, xt.getDimSize(0)}, xt.getElementType());
  return PolyFeaturesOp::create(
      bb.b, bb.loc, type, x, bb.b.getDenseF64ArrayAttr(coeffs),
      PolySideAttr::get(bb.b.getContext(), side), bb.b.getF64FloatAttr(scale),
      bb.b.getUnitAttr());
}

Value scanSlots(B &bb, Value states, int64_t heads, int64_t slots, int64_t w,
                int64_t r, bool reverse);

/// Builds the chunk states [heads, slots + 1, w, r]: the chunks 0..nChunks-1
/// are split into `slots` groups of consecutive chunks; group p's sum of
/// `contrib` (one [w, r] term per chunk, computed in parallel over heads and
/// groups) is then scanned over the groups, sequentially per head:
///   forward: slot c = Σ_{groups p < c} (slot 0 = 0);
///   reverse: slot c = Σ_{groups p ≥ c} (slot `slots` = 0).
Value scanStates(
    B &bb, int64_t heads, int64_t nChunks, int64_t slots, int64_t w, int64_t r,
    Type t, bool reverse,
    function_ref<Value(B &, Value head, Value chunk, Value acc)> contrib) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  OpFoldResult zero = ia(0), one = ia(1);
  int64_t per = (nChunks + slots - 1) / slots;
  Value states = bb.filled({ia(heads), ia(slots + 1), ia(w), ia(r)}, t, 0.0);
  auto p1 = scf::ForallOp::create(b, loc,
                                  ArrayRef<OpFoldResult>{ia(heads), ia(slots)},
                                  ValueRange{states}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(p1.getBody());
    Value uu = p1.getInductionVar(0), pp = p1.getInductionVar(1);
    Value c0 = bb.min(bb.mul(pp, bb.idx(per)), bb.idx(nChunks));
    Value c1 = bb.min(bb.add(c0, bb.idx(per)), bb.idx(nChunks));
    Value acc0 = bb.filled({ia(w), ia(r)}, t, 0.0);
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
        ArrayRef<OpFoldResult>{one, one, ia(w), ia(r)},
        ArrayRef<OpFoldResult>{one, one, one, one});
  }
  return scanSlots(bb, p1.getResult(0), heads, slots, w, r, reverse);
}

/// The scan of scanStates over the slots of `states` [heads, slots + 1, w,
/// r] (each slot holding its group's sum; slot 0 (forward) or `slots`
/// (reverse) zero): sequential over groups, parallel over heads.
Value scanSlots(B &bb, Value states, int64_t heads, int64_t slots, int64_t w,
                int64_t r, bool reverse) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  OpFoldResult zero = ia(0), one = ia(1);
  auto p2 = scf::ForallOp::create(b, loc, ArrayRef<OpFoldResult>{ia(heads)},
                                  ValueRange{states}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(p2.getBody());
    Value uu = p2.getInductionVar(0);
    Value mine = bb.slice(p2.getRegionIterArgs()[0], {uu, zero, zero, zero},
                          {one, ia(slots + 1), ia(w), ia(r)}, 1);
    auto scan = scf::ForOp::create(
        b, loc, bb.idx(0), bb.idx(slots), bb.idx(1), ValueRange{mine},
        [&](OpBuilder &sb, Location sl, Value ii, ValueRange it) {
          B s{sb, sl};
          // forward: slot i + 1 += slot i; reverse: slot c += slot c + 1
          // with c = slots − 1 − i.
          Value from = reverse ? s.sub(s.idx(slots), ii) : ii;
          Value to = reverse ? s.sub(from, s.idx(1)) : s.add(ii, s.idx(1));
          Value prev =
              s.slice(it[0], {from, zero, zero}, {one, ia(w), ia(r)}, 1);
          Value cur = s.slice(it[0], {to, zero, zero}, {one, ia(w), ia(r)}, 1);
          Value sum = s.generic(
              prev, cur, {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0, 1})},
              {kPar, kPar}, [&](OpBuilder &b2, Location l2, ValueRange a) {
                linalg::YieldOp::create(
                    b2, l2,
                    arith::AddFOp::create(b2, l2, a[0], a[1]).getResult());
              });
          Value next =
              s.insert(sum, it[0], {to, zero, zero}, {one, ia(w), ia(r)});
          scf::YieldOp::create(sb, sl, next);
        });
    b.setInsertionPointToStart(p2.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, scan.getResult(0), p2.getRegionIterArgs()[0],
        ArrayRef<OpFoldResult>{uu, zero, zero, zero},
        ArrayRef<OpFoldResult>{one, ia(slots + 1), ia(w), ia(r)},
        ArrayRef<OpFoldResult>{one, one, one, one});
  }
  return p2.getResult(0);
}

/// xᵀ for a 2-d tensor [a, b] → [b, a].
Value transpose2d(B &bb, Value x, OpFoldResult rows, OpFoldResult cols,
                  Type t) {
  MLIRContext *ctx = bb.b.getContext();
  return bb.generic(ValueRange{x}, bb.empty({cols, rows}, t),
                    {amap(ctx, 2, {1, 0}), amap(ctx, 2, {0, 1})}, {kPar, kPar},
                    [&](OpBuilder &b2, Location l2, ValueRange a) {
                      linalg::YieldOp::create(b2, l2, a[0]);
                    });
}

/// Keys per feature block of the key-state products (docs/Design.md,
/// "Skinny products").
constexpr int64_t kKeyRows = 64;

/// The key states of the forward, [BHk, slots + 1, Dv + 1, r] (slot c = the
/// sum of [v_j | 1]ᵀ·Φ_K(k_j) over the first c groups of key chunks), and
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
      bb, sh.bhk, nk, slots, w, r, sh.t, /*reverse=*/false,
      [&](B &g, Value uu, Value cc, Value acc) {
        Value j0 = g.mul(cc, g.idx(chunk));
        Value end = g.min(g.add(j0, g.idx(chunk)), g.idx(sh.m));
        // Sub-chunks of kKeyRows keys: Φ stays in cache from its generation
        // (feature-major, vectorized over the keys) through its transpose
        // to the product.
        auto sub = scf::ForOp::create(
            g.b, g.loc, j0, end, g.idx(kKeyRows), ValueRange{acc},
            [&](OpBuilder &sb, Location sl, Value js, ValueRange it) {
              B x{sb, sl};
              Value len = x.min(x.idx(kKeyRows), x.sub(end, js));
              Value kc = x.slice(k, {uu, js, zero}, {one, len, ia(sh.d)}, 1);
              Value uc = x.slice(u, {uu, js, zero}, {one, len, ia(w)}, 1);
              Value phiT = features(x, kc, c, PolySide::Key, sh.scale, r);
              // acc(w, a) += Σ_j U(j, w)·Φᵀ(a, j): over (w, a, j).
              scf::YieldOp::create(
                  sb, sl,
                  x.matmul(uc, phiT, it[0],
                           {amap(ctx, 3, {2, 0}), amap(ctx, 3, {1, 2}),
                            amap(ctx, 3, {0, 1})}));
            });
        return sub.getResult(0);
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
      bb.slice(states, {kvh, cf, zero, zero}, {one, one, ia(w), ia(r)}, 2);
  Value nm = bb.filled({ia(w), rows}, sh.t, 0.0);
  // Nmᵀ(w, i) += Σ_a S(w, a)·Φ_Qᵀ(a, i): over (w, i, a).
  nm = bb.matmul(
      state, phiQ, nm,
      {amap(ctx, 3, {0, 2}), amap(ctx, 3, {2, 1}), amap(ctx, 3, {0, 1})});
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
    // Nmᵀ(w, i) += Σ_j U(j, w)·e(i, j): over (w, i, j).
    nm = bb.matmul(
        ul, e, nm,
        {amap(ctx, 3, {2, 0}), amap(ctx, 3, {1, 2}), amap(ctx, 3, {0, 1})});
  }
  // O = Nm[:, :Dv] / Nm[:, Dv] and lse = log Nm[:, Dv] (0 / −∞ on empty rows).
  Value den = bb.slice(nm, {ia(sh.dv), zero}, {one, rows}, 0);
  Value denFlat = tensor::CollapseShapeOp::create(
      b, loc, den, ArrayRef<ReassociationIndices>{{0, 1}});
  Value num = bb.slice(nm, {zero, zero}, {ia(sh.dv), rows}, 0);
  Value oT = bb.generic(
      ValueRange{num, denFlat}, bb.empty({rows, ia(sh.dv)}, sh.t),
      {amap(ctx, 2, {1, 0}), amap(ctx, 2, {0}), amap(ctx, 2, {0, 1})},
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

/// s·w ⊙ (dP − D) over [rows, cols] (D per row): the softmax backward of
/// the exact partial blocks, with w the (normalized or not) weights.
Value scaledDs(B &bb, Value w, Value d, Value dp, Type t, double scale) {
  MLIRContext *ctx = bb.b.getContext();
  return bb.generic(
      ValueRange{w, d}, dp,
      {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0}), amap(ctx, 2, {0, 1})},
      {kPar, kPar}, [&](OpBuilder &b2, Location l2, ValueRange a) {
        Value diff = arith::SubFOp::create(b2, l2, a[2], a[1]);
        Value m = arith::MulFOp::create(b2, l2, a[0], diff);
        Value s =
            arith::ConstantOp::create(b2, l2, t, b2.getFloatAttr(t, scale));
        linalg::YieldOp::create(
            b2, l2, arith::MulFOp::create(b2, l2, m, s).getResult());
      });
}

/// x / z per row (0 where z = 0): x [rows, cols], z [rows].
Value divRows(B &bb, Value x, Value z, Type t) {
  MLIRContext *ctx = bb.b.getContext();
  Value out = bb.empty(tensor::getMixedSizes(bb.b, bb.loc, x), t);
  return bb.generic(
      ValueRange{x, z}, out,
      {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0}), amap(ctx, 2, {0, 1})},
      {kPar, kPar}, [&](OpBuilder &b2, Location l2, ValueRange a) {
        Value zero =
            arith::ConstantOp::create(b2, l2, t, b2.getFloatAttr(t, 0.0));
        Value isZero = arith::CmpFOp::create(b2, l2, arith::CmpFPredicate::OEQ,
                                             a[1], zero);
        Value qv = arith::DivFOp::create(b2, l2, a[0], a[1]);
        linalg::YieldOp::create(
            b2, l2,
            arith::SelectOp::create(b2, l2, isZero, zero, qv).getResult());
      });
}

/// Rows per block of the backward's query phase: Φ_Q of one block stays in
/// cache through the products that read it (docs/Design.md, "Skinny
/// products").
constexpr int64_t kQueryRows = 64;

/// One block of query rows of the polynomial backward's query phase.
struct QueryBlock {
  Value phiQ; // Φ_Qᵀ [r, rows]
  Value gs;   // [dO/Ẑ | −D/Ẑ] [rows, Dv + 1]
  Value dq;   // [rows, D], divided by Ẑ
  Value z;    // Ẑ [rows] (polynomial plus exact part)
  Value d;    // D = dO·o [rows]
};

/// The query rows [i0, i0 + rows) of head bh (key head kvh) against the key
/// state `state` [Dv + 1, r] of the cf fully visible key chunks, plus (causal)
/// the exact exponentials of the keys [cf·C, i0 + rows + M − N):
///   Ẑ = KV[Dv, :]·Φ_Q (+ Σ e), D = dO·o,
///   dq = (J_φQᵀ·(KVᵀ·[dO | −D]ᵀ) + s·Σ_j e_ij (dO_i·v_j − D_i) k_j)/Ẑ.
QueryBlock queryBlock(B &bb, const Shape &sh, Value q, Value k, Value v,
                      Value o, Value dO, ArrayRef<double> c, Value state,
                      Value cf, Value bh, Value kvh, Value i0, Value rows,
                      int64_t chunk, int64_t r) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  OpFoldResult zero = ia(0), one = ia(1);
  Type t = sh.t;
  int64_t w = sh.dv + 1;
  double scale = sh.scale;
  SmallVector<AffineMap> plain = {amap(ctx, 3, {0, 2}), amap(ctx, 3, {2, 1}),
                                  amap(ctx, 3, {0, 1})};
  SmallVector<AffineMap> transA = {amap(ctx, 3, {2, 0}), amap(ctx, 3, {2, 1}),
                                   amap(ctx, 3, {0, 1})};
  SmallVector<AffineMap> transB = {amap(ctx, 3, {0, 2}), amap(ctx, 3, {1, 2}),
                                   amap(ctx, 3, {0, 1})};
  Value qt = bb.slice(q, {bh, i0, zero}, {one, rows, ia(sh.d)}, 1);
  Value ot = bb.slice(o, {bh, i0, zero}, {one, rows, ia(sh.dv)}, 1);
  Value dOt = bb.slice(dO, {bh, i0, zero}, {one, rows, ia(sh.dv)}, 1);
  Value phiQ = features(bb, qt, c, PolySide::Query, scale, r);
  // Ẑ (polynomial part) = KV[Dv, :]·Φ_Qᵀ.
  Value zrow = bb.matmul(bb.slice(state, {ia(sh.dv), zero}, {one, ia(r)}, 0),
                         phiQ, bb.filled({one, rows}, t, 0.0), plain);
  Value z = tensor::CollapseShapeOp::create(
      b, loc, zrow, ArrayRef<ReassociationIndices>{{0, 1}});
  // D_i = dO_i·o_i.
  Value dd = bb.generic(
      ValueRange{dOt, ot}, bb.filled({rows}, t, 0.0),
      {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0, 1}), amap(ctx, 2, {0})},
      {kPar, kRed}, [&](OpBuilder &b2, Location l2, ValueRange a) {
        Value m = arith::MulFOp::create(b2, l2, a[0], a[1]);
        linalg::YieldOp::create(
            b2, l2, arith::AddFOp::create(b2, l2, m, a[2]).getResult());
      });
  // G = [dO | −D] and Wᵀ = KVᵀ·Gᵀ : [r, rows]; dqᵀ = J_φQᵀ·W.
  Value gm = bb.insert(dOt, bb.empty({rows, ia(w)}, t), {zero, zero},
                       {rows, ia(sh.dv)});
  Value negD =
      bb.generic(ValueRange{dd}, bb.empty({rows}, t),
                 {amap(ctx, 1, {0}), amap(ctx, 1, {0})}, {kPar},
                 [&](OpBuilder &b2, Location l2, ValueRange a) {
                   linalg::YieldOp::create(
                       b2, l2, arith::NegFOp::create(b2, l2, a[0]).getResult());
                 });
  Value negDcol = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({ShapedType::kDynamic, 1}, t), negD,
      ArrayRef<ReassociationIndices>{{0, 1}},
      ArrayRef<OpFoldResult>{rows, one});
  gm = bb.insert(negDcol, gm, {zero, ia(sh.dv)}, {rows, one});
  // Depth Dv + 1: R = Gᵀ [w, rows], contiguous along the output columns.
  Value gmT = transpose2d(bb, gm, rows, ia(w), t);
  Value wt = bb.matmul(state, gmT, bb.filled({ia(r), rows}, t, 0.0), transA);
  auto dqTType = RankedTensorType::get({sh.d, ShapedType::kDynamic}, t);
  Value dqT = PolyFeaturesGradOp::create(
      b, loc, dqTType, qt, wt, b.getDenseF64ArrayAttr(c),
      PolySideAttr::get(ctx, PolySide::Query), b.getF64FloatAttr(scale),
      b.getUnitAttr());
  Value dq = transpose2d(bb, dqT, ia(sh.d), rows, t);
  if (sh.causal) {
    // The partially visible keys [cf·C, kEnd) with exact exponentials:
    // Ẑ += Σ_j e_ij, dq += s·Σ_j e_ij (dO_i·v_j − D_i) k_j.
    Value kStart = bb.min(bb.mul(cf, bb.idx(chunk)), bb.idx(sh.m));
    Value kEnd = bb.max(
        bb.min(bb.add(bb.add(i0, rows), bb.idx(sh.shift())), bb.idx(sh.m)),
        kStart);
    Value cols = bb.sub(kEnd, kStart);
    Value kl = bb.slice(k, {kvh, kStart, zero}, {one, cols, ia(sh.d)}, 1);
    Value vl = bb.slice(v, {kvh, kStart, zero}, {one, cols, ia(sh.dv)}, 1);
    Value e = exactWeights(bb, sh, qt, kl, i0, kStart, rows, cols);
    z = bb.generic(ValueRange{e}, z, {amap(ctx, 2, {0, 1}), amap(ctx, 2, {0})},
                   {kPar, kRed}, [&](OpBuilder &b2, Location l2, ValueRange a) {
                     linalg::YieldOp::create(
                         b2, l2,
                         arith::AddFOp::create(b2, l2, a[0], a[1]).getResult());
                   });
    Value dp = bb.matmul(dOt, vl, bb.filled({rows, cols}, t, 0.0), transB);
    // dS' = s·e ⊙ (dP − D).
    Value ds = scaledDs(bb, e, dd, dp, t, scale);
    dq = bb.matmul(ds, kl, dq, plain);
  }
  return {phiQ, divRows(bb, gm, z, t), divRows(bb, dq, z, t), z, dd};
}

/// The polynomial backward for one degree: the exact gradient of the
/// polynomial forward above (same weights P_ij = p(ℓ_ij) on fully visible
/// key chunks, e^{ℓ_ij} on the partial ones), with Ẑ_i = Σ_j P_ij recomputed
/// and D_i = dO_i·o_i from the given output:
///
///   dP̂_ij = (dO_i·v_j − D_i)/Ẑ_i                     (∂L/∂P_ij)
///   dq_i = J_φQ(q_i)ᵀ·(KV_{cf}·[dO_i; −D_i])/Ẑ_i      (+ exact part)
///   dk_j = J_φK(k_j)ᵀ·(SQ_c·[v_j; 1])                  (+ exact part)
///   dv_j = φ_K(k_j)ᵀ·SQ_c[:, :Dv]                      (+ exact part)
///
/// with KV the forward's key states and SQ the reverse-scanned query states
/// Σ_i φ_Q(q_i) ⊗ [dO_i/Ẑ_i | −D_i/Ẑ_i] over the queries that see key chunk
/// c through the polynomial. Returns dq [BHq, N, D], dk [BHk, M, D],
/// dv [BHk, M, Dv] in T.
std::tuple<Value, Value, Value>
buildPolyBackward(B &bb, const Shape &sh, Value q, Value k, Value v, Value o,
                  Value dO, ArrayRef<double> c, int64_t chunk) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  OpFoldResult zero = ia(0), one = ia(1);
  Type t = sh.t;
  int64_t g = c.size() - 1;
  int64_t r = poly::featureRank(sh.d, g);
  int64_t w = sh.dv + 1;
  int64_t nk = std::max<int64_t>((sh.m + chunk - 1) / chunk, 1);
  int64_t nq = std::max<int64_t>((sh.n + chunk - 1) / chunk, 1);
  int64_t slotsK = sh.causal ? nk : std::min<int64_t>(nk, 8);
  int64_t slotsQ = sh.causal ? nq : std::min<int64_t>(nq, 8);
  double scale = sh.scale;
  auto plain = [&] {
    return SmallVector<AffineMap>{amap(ctx, 3, {0, 2}), amap(ctx, 3, {2, 1}),
                                  amap(ctx, 3, {0, 1})};
  };
  auto transA = [&] {
    return SmallVector<AffineMap>{amap(ctx, 3, {2, 0}), amap(ctx, 3, {2, 1}),
                                  amap(ctx, 3, {0, 1})};
  };
  auto transB = [&] {
    return SmallVector<AffineMap>{amap(ctx, 3, {0, 2}), amap(ctx, 3, {1, 2}),
                                  amap(ctx, 3, {0, 1})};
  };
  auto transAB = [&] {
    return SmallVector<AffineMap>{amap(ctx, 3, {2, 0}), amap(ctx, 3, {1, 2}),
                                  amap(ctx, 3, {0, 1})};
  };
  auto rowsOf = [&](B &x, Value i0) {
    return x.min(x.idx(chunk), x.sub(x.idx(sh.n), i0));
  };

  auto [states, u] = buildKeyStates(bb, sh, k, v, c, chunk);

  // Phase Q, per (key head, group of query chunks): for each query head of
  // the GQA group, each chunk of the group and each block of kQueryRows rows,
  // Φ_Q is generated once and serves Ẑ, D, dq and the block's query-state
  // term Φ_Q(q)ᵀ·Gs, Gs = [dO/Ẑ | −D/Ẑ] (summed per group into the slots of
  // the reverse scan below).
  int64_t perQ = (nq + slotsQ - 1) / slotsQ;
  Value dqInit = bb.empty({ia(sh.bhq), ia(sh.n), ia(sh.d)}, t);
  Value zInit = bb.empty({ia(sh.bhq), ia(sh.n)}, t);
  Value dInit = bb.empty({ia(sh.bhq), ia(sh.n)}, t);
  Value sqInit = bb.filled({ia(sh.bhk), ia(slotsQ + 1), ia(w), ia(r)}, t, 0.0);
  auto pq = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{ia(sh.bhk), ia(slotsQ)},
      ValueRange{dqInit, zInit, dInit, sqInit}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(pq.getBody());
    Value uu = pq.getInductionVar(0), pp = pq.getInductionVar(1);
    Value c0 = bb.min(bb.mul(pp, bb.idx(perQ)), bb.idx(nq));
    Value c1 = bb.min(bb.add(c0, bb.idx(perQ)), bb.idx(nq));
    Value r0 = bb.min(bb.mul(c0, bb.idx(chunk)), bb.idx(sh.n));
    Value r1 = bb.min(bb.mul(c1, bb.idx(chunk)), bb.idx(sh.n));
    Value rowsG = bb.sub(r1, r0);
    Value first = bb.add(bb.mul(bb.div(uu, bb.idx(sh.hk)), bb.idx(sh.hq)),
                         bb.mul(bb.rem(uu, bb.idx(sh.hk)), bb.idx(sh.group)));
    SmallVector<Value> init = {bb.empty({ia(sh.group), rowsG, ia(sh.d)}, t),
                               bb.empty({ia(sh.group), rowsG}, t),
                               bb.empty({ia(sh.group), rowsG}, t),
                               bb.filled({ia(w), ia(r)}, t, 0.0)};
    auto hloop = scf::ForOp::create(
        b, loc, bb.idx(0), bb.idx(sh.group), bb.idx(1), init,
        [&](OpBuilder &hb, Location hl, Value gh, ValueRange hit) {
          B h{hb, hl};
          Value bh = h.add(first, gh);
          auto cloop = scf::ForOp::create(
              hb, hl, c0, c1, h.idx(1), hit,
              [&](OpBuilder &cb, Location cl, Value qc, ValueRange cit) {
                B x{cb, cl};
                Value ic = x.mul(qc, x.idx(chunk));
                Value iEnd = x.add(ic, rowsOf(x, ic));
                Value cf = fullyVisibleChunks(x, sh, ic, chunk, slotsK);
                Value state = x.slice(states, {uu, cf, zero, zero},
                                      {one, one, ia(w), ia(r)}, 2);
                auto sloop = scf::ForOp::create(
                    cb, cl, ic, iEnd, x.idx(kQueryRows), cit,
                    [&](OpBuilder &sb, Location sl, Value i0, ValueRange it) {
                      B y{sb, sl};
                      Value rows = y.min(y.idx(kQueryRows), y.sub(iEnd, i0));
                      QueryBlock qb =
                          queryBlock(y, sh, q, k, v, o, dO, c, state, cf, bh,
                                     uu, i0, rows, chunk, r);
                      Value acc = y.matmul(qb.gs, qb.phiQ, it[3], transAB());
                      Value at = y.sub(i0, r0);
                      Value dqG = y.insert(qb.dq, it[0], {gh, at, zero},
                                           {one, rows, ia(sh.d)});
                      Value zG = y.insert(qb.z, it[1], {gh, at}, {one, rows});
                      Value dG = y.insert(qb.d, it[2], {gh, at}, {one, rows});
                      scf::YieldOp::create(sb, sl,
                                           ValueRange{dqG, zG, dG, acc});
                    });
                scf::YieldOp::create(cb, cl, sloop.getResults());
              });
          scf::YieldOp::create(hb, hl, cloop.getResults());
        });
    b.setInsertionPointToStart(pq.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, hloop.getResult(0), pq.getRegionIterArgs()[0],
        ArrayRef<OpFoldResult>{first, r0, zero},
        ArrayRef<OpFoldResult>{ia(sh.group), rowsG, ia(sh.d)},
        ArrayRef<OpFoldResult>{one, one, one});
    for (unsigned i : {1u, 2u})
      tensor::ParallelInsertSliceOp::create(
          b, loc, hloop.getResult(i), pq.getRegionIterArgs()[i],
          ArrayRef<OpFoldResult>{first, r0},
          ArrayRef<OpFoldResult>{ia(sh.group), rowsG},
          ArrayRef<OpFoldResult>{one, one});
    // Reverse scan: group pp's sum goes to slot pp.
    tensor::ParallelInsertSliceOp::create(
        b, loc, hloop.getResult(3), pq.getRegionIterArgs()[3],
        ArrayRef<OpFoldResult>{uu, pp, zero, zero},
        ArrayRef<OpFoldResult>{one, one, ia(w), ia(r)},
        ArrayRef<OpFoldResult>{one, one, one, one});
  }
  Value dqAll = pq.getResult(0), zAll = pq.getResult(1), dAll = pq.getResult(2);
  // Query states, reverse-scanned over the groups of query chunks: slot t =
  // the sum over the groups ≥ t.
  Value qstates =
      scanSlots(bb, pq.getResult(3), sh.bhk, slotsQ, w, r, /*reverse=*/true);

  // Phase K, per (key head, key chunk), per block of kKeyRows keys (Φ_K of a
  // block stays in cache): dk, dv.
  Value dkInit = bb.empty({ia(sh.bhk), ia(sh.m), ia(sh.d)}, t);
  Value dvInit = bb.empty({ia(sh.bhk), ia(sh.m), ia(sh.dv)}, t);
  auto pk =
      scf::ForallOp::create(b, loc, ArrayRef<OpFoldResult>{ia(sh.bhk), ia(nk)},
                            ValueRange{dkInit, dvInit}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(pk.getBody());
    Value uu = pk.getInductionVar(0), kc = pk.getInductionVar(1);
    Value jc = bb.mul(kc, bb.idx(chunk));
    Value colsC = bb.min(bb.idx(chunk), bb.sub(bb.idx(sh.m), jc));
    Value jEnd = bb.add(jc, colsC);
    // The first query chunk that sees key chunk c through the polynomial:
    // cf(qc) > c ⟺ qc ≥ ⌈((c + 1)·C − (M − N) − 1)/C⌉.
    Value qStart = bb.idx(0);
    if (sh.causal) {
      Value num = bb.sub(bb.mul(bb.add(kc, bb.idx(1)), bb.idx(chunk)),
                         bb.idx(sh.shift() + 1));
      qStart = arith::CeilDivSIOp::create(b, loc, num, bb.idx(chunk));
      qStart = bb.min(bb.max(qStart, bb.idx(0)), bb.idx(nq));
    }
    Value st = bb.slice(qstates, {uu, qStart, zero, zero},
                        {one, one, ia(w), ia(r)}, 2);
    Value sqV = bb.slice(st, {zero, zero}, {ia(sh.dv), ia(r)}, 0);
    Value first = bb.add(bb.mul(bb.div(uu, bb.idx(sh.hk)), bb.idx(sh.hq)),
                         bb.mul(bb.rem(uu, bb.idx(sh.hk)), bb.idx(sh.group)));
    auto kloop = scf::ForOp::create(
        b, loc, jc, jEnd, bb.idx(kKeyRows),
        ValueRange{bb.empty({colsC, ia(sh.d)}, t),
                   bb.empty({colsC, ia(sh.dv)}, t)},
        [&](OpBuilder &kb, Location kl, Value j0, ValueRange kit) {
          B y{kb, kl};
          Value cols = y.min(y.idx(kKeyRows), y.sub(jEnd, j0));
          Value kt = y.slice(k, {uu, j0, zero}, {one, cols, ia(sh.d)}, 1);
          Value vt = y.slice(v, {uu, j0, zero}, {one, cols, ia(sh.dv)}, 1);
          Value ut = y.slice(u, {uu, j0, zero}, {one, cols, ia(w)}, 1);
          Value phiK = features(y, kt, c, PolySide::Key, scale, r);
          // dvᵀ(c, j) = Σ_a SQ(c, a)·Φ_Kᵀ(a, j).
          Value dvT =
              y.matmul(sqV, phiK, y.filled({ia(sh.dv), cols}, t, 0.0), plain());
          Value dv = transpose2d(y, dvT, ia(sh.dv), cols, t);
          Value utT = transpose2d(y, ut, cols, ia(w), t);
          Value wkt =
              y.matmul(st, utT, y.filled({ia(r), cols}, t, 0.0), transA());
          auto dkTType = RankedTensorType::get({sh.d, ShapedType::kDynamic}, t);
          Value dkT = PolyFeaturesGradOp::create(
              kb, kl, dkTType, kt, wkt, kb.getDenseF64ArrayAttr(c),
              PolySideAttr::get(ctx, PolySide::Key), kb.getF64FloatAttr(scale),
              kb.getUnitAttr());
          Value dk = transpose2d(y, dkT, ia(sh.d), cols, t);
          if (sh.causal) {
            // Exact part: the query chunks [qLo, qStart) see key chunk c
            // partly; qLo is the chunk of the first row that sees key j0.
            Value lo = arith::FloorDivSIOp::create(
                kb, kl, y.sub(j0, y.idx(sh.shift())), y.idx(chunk));
            Value qLo = y.min(y.max(lo, y.idx(0)), y.idx(nq));
            auto qloop = scf::ForOp::create(
                kb, kl, qLo, qStart, y.idx(1), ValueRange{dk, dv},
                [&](OpBuilder &qb, Location ql, Value qc, ValueRange qit) {
                  B x{qb, ql};
                  Value i0 = x.mul(qc, x.idx(chunk));
                  Value rows = rowsOf(x, i0);
                  auto hloop = scf::ForOp::create(
                      qb, ql, x.idx(0), x.idx(sh.group), x.idx(1), qit,
                      [&](OpBuilder &hb, Location hl, Value gh, ValueRange it) {
                        B h{hb, hl};
                        Value bh = h.add(first, gh);
                        Value qt = h.slice(q, {bh, i0, zero},
                                           {one, rows, ia(sh.d)}, 1);
                        Value dOt = h.slice(dO, {bh, i0, zero},
                                            {one, rows, ia(sh.dv)}, 1);
                        Value zt = h.slice(zAll, {bh, i0}, {one, rows}, 1);
                        Value dt = h.slice(dAll, {bh, i0}, {one, rows}, 1);
                        Value e =
                            exactWeights(h, sh, qt, kt, i0, j0, rows, cols);
                        Value a = divRows(h, e, zt, t); // A_ij = e_ij/Ẑ_i
                        Value dvN = h.matmul(a, dOt, it[1], transA());
                        Value dp = h.matmul(
                            dOt, vt, h.filled({rows, cols}, t, 0.0), transB());
                        Value ds = scaledDs(h, a, dt, dp, t, scale);
                        Value dkN = h.matmul(ds, qt, it[0], transA());
                        scf::YieldOp::create(hb, hl, ValueRange{dkN, dvN});
                      });
                  scf::YieldOp::create(qb, ql, hloop.getResults());
                });
            dk = qloop.getResult(0);
            dv = qloop.getResult(1);
          }
          Value at = y.sub(j0, jc);
          Value dkC = y.insert(dk, kit[0], {at, zero}, {cols, ia(sh.d)});
          Value dvC = y.insert(dv, kit[1], {at, zero}, {cols, ia(sh.dv)});
          scf::YieldOp::create(kb, kl, ValueRange{dkC, dvC});
        });
    b.setInsertionPointToStart(pk.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, loc, kloop.getResult(0), pk.getRegionIterArgs()[0],
        ArrayRef<OpFoldResult>{uu, jc, zero},
        ArrayRef<OpFoldResult>{one, colsC, ia(sh.d)},
        ArrayRef<OpFoldResult>{one, one, one});
    tensor::ParallelInsertSliceOp::create(
        b, loc, kloop.getResult(1), pk.getRegionIterArgs()[1],
        ArrayRef<OpFoldResult>{uu, jc, zero},
        ArrayRef<OpFoldResult>{one, colsC, ia(sh.dv)},
        ArrayRef<OpFoldResult>{one, one, one});
  }
  return {dqAll, pk.getResult(0), pk.getResult(1)};
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

/// The pass options the patterns share.
struct Options {
  poly::Family family;
  double epsilon;
  int64_t maxDegree, maxRank, maxStateBytes, chunk;
};

std::optional<Candidate> candidateFor(const Options &opt, int64_t g) {
  std::optional<cost::PolyCandidate> c =
      cost::polyCandidate(opt.family, g, opt.epsilon);
  if (!c)
    return std::nullopt;
  return Candidate{g, c->betaMax, c->delta,
                   SmallVector<double>(c->coeffs.begin(), c->coeffs.end())};
}

/// Rewrites attention / attention_grad with `method polynomial` into an
/// scf.index_switch over the compiled degrees plus the exact method,
/// selected at run time by the certificate β̂ (docs/Spec.md §11).
template <typename OpTy> struct ExpandPolynomial : OpRewritePattern<OpTy> {
  ExpandPolynomial(MLIRContext *ctx, const Options &opt)
      : OpRewritePattern<OpTy>(ctx), opt(opt) {}

  static constexpr bool isGrad = std::is_same_v<OpTy, AttentionGradOp>;

  /// Whether `res` is the forward's certificate result.
  static bool isCertificate(OpTy op, Value res) {
    if constexpr (isGrad)
      return false;
    else
      return res == op.getCertificate();
  }

  /// Falls back to the exact method, saying why in a remark.
  LogicalResult decline(OpTy op, PatternRewriter &rewriter,
                        const Twine &why) const {
    return declineToExact(op, rewriter, "ropeattn-expand-polynomial", why);
  }

  LogicalResult matchAndRewrite(OpTy op,
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
    // The polynomial path computes in T = the accumulation type (f16/bf16
    // operands are extended exactly; fused RoPE is applied in T here, as the
    // exact lowering does, never rounded to 16 bits).
    Type te = qType.getElementType();
    Type t = getAccumulationType(te);
    for (Value x : op->getOperands())
      if (!cast<RankedTensorType>(x.getType()).hasStaticShape())
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
    int64_t chunk = opt.chunk;
    int64_t nk = (sh.m + chunk - 1) / chunk;
    int64_t nq = (sh.n + chunk - 1) / chunk;
    // State slots: the forward's key states, plus the backward's query
    // states.
    int64_t slots = (sh.causal ? nk : std::min<int64_t>(nk, 8)) + 1;
    if (isGrad)
      slots += (sh.causal ? nq : std::min<int64_t>(nq, 8)) + 1;
    SmallVector<Candidate> cands;
    std::string why = "no degree ≤ max-degree meets epsilon for any logit "
                      "range";
    for (int64_t g = 1; g <= opt.maxDegree; ++g) {
      if (opt.family == poly::Family::Taylor && g % 2 != 0)
        continue; // odd Taylor polynomials are not positive everywhere
      int64_t r = poly::featureRank(sh.d, g);
      long double state = (long double)sh.bhk * slots * r * (sh.dv + 1) * bytes;
      if (r > opt.maxRank) {
        if (cands.empty())
          why = ("feature rank C(D + g, g) = " + Twine(r) +
                 " for D = " + Twine(sh.d) + ", g = " + Twine(g) +
                 " exceeds max-rank = " + Twine(opt.maxRank))
                    .str();
        break;
      }
      if (state > (long double)opt.maxStateBytes) {
        if (cands.empty())
          why =
              ("the prefix states need " + Twine((int64_t)(state / (1 << 20))) +
               " MiB at degree " + Twine(g) +
               ", over max-state-mib = " + Twine(opt.maxStateBytes >> 20))
                  .str();
        break;
      }
      if (std::optional<Candidate> c = candidateFor(opt, g))
        cands.push_back(*c);
    }
    if (cands.empty())
      return decline(op, rewriter, why);

    Location loc = op.getLoc();
    B bb{rewriter, loc};
    Value q = widen(bb, bb.collapseLeading(op.getQuery(), 2), t);
    Value k = widen(bb, bb.collapseLeading(op.getKey(), 2), t);
    Value v = widen(bb, bb.collapseLeading(op.getValue(), 2), t);
    RopeAttr rope = op.getRopeAttr(), qRope, kRope;
    if (rope) {
      // Keys at offset + j, queries at offset + (M − N) + i (xPos: centred,
      // and β̂ below sees the scaled rotated vectors).
      std::tie(qRope, kRope) = getAttentionSideRopes(rope, sh.n, sh.m);
      q = createSideRotary(rewriter, loc, q, qRope, RopeSide::Query, false);
      k = createSideRotary(rewriter, loc, k, kRope, RopeSide::Key, false);
    }

    // The certificate β̂, and sel = the cheapest candidate whose range covers
    // it, else #candidates (the exact method).
    Type f64 = rewriter.getF64Type();
    Value beta = bb.logitBound(q, k, t, sh.d, sh.scale);
    SmallVector<double> ranges;
    for (const Candidate &c : cands)
      ranges.push_back(c.betaMax);
    Value sel = bb.selectCovering(beta, ranges);
    SmallVector<int64_t> cases;
    for (size_t i = 0; i < cands.size(); ++i)
      cases.push_back(i);
    // The switch yields every result but the certificate (built below).
    SmallVector<Type> switchTypes;
    for (Value res : op->getResults())
      if (!isCertificate(op, res))
        switchTypes.push_back(res.getType());
    auto sw = scf::IndexSwitchOp::create(rewriter, loc, switchTypes, sel, cases,
                                         cases.size());
    for (size_t i = 0; i < cands.size(); ++i) {
      Block &blk = sw.getCaseRegions()[i].emplaceBlock();
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(&blk);
      ArrayRef<double> coeffs = cands[i].coeffs;
      SmallVector<Value> results;
      if constexpr (isGrad) {
        Value o = widen(bb, bb.collapseLeading(op.getOutput(), 2), t);
        Value dO = widen(bb, bb.collapseLeading(op.getGradOutput(), 2), t);
        auto [dq, dk, dv] =
            buildPolyBackward(bb, sh, q, k, v, o, dO, coeffs, chunk);
        if (rope) {
          // Gradients w.r.t. the unrotated operands: the transposed maps.
          dq =
              createSideRotary(rewriter, loc, dq, qRope, RopeSide::Query, true);
          dk = createSideRotary(rewriter, loc, dk, kRope, RopeSide::Key, true);
        }
        results = {
            bb.expandLeading(widen(bb, dq, te), op.getGradQuery().getType(), 2),
            bb.expandLeading(widen(bb, dk, te), op.getGradKey().getType(), 2),
            bb.expandLeading(widen(bb, dv, te), op.getGradValue().getType(),
                             2)};
      } else {
        auto [o, lse] = buildPolyForward(bb, sh, q, k, v, coeffs, chunk);
        results = {
            bb.expandLeading(widen(bb, o, te), op.getOutput().getType(), 2)};
        if (Value l = op.getLogsumexp())
          results.push_back(
              bb.expandLeading(lse, cast<RankedTensorType>(l.getType()), 1));
      }
      scf::YieldOp::create(rewriter, loc, results);
    }
    {
      buildExactDefault<OpTy>(rewriter, sw, op, [](OpTy exact, Value res) {
        return !isCertificate(exact, res);
      });
    }
    SmallVector<Value> replacements(sw.getResults());
    if constexpr (!isGrad) {
      if (Value cert = op.getCertificate()) {
        // [β̂, g, δ_g, B(δ_g), −log(1 − δ_g)] of the case that ran (zeros
        // after β̂ for the exact method).
        SmallVector<Value> entries = {beta};
        auto pick = [&](function_ref<double(const Candidate &)> f) {
          Value v = bb.flt(f64, 0.0);
          for (size_t i = 0; i < cands.size(); ++i) {
            Value is = arith::CmpIOp::create(
                rewriter, loc, arith::CmpIPredicate::eq, sel, bb.idx(i));
            v = arith::SelectOp::create(rewriter, loc, is,
                                        bb.flt(f64, f(cands[i])), v);
          }
          return v;
        };
        entries.push_back(pick(
            [](const Candidate &c) { return static_cast<double>(c.degree); }));
        entries.push_back(pick([](const Candidate &c) { return c.delta; }));
        entries.push_back(pick([](const Candidate &c) {
          return poly::outputErrorBound(c.delta);
        }));
        entries.push_back(pick(
            [](const Candidate &c) { return poly::lseErrorBound(c.delta); }));
        Value tensor = tensor::FromElementsOp::create(
            rewriter, loc, cast<RankedTensorType>(cert.getType()), entries);
        replacements.push_back(tensor);
      }
    }
    rewriter.replaceOp(op, replacements);
    return success();
  }

  Options opt;
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
    std::optional<poly::Family> fam = parseFamilyOption(
        getOperation(), "ropeattn-expand-polynomial", familyName);
    if (!fam)
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    Options opt{*fam, epsilon, maxDegree, maxRank, maxStateMib << 20, chunk};
    patterns
        .add<ExpandPolynomial<AttentionOp>, ExpandPolynomial<AttentionGradOp>>(
            &getContext(), opt);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
