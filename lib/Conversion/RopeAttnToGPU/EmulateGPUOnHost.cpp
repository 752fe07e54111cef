//===- EmulateGPUOnHost.cpp - run single-thread gpu launches on the host --===//
//
// Part of the ropeattn project.
//
// A test utility: rewrites the host code of convert-ropeattn-to-gpu (async
// gpu.alloc / gpu.launch_func / gpu.memcpy / gpu.dealloc / gpu.wait) into
// plain host code, so that the generated kernels can be checked against the
// fp64 reference on a machine without a GPU (test/Integration/CUDA-emulated).
// Each launch becomes loops over the grid with the kernel body inlined:
// gpu.block_id → the loop indices, gpu.thread_id → 0, workgroup memory →
// host buffers, gpu.barrier → nothing. That is exact only for one thread per
// block (block-q = 1 for the attention kernel); launches with more threads
// are rejected, except kernels without barriers and workgroup memory (the
// rotary kernel), whose threads are independent and run as a third loop.
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Conversion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/IRMapping.h"

#include <cmath>

namespace mlir {
namespace ropeattn {
#define GEN_PASS_DEF_ROPEATTNEMULATEGPUONHOST
#include "ropeattn/Conversion/Passes.h.inc"
} // namespace ropeattn
} // namespace mlir

using namespace mlir;

namespace {

std::optional<int64_t> constantIndex(Value v) {
  if (auto c = v.getDefiningOp<arith::ConstantIndexOp>())
    return c.value();
  return std::nullopt;
}

MemRefType hostType(Type t) {
  auto m = cast<MemRefType>(t);
  return MemRefType::get(m.getShape(), m.getElementType(), m.getLayout());
}

LogicalResult emulateLaunch(gpu::LaunchFuncOp launch, SymbolTable &symbols) {
  auto kernel = symbols.lookupNearestSymbolFrom<gpu::GPUFuncOp>(
      launch, launch.getKernel());
  if (!kernel)
    return launch.emitError("ropeattn-emulate-gpu-on-host: kernel not found");
  auto bx = constantIndex(launch.getBlockSizeX());
  auto by = constantIndex(launch.getBlockSizeY());
  auto bz = constantIndex(launch.getBlockSizeZ());
  auto gz = constantIndex(launch.getGridSizeZ());
  if (!bx || !by || !bz || *by != 1 || *bz != 1 || !gz || *gz != 1)
    return launch.emitError("ropeattn-emulate-gpu-on-host: expected constant "
                            "(X, 1, 1) blocks and a (X, Y, 1) grid");
  bool independentThreads =
      kernel.getWorkgroupAttributions().empty() &&
      !kernel.walk([](gpu::BarrierOp) { return WalkResult::interrupt(); })
           .wasInterrupted();
  if (*bx != 1 && !independentThreads)
    return launch.emitError("ropeattn-emulate-gpu-on-host: a kernel with "
                            "barriers or workgroup memory needs one thread "
                            "per block, found ")
           << *bx;

  OpBuilder b(launch);
  Location loc = launch.getLoc();
  SmallVector<Value> workgroup;
  for (BlockArgument a : kernel.getWorkgroupAttributions())
    workgroup.push_back(memref::AllocOp::create(b, loc, hostType(a.getType())));
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  auto loopX = scf::ForOp::create(b, loc, c0, launch.getGridSizeX(), c1);
  b.setInsertionPointToStart(loopX.getBody());
  auto loopY = scf::ForOp::create(b, loc, c0, launch.getGridSizeY(), c1);
  b.setInsertionPointToStart(loopY.getBody());
  auto loopT = scf::ForOp::create(b, loc, c0, launch.getBlockSizeX(), c1);
  b.setInsertionPointToStart(loopT.getBody());

  IRMapping mapping;
  Block &body = kernel.front();
  for (auto [arg, operand] :
       llvm::zip(kernel.getArguments(), launch.getKernelOperands()))
    mapping.map(arg, operand);
  for (auto [arg, buffer] :
       llvm::zip(kernel.getWorkgroupAttributions(), workgroup))
    mapping.map(arg, buffer);
  for (Operation &op : body.without_terminator())
    b.clone(op, mapping);

  // Thread/block ids and barriers, also inside nested regions.
  SmallVector<Operation *> toErase;
  loopT.getBody()->walk([&](Operation *op) {
    OpBuilder r(op);
    if (auto tid = dyn_cast<gpu::ThreadIdOp>(op)) {
      tid.replaceAllUsesWith(tid.getDimension() == gpu::Dimension::x
                                 ? loopT.getInductionVar()
                                 : c0);
      toErase.push_back(op);
    } else if (auto bid = dyn_cast<gpu::BlockIdOp>(op)) {
      Value iv =
          bid.getDimension() == gpu::Dimension::x   ? loopX.getInductionVar()
          : bid.getDimension() == gpu::Dimension::y ? loopY.getInductionVar()
                                                    : c0;
      bid.replaceAllUsesWith(iv);
      toErase.push_back(op);
    } else if (isa<gpu::BarrierOp>(op)) {
      toErase.push_back(op);
    } else if (isa<gpu::GPUDialect>(op->getDialect())) {
      op->emitError("ropeattn-emulate-gpu-on-host: cannot emulate ")
          << op->getName();
    }
  });
  for (Operation *op : toErase)
    op->erase();
  b.setInsertionPointAfter(loopX);
  for (Value w : workgroup)
    memref::DeallocOp::create(b, loc, w);
  return success();
}

/// A call of the cuFFT runtime (`ropeattn_cuda_fft_f32/f64(in, out,
/// inverse)`, unnormalized, [B, L, 2]) becomes a direct O(L²) DFT in f64 on
/// the host: out[b, k] = Σ_n in[b, n]·e^{∓2πi·((n·k) mod L)/L}.
LogicalResult emulateFftCall(func::CallOp call) {
  auto inverseConst = call.getOperand(2).getDefiningOp<arith::ConstantIntOp>();
  if (!inverseConst)
    return call.emitError("ropeattn-emulate-gpu-on-host: expected a constant "
                          "inverse flag");
  double sign = inverseConst.value() ? 1.0 : -1.0;
  OpBuilder b(call);
  Location loc = call.getLoc();
  Value in = call.getOperand(0), out = call.getOperand(1);
  Type e = cast<MemRefType>(in.getType()).getElementType();
  Type f64 = b.getF64Type(), i64 = b.getI64Type();
  auto idx = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  auto flt = [&](double v) {
    return arith::ConstantOp::create(b, loc, f64, b.getF64FloatAttr(v));
  };
  auto ext = [&](Value v) -> Value {
    return e.isF64() ? v : arith::ExtFOp::create(b, loc, f64, v).getResult();
  };
  Value c0 = idx(0), c1 = idx(1);
  Value batch = memref::DimOp::create(b, loc, in, 0);
  Value len = memref::DimOp::create(b, loc, in, 1);
  Value lenF = arith::SIToFPOp::create(
      b, loc, f64, arith::IndexCastOp::create(b, loc, i64, len));
  auto lb = scf::ForOp::create(b, loc, c0, batch, c1);
  b.setInsertionPointToStart(lb.getBody());
  auto lk = scf::ForOp::create(b, loc, c0, len, c1);
  b.setInsertionPointToStart(lk.getBody());
  Value z = lb.getInductionVar(), k = lk.getInductionVar();
  auto ln = scf::ForOp::create(b, loc, c0, len, c1, ValueRange{flt(0), flt(0)});
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(ln.getBody());
    Value n = ln.getInductionVar();
    Value nk = arith::RemUIOp::create(b, loc,
                                      arith::MulIOp::create(b, loc, n, k), len);
    Value theta = arith::DivFOp::create(
        b, loc,
        arith::MulFOp::create(
            b, loc, flt(sign * 2.0 * M_PI),
            arith::SIToFPOp::create(
                b, loc, f64, arith::IndexCastOp::create(b, loc, i64, nk))),
        lenF);
    Value cs = math::CosOp::create(b, loc, theta);
    Value sn = math::SinOp::create(b, loc, theta);
    Value xr = ext(memref::LoadOp::create(b, loc, in, ValueRange{z, n, c0}));
    Value xi = ext(memref::LoadOp::create(b, loc, in, ValueRange{z, n, c1}));
    // (xr + i·xi)(cos + i·sin)
    Value re =
        arith::SubFOp::create(b, loc, arith::MulFOp::create(b, loc, xr, cs),
                              arith::MulFOp::create(b, loc, xi, sn));
    Value im =
        arith::AddFOp::create(b, loc, arith::MulFOp::create(b, loc, xr, sn),
                              arith::MulFOp::create(b, loc, xi, cs));
    scf::YieldOp::create(
        b, loc,
        ValueRange{
            arith::AddFOp::create(b, loc, ln.getRegionIterArgs()[0], re),
            arith::AddFOp::create(b, loc, ln.getRegionIterArgs()[1], im)});
  }
  auto narrow = [&](Value v) -> Value {
    return e.isF64() ? v : arith::TruncFOp::create(b, loc, e, v).getResult();
  };
  memref::StoreOp::create(b, loc, narrow(ln.getResult(0)), out,
                          ValueRange{z, k, c0});
  memref::StoreOp::create(b, loc, narrow(ln.getResult(1)), out,
                          ValueRange{z, k, c1});
  call.erase();
  return success();
}

struct EmulateGPUOnHostPass
    : public ropeattn::impl::RopeAttnEmulateGPUOnHostBase<
          EmulateGPUOnHostPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<Operation *> gpuOps;
    WalkResult result = module.walk([&](Operation *op) {
      if (op->getParentOfType<gpu::GPUModuleOp>() || isa<gpu::GPUModuleOp>(op))
        return WalkResult::skip();
      OpBuilder b(op);
      if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
        Value m =
            memref::AllocOp::create(b, op->getLoc(), hostType(alloc.getType()));
        alloc.getMemref().replaceAllUsesWith(m);
      } else if (auto launch = dyn_cast<gpu::LaunchFuncOp>(op)) {
        if (failed(emulateLaunch(launch, symbols)))
          return WalkResult::interrupt();
      } else if (auto copy = dyn_cast<gpu::MemcpyOp>(op)) {
        memref::CopyOp::create(b, op->getLoc(), copy.getSrc(), copy.getDst());
      } else if (auto call = dyn_cast<func::CallOp>(op);
                 call && call.getCallee().starts_with("ropeattn_cuda_fft_")) {
        if (failed(emulateFftCall(call)))
          return WalkResult::interrupt();
        return WalkResult::advance();
      } else if (auto dealloc = dyn_cast<gpu::DeallocOp>(op)) {
        memref::DeallocOp::create(b, op->getLoc(), dealloc.getMemref());
      } else if (!isa<gpu::WaitOp>(op)) {
        if (isa<gpu::GPUDialect>(op->getDialect())) {
          op->emitError("ropeattn-emulate-gpu-on-host: cannot emulate ")
              << op->getName();
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      }
      gpuOps.push_back(op);
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();
    for (Operation *op : llvm::reverse(gpuOps)) {
      op->dropAllUses();
      op->erase();
    }
    for (auto m : llvm::make_early_inc_range(module.getOps<gpu::GPUModuleOp>()))
      m.erase();
    for (auto f : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
      if (f.isExternal() && f.getName().starts_with("ropeattn_cuda_fft_") &&
          f.symbolKnownUseEmpty(module))
        f.erase();
    module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  }
};

} // namespace
