// ropeattn-expand-toeplitz-attention on attention_grad (docs/Spec.md §15.1):
// the exact gradient of the Toeplitz forward, with the forward's run-time
// certificate and exact fallback; declines with a remark.
// RUN: rope-opt %s -split-input-file -verify-diagnostics -ropeattn-expand-toeplitz-attention="max-degree=1" | FileCheck %s

// GQA (2 query heads, 1 kv head), causal, N = 16 > M = 12, shared bias of
// 27 offsets, D = 4, Dv = 3 (W = 4), g = 1: R = 5, R·W = 20 columns, FFT
// length 32.
// CHECK-LABEL: func @causal_gqa
// CHECK: %[[STATS:.*]]:2 = linalg.generic {{.*}} ins(%arg5 : tensor<27xf32>) outs(%{{.*}}, %{{.*}} : tensor<2xf32>, tensor<f32>)
// CHECK: scf.index_switch %{{.*}} -> tensor<2x16x4xf32>, tensor<1x12x4xf32>, tensor<1x12x3xf32>, tensor<27xf32>
// CHECK: case 0 {
// The forward's products: φ_Q, φ_K, X, E, Y = Toeplitz(E)·X, Nm.
// CHECK: %[[PQ:.*]] = ropeattn.poly_features %arg0 {{.*}} side query scale(5.000000e-01) : tensor<2x16x4xf32> -> tensor<2x16x5xf32>
// CHECK: %[[PK:.*]] = ropeattn.poly_features %arg1 {{.*}} side key scale(5.000000e-01) : tensor<1x12x4xf32> -> tensor<1x12x5xf32>
// CHECK: %[[X:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x12x20xf32>)
// CHECK: %[[E:.*]] = linalg.generic {{.*}} ins(%[[STATS]]#0 : tensor<2xf32>) outs(%{{.*}} : tensor<2x27xf32>)
// CHECK: %[[Y:.*]] = ropeattn.toeplitz_matmul %[[E]], %[[X]] causal : (tensor<2x27xf32>, tensor<2x12x20xf32>) -> tensor<2x16x20xf32>
// CHECK: %[[Y4:.*]] = tensor.expand_shape %[[Y]]
// CHECK: %[[NM:.*]] = linalg.generic {{.*}} ins(%[[PQ]], %[[Y4]] : tensor<2x16x5xf32>, tensor<2x16x5x4xf32>) outs(%{{.*}} : tensor<2x16x4xf32>)
// D_i = dO_i·o_i, then Gs = [dO | −D] / Ẑ.
// CHECK: %[[DD:.*]] = linalg.generic {{.*}} ins(%arg4, %arg3 : tensor<2x16x3xf32>, tensor<2x16x3xf32>) outs(%{{.*}} : tensor<2x16xf32>)
// CHECK: %[[GS:.*]] = linalg.generic {{.*}} ins(%[[NM]], %[[DD]] : tensor<2x16x4xf32>, tensor<2x16xf32>) outs(%{{.*}} : tensor<2x16x4xf32>)
// CHECK: arith.negf
// CHECK: arith.divf
// dq = J_Qᵀ·(Y·Gs).
// CHECK: %[[DPQ:.*]] = linalg.generic {{.*}} ins(%[[Y4]], %[[GS]] : tensor<2x16x5x4xf32>, tensor<2x16x4xf32>) outs(%{{.*}} : tensor<2x16x5xf32>)
// CHECK: %[[DQ:.*]] = ropeattn.poly_features_grad %arg0, %[[DPQ]] {{.*}} side query scale(5.000000e-01) : tensor<2x16x4xf32>, tensor<2x16x5xf32> -> tensor<2x16x4xf32>
// S = φ_Q ⊗ Gs, Z = Toeplitz(E)ᵀ·S, split per GQA group.
// CHECK: %[[S:.*]] = linalg.generic {{.*}} ins(%[[PQ]], %[[GS]] : tensor<2x16x5xf32>, tensor<2x16x4xf32>) outs(%{{.*}} : tensor<2x16x5x4xf32>)
// CHECK: %[[SM:.*]] = tensor.collapse_shape %[[S]] {{\[\[}}0], [1], [2, 3]]
// CHECK: %[[Z:.*]] = ropeattn.toeplitz_matmul %[[E]], %[[SM]] transposed causal : (tensor<2x27xf32>, tensor<2x16x20xf32>) -> tensor<2x12x20xf32>
// CHECK: %[[Z5:.*]] = tensor.expand_shape %[[Z]] {{\[\[}}0, 1], [2], [3, 4]] output_shape [1, 2, 12, 5, 4]
// dk = J_Kᵀ·(Σ_group Σ_c Z·U), dv = Σ_group Σ_α Z[.., :Dv]·φ_K.
// CHECK: %[[U:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<1x12x4xf32>)
// CHECK: %[[DPK:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%[[Z5]], %[[U]] : tensor<1x2x12x5x4xf32>, tensor<1x12x4xf32>) outs(%{{.*}} : tensor<1x12x5xf32>)
// CHECK: %[[DK:.*]] = ropeattn.poly_features_grad %arg1, %[[DPK]] {{.*}} side key
// CHECK: %[[ZV:.*]] = tensor.extract_slice %[[Z5]][0, 0, 0, 0, 0] [1, 2, 12, 5, 3] [1, 1, 1, 1, 1]
// CHECK: %[[DV:.*]] = linalg.generic {{.*}} ins(%[[ZV]], %[[PK]] : tensor<1x2x12x5x3xf32>, tensor<1x12x5xf32>) outs(%{{.*}} : tensor<1x12x3xf32>)
// d-bias: zero-padded columns of S and X, FFTs, Σ_col FS·conj(FX), inverse.
// CHECK: %[[PS:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x20x32x2xf32>)
// CHECK: %[[PX:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x20x32x2xf32>)
// CHECK: %[[FS:.*]] = ropeattn.fft %[[PS]] : tensor<2x20x32x2xf32>
// CHECK: %[[FX:.*]] = ropeattn.fft %[[PX]] : tensor<2x20x32x2xf32>
// CHECK: %[[SP:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[FS]], %[[FS]], %[[FX]], %[[FX]] : {{.*}}) outs(%{{.*}} : tensor<2x32x2xf32>)
// CHECK: %[[C:.*]] = ropeattn.fft %[[SP]] inverse : tensor<2x32x2xf32>
// CHECK: %[[DBH:.*]] = linalg.generic {{.*}} ins(%[[E]] : tensor<2x27xf32>) outs(%{{.*}} : tensor<2x27xf32>)
// CHECK: tensor.extract %[[C]]
// Shared bias: summed over every query head.
// CHECK: %[[DB:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[DBH]] : tensor<2x27xf32>) outs(%{{.*}} : tensor<27xf32>)
// CHECK: scf.yield %[[DQ]], %[[DK]], %[[DV]], %[[DB]] : tensor<2x16x4xf32>, tensor<1x12x4xf32>, tensor<1x12x3xf32>, tensor<27xf32>
// CHECK: default {
// CHECK: ropeattn.attention_grad %arg0, %arg1, %arg2, %arg3, %arg4 bias(%arg5) causal method exact
func.func @causal_gqa(%q: tensor<2x16x4xf32>, %k: tensor<1x12x4xf32>, %v: tensor<1x12x3xf32>, %o: tensor<2x16x3xf32>, %do: tensor<2x16x3xf32>, %b: tensor<27xf32>) -> (tensor<2x16x4xf32>, tensor<1x12x4xf32>, tensor<1x12x3xf32>, tensor<27xf32>) {
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, %do bias(%b) causal method toeplitz : (tensor<2x16x4xf32>, tensor<1x12x4xf32>, tensor<1x12x3xf32>, tensor<2x16x3xf32>, tensor<2x16x3xf32>, tensor<27xf32>) -> (tensor<2x16x4xf32>, tensor<1x12x4xf32>, tensor<1x12x3xf32>, tensor<27xf32>)
  return %dq, %dk, %dv, %db : tensor<2x16x4xf32>, tensor<1x12x4xf32>, tensor<1x12x3xf32>, tensor<27xf32>
}

// -----

// A per-head bias [Hq, L] with batch 3: d-bias sums the batch entries.
// CHECK-LABEL: func @per_head_batched
// CHECK: ropeattn.toeplitz_matmul {{.*}} transposed : (tensor<6x9xf64>, tensor<6x5x6xf64>) -> tensor<6x5x6xf64>
// CHECK: %[[D3:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0, 1], [2]] output_shape [3, 2, 9] : tensor<6x9xf64> into tensor<3x2x9xf64>
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[D3]] : tensor<3x2x9xf64>) outs(%{{.*}} : tensor<2x9xf64>)
func.func @per_head_batched(%q: tensor<3x2x5x2xf64>, %k: tensor<3x2x5x2xf64>, %v: tensor<3x2x5x1xf64>, %o: tensor<3x2x5x1xf64>, %do: tensor<3x2x5x1xf64>, %b: tensor<2x9xf64>) -> (tensor<3x2x5x2xf64>, tensor<3x2x5x2xf64>, tensor<3x2x5x1xf64>, tensor<2x9xf64>) {
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, %do bias(%b) method toeplitz : (tensor<3x2x5x2xf64>, tensor<3x2x5x2xf64>, tensor<3x2x5x1xf64>, tensor<3x2x5x1xf64>, tensor<3x2x5x1xf64>, tensor<2x9xf64>) -> (tensor<3x2x5x2xf64>, tensor<3x2x5x2xf64>, tensor<3x2x5x1xf64>, tensor<2x9xf64>)
  return %dq, %dk, %dv, %db : tensor<3x2x5x2xf64>, tensor<3x2x5x2xf64>, tensor<3x2x5x1xf64>, tensor<2x9xf64>
}

// -----

// Other methods are left alone.
// CHECK-LABEL: func @not_toeplitz
// CHECK-NOT: scf.index_switch
// CHECK: ropeattn.attention_grad {{.*}} bias(%arg5) :
func.func @not_toeplitz(%q: tensor<1x4x2xf32>, %k: tensor<1x4x2xf32>, %v: tensor<1x4x2xf32>, %o: tensor<1x4x2xf32>, %do: tensor<1x4x2xf32>, %b: tensor<7xf32>) -> (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>) {
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, %do bias(%b) : (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>) -> (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>)
  return %dq, %dk, %dv, %db : tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>
}

// -----

// CHECK-LABEL: func @fused_rope
// CHECK: method exact
func.func @fused_rope(%q: tensor<1x4x2xf32>, %k: tensor<1x4x2xf32>, %v: tensor<1x4x2xf32>, %o: tensor<1x4x2xf32>, %do: tensor<1x4x2xf32>, %b: tensor<7xf32>) -> (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>) {
  // expected-remark @+1 {{ropeattn-expand-toeplitz-attention: exact path: fused RoPE is still present (run ropeattn-prerotate first; f16/bf16 keep it fused)}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, %do bias(%b) rope <> method toeplitz : (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>) -> (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>)
  return %dq, %dk, %dv, %db : tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<7xf32>
}

// -----

func.func @half(%q: tensor<1x4x2xf16>, %k: tensor<1x4x2xf16>, %v: tensor<1x4x2xf16>, %o: tensor<1x4x2xf16>, %do: tensor<1x4x2xf16>, %b: tensor<7xf16>) -> (tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<7xf16>) {
  // expected-remark @+1 {{ropeattn-expand-toeplitz-attention: exact path: only f32 and f64 are supported yet}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, %do bias(%b) method toeplitz : (tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<7xf16>) -> (tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<7xf16>)
  return %dq, %dk, %dv, %db : tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<1x4x2xf16>, tensor<7xf16>
}

// -----

// D = 64, g = 1: R = 65 is within max-rank, but the backward's two padded
// [BHq, R·W, L, 2] transforms (1·65·65·2^17·4·4 B = 8450 MiB) exceed
// max-fft-mib = 1024.
func.func @too_big(%q: tensor<1x65536x64xf32>, %k: tensor<1x65536x64xf32>, %v: tensor<1x65536x64xf32>, %o: tensor<1x65536x64xf32>, %do: tensor<1x65536x64xf32>, %b: tensor<131071xf32>) -> (tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<131071xf32>) {
  // expected-remark @+1 {{ropeattn-expand-toeplitz-attention: exact path: an FFT buffer of the Toeplitz products needs 8450 MiB at degree 1, over max-fft-mib = 1024}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, %do bias(%b) method toeplitz : (tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<131071xf32>) -> (tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<131071xf32>)
  return %dq, %dk, %dv, %db : tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<131071xf32>
}
