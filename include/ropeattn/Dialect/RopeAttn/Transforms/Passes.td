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

def RopeAttnExpandPolynomial : Pass<"ropeattn-expand-polynomial"> {
  let summary = "polynomial-method attention with a run-time certificate";
  let description = [{
    Rewrites every `ropeattn.attention` and `ropeattn.attention_grad` with
    `method polynomial` (static shapes, no bias; f16/bf16 operands and any
    fused RoPE are handled in f32) into the polynomial method: e^ℓ ≈ p_g(ℓ) = ⟨φ_Q(q̃), φ_K(k̃)⟩ with
    `ropeattn.poly_features` of rank C(D + g, g) (Taylor, Chebyshev or
    minimax coefficients, `family`), two matmuls per chunk and a
    normalization (non-causal), or a chunked prefix scan whose partially
    visible chunks use exact exponentials (causal). The backward is the exact
    gradient of that forward, through the feature Jacobian
    (`ropeattn.poly_features_grad`) and a reverse scan of query states. See
    docs/Polynomial.md §8–§9.

    The degree is chosen at run time: the generated code computes
    β̂ = |s|·max‖q‖·max‖k‖ ≥ max|ℓ| (O((N + M)·D)) and runs the cheapest
    compiled candidate whose certified range [−B_g, B_g] covers β̂ (each with
    a proven weight error δ_g ≤ `epsilon`); when none does it runs the exact
    method (an `scf.index_switch`; both paths are compiled). The output then
    satisfies |Õ − O| ≤ 2δ/(1 + √(1 − δ²))·max|v|.

    Candidate degrees are 1 … `max-degree` (Taylor: even only), cut where the
    feature rank exceeds `max-rank` or the states exceed `max-state-mib`; if
    no degree fits, or the op has a bias or dynamic shapes, the op gets `method exact` and a remark says why.

    ```mlir
    %o = ropeattn.attention %q, %k, %v method polynomial : (...) -> ...
    // becomes
    %beta = ... max‖q‖·max‖k‖·|s| ...
    %sel = arith.select %ok2, %c0, (arith.select %ok4, %c1, %c2)
    %o = scf.index_switch %sel -> tensor<...>
    case 0 { ... ropeattn.poly_features ... coefficients [1.0, 1.0, 0.5] ... }
    case 1 { ... degree 4 ... }
    default { %e = ropeattn.attention %q, %k, %v method exact ... }
    ```
  }];
  let options = [
    Option<"familyName", "family", "std::string", /*default=*/"\"minimax\"",
           "polynomial family: taylor, chebyshev or minimax">,
    Option<"epsilon", "epsilon", "double", /*default=*/"1e-3",
           "bound on the relative error δ of every attention weight">,
    Option<"maxDegree", "max-degree", "int64_t", /*default=*/"6",
           "largest polynomial degree considered">,
    Option<"maxRank", "max-rank", "int64_t", /*default=*/"32768",
           "largest feature rank C(D + g, g) allowed">,
    Option<"maxStateMib", "max-state-mib", "int64_t", /*default=*/"1024",
           "memory budget of the prefix states, MiB">,
    Option<"chunk", "chunk", "int64_t", /*default=*/"256",
           "rows per chunk of the feature computation and causal scan">,
  ];
  let dependentDialects = [
    "::mlir::ropeattn::RopeAttnDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def RopeAttnSelectMethod : Pass<"ropeattn-select-method"> {
  let summary = "cost model: chooses exact or polynomial for `method auto`";
  let description = [{
    Annotates every `ropeattn.attention` and `ropeattn.attention_grad` whose
    method is `auto` (no `method` attribute) with `method exact` or
    `method polynomial`, by estimated cost; an explicit method is a hint the
    pass honours (it is left alone). The estimates (docs/Spec.md §11, "Cost
    model"; lib/Dialect/RopeAttn/Utils/CostModel.cpp) count flops:

    * exact: visible pairs × (2(D + Dv) + 10) forward, × (2(3D + 2Dv) + 10)
      backward (an exponential counts 10);
    * polynomial at the least degree g whose certified range covers
      `assumed-beta` (within `max-degree`, `max-rank`): features, the state
      and query matmuls with rank r = C(D + g, g) and Dv + 1 columns, the
      causal partial chunks, and for the backward the feature Jacobians;
      divided by `poly-efficiency` (its measured throughput relative to the
      exact path's).

    Polynomial is chosen when it is estimated cheaper. The choice is safe
    whatever the run-time logit bound: the polynomial lowering certifies β̂
    at run time and falls back to exact (docs/Spec.md §11). Ops the
    polynomial method cannot take (bias, dynamic shapes, empty
    problems) get `method exact`. `remarks` reports every decision with its
    estimates.
  }];
  let options = [
    Option<"familyName", "family", "std::string", /*default=*/"\"minimax\"",
           "polynomial family: taylor, chebyshev or minimax">,
    Option<"epsilon", "epsilon", "double", /*default=*/"1e-3",
           "bound on the relative error δ of every attention weight">,
    Option<"maxDegree", "max-degree", "int64_t", /*default=*/"6",
           "largest polynomial degree considered">,
    Option<"maxRank", "max-rank", "int64_t", /*default=*/"32768",
           "largest feature rank C(D + g, g) allowed">,
    Option<"chunk", "chunk", "int64_t", /*default=*/"256",
           "rows per chunk of the polynomial method">,
    Option<"assumedBeta", "assumed-beta", "double", /*default=*/"1.0",
           "logit bound β̂ the estimate assumes (the run time certifies it)">,
    Option<"polyEfficiency", "poly-efficiency", "double", /*default=*/"0.8",
           "polynomial-path throughput relative to the exact path">,
    Option<"remarks", "remarks", "bool", /*default=*/"false",
           "emit a remark with the estimates for every decision">,
  ];
  let dependentDialects = ["::mlir::ropeattn::RopeAttnDialect"];
}

#endif // ROPEATTN_DIALECT_ROPEATTN_TRANSFORMS_PASSES_TD
