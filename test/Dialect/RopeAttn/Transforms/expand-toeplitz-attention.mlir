// ropeattn-expand-toeplitz-attention: relative-bias attention by polynomial
// features and one Toeplitz product per head, with the run-time certificate
// and the exact fallback; declines with a remark.
// RUN: rope-opt %s -split-input-file -verify-diagnostics -ropeattn-expand-toeplitz-attention="max-degree=2" | FileCheck %s
// RUN: not rope-opt %s -split-input-file -ropeattn-expand-toeplitz-attention="family=pade" 2>&1 | FileCheck %s --check-prefix=BADOPT

// BADOPT: ropeattn-expand-toeplitz-attention: unknown family 'pade'; expected taylor, chebyshev or minimax

// GQA (2 query heads, 1 kv head), causal, shared bias of 31 = 16 + 16 - 1
// offsets, D = 4, Dv = 3 (W = 4 columns of [v | 1]), s = 1/2.
// CHECK-LABEL: func @causal_gqa
// b̄ per query head and the finiteness of the visible bias entries.
// CHECK: %[[STATS:.*]]:2 = linalg.generic {{.*}} ins(%arg3 : tensor<31xf32>) outs(%{{.*}}, %{{.*}} : tensor<2xf32>, tensor<f32>)
// CHECK: scf.index_switch %{{.*}} -> tensor<2x16x3xf32>
// Degree 1: R = C(5, 1) = 5 features, X has R·W = 20 columns.
// CHECK: case 0 {
// CHECK: %[[PQ:.*]] = ropeattn.poly_features %arg0 {{.*}} side query scale(5.000000e-01) : tensor<2x16x4xf32> -> tensor<2x16x5xf32>
// CHECK: ropeattn.poly_features %arg1 {{.*}} side key scale(5.000000e-01) : tensor<1x16x4xf32> -> tensor<1x16x5xf32>
// CHECK: %[[X:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x16x20xf32>)
// CHECK: %[[E:.*]] = linalg.generic {{.*}} ins(%[[STATS]]#0 : tensor<2xf32>) outs(%{{.*}} : tensor<2x31xf32>)
// CHECK: math.exp
// CHECK: %[[Y:.*]] = ropeattn.toeplitz_matmul %[[E]], %[[X]] causal : (tensor<2x31xf32>, tensor<2x16x20xf32>) -> tensor<2x16x20xf32>
// CHECK: %[[Y4:.*]] = tensor.expand_shape %[[Y]] {{\[\[}}0], [1], [2, 3]] output_shape [2, 16, 5, 4]
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[PQ]], %[[Y4]] : tensor<2x16x5xf32>, tensor<2x16x5x4xf32>)
// Degree 2: R = C(6, 2) = 15, 60 columns.
// CHECK: case 1 {
// CHECK: ropeattn.toeplitz_matmul {{.*}} causal : (tensor<2x31xf32>, tensor<2x16x60xf32>) -> tensor<2x16x60xf32>
// CHECK: default {
// CHECK: ropeattn.attention %arg0, %arg1, %arg2 bias(%arg3) causal method exact
func.func @causal_gqa(%q: tensor<2x16x4xf32>, %k: tensor<1x16x4xf32>, %v: tensor<1x16x3xf32>, %b: tensor<31xf32>) -> tensor<2x16x3xf32> {
  %o = ropeattn.attention %q, %k, %v bias(%b) causal method toeplitz : (tensor<2x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x3xf32>, tensor<31xf32>) -> tensor<2x16x3xf32>
  return %o : tensor<2x16x3xf32>
}

// -----

// A per-head bias is read at (h mod Hq, u) for the collapsed batch·head h.
// CHECK-DAG: #[[PERHEAD:.*]] = affine_map<(d0, d1) -> (d0 mod 2, d1)>
// CHECK-LABEL: func @per_head_batched
// CHECK: linalg.generic {indexing_maps = [#[[PERHEAD]], {{.*}} ins(%arg3 : tensor<2x9xf64>)
// D = 2, g = 1: R = 3 features, W = 2: 6 columns.
// CHECK: ropeattn.toeplitz_matmul {{.*}} : (tensor<6x9xf64>, tensor<6x5x6xf64>) -> tensor<6x5x6xf64>
func.func @per_head_batched(%q: tensor<3x2x5x2xf64>, %k: tensor<3x2x5x2xf64>, %v: tensor<3x2x5x1xf64>, %b: tensor<2x9xf64>) -> tensor<3x2x5x1xf64> {
  %o = ropeattn.attention %q, %k, %v bias(%b) method toeplitz : (tensor<3x2x5x2xf64>, tensor<3x2x5x2xf64>, tensor<3x2x5x1xf64>, tensor<2x9xf64>) -> tensor<3x2x5x1xf64>
  return %o : tensor<3x2x5x1xf64>
}

// -----

// Other methods are left alone.
// CHECK-LABEL: func @not_toeplitz
// CHECK-NOT: scf.index_switch
// CHECK: ropeattn.attention {{.*}} bias(%arg3) :
func.func @not_toeplitz(%q: tensor<1x4x2xf32>, %k: tensor<1x4x2xf32>, %v: tensor<1x4x2xf32>, %b: tensor<7xf32>) -> tensor<1x4x2xf32> {
  %o = ropeattn.attention %q, %k, %v bias(%b) : (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>) -> tensor<1x4x2xf32>
  return %o : tensor<1x4x2xf32>
}

// -----

// CHECK-LABEL: func @fused_rope
// CHECK: method exact
func.func @fused_rope(%q: tensor<1x4x2xf32>, %k: tensor<1x4x2xf32>, %v: tensor<1x4x2xf32>, %b: tensor<7xf32>) -> tensor<1x4x2xf32> {
  // expected-remark @+1 {{ropeattn-expand-toeplitz-attention: exact path: fused RoPE is still present (run ropeattn-prerotate first; f16/bf16 keep it fused)}}
  %o = ropeattn.attention %q, %k, %v bias(%b) rope <> method toeplitz : (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>) -> tensor<1x4x2xf32>
  return %o : tensor<1x4x2xf32>
}

// -----

func.func @half(%q: tensor<1x4x2xf16>, %k: tensor<1x4x2xf16>, %v: tensor<1x4x2xf16>, %b: tensor<7xf16>) -> tensor<1x4x2xf16> {
  // expected-remark @+1 {{ropeattn-expand-toeplitz-attention: exact path: only f32 and f64 are supported yet}}
  %o = ropeattn.attention %q, %k, %v bias(%b) method toeplitz : (tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<7xf16>) -> tensor<1x4x2xf16>
  return %o : tensor<1x4x2xf16>
}

// -----

// D = 64, g = 1: R = 65 is within max-rank, but ⌈65·65/2⌉ = 2113 complex
// columns of 2^17 f32 pairs (2113 MiB) exceed max-fft-mib.
func.func @budget(%q: tensor<1x65536x64xf32>, %k: tensor<1x65536x64xf32>, %v: tensor<1x65536x64xf32>, %b: tensor<131071xf32>) -> tensor<1x65536x64xf32> {
  // expected-remark @+1 {{ropeattn-expand-toeplitz-attention: exact path: an FFT buffer of the Toeplitz products needs 2113 MiB at degree 1, over max-fft-mib = 1024}}
  %o = ropeattn.attention %q, %k, %v bias(%b) method toeplitz : (tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<131071xf32>) -> tensor<1x65536x64xf32>
  return %o : tensor<1x65536x64xf32>
}

// -----

func.func @empty(%q: tensor<1x0x2xf32>, %k: tensor<1x4x2xf32>, %v: tensor<1x4x2xf32>, %b: tensor<3xf32>) -> tensor<1x0x2xf32> {
  // expected-remark @+1 {{ropeattn-expand-toeplitz-attention: exact path: an empty problem}}
  %o = ropeattn.attention %q, %k, %v bias(%b) method toeplitz : (tensor<1x0x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<3xf32>) -> tensor<1x0x2xf32>
  return %o : tensor<1x0x2xf32>
}
