//===- FlopCount.h - FLOPs of ropeattn functions ----------------*- C++ -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_TOOLS_ROPE_RUN_FLOPCOUNT_H
#define ROPEATTN_TOOLS_ROPE_RUN_FLOPCOUNT_H

namespace mlir {
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace roperun {

struct FlopCount {
  /// Floating-point operations of one call.
  double flops = 0;
  /// Attention ops counted.
  unsigned numOps = 0;
  /// Attention ops skipped because a shape is dynamic.
  unsigned numDynamic = 0;
};

/// Counts the FLOPs of one call of `func` by FlashAttention's convention:
/// each ropeattn.attention / general_attention op with query [B.., Hq, N, D],
/// key [B.., Hk, M, D] and value [B.., Hk, M, Dv] counts
/// B·Hq·(2·N·M·D + 2·N·M·Dv) (the QKᵀ and PV matmuls), halved when `causal`;
/// attention_grad / general_attention_grad count 2.5 times that. Other ops
/// count 0. Ops in functions reached through calls are counted once per call
/// site; ops in loops are counted once (a static count).
FlopCount countFlops(mlir::func::FuncOp func);

} // namespace roperun

#endif // ROPEATTN_TOOLS_ROPE_RUN_FLOPCOUNT_H
