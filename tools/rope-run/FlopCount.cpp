//===- FlopCount.cpp - FLOPs of ropeattn functions ------------------------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#include "FlopCount.h"

#include "ropeattn/Dialect/RopeAttn/IR/RopeAttn.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/CallInterfaces.h"
#include "llvm/ADT/SmallPtrSet.h"

using namespace mlir;
using namespace roperun;

/// FLOPs of an attention forward with these operands; false if a shape is
/// dynamic.
static bool countAttention(Value query, Value key, Value value, bool causal,
                           double &flops) {
  auto q = dyn_cast<RankedTensorType>(query.getType());
  auto k = dyn_cast<RankedTensorType>(key.getType());
  auto v = dyn_cast<RankedTensorType>(value.getType());
  if (!q || !k || !v || !q.hasStaticShape() || !k.hasStaticShape() ||
      !v.hasStaticShape() || q.getRank() < 3 || k.getRank() < 2 ||
      v.getRank() < 1)
    return false;
  ArrayRef<int64_t> qShape = q.getShape();
  double batchHeads = 1; // B.. x Hq
  for (int64_t dim : qShape.drop_back(2))
    batchHeads *= static_cast<double>(dim);
  double n = static_cast<double>(qShape[qShape.size() - 2]);
  double d = static_cast<double>(qShape.back());
  double m = static_cast<double>(k.getShape()[k.getRank() - 2]);
  double dv = static_cast<double>(v.getShape().back());
  flops = batchHeads * (2 * n * m * d + 2 * n * m * dv) * (causal ? 0.5 : 1.0);
  return true;
}

static void countIn(Operation *root, SymbolTableCollection &symbols,
                    llvm::SmallPtrSetImpl<Operation *> &active,
                    FlopCount &count) {
  root->walk([&](Operation *op) {
    double flops = 0, factor = 1;
    bool known;
    if (auto attn = dyn_cast<ropeattn::AttentionOp>(op)) {
      known = countAttention(attn.getQuery(), attn.getKey(), attn.getValue(),
                             attn.getCausal(), flops);
    } else if (auto attn = dyn_cast<ropeattn::GeneralAttentionOp>(op)) {
      known = countAttention(attn.getQuery(), attn.getKey(), attn.getValue(),
                             attn.getCausal(), flops);
    } else if (auto grad = dyn_cast<ropeattn::AttentionGradOp>(op)) {
      known = countAttention(grad.getQuery(), grad.getKey(), grad.getValue(),
                             grad.getCausal(), flops);
      factor = 2.5;
    } else if (auto grad = dyn_cast<ropeattn::GeneralAttentionGradOp>(op)) {
      known = countAttention(grad.getQuery(), grad.getKey(), grad.getValue(),
                             grad.getCausal(), flops);
      factor = 2.5;
    } else {
      if (auto call = dyn_cast<CallOpInterface>(op)) {
        Operation *callee = call.resolveCallableInTable(&symbols);
        // Recursion cannot be counted statically: skip calls into the chain.
        if (callee && !active.contains(callee)) {
          active.insert(callee);
          countIn(callee, symbols, active, count);
          active.erase(callee);
        }
      }
      return;
    }
    if (!known) {
      ++count.numDynamic;
      return;
    }
    ++count.numOps;
    count.flops += factor * flops;
  });
}

FlopCount roperun::countFlops(func::FuncOp func) {
  FlopCount count;
  SymbolTableCollection symbols;
  llvm::SmallPtrSet<Operation *, 4> active;
  active.insert(func);
  countIn(func, symbols, active, count);
  return count;
}
