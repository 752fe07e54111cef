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

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

#include "llvm/Support/MathExtras.h"

#include <algorithm>

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

  // Batch dims collapsed to one: x [Bf, K, C], ĉ [Bf, L, 2] (or [L, 2]
  // shared), y [Bf, R, C].
  auto toLead3 = [&](Value v) -> Value {
    auto ty = cast<RankedTensorType>(v.getType());
    int64_t rk = ty.getRank();
    if (rk == 3)
      return v;
    int64_t lead = 1;
    for (int64_t i = 0; i + 2 < rk; ++i)
      lead *= ty.getDimSize(i);
    auto target = RankedTensorType::get(
        {lead, ty.getDimSize(rk - 2), ty.getDimSize(rk - 1)}, t);
    if (rk == 2)
      return tensor::ExpandShapeOp::create(
          rewriter, loc, target, v,
          ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    ReassociationIndices first;
    for (int64_t i = 0; i + 2 < rk; ++i)
      first.push_back(i);
    return tensor::CollapseShapeOp::create(
        rewriter, loc, target, v,
        ArrayRef<ReassociationIndices>{first, {rk - 2}, {rk - 1}});
  };
  Value x = toLead3(op.getInput());
  Value cHat3 = shared ? cHat : toLead3(cHat);
  int64_t flat = cast<RankedTensorType>(x.getType()).getDimSize(0);
  auto flatResType = RankedTensorType::get({flat, r, cols}, t);

  // Column pairs in blocks of `pb` (a block's [pb, L, 2] buffer about
  // 512 KiB, so that its FFTs stay in cache), one loop iteration per
  // (batch entry, block): a working set independent of C.
  int64_t bytes = t.getIntOrFloatBitWidth() / 8;
  int64_t pb =
      std::clamp<int64_t>((int64_t(1) << 19) / (len * 2 * bytes), 1, pairs);
  int64_t blocks = (pairs + pb - 1) / pb;
  auto ia = [&](int64_t v) -> OpFoldResult { return rewriter.getIndexAttr(v); };
  Value yInit =
      tensor::EmptyOp::create(rewriter, loc, flatResType.getShape(), t);
  // An scf.for (not scf.forall: the CPU pipeline's OpenMP conversion cannot
  // keep function calls, which the FFTs become, inside a parallel body).
  Value lb = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value ub = arith::ConstantIndexOp::create(rewriter, loc, flat * blocks);
  Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
  auto loop = scf::ForOp::create(rewriter, loc, lb, ub, one, ValueRange{yInit});
  {
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(loop.getBody());
    Value iv = loop.getInductionVar();
    Value zb = arith::DivUIOp::create(
        rewriter, loc, iv,
        arith::ConstantIndexOp::create(rewriter, loc, blocks));
    Value blk = arith::RemUIOp::create(
        rewriter, loc, iv,
        arith::ConstantIndexOp::create(rewriter, loc, blocks));
    IndexMath om{rewriter, loc};
    Value p0 = arith::MulIOp::create(rewriter, loc, blk, om.c(pb));

    // 2. Packed, zero-padded columns z : [pb, L, 2],
    //    z[p, u] = x[zb, u, 2(p0 + p)] + i·x[zb, u, 2(p0 + p) + 1].
    auto zType = RankedTensorType::get({pb, len, 2}, t);
    Value zInit = tensor::EmptyOp::create(rewriter, loc, zType.getShape(), t);
    auto packed = linalg::GenericOp::create(
        rewriter, loc, TypeRange{zType}, ValueRange{}, ValueRange{zInit},
        ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(3, ctx)},
        parallel(3), [&](OpBuilder &b, Location l, ValueRange) {
          IndexMath im{b, l};
          Value p = im.add(linalg::IndexOp::create(b, l, 0), p0);
          Value u = linalg::IndexOp::create(b, l, 1);
          Value comp = linalg::IndexOp::create(b, l, 2);
          Value col = im.add(im.add(p, p), comp);
          Value valid = im.andI(im.lt(u, im.c(k)), im.lt(col, im.c(cols)));
          Value v = tensor::ExtractOp::create(
              b, l, x,
              ValueRange{zb, im.select(valid, u, im.c(0)),
                         im.select(valid, col, im.c(0))});
          Value zero =
              arith::ConstantOp::create(b, l, t, b.getFloatAttr(t, 0.0));
          linalg::YieldOp::create(b, l, im.select(valid, v, zero));
        });
    Value zHat = FftOp::create(rewriter, loc, zType, packed.getResult(0),
                               /*inverse=*/false);

    // 3. Pointwise complex products FFT(c) ∘ FFT(z), then the inverse FFT.
    Value cBlock = cHat3;
    if (!shared)
      cBlock = tensor::ExtractSliceOp::create(
          rewriter, loc, RankedTensorType::get({len, 2}, t), cHat3,
          ArrayRef<OpFoldResult>{zb, ia(0), ia(0)},
          ArrayRef<OpFoldResult>{ia(1), ia(len), ia(2)},
          ArrayRef<OpFoldResult>{ia(1), ia(1), ia(1)});
    auto zMap = [&](int64_t part) {
      return AffineMap::get(3, 0, {d(0), d(1), cst(part)}, ctx);
    };
    auto cMap = [&](int64_t part) {
      return AffineMap::get(3, 0, {d(1), cst(part)}, ctx);
    };
    Value pInit = tensor::EmptyOp::create(rewriter, loc, zType.getShape(), t);
    auto product = linalg::GenericOp::create(
        rewriter, loc, TypeRange{zType}, ValueRange{zHat, zHat, cBlock, cBlock},
        ValueRange{pInit},
        ArrayRef<AffineMap>{zMap(0), zMap(1), cMap(0), cMap(1),
                            AffineMap::getMultiDimIdentityMap(3, ctx)},
        parallel(3), [&](OpBuilder &b, Location l, ValueRange a) {
          IndexMath im{b, l};
          Value comp = linalg::IndexOp::create(b, l, 2);
          Value re = arith::SubFOp::create(
              b, l, arith::MulFOp::create(b, l, a[0], a[2]),
              arith::MulFOp::create(b, l, a[1], a[3]));
          Value imag = arith::AddFOp::create(
              b, l, arith::MulFOp::create(b, l, a[0], a[3]),
              arith::MulFOp::create(b, l, a[1], a[2]));
          linalg::YieldOp::create(b, l,
                                  im.select(im.eq(comp, im.c(0)), re, imag));
        });
    Value w = FftOp::create(rewriter, loc, zType, product.getResult(0),
                            /*inverse=*/true);

    // 4. Unpack rows 0 .. R − 1 of the block's valid columns straight into
    //    y[zb, :, 2·p0 ..] (a slice of the loop-carried result, inserted
    //    back at the same place: bufferized in place, no tile buffer and
    //    no strided copy): y[zb, i, 2·p0 + c] = w[c / 2, i, c % 2], loops
    //    (c, i) with i innermost (w read along its rows).
    Value c0 = om.add(p0, p0);
    Value width = arith::MinSIOp::create(rewriter, loc, om.c(2 * pb),
                                         om.sub(om.c(cols), c0));
    Value yIter = loop.getRegionIterArgs()[0];
    SmallVector<OpFoldResult> yOffsets = {zb, ia(0), c0};
    SmallVector<OpFoldResult> ySizes = {ia(1), ia(r), width};
    SmallVector<OpFoldResult> yStrides = {ia(1), ia(1), ia(1)};
    auto partType = RankedTensorType::get({r, ShapedType::kDynamic}, t);
    Value dest = tensor::ExtractSliceOp::create(rewriter, loc, partType, yIter,
                                                yOffsets, ySizes, yStrides);
    auto tile = linalg::GenericOp::create(
        rewriter, loc, TypeRange{partType}, ValueRange{}, ValueRange{dest},
        ArrayRef<AffineMap>{
            AffineMap::getPermutationMap(ArrayRef<unsigned>{1u, 0u}, ctx)},
        parallel(2), [&](OpBuilder &b, Location l, ValueRange) {
          IndexMath im{b, l};
          Value col = linalg::IndexOp::create(b, l, 0);
          Value i = linalg::IndexOp::create(b, l, 1);
          Value two = im.c(2);
          Value v = tensor::ExtractOp::create(
              b, l, w,
              ValueRange{arith::DivUIOp::create(b, l, col, two), i,
                         arith::RemUIOp::create(b, l, col, two)});
          linalg::YieldOp::create(b, l, v);
        });
    Value next = tensor::InsertSliceOp::create(
        rewriter, loc, tile.getResult(0), yIter, yOffsets, ySizes, yStrides);
    scf::YieldOp::create(rewriter, loc, next);
  }
  Value y = loop.getResult(0);
  if (rank == 2)
    y = tensor::CollapseShapeOp::create(
        rewriter, loc, resType, y, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  else if (rank > 3) {
    ReassociationIndices first;
    for (int64_t i = 0; i < batchRank; ++i)
      first.push_back(i);
    y = tensor::ExpandShapeOp::create(
        rewriter, loc, resType, y,
        ArrayRef<ReassociationIndices>{first, {rank - 2}, {rank - 1}});
  }
  rewriter.replaceOp(op, y);
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
