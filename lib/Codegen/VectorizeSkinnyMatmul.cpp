//===- VectorizeSkinnyMatmul.cpp - register-blocked kernels for C[n, M] ---===//
//
// Part of the ropeattn project.
//
// The polynomial method's products have one tiny dimension (Dv + 1 value
// columns) and two long ones (feature rank R, rows): S = Uᵀ·Φ and
// Nᵀ = Sᵀ·Φᵀ. A BLAS library packs the long operand for a handful of
// multiply-adds per element, and its micro-kernel has no shape for n = 17;
// both cost more than the arithmetic (docs/Design.md, "Skinny products").
//
// This pass rewrites such a linalg.matmul on memrefs,
//
//   C[i, j] += Σ_k L(i, k) · R[k, j],   i < n (static, small),
//
// with L read as L[k, i] or L[i, k] and R, C unit-stride along j, into one
// loop over column tiles of `lanes` = vector-bits / bitwidth(T) columns:
//
//   for j0 in 0..M step lanes:          (the last tile masked)
//     acc_0..acc_{n-1} = 0              (n vector registers)
//     for k in 0..K:
//       a = R[k, j0 : j0 + lanes]       (one vector load)
//       acc_i = fma(a, broadcast(L(i, k)), acc_i)   for every i < n
//     C[i, j0 : j0 + lanes] += acc_i    for every i < n
//
// Each loaded element of the long operand feeds n fused multiply-adds from
// registers, and no operand is copied: the loop is bound by the FMA units,
// not by memory.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNVECTORIZESKINNYMATMUL
#include "ropeattn/Codegen/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;

namespace {

/// At most this many row blocks of max-rows rows are generated for one
/// product (Dv + 1 up to 4·24 = 96 at 512 bits).
constexpr int64_t kMaxRowBlocks = 4;

/// Whether the innermost stride of `type` is statically 1.
bool unitInnerStride(MemRefType type) {
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)) || strides.empty())
    return false;
  return strides.back() == 1;
}

struct SkinnyMatmul : OpRewritePattern<linalg::MatmulOp> {
  SkinnyMatmul(MLIRContext *ctx, int64_t maxRows, int64_t vectorBits)
      : OpRewritePattern(ctx), maxRows(maxRows), vectorBits(vectorBits) {}

  LogicalResult matchAndRewrite(linalg::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "not on memrefs");
    if (op.getCast() != linalg::TypeFn::cast_signed)
      return rewriter.notifyMatchFailure(op, "non-default cast");
    Value lhs = op.getDpsInputs()[0], rhs = op.getDpsInputs()[1],
          out = op.getDpsInits()[0];
    auto cType = cast<MemRefType>(out.getType());
    auto lType = cast<MemRefType>(lhs.getType());
    auto rType = cast<MemRefType>(rhs.getType());
    Type t = cType.getElementType();
    if (!t.isF32() && !t.isF64())
      return rewriter.notifyMatchFailure(op, "not f32/f64");
    if (lType.getElementType() != t || rType.getElementType() != t)
      return rewriter.notifyMatchFailure(op, "mixed element types");
    if (!unitInnerStride(cType) || !unitInnerStride(rType))
      return rewriter.notifyMatchFailure(op, "C or R not unit-stride in j");

    // Maps over (d0, d1, d2) = (i, j, k): C(i, j), R(k, j), L(k, i)/(i, k).
    MLIRContext *ctx = op.getContext();
    auto m = [&](unsigned x, unsigned y) {
      return AffineMap::get(
          3, 0, {getAffineDimExpr(x, ctx), getAffineDimExpr(y, ctx)}, ctx);
    };
    SmallVector<AffineMap> maps = op.getIndexingMapsArray();
    if (maps.size() != 3 || maps[2] != m(0, 1))
      return rewriter.notifyMatchFailure(op, "C is not (i, j)");
    bool rhsTransposed;
    if (maps[1] == m(2, 1))
      rhsTransposed = false;
    else if (maps[1] == m(1, 2))
      rhsTransposed = true;
    else
      return rewriter.notifyMatchFailure(op, "R is neither (k, j) nor (j, k)");
    bool lhsTransposed;
    if (maps[0] == m(2, 0))
      lhsTransposed = true;
    else if (maps[0] == m(0, 2))
      lhsTransposed = false;
    else
      return rewriter.notifyMatchFailure(op, "L is neither (k, i) nor (i, k)");

    int64_t lanes = vectorBits / t.getIntOrFloatBitWidth();
    if (lanes < 2)
      return rewriter.notifyMatchFailure(op, "vector narrower than 2 lanes");
    auto small = [&](int64_t x) {
      return !ShapedType::isDynamic(x) && x >= 1 && x <= maxRows;
    };
    const int64_t rowsC = cType.getDimSize(0);
    if (!small(rowsC)) {
      int64_t depth = rType.getDimSize(0);
      if (!rhsTransposed && small(depth))
        return rewriteSmallDepth(op, rewriter, lhsTransposed, depth, lanes);
      // A few more rows than fit (e.g. Dv + 1 = 33, 65): row blocks of at
      // most max-rows, each its own loop over the column tiles.
      if (ShapedType::isDynamic(rowsC) || rowsC < 1 ||
          rowsC > kMaxRowBlocks * maxRows)
        return rewriter.notifyMatchFailure(
            op, "neither C's rows nor the depth K are small and static");
    }
    const int64_t blocks = (rowsC + maxRows - 1) / maxRows;
    const int64_t perBlock = (rowsC + blocks - 1) / blocks;
    int64_t n = perBlock; // rows of the block being generated
    Location loc = op.getLoc();
    auto vecType = VectorType::get({lanes}, t);
    Value c0 = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value c1 = arith::ConstantIndexOp::create(rewriter, loc, 1);
    Value cl = arith::ConstantIndexOp::create(rewriter, loc, lanes);
    Value zeroVec = arith::ConstantOp::create(
        rewriter, loc, vecType,
        DenseElementsAttr::get(vecType, rewriter.getFloatAttr(t, 0.0)));
    Value cols = memref::DimOp::create(rewriter, loc, out, 1);
    Value depth = memref::DimOp::create(rewriter, loc, rhs, rhsTransposed);
    auto i32Vec = VectorType::get({lanes}, rewriter.getI32Type());
    Value steps;
    {
      SmallVector<int32_t> iota(lanes);
      for (int64_t x = 0; x < lanes; ++x)
        iota[x] = static_cast<int32_t>(x);
      steps = arith::ConstantOp::create(
          rewriter, loc, i32Vec,
          DenseElementsAttr::get(i32Vec, ArrayRef(iota)));
    }
    // [0, 1, ..] < count, from arith ops (vector.create_mask has no lowering
    // in convert-to-llvm).
    auto maskOf = [&](OpBuilder &b, Location l, Value count) -> Value {
      Value c32 = arith::IndexCastOp::create(b, l, b.getI32Type(), count);
      return arith::CmpIOp::create(
          b, l, arith::CmpIPredicate::slt, steps,
          vector::BroadcastOp::create(b, l, i32Vec, c32));
    };
    Value lastRow = arith::SubIOp::create(
        rewriter, loc, cols, arith::ConstantIndexOp::create(rewriter, loc, 1));
    Value lastK = arith::SubIOp::create(
        rewriter, loc, depth, arith::ConstantIndexOp::create(rewriter, loc, 1));
    SmallVector<Value> rowIdx; // the rows of the block being generated

    auto loadOf = [&](OpBuilder &x, Location l, Value mask, Value mem,
                      ValueRange idx) -> Value {
      if (mask)
        return vector::MaskedLoadOp::create(x, l, vecType, mem, idx, mask,
                                            zeroVec);
      return vector::LoadOp::create(x, l, vecType, mem, idx);
    };
    // C[i, j0 : j0 + lanes] += acc_i (masked for the last tile).
    auto storeTile = [&](OpBuilder &b, Location l, Value j0, Value mask,
                         ValueRange acc) {
      for (int64_t i = 0; i < n; ++i) {
        Value old = loadOf(b, l, mask, out, {rowIdx[i], j0});
        Value sum = arith::AddFOp::create(b, l, old, acc[i]).getResult();
        if (mask)
          vector::MaskedStoreOp::create(b, l, out, ValueRange{rowIdx[i], j0},
                                        mask, sum);
        else
          vector::StoreOp::create(b, l, sum, out, ValueRange{rowIdx[i], j0});
      }
    };
    // One column tile at j0; `mask` null for a full tile.
    auto tile = [&](OpBuilder &b, Location l, Value j0, Value mask) {
      auto load = [&](OpBuilder &x, Value mem, ValueRange idx) -> Value {
        return loadOf(x, l, mask, mem, idx);
      };
      SmallVector<Value> init(n, zeroVec);
      auto lhsAt = [&](OpBuilder &x, Location xl, Value k, int64_t i) {
        return memref::LoadOp::create(x, xl, lhs,
                                      lhsTransposed ? ValueRange{k, rowIdx[i]}
                                                    : ValueRange{rowIdx[i], k});
      };
      // R(j, k) stored [M, K]: blocks of `lanes` k, each read as `lanes`
      // rows of R (rows past M clamped to the last one: their lanes are
      // never stored) and transposed in registers, so that T_kk holds
      // R(j0 .. j0 + lanes, kb + kk). Lanes past K load as 0, and their L
      // element is read at K − 1 (0 · finite = 0).
      auto transposedBlock = [&](OpBuilder &kb, Location kl, Value k0,
                                 ValueRange acc) -> SmallVector<Value> {
        Value kLen = arith::MinSIOp::create(
            kb, kl, cl, arith::SubIOp::create(kb, kl, depth, k0));
        Value kMask = maskOf(kb, kl, kLen);
        SmallVector<Value> rowsT;
        for (int64_t x = 0; x < lanes; ++x) {
          Value row = arith::AddIOp::create(
              kb, kl, j0, arith::ConstantIndexOp::create(kb, kl, x));
          if (mask)
            row = arith::MinSIOp::create(kb, kl, row, lastRow);
          rowsT.push_back(vector::MaskedLoadOp::create(
              kb, kl, vecType, rhs, ValueRange{row, k0}, kMask, zeroVec));
        }
        // Butterfly transpose: stage b pairs rows x and x + b and swaps
        // their off-diagonal b-blocks.
        for (int64_t bs = lanes / 2; bs >= 1; bs /= 2) {
          SmallVector<Value> next(rowsT);
          for (int64_t x = 0; x < lanes; ++x) {
            if ((x / bs) % 2 != 0)
              continue;
            SmallVector<int64_t> lo(lanes), hi(lanes);
            for (int64_t e = 0; e < lanes; ++e) {
              int64_t base = e / (2 * bs) * (2 * bs), off = e % (2 * bs);
              lo[e] = off < bs ? base + off : lanes + base + off - bs;
              hi[e] = off < bs ? base + bs + off : lanes + base + off;
            }
            next[x] =
                vector::ShuffleOp::create(kb, kl, rowsT[x], rowsT[x + bs], lo);
            next[x + bs] =
                vector::ShuffleOp::create(kb, kl, rowsT[x], rowsT[x + bs], hi);
          }
          rowsT = std::move(next);
        }
        SmallVector<Value> out(acc);
        for (int64_t kk = 0; kk < lanes; ++kk) {
          Value k = arith::MinSIOp::create(
              kb, kl,
              arith::AddIOp::create(kb, kl, k0,
                                    arith::ConstantIndexOp::create(kb, kl, kk)),
              lastK);
          for (int64_t i = 0; i < n; ++i) {
            Value bc = vector::BroadcastOp::create(kb, kl, vecType,
                                                   lhsAt(kb, kl, k, i));
            out[i] = vector::FMAOp::create(kb, kl, rowsT[kk], bc, out[i]);
          }
        }
        return out;
      };
      if (rhsTransposed) {
        auto blocks = scf::ForOp::create(
            b, l, c0, depth, cl, init,
            [&](OpBuilder &kb, Location kl, Value k0, ValueRange acc) {
              scf::YieldOp::create(kb, kl, transposedBlock(kb, kl, k0, acc));
            });
        storeTile(b, l, j0, mask, blocks.getResults());
        return;
      }
      // acc[c·n + i] += R[k, tile]·L(i, k) for the k of chain c.
      auto step = [&](OpBuilder &kb, Location kl, Value k, ValueRange acc,
                      int64_t c, SmallVectorImpl<Value> &next) {
        Value a = load(kb, rhs, {k, j0});
        for (int64_t i = 0; i < n; ++i) {
          Value bc =
              vector::BroadcastOp::create(kb, kl, vecType, lhsAt(kb, kl, k, i));
          next[c * n + i] =
              vector::FMAOp::create(kb, kl, a, bc, acc[c * n + i]);
        }
      };
      // Fewer than 4 rows: 4/n interleaved chains over k, so that several
      // independent FMAs are in flight (one row alone would be one chain of
      // K dependent FMAs).
      const int64_t chains = n >= 4 ? 1 : 4 / n;
      SmallVector<Value> accInit(chains * n, zeroVec);
      Value cc = arith::ConstantIndexOp::create(b, l, chains);
      Value kFull = arith::SubIOp::create(
          b, l, depth, arith::RemUIOp::create(b, l, depth, cc));
      auto inner = scf::ForOp::create(
          b, l, c0, kFull, cc, accInit,
          [&](OpBuilder &kb, Location kl, Value k, ValueRange acc) {
            SmallVector<Value> next(acc);
            for (int64_t c = 0; c < chains; ++c)
              step(kb, kl,
                   c == 0 ? k
                          : arith::AddIOp::create(
                                kb, kl, k,
                                arith::ConstantIndexOp::create(kb, kl, c)),
                   acc, c, next);
            scf::YieldOp::create(kb, kl, next);
          });
      SmallVector<Value> sums(inner.getResults());
      if (chains > 1) {
        auto rest = scf::ForOp::create(
            b, l, kFull, depth, c1, sums,
            [&](OpBuilder &kb, Location kl, Value k, ValueRange acc) {
              SmallVector<Value> next(acc);
              step(kb, kl, k, acc, 0, next);
              scf::YieldOp::create(kb, kl, next);
            });
        sums.assign(rest.getResults().begin(), rest.getResults().end());
        for (int64_t c = 1; c < chains; ++c)
          for (int64_t i = 0; i < n; ++i)
            sums[i] = arith::AddFOp::create(b, l, sums[i], sums[c * n + i]);
        sums.resize(n);
      }
      storeTile(b, l, j0, mask, sums);
    };

    // Per row block: full tiles, then one masked tile for the remainder.
    Value rem = arith::RemUIOp::create(rewriter, loc, cols, cl);
    Value full = arith::SubIOp::create(rewriter, loc, cols, rem);
    Value hasRem =
        arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::ne, rem, c0);
    for (int64_t i0 = 0; i0 < rowsC; i0 += perBlock) {
      n = std::min(perBlock, rowsC - i0);
      rowIdx.clear();
      for (int64_t i = 0; i < n; ++i)
        rowIdx.push_back(arith::ConstantIndexOp::create(rewriter, loc, i0 + i));
      scf::ForOp::create(rewriter, loc, c0, full, cl, ValueRange{},
                         [&](OpBuilder &b, Location l, Value j0, ValueRange) {
                           tile(b, l, j0, Value());
                           scf::YieldOp::create(b, l);
                         });
      scf::IfOp::create(rewriter, loc, hasRem, [&](OpBuilder &b, Location l) {
        Value mask = maskOf(b, l, rem);
        tile(b, l, full, mask);
        scf::YieldOp::create(b, l);
      });
    }
    rewriter.eraseOp(op);
    return success();
  }

  /// C[i, j] += Σ_k L(i, k)·R[k, j] with a small static depth K and any
  /// number of rows: per row i, the K elements L(i, ·) are broadcast once,
  /// then every tile of `lanes` columns is C += Σ_k R[k, tile]·L(i, k)
  /// (K vector loads of R, which stays in cache, and K FMAs per tile, in two
  /// interleaved chains).
  LogicalResult rewriteSmallDepth(linalg::MatmulOp op,
                                  PatternRewriter &rewriter, bool lhsTransposed,
                                  int64_t depth, int64_t lanes) const {
    Value lhs = op.getDpsInputs()[0], rhs = op.getDpsInputs()[1],
          out = op.getDpsInits()[0];
    Type t = cast<MemRefType>(out.getType()).getElementType();
    Location loc = op.getLoc();
    auto vecType = VectorType::get({lanes}, t);
    auto i32Vec = VectorType::get({lanes}, rewriter.getI32Type());
    Value c0 = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value c1 = arith::ConstantIndexOp::create(rewriter, loc, 1);
    Value cl = arith::ConstantIndexOp::create(rewriter, loc, lanes);
    Value zeroVec = arith::ConstantOp::create(
        rewriter, loc, vecType,
        DenseElementsAttr::get(vecType, rewriter.getFloatAttr(t, 0.0)));
    SmallVector<int32_t> iota(lanes);
    for (int64_t x = 0; x < lanes; ++x)
      iota[x] = static_cast<int32_t>(x);
    Value steps = arith::ConstantOp::create(
        rewriter, loc, i32Vec, DenseElementsAttr::get(i32Vec, ArrayRef(iota)));
    SmallVector<Value> kIdx;
    for (int64_t k = 0; k < depth; ++k)
      kIdx.push_back(arith::ConstantIndexOp::create(rewriter, loc, k));
    Value rowsC = memref::DimOp::create(rewriter, loc, out, 0);
    Value cols = memref::DimOp::create(rewriter, loc, out, 1);
    Value rem = arith::RemUIOp::create(rewriter, loc, cols, cl);
    Value full = arith::SubIOp::create(rewriter, loc, cols, rem);
    Value hasRem =
        arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::ne, rem, c0);
    scf::ForOp::create(
        rewriter, loc, c0, rowsC, c1, ValueRange{},
        [&](OpBuilder &b, Location l, Value i, ValueRange) {
          SmallVector<Value> bl;
          for (int64_t k = 0; k < depth; ++k) {
            Value s =
                memref::LoadOp::create(b, l, lhs,
                                       lhsTransposed ? ValueRange{kIdx[k], i}
                                                     : ValueRange{i, kIdx[k]});
            bl.push_back(vector::BroadcastOp::create(b, l, vecType, s));
          }
          auto tile = [&](OpBuilder &x, Location xl, Value j0, Value mask) {
            auto load = [&](Value mem, ValueRange idx) -> Value {
              if (mask)
                return vector::MaskedLoadOp::create(x, xl, vecType, mem, idx,
                                                    mask, zeroVec);
              return vector::LoadOp::create(x, xl, vecType, mem, idx);
            };
            // Two partial sums (even and odd k) halve the chain of
            // dependent FMAs per tile.
            Value acc = load(out, {i, j0}), odd;
            for (int64_t k = 0; k < depth; ++k) {
              Value a = load(rhs, {kIdx[k], j0});
              if (k % 2 == 0)
                acc = vector::FMAOp::create(x, xl, a, bl[k], acc);
              else if (!odd)
                odd = arith::MulFOp::create(x, xl, a, bl[k]);
              else
                odd = vector::FMAOp::create(x, xl, a, bl[k], odd);
            }
            if (odd)
              acc = arith::AddFOp::create(x, xl, acc, odd);
            if (mask)
              vector::MaskedStoreOp::create(x, xl, out, ValueRange{i, j0}, mask,
                                            acc);
            else
              vector::StoreOp::create(x, xl, acc, out, ValueRange{i, j0});
          };
          scf::ForOp::create(
              b, l, c0, full, cl, ValueRange{},
              [&](OpBuilder &x, Location xl, Value j0, ValueRange) {
                tile(x, xl, j0, Value());
                scf::YieldOp::create(x, xl);
              });
          scf::IfOp::create(b, l, hasRem, [&](OpBuilder &x, Location xl) {
            Value r32 = arith::IndexCastOp::create(x, xl, x.getI32Type(), rem);
            Value mask = arith::CmpIOp::create(
                x, xl, arith::CmpIPredicate::slt, steps,
                vector::BroadcastOp::create(x, xl, i32Vec, r32));
            tile(x, xl, full, mask);
            scf::YieldOp::create(x, xl);
          });
          scf::YieldOp::create(b, l);
        });
    rewriter.eraseOp(op);
    return success();
  }

  int64_t maxRows, vectorBits;
};

struct RopeAttnVectorizeSkinnyMatmulPass
    : public ropeattn::impl::RopeAttnVectorizeSkinnyMatmulBase<
          RopeAttnVectorizeSkinnyMatmulPass> {
  using Base::Base;
  void runOnOperation() override {
    if (vectorBits < 64 || (vectorBits & (vectorBits - 1)) != 0) {
      getOperation()->emitError(
          "ropeattn-vectorize-skinny-matmul: "
          "vector-bits must be a power of two >= 64, got ")
          << std::to_string(vectorBits);
      return signalPassFailure();
    }
    if (maxRows < 0) {
      getOperation()->emitError(
          "ropeattn-vectorize-skinny-matmul: max-rows must be >= 0");
      return signalPassFailure();
    }
    if (maxRows == 0)
      return;
    RewritePatternSet patterns(&getContext());
    patterns.add<SkinnyMatmul>(&getContext(), maxRows, vectorBits);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
