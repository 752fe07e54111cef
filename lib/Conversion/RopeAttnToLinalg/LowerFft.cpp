//===- LowerFft.cpp - ropeattn.fft to generated code or FFTW calls --------===//
//
// Part of the ropeattn project.
//
// Two lowerings of ropeattn.fft (docs/Spec.md, "ropeattn.fft"), chosen by the
// pass option `backend`:
//
//  * codegen — radix-2 Stockham autosort on split real/imaginary planes
//    [B, L]. Stage t (s = 2^t, m = L / 2s) reads x viewed as [B, 2, m, s]
//    and writes y viewed as [B, m, 2, s]:
//
//      a = x[b, 0, p, q],  c = x[b, 1, p, q],  w = e^{∓2πi·p·s/L}
//      y[b, p, 0, q] = a + c,   y[b, p, 1, q] = (a − c)·w
//
//    after log2 L stages y is the DFT in natural order (no bit reversal).
//    Each stage is one linalg.generic whose innermost loop (q) runs over
//    contiguous elements. The twiddles are one table of L/2 entries built at
//    compile time in double (rounded once to the element type); stage t
//    reads it with stride s.
//
//  * library — a call into the ropeattn runtime (FFTW), on the buffers of
//    the input (read-only) and of a fresh result allocation.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Conversion/Passes.h"

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/Support/MathExtras.h"

#include <cmath>

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNLOWERFFT
#include "ropeattn/Conversion/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

/// Longest transform the codegen backend lowers: its twiddle table (L/2
/// complex entries) is a compile-time constant.
constexpr int64_t kMaxCodegenLength = int64_t(1) << 24;

enum class Backend { Codegen, Library };

/// [B.., L, 2] → [B, L, 2] (B = the product of the batch sizes, 1 for none).
Value toBatch3(OpBuilder &b, Location loc, Value x) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  if (rank == 3)
    return x;
  int64_t batch = 1;
  for (int64_t i = 0; i + 2 < rank; ++i)
    batch *= type.getDimSize(i);
  auto target = RankedTensorType::get({batch, type.getDimSize(rank - 2), 2},
                                      type.getElementType());
  if (rank == 2)
    return tensor::ExpandShapeOp::create(
        b, loc, target, x, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  ReassociationIndices lead;
  for (int64_t i = 0; i + 2 < rank; ++i)
    lead.push_back(i);
  return tensor::CollapseShapeOp::create(
      b, loc, target, x,
      ArrayRef<ReassociationIndices>{lead, {rank - 2}, {rank - 1}});
}

/// The inverse of toBatch3: [B, L, 2] → `type` ([B.., L, 2]).
Value fromBatch3(OpBuilder &b, Location loc, Value x, RankedTensorType type) {
  int64_t rank = type.getRank();
  if (rank == 3)
    return x;
  if (rank == 2)
    return tensor::CollapseShapeOp::create(
        b, loc, type, x, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  ReassociationIndices lead;
  for (int64_t i = 0; i + 2 < rank; ++i)
    lead.push_back(i);
  return tensor::ExpandShapeOp::create(
      b, loc, type, x,
      ArrayRef<ReassociationIndices>{lead, {rank - 2}, {rank - 1}});
}

Value constantTable(OpBuilder &b, Location loc, FloatType t,
                    ArrayRef<double> values) {
  SmallVector<APFloat> v;
  v.reserve(values.size());
  for (double x : values) {
    APFloat f(x);
    bool losesInfo;
    f.convert(t.getFloatSemantics(), APFloat::rmNearestTiesToEven, &losesInfo);
    v.push_back(f);
  }
  auto type = RankedTensorType::get({int64_t(values.size())}, t);
  return arith::ConstantOp::create(b, loc, DenseElementsAttr::get(type, v));
}

/// One Stockham stage with a short contiguous run (s < `lanes`), on the
/// planes [B, L] as vectors of `lanes` elements. Its inputs a = x[p·s + q]
/// and c = x[L/2 + p·s + q] are contiguous over the flat index i = p·s + q,
/// and the 2·lanes outputs of lanes i..i+lanes−1 are y[2i, 2i + 2·lanes):
/// blocks of s sums and s twiddled differences, alternating. So each step
/// reads four vectors and one twiddle vector, interleaves by
/// `vector.shuffle` and writes four vectors; the scalar generic would
/// otherwise run an innermost loop of s < lanes iterations.
/// The twiddle of lane l is table[p·s] = table[i + l − l mod s] (s divides
/// i): one contiguous read and a shuffle.
std::pair<Value, Value> buildShortStage(OpBuilder &b, Location loc, Value re,
                                        Value im, Value outRe, Value outIm,
                                        Value tableRe, Value tableIm,
                                        int64_t batch, int64_t len, int64_t s,
                                        int64_t lanes) {
  auto t = cast<RankedTensorType>(re.getType()).getElementType();
  auto vecType = VectorType::get({lanes}, t);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value halfLen = arith::ConstantIndexOp::create(b, loc, len / 2);
  Value step = arith::ConstantIndexOp::create(b, loc, lanes);
  Value stepOut = arith::ConstantIndexOp::create(b, loc, lanes);
  Value pad = arith::ConstantOp::create(b, loc, t, b.getFloatAttr(t, 0.0));
  SmallVector<int64_t> twMask, outMask[2];
  for (int64_t l = 0; l < lanes; ++l)
    twMask.push_back(l - l % s);
  for (int64_t o = 0; o < 2 * lanes; ++o) {
    int64_t block = o / (2 * s), within = o % (2 * s);
    outMask[o / lanes].push_back(within < s ? block * s + within
                                            : lanes + block * s + within - s);
  }
  SmallVector<bool> inBounds = {true};
  auto batchLoop = scf::ForOp::create(
      b, loc, zero, arith::ConstantIndexOp::create(b, loc, batch), one,
      ValueRange{outRe, outIm},
      [&](OpBuilder &bb, Location l, Value bi, ValueRange outer) {
        auto inner = scf::ForOp::create(
            bb, l, zero, halfLen, step, outer,
            [&](OpBuilder &nb, Location l, Value i, ValueRange acc) {
              Value iHi = arith::AddIOp::create(nb, l, i, halfLen);
              auto read = [&](Value plane, ValueRange idx) -> Value {
                return vector::TransferReadOp::create(nb, l, vecType, plane,
                                                      idx, pad, inBounds);
              };
              Value ar = read(re, {bi, i}), cr = read(re, {bi, iHi});
              Value ai = read(im, {bi, i}), ci = read(im, {bi, iHi});
              auto twiddle = [&](Value table) -> Value {
                Value w = read(table, {i});
                return vector::ShuffleOp::create(nb, l, w, w, twMask);
              };
              Value w0 = twiddle(tableRe), w1 = twiddle(tableIm);
              Value sr = arith::AddFOp::create(nb, l, ar, cr);
              Value si = arith::AddFOp::create(nb, l, ai, ci);
              Value dr = arith::SubFOp::create(nb, l, ar, cr);
              Value di = arith::SubFOp::create(nb, l, ai, ci);
              Value pr = arith::SubFOp::create(
                  nb, l, arith::MulFOp::create(nb, l, dr, w0),
                  arith::MulFOp::create(nb, l, di, w1));
              Value pi = arith::AddFOp::create(
                  nb, l, arith::MulFOp::create(nb, l, dr, w1),
                  arith::MulFOp::create(nb, l, di, w0));
              Value o0 = arith::AddIOp::create(nb, l, i, i);
              Value o1 = arith::AddIOp::create(nb, l, o0, stepOut);
              SmallVector<Value> results;
              for (auto [plane, sum, diff] :
                   {std::tuple{acc[0], sr, pr}, std::tuple{acc[1], si, pi}}) {
                Value y = plane;
                for (int h = 0; h < 2; ++h) {
                  Value v =
                      vector::ShuffleOp::create(nb, l, sum, diff, outMask[h]);
                  y = vector::TransferWriteOp::create(
                          nb, l, v, y, ValueRange{bi, h ? o1 : o0}, inBounds)
                          .getResult();
                }
                results.push_back(y);
              }
              scf::YieldOp::create(nb, l, results);
            });
        scf::YieldOp::create(bb, l, inner.getResults());
      });
  return {batchLoop.getResult(0), batchLoop.getResult(1)};
}

/// The codegen lowering of one FFT on [B, L, 2] (L a power of two ≥ 2).
Value buildStockham(OpBuilder &b, Location loc, Value x, int64_t batch,
                    int64_t len, bool inverse) {
  MLIRContext *ctx = b.getContext();
  auto t =
      cast<FloatType>(cast<RankedTensorType>(x.getType()).getElementType());
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto c = [&](int64_t v) { return getAffineConstantExpr(v, ctx); };
  auto par = [](unsigned n) {
    return SmallVector<utils::IteratorType>(n, utils::IteratorType::parallel);
  };

  // Twiddles e^{∓2πi·p/L}, p < L/2. The angle is reduced exactly (p/L is a
  // dyadic rational) before the f64 cos/sin.
  int64_t half = len / 2;
  SmallVector<double> wr(half), wi(half);
  double sign = inverse ? 1.0 : -1.0;
  for (int64_t p = 0; p < half; ++p) {
    // e^{iπx}, x = 2p/L ∈ [0, 1): reduce to [0, 1/4] (exact: x is dyadic)
    // so that symmetric entries are exactly symmetric and cos(π/2) is 0.
    double x = 2.0 * double(p) / double(len), s, c;
    if (x <= 0.25) {
      s = std::sin(M_PI * x);
      c = std::cos(M_PI * x);
    } else if (x <= 0.5) {
      s = std::cos(M_PI * (0.5 - x));
      c = std::sin(M_PI * (0.5 - x));
    } else if (x <= 0.75) {
      s = std::cos(M_PI * (x - 0.5));
      c = -std::sin(M_PI * (x - 0.5));
    } else {
      s = std::sin(M_PI * (1.0 - x));
      c = -std::cos(M_PI * (1.0 - x));
    }
    wr[p] = c;
    wi[p] = sign * s;
  }
  Value tableRe = constantTable(b, loc, t, wr);
  Value tableIm = constantTable(b, loc, t, wi);

  // Split planes.
  auto planeType = RankedTensorType::get({batch, len}, t);
  Value emptyRe = tensor::EmptyOp::create(b, loc, planeType.getShape(), t);
  Value emptyIm = tensor::EmptyOp::create(b, loc, planeType.getShape(), t);
  SmallVector<AffineMap> splitMaps = {
      AffineMap::get(2, 0, {d(0), d(1), c(0)}, ctx),
      AffineMap::get(2, 0, {d(0), d(1), c(1)}, ctx),
      AffineMap::getMultiDimIdentityMap(2, ctx),
      AffineMap::getMultiDimIdentityMap(2, ctx)};
  auto split = linalg::GenericOp::create(
      b, loc, TypeRange{planeType, planeType}, ValueRange{x, x},
      ValueRange{emptyRe, emptyIm}, splitMaps, par(2),
      [](OpBuilder &nb, Location l, ValueRange a) {
        linalg::YieldOp::create(nb, l, ValueRange{a[0], a[1]});
      });
  Value re = split.getResult(0), im = split.getResult(1);
  // Ping-pong: stage t writes into the planes stage t − 1 read (dead by
  // then), so bufferization reuses two pairs of planes instead of
  // allocating a pair per stage.
  Value spareRe, spareIm;

  int64_t stages = llvm::Log2_64(len);
  for (int64_t stage = 0; stage < stages; ++stage) {
    int64_t s = int64_t(1) << stage, m = len / (2 * s);
    auto inType = RankedTensorType::get({batch, 2, m, s}, t);
    auto outType = RankedTensorType::get({batch, m, 2, s}, t);
    SmallVector<ReassociationIndices> assoc = {{0}, {1, 2, 3}};
    Value xr = tensor::ExpandShapeOp::create(b, loc, inType, re, assoc);
    Value xi = tensor::ExpandShapeOp::create(b, loc, inType, im, assoc);
    auto slice = [&](Value table) -> Value {
      return tensor::ExtractSliceOp::create(
          b, loc, RankedTensorType::get({m}, t), table, ValueRange{},
          ValueRange{}, ValueRange{}, ArrayRef<int64_t>{0},
          ArrayRef<int64_t>{m}, ArrayRef<int64_t>{s});
    };
    Value twr = slice(tableRe), twi = slice(tableIm);
    Value outRe, outIm;
    if (spareRe) {
      outRe = tensor::ExpandShapeOp::create(b, loc, outType, spareRe, assoc);
      outIm = tensor::ExpandShapeOp::create(b, loc, outType, spareIm, assoc);
    } else {
      outRe = tensor::EmptyOp::create(b, loc, outType.getShape(), t);
      outIm = tensor::EmptyOp::create(b, loc, outType.getShape(), t);
    }
    int64_t lanes = t.getWidth() == 32 ? 16 : 8;
    if (s < lanes && len / 2 >= lanes) {
      Value planeRe = spareRe, planeIm = spareIm;
      if (!planeRe) {
        // Not tensor.empty: two of one shape would be CSE'd into one value
        // and the two loops' in-place writes would then conflict.
        planeRe = bufferization::AllocTensorOp::create(b, loc, planeType, {});
        planeIm = bufferization::AllocTensorOp::create(b, loc, planeType, {});
      }
      spareRe = re;
      spareIm = im;
      std::tie(re, im) =
          buildShortStage(b, loc, re, im, planeRe, planeIm, tableRe, tableIm,
                          batch, len, s, lanes);
      continue;
    }
    spareRe = re;
    spareIm = im;
    // Iteration (b, p, j, q) over the output [B, m, 2, s].
    AffineMap lo = AffineMap::get(4, 0, {d(0), c(0), d(1), d(3)}, ctx);
    AffineMap hi = AffineMap::get(4, 0, {d(0), c(1), d(1), d(3)}, ctx);
    AffineMap tw = AffineMap::get(4, 0, {d(1)}, ctx);
    AffineMap id = AffineMap::getMultiDimIdentityMap(4, ctx);
    auto body = [&](OpBuilder &nb, Location l, ValueRange a) {
      Value ar = a[0], cr = a[1], ai = a[2], ci = a[3], w0 = a[4], w1 = a[5];
      Value j = linalg::IndexOp::create(nb, l, 2);
      Value zero = arith::ConstantIndexOp::create(nb, l, 0);
      Value first =
          arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, j, zero);
      Value sr = arith::AddFOp::create(nb, l, ar, cr);
      Value si = arith::AddFOp::create(nb, l, ai, ci);
      Value dr = arith::SubFOp::create(nb, l, ar, cr);
      Value di = arith::SubFOp::create(nb, l, ai, ci);
      // (dr + i·di)(w0 + i·w1)
      Value pr =
          arith::SubFOp::create(nb, l, arith::MulFOp::create(nb, l, dr, w0),
                                arith::MulFOp::create(nb, l, di, w1));
      Value pi =
          arith::AddFOp::create(nb, l, arith::MulFOp::create(nb, l, dr, w1),
                                arith::MulFOp::create(nb, l, di, w0));
      Value yr = arith::SelectOp::create(nb, l, first, sr, pr);
      Value yi = arith::SelectOp::create(nb, l, first, si, pi);
      linalg::YieldOp::create(nb, l, ValueRange{yr, yi});
    };
    auto step = linalg::GenericOp::create(
        b, loc, TypeRange{outType, outType},
        ValueRange{xr, xr, xi, xi, twr, twi}, ValueRange{outRe, outIm},
        ArrayRef<AffineMap>{lo, hi, lo, hi, tw, tw, id, id}, par(4), body);
    re = tensor::CollapseShapeOp::create(b, loc, planeType, step.getResult(0),
                                         assoc);
    im = tensor::CollapseShapeOp::create(b, loc, planeType, step.getResult(1),
                                         assoc);
  }

  // Interleave (and scale by 1/L for the inverse).
  auto resultType = RankedTensorType::get({batch, len, 2}, t);
  Value out = tensor::EmptyOp::create(b, loc, resultType.getShape(), t);
  AffineMap plane = AffineMap::get(3, 0, {d(0), d(1)}, ctx);
  auto merged = linalg::GenericOp::create(
      b, loc, TypeRange{resultType}, ValueRange{re, im}, ValueRange{out},
      ArrayRef<AffineMap>{plane, plane,
                          AffineMap::getMultiDimIdentityMap(3, ctx)},
      par(3), [&](OpBuilder &nb, Location l, ValueRange a) {
        Value k = linalg::IndexOp::create(nb, l, 2);
        Value zero = arith::ConstantIndexOp::create(nb, l, 0);
        Value isRe =
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, k, zero);
        Value v = arith::SelectOp::create(nb, l, isRe, a[0], a[1]);
        if (inverse) {
          Value scale = arith::ConstantOp::create(
              nb, l, t, nb.getFloatAttr(t, 1.0 / double(len)));
          v = arith::MulFOp::create(nb, l, v, scale);
        }
        linalg::YieldOp::create(nb, l, v);
      });
  return merged.getResult(0);
}

/// The codegen FFT of one shape [B, L, 2] and direction as a private function
/// `@__ropeattn_fft_BxL_T_{fwd,inv}` (created once per module, called by every
/// op of that shape): the stages are compiled once, and LLVM optimizes small
/// functions rather than one huge one.
func::FuncOp getCodegenFunction(ModuleOp module, RankedTensorType type,
                                bool inverse) {
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "__ropeattn_fft_" << type.getDimSize(0) << "x" << type.getDimSize(1)
     << "_" << type.getElementType() << (inverse ? "_inv" : "_fwd");
  if (auto f = module.lookupSymbol<func::FuncOp>(name))
    return f;
  OpBuilder b(module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  Location loc = module.getLoc();
  auto f =
      func::FuncOp::create(b, loc, name, b.getFunctionType({type}, {type}));
  f.setPrivate();
  Block *body = f.addEntryBlock();
  b.setInsertionPointToStart(body);
  Value y = buildStockham(b, loc, body->getArgument(0), type.getDimSize(0),
                          type.getDimSize(1), inverse);
  func::ReturnOp::create(b, loc, y);
  return f;
}

/// Declares `@name(memref<?x?x?xT, strided<[?, ?, ?], offset: ?>> ×2, i32)`
/// with a C interface, once per module.
func::FuncOp declareRuntime(ModuleOp module, StringRef name, MemRefType type,
                            OpBuilder &b) {
  if (auto f = module.lookupSymbol<func::FuncOp>(name))
    return f;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(module.getBody());
  auto fnType = b.getFunctionType({type, type, b.getI32Type()}, {});
  auto f = func::FuncOp::create(b, module.getLoc(), name, fnType);
  f.setPrivate();
  f->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(), b.getUnitAttr());
  return f;
}

/// The library lowering of one FFT on [B, L, 2].
Value buildLibraryCall(OpBuilder &b, Location loc, ModuleOp module, Value x,
                       int64_t batch, int64_t len, bool inverse) {
  MLIRContext *ctx = b.getContext();
  auto type = cast<RankedTensorType>(x.getType());
  Type t = type.getElementType();
  int64_t dyn = ShapedType::kDynamic;
  auto anyType = MemRefType::get(
      {dyn, dyn, dyn}, t, StridedLayoutAttr::get(ctx, dyn, {dyn, dyn, dyn}));
  auto inType = MemRefType::get(
      type.getShape(), t, StridedLayoutAttr::get(ctx, dyn, {dyn, dyn, dyn}));
  Value in = bufferization::ToBufferOp::create(b, loc, inType, x,
                                               /*read_only=*/true);
  auto outType = MemRefType::get(type.getShape(), t);
  Value out = memref::AllocOp::create(b, loc, outType);
  StringRef name = t.isF32() ? "ropeattn_fft_f32" : "ropeattn_fft_f64";
  func::FuncOp callee = declareRuntime(module, name, anyType, b);
  Value flag =
      arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(inverse ? 1 : 0));
  func::CallOp::create(b, loc, callee,
                       ValueRange{memref::CastOp::create(b, loc, anyType, in),
                                  memref::CastOp::create(b, loc, anyType, out),
                                  flag});
  (void)batch;
  (void)len;
  return bufferization::ToTensorOp::create(b, loc, type, out,
                                           /*restrict=*/true,
                                           /*writable=*/true);
}

LogicalResult lowerFft(FftOp op, Backend backend, ModuleOp module) {
  RankedTensorType type = op.getInput().getType();
  if (!type.hasStaticShape())
    return op.emitOpError("ropeattn-lower-fft: expected static shapes, found ")
           << type;
  int64_t rank = type.getRank();
  int64_t len = type.getDimSize(rank - 2);
  int64_t batch = 1;
  for (int64_t i = 0; i + 2 < rank; ++i)
    batch *= type.getDimSize(i);
  if (backend == Backend::Codegen && len > 1 &&
      (!llvm::isPowerOf2_64(len) || len > kMaxCodegenLength))
    return op.emitOpError("ropeattn-lower-fft: backend=codegen expects a "
                          "power-of-two length L <= ")
           << kMaxCodegenLength << ", found L = " << len
           << " (use backend=library, or pad where the math allows)";
  OpBuilder b(op);
  Location loc = op.getLoc();
  Value result;
  if (batch == 0 || len <= 1) {
    // Nothing to transform: the DFT of length 1 (and its inverse) is the
    // identity, and empty tensors have no entries.
    result = op.getInput();
  } else {
    Value x = toBatch3(b, loc, op.getInput());
    Value y;
    if (backend == Backend::Codegen) {
      auto x3 = cast<RankedTensorType>(x.getType());
      func::FuncOp f = getCodegenFunction(module, x3, op.getInverse());
      y = func::CallOp::create(b, loc, f, ValueRange{x}).getResult(0);
    } else {
      y = buildLibraryCall(b, loc, module, x, batch, len, op.getInverse());
    }
    result = fromBatch3(b, loc, y, type);
  }
  op.getResult().replaceAllUsesWith(result);
  op.erase();
  return success();
}

struct RopeAttnLowerFftPass
    : public ropeattn::impl::RopeAttnLowerFftBase<RopeAttnLowerFftPass> {
  using Base::Base;
  void runOnOperation() override {
    Backend kind;
    if (backend == "codegen")
      kind = Backend::Codegen;
    else if (backend == "library")
      kind = Backend::Library;
    else {
      getOperation()->emitError("ropeattn-lower-fft: expected backend "
                                "'codegen' or 'library', found '")
          << backend << "'";
      return signalPassFailure();
    }
    SmallVector<FftOp> ops;
    getOperation()->walk([&](FftOp op) { ops.push_back(op); });
    for (FftOp op : ops)
      if (failed(lowerFft(op, kind, getOperation())))
        return signalPassFailure();
  }
};

} // namespace
