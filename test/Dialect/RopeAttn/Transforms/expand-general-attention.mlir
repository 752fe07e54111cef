// ropeattn-expand-general-attention: the general per-offset form by monomials
// m : S → ℕ (|m| ≤ g) and one Toeplitz product per (head, monomial), with the
// run-time certificate and the exact fallback; declines with a remark.
// RUN: rope-opt %s -split-input-file -verify-diagnostics -ropeattn-expand-general-attention="family=taylor max-degree=2" | FileCheck %s
// RUN: not rope-opt %s -split-input-file -ropeattn-expand-general-attention="family=pade" 2>&1 | FileCheck %s --check-prefix=BADOPT
// RUN: not rope-opt %s -split-input-file -ropeattn-expand-general-attention="max-terms=0" 2>&1 | FileCheck %s --check-prefix=BADBUDGET

// BADOPT: ropeattn-expand-general-attention: unknown family 'pade'; expected taylor, chebyshev or minimax
// BADBUDGET: ropeattn-expand-general-attention: epsilon must be > 0, max-degree >= 1, max-terms and max-fft-mib > 0

// GQA (2 query heads, 1 kv head), causal, N = M = 16 (31 offsets), D = 4
// (s = 1/2), support S = {(0, 1), (2, 2)}, Dv = 3 (4 columns of [v | 1]).
// Taylor, max-degree 2: only g = 2 (odd Taylor degrees are skipped), with
// |M| = C(2 + 2, 2) = 6 monomials, in the order (0,0); (1,0), (0,1);
// (2,0), (1,1), (0,2), and coefficients c_|m| s^|m| (|m| choose m) with
// c = (1, 1, 1/2): 1; 1/2, 1/2; 1/8, 2/8, 1/8.
// CHECK-LABEL: func @causal_gqa
// The support gather q̂ = q[.., (0, 2)], k̂ = k[.., (1, 2)].
// CHECK-DAG: arith.constant dense<[0, 2]> : tensor<2xi64>
// CHECK-DAG: arith.constant dense<[1, 2]> : tensor<2xi64>
// The exponent table and the coefficients (constants are hoisted).
// CHECK-DAG: arith.constant dense<{{\[\[}}0, 0], [1, 0], [0, 1], [2, 0], [1, 1], [0, 2]]> : tensor<6x2xi64>
// CHECK-DAG: arith.constant dense<[1.000000e+00, 5.000000e-01, 5.000000e-01, 1.250000e-01, 2.500000e-01, 1.250000e-01]> : tensor<6xf32>
// ω and the finiteness of the visible weights (two 0-d reductions).
// CHECK: linalg.generic {{.*}} ins(%arg3 : tensor<31x2xf32>) outs(%{{.*}}, %{{.*}} : tensor<f32>, tensor<f32>)
// CHECK: scf.index_switch %{{.*}} -> tensor<2x16x3xf32>
// CHECK: case 0 {
// u_m (query side), v_m (key side), the symbols t_m per (head, monomial).
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<2x6x16xf32>)
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<1x6x16xf32>)
// CHECK: %[[SYM:.*]] = linalg.generic {{.*}} ins(%arg3, %{{.*}} : tensor<31x2xf32>, tensor<6x2xi64>) outs(%{{.*}} : tensor<2x6x31xf32>)
// CHECK: %[[X:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x6x16x4xf32>)
// CHECK: ropeattn.toeplitz_matmul %[[SYM]], %[[X]] causal : (tensor<2x6x31xf32>, tensor<2x6x16x4xf32>) -> tensor<2x6x16x4xf32>
// CHECK: default {
// CHECK: ropeattn.general_attention %arg0, %arg1, %arg2 weights(%arg3) support [0, 1, 2, 2] causal method exact
func.func @causal_gqa(%q: tensor<2x16x4xf32>, %k: tensor<1x16x4xf32>, %v: tensor<1x16x3xf32>, %w: tensor<31x2xf32>) -> tensor<2x16x3xf32> {
  // expected-remark @+1 {{ropeattn-expand-general-attention: |S| = 2; compiled degrees: g = 2 (|M| = C(|S| + g, g) = 6, beta <= }}
  %o = ropeattn.general_attention %q, %k, %v weights(%w) support [0, 1, 2, 2] causal method toeplitz : (tensor<2x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x3xf32>, tensor<31x2xf32>) -> tensor<2x16x3xf32>
  return %o : tensor<2x16x3xf32>
}

// -----

// Per-head weights [Hq, L, |S|] are read at (h mod Hq, u, t) for the collapsed
// batch·head h; |S| = 1: |M| = C(3, 2) = 3; the logsumexp result is kept.
// CHECK-DAG: #[[PERHEAD:.*]] = affine_map<(d0, d1, d2, d3) -> (d0 mod 2, d2, d3)>
// CHECK-LABEL: func @per_head_batched
// CHECK: linalg.generic {indexing_maps = [#[[PERHEAD]], {{.*}} ins(%arg3, %{{.*}} : tensor<2x9x1xf64>, tensor<3x1xi64>) outs(%{{.*}} : tensor<6x3x9xf64>)
// CHECK: ropeattn.toeplitz_matmul {{.*}} : (tensor<6x3x9xf64>, tensor<6x3x5x2xf64>) -> tensor<6x3x5x2xf64>
// CHECK: scf.yield {{.*}} : tensor<3x2x5x1xf64>, tensor<3x2x5xf64>
func.func @per_head_batched(%q: tensor<3x2x5x2xf64>, %k: tensor<3x2x5x2xf64>, %v: tensor<3x2x5x1xf64>, %w: tensor<2x9x1xf64>) -> (tensor<3x2x5x1xf64>, tensor<3x2x5xf64>) {
  // expected-remark @+1 {{|M| = C(|S| + g, g) = 3}}
  %o, %l = ropeattn.general_attention %q, %k, %v weights(%w) support [1, 0] method toeplitz : (tensor<3x2x5x2xf64>, tensor<3x2x5x2xf64>, tensor<3x2x5x1xf64>, tensor<2x9x1xf64>) -> (tensor<3x2x5x1xf64>, tensor<3x2x5xf64>)
  return %o, %l : tensor<3x2x5x1xf64>, tensor<3x2x5xf64>
}

// -----

// Too many monomials: |S| = 31 gives C(33, 2) = 528 > max-terms = 512; the
// op keeps the exact method.
// CHECK-LABEL: func @over_budget
// CHECK-NOT: scf.index_switch
// CHECK: ropeattn.general_attention {{.*}} method exact
func.func @over_budget(%q: tensor<1x4x6xf32>, %w: tensor<7x31xf32>) -> tensor<1x4x6xf32> {
  // expected-remark @+1 {{ropeattn-expand-general-attention: exact path: |M| = C(|S| + g, g) = 528 monomials for |S| = 31, g = 2 exceeds max-terms = 512}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 1, 0, 1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 2, 0, 2, 1, 2, 2, 2, 3, 2, 4, 2, 5, 3, 0, 3, 1, 3, 2, 3, 3, 3, 4, 3, 5, 4, 0, 4, 1, 4, 2, 4, 3, 4, 4, 4, 5, 5, 0] method toeplitz : (tensor<1x4x6xf32>, tensor<1x4x6xf32>, tensor<1x4x6xf32>, tensor<7x31xf32>) -> tensor<1x4x6xf32>
  return %o : tensor<1x4x6xf32>
}

// -----

// f16 is not supported by the rewrite yet: exact.
// CHECK-LABEL: func @half_precision
// CHECK: ropeattn.general_attention {{.*}} method exact
func.func @half_precision(%q: tensor<1x4x2xf16>, %w: tensor<7x1xf16>) -> tensor<1x4x2xf16> {
  // expected-remark @+1 {{ropeattn-expand-general-attention: exact path: only f32 and f64 are supported yet}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] method toeplitz : (tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<7x1xf16>) -> tensor<1x4x2xf16>
  return %o : tensor<1x4x2xf16>
}

// -----

// Other methods are left alone.
// CHECK-LABEL: func @not_toeplitz
// CHECK-NOT: scf.index_switch
// CHECK: ropeattn.general_attention {{.*}} support [0, 0] :
func.func @not_toeplitz(%q: tensor<1x4x2xf32>, %w: tensor<7x1xf32>) -> tensor<1x4x2xf32> {
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] : (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7x1xf32>) -> tensor<1x4x2xf32>
  return %o : tensor<1x4x2xf32>
}

// -----

// general_attention_grad (docs/Spec.md §16.5), the same GQA causal shape and
// support as @causal_gqa: the same certificate (ω, β̂, g = 2 with |M| = 6),
// then the forward's products, du_m and S_m, the transposed Toeplitz
// products Z_m = Toeplitz(t_m)ᵀ·S_m, dv_m / dv summed over the group
// ([BHk, G, |M|, M, ·]), the d-weights cross-correlations of the columns of
// S_m and X_m by FFT ([BHq·|M|, W, L', 2], L' = 32), summed over the heads
// sharing the table, the monomial VJPs and the support scatter.
// CHECK-LABEL: func @grad_causal_gqa
// CHECK-DAG: arith.constant dense<{{\[\[}}0, 0], [1, 0], [0, 1], [2, 0], [1, 1], [0, 2]]> : tensor<6x2xi64>
// CHECK: linalg.generic {{.*}} ins(%arg5 : tensor<31x2xf32>) outs(%{{.*}}, %{{.*}} : tensor<f32>, tensor<f32>)
// CHECK: scf.index_switch %{{.*}} -> tensor<2x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x3xf32>, tensor<31x2xf32>
// CHECK: case 0 {
// CHECK: %[[SYM:.*]] = linalg.generic {{.*}} ins(%arg5, %{{.*}} : tensor<31x2xf32>, tensor<6x2xi64>) outs(%{{.*}} : tensor<2x6x31xf32>)
// CHECK: ropeattn.toeplitz_matmul %[[SYM]], %{{.*}} causal : (tensor<2x6x31xf32>, tensor<2x6x16x4xf32>) -> tensor<2x6x16x4xf32>
// CHECK: ropeattn.toeplitz_matmul %[[SYM]], %{{.*}} transposed causal : (tensor<2x6x31xf32>, tensor<2x6x16x4xf32>) -> tensor<2x6x16x4xf32>
// CHECK: tensor.expand_shape {{.*}} : tensor<2x6x16x4xf32> into tensor<1x2x6x16x4xf32>
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<1x6x16xf32>)
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<1x16x3xf32>)
// CHECK: ropeattn.fft %{{.*}} : tensor<12x4x32x2xf32>
// CHECK: ropeattn.fft %{{.*}} : tensor<12x4x32x2xf32>
// CHECK: ropeattn.fft %{{.*}} inverse : tensor<12x32x2xf32>
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<1x6x31xf32>)
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<1x6x31xf32>, tensor<6x2xi64>) outs(%{{.*}} : tensor<1x31x2xf32>)
// CHECK: scf.yield {{.*}} : tensor<2x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x3xf32>, tensor<31x2xf32>
// CHECK: default {
// CHECK: ropeattn.general_attention_grad %arg0, %arg1, %arg2, %arg3, %arg4 weights(%arg5) support [0, 1, 2, 2] causal method exact
func.func @grad_causal_gqa(%q: tensor<2x16x4xf32>, %k: tensor<1x16x4xf32>, %v: tensor<1x16x3xf32>, %o: tensor<2x16x3xf32>, %do: tensor<2x16x3xf32>, %w: tensor<31x2xf32>) -> (tensor<2x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x3xf32>, tensor<31x2xf32>) {
  // expected-remark @+1 {{ropeattn-expand-general-attention: |S| = 2; compiled degrees: g = 2 (|M| = C(|S| + g, g) = 6, beta <= }}
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %k, %v, %o, %do weights(%w) support [0, 1, 2, 2] causal method toeplitz : (tensor<2x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x3xf32>, tensor<2x16x3xf32>, tensor<2x16x3xf32>, tensor<31x2xf32>) -> (tensor<2x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x3xf32>, tensor<31x2xf32>)
  return %dq, %dk, %dv, %dw : tensor<2x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x3xf32>, tensor<31x2xf32>
}

// -----

// Per-head weights: the symbols' gradients are summed over the batch entries
// of each head ([B, Hq, |M|, L] → [Hq, |M|, L]) before the VJP with W.
// CHECK-LABEL: func @grad_per_head
// CHECK: tensor.expand_shape {{.*}} : tensor<6x3x9xf64> into tensor<3x2x3x9xf64>
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<2x3x9xf64>)
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<2x3x9xf64>, tensor<3x1xi64>) outs(%{{.*}} : tensor<2x9x1xf64>)
func.func @grad_per_head(%q: tensor<3x2x5x2xf64>, %v: tensor<3x2x5x1xf64>, %w: tensor<2x9x1xf64>) -> tensor<2x9x1xf64> {
  // expected-remark @+1 {{|M| = C(|S| + g, g) = 3}}
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %v, %v, %v weights(%w) support [1, 0] method toeplitz : (tensor<3x2x5x2xf64>, tensor<3x2x5x2xf64>, tensor<3x2x5x1xf64>, tensor<3x2x5x1xf64>, tensor<3x2x5x1xf64>, tensor<2x9x1xf64>) -> (tensor<3x2x5x2xf64>, tensor<3x2x5x2xf64>, tensor<3x2x5x1xf64>, tensor<2x9x1xf64>)
  return %dw : tensor<2x9x1xf64>
}

// -----

// Declines keep the exact method with a remark: bf16; and the backward's FFT
// budget: 64 heads, N = M = 8192 (L' = 16384), Dv = 63 (W = 64), |S| = 1,
// g = 2 (|M| = 3): the correlations' two padded buffers take
// 64·3·64·16384·2·2·4 bytes = 3072 MiB > max-fft-mib = 1024 (the forward's
// 64·3·32·16384·2·4 bytes = 768 MiB would fit).
// CHECK-LABEL: func @grad_declines
// CHECK-NOT: scf.index_switch
// CHECK: ropeattn.general_attention_grad {{.*}} method exact
// CHECK: ropeattn.general_attention_grad {{.*}} method exact
func.func @grad_declines(%q: tensor<1x4x2xbf16>, %w: tensor<7x1xbf16>, %q2: tensor<64x8192x2xf32>, %v2: tensor<64x8192x63xf32>, %w2: tensor<16383x1xf32>) -> (tensor<7x1xbf16>, tensor<16383x1xf32>) {
  // expected-remark @+1 {{ropeattn-expand-general-attention: exact path: only f32 and f64 are supported yet}}
  %a:4 = ropeattn.general_attention_grad %q, %q, %q, %q, %q weights(%w) support [0, 0] method toeplitz : (tensor<1x4x2xbf16>, tensor<1x4x2xbf16>, tensor<1x4x2xbf16>, tensor<1x4x2xbf16>, tensor<1x4x2xbf16>, tensor<7x1xbf16>) -> (tensor<1x4x2xbf16>, tensor<1x4x2xbf16>, tensor<1x4x2xbf16>, tensor<7x1xbf16>)
  // expected-remark @+1 {{ropeattn-expand-general-attention: exact path: an FFT buffer of the Toeplitz products needs 3072 MiB at degree 2, over max-fft-mib = 1024}}
  %b:4 = ropeattn.general_attention_grad %q2, %q2, %v2, %v2, %v2 weights(%w2) support [0, 1] causal method toeplitz : (tensor<64x8192x2xf32>, tensor<64x8192x2xf32>, tensor<64x8192x63xf32>, tensor<64x8192x63xf32>, tensor<64x8192x63xf32>, tensor<16383x1xf32>) -> (tensor<64x8192x2xf32>, tensor<64x8192x2xf32>, tensor<64x8192x63xf32>, tensor<16383x1xf32>)
  return %a#3, %b#3 : tensor<7x1xbf16>, tensor<16383x1xf32>
}
