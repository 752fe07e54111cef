//===- ExpandToeplitz.cpp - Toeplitz products by circulant FFTs -----------===//
//
// Part of the ropeattn project.
//
// ropeattn.toeplitz_matmul → ropeattn.fft + linalg on tensors (docs/Spec.md,
// "ropeattn.toeplitz_matmul"; the math: docs/Design.md, "Toeplitz products").
// With A the R × K operator (T, or Tᵀ with `transposed`; causal mask
// applied), a_δ its symbol (A[r, k] = a_{r−k}) and L = 2^⌈log2(R + K − 1)⌉,
// the circulant C of c = [a_0 .. a_{R−1}, 0 .., a_{−(K−1)} .. a_{−1}] agrees
// with A on its top-left R × K block, so for x zero-padded to L,
//
//   A·x = (C·x̂)[0 .. R−1] = IFFT(FFT(c) ∘ FFT(x̂))[0 .. R−1].
//
// A is real, so two real columns share one complex transform:
// A·(x_a + i·x_b) = A·x_a + i·A·x_b.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

#include "llvm/Support/MathExtras.h"

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNEXPANDTOEPLITZ
#include "ropeattn/Dialect/RopeAttn/Transforms/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

SmallVector<utils::IteratorType> parallel(int64_t n) {
  return SmallVector<utils::IteratorType>(n, utils::IteratorType::parallel);
}

/// Index-typed helpers for generic bodies.
struct IndexMath {
  OpBuilder &b;
  Location loc;
  Value c(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
  Value lt(Value x, Value y) { return cmp(arith::CmpIPredicate::slt, x, y); }
  Value ge(Value x, Value y) { return cmp(arith::CmpIPredicate::sge, x, y); }
  Value eq(Value x, Value y) { return cmp(arith::CmpIPredicate::eq, x, y); }
  Value andI(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value orI(Value x, Value y) { return arith::OrIOp::create(b, loc, x, y); }
  Value select(Value p, Value x, Value y) {
    return arith::SelectOp::create(b, loc, p, x, y);
  }
};

LogicalResult expand(ToeplitzMatmulOp op, RewriterBase &rewriter) {
  RankedTensorType symType = op.getSymbol().getType();
  RankedTensorType inType = op.getInput().getType();
  RankedTensorType resType = op.getResult().getType();
  if (!symType.hasStaticShape() || !inType.hasStaticShape() ||
      !resType.hasStaticShape())
    return op.emitOpError("ropeattn-expand-toeplitz: expected static shapes");
  MLIRContext *ctx = op.getContext();
  Location loc = op.getLoc();
  rewriter.setInsertionPoint(op);
  Type t = inType.getElementType();
  int64_t rank = inType.getRank(), batchRank = rank - 2;
  SmallVector<int64_t> batch(inType.getShape().take_front(batchRank));
  int64_t k = inType.getDimSize(rank - 2), cols = inType.getDimSize(rank - 1);
  int64_t r = resType.getDimSize(rank - 2);
  auto [n, m] = op.getRowsAndCols();
  bool shared = symType.getRank() == 1, transposed = op.getTransposed(),
       causal = op.getCausal();

  if (resType.getNumElements() == 0) {
    rewriter.replaceOpWithNewOp<tensor::EmptyOp>(op, resType.getShape(), t);
    return success();
  }
  if (k == 0) { // an empty sum
    Value zeroF = arith::ConstantOp::create(rewriter, loc, t,
                                            rewriter.getFloatAttr(t, 0));
    Value empty = tensor::EmptyOp::create(rewriter, loc, resType.getShape(), t);
    rewriter.replaceOpWithNewOp<linalg::FillOp>(op, zeroF, empty);
    return success();
  }
  int64_t len = int64_t(llvm::PowerOf2Ceil(uint64_t(r + k - 1)));
  int64_t pairs = (cols + 1) / 2;
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto cst = [&](int64_t v) { return getAffineConstantExpr(v, ctx); };

  // 1. The circulant c : [Bs.., L, 2] (imaginary part 0), then FFT(c).
  int64_t symBatch = shared ? 0 : batchRank;
  SmallVector<int64_t> cShape(batch.begin(), batch.begin() + symBatch);
  cShape.append({len, 2});
  auto cType = RankedTensorType::get(cShape, t);
  Value cInit = tensor::EmptyOp::create(rewriter, loc, cShape, t);
  Value symbol = op.getSymbol();
  auto circulant = linalg::GenericOp::create(
      rewriter, loc, TypeRange{cType}, ValueRange{}, ValueRange{cInit},
      ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(symBatch + 2, ctx)},
      parallel(symBatch + 2), [&](OpBuilder &b, Location l, ValueRange) {
        IndexMath im{b, l};
        Value u = linalg::IndexOp::create(b, l, symBatch);
        Value comp = linalg::IndexOp::create(b, l, symBatch + 1);
        // δ = u for u < R, u − L for u > L − K; the rest is padding.
        Value top = im.lt(u, im.c(r));
        Value delta = im.select(top, u, im.sub(u, im.c(len)));
        Value valid = im.orI(top, im.ge(u, im.c(len - k + 1)));
        // The offset of T: δ (T) or −δ (Tᵀ), stored at offset + M − 1.
        Value offset = transposed ? im.sub(im.c(0), delta) : delta;
        if (causal) // visible iff offset ≥ N − M
          valid = im.andI(valid, im.ge(offset, im.c(n - m)));
        valid = im.andI(valid, im.eq(comp, im.c(0)));
        Value index = im.select(valid, im.add(offset, im.c(m - 1)), im.c(0));
        SmallVector<Value> at;
        for (int64_t i = 0; i < symBatch; ++i)
          at.push_back(linalg::IndexOp::create(b, l, i));
        at.push_back(index);
        Value v = tensor::ExtractOp::create(b, l, symbol, at);
        Value zero = arith::ConstantOp::create(b, l, t, b.getFloatAttr(t, 0.0));
        linalg::YieldOp::create(b, l, im.select(valid, v, zero));
      });
  Value cHat = FftOp::create(rewriter, loc, cType, circulant.getResult(0),
                             /*inverse=*/false);

  // 2. Packed, zero-padded columns z : [B.., P, L, 2],
  //    z[.., p, u] = x[.., u, 2p] + i·x[.., u, 2p + 1].
  SmallVector<int64_t> zShape(batch);
  zShape.append({pairs, len, 2});
  auto zType = RankedTensorType::get(zShape, t);
  Value zInit = tensor::EmptyOp::create(rewriter, loc, zShape, t);
  Value x = op.getInput();
  auto packed = linalg::GenericOp::create(
      rewriter, loc, TypeRange{zType}, ValueRange{}, ValueRange{zInit},
      ArrayRef<AffineMap>{
          AffineMap::getMultiDimIdentityMap(batchRank + 3, ctx)},
      parallel(batchRank + 3), [&](OpBuilder &b, Location l, ValueRange) {
        IndexMath im{b, l};
        Value p = linalg::IndexOp::create(b, l, batchRank);
        Value u = linalg::IndexOp::create(b, l, batchRank + 1);
        Value comp = linalg::IndexOp::create(b, l, batchRank + 2);
        Value col = im.add(im.add(p, p), comp);
        Value valid = im.andI(im.lt(u, im.c(k)), im.lt(col, im.c(cols)));
        SmallVector<Value> at;
        for (int64_t i = 0; i < batchRank; ++i)
          at.push_back(linalg::IndexOp::create(b, l, i));
        at.push_back(im.select(valid, u, im.c(0)));
        at.push_back(im.select(valid, col, im.c(0)));
        Value v = tensor::ExtractOp::create(b, l, x, at);
        Value zero = arith::ConstantOp::create(b, l, t, b.getFloatAttr(t, 0.0));
        linalg::YieldOp::create(b, l, im.select(valid, v, zero));
      });
  Value zHat = FftOp::create(rewriter, loc, zType, packed.getResult(0),
                             /*inverse=*/false);

  // 3. Pointwise complex products FFT(c) ∘ FFT(z), then the inverse FFT.
  unsigned loops = batchRank + 3;
  auto zMap = [&](int64_t part) {
    SmallVector<AffineExpr> e;
    for (unsigned i = 0; i < loops - 1; ++i)
      e.push_back(d(i));
    e.push_back(cst(part));
    return AffineMap::get(loops, 0, e, ctx);
  };
  auto cMap = [&](int64_t part) {
    SmallVector<AffineExpr> e;
    for (int64_t i = 0; i < symBatch; ++i)
      e.push_back(d(i));
    e.push_back(d(batchRank + 1));
    e.push_back(cst(part));
    return AffineMap::get(loops, 0, e, ctx);
  };
  Value pInit = tensor::EmptyOp::create(rewriter, loc, zShape, t);
  auto product = linalg::GenericOp::create(
      rewriter, loc, TypeRange{zType}, ValueRange{zHat, zHat, cHat, cHat},
      ValueRange{pInit},
      ArrayRef<AffineMap>{zMap(0), zMap(1), cMap(0), cMap(1),
                          AffineMap::getMultiDimIdentityMap(loops, ctx)},
      parallel(loops), [&](OpBuilder &b, Location l, ValueRange a) {
        IndexMath im{b, l};
        Value comp = linalg::IndexOp::create(b, l, loops - 1);
        Value re =
            arith::SubFOp::create(b, l, arith::MulFOp::create(b, l, a[0], a[2]),
                                  arith::MulFOp::create(b, l, a[1], a[3]));
        Value imag =
            arith::AddFOp::create(b, l, arith::MulFOp::create(b, l, a[0], a[3]),
                                  arith::MulFOp::create(b, l, a[1], a[2]));
        linalg::YieldOp::create(b, l,
                                im.select(im.eq(comp, im.c(0)), re, imag));
      });
  Value w = FftOp::create(rewriter, loc, zType, product.getResult(0),
                          /*inverse=*/true);

  // 4. Unpack rows 0 .. R − 1: y[.., i, col] = w[.., col / 2, i, col % 2].
  //    The loops run (col, i), i innermost, so that w is read along its rows
  //    (a column pair of w is contiguous; the other order would jump by 2L
  //    elements on every read).
  Value yInit = tensor::EmptyOp::create(rewriter, loc, resType.getShape(), t);
  SmallVector<unsigned> perm;
  for (int64_t j = 0; j < batchRank; ++j)
    perm.push_back(j);
  perm.append({unsigned(batchRank + 1), unsigned(batchRank)});
  auto unpacked = linalg::GenericOp::create(
      rewriter, loc, TypeRange{resType}, ValueRange{}, ValueRange{yInit},
      ArrayRef<AffineMap>{AffineMap::getPermutationMap(perm, ctx)},
      parallel(rank), [&](OpBuilder &b, Location l, ValueRange) {
        IndexMath im{b, l};
        Value col = linalg::IndexOp::create(b, l, batchRank);
        Value i = linalg::IndexOp::create(b, l, batchRank + 1);
        Value two = im.c(2);
        SmallVector<Value> at;
        for (int64_t j = 0; j < batchRank; ++j)
          at.push_back(linalg::IndexOp::create(b, l, j));
        at.push_back(arith::DivUIOp::create(b, l, col, two));
        at.push_back(i);
        at.push_back(arith::RemUIOp::create(b, l, col, two));
        linalg::YieldOp::create(
            b, l, tensor::ExtractOp::create(b, l, w, at).getResult());
      });
  rewriter.replaceOp(op, unpacked.getResult(0));
  return success();
}

struct RopeAttnExpandToeplitzPass
    : public ropeattn::impl::RopeAttnExpandToeplitzBase<
          RopeAttnExpandToeplitzPass> {
  void runOnOperation() override {
    SmallVector<ToeplitzMatmulOp> ops;
    getOperation()->walk([&](ToeplitzMatmulOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (ToeplitzMatmulOp op : ops)
      if (failed(expand(op, rewriter)))
        return signalPassFailure();
  }
};

} // namespace
