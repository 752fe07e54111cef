//===- ExpandGeneralAttention.cpp - general form by monomials and FFT -----===//
//
// Part of the ropeattn project.
//
// Rewrites `ropeattn.general_attention ... method toeplitz` into the monomial
// form of Alman & Song (FRA Def. 1.1; docs/Spec.md §16). With the support
// gather q̂_it = q_i[a_t], k̂_jt = k_j[b_t] and w_t(δ) = W[δ + M − 1, t],
//
//   ℓ_ij = s·Σ_t q̂_it·w_t(i−j)·k̂_jt
//   p(ℓ) = Σ_k c_k ℓ^k = Σ_{|m| ≤ g} c_|m|·s^|m|·(|m| choose m)·
//          Π_t q̂_it^{m_t} · Π_t w_t(i−j)^{m_t} · Π_t k̂_jt^{m_t}
//
// (multinomial theorem), so with U = [v | 1], W' = Dv + 1:
//
//   u_m[i] = Π_t q̂_it^{m_t},  v_m[j] = Π_t k̂_jt^{m_t},  t_m(δ) = Π_t
//   w_t(δ)^{m_t} X[m, j, c] = v_m[j]·U[j, c],  Y[m] = Toeplitz(t_m)·X[m]
//   (causal: masked) Nm[i, c] = Σ_m coef_m·u_m[i]·Y[m, i, c],  coef_m = c_|m|
//   s^|m| (|m| choose m) O = Nm[:, :Dv] / Nm[:, Dv],  lse = log Nm[:, Dv]
//
// over |𝓜| = C(|S| + g, g) monomials m : S → ℕ. Run-time certificate:
// β̂ = ω·|s|·max‖q̂_i‖·max‖k̂_j‖ ≥ max|ℓ| (ω = max visible |w|), the cheapest
// compiled degree covering β̂, else the exact op.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "ropeattn/Dialect/RopeAttn/Utils/Correlation.h"
#include "ropeattn/Dialect/RopeAttn/Utils/CostModel.h"
#include "ropeattn/Dialect/RopeAttn/Utils/GeneralForm.h"
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
#define GEN_PASS_DEF_ROPEATTNEXPANDGENERALATTENTION
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

struct Candidate {
  int64_t degree;
  double betaMax, delta;
  SmallVector<double> coeffs;
};

/// x^e for an index e ∈ [0, g] (a select chain over the g powers).
Value powSmall(OpBuilder &b, Location l, Value x, Value e, int64_t g) {
  B ib{b, l};
  Type t = x.getType();
  Value res = ib.flt(t, 1.0), p = ib.flt(t, 1.0);
  for (int64_t k = 1; k <= g; ++k) {
    p = arith::MulFOp::create(b, l, p, x);
    Value is =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, e, ib.idx(k));
    res = arith::SelectOp::create(b, l, is, p, res);
  }
  return res;
}

/// Whether table index u is a visible offset (causal: u ≥ N − 1).
Value visibleAt(OpBuilder &b, Location l, const general::Shape &sh, Value u) {
  if (!sh.causal)
    return arith::ConstantIntOp::create(b, l, 1, 1);
  return arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, u,
                               arith::ConstantIndexOp::create(b, l, sh.n - 1));
}

/// The monomial products of one degree, shared by the forward and the
/// backward.
struct Products {
  Value exps; // [|M|, |S|] i64: m_t
  Value coef; // [|M|]: coef_m
  Value uq;   // [BHq, |M|, N]: u_m[i] = Π_t q̂_it^{m_t}
  Value vk;   // [BHk, |M|, M]: v_m[j] = Π_t k̂_jt^{m_t}
  Value sym;  // [BHq, |M|, N + M − 1]: t_m (0 on invisible offsets)
  Value x;    // [BHq, |M|, M, W]: v_m[j]·U[κ(h), j, c]
  Value y;    // [BHq, |M|, N, W]: Toeplitz(t_m)·X_m (causal: masked)
  Value nm;   // [BHq, N, W]: Σ_m coef_m·u_m·Y_m
  int64_t g;  // the degree
};

Products buildProducts(B &bb, const general::Shape &sh, Value qh, Value kh,
                       Value v, Value w, const general::Monomials &ms,
                       ArrayRef<double> coefs) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  Type t = sh.t;
  int64_t r = ms.size(), s = sh.s, wc = sh.dv + 1;
  int64_t g = 0;
  SmallVector<int64_t> flat;
  for (const SmallVector<int64_t> &m : ms) {
    int64_t deg = 0;
    for (int64_t e : m) {
      flat.push_back(e);
      deg += e;
    }
    g = std::max(g, deg);
  }
  auto expT = RankedTensorType::get({r, s}, b.getI64Type());
  Value exps = arith::ConstantOp::create(
      b, loc, expT, DenseElementsAttr::get(expT, ArrayRef<int64_t>(flat)));
  auto coefT = RankedTensorType::get({r}, t);
  SmallVector<Attribute> coefAttrs;
  for (double c : coefs)
    coefAttrs.push_back(b.getFloatAttr(t, c));
  Value coef = arith::ConstantOp::create(
      b, loc, coefT, DenseElementsAttr::get(coefT, coefAttrs));

  AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx),
             d2 = getAffineDimExpr(2, ctx), d3 = getAffineDimExpr(3, ctx);
  auto powBody = [&](bool maskOffsets) {
    return [&, maskOffsets](OpBuilder &nb, Location l, ValueRange a) {
      Value x = a[0];
      if (maskOffsets) {
        B ib{nb, l};
        Value u = linalg::IndexOp::create(nb, l, 2);
        x = arith::SelectOp::create(nb, l, visibleAt(nb, l, sh, u), x,
                                    ib.flt(t, 0.0));
      }
      Value e = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[1]);
      linalg::YieldOp::create(
          nb, l,
          arith::MulFOp::create(nb, l, a[2], powSmall(nb, l, x, e, g))
              .getResult());
    };
  };
  // u_m[h, i] (dims h, r, i, t) and v_m[h', j].
  auto monomialsOf = [&](Value xh, int64_t rows, int64_t heads) {
    return bb.generic(ValueRange{xh, exps},
                      bb.filled({ia(heads), ia(r), ia(rows)}, t, 1.0),
                      {AffineMap::get(4, 0, {d0, d2, d3}, ctx),
                       amap(ctx, 4, {1, 3}), amap(ctx, 4, {0, 1, 2})},
                      {kPar, kPar, kPar, kRed}, powBody(false));
  };
  Value uq = monomialsOf(qh, sh.n, sh.bhq);
  Value vk = monomialsOf(kh, sh.m, sh.bhk);
  // Symbols t_m[h, u] = Π_t w_t(u)^{m_t} on visible offsets, 0 elsewhere.
  Value sym = bb.generic(ValueRange{w, exps},
                         bb.filled({ia(sh.bhq), ia(r), ia(sh.len)}, t, 1.0),
                         {general::weightsMap(ctx, 4, sh, d0, d2, d3),
                          amap(ctx, 4, {1, 3}), amap(ctx, 4, {0, 1, 2})},
                         {kPar, kPar, kPar, kRed}, powBody(true));
  // X[h, m, j, c] = v_m[κ(h), j] · U[κ(h), j, c].
  Value x = bb.generic(
      vk, bb.empty({ia(sh.bhq), ia(r), ia(sh.m), ia(wc)}, t),
      {AffineMap::get(4, 0, {general::kvHead(d0, sh), d1, d2}, ctx),
       amap(ctx, 4, {0, 1, 2, 3})},
      {kPar, kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
        B ib{nb, l};
        Value h = linalg::IndexOp::create(nb, l, 0);
        Value j = linalg::IndexOp::create(nb, l, 2);
        Value c = linalg::IndexOp::create(nb, l, 3);
        Value kv = ib.add(ib.mul(ib.div(h, ib.idx(sh.hq)), ib.idx(sh.hk)),
                          ib.div(ib.rem(h, ib.idx(sh.hq)), ib.idx(sh.group)));
        Value isV = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, c,
                                          ib.idx(sh.dv));
        Value cc = arith::SelectOp::create(nb, l, isV, c, ib.idx(0));
        Value vv = tensor::ExtractOp::create(nb, l, v, ValueRange{kv, j, cc});
        Value uu = arith::SelectOp::create(nb, l, isV, vv, ib.flt(t, 1.0));
        linalg::YieldOp::create(
            nb, l, arith::MulFOp::create(nb, l, a[0], uu).getResult());
      });
  auto yType = RankedTensorType::get({sh.bhq, r, sh.n, wc}, t);
  Value y = ToeplitzMatmulOp::create(b, loc, yType, sym, x,
                                     /*transposed=*/false, sh.causal);
  // Nm[h, i, c] = Σ_m coef_m · u_m[h, i] · Y[h, m, i, c]  (dims h, i, c, m).
  Value nm = bb.generic(
      ValueRange{coef, uq, y},
      bb.filled({ia(sh.bhq), ia(sh.n), ia(wc)}, t, 0.0),
      {AffineMap::get(4, 0, {d3}, ctx), AffineMap::get(4, 0, {d0, d3, d1}, ctx),
       AffineMap::get(4, 0, {d0, d3, d1, d2}, ctx), amap(ctx, 4, {0, 1, 2})},
      {kPar, kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange a) {
        Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
        p = arith::MulFOp::create(nb, l, p, a[2]);
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, p, a[3]).getResult());
      });
  return {exps, coef, uq, vk, sym, x, y, nm, g};
}

/// Whether row i sees no key (causal, N > M: i < N − M).
Value emptyRow(OpBuilder &nb, Location l, const general::Shape &sh, Value i) {
  if (!sh.causal || sh.n <= sh.m)
    return arith::ConstantIntOp::create(nb, l, 1, 0);
  return arith::CmpIOp::create(
      nb, l, arith::CmpIPredicate::ult, i,
      arith::ConstantIndexOp::create(nb, l, sh.n - sh.m));
}

/// The forward at one degree: o [BHq, N, Dv] and lse [BHq, N].
std::pair<Value, Value> buildForward(B &bb, const general::Shape &sh, Value qh,
                                     Value kh, Value v, Value w,
                                     const general::Monomials &ms,
                                     ArrayRef<double> coefs) {
  OpBuilder &b = bb.b;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  Type t = sh.t;
  Value nm = buildProducts(bb, sh, qh, kh, v, w, ms, coefs).nm;
  AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx);

  // Rows that see no key (causal, N > M: i < N − M) are exactly 0 / −∞.
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
                                                        emptyRow(nb, l, sh, i),
                                                        ib.flt(t, 0.0), qv)
                                    .getResult());
      });
  Value lse = bb.generic(
      ValueRange{nm}, bb.empty({ia(sh.bhq), ia(sh.n)}, t),
      {AffineMap::get(2, 0, {d0, d1, cdv}, ctx), amap(ctx, 2, {0, 1})},
      {kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
        B ib{nb, l};
        Value i = linalg::IndexOp::create(nb, l, 1);
        Value lg = math::LogOp::create(nb, l, a[0]);
        linalg::YieldOp::create(nb, l,
                                arith::SelectOp::create(nb, l,
                                                        emptyRow(nb, l, sh, i),
                                                        ib.negInf(t), lg)
                                    .getResult());
      });
  return {o, lse};
}

/// The vector-Jacobian product of the monomial map x ↦ Π_t x_t^{m_t}, for
/// x : [P, R, |S|] and the cotangent dmono : [P, |M|, R] of every monomial:
///   dx[p, r, t] = Σ_m dmono[p, m, r]·m_t·Π_{t'} x[p, r, t']^{m_t' − [t' = t]}
/// (dims p, r, t, m; a term with m_t = 0 is 0). With `offsets`, r is a
/// table index and invisible offsets get exactly 0 (whatever W holds there).
Value monomialVJP(B &bb, const general::Shape &sh, Value x, Value dmono,
                  Value exps, int64_t g, bool offsets = false) {
  OpBuilder &b = bb.b;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t v) -> OpFoldResult { return b.getIndexAttr(v); };
  auto xT = cast<RankedTensorType>(x.getType());
  Type t = sh.t;
  AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx),
             d2 = getAffineDimExpr(2, ctx), d3 = getAffineDimExpr(3, ctx);
  return bb.generic(
      ValueRange{dmono, exps},
      bb.filled({ia(xT.getDimSize(0)), ia(xT.getDimSize(1)), ia(sh.s)}, t, 0.0),
      {AffineMap::get(4, 0, {d0, d3, d1}, ctx),
       AffineMap::get(4, 0, {d3, d2}, ctx), amap(ctx, 4, {0, 1, 2})},
      {kPar, kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange a) {
        B ib{nb, l};
        Value p = linalg::IndexOp::create(nb, l, 0);
        Value r = linalg::IndexOp::create(nb, l, 1);
        Value tt = linalg::IndexOp::create(nb, l, 2);
        Value m = linalg::IndexOp::create(nb, l, 3);
        Value prod = arith::MulFOp::create(
            nb, l, a[0], arith::SIToFPOp::create(nb, l, t, a[1]));
        for (int64_t u = 0; u < sh.s; ++u) {
          Value cu = ib.idx(u);
          Value xv = tensor::ExtractOp::create(nb, l, x, ValueRange{p, r, cu});
          Value e = arith::IndexCastOp::create(
              nb, l, nb.getIndexType(),
              tensor::ExtractOp::create(nb, l, exps, ValueRange{m, cu}));
          Value same =
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, tt, cu);
          e = arith::SelectOp::create(nb, l, same, ib.sub(e, ib.idx(1)), e);
          prod = arith::MulFOp::create(nb, l, prod, powSmall(nb, l, xv, e, g));
        }
        if (offsets)
          prod = arith::SelectOp::create(nb, l, visibleAt(nb, l, sh, r), prod,
                                         ib.flt(t, 0.0));
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, a[2], prod).getResult());
      });
}

/// The backward at one degree: the exact gradient of the function
/// buildForward computes (docs/Spec.md §16.5). With P_ij = Σ_m coef_m·u_m[i]·
/// t_m(i − j)·v_m[j] (visible pairs), Ẑ_i = Nm[i, Dv], D_i = dO_i·o_i (o the
/// given output) and Gs_i = [dO_i | −D_i]/Ẑ_i (∂F/∂Nm):
///
///   du_m[i]  = coef_m·Σ_c Gs[i, c]·Y_m[i, c]
///   S_m[i,c] = coef_m·u_m[i]·Gs[i, c],   Z_m = Toeplitz(t_m)ᵀ·S_m
///   dv_m[j]  = Σ_group Σ_c Z_m[j, c]·U[j, c]
///   dv[j, c] = Σ_group Σ_m Z_m[j, c]·v_m[j]                  (c < Dv)
///   dt_m(δ)  = Σ_c Σ_{i − j = δ} S_m[i, c]·X_m[j, c]           (visible δ)
///
/// then dq̂, dk̂, dW by the monomial VJPs (dt summed over the heads sharing a
/// table row first) and the support scatter. Returns dq [BHq, N, D],
/// dk [BHk, M, D], dv [BHk, M, Dv], dW (the weights' type).
std::tuple<Value, Value, Value, Value>
buildBackward(B &bb, const general::Shape &sh, Value qh, Value kh, Value v,
              Value w, Value o, Value dO, const general::Monomials &ms,
              ArrayRef<double> coefs) {
  OpBuilder &b = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = b.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return b.getIndexAttr(x); };
  Type t = sh.t;
  int64_t r = ms.size(), wc = sh.dv + 1;
  int64_t fftLen = int64_t(llvm::PowerOf2Ceil(uint64_t(sh.len)));
  Products pr = buildProducts(bb, sh, qh, kh, v, w, ms, coefs);
  auto mulAdd = [](OpBuilder &nb, Location l, ValueRange a) {
    Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
    linalg::YieldOp::create(nb, l,
                            arith::AddFOp::create(nb, l, p, a[2]).getResult());
  };
  AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx),
             d2 = getAffineDimExpr(2, ctx), d3 = getAffineDimExpr(3, ctx),
             d4 = getAffineDimExpr(4, ctx);

  // Gs[h, i, c] = [dO_i | −D_i]_c / Ẑ_i, D_i = dO_i·o_i (0 on rows that
  // see no key).
  Value gs = buildRowGradient(bb, pr.nm, dO, o,
                              [&](OpBuilder &nb, Location l, Value i) {
                                return emptyRow(nb, l, sh, i);
                              });
  // du[h, m, i] = coef_m·Σ_c Gs[h, i, c]·Y[h, m, i, c]  (dims h, m, i, c).
  Value du = bb.generic(
      ValueRange{pr.coef, gs, pr.y},
      bb.filled({ia(sh.bhq), ia(r), ia(sh.n)}, t, 0.0),
      {AffineMap::get(4, 0, {d1}, ctx), AffineMap::get(4, 0, {d0, d2, d3}, ctx),
       amap(ctx, 4, {0, 1, 2, 3}), amap(ctx, 4, {0, 1, 2})},
      {kPar, kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange a) {
        Value p = arith::MulFOp::create(nb, l, a[1], a[2]);
        p = arith::MulFOp::create(nb, l, a[0], p);
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, a[3], p).getResult());
      });
  // S[h, m, i, c] = coef_m·u_m[h, i]·Gs[h, i, c];  Z = Toeplitz(t_m)ᵀ·S.
  Value sm = bb.generic(
      ValueRange{pr.coef, pr.uq, gs},
      bb.empty({ia(sh.bhq), ia(r), ia(sh.n), ia(wc)}, t),
      {AffineMap::get(4, 0, {d1}, ctx), amap(ctx, 4, {0, 1, 2}),
       AffineMap::get(4, 0, {d0, d2, d3}, ctx), amap(ctx, 4, {0, 1, 2, 3})},
      {kPar, kPar, kPar, kPar}, [&](OpBuilder &nb, Location l, ValueRange a) {
        Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
        linalg::YieldOp::create(
            nb, l, arith::MulFOp::create(nb, l, p, a[2]).getResult());
      });
  Value z = ToeplitzMatmulOp::create(
      b, loc, RankedTensorType::get({sh.bhq, r, sh.m, wc}, t), pr.sym, sm,
      /*transposed=*/true, sh.causal);
  // U = [v | 1] per kv row.
  Value u = bb.generic(
      ValueRange{}, bb.empty({ia(sh.bhk), ia(sh.m), ia(wc)}, t),
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
  // dv_m[κ, m, j] = Σ_{g, c} Z[κ·G + g, m, j, c]·U[κ, j, c]
  // (dims κ, m, j, g, c).
  Value dvm = bb.generic(
      ValueRange{general::splitLeading(bb, z, sh.bhk, sh.group), u},
      bb.filled({ia(sh.bhk), ia(r), ia(sh.m)}, t, 0.0),
      {amap(ctx, 5, {0, 3, 1, 2, 4}), AffineMap::get(5, 0, {d0, d2, d4}, ctx),
       amap(ctx, 5, {0, 1, 2})},
      {kPar, kPar, kPar, kRed, kRed}, mulAdd);
  // dv[κ, j, c] = Σ_{g, m} Z[κ·G + g, m, j, c]·v_m[κ, j]  (dims κ, j, c, g, m).
  Value zv = bb.slice(z, {ia(0), ia(0), ia(0), ia(0)},
                      {ia(sh.bhq), ia(r), ia(sh.m), ia(sh.dv)}, 0);
  Value dv = bb.generic(
      ValueRange{general::splitLeading(bb, zv, sh.bhk, sh.group), pr.vk},
      bb.filled({ia(sh.bhk), ia(sh.m), ia(sh.dv)}, t, 0.0),
      {amap(ctx, 5, {0, 3, 4, 1, 2}), AffineMap::get(5, 0, {d0, d4, d1}, ctx),
       amap(ctx, 5, {0, 1, 2})},
      {kPar, kPar, kPar, kRed, kRed}, mulAdd);

  // dt[h, m, u]: the cross-correlations of the columns of S_m and X_m at lag
  // δ = u − (M − 1), by FFT (Utils/Correlation.h); 0 on invisible offsets.
  auto flat = [&](Value x4) {
    return tensor::CollapseShapeOp::create(
        b, loc, x4, ArrayRef<ReassociationIndices>{{0, 1}, {2}, {3}});
  };
  Value corr = crossCorrelate(bb, flat(sm), flat(pr.x), fftLen);
  Value corr4 = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({sh.bhq, r, fftLen, 2}, t), corr,
      ArrayRef<ReassociationIndices>{{0, 1}, {2}, {3}});
  Value dt =
      bb.generic(ValueRange{}, bb.empty({ia(sh.bhq), ia(r), ia(sh.len)}, t),
                 {amap(ctx, 3, {0, 1, 2})}, {kPar, kPar, kPar},
                 [&](OpBuilder &nb, Location l, ValueRange) {
                   B ib{nb, l};
                   Value h = linalg::IndexOp::create(nb, l, 0);
                   Value m = linalg::IndexOp::create(nb, l, 1);
                   Value uu = linalg::IndexOp::create(nb, l, 2);
                   Value lag = ib.rem(ib.add(uu, ib.idx(fftLen - (sh.m - 1))),
                                      ib.idx(fftLen));
                   Value cv = tensor::ExtractOp::create(
                       nb, l, corr4, ValueRange{h, m, lag, ib.idx(0)});
                   linalg::YieldOp::create(
                       nb, l,
                       arith::SelectOp::create(nb, l, visibleAt(nb, l, sh, uu),
                                               cv, ib.flt(t, 0.0))
                           .getResult());
                 });
  // Sum over the rows of [B·Hq] that share a table: all (shared, one row)
  // or the batch entries of each head (per head).
  auto add = [](OpBuilder &nb, Location l, ValueRange a) {
    linalg::YieldOp::create(
        nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
  };
  int64_t tables = sh.perHead ? sh.hq : 1;
  Value dts = bb.generic(general::splitLeading(bb, dt, sh.bhq / tables, tables),
                         bb.filled({ia(tables), ia(r), ia(sh.len)}, t, 0.0),
                         {amap(ctx, 4, {3, 0, 1, 2}), amap(ctx, 4, {0, 1, 2})},
                         {kPar, kPar, kPar, kRed}, add);
  Value w3 = w;
  if (!sh.perHead)
    w3 = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({1, sh.len, sh.s}, t), w,
        ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  Value dw = monomialVJP(bb, sh, w3, dts, pr.exps, pr.g, /*offsets=*/true);
  if (!sh.perHead)
    dw = tensor::CollapseShapeOp::create(
        b, loc, dw, ArrayRef<ReassociationIndices>{{0, 1}, {2}});

  Value dqh = monomialVJP(bb, sh, qh, du, pr.exps, pr.g);
  Value dkh = monomialVJP(bb, sh, kh, dvm, pr.exps, pr.g);
  Value dq = general::scatterColumns(bb, dqh, sh.as, sh.d, sh.bhq, 1);
  Value dk = general::scatterColumns(bb, dkh, sh.bs, sh.d, sh.bhk, 1);
  return {dq, dk, dv, dw};
}

/// Rewrites general_attention (forward) and general_attention_grad
/// (backward) with `method toeplitz`.
template <typename OpTy>
struct ExpandGeneralAttention : OpRewritePattern<OpTy> {
  ExpandGeneralAttention(MLIRContext *ctx, poly::Family family, double epsilon,
                         int64_t maxDegree, int64_t maxTerms,
                         int64_t maxFftBytes)
      : OpRewritePattern<OpTy>(ctx), family(family), epsilon(epsilon),
        maxDegree(maxDegree), maxTerms(maxTerms), maxFftBytes(maxFftBytes) {}

  static constexpr bool isGrad = std::is_same_v<OpTy, GeneralAttentionGradOp>;

  LogicalResult decline(OpTy op, PatternRewriter &rewriter,
                        const Twine &why) const {
    return declineToExact(op, rewriter, "ropeattn-expand-general-attention",
                          why);
  }

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    if (!op.getMethod() || *op.getMethod() != Method::Toeplitz)
      return rewriter.notifyMatchFailure(op, "not the Toeplitz method");
    std::optional<general::Shape> maybe = general::getShape(op);
    if (!maybe)
      return decline(op, rewriter, "dynamic shapes");
    general::Shape sh = *maybe;
    Type t = sh.t;
    if (!t.isF32() && !t.isF64())
      return decline(op, rewriter, "only f32 and f64 are supported yet");
    if (sh.n == 0 || sh.m == 0 || sh.bhq == 0)
      return decline(op, rewriter, "an empty problem");

    int64_t bytes = t.getIntOrFloatBitWidth() / 8;
    int64_t fftLen = int64_t(llvm::PowerOf2Ceil(uint64_t(sh.len)));
    SmallVector<Candidate> cands;
    std::string why = "no degree ≤ max-degree meets epsilon for any logit "
                      "range";
    for (int64_t g = 1; g <= maxDegree; ++g) {
      if (family == poly::Family::Taylor && g % 2 != 0)
        continue;
      int64_t terms = poly::featureRank(sh.s, g); // C(|S| + g, g)
      long double buffer =
          (long double)sh.bhq * terms * ((sh.dv + 2) / 2) * fftLen * 2 * bytes;
      // The backward's d-weights correlations transform every column of S_m
      // and X_m at once: two [BHq·|M|, W, L, 2] buffers.
      if (isGrad)
        buffer = (long double)sh.bhq * terms * (sh.dv + 1) * fftLen * 4 * bytes;
      if (terms > maxTerms) {
        if (cands.empty())
          why = ("|M| = C(|S| + g, g) = " + Twine(terms) +
                 " monomials for |S| = " + Twine(sh.s) + ", g = " + Twine(g) +
                 " exceeds max-terms = " + Twine(maxTerms))
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
      if (std::optional<cost::PolyCandidate> c =
              cost::polyCandidate(family, g, epsilon))
        cands.push_back(
            Candidate{g, c->betaMax, c->delta,
                      SmallVector<double>(c->coeffs.begin(), c->coeffs.end())});
    }
    if (cands.empty())
      return decline(op, rewriter, why);
    {
      InFlightDiagnostic rem =
          op.emitRemark("ropeattn-expand-general-attention: |S| = ");
      rem << sh.s << "; compiled degrees:";
      for (const Candidate &c : cands)
        rem << " g = " << c.degree
            << " (|M| = C(|S| + g, g) = " << poly::featureRank(sh.s, c.degree)
            << ", beta <= " << c.betaMax << ")";
    }

    MLIRContext *ctx = rewriter.getContext();
    Location loc = op.getLoc();
    B bb{rewriter, loc};
    auto ia = [&](int64_t x) -> OpFoldResult {
      return rewriter.getIndexAttr(x);
    };
    Value q = bb.collapseLeading(op.getQuery(), 2);
    Value k = bb.collapseLeading(op.getKey(), 2);
    Value v = bb.collapseLeading(op.getValue(), 2);
    Value w = op.getWeights();
    Value qh = general::gatherColumns(bb, q, sh.as);
    Value kh = general::gatherColumns(bb, k, sh.bs);

    // ω = max |w| over visible entries, and whether one is not finite.
    auto wT = cast<RankedTensorType>(w.getType());
    unsigned wr = wT.getRank();
    SmallVector<IteratorType> allRed(wr, kRed);
    AffineMap scalar = AffineMap::get(wr, 0, ctx);
    auto stats = bb.genericOp(
        ValueRange{w}, ValueRange{bb.filled({}, t, 0.0), bb.filled({}, t, 0.0)},
        {AffineMap::getMultiDimIdentityMap(wr, ctx), scalar, scalar}, allRed,
        [&](OpBuilder &nb, Location l, ValueRange a) {
          B ib{nb, l};
          Value u = linalg::IndexOp::create(nb, l, wr - 2);
          Value vis = visibleAt(nb, l, sh, u);
          Value mag = math::AbsFOp::create(nb, l, a[0]);
          Value m = arith::SelectOp::create(nb, l, vis, mag, ib.flt(t, 0.0));
          Value finite = arith::CmpFOp::create(
              nb, l, arith::CmpFPredicate::OLT, mag,
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
              ValueRange{arith::MaximumFOp::create(nb, l, m, a[1]),
                         arith::MaximumFOp::create(nb, l, bad, a[2])});
        });
    Value omega = tensor::ExtractOp::create(rewriter, loc, stats.getResult(0),
                                            ValueRange{});
    Value anyBad = tensor::ExtractOp::create(rewriter, loc, stats.getResult(1),
                                             ValueRange{});
    if (!t.isF64())
      omega =
          arith::ExtFOp::create(rewriter, loc, rewriter.getF64Type(), omega);
    // β̂ = ω·|s|·max‖q̂‖·max‖k̂‖ (logitBound's rounding slack for the norms;
    // 4 more units for the products with ω).
    double u = t.isF64() ? 0x1p-53 : 0x1p-24;
    Value beta = arith::MulFOp::create(
        rewriter, loc, bb.logitBound(qh, kh, t, sh.s, sh.scale),
        arith::MulFOp::create(rewriter, loc, omega,
                              bb.flt(rewriter.getF64Type(), 1.0 + 4 * u)));
    SmallVector<double> ranges;
    for (const Candidate &c : cands)
      ranges.push_back(c.betaMax);
    Value sel = bb.selectCovering(beta, ranges);
    Value finite = arith::CmpFOp::create(
        rewriter, loc, arith::CmpFPredicate::OEQ, anyBad, bb.flt(t, 0.0));
    sel = arith::SelectOp::create(rewriter, loc, finite, sel,
                                  bb.idx(cands.size()));
    (void)ia;

    SmallVector<int64_t> cases;
    for (size_t i = 0; i < cands.size(); ++i)
      cases.push_back(i);
    auto sw = scf::IndexSwitchOp::create(rewriter, loc, op->getResultTypes(),
                                         sel, cases, cases.size());
    for (size_t i = 0; i < cands.size(); ++i) {
      Block &blk = sw.getCaseRegions()[i].emplaceBlock();
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(&blk);
      general::Monomials ms = general::monomials(sh.s, cands[i].degree);
      SmallVector<double> coefs;
      for (const SmallVector<int64_t> &m : ms) {
        int64_t deg = 0;
        for (int64_t e : m)
          deg += e;
        coefs.push_back(cands[i].coeffs[deg] * std::pow(sh.scale, deg) *
                        general::multinomial(m));
      }
      SmallVector<Value> results;
      if constexpr (isGrad) {
        Value o = bb.collapseLeading(op.getOutput(), 2);
        Value dO = bb.collapseLeading(op.getGradOutput(), 2);
        auto [dq, dk, dv, dw] =
            buildBackward(bb, sh, qh, kh, v, w, o, dO, ms, coefs);
        results = {bb.expandLeading(dq, op.getGradQuery().getType(), 2),
                   bb.expandLeading(dk, op.getGradKey().getType(), 2),
                   bb.expandLeading(dv, op.getGradValue().getType(), 2), dw};
      } else {
        auto [o, lse] = buildForward(bb, sh, qh, kh, v, w, ms, coefs);
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
  int64_t maxDegree, maxTerms, maxFftBytes;
};

struct RopeAttnExpandGeneralAttentionPass
    : public ropeattn::impl::RopeAttnExpandGeneralAttentionBase<
          RopeAttnExpandGeneralAttentionPass> {
  using Base::Base;
  void runOnOperation() override {
    if (!(epsilon > 0) || maxDegree < 1 || maxTerms <= 0 || maxFftMib <= 0) {
      getOperation()->emitError(
          "ropeattn-expand-general-attention: epsilon must be > 0, "
          "max-degree >= 1, max-terms and max-fft-mib > 0");
      return signalPassFailure();
    }
    std::optional<poly::Family> fam = parseFamilyOption(
        getOperation(), "ropeattn-expand-general-attention", familyName);
    if (!fam)
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandGeneralAttention<GeneralAttentionOp>,
                 ExpandGeneralAttention<GeneralAttentionGradOp>>(
        &getContext(), *fam, epsilon, maxDegree, maxTerms, maxFftMib << 20);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
