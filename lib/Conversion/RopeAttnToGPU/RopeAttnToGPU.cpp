//===- RopeAttnToGPU.cpp - ropeattn.attention to gpu kernels --------------===//
//
// Part of the ropeattn project.
//
// Lowers public functions made of `ropeattn.attention` ops to host code that
// launches gpu-dialect kernels on device buffers (docs/Design.md, "Decisions
// of the CUDA issue"):
//
//  * the function takes memrefs (device pointers) and writes its results into
//    caller-allocated out-parameters, like rope-lower-to-cpu's ABI;
//  * a fused RoPE runs as a rotary kernel that writes q̃, k̃ in acc(E) to
//    temporary device buffers (angles in f64, as docs/Spec.md §3 requires);
//  * the attention kernel runs one thread block per (batch·head, query tile)
//    and one thread per query row: K/V tiles are staged in workgroup (shared)
//    memory in acc(E), logits of the tile go through shared memory, and the
//    softmax is online (running max, running sum, rescaled accumulator in
//    registers), all in acc(E); results are rounded to E once.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Conversion/Passes.h"

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"
#include "ropeattn/Dialect/RopeAttn/Utils/CostModel.h"
#include "ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <cmath>
#include <functional>
#include <limits>

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_CONVERTROPEATTNTOGPU
#include "ropeattn/Conversion/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;
using namespace mlir::ropeattn;

namespace {

constexpr int64_t kRotaryBlock = 256;
/// Static shared memory a kernel may use without opting in (48 KiB).
constexpr int64_t kSharedLimit = 48 * 1024;

gpu::AddressSpaceAttr workgroupSpace(MLIRContext *ctx) {
  return gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
}

/// Small helpers over an ImplicitLocOpBuilder.
struct KB {
  ImplicitLocOpBuilder &b;
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value flt(Type t, double v) {
    return arith::ConstantOp::create(b, t, b.getFloatAttr(t, v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value divu(Value x, Value y) { return arith::DivUIOp::create(b, x, y); }
  Value remu(Value x, Value y) { return arith::RemUIOp::create(b, x, y); }
  Value minu(Value x, Value y) { return arith::MinUIOp::create(b, x, y); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, p, x, y);
  }
  Value sel(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, c, x, y);
  }
  /// Converts a float to `t` (extension or rounding to nearest even).
  Value cast(Value x, Type t) {
    unsigned from = x.getType().getIntOrFloatBitWidth();
    unsigned to = t.getIntOrFloatBitWidth();
    if (x.getType() == t)
      return x;
    if (from < to)
      return arith::ExtFOp::create(b, t, x);
    return arith::TruncFOp::create(b, t, x);
  }
};

MemRefType memrefOf(RankedTensorType t) {
  return MemRefType::get(t.getShape(), t.getElementType());
}

/// Collapses [B.., H, X(, Y)] into [B..·H, X(, Y)]: `keep` trailing dims stay.
Value collapseLeading(ImplicitLocOpBuilder &b, Value m, int64_t keep) {
  auto type = cast<MemRefType>(m.getType());
  int64_t rank = type.getRank();
  if (rank == keep + 1)
    return m;
  SmallVector<ReassociationIndices> reassoc;
  ReassociationIndices lead;
  for (int64_t i = 0; i < rank - keep; ++i)
    lead.push_back(i);
  reassoc.push_back(lead);
  for (int64_t i = rank - keep; i < rank; ++i)
    reassoc.push_back({i});
  return memref::CollapseShapeOp::create(b, m, reassoc);
}

/// Loads `row` of a [rows, width] workgroup tile as `width` scalars: with
/// 16-byte vector loads (ld.shared.v4) when the rows are 16-byte aligned
/// (width % 4 == 0 for f32; the tiles are allocated 16-byte aligned), else one
/// scalar load per element.
SmallVector<Value> loadRow(ImplicitLocOpBuilder &b, Value tile, Value row,
                           int64_t width) {
  KB kb{b};
  SmallVector<Value> out;
  Type t = cast<MemRefType>(tile.getType()).getElementType();
  int64_t lanes = 16 / (t.getIntOrFloatBitWidth() / 8);
  if (width % lanes == 0) {
    auto vt = VectorType::get({lanes}, t);
    for (int64_t c = 0; c < width; c += lanes) {
      Value v =
          vector::LoadOp::create(b, vt, tile, ValueRange{row, kb.idx(c)},
                                 /*nontemporal=*/false, llvm::MaybeAlign(16));
      for (int64_t l = 0; l < lanes; ++l)
        out.push_back(vector::ExtractOp::create(b, v, l));
    }
    return out;
  }
  for (int64_t c = 0; c < width; ++c)
    out.push_back(memref::LoadOp::create(b, tile, ValueRange{row, kb.idx(c)}));
  return out;
}

/// Marks workgroup attributions 16-byte aligned (for loadRow).
void alignWorkgroup(gpu::GPUFuncOp func, ArrayRef<unsigned> indices) {
  Builder b(func.getContext());
  for (unsigned i : indices)
    func.setWorkgroupAttributionAttr(i, LLVM::LLVMDialect::getAlignAttrName(),
                                     b.getI64IntegerAttr(16));
}

class Lowering {
public:
  /// The polynomial method's options (ropeattn-expand-polynomial's).
  struct PolyOptions {
    poly::Family family = poly::Family::Minimax;
    double epsilon = 1e-3;
    int64_t maxDegree = 6, maxRank = 32768, maxStateBytes = 1024 << 20,
            chunk = 256;
  };

  Lowering(ModuleOp module, int64_t blockQ, int64_t blockK,
           const PolyOptions &poly)
      : module(module), blockQ(blockQ), blockK(blockK), poly(poly) {}

  LogicalResult run();
  /// Rotates x : [P, N, D] at positions P_rope + offset + n into `dst` (or a
  /// new buffer) of element type `to`; `inverse` applies R(p)ᵀ.
  Value rotate(ImplicitLocOpBuilder &b, Value x, Type to, RopeAttr rope,
               int64_t offset, bool inverse,
               const std::function<Value(MemRefType)> &allocate, Value dst,
               Value &token);

private:
  LogicalResult checkFunction(func::FuncOp func);
  LogicalResult lowerFunction(func::FuncOp func);
  gpu::GPUModuleOp kernelModule();
  std::string uniqueName(StringRef base);
  gpu::GPUFuncOp buildRotaryKernel(Location loc, MemRefType in, MemRefType out,
                                   RopeAttr rope, int64_t positionOffset,
                                   bool inverse = false);
  /// `bias` (optional): the relative bias as [L] (shared) or [Hq, L].
  FailureOr<gpu::GPUFuncOp>
  buildAttentionKernel(Operation *op, bool causal, double scale, MemRefType q,
                       MemRefType k, MemRefType v, MemRefType o, MemRefType lse,
                       MemRefType bias = MemRefType());
  gpu::GPUFuncOp buildDeltaKernel(Location loc, MemRefType o, MemRefType delta);
  FailureOr<gpu::GPUFuncOp> buildGradQueryKernel(AttentionGradOp op,
                                                 MemRefType q, MemRefType k,
                                                 MemRefType v, MemRefType dO,
                                                 MemRefType lse, MemRefType dq);
  FailureOr<std::pair<gpu::GPUFuncOp, int64_t>>
  buildGradKeyValueKernel(AttentionGradOp op, MemRefType q, MemRefType k,
                          MemRefType v, MemRefType dO, MemRefType lse,
                          MemRefType dk, MemRefType dv);
  LogicalResult lowerAttention(AttentionOp op, ImplicitLocOpBuilder &b,
                               DenseMap<Value, Value> &buffers,
                               const std::function<Value(Value)> &destination,
                               const std::function<Value(MemRefType)> &allocate,
                               Value &token, bool writeCertificate = true);
  /// The polynomial method (forward); falls back to lowerAttention when no
  /// degree fits the budgets.
  LogicalResult lowerPolynomial(
      AttentionOp op, ImplicitLocOpBuilder &b, DenseMap<Value, Value> &buffers,
      const std::function<Value(Value)> &destination,
      const std::function<Value(MemRefType)> &allocate, Value &token);
  /// ropeattn.fft: cuFFT through the runtime (unnormalized), then a scaling
  /// kernel for the inverse.
  LogicalResult lowerFft(FftOp op, ImplicitLocOpBuilder &b,
                         DenseMap<Value, Value> &buffers,
                         const std::function<Value(Value)> &destination,
                         Value &token);
  gpu::GPUFuncOp buildScaleKernel(Location loc, MemRefType x, double factor);
  gpu::GPUFuncOp buildCertificateFillKernel(Location loc, MemRefType cert);
  gpu::GPUFuncOp buildAugmentKernel(Location loc, MemRefType in,
                                    MemRefType out);
  gpu::GPUFuncOp buildNormPartialsKernel(Location loc, MemRefType q,
                                         MemRefType k, MemRefType part);
  gpu::GPUFuncOp buildPolySelectKernel(Location loc, MemRefType part,
                                       MemRefType sel, MemRefType cert,
                                       double scale, int64_t d,
                                       ArrayRef<cost::PolyCandidate> cands);
  gpu::GPUFuncOp buildPolyStatesKernel(Location loc, MemRefType k, MemRefType v,
                                       MemRefType table, MemRefType weights,
                                       MemRefType states, int64_t chunk);
  gpu::GPUFuncOp buildPolyScanKernel(Location loc, MemRefType states);
  gpu::GPUFuncOp buildPolyQueryKernel(Location loc, MemRefType q, MemRefType k,
                                      MemRefType v, MemRefType table,
                                      MemRefType weights, MemRefType states,
                                      MemRefType o, MemRefType lse, bool causal,
                                      double scale, int64_t chunk);
  LogicalResult
  lowerAttentionGrad(AttentionGradOp op, ImplicitLocOpBuilder &b,
                     DenseMap<Value, Value> &buffers,
                     const std::function<Value(Value)> &destination,
                     const std::function<Value(MemRefType)> &allocate,
                     Value &token);
  /// Launches `kernel` on a 1-D/2-D grid, chaining the async token.
  void launch(ImplicitLocOpBuilder &b, gpu::GPUFuncOp kernel, int64_t gridX,
              int64_t gridY, int64_t threads, ValueRange args, Value &token);

  ModuleOp module;
  int64_t blockQ, blockK;
  PolyOptions poly;
  gpu::GPUModuleOp kernels;
  unsigned counter = 0;
};

gpu::GPUModuleOp Lowering::kernelModule() {
  if (kernels)
    return kernels;
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  kernels = gpu::GPUModuleOp::create(b, module.getLoc(), "ropeattn_kernels");
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  b.getUnitAttr());
  return kernels;
}

std::string Lowering::uniqueName(StringRef base) {
  return (base + "_" + Twine(counter++)).str();
}

LogicalResult Lowering::checkFunction(func::FuncOp func) {
  for (Type t : func.getFunctionType().getInputs())
    if (!isa<RankedTensorType>(t) || !cast<ShapedType>(t).hasStaticShape())
      return func.emitError("convert-ropeattn-to-gpu: expected statically "
                            "shaped tensor arguments, found ")
             << t;
  for (Type t : func.getFunctionType().getResults())
    if (!isa<RankedTensorType>(t) || !cast<ShapedType>(t).hasStaticShape())
      return func.emitError("convert-ropeattn-to-gpu: expected statically "
                            "shaped tensor results, found ")
             << t;
  for (Operation &op : func.front()) {
    if (isa<func::ReturnOp>(op))
      continue;
    if (isa<FftOp>(op)) {
      if (cast<RankedTensorType>(op.getOperand(0).getType()).getRank() < 3)
        return op.emitError("convert-ropeattn-to-gpu: ropeattn.fft on CUDA "
                            "expects a batch dimension ([B.., L, 2])");
      continue; // f32 and f64 (cuFFT's C2C and Z2Z)
    }
    if (!isa<AttentionOp, AttentionGradOp>(op))
      return op.emitError("convert-ropeattn-to-gpu: only functions made of "
                          "ropeattn.attention, ropeattn.attention_grad and "
                          "ropeattn.fft ops are lowered to CUDA yet; found '")
             << op.getName() << "'";
    Value bias = isa<AttentionOp>(op) ? cast<AttentionOp>(op).getBias()
                                      : cast<AttentionGradOp>(op).getBias();
    if (bias && isa<AttentionGradOp>(op))
      return op.emitError("convert-ropeattn-to-gpu: attention_grad with a "
                          "relative-position bias is not supported on CUDA "
                          "yet");
    RopeAttr rope = isa<AttentionOp>(op)
                        ? cast<AttentionOp>(op).getRopeAttr()
                        : cast<AttentionGradOp>(op).getRopeAttr();
    if (rope && rope.hasXpos())
      return op.emitError("convert-ropeattn-to-gpu: rope with xPos scaling "
                          "(xpos_scale_base) is not supported on CUDA yet; "
                          "use rope-lower-to-cpu");
    // Results other than the output and the logsumexp (e.g. an error
    // certificate) have no CUDA lowering.
    if (auto attn = dyn_cast<AttentionOp>(op))
      if (op.getNumResults() != 1u + (attn.getLogsumexp() ? 1u : 0u) +
                                    (attn.getCertificate() ? 1u : 0u))
        return op.emitError("convert-ropeattn-to-gpu: only the output, "
                            "logsumexp and certificate results of "
                            "ropeattn.attention are supported on CUDA");
    auto qt = cast<RankedTensorType>(op.getOperand(0).getType());
    Type e = qt.getElementType();
    if (!e.isF16() && !e.isBF16() && !e.isF32())
      return op.emitError("convert-ropeattn-to-gpu: expected f16, bf16 or "
                          "f32 operands, found ")
             << e;
    int64_t bh = 1;
    for (int64_t i = 0; i + 2 < qt.getRank(); ++i)
      bh *= qt.getDimSize(i);
    if (bh > 65535)
      return op.emitError("convert-ropeattn-to-gpu: batch x heads = ")
             << bh << " exceeds the grid's y limit 65535";
    auto kt = cast<RankedTensorType>(op.getOperand(1).getType());
    if (isa<AttentionGradOp>(op) && kt.getDimSize(kt.getRank() - 2) > 0 &&
        qt.getDimSize(qt.getRank() - 2) > 0 &&
        qt.getDimSize(qt.getRank() - 1) == 0)
      return op.emitError("convert-ropeattn-to-gpu: attention_grad with a zero "
                          "head dimension is not supported on CUDA");
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Rotary kernel: y[bh, n, c] = (R(offset + n) x[bh, n, :])_c in acc(E).
//===----------------------------------------------------------------------===//

gpu::GPUFuncOp Lowering::buildRotaryKernel(Location loc, MemRefType in,
                                           MemRefType out, RopeAttr rope,
                                           int64_t positionOffset,
                                           bool inverse) {
  MLIRContext *ctx = module.getContext();
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  auto type = FunctionType::get(ctx, {in, out}, {});
  auto func = gpu::GPUFuncOp::create(b, uniqueName("rotary"), type);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({int32_t(kRotaryBlock), 1, 1}));
  b.setInsertionPointToStart(&func.front());
  Value x = func.getArgument(0), y = func.getArgument(1);
  int64_t n = in.getDimSize(1), d = in.getDimSize(2);
  int64_t total = in.getNumElements();
  int64_t r = rope.getRotaryDimOr(d), half = r / 2;
  bool interleaved = rope.getLayout() == RopeLayout::Interleaved;
  Type a = getAccumulationType(out.getElementType());
  Type f64 = b.getF64Type(), i64 = b.getI64Type();

  Value gid = kb.add(kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::x),
                            kb.idx(kRotaryBlock)),
                     gpu::ThreadIdOp::create(b, gpu::Dimension::x));
  Value inRange = kb.cmp(arith::CmpIPredicate::ult, gid, kb.idx(total));
  auto ifOp = scf::IfOp::create(b, inRange, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value bh = kb.divu(gid, kb.idx(n * d));
  Value rem = kb.remu(gid, kb.idx(n * d));
  Value row = kb.divu(rem, kb.idx(d));
  Value c = kb.remu(rem, kb.idx(d));
  Value xc = kb.cast(memref::LoadOp::create(b, x, ValueRange{bh, row, c}), a);
  Value rotated = kb.cmp(arith::CmpIPredicate::ult, c, kb.idx(r));
  // Pair index a, partner dimension and whether c is the first (u) member.
  Value pair, partner, first;
  if (interleaved) {
    pair = kb.divu(c, kb.idx(2));
    first = kb.cmp(arith::CmpIPredicate::eq, kb.remu(c, kb.idx(2)), kb.idx(0));
    partner = kb.sel(first, kb.add(c, kb.idx(1)), kb.sub(c, kb.idx(1)));
  } else {
    first = kb.cmp(arith::CmpIPredicate::ult, c, kb.idx(half));
    pair = kb.sel(first, c, kb.sub(c, kb.idx(half)));
    partner = kb.sel(first, kb.add(c, kb.idx(half)), pair);
  }
  // Pass-through dimensions read themselves (no out-of-range partner).
  partner = kb.sel(rotated, partner, c);
  Value xp =
      kb.cast(memref::LoadOp::create(b, x, ValueRange{bh, row, partner}), a);
  // θ_a = exp(−(2/r)·ln(base)·a) and the angle in f64, as on the CPU path.
  double coef = r ? -2.0 * std::log(rope.getBaseValue()) / double(r) : 0.0;
  Value aF =
      arith::SIToFPOp::create(b, f64, arith::IndexCastOp::create(b, i64, pair));
  Value theta =
      math::ExpOp::create(b, arith::MulFOp::create(b, aF, kb.flt(f64, coef)));
  Value pos = arith::AddIOp::create(
      b, arith::IndexCastOp::create(b, i64, row),
      arith::ConstantOp::create(b, i64, b.getI64IntegerAttr(positionOffset)));
  Value angle =
      arith::MulFOp::create(b, arith::SIToFPOp::create(b, f64, pos), theta);
  if (inverse) // R(p)ᵀ = R(−p)
    angle = arith::NegFOp::create(b, angle);
  Value cs = kb.cast(math::CosOp::create(b, angle), a);
  Value sn = kb.cast(math::SinOp::create(b, angle), a);
  // u: x_u·cos − x_w·sin;  w: x_u·sin + x_w·cos (x_u = partner when c = w).
  Value yu = arith::SubFOp::create(b, arith::MulFOp::create(b, xc, cs),
                                   arith::MulFOp::create(b, xp, sn));
  Value yw = arith::AddFOp::create(b, arith::MulFOp::create(b, xp, sn),
                                   arith::MulFOp::create(b, xc, cs));
  Value yv = kb.sel(rotated, kb.sel(first, yu, yw), xc);
  memref::StoreOp::create(b, kb.cast(yv, out.getElementType()), y,
                          ValueRange{bh, row, c});
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

//===----------------------------------------------------------------------===//
// Attention kernel.
//===----------------------------------------------------------------------===//

FailureOr<gpu::GPUFuncOp> Lowering::buildAttentionKernel(
    Operation *op, bool causal, double scaleValue, MemRefType qT, MemRefType kT,
    MemRefType vT, MemRefType oT, MemRefType lseT, MemRefType biasT) {
  MLIRContext *ctx = module.getContext();
  Type e = vT.getElementType();
  Type a = getAccumulationType(e);
  int64_t bhq = qT.getDimSize(0), n = qT.getDimSize(1), d = qT.getDimSize(2);
  int64_t bhk = kT.getDimSize(0), m = kT.getDimSize(1);
  int64_t dv = vT.getDimSize(2);
  int64_t group = bhq / bhk;
  int64_t bq = blockQ, bk = blockK;
  int64_t abytes = a.getIntOrFloatBitWidth() / 8;
  int64_t shared = abytes * (bk * std::max<int64_t>(d, 1) +
                             bk * std::max<int64_t>(dv, 1) + bq * (bk + 1));
  if (shared > kSharedLimit)
    return op->emitError("convert-ropeattn-to-gpu: the tiles need ")
           << shared << " bytes of shared memory (block-q = " << bq
           << ", block-k = " << bk << ", D = " << d << ", Dv = " << dv
           << "); at most " << kSharedLimit << " are available";

  auto wg = workgroupSpace(ctx);
  auto ksT = MemRefType::get({bk, std::max<int64_t>(d, 1)}, a, AffineMap(), wg);
  auto vsT =
      MemRefType::get({bk, std::max<int64_t>(dv, 1)}, a, AffineMap(), wg);
  auto ssT = MemRefType::get({bq, bk + 1}, a, AffineMap(), wg);

  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(op->getLoc(), ob);
  KB kb{b};
  SmallVector<Type> args = {qT, kT, vT, oT};
  if (lseT)
    args.push_back(lseT);
  if (biasT)
    args.push_back(biasT);
  auto func = gpu::GPUFuncOp::create(b, uniqueName("attention"),
                                     FunctionType::get(ctx, args, {}),
                                     TypeRange{ksT, vsT, ssT});
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(bq), 1, 1}));
  alignWorkgroup(func, {0, 1});
  b.setInsertionPointToStart(&func.front());
  Value q = func.getArgument(0), k = func.getArgument(1),
        v = func.getArgument(2), o = func.getArgument(3);
  Value lse = lseT ? func.getArgument(4) : Value();
  Value bias = biasT ? func.getArgument(lseT ? 5 : 4) : Value();
  Value ks = func.getWorkgroupAttributions()[0];
  Value vs = func.getWorkgroupAttributions()[1];
  Value ss = func.getWorkgroupAttributions()[2];

  Value tile = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value bh = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value kvh = kb.divu(bh, kb.idx(group));
  Value row0 = kb.mul(tile, kb.idx(bq));
  Value i = kb.add(row0, tid);
  Value valid = kb.cmp(arith::CmpIPredicate::ult, i, kb.idx(n));
  Value iLoad = kb.minu(i, kb.idx(n - 1));

  // q_i·s in registers (one SSA value per feature).
  Value scale = kb.flt(a, scaleValue);
  SmallVector<Value> qv;
  for (int64_t c = 0; c < d; ++c) {
    Value x = memref::LoadOp::create(b, q, ValueRange{bh, iLoad, kb.idx(c)});
    qv.push_back(arith::MulFOp::create(b, kb.cast(x, a), scale));
  }

  // Keys this block needs: all, or (causal) up to the last row's horizon
  // j ≤ i + (M − N), clamped to [0, M].
  Value kEnd = kb.idx(m);
  if (causal) {
    Value lastRow = kb.minu(kb.add(row0, kb.idx(bq - 1)), kb.idx(n - 1));
    Value horizon = kb.add(lastRow, kb.idx(m - n + 1));
    horizon = arith::MaxSIOp::create(b, horizon, kb.idx(0));
    kEnd = arith::MinSIOp::create(b, horizon, kEnd);
  }
  Value numTiles = kb.divu(kb.add(kEnd, kb.idx(bk - 1)), kb.idx(bk));
  Value rowHorizon = kb.add(i, kb.idx(m - n)); // signed; visible j ≤ this

  Value negInf = kb.flt(a, -std::numeric_limits<double>::infinity());
  Value zero = kb.flt(a, 0.0);
  SmallVector<Value> init = {negInf, zero};
  for (int64_t c = 0; c < dv; ++c)
    init.push_back(zero);

  auto loop = scf::ForOp::create(b, kb.idx(0), numTiles, kb.idx(1), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value t = loop.getInductionVar();
    Value mOld = loop.getRegionIterArgs()[0];
    Value lOld = loop.getRegionIterArgs()[1];
    auto accOld = loop.getRegionIterArgs().drop_front(2);
    Value k0 = kb.mul(t, kb.idx(bk));

    // Cooperative, coalesced staging of a [bk, width] tile of `src` (rows
    // k0.. of head kvh) into `dst`, zero beyond M.
    auto stage = [&](Value src, Value dst, int64_t width) {
      if (width == 0)
        return;
      auto l = scf::ForOp::create(b, tid, kb.idx(bk * width), kb.idx(bq));
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(l.getBody());
      Value el = l.getInductionVar();
      Value j = kb.divu(el, kb.idx(width));
      Value c = kb.remu(el, kb.idx(width));
      Value kj = kb.add(k0, j);
      Value in = kb.cmp(arith::CmpIPredicate::ult, kj, kb.idx(m));
      Value kjc = kb.minu(kj, kb.idx(m - 1));
      Value x =
          kb.cast(memref::LoadOp::create(b, src, ValueRange{kvh, kjc, c}), a);
      memref::StoreOp::create(b, kb.sel(in, x, zero), dst, ValueRange{j, c});
    };
    stage(k, ks, d);
    stage(v, vs, dv);
    gpu::BarrierOp::create(b);

    // Logits of the tile → shared memory, and their maximum.
    auto sLoop = scf::ForOp::create(b, kb.idx(0), kb.idx(bk), kb.idx(1),
                                    ValueRange{negInf});
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(sLoop.getBody());
      Value j = sLoop.getInductionVar();
      // Four partial sums for instruction-level parallelism.
      SmallVector<Value> part(std::min<int64_t>(4, std::max<int64_t>(d, 1)),
                              zero);
      SmallVector<Value> krow = loadRow(b, ks, j, d);
      for (int64_t c = 0; c < d; ++c) {
        Value &p = part[c % part.size()];
        p = math::FmaOp::create(b, qv[c], krow[c], p);
      }
      Value s = part[0];
      for (size_t pi = 1; pi < part.size(); ++pi)
        s = arith::AddFOp::create(b, s, part[pi]);
      Value kj = kb.add(k0, j);
      Value vis = kb.cmp(arith::CmpIPredicate::ult, kj, kb.idx(m));
      if (bias) {
        // ℓ_ij += bias[(h,) i − j + M − 1] in acc(E) (docs/Spec.md §5); the
        // indices are clamped for padded rows and keys, which are masked.
        Value idx =
            kb.sub(kb.add(iLoad, kb.idx(m - 1)), kb.minu(kj, kb.idx(m - 1)));
        SmallVector<Value> at = {idx};
        if (biasT.getRank() == 2)
          at.insert(at.begin(), kb.remu(bh, kb.idx(biasT.getDimSize(0))));
        s = arith::AddFOp::create(
            b, s, kb.cast(memref::LoadOp::create(b, bias, at), a));
      }
      if (causal)
        vis = arith::AndIOp::create(
            b, vis, kb.cmp(arith::CmpIPredicate::sle, kj, rowHorizon));
      s = kb.sel(vis, s, negInf);
      memref::StoreOp::create(b, s, ss, ValueRange{tid, j});
      Value mx = arith::MaximumFOp::create(b, sLoop.getRegionIterArgs()[0], s);
      scf::YieldOp::create(b, mx);
    }
    Value mNew = arith::MaximumFOp::create(b, mOld, sLoop.getResult(0));
    // A row that has seen no key yet keeps max −∞: shift by 0 instead.
    Value noKey =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mNew, negInf);
    Value shift = kb.sel(noKey, zero, mNew);
    Value corr = math::ExpOp::create(b, arith::SubFOp::create(b, mOld, shift));
    SmallVector<Value> carried = {arith::MulFOp::create(b, lOld, corr)};
    for (Value acc : accOld)
      carried.push_back(arith::MulFOp::create(b, acc, corr));

    auto pLoop =
        scf::ForOp::create(b, kb.idx(0), kb.idx(bk), kb.idx(1), carried);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(pLoop.getBody());
      Value j = pLoop.getInductionVar();
      Value s = memref::LoadOp::create(b, ss, ValueRange{tid, j});
      Value p = math::ExpOp::create(b, arith::SubFOp::create(b, s, shift));
      SmallVector<Value> next = {
          arith::AddFOp::create(b, pLoop.getRegionIterArgs()[0], p)};
      SmallVector<Value> vrow = loadRow(b, vs, j, dv);
      for (int64_t c = 0; c < dv; ++c)
        next.push_back(math::FmaOp::create(b, p, vrow[c],
                                           pLoop.getRegionIterArgs()[1 + c]));
      scf::YieldOp::create(b, next);
    }
    gpu::BarrierOp::create(b);
    SmallVector<Value> yielded = {mNew};
    llvm::append_range(yielded, pLoop.getResults());
    scf::YieldOp::create(b, yielded);
  }

  // Epilogue: O_i = acc / l (0 for an empty row), lse_i = m + log l (−∞).
  auto ifOp = scf::IfOp::create(b, valid, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value mFin = loop.getResult(0), lFin = loop.getResult(1);
  Value nonEmpty =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, lFin, zero);
  Value inv =
      kb.sel(nonEmpty, arith::DivFOp::create(b, kb.flt(a, 1.0), lFin), zero);
  for (int64_t c = 0; c < dv; ++c) {
    Value oc = arith::MulFOp::create(b, loop.getResult(2 + c), inv);
    memref::StoreOp::create(b, kb.cast(oc, e), o, ValueRange{bh, i, kb.idx(c)});
  }
  if (lse) {
    Value l = arith::AddFOp::create(b, mFin, math::LogOp::create(b, lFin));
    memref::StoreOp::create(b, kb.sel(nonEmpty, l, negInf), lse,
                            ValueRange{bh, i});
  }
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

//===----------------------------------------------------------------------===//
// Backward kernels.
//===----------------------------------------------------------------------===//

/// Δ[bh, i] = Σ_c dO[bh, i, c]·O[bh, i, c] in acc(E), one thread per row.
gpu::GPUFuncOp Lowering::buildDeltaKernel(Location loc, MemRefType oT,
                                          MemRefType deltaT) {
  MLIRContext *ctx = module.getContext();
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  auto func = gpu::GPUFuncOp::create(
      b, uniqueName("delta"), FunctionType::get(ctx, {oT, oT, deltaT}, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({int32_t(kRotaryBlock), 1, 1}));
  b.setInsertionPointToStart(&func.front());
  Value o = func.getArgument(0), dO = func.getArgument(1),
        delta = func.getArgument(2);
  Type a = deltaT.getElementType();
  int64_t n = oT.getDimSize(1), dv = oT.getDimSize(2);
  Value gid = kb.add(kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::x),
                            kb.idx(kRotaryBlock)),
                     gpu::ThreadIdOp::create(b, gpu::Dimension::x));
  Value inRange =
      kb.cmp(arith::CmpIPredicate::ult, gid, kb.idx(oT.getDimSize(0) * n));
  auto ifOp = scf::IfOp::create(b, inRange, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value bh = kb.divu(gid, kb.idx(n)), i = kb.remu(gid, kb.idx(n));
  auto loop = scf::ForOp::create(b, kb.idx(0), kb.idx(dv), kb.idx(1),
                                 ValueRange{kb.flt(a, 0.0)});
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    Value c = loop.getInductionVar();
    Value x = kb.cast(memref::LoadOp::create(b, o, ValueRange{bh, i, c}), a);
    Value y = kb.cast(memref::LoadOp::create(b, dO, ValueRange{bh, i, c}), a);
    scf::YieldOp::create(b, ValueRange{math::FmaOp::create(
                                b, x, y, loop.getRegionIterArgs()[0])});
  }
  memref::StoreOp::create(b, loop.getResult(0), delta, ValueRange{bh, i});
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

/// Sums `terms` (pairs of factors) into `parts` partial sums, then adds them.
static Value dotProduct(ImplicitLocOpBuilder &b, Value zero,
                        ArrayRef<std::pair<Value, Value>> terms) {
  SmallVector<Value> part(
      std::min<size_t>(4, std::max<size_t>(terms.size(), 1)), zero);
  for (auto [idx, t] : llvm::enumerate(terms)) {
    Value &p = part[idx % part.size()];
    p = math::FmaOp::create(b, t.first, t.second, p);
  }
  Value sum = part[0];
  for (size_t i = 1; i < part.size(); ++i)
    sum = arith::AddFOp::create(b, sum, part[i]);
  return sum;
}

/// dq̃_i = s·Σ_j P_ij (dP_ij − Δ_i) k̃_j, one thread per query row, K/V tiles
/// in workgroup memory; P_ij = exp(s⟨q̃_i, k̃_j⟩ − lse_i) from the logsumexp.
FailureOr<gpu::GPUFuncOp>
Lowering::buildGradQueryKernel(AttentionGradOp op, MemRefType qT, MemRefType kT,
                               MemRefType vT, MemRefType dOT, MemRefType lseT,
                               MemRefType dqT) {
  MLIRContext *ctx = module.getContext();
  Type a = lseT.getElementType();
  int64_t n = qT.getDimSize(1), d = qT.getDimSize(2);
  int64_t m = kT.getDimSize(1), dv = vT.getDimSize(2);
  int64_t group = qT.getDimSize(0) / kT.getDimSize(0);
  int64_t bq = blockQ, bk = blockK;
  int64_t abytes = a.getIntOrFloatBitWidth() / 8;
  int64_t shared =
      abytes * bk * (std::max<int64_t>(d, 1) + std::max<int64_t>(dv, 1));
  if (shared > kSharedLimit)
    return op.emitError("convert-ropeattn-to-gpu: the dq tiles need ")
           << shared << " bytes of shared memory (block-k = " << bk
           << ", D = " << d << ", Dv = " << dv << "); at most " << kSharedLimit
           << " are available";
  auto wg = workgroupSpace(ctx);
  auto ksT = MemRefType::get({bk, std::max<int64_t>(d, 1)}, a, AffineMap(), wg);
  auto vsT =
      MemRefType::get({bk, std::max<int64_t>(dv, 1)}, a, AffineMap(), wg);
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(op.getLoc(), ob);
  KB kb{b};
  auto lseAT = MemRefType::get(lseT.getShape(), a);
  auto func = gpu::GPUFuncOp::create(
      b, uniqueName("attention_grad_q"),
      FunctionType::get(ctx, {qT, kT, vT, dOT, lseT, lseAT, dqT}, {}),
      TypeRange{ksT, vsT});
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(bq), 1, 1}));
  alignWorkgroup(func, {0, 1});
  b.setInsertionPointToStart(&func.front());
  Value q = func.getArgument(0), k = func.getArgument(1),
        v = func.getArgument(2), dO = func.getArgument(3),
        lse = func.getArgument(4), delta = func.getArgument(5),
        dq = func.getArgument(6);
  Value ks = func.getWorkgroupAttributions()[0];
  Value vs = func.getWorkgroupAttributions()[1];

  Value tile = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value bh = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value kvh = kb.divu(bh, kb.idx(group));
  Value row0 = kb.mul(tile, kb.idx(bq));
  Value i = kb.add(row0, tid);
  Value valid = kb.cmp(arith::CmpIPredicate::ult, i, kb.idx(n));
  Value iLoad = kb.minu(i, kb.idx(n - 1));
  double scaleValue = op.getScaleOrDefault();
  Value scale = kb.flt(a, scaleValue);
  Value zero = kb.flt(a, 0.0);
  Value negInf = kb.flt(a, -std::numeric_limits<double>::infinity());
  SmallVector<Value> qv, dov;
  for (int64_t c = 0; c < d; ++c)
    qv.push_back(arith::MulFOp::create(
        b,
        kb.cast(memref::LoadOp::create(b, q, ValueRange{bh, iLoad, kb.idx(c)}),
                a),
        scale));
  for (int64_t c = 0; c < dv; ++c)
    dov.push_back(kb.cast(
        memref::LoadOp::create(b, dO, ValueRange{bh, iLoad, kb.idx(c)}), a));
  Value rowLse = memref::LoadOp::create(b, lse, ValueRange{bh, iLoad});
  Value rowDelta = memref::LoadOp::create(b, delta, ValueRange{bh, iLoad});
  Value hasKeys =
      arith::CmpFOp::create(b, arith::CmpFPredicate::ONE, rowLse, negInf);

  Value kEnd = kb.idx(m);
  if (op.getCausal()) {
    Value lastRow = kb.minu(kb.add(row0, kb.idx(bq - 1)), kb.idx(n - 1));
    Value horizon = arith::MaxSIOp::create(
        b, kb.add(lastRow, kb.idx(m - n + 1)), kb.idx(0));
    kEnd = arith::MinSIOp::create(b, horizon, kEnd);
  }
  Value numTiles = kb.divu(kb.add(kEnd, kb.idx(bk - 1)), kb.idx(bk));
  Value rowHorizon = kb.add(i, kb.idx(m - n));
  SmallVector<Value> init(d, zero);
  auto loop = scf::ForOp::create(b, kb.idx(0), numTiles, kb.idx(1), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value k0 = kb.mul(loop.getInductionVar(), kb.idx(bk));
    auto stage = [&](Value src, Value dst, int64_t width) {
      if (width == 0)
        return;
      auto l = scf::ForOp::create(b, tid, kb.idx(bk * width), kb.idx(bq));
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(l.getBody());
      Value el = l.getInductionVar();
      Value j = kb.divu(el, kb.idx(width)), c = kb.remu(el, kb.idx(width));
      Value kj = kb.add(k0, j);
      Value in = kb.cmp(arith::CmpIPredicate::ult, kj, kb.idx(m));
      Value x =
          kb.cast(memref::LoadOp::create(
                      b, src, ValueRange{kvh, kb.minu(kj, kb.idx(m - 1)), c}),
                  a);
      memref::StoreOp::create(b, kb.sel(in, x, zero), dst, ValueRange{j, c});
    };
    stage(k, ks, d);
    stage(v, vs, dv);
    gpu::BarrierOp::create(b);
    auto jLoop = scf::ForOp::create(b, kb.idx(0), kb.idx(bk), kb.idx(1),
                                    loop.getRegionIterArgs());
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(jLoop.getBody());
      Value j = jLoop.getInductionVar();
      SmallVector<Value> kc = loadRow(b, ks, j, d);
      SmallVector<Value> vrowj = loadRow(b, vs, j, dv);
      SmallVector<std::pair<Value, Value>> qk, dovv;
      for (int64_t c = 0; c < d; ++c)
        qk.push_back({qv[c], kc[c]});
      for (int64_t c = 0; c < dv; ++c)
        dovv.push_back({dov[c], vrowj[c]});
      Value logit = dotProduct(b, zero, qk);
      Value kj = kb.add(k0, j);
      Value vis = arith::AndIOp::create(
          b, hasKeys, kb.cmp(arith::CmpIPredicate::ult, kj, kb.idx(m)));
      if (op.getCausal())
        vis = arith::AndIOp::create(
            b, vis, kb.cmp(arith::CmpIPredicate::sle, kj, rowHorizon));
      Value arg = kb.sel(vis, arith::SubFOp::create(b, logit, rowLse), negInf);
      Value p = math::ExpOp::create(b, arg);
      Value dp = dotProduct(b, zero, dovv);
      Value ds =
          arith::MulFOp::create(b, p, arith::SubFOp::create(b, dp, rowDelta));
      SmallVector<Value> next;
      for (int64_t c = 0; c < d; ++c)
        next.push_back(
            math::FmaOp::create(b, ds, kc[c], jLoop.getRegionIterArgs()[c]));
      scf::YieldOp::create(b, next);
    }
    gpu::BarrierOp::create(b);
    scf::YieldOp::create(b, jLoop.getResults());
  }
  auto ifOp = scf::IfOp::create(b, valid, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  for (int64_t c = 0; c < d; ++c)
    memref::StoreOp::create(
        b,
        kb.cast(arith::MulFOp::create(b, loop.getResult(c), scale),
                dqT.getElementType()),
        dq, ValueRange{bh, i, kb.idx(c)});
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

/// dk̃_j = s·Σ_{h,i} dℓ_ij q̃_i and dv_j = Σ_{h,i} P_ij dO_i over the G query
/// heads of the kv head: one thread per key row (k̃_j·s and the accumulators
/// in registers, v_j in a padded workgroup row), query tiles (q̃, dO, lse, Δ)
/// staged in workgroup memory. Returns the kernel and its query tile size.
FailureOr<std::pair<gpu::GPUFuncOp, int64_t>> Lowering::buildGradKeyValueKernel(
    AttentionGradOp op, MemRefType qT, MemRefType kT, MemRefType vT,
    MemRefType dOT, MemRefType lseT, MemRefType dkT, MemRefType dvT) {
  MLIRContext *ctx = module.getContext();
  Type a = lseT.getElementType();
  int64_t n = qT.getDimSize(1), d = qT.getDimSize(2);
  int64_t m = kT.getDimSize(1), dv = vT.getDimSize(2);
  int64_t group = qT.getDimSize(0) / kT.getDimSize(0);
  int64_t bq = blockQ; // key rows per block (threads)
  int64_t abytes = a.getIntOrFloatBitWidth() / 8;
  int64_t d1 = std::max<int64_t>(d, 1), dv1 = std::max<int64_t>(dv, 1);
  // The largest query tile <= block-k that fits next to the value rows.
  int64_t fixed = abytes * bq * (dv + 1);
  int64_t perRow = abytes * (d1 + dv1 + 2);
  int64_t bk = std::min<int64_t>(blockK, (kSharedLimit - fixed) / perRow);
  if (bk < 1)
    return op.emitError("convert-ropeattn-to-gpu: the dk/dv tiles need more "
                        "than ")
           << kSharedLimit << " bytes of shared memory (block-q = " << bq
           << ", D = " << d << ", Dv = " << dv << ")";
  auto wg = workgroupSpace(ctx);
  auto vrowT = MemRefType::get({bq, dv + 1}, a, AffineMap(), wg);
  auto qsT = MemRefType::get({bk, d1}, a, AffineMap(), wg);
  auto dosT = MemRefType::get({bk, dv1}, a, AffineMap(), wg);
  auto rowT = MemRefType::get({bk}, a, AffineMap(), wg);
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(op.getLoc(), ob);
  KB kb{b};
  auto lseAT = MemRefType::get(lseT.getShape(), a);
  auto func = gpu::GPUFuncOp::create(
      b, uniqueName("attention_grad_kv"),
      FunctionType::get(ctx, {qT, kT, vT, dOT, lseT, lseAT, dkT, dvT}, {}),
      TypeRange{vrowT, qsT, dosT, rowT, rowT});
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(bq), 1, 1}));
  alignWorkgroup(func, {1, 2});
  b.setInsertionPointToStart(&func.front());
  Value q = func.getArgument(0), k = func.getArgument(1),
        v = func.getArgument(2), dO = func.getArgument(3),
        lse = func.getArgument(4), delta = func.getArgument(5),
        dk = func.getArgument(6), dvOut = func.getArgument(7);
  auto wgArgs = func.getWorkgroupAttributions();
  Value vrow = wgArgs[0], qs = wgArgs[1], dos = wgArgs[2], ls = wgArgs[3],
        dls = wgArgs[4];

  Value tile = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value bhk = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value j0 = kb.mul(tile, kb.idx(bq));
  Value j = kb.add(j0, tid);
  Value validJ = kb.cmp(arith::CmpIPredicate::ult, j, kb.idx(m));
  Value jLoad = kb.minu(j, kb.idx(m - 1));
  double scaleValue = op.getScaleOrDefault();
  Value scale = kb.flt(a, scaleValue);
  Value zero = kb.flt(a, 0.0);
  Value negInf = kb.flt(a, -std::numeric_limits<double>::infinity());
  SmallVector<Value> kv;
  for (int64_t c = 0; c < d; ++c)
    kv.push_back(arith::MulFOp::create(
        b,
        kb.cast(memref::LoadOp::create(b, k, ValueRange{bhk, jLoad, kb.idx(c)}),
                a),
        scale));
  for (int64_t c = 0; c < dv; ++c)
    memref::StoreOp::create(
        b,
        kb.cast(memref::LoadOp::create(b, v, ValueRange{bhk, jLoad, kb.idx(c)}),
                a),
        vrow, ValueRange{tid, kb.idx(c)});

  // Query rows that see some key of the block: i >= j0 − (M − N) (causal).
  Value firstTile = kb.idx(0);
  if (op.getCausal()) {
    Value iStart =
        arith::MaxSIOp::create(b, kb.add(j0, kb.idx(n - m)), kb.idx(0));
    firstTile = kb.divu(iStart, kb.idx(bk));
  }
  Value numTiles = kb.idx((n + bk - 1) / bk);
  SmallVector<Value> init(d + dv, zero);
  auto heads = scf::ForOp::create(b, kb.idx(0), kb.idx(group), kb.idx(1), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(heads.getBody());
    Value bh = kb.add(kb.mul(bhk, kb.idx(group)), heads.getInductionVar());
    auto loop = scf::ForOp::create(b, firstTile, numTiles, kb.idx(1),
                                   heads.getRegionIterArgs());
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(loop.getBody());
      Value i0 = kb.mul(loop.getInductionVar(), kb.idx(bk));
      auto stage = [&](Value src, Value dst, int64_t width) {
        if (width == 0)
          return;
        auto l = scf::ForOp::create(b, tid, kb.idx(bk * width), kb.idx(bq));
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(l.getBody());
        Value el = l.getInductionVar();
        Value r = kb.divu(el, kb.idx(width)), c = kb.remu(el, kb.idx(width));
        Value ii = kb.add(i0, r);
        Value in = kb.cmp(arith::CmpIPredicate::ult, ii, kb.idx(n));
        Value x =
            kb.cast(memref::LoadOp::create(
                        b, src, ValueRange{bh, kb.minu(ii, kb.idx(n - 1)), c}),
                    a);
        memref::StoreOp::create(b, kb.sel(in, x, zero), dst, ValueRange{r, c});
      };
      stage(q, qs, d);
      stage(dO, dos, dv);
      {
        auto l = scf::ForOp::create(b, tid, kb.idx(bk), kb.idx(bq));
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(l.getBody());
        Value r = l.getInductionVar();
        Value ii = kb.add(i0, r);
        Value in = kb.cmp(arith::CmpIPredicate::ult, ii, kb.idx(n));
        Value iic = kb.minu(ii, kb.idx(n - 1));
        Value lv = memref::LoadOp::create(b, lse, ValueRange{bh, iic});
        Value dl = memref::LoadOp::create(b, delta, ValueRange{bh, iic});
        // Rows past N act as empty rows (lse = −∞): they contribute 0.
        memref::StoreOp::create(b, kb.sel(in, lv, negInf), ls, ValueRange{r});
        memref::StoreOp::create(b, kb.sel(in, dl, zero), dls, ValueRange{r});
      }
      gpu::BarrierOp::create(b);
      auto rLoop = scf::ForOp::create(b, kb.idx(0), kb.idx(bk), kb.idx(1),
                                      loop.getRegionIterArgs());
      {
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(rLoop.getBody());
        Value r = rLoop.getInductionVar();
        auto acc = rLoop.getRegionIterArgs();
        Value rowLse = memref::LoadOp::create(b, ls, ValueRange{r});
        Value rowDelta = memref::LoadOp::create(b, dls, ValueRange{r});
        SmallVector<Value> qc = loadRow(b, qs, r, d);
        SmallVector<Value> doc = loadRow(b, dos, r, dv);
        SmallVector<std::pair<Value, Value>> qk, dovv;
        for (int64_t c = 0; c < d; ++c)
          qk.push_back({qc[c], kv[c]});
        for (int64_t c = 0; c < dv; ++c)
          dovv.push_back({doc[c], memref::LoadOp::create(
                                      b, vrow, ValueRange{tid, kb.idx(c)})});
        Value logit = dotProduct(b, zero, qk);
        Value vis = arith::AndIOp::create(
            b, validJ,
            arith::CmpFOp::create(b, arith::CmpFPredicate::ONE, rowLse,
                                  negInf));
        if (op.getCausal())
          vis = arith::AndIOp::create(
              b, vis,
              kb.cmp(arith::CmpIPredicate::sle, j,
                     kb.add(kb.add(i0, r), kb.idx(m - n))));
        Value arg =
            kb.sel(vis, arith::SubFOp::create(b, logit, rowLse), negInf);
        Value p = math::ExpOp::create(b, arg);
        Value dp = dotProduct(b, zero, dovv);
        Value ds =
            arith::MulFOp::create(b, p, arith::SubFOp::create(b, dp, rowDelta));
        SmallVector<Value> next;
        for (int64_t c = 0; c < d; ++c)
          next.push_back(math::FmaOp::create(b, ds, qc[c], acc[c]));
        for (int64_t c = 0; c < dv; ++c)
          next.push_back(math::FmaOp::create(b, p, doc[c], acc[d + c]));
        scf::YieldOp::create(b, next);
      }
      gpu::BarrierOp::create(b);
      scf::YieldOp::create(b, rLoop.getResults());
    }
    scf::YieldOp::create(b, loop.getResults());
  }
  auto ifOp = scf::IfOp::create(b, validJ, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  for (int64_t c = 0; c < d; ++c)
    memref::StoreOp::create(
        b,
        kb.cast(arith::MulFOp::create(b, heads.getResult(c), scale),
                dkT.getElementType()),
        dk, ValueRange{bhk, j, kb.idx(c)});
  for (int64_t c = 0; c < dv; ++c)
    memref::StoreOp::create(
        b, kb.cast(heads.getResult(d + c), dvT.getElementType()), dvOut,
        ValueRange{bhk, j, kb.idx(c)});
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return std::make_pair(func, bk);
}

//===----------------------------------------------------------------------===//
// Host side.
//===----------------------------------------------------------------------===//

void Lowering::launch(ImplicitLocOpBuilder &b, gpu::GPUFuncOp kernel,
                      int64_t gridX, int64_t gridY, int64_t threads,
                      ValueRange args, Value &token) {
  KB kb{b};
  auto op = gpu::LaunchFuncOp::create(
      b, kernel, {kb.idx(gridX), kb.idx(gridY), kb.idx(1)},
      {kb.idx(threads), kb.idx(1), kb.idx(1)}, Value(), args,
      gpu::AsyncTokenType::get(b.getContext()), ValueRange{token});
  token = op.getAsyncToken();
}

LogicalResult
Lowering::lowerAttention(AttentionOp op, ImplicitLocOpBuilder &b,
                         DenseMap<Value, Value> &buffers,
                         const std::function<Value(Value)> &destination,
                         const std::function<Value(MemRefType)> &allocate,
                         Value &token, bool writeCertificate) {
  // The exact method's certificate: [NaN, 0, 0, 0, 0] (β̂ not evaluated), as
  // on the CPU path.
  if (Value cert = op.getCertificate(); cert && writeCertificate) {
    Value c = destination(cert);
    buffers[cert] = c;
    launch(
        b,
        buildCertificateFillKernel(op.getLoc(), cast<MemRefType>(c.getType())),
        1, 1, 1, {c}, token);
  }
  Type e = op.getQuery().getType().getElementType();
  Type a = getAccumulationType(e);
  Value q = collapseLeading(b, buffers.lookup(op.getQuery()), 2);
  Value k = collapseLeading(b, buffers.lookup(op.getKey()), 2);
  Value v = collapseLeading(b, buffers.lookup(op.getValue()), 2);
  // Results already placed (the polynomial lowering's exact fallback case)
  // keep their buffers.
  auto place = [&](Value result) {
    Value &buf = buffers[result];
    if (!buf)
      buf = destination(result);
    return buf;
  };
  Value o = collapseLeading(b, place(op.getOutput()), 2);
  Value lse;
  if (Value l = op.getLogsumexp())
    lse = collapseLeading(b, place(l), 1);
  auto qT = cast<MemRefType>(q.getType()), kT = cast<MemRefType>(k.getType());
  int64_t n = qT.getDimSize(1), m = kT.getDimSize(1), d = qT.getDimSize(2);
  int64_t bhq = qT.getDimSize(0);
  if (bhq == 0 || n == 0)
    return success(); // every result is empty

  // Fused RoPE: q̃ at positions P + (M − N) + i, k̃ at P + j, in acc(E).
  RopeAttr rope = op.getRopeAttr();
  if (rope && !rope.isIdentityFor(d) && d > 0) {
    q = rotate(b, q, a, rope, m - n, false, allocate, Value(), token);
    k = rotate(b, k, a, rope, 0, false, allocate, Value(), token);
  }
  Value bias = op.getBias() ? buffers.lookup(op.getBias()) : Value();
  FailureOr<gpu::GPUFuncOp> kernel = buildAttentionKernel(
      op, op.getCausal(), op.getScaleOrDefault(), cast<MemRefType>(q.getType()),
      cast<MemRefType>(k.getType()), cast<MemRefType>(v.getType()),
      cast<MemRefType>(o.getType()),
      lse ? cast<MemRefType>(lse.getType()) : MemRefType(),
      bias ? cast<MemRefType>(bias.getType()) : MemRefType());
  if (failed(kernel))
    return failure();
  SmallVector<Value> operands = {q, k, v, o};
  if (lse)
    operands.push_back(lse);
  if (bias)
    operands.push_back(bias);
  launch(b, *kernel, (n + blockQ - 1) / blockQ, bhq, blockQ, operands, token);
  return success();
}

LogicalResult
Lowering::lowerAttentionGrad(AttentionGradOp op, ImplicitLocOpBuilder &b,
                             DenseMap<Value, Value> &buffers,
                             const std::function<Value(Value)> &destination,
                             const std::function<Value(MemRefType)> &allocate,
                             Value &token) {
  Type e = op.getQuery().getType().getElementType();
  Type a = getAccumulationType(e);
  Value q = collapseLeading(b, buffers.lookup(op.getQuery()), 2);
  Value k = collapseLeading(b, buffers.lookup(op.getKey()), 2);
  Value v = collapseLeading(b, buffers.lookup(op.getValue()), 2);
  Value o = collapseLeading(b, buffers.lookup(op.getOutput()), 2);
  Value dO = collapseLeading(b, buffers.lookup(op.getGradOutput()), 2);
  Value lse;
  if (Value l = op.getLogsumexp())
    lse = collapseLeading(b, buffers.lookup(l), 1);
  Value dqFull = destination(op.getGradQuery());
  Value dkFull = destination(op.getGradKey());
  Value dvFull = destination(op.getGradValue());
  buffers[op.getGradQuery()] = dqFull;
  buffers[op.getGradKey()] = dkFull;
  buffers[op.getGradValue()] = dvFull;
  Value dq = collapseLeading(b, dqFull, 2);
  Value dk = collapseLeading(b, dkFull, 2);
  Value dv = collapseLeading(b, dvFull, 2);

  auto qT = cast<MemRefType>(q.getType()), kT = cast<MemRefType>(k.getType());
  int64_t bhq = qT.getDimSize(0), n = qT.getDimSize(1), d = qT.getDimSize(2);
  int64_t bhk = kT.getDimSize(0), m = kT.getDimSize(1);
  bool queries = bhq > 0 && n > 0, keys = bhk > 0 && m > 0;
  double scale = op.getScaleOrDefault();

  RopeAttr rope = op.getRopeAttr();
  bool rotated = rope && !rope.isIdentityFor(d) && d > 0;
  if (rotated) {
    if (queries)
      q = rotate(b, q, a, rope, m - n, false, allocate, Value(), token);
    if (keys)
      k = rotate(b, k, a, rope, 0, false, allocate, Value(), token);
  }
  auto typeOf = [](Value x) { return cast<MemRefType>(x.getType()); };

  Value lseA, delta;
  if (queries) {
    // The logsumexp, when not given, from the forward kernel.
    if (!lse) {
      lse = allocate(MemRefType::get({bhq, n}, a));
      Value oTmp = allocate(typeOf(o));
      FailureOr<gpu::GPUFuncOp> fwd =
          buildAttentionKernel(op, op.getCausal(), scale, typeOf(q), typeOf(k),
                               typeOf(v), typeOf(oTmp), typeOf(lse));
      if (failed(fwd))
        return failure();
      launch(b, *fwd, (n + blockQ - 1) / blockQ, bhq, blockQ,
             {q, k, v, oTmp, lse}, token);
    }
    // Δ_i = ⟨dO_i, O_i⟩.
    delta = allocate(MemRefType::get({bhq, n}, a));
    gpu::GPUFuncOp deltaKernel =
        buildDeltaKernel(op.getLoc(), typeOf(o), typeOf(delta));
    launch(b, deltaKernel, (bhq * n + kRotaryBlock - 1) / kRotaryBlock, 1,
           kRotaryBlock, {o, dO, delta}, token);

    // dq̃ (in acc(E) when it is rotated back afterwards).
    Value dqt =
        rotated ? allocate(MemRefType::get(typeOf(dq).getShape(), a)) : dq;
    FailureOr<gpu::GPUFuncOp> dqKernel =
        buildGradQueryKernel(op, typeOf(q), typeOf(k), typeOf(v), typeOf(dO),
                             typeOf(lse), typeOf(dqt));
    if (failed(dqKernel))
      return failure();
    launch(b, *dqKernel, (n + blockQ - 1) / blockQ, bhq, blockQ,
           {q, k, v, dO, lse, delta, dqt}, token);
    if (rotated)
      rotate(b, dqt, e, rope, m - n, true, allocate, dq, token);
  }
  if (keys) {
    Value dkt =
        rotated ? allocate(MemRefType::get(typeOf(dk).getShape(), a)) : dk;
    // Without queries (N = 0 or Hq = 0) the kernel writes zeros; it still
    // needs buffers of the right types for q, dO, lse and Δ.
    if (!queries) {
      lse = lse ? lse : allocate(MemRefType::get({bhq, n}, a));
      delta = allocate(MemRefType::get({bhq, n}, a));
    }
    auto kv =
        buildGradKeyValueKernel(op, typeOf(q), typeOf(k), typeOf(v), typeOf(dO),
                                typeOf(lse), typeOf(dkt), typeOf(dv));
    if (failed(kv))
      return failure();
    launch(b, kv->first, (m + blockQ - 1) / blockQ, bhk, blockQ,
           {q, k, v, dO, lse, delta, dkt, dv}, token);
    if (rotated)
      rotate(b, dkt, e, rope, 0, true, allocate, dk, token);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// The polynomial method (forward) on CUDA: docs/Design.md, "CUDA: the
// polynomial path". Every kernel here is barrier-free with one thread per
// output (independent threads), so ropeattn-emulate-gpu-on-host runs them
// with their real block sizes.
//===----------------------------------------------------------------------===//

/// Partial maxima of the squared row norms (the certificate's first stage).
constexpr int64_t kNormPartials = 1024;

/// A barrier-free kernel of kRotaryBlock threads per block with `types` as
/// arguments; the builder is left at the start of its body.
static gpu::GPUFuncOp newKernel(ImplicitLocOpBuilder &b, StringRef name,
                                TypeRange types, int64_t threads) {
  auto func = gpu::GPUFuncOp::create(
      b, name, FunctionType::get(b.getContext(), types, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(threads), 1, 1}));
  b.setInsertionPointToStart(&func.front());
  return func;
}

/// blockIdx.x · kRotaryBlock + threadIdx.x.
static Value globalId(ImplicitLocOpBuilder &b) {
  KB kb{b};
  return kb.add(kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::x),
                       kb.idx(kRotaryBlock)),
                gpu::ThreadIdOp::create(b, gpu::Dimension::x));
}

/// φ_α(x) = w[which, α]·Π_t x[p, row, table[α, t]] (x has the constant 1 in
/// column D, the "degree filler" of multisets of size g).
static Value feature(ImplicitLocOpBuilder &b, Value x, Value p, Value row,
                     Value table, Value weights, int64_t which, Value alpha,
                     int64_t g) {
  KB kb{b};
  Value f =
      memref::LoadOp::create(b, weights, ValueRange{kb.idx(which), alpha});
  for (int64_t t = 0; t < g; ++t) {
    Value c = memref::LoadOp::create(b, table, ValueRange{alpha, kb.idx(t)});
    c = arith::IndexCastOp::create(b, b.getIndexType(), c);
    f = arith::MulFOp::create(
        b, f, memref::LoadOp::create(b, x, ValueRange{p, row, c}));
  }
  return f;
}

gpu::GPUFuncOp Lowering::buildCertificateFillKernel(Location loc,
                                                    MemRefType cert) {
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  auto func = newKernel(b, uniqueName("certificate_exact"), {cert}, 1);
  Type f64 = b.getF64Type();
  for (int64_t i = 0; i < 5; ++i)
    memref::StoreOp::create(
        b, kb.flt(f64, i ? 0.0 : std::numeric_limits<double>::quiet_NaN()),
        func.getArgument(0), ValueRange{kb.idx(i)});
  gpu::ReturnOp::create(b);
  return func;
}

/// y[p, r, c] = acc(x[p, r, c]) for c < D, y[p, r, D] = 1.
gpu::GPUFuncOp Lowering::buildAugmentKernel(Location loc, MemRefType in,
                                            MemRefType out) {
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  auto func = newKernel(b, uniqueName("augment"), {in, out}, kRotaryBlock);
  int64_t rows = out.getDimSize(1), w = out.getDimSize(2), d = w - 1;
  Type a = out.getElementType();
  Value gid = globalId(b);
  auto ifOp = scf::IfOp::create(
      b, kb.cmp(arith::CmpIPredicate::ult, gid, kb.idx(out.getNumElements())),
      /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value p = kb.divu(gid, kb.idx(rows * w));
  Value rem = kb.remu(gid, kb.idx(rows * w));
  Value r = kb.divu(rem, kb.idx(w)), c = kb.remu(rem, kb.idx(w));
  Value isOne = kb.cmp(arith::CmpIPredicate::eq, c, kb.idx(d));
  auto pick = scf::IfOp::create(b, TypeRange{a}, isOne, /*withElse=*/true);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(&pick.getThenRegion().front());
    scf::YieldOp::create(b, ValueRange{kb.flt(a, 1.0)});
    b.setInsertionPointToStart(&pick.getElseRegion().front());
    Value x =
        memref::LoadOp::create(b, func.getArgument(0), ValueRange{p, r, c});
    scf::YieldOp::create(b, ValueRange{kb.cast(x, a)});
  }
  memref::StoreOp::create(b, pick.getResult(0), func.getArgument(1),
                          ValueRange{p, r, c});
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

/// part[0, t] = max of ‖q̂_ρ‖² over rows ρ ≡ t (mod kNormPartials), part[1, t]
/// likewise for k̂ (the columns < D; column D holds the 1).
gpu::GPUFuncOp Lowering::buildNormPartialsKernel(Location loc, MemRefType q,
                                                 MemRefType k,
                                                 MemRefType part) {
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  auto func =
      newKernel(b, uniqueName("norm_partials"), {q, k, part}, kRotaryBlock);
  Type a = part.getElementType();
  Value t = globalId(b);
  for (int64_t which = 0; which < 2; ++which) {
    Value x = func.getArgument(which);
    auto xT = cast<MemRefType>(x.getType());
    int64_t rows = xT.getDimSize(1), d = xT.getDimSize(2) - 1;
    auto loop =
        scf::ForOp::create(b, t, kb.idx(xT.getDimSize(0) * rows),
                           kb.idx(kNormPartials), ValueRange{kb.flt(a, 0.0)});
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(loop.getBody());
      Value rho = loop.getInductionVar();
      Value p = kb.divu(rho, kb.idx(rows)), r = kb.remu(rho, kb.idx(rows));
      Value sq = kb.flt(a, 0.0);
      for (int64_t c = 0; c < d; ++c) {
        Value v = memref::LoadOp::create(b, x, ValueRange{p, r, kb.idx(c)});
        sq = math::FmaOp::create(b, v, v, sq);
      }
      scf::YieldOp::create(b, ValueRange{arith::MaximumFOp::create(
                                  b, sq, loop.getRegionIterArgs()[0])});
    }
    memref::StoreOp::create(b, loop.getResult(0), func.getArgument(2),
                            ValueRange{kb.idx(which), t});
  }
  gpu::ReturnOp::create(b);
  return func;
}

/// One thread: β̂ = |s|·(1 + 2(D + 2)u)·√max‖q̂‖²·√max‖k̂‖² in f64 (as the
/// CPU path's logitBound), sel = the first candidate with β̂ ≤ B_g (else the
/// number of candidates: the exact method), and the certificate
/// [β̂, g, δ_g, B(δ_g), −log(1 − δ_g)] (zeros after β̂ for the exact method).
gpu::GPUFuncOp
Lowering::buildPolySelectKernel(Location loc, MemRefType part, MemRefType sel,
                                MemRefType cert, double scale, int64_t d,
                                ArrayRef<cost::PolyCandidate> cands) {
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  SmallVector<Type> types = {part, sel};
  if (cert)
    types.push_back(cert);
  auto func = newKernel(b, uniqueName("poly_select"), types, 1);
  Type a = part.getElementType(), f64 = b.getF64Type();
  SmallVector<Value> norms;
  for (int64_t which = 0; which < 2; ++which) {
    auto loop = scf::ForOp::create(b, kb.idx(0), kb.idx(kNormPartials),
                                   kb.idx(1), ValueRange{kb.flt(a, 0.0)});
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(loop.getBody());
      Value v = memref::LoadOp::create(
          b, func.getArgument(0),
          ValueRange{kb.idx(which), loop.getInductionVar()});
      scf::YieldOp::create(b, ValueRange{arith::MaximumFOp::create(
                                  b, v, loop.getRegionIterArgs()[0])});
    }
    norms.push_back(math::SqrtOp::create(b, kb.cast(loop.getResult(0), f64)));
  }
  double slack = 1.0 + 2.0 * double(d + 2) * 0x1p-24;
  Value beta =
      arith::MulFOp::create(b, arith::MulFOp::create(b, norms[0], norms[1]),
                            kb.flt(f64, std::abs(scale) * slack));
  Value s = kb.idx(cands.size());
  for (int64_t i = int64_t(cands.size()) - 1; i >= 0; --i) {
    Value ok = arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, beta,
                                     kb.flt(f64, cands[i].betaMax));
    s = kb.sel(ok, kb.idx(i), s);
  }
  memref::StoreOp::create(b, arith::IndexCastOp::create(b, b.getI32Type(), s),
                          func.getArgument(1), ValueRange{kb.idx(0)});
  if (cert) {
    auto pick = [&](function_ref<double(const cost::PolyCandidate &)> f) {
      Value v = kb.flt(f64, 0.0);
      for (size_t i = 0; i < cands.size(); ++i)
        v = kb.sel(kb.cmp(arith::CmpIPredicate::eq, s, kb.idx(i)),
                   kb.flt(f64, f(cands[i])), v);
      return v;
    };
    SmallVector<Value> entries = {
        beta, pick([](auto &c) { return double(c.degree); }),
        pick([](auto &c) { return c.delta; }),
        pick([](auto &c) { return poly::outputErrorBound(c.delta); }),
        pick([](auto &c) { return poly::lseErrorBound(c.delta); })};
    for (auto [i, v] : llvm::enumerate(entries))
      memref::StoreOp::create(b, v, func.getArgument(2), ValueRange{kb.idx(i)});
  }
  gpu::ReturnOp::create(b);
  return func;
}

/// S[p, kc + 1, α, :] = Σ_{j in key chunk kc} φ_K,α(k̂_j)·[v_j, 1], one thread
/// per (α, kc) (grid x) and kv head p (grid y).
gpu::GPUFuncOp Lowering::buildPolyStatesKernel(Location loc, MemRefType k,
                                               MemRefType v, MemRefType table,
                                               MemRefType weights,
                                               MemRefType states,
                                               int64_t chunk) {
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  auto func = newKernel(b, uniqueName("poly_states"),
                        {k, v, table, weights, states}, kRotaryBlock);
  Value kh = func.getArgument(0), vv = func.getArgument(1),
        tab = func.getArgument(2), w = func.getArgument(3),
        st = func.getArgument(4);
  int64_t m = k.getDimSize(1), dv = v.getDimSize(2);
  int64_t nk = states.getDimSize(1) - 1, r = states.getDimSize(2);
  int64_t g = table.getDimSize(1);
  Type a = states.getElementType();
  Value gid = globalId(b);
  Value p = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  auto ifOp = scf::IfOp::create(
      b, kb.cmp(arith::CmpIPredicate::ult, gid, kb.idx(r * nk)),
      /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value alpha = kb.remu(gid, kb.idx(r)), kc = kb.divu(gid, kb.idx(r));
  Value j0 = kb.mul(kc, kb.idx(chunk));
  Value j1 = kb.minu(kb.add(j0, kb.idx(chunk)), kb.idx(m));
  SmallVector<Value> init(dv + 1, kb.flt(a, 0.0));
  auto loop = scf::ForOp::create(b, j0, j1, kb.idx(1), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value j = loop.getInductionVar();
    Value phi = feature(b, kh, p, j, tab, w, 1, alpha, g);
    SmallVector<Value> next;
    for (int64_t c = 0; c < dv; ++c) {
      Value x = kb.cast(
          memref::LoadOp::create(b, vv, ValueRange{p, j, kb.idx(c)}), a);
      next.push_back(
          math::FmaOp::create(b, phi, x, loop.getRegionIterArgs()[c]));
    }
    next.push_back(arith::AddFOp::create(b, phi, loop.getRegionIterArgs()[dv]));
    scf::YieldOp::create(b, next);
  }
  Value slot = kb.add(kc, kb.idx(1));
  for (int64_t c = 0; c <= dv; ++c)
    memref::StoreOp::create(b, loop.getResult(c), st,
                            ValueRange{p, slot, alpha, kb.idx(c)});
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

/// S[p, 0, e] = 0, S[p, t, e] = Σ_{kc < t} (chunk states): an exclusive prefix
/// sum over the chunks in place, one thread per entry e = (α, c).
gpu::GPUFuncOp Lowering::buildPolyScanKernel(Location loc, MemRefType states) {
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  auto func = newKernel(b, uniqueName("poly_scan"), {states}, kRotaryBlock);
  Value st = func.getArgument(0);
  int64_t nk = states.getDimSize(1) - 1, r = states.getDimSize(2),
          w = states.getDimSize(3);
  Type a = states.getElementType();
  Value gid = globalId(b);
  Value p = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  auto ifOp = scf::IfOp::create(
      b, kb.cmp(arith::CmpIPredicate::ult, gid, kb.idx(r * w)),
      /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value alpha = kb.divu(gid, kb.idx(w)), c = kb.remu(gid, kb.idx(w));
  memref::StoreOp::create(b, kb.flt(a, 0.0), st,
                          ValueRange{p, kb.idx(0), alpha, c});
  auto loop = scf::ForOp::create(b, kb.idx(1), kb.idx(nk + 1), kb.idx(1),
                                 ValueRange{kb.flt(a, 0.0)});
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    ValueRange at{p, loop.getInductionVar(), alpha, c};
    Value run = arith::AddFOp::create(b, loop.getRegionIterArgs()[0],
                                      memref::LoadOp::create(b, st, at));
    memref::StoreOp::create(b, run, st, at);
    scf::YieldOp::create(b, ValueRange{run});
  }
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

/// One thread per query row i (grid x) and query head p (grid y): with
/// lim = i + (M − N) its last visible key (causal; M − 1 otherwise) and
/// t = nk if lim ≥ M − 1 else ⌊(lim + 1)/C⌋ its fully visible chunks,
/// acc = Σ_α φ_Q,α(q̂_i)·S[p/G, t, α, :] + Σ_{t·C ≤ j ≤ lim} e^{s⟨q̃_i, k̃_j⟩}
/// [v_j, 1]; o_i = acc[:Dv]/acc[Dv] (rounded to E once), lse_i = log acc[Dv];
/// a row without visible keys gets o = 0, lse = −∞.
gpu::GPUFuncOp Lowering::buildPolyQueryKernel(
    Location loc, MemRefType q, MemRefType k, MemRefType v, MemRefType table,
    MemRefType weights, MemRefType states, MemRefType o, MemRefType lse,
    bool causal, double scale, int64_t chunk) {
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  SmallVector<Type> types = {q, k, v, table, weights, states, o};
  if (lse)
    types.push_back(lse);
  auto func = newKernel(b, uniqueName("poly_query"), types, kRotaryBlock);
  Value qh = func.getArgument(0), kh = func.getArgument(1),
        vv = func.getArgument(2), tab = func.getArgument(3),
        w = func.getArgument(4), st = func.getArgument(5),
        out = func.getArgument(6);
  int64_t n = q.getDimSize(1), d = q.getDimSize(2) - 1, m = k.getDimSize(1);
  int64_t dv = v.getDimSize(2), nk = states.getDimSize(1) - 1,
          r = states.getDimSize(2), g = table.getDimSize(1);
  int64_t group = q.getDimSize(0) / k.getDimSize(0);
  Type a = states.getElementType(), e = o.getElementType();
  Value i = globalId(b);
  Value p = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value pk = kb.divu(p, kb.idx(group));
  auto ifOp =
      scf::IfOp::create(b, kb.cmp(arith::CmpIPredicate::ult, i, kb.idx(n)),
                        /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  // Signed arithmetic: lim may be negative (rows without visible keys).
  Value lim = causal ? arith::AddIOp::create(b, i, kb.idx(m - n)).getResult()
                     : kb.idx(m - 1);
  Value all =
      arith::CmpIOp::create(b, arith::CmpIPredicate::sge, lim, kb.idx(m - 1));
  Value visible =
      arith::CmpIOp::create(b, arith::CmpIPredicate::sge, lim, kb.idx(0));
  Value limPlus = arith::MaxSIOp::create(b, kb.add(lim, kb.idx(1)), kb.idx(0));
  Value t = kb.sel(all, kb.idx(nk), kb.divu(limPlus, kb.idx(chunk)));
  Value jEnd = kb.sel(all, kb.idx(m), limPlus);

  SmallVector<Value> init(dv + 1, kb.flt(a, 0.0));
  auto feat = scf::ForOp::create(b, kb.idx(0), kb.idx(r), kb.idx(1), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(feat.getBody());
    Value alpha = feat.getInductionVar();
    Value phi = feature(b, qh, p, i, tab, w, 0, alpha, g);
    SmallVector<Value> next;
    for (int64_t c = 0; c <= dv; ++c) {
      Value s =
          memref::LoadOp::create(b, st, ValueRange{pk, t, alpha, kb.idx(c)});
      next.push_back(
          math::FmaOp::create(b, phi, s, feat.getRegionIterArgs()[c]));
    }
    scf::YieldOp::create(b, next);
  }
  // The partially visible chunk: exact exponentials (|ℓ| ≤ β̂, no shift).
  SmallVector<Value> qRow;
  for (int64_t c = 0; c < d; ++c)
    qRow.push_back(memref::LoadOp::create(b, qh, ValueRange{p, i, kb.idx(c)}));
  auto local = scf::ForOp::create(b, kb.mul(t, kb.idx(chunk)), jEnd, kb.idx(1),
                                  feat.getResults());
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(local.getBody());
    Value j = local.getInductionVar();
    SmallVector<std::pair<Value, Value>> terms;
    for (int64_t c = 0; c < d; ++c)
      terms.push_back({qRow[c], memref::LoadOp::create(
                                    b, kh, ValueRange{pk, j, kb.idx(c)})});
    Value dot = dotProduct(b, kb.flt(a, 0.0), terms);
    Value wgt =
        math::ExpOp::create(b, arith::MulFOp::create(b, dot, kb.flt(a, scale)));
    SmallVector<Value> next;
    for (int64_t c = 0; c < dv; ++c) {
      Value x = kb.cast(
          memref::LoadOp::create(b, vv, ValueRange{pk, j, kb.idx(c)}), a);
      next.push_back(
          math::FmaOp::create(b, wgt, x, local.getRegionIterArgs()[c]));
    }
    next.push_back(
        arith::AddFOp::create(b, wgt, local.getRegionIterArgs()[dv]));
    scf::YieldOp::create(b, next);
  }
  Value den = local.getResult(dv);
  for (int64_t c = 0; c < dv; ++c) {
    Value x = arith::DivFOp::create(b, local.getResult(c), den);
    x = kb.sel(visible, x, kb.flt(a, 0.0));
    memref::StoreOp::create(b, kb.cast(x, e), out, ValueRange{p, i, kb.idx(c)});
  }
  if (lse) {
    Value l = kb.sel(visible, math::LogOp::create(b, den),
                     kb.flt(a, -std::numeric_limits<double>::infinity()));
    memref::StoreOp::create(b, l, func.getArgument(7), ValueRange{p, i});
  }
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

/// The monomials of p(s⟨q, k⟩) = Σ_k c_k s^k ⟨q, k⟩^k as multisets of size g
/// over {0, …, D} (D stands for the constant 1, so |α| = k < g is padded):
/// C(D + g, g) rows of column indices, and the weight w_α = c_k s^k k!/α!
/// split as φ_Q: sign(w)·√|w|, φ_K: √|w| (balanced magnitudes in f32).
static void featureTable(int64_t d, int64_t g, ArrayRef<double> coeffs,
                         double scale, SmallVectorImpl<int32_t> &table,
                         SmallVectorImpl<float> &wq,
                         SmallVectorImpl<float> &wk) {
  SmallVector<int32_t> cur(g, 0);
  std::function<void(int64_t, int32_t)> rec = [&](int64_t pos, int32_t from) {
    if (pos == g) {
      // k = entries < D; multinomial k!/Π α_a!.
      double w = 1.0;
      int64_t kdeg = 0, run = 0;
      for (int64_t t = 0; t < g; ++t) {
        if (cur[t] == d)
          continue;
        ++kdeg;
        w *= double(kdeg);
        run = (t > 0 && cur[t] == cur[t - 1]) ? run + 1 : 1;
        w /= double(run);
      }
      w *= coeffs[kdeg] * std::pow(scale, double(kdeg));
      table.append(cur.begin(), cur.end());
      double root = std::sqrt(std::abs(w));
      wq.push_back(float(w < 0 ? -root : root));
      wk.push_back(float(root));
      return;
    }
    for (int32_t c = from; c <= d; ++c) {
      cur[pos] = c;
      rec(pos + 1, c);
    }
  };
  rec(0, 0);
}

LogicalResult Lowering::lowerPolynomial(
    AttentionOp op, ImplicitLocOpBuilder &b, DenseMap<Value, Value> &buffers,
    const std::function<Value(Value)> &destination,
    const std::function<Value(MemRefType)> &allocate, Value &token) {
  RankedTensorType qType = op.getQuery().getType();
  RankedTensorType kType = op.getKey().getType();
  RankedTensorType vType = op.getValue().getType();
  int64_t rank = qType.getRank();
  int64_t n = qType.getDimSize(rank - 2), m = kType.getDimSize(rank - 2);
  int64_t d = qType.getDimSize(rank - 1), dv = vType.getDimSize(rank - 1);
  int64_t bhq = 1, bhk = 1;
  for (int64_t i = 0; i < rank - 2; ++i) {
    bhq *= qType.getDimSize(i);
    bhk *= kType.getDimSize(i);
  }
  auto exact = [&](const Twine &why) {
    op.emitRemark("convert-ropeattn-to-gpu: exact path: ") << why;
    return lowerAttention(op, b, buffers, destination, allocate, token);
  };
  if (n == 0 || m == 0 || bhq == 0)
    return exact("an empty problem");
  if (op.getBias())
    return exact("a relative bias needs the Toeplitz method (the bias does "
                 "not factor through the features)");
  int64_t chunk = poly.chunk, nk = (m + chunk - 1) / chunk;
  // Candidates as ropeattn-expand-polynomial builds them (same table, same
  // order), within max-rank and the states' memory budget.
  SmallVector<cost::PolyCandidate> cands;
  for (int64_t g = 1; g <= poly.maxDegree; ++g) {
    if (poly.family == poly::Family::Taylor && g % 2 != 0)
      continue;
    int64_t r = poly::featureRank(d, g);
    long double bytes = (long double)bhk * (nk + 1) * r * (dv + 1) * 4;
    if (r > poly.maxRank || bytes > (long double)poly.maxStateBytes ||
        r * nk > int64_t(INT32_MAX))
      break;
    if (std::optional<cost::PolyCandidate> c =
            cost::polyCandidate(poly.family, g, poly.epsilon))
      cands.push_back(*c);
  }
  if (cands.empty())
    return exact("no degree within max-degree, max-rank and max-state-mib "
                 "meets epsilon");

  MLIRContext *ctx = module.getContext();
  Type e = qType.getElementType();
  Type a = getAccumulationType(e);
  Type tokenType = gpu::AsyncTokenType::get(ctx);
  KB kb{b};
  Value q = collapseLeading(b, buffers.lookup(op.getQuery()), 2);
  Value k = collapseLeading(b, buffers.lookup(op.getKey()), 2);
  Value v = collapseLeading(b, buffers.lookup(op.getValue()), 2);
  Value oFull = destination(op.getOutput());
  buffers[op.getOutput()] = oFull;
  Value o = collapseLeading(b, oFull, 2);
  Value lse;
  if (Value l = op.getLogsumexp()) {
    Value lFull = destination(l);
    buffers[l] = lFull;
    lse = collapseLeading(b, lFull, 1);
  }
  Value cert;
  if (Value c = op.getCertificate()) {
    cert = destination(c);
    buffers[c] = cert;
  }
  auto typeOf = [](Value x) { return cast<MemRefType>(x.getType()); };

  // q̃, k̃ in acc(E), then with the constant 1 appended: [P, N, D + 1].
  RopeAttr rope = op.getRopeAttr();
  Value qr = q, kr = k;
  if (rope && !rope.isIdentityFor(d) && d > 0) {
    qr = rotate(b, q, a, rope, m - n, false, allocate, Value(), token);
    kr = rotate(b, k, a, rope, 0, false, allocate, Value(), token);
  }
  auto augment = [&](Value x) {
    auto xT = typeOf(x);
    auto yT = MemRefType::get({xT.getDimSize(0), xT.getDimSize(1), d + 1}, a);
    Value y = allocate(yT);
    launch(b, buildAugmentKernel(op.getLoc(), xT, yT),
           (yT.getNumElements() + kRotaryBlock - 1) / kRotaryBlock, 1,
           kRotaryBlock, {x, y}, token);
    return y;
  };
  Value qh = augment(qr), kh = augment(kr);

  // The certificate and the case, on the device; the host reads the case.
  Value part = allocate(MemRefType::get({2, kNormPartials}, a));
  launch(b,
         buildNormPartialsKernel(op.getLoc(), typeOf(qh), typeOf(kh),
                                 typeOf(part)),
         kNormPartials / kRotaryBlock, 1, kRotaryBlock, {qh, kh, part}, token);
  auto selT = MemRefType::get({1}, b.getI32Type());
  Value selDev = allocate(selT);
  SmallVector<Value> selArgs = {part, selDev};
  if (cert)
    selArgs.push_back(cert);
  launch(b,
         buildPolySelectKernel(op.getLoc(), typeOf(part), selT,
                               cert ? typeOf(cert) : MemRefType(),
                               op.getScaleOrDefault(), d, cands),
         1, 1, 1, selArgs, token);
  Value selHost = memref::AllocaOp::create(b, selT);
  token =
      gpu::MemcpyOp::create(b, tokenType, ValueRange{token}, selHost, selDev)
          .getAsyncToken();
  gpu::WaitOp::create(b, Type(), ValueRange{token});
  Value sel = arith::IndexCastOp::create(
      b, b.getIndexType(),
      memref::LoadOp::create(b, selHost, ValueRange{kb.idx(0)}));

  SmallVector<int64_t> caseValues;
  for (size_t i = 0; i < cands.size(); ++i)
    caseValues.push_back(i);
  auto sw = scf::IndexSwitchOp::create(b, TypeRange{}, sel, caseValues,
                                       caseValues.size());
  // Each region: its own async chain and temporaries, synchronized at its end.
  auto inRegion = [&](Region &region,
                      function_ref<LogicalResult(
                          Value &, const std::function<Value(MemRefType)> &)>
                          body) -> LogicalResult {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&region.emplaceBlock());
    Value tok = gpu::WaitOp::create(b, tokenType, ValueRange{}).getResult(0);
    SmallVector<Value> temps;
    std::function<Value(MemRefType)> alloc = [&](MemRefType t) -> Value {
      auto al = gpu::AllocOp::create(b, t, tokenType, ValueRange{tok},
                                     ValueRange{}, ValueRange{});
      tok = al.getAsyncToken();
      temps.push_back(al.getMemref());
      return al.getMemref();
    };
    if (failed(body(tok, alloc)))
      return failure();
    for (Value t : temps)
      tok = gpu::DeallocOp::create(b, tokenType, ValueRange{tok}, t)
                .getAsyncToken();
    gpu::WaitOp::create(b, Type(), ValueRange{tok});
    scf::YieldOp::create(b);
    return success();
  };

  for (auto [ci, cand] : llvm::enumerate(cands)) {
    int64_t g = cand.degree, r = poly::featureRank(d, g);
    SmallVector<int32_t> table;
    SmallVector<float> wq, wk;
    featureTable(d, g, cand.coeffs, op.getScaleOrDefault(), table, wq, wk);
    assert(int64_t(wq.size()) == r && "feature count != C(D + g, g)");
    auto tableT = MemRefType::get({r, g}, b.getI32Type());
    auto weightsT = MemRefType::get({2, r}, a);
    SmallVector<float> weights(wq.begin(), wq.end());
    weights.append(wk.begin(), wk.end());
    // Host constants, copied to the device in the case that uses them.
    std::string name = uniqueName("ropeattn_poly_table");
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      memref::GlobalOp::create(
          b, name + "_idx", b.getStringAttr("private"), tableT,
          DenseElementsAttr::get(
              RankedTensorType::get(tableT.getShape(), b.getI32Type()),
              ArrayRef<int32_t>(table)),
          /*constant=*/true, IntegerAttr());
      memref::GlobalOp::create(
          b, name + "_w", b.getStringAttr("private"), weightsT,
          DenseElementsAttr::get(RankedTensorType::get(weightsT.getShape(), a),
                                 ArrayRef<float>(weights)),
          /*constant=*/true, IntegerAttr());
    }
    auto statesT = MemRefType::get({bhk, nk + 1, r, dv + 1}, a);
    LogicalResult res = inRegion(
        sw.getCaseRegions()[ci],
        [&](Value &tok, const std::function<Value(MemRefType)> &alloc) {
          auto upload = [&](StringRef sym, MemRefType t) {
            Value host = memref::GetGlobalOp::create(b, t, sym);
            Value dev = alloc(t);
            tok =
                gpu::MemcpyOp::create(b, tokenType, ValueRange{tok}, dev, host)
                    .getAsyncToken();
            return dev;
          };
          Value tab = upload(name + "_idx", tableT);
          Value w = upload(name + "_w", weightsT);
          Value st = alloc(statesT);
          launch(b,
                 buildPolyStatesKernel(op.getLoc(), typeOf(kh), typeOf(v),
                                       tableT, weightsT, statesT, chunk),
                 (r * nk + kRotaryBlock - 1) / kRotaryBlock, bhk, kRotaryBlock,
                 {kh, v, tab, w, st}, tok);
          launch(b, buildPolyScanKernel(op.getLoc(), statesT),
                 (r * (dv + 1) + kRotaryBlock - 1) / kRotaryBlock, bhk,
                 kRotaryBlock, {st}, tok);
          SmallVector<Value> args = {qh, kh, v, tab, w, st, o};
          if (lse)
            args.push_back(lse);
          launch(b,
                 buildPolyQueryKernel(
                     op.getLoc(), typeOf(qh), typeOf(kh), typeOf(v), tableT,
                     weightsT, statesT, typeOf(o),
                     lse ? typeOf(lse) : MemRefType(), op.getCausal(),
                     op.getScaleOrDefault(), chunk),
                 (n + kRotaryBlock - 1) / kRotaryBlock, bhq, kRotaryBlock, args,
                 tok);
          return success();
        });
    if (failed(res))
      return failure();
  }
  // Default: the exact kernels (the certificate was written above).
  LogicalResult res =
      inRegion(sw.getDefaultRegion(),
               [&](Value &tok, const std::function<Value(MemRefType)> &alloc) {
                 return lowerAttention(op, b, buffers, destination, alloc, tok,
                                       /*writeCertificate=*/false);
               });
  if (failed(res))
    return failure();
  token = gpu::WaitOp::create(b, tokenType, ValueRange{}).getResult(0);
  return success();
}

//===----------------------------------------------------------------------===//
// ropeattn.fft: cuFFT through libropeattn_cuda_runtime.so.
//===----------------------------------------------------------------------===//

/// x *= factor, one thread per element.
gpu::GPUFuncOp Lowering::buildScaleKernel(Location loc, MemRefType x,
                                          double factor) {
  OpBuilder ob = OpBuilder::atBlockEnd(&kernelModule().getBodyRegion().front());
  ImplicitLocOpBuilder b(loc, ob);
  KB kb{b};
  auto func = newKernel(b, uniqueName("scale"), {x}, kRotaryBlock);
  Value gid = globalId(b);
  int64_t l = x.getDimSize(1), w = x.getDimSize(2);
  auto ifOp = scf::IfOp::create(
      b, kb.cmp(arith::CmpIPredicate::ult, gid, kb.idx(x.getNumElements())),
      /*withElseRegion=*/false);
  b.setInsertionPointToStart(&ifOp.getThenRegion().front());
  Value p = kb.divu(gid, kb.idx(l * w)), rem = kb.remu(gid, kb.idx(l * w));
  ValueRange at{p, kb.divu(rem, kb.idx(w)), kb.remu(rem, kb.idx(w))};
  Value v = memref::LoadOp::create(b, func.getArgument(0), at);
  memref::StoreOp::create(
      b, arith::MulFOp::create(b, v, kb.flt(x.getElementType(), factor)),
      func.getArgument(0), at);
  b.setInsertionPointAfter(ifOp);
  gpu::ReturnOp::create(b);
  return func;
}

LogicalResult Lowering::lowerFft(FftOp op, ImplicitLocOpBuilder &b,
                                 DenseMap<Value, Value> &buffers,
                                 const std::function<Value(Value)> &destination,
                                 Value &token) {
  MLIRContext *ctx = module.getContext();
  Value in = collapseLeading(b, buffers.lookup(op.getInput()), 2);
  Value outFull = destination(op.getResult());
  buffers[op.getResult()] = outFull;
  Value out = collapseLeading(b, outFull, 2);
  auto type = cast<MemRefType>(in.getType());
  int64_t batch = type.getDimSize(0), l = type.getDimSize(1);
  if (batch == 0 || l == 0)
    return success();
  Type e = type.getElementType();
  // The runtime takes [B, L, 2] descriptors of any static size.
  auto dynT =
      MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic, 2}, e);
  std::string name =
      e.isF64() ? "ropeattn_cuda_fft_f64" : "ropeattn_cuda_fft_f32";
  auto fnType = FunctionType::get(ctx, {dynT, dynT, b.getI32Type()}, {});
  if (!module.lookupSymbol<func::FuncOp>(name)) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto decl = func::FuncOp::create(b, name, fnType);
    decl.setPrivate();
    decl->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  }
  // The call runs on the legacy default stream and returns when done: the
  // chain is synchronized before and restarted after.
  gpu::WaitOp::create(b, Type(), ValueRange{token});
  Value inverse = arith::ConstantOp::create(
      b, b.getI32IntegerAttr(op.getInverse() ? 1 : 0));
  func::CallOp::create(b, name, TypeRange{},
                       ValueRange{memref::CastOp::create(b, dynT, in),
                                  memref::CastOp::create(b, dynT, out),
                                  inverse});
  Type tokenType = gpu::AsyncTokenType::get(ctx);
  token = gpu::WaitOp::create(b, tokenType, ValueRange{}).getResult(0);
  if (op.getInverse()) {
    auto outT = cast<MemRefType>(out.getType());
    launch(b, buildScaleKernel(op.getLoc(), outT, 1.0 / double(l)),
           (outT.getNumElements() + kRotaryBlock - 1) / kRotaryBlock, 1,
           kRotaryBlock, {out}, token);
  }
  return success();
}

Value Lowering::rotate(ImplicitLocOpBuilder &b, Value x, Type to, RopeAttr rope,
                       int64_t offset, bool inverse,
                       const std::function<Value(MemRefType)> &allocate,
                       Value dst, Value &token) {
  auto xT = cast<MemRefType>(x.getType());
  auto yT = MemRefType::get(xT.getShape(), to);
  Value y = dst ? dst : allocate(yT);
  if (xT.getNumElements() == 0)
    return y;
  gpu::GPUFuncOp kernel =
      buildRotaryKernel(b.getLoc(), xT, cast<MemRefType>(y.getType()), rope,
                        offset + rope.getPositionOffset(), inverse);
  launch(b, kernel, (xT.getNumElements() + kRotaryBlock - 1) / kRotaryBlock, 1,
         kRotaryBlock, {x, y}, token);
  return y;
}

LogicalResult Lowering::lowerFunction(func::FuncOp func) {
  MLIRContext *ctx = module.getContext();
  FunctionType oldType = func.getFunctionType();
  Block *oldBlock = &func.front();
  auto ret = cast<func::ReturnOp>(oldBlock->getTerminator());

  SmallVector<Type> inputs;
  for (Type t : oldType.getInputs())
    inputs.push_back(memrefOf(cast<RankedTensorType>(t)));
  for (Type t : oldType.getResults())
    inputs.push_back(memrefOf(cast<RankedTensorType>(t)));
  auto *newBlock = new Block();
  for (Type t : inputs)
    newBlock->addArgument(t, func.getLoc());
  unsigned numIn = oldType.getNumInputs();

  OpBuilder ob(ctx);
  ob.setInsertionPointToStart(newBlock);
  ImplicitLocOpBuilder b(func.getLoc(), ob);
  Type tokenType = gpu::AsyncTokenType::get(ctx);
  Value token = gpu::WaitOp::create(b, tokenType, ValueRange{}).getResult(0);

  DenseMap<Value, Value> buffers;
  for (unsigned i = 0; i < numIn; ++i)
    buffers[oldBlock->getArgument(i)] = newBlock->getArgument(i);
  // Which out-parameter receives each returned value directly (the first
  // return position of that value).
  DenseMap<Value, unsigned> outSlot;
  for (auto [pos, v] : llvm::enumerate(ret.getOperands()))
    if (!buffers.count(v) && !outSlot.count(v))
      outSlot[v] = numIn + pos;
  SmallVector<Value> temporaries;

  std::function<Value(MemRefType)> allocate = [&](MemRefType t) -> Value {
    auto alloc = gpu::AllocOp::create(b, t, tokenType, ValueRange{token},
                                      ValueRange{}, ValueRange{});
    token = alloc.getAsyncToken();
    temporaries.push_back(alloc.getMemref());
    return alloc.getMemref();
  };
  std::function<Value(Value)> destination = [&](Value result) -> Value {
    auto it = outSlot.find(result);
    if (it != outSlot.end())
      return newBlock->getArgument(it->second);
    return allocate(memrefOf(cast<RankedTensorType>(result.getType())));
  };

  for (Operation &opRef : oldBlock->without_terminator()) {
    b.setLoc(opRef.getLoc());
    auto attn = dyn_cast<AttentionOp>(opRef);
    auto fft = dyn_cast<FftOp>(opRef);
    LogicalResult lowered =
        fft ? lowerFft(fft, b, buffers, destination, token)
        : attn && attn.getMethodOrDefault() == Method::Polynomial
            ? lowerPolynomial(attn, b, buffers, destination, allocate, token)
        : attn ? lowerAttention(attn, b, buffers, destination, allocate, token)
               : lowerAttentionGrad(cast<AttentionGradOp>(opRef), b, buffers,
                                    destination, allocate, token);
    if (failed(lowered))
      return failure();
  }

  b.setLoc(ret.getLoc());
  // Results not written in place: inputs returned as is, or a value returned
  // twice.
  for (auto [pos, v] : llvm::enumerate(ret.getOperands())) {
    Value dst = newBlock->getArgument(numIn + pos);
    Value src = buffers.lookup(v);
    if (src == dst)
      continue;
    if (cast<MemRefType>(dst.getType()).getNumElements() == 0)
      continue;
    auto copy =
        gpu::MemcpyOp::create(b, tokenType, ValueRange{token}, dst, src);
    token = copy.getAsyncToken();
  }
  for (Value t : temporaries) {
    auto dealloc = gpu::DeallocOp::create(b, tokenType, ValueRange{token}, t);
    token = dealloc.getAsyncToken();
  }
  gpu::WaitOp::create(b, Type(), ValueRange{token});
  func::ReturnOp::create(b);

  // Swap the bodies; the signature becomes (inputs..., outputs...) -> ().
  oldBlock->dropAllDefinedValueUses();
  oldBlock->erase();
  func.getBody().push_back(newBlock);
  func.setType(FunctionType::get(ctx, inputs, {}));
  func->removeAttr(func.getArgAttrsAttrName());
  func->removeAttr(func.getResAttrsAttrName());
  return success();
}

LogicalResult Lowering::run() {
  SmallVector<func::FuncOp> todo;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    bool hasRopeAttn = false;
    func.walk([&](Operation *op) {
      if (isa<RopeAttnDialect>(op->getDialect()))
        hasRopeAttn = true;
    });
    if (!hasRopeAttn)
      continue;
    if (!func.getBody().hasOneBlock())
      return func.emitError("convert-ropeattn-to-gpu: expected a function "
                            "with a single block");
    if (failed(checkFunction(func)))
      return failure();
    todo.push_back(func);
  }
  for (func::FuncOp func : todo)
    if (failed(lowerFunction(func)))
      return failure();
  return success();
}

struct ConvertRopeAttnToGPUPass
    : public ropeattn::impl::ConvertRopeAttnToGPUBase<
          ConvertRopeAttnToGPUPass> {
  using Base::Base;
  void runOnOperation() override {
    if (blockQ < 1 || blockQ > 1024) {
      emitError(getOperation().getLoc())
          << "convert-ropeattn-to-gpu: block-q must be in [1, 1024], got "
          << static_cast<int64_t>(blockQ);
      return signalPassFailure();
    }
    if (blockK < 1) {
      emitError(getOperation().getLoc())
          << "convert-ropeattn-to-gpu: block-k must be >= 1, got "
          << static_cast<int64_t>(blockK);
      return signalPassFailure();
    }
    Lowering::PolyOptions poly;
    std::optional<poly::Family> family = poly::parseFamily(familyName);
    if (!family) {
      emitError(getOperation().getLoc())
          << "convert-ropeattn-to-gpu: unknown polynomial family '"
          << familyName << "' (expected taylor, chebyshev or minimax)";
      return signalPassFailure();
    }
    if (!(epsilon > 0.0) || maxDegree < 1 || maxRank < 1 || polyChunk < 1 ||
        maxStateMib < 0) {
      emitError(getOperation().getLoc())
          << "convert-ropeattn-to-gpu: expected epsilon > 0, max-degree >= 1, "
             "max-rank >= 1, poly-chunk >= 1 and max-state-mib >= 0";
      return signalPassFailure();
    }
    poly.family = *family;
    poly.epsilon = epsilon;
    poly.maxDegree = maxDegree;
    poly.maxRank = maxRank;
    poly.maxStateBytes = int64_t(maxStateMib) << 20;
    poly.chunk = polyChunk;
    Lowering lowering(getOperation(), blockQ, blockK, poly);
    if (failed(lowering.run()))
      signalPassFailure();
  }
};

} // namespace
