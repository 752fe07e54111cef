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
  let summary = "cost model: chooses exact, polynomial or toeplitz for `method auto`";
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

    With a bias (forward) the choice is exact or `toeplitz`, and for
    `ropeattn.general_attention` and `ropeattn.general_attention_grad`
    exact or `toeplitz` (the monomial form with
    |M| = C(|S| + g, g) terms, at most `max-terms`): Toeplitz products cost
    ⌈columns/2⌉·(2·5L·log2 L + 6L) + 5L·log2 L per symbol (L the FFT length),
    divided by `toeplitz-efficiency`; the general form's exact lowering
    (materialized logits) by `general-exact-efficiency` (docs/Spec.md §16.4).

    Polynomial is chosen when it is estimated cheaper. The choice is safe
    whatever the run-time logit bound: the polynomial lowering certifies β̂
    at run time and falls back to exact (docs/Spec.md §11). Ops no
    approximate method can take (dynamic shapes, empty problems, a bias
    with no toeplitz degree in budget) get `method exact`. `remarks` reports every decision with its
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
    Option<"toeplitzMaxDegree", "toeplitz-max-degree", "int64_t",
           /*default=*/"4",
           "largest degree of the toeplitz method (its rewrites' default)">,
    Option<"toeplitzMaxRank", "toeplitz-max-rank", "int64_t",
           /*default=*/"1024",
           "largest feature rank of toeplitz on bias attention">,
    Option<"maxTerms", "max-terms", "int64_t", /*default=*/"512",
           "largest |M| = C(|S| + g, g) of toeplitz on general_attention">,
    Option<"toeplitzEfficiency", "toeplitz-efficiency", "double",
           /*default=*/"0.18",
           "toeplitz-path (FFT) throughput relative to the exact path">,
    Option<"generalExactEfficiency", "general-exact-efficiency", "double",
           /*default=*/"0.01",
           "general_attention exact-lowering throughput relative to the exact "
           "attention path">,
  ];
  let dependentDialects = ["::mlir::ropeattn::RopeAttnDialect"];
}

def RopeAttnExpandToeplitz : Pass<"ropeattn-expand-toeplitz"> {
  let summary = "Toeplitz products by circulant embedding and FFTs";
  let description = [{
    Rewrites `ropeattn.toeplitz_matmul` (docs/Spec.md) into `ropeattn.fft`
    ops and linalg on tensors. With `A` the `R × K` operator (T, or Tᵀ with
    `transposed`; causal mask applied) and its symbol `a_δ`, `δ = r − k`:

    1. the circulant `c` of length `L = 2^⌈log2(R + K − 1)⌉`:
       `c[u] = a_u` (u < R), `c[L − u] = a_{−u}` (0 < u < K), 0 elsewhere,
       and `ĉ = FFT(c)` — once when the symbol is shared by the batch;
    2. the columns of `x`, zero-padded to `L`, two real columns packed into
       one complex column (`x_{2p} + i·x_{2p+1}`: `A` is real, so the real
       and imaginary parts of the product are the two products);
    3. `y = IFFT(ĉ ∘ FFT(z))`, rows `0 .. R − 1`, unpacked.

    Steps 2–3 run in an `scf.for` over (batch entry, block of column pairs),
    a block's `[pairs, L, 2]` buffer being about 512 KiB, so that the FFTs
    work in cache whatever C is.

    Cost: `⌈C/2⌉` complex FFT pairs of length `L` per batch entry, plus one
    for the symbol, instead of `R·K·C` multiply-adds.

    ```mlir
    %y = ropeattn.toeplitz_matmul %t, %x : (tensor<15xf32>, tensor<8x6xf32>) -> tensor<8x6xf32>
    // becomes
    %c = linalg.generic ... // circulant, tensor<16x2xf32>
    %cf = ropeattn.fft %c : tensor<16x2xf32>
    %y = scf.for ... iter_args(%acc = ...) {   // blocks of column pairs
      %z = linalg.generic ... // packed columns, tensor<3x16x2xf32>
      %zf = ropeattn.fft %z : tensor<3x16x2xf32>
      %p = linalg.generic ... // complex products
      %w = ropeattn.fft %p inverse : tensor<3x16x2xf32>
      %t = linalg.generic ... // unpack, tensor<8x6xf32>
      tensor.insert_slice ... into %acc
    }
    ```

    Static shapes only (the pass reports others).
  }];
  let dependentDialects = [
    "::mlir::ropeattn::RopeAttnDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def RopeAttnExpandToeplitzAttention : Pass<"ropeattn-expand-toeplitz-attention"> {
  let summary = "relative-bias attention by polynomial features and FFT Toeplitz products";
  let description = [{
    Rewrites `ropeattn.attention ... bias(%b) method toeplitz` (forward, f32/f64,
    static shapes, RoPE already pre-rotated) into the features + Toeplitz form
    of Alman & Song (docs/Spec.md §11, "method toeplitz"):

    `e^{ℓ_ij + b_{i−j}} ≈ p(ℓ_ij)·e^{b_{i−j}} = Σ_α φ_Q(q_i)_α φ_K(k_j)_α E_{i−j}`

    `Nm = Σ_α diag(Φ_Q[:, α]) · Toeplitz(E) · diag(Φ_K[:, α]) · [V | 1]`

    with `E = e^{b − max b}` (the maximum over the visible offsets, per query
    head; the shift cancels in O and is added back to lse) and the causal
    mask folded into the Toeplitz product. All `R·(Dv + 1)` products of a
    head go through one `ropeattn.toeplitz_matmul` with that many columns
    (one symbol FFT per head).

    Certificate (run time, as the polynomial method): `β̂ = |s|·max‖q‖·max‖k‖`
    selects the cheapest compiled degree g whose proven weight error
    δ_g ≤ `epsilon` covers β̂; an `scf.index_switch` runs it, or the exact
    lowering when no degree covers β̂ or when a visible bias entry is not
    finite (−∞ biases make rows empty, which an FFT product cannot resolve).
    Candidates are limited by `max-degree`, `max-rank` and `max-fft-mib`
    (the FFT buffers); ops that admit none keep `method exact` with a remark.

    ```mlir
    %o = ropeattn.attention %q, %k, %v bias(%b) causal method toeplitz : ...
    // becomes
    %sel = ... β̂, finiteness of b ...
    %o = scf.index_switch %sel -> tensor<...>
    case 0 { ... ropeattn.poly_features ... ropeattn.toeplitz_matmul ... }
    default { %e = ropeattn.attention %q, %k, %v bias(%b) causal method exact ... }
    ```

    `ropeattn.attention_grad ... bias(%b) method toeplitz` is rewritten the
    same way (same certificate, same fallback) into the exact gradient of
    that forward (docs/Spec.md §15.1): dq and dv/dk through the forward's
    Toeplitz product and one transposed product `Toeplitz(E)ᵀ·S`, and d-bias
    as the cross-correlations of the columns of S and X by `ropeattn.fft`.
  }];
  let options = [
    Option<"familyName", "family", "std::string", /*default=*/"\"minimax\"",
           "polynomial family: taylor, chebyshev or minimax">,
    Option<"epsilon", "epsilon", "double", /*default=*/"1e-3",
           "bound on the relative error δ of every attention weight">,
    Option<"maxDegree", "max-degree", "int64_t", /*default=*/"4",
           "largest polynomial degree considered">,
    Option<"maxRank", "max-rank", "int64_t", /*default=*/"1024",
           "largest feature rank C(D + g, g) allowed">,
    Option<"maxFftMib", "max-fft-mib", "int64_t", /*default=*/"1024",
           "memory budget of one FFT buffer of the Toeplitz products, MiB">,
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

//===----------------------------------------------------------------------===//
// The general per-offset form (issue 5, parts 4 and 6)
//===----------------------------------------------------------------------===//

def RopeAttnExpandGeneralAttention : Pass<"ropeattn-expand-general-attention"> {
  let summary = "general per-offset attention by monomials and FFT Toeplitz products";
  let description = [{
    Rewrites `ropeattn.general_attention ... method toeplitz` and
    `ropeattn.general_attention_grad ... method toeplitz` (f32/f64, static
    shapes) into the monomial form of Alman & Song (FRA
    Def. 1.1; docs/Spec.md §16): with `ℓ_ij = s·Σ_t q̂_it W_t(i−j) k̂_jt`
    (q̂ = q[.., a_t], k̂ = k[.., b_t]) and p(x) = Σ_k c_k x^k,

    `p(ℓ_ij) = Σ_{m : S → ℕ, |m| ≤ g} c_|m| s^|m| (|m| choose m) ·
               Π_t q̂_it^{m_t} · Π_t W_t(i−j)^{m_t} · Π_t k̂_jt^{m_t}`

    `Nm = Σ_m diag(u_m) · Toeplitz(t_m) · diag(v_m) · [V | 1]`

    over |𝓜| = C(|S| + g, g) monomials, all of a head in one
    `ropeattn.toeplitz_matmul` with a per-monomial symbol (causal mask folded
    into the product).

    Certificate (run time): `β̂ = ω·|s|·max‖q̂_i‖·max‖k̂_j‖` (ω the largest
    visible |W| entry; Cauchy–Schwarz) selects the cheapest compiled degree
    whose proven weight error δ_g ≤ `epsilon` covers β̂; an
    `scf.index_switch` runs it, or `general_attention ... method exact` when
    no degree covers β̂ or a visible weight is not finite. Degrees are limited
    by `max-degree`, `max-terms` (|𝓜|) and `max-fft-mib`; an op that admits
    none keeps `method exact` with a remark. Every rewrite reports |𝓜| per
    compiled degree in a remark.

    The gradient (same certificate, candidates and fallback) is the exact
    gradient of that forward: transposed Toeplitz products
    `Z_m = Toeplitz(t_m)ᵀ·S_m` for dk and dv, FFT cross-correlations of the
    columns of `S_m` and `X_m` for the symbols' gradients (then d-weights),
    and the monomial vector-Jacobian products for dq, dk, dW
    (docs/Spec.md §16.5).

    ```mlir
    %o = ropeattn.general_attention %q, %k, %v weights(%w) support [0, 0, 1, 1]
        method toeplitz : ...
    // becomes
    %o = scf.index_switch %sel -> tensor<...>
    case 0 { ... ropeattn.toeplitz_matmul ... }   // degree g_0
    default { ropeattn.general_attention ... method exact ... }
    ```
  }];
  let options = [
    Option<"familyName", "family", "std::string", /*default=*/"\"minimax\"",
           "polynomial family: taylor, chebyshev or minimax">,
    Option<"epsilon", "epsilon", "double", /*default=*/"1e-3",
           "bound on the relative error δ of every attention weight">,
    Option<"maxDegree", "max-degree", "int64_t", /*default=*/"4",
           "largest polynomial degree considered">,
    Option<"maxTerms", "max-terms", "int64_t", /*default=*/"512",
           "largest number of monomials C(|S| + g, g) allowed">,
    Option<"maxFftMib", "max-fft-mib", "int64_t", /*default=*/"1024",
           "memory budget of the FFT buffer of the Toeplitz products, MiB">,
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

def RopeAttnLowerGeneralAttention : Pass<"ropeattn-lower-general-attention"> {
  let summary = "exact lowering of ropeattn.general_attention(_grad) to linalg";
  let description = [{
    Lowers every `ropeattn.general_attention` and
    `ropeattn.general_attention_grad` (static shapes; any method: a
    remaining `toeplitz` hint is honoured by running
    `ropeattn-expand-general-attention` first) to linalg on tensors by the
    formula of docs/Spec.md §8: the support gather q̂, k̂, the logits
    `s·Σ_t q̂_it W_t(i−j) k̂_jt` materialized per head (O(N·M) memory), the
    masked, max-shifted softmax and the value product, in the accumulation
    type (f64 for f64, f32 otherwise). Empty rows give 0 / −∞. The gradient
    (docs/Spec.md §9, §16.1) uses the same logits, the probabilities from the
    `logsumexp` operand when given (else recomputed), `dℓ = P ∘ (dP − Δ)`,
    and scatters the support columns of dq̂, dk̂ back to the feature dims; dW
    is binned by offset and summed over the heads sharing a table.

    ```mlir
    %o = ropeattn.general_attention %q, %k, %v weights(%w) support [0, 1] : ...
    // becomes linalg.generic ops (gather, logits, max, exp, sum, P·V, divide)
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // ROPEATTN_DIALECT_ROPEATTN_TRANSFORMS_PASSES_TD
