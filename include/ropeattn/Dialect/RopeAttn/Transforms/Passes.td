//===- Passes.td - ropeattn transformation passes ----------*- tablegen -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_DIALECT_ROPEATTN_TRANSFORMS_PASSES_TD
#define ROPEATTN_DIALECT_ROPEATTN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def RopeAttnPrerotate : Pass<"ropeattn-prerotate"> {
  let summary = "turns fused RoPE into explicit rotary ops (pre-rotation)";
  let description = [{
    Standard RoPE attention equals plain attention on pre-rotated queries and
    keys (⟨rot(q, i), rot(k, j)⟩ = qᵀ R_{j−i} k, docs/Spec.md "Rotary
    embedding"). This pass rewrites every `ropeattn.attention` and
    `ropeattn.attention_grad` that carries a `rope` attribute into explicit
    `ropeattn.rotary` ops around an attention without one. Keys rotate at
    positions `offset + j`; queries at `offset + (M − N) + i`, the
    bottom-right alignment of docs/Spec.md. For the backward, dq and dk are
    the inverse rotations of the gradients with respect to the rotated
    operands.

    Before:

    ```mlir
    %o = ropeattn.attention %q, %k, %v causal rope <>
        : (tensor<4x16x8xf32>, tensor<4x24x8xf32>, tensor<4x24x8xf32>)
        -> tensor<4x16x8xf32>
    ```

    After:

    ```mlir
    %rq = ropeattn.rotary %q rope <position_offset = 8> : tensor<4x16x8xf32>
    %rk = ropeattn.rotary %k rope <> : tensor<4x24x8xf32>
    %o = ropeattn.attention %rq, %rk, %v causal
        : (tensor<4x16x8xf32>, tensor<4x24x8xf32>, tensor<4x24x8xf32>)
        -> tensor<4x16x8xf32>
    ```

    Ops are left alone, with a remark, when N or M is dynamic (the query
    offset M − N is not known statically) and when the element type is f16 or
    bf16 (the rotated operands would be rounded to it, which the accuracy
    contract of docs/Spec.md forbids; the lowering rotates them in f32).
  }];
  let dependentDialects = ["::mlir::ropeattn::RopeAttnDialect"];
}

#endif // ROPEATTN_DIALECT_ROPEATTN_TRANSFORMS_PASSES_TD
