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
    module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  }
};

} // namespace
