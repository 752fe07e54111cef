//===- Passes.td - ropeattn conversion passes --------------*- tablegen -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_CONVERSION_PASSES_TD
#define ROPEATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertRopeAttnToLinalg : Pass<"convert-ropeattn-to-linalg"> {
  let summary = "exact, flash-style lowering of ropeattn ops to linalg on tensors";
  let description = [{
    The oracle of the project: lowers `ropeattn.rotary`, `ropeattn.attention`
    and `ropeattn.attention_grad` (every option of docs/Spec.md: both RoPE
    layouts, partial rotary, explicit positions, causal with bottom-right
    alignment, GQA, bias, batch dimensions, logsumexp) to
    linalg/tensor/arith/math/scf on tensors, in destination-passing style.

    Attention is computed flash-style: an `scf.forall` over (batch·head,
    query block) and an `scf.for` over key blocks with an online softmax
    (running max, running sum, rescaled accumulator); the N×M logit matrix is
    never materialized, so memory is O((N + M)·D) plus one block-q × block-k
    tile per thread. Matmuls on tiles are `linalg.matmul` (with transposing
    indexing maps), which the CPU pipeline turns into BLAS calls or loops.
    The backward recomputes the probabilities from the logsumexp (computed by
    the forward kernel when not given), parallel over key/value heads so that
    dk/dv/dq accumulate without races: per key block, dv += Pᵀ dO,
    dS = P∘(dO Vᵀ − Δ), dk += dSᵀ q·s, dq += s·dS k.

    f16/bf16 operands are extended to f32 once and every intermediate (also the
    rotated q, k) stays in the accumulation type; results are rounded to the
    element type once. Angles of the rotary embedding are computed in f64.

    Before (one op):

    ```mlir
    %o = ropeattn.attention %q, %k, %v causal : (...) -> tensor<4x1024x64xf32>
    ```

    After (sketch):

    ```mlir
    %r = scf.forall (%bh, %qb) in (4, 8) shared_outs(%out = %init) -> ... {
      %acc:3 = scf.for %j = %c0 to %kend step %c256 iter_args(%m, %l, %a) {
        %s = linalg.matmul indexing_maps = [...] ins(%qt, %kt) outs(%zero)
        ...                                   // max, exp, sum, rescale
        %a2 = linalg.matmul ins(%p, %vt) outs(%a1)
        scf.yield %m2, %l2, %a2
      }
      scf.forall.in_parallel { tensor.parallel_insert_slice ... }
    }
    ```

    Ops with dynamic shapes and `ropeattn.general_attention(_grad)` are not
    lowered yet: the pass fails with an error that says so.
  }];
  let options = [
    Option<"blockQ", "block-q", "int64_t", /*default=*/"128",
           "rows of a query block">,
    Option<"blockK", "block-k", "int64_t", /*default=*/"256",
           "rows of a key block">,
  ];
  let dependentDialects = [
    "::mlir::affine::AffineDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // ROPEATTN_CONVERSION_PASSES_TD
