//===- Correlation.h - FFT cross-correlations of columns --------*- C++ -*-===//
//
// Part of the ropeattn project. The d-bias / d-weights cross-correlations of
// the Toeplitz backward passes (ropeattn-expand-toeplitz-attention,
// ropeattn-expand-general-attention; docs/Spec.md §15.1, §16.5).
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_UTILS_CORRELATION_H
#define ROPEATTN_DIALECT_ROPEATTN_UTILS_CORRELATION_H

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/Dialect/RopeAttn/Utils/TensorBuilder.h"

namespace mlir {
namespace ropeattn {

/// For a : [P, Ra, C] and b : [P, Rb, C] (f32/f64, static) and a power of two
/// fftLen ≥ Ra + Rb − 1, the circular cross-correlations summed over the C
/// columns, by FFT of the zero-padded columns:
///
///   corr[p, τ, ·] = IFFT(Σ_c FFT(a[p, :, c])·conj(FFT(b[p, :, c])))[τ]
///                 = Σ_c Σ_n a[p, n, c]·b[p, (n − τ) mod fftLen, c]
///
/// as complex pairs [P, fftLen, 2] (the imaginary part is rounding only).
/// Lag δ = i − j of a[i]·b[j] is at τ = δ mod fftLen (no aliasing).
inline Value crossCorrelate(TensorBuilder &bb, Value a, Value b,
                            int64_t fftLen) {
  using utils::IteratorType;
  constexpr IteratorType kPar = IteratorType::parallel;
  constexpr IteratorType kRed = IteratorType::reduction;
  OpBuilder &builder = bb.b;
  Location loc = bb.loc;
  MLIRContext *ctx = builder.getContext();
  auto ia = [&](int64_t x) -> OpFoldResult { return builder.getIndexAttr(x); };
  auto aT = cast<RankedTensorType>(a.getType());
  Type t = aT.getElementType();
  int64_t p = aT.getDimSize(0), cols = aT.getDimSize(2);
  auto amap = &TensorBuilder::dimMap;
  AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx);
  // Pad[p, col, τ] = (src[p, τ, col], 0) for τ < rows, else 0.
  auto padded = [&](Value src) {
    int64_t rows = cast<RankedTensorType>(src.getType()).getDimSize(1);
    return bb.generic(
        ValueRange{}, bb.empty({ia(p), ia(cols), ia(fftLen), ia(2)}, t),
        {amap(ctx, 4, {0, 1, 2, 3})}, {kPar, kPar, kPar, kPar},
        [&](OpBuilder &nb, Location l, ValueRange) {
          TensorBuilder ib{nb, l};
          Value h = linalg::IndexOp::create(nb, l, 0);
          Value col = linalg::IndexOp::create(nb, l, 1);
          Value tau = linalg::IndexOp::create(nb, l, 2);
          Value part = linalg::IndexOp::create(nb, l, 3);
          Value in = arith::AndIOp::create(
              nb, l,
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, tau,
                                    ib.idx(rows)),
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, part,
                                    ib.idx(0)));
          Value row = arith::SelectOp::create(nb, l, in, tau, ib.idx(0));
          Value val =
              tensor::ExtractOp::create(nb, l, src, ValueRange{h, row, col});
          linalg::YieldOp::create(
              nb, l,
              arith::SelectOp::create(nb, l, in, val, ib.flt(t, 0.0))
                  .getResult());
        });
  };
  Value fa = padded(a), fb = padded(b);
  fa = FftOp::create(builder, loc, fa.getType(), fa, /*inverse=*/false);
  fb = FftOp::create(builder, loc, fb.getType(), fb, /*inverse=*/false);
  // Spec[p, τ] = Σ_col FA[p, col, τ]·conj(FB[p, col, τ]).
  auto part = [&](int64_t k) {
    return AffineMap::get(
        4, 0, {d0, getAffineDimExpr(3, ctx), d1, getAffineConstantExpr(k, ctx)},
        ctx);
  };
  Value spec = bb.generic(
      ValueRange{fa, fa, fb, fb}, bb.filled({ia(p), ia(fftLen), ia(2)}, t, 0.0),
      {part(0), part(1), part(0), part(1), amap(ctx, 4, {0, 1, 2})},
      {kPar, kPar, kPar, kRed}, [&](OpBuilder &nb, Location l, ValueRange x) {
        TensorBuilder ib{nb, l};
        Value k = linalg::IndexOp::create(nb, l, 2);
        auto mul = [&](Value y, Value z) {
          return arith::MulFOp::create(nb, l, y, z).getResult();
        };
        Value re =
            arith::AddFOp::create(nb, l, mul(x[0], x[2]), mul(x[1], x[3]));
        Value im =
            arith::SubFOp::create(nb, l, mul(x[1], x[2]), mul(x[0], x[3]));
        Value isRe = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, k,
                                           ib.idx(0));
        Value val = arith::SelectOp::create(nb, l, isRe, re, im);
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, val, x[4]).getResult());
      });
  return FftOp::create(builder, loc, spec.getType(), spec, /*inverse=*/true);
}

} // namespace ropeattn
} // namespace mlir

#endif // ROPEATTN_DIALECT_ROPEATTN_UTILS_CORRELATION_H
