// ropeattn-lower-general-attention: the exact lowering of the general
// per-offset form to linalg (gather, materialized logits, softmax, P·V).
// RUN: rope-opt %s -split-input-file -verify-diagnostics -ropeattn-lower-general-attention | FileCheck %s

// GQA with Hq = 4, Hk = 2 (G = 2) and a batch of 3: query head row h of
// [B·Hq] reads kv row (h floordiv 4)·2 + (h mod 4) floordiv 2. N = 5, M = 7:
// W row u = i − j + M − 1 = i − j + 6. Support {(0, 1), (2, 0)}.
// CHECK-DAG: #[[WMAP:.*]] = affine_map<(d0, d1, d2, d3) -> (d1 - d2 + 6, d3)>
// CHECK-DAG: #[[KMAP:.*]] = affine_map<(d0, d1, d2, d3) -> ((d0 floordiv 4) * 2 + (d0 mod 4) floordiv 2, d2, d3)>
// CHECK-LABEL: func @gqa_causal
// CHECK-DAG: arith.constant dense<[0, 2]> : tensor<2xi64>
// CHECK-DAG: arith.constant dense<[1, 0]> : tensor<2xi64>
// L[h, i, j] = Σ_t q̂·W·k̂ (reduction over t).
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #[[WMAP]], #[[KMAP]], #{{.*}}], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%{{.*}}, %arg3, %{{.*}} : tensor<12x5x2xf32>, tensor<11x2xf32>, tensor<6x7x2xf32>) outs(%{{.*}} : tensor<12x5x7xf32>)
// Causal visibility j + N ≤ i + M, the row max, exp, the row sum.
// CHECK: arith.cmpi ule
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<12x5x3xf32>)
// CHECK: arith.divf
// CHECK: tensor.expand_shape {{.*}} : tensor<12x5x3xf32> into tensor<3x4x5x3xf32>
// CHECK: math.log
// CHECK: tensor.expand_shape {{.*}} : tensor<12x5xf32> into tensor<3x4x5xf32>
// CHECK-NOT: ropeattn.general_attention
func.func @gqa_causal(%q: tensor<3x4x5x4xf32>, %k: tensor<3x2x7x4xf32>, %v: tensor<3x2x7x3xf32>, %w: tensor<11x2xf32>) -> (tensor<3x4x5x3xf32>, tensor<3x4x5xf32>) {
  %o, %l = ropeattn.general_attention %q, %k, %v weights(%w) support [0, 1, 2, 0] causal : (tensor<3x4x5x4xf32>, tensor<3x2x7x4xf32>, tensor<3x2x7x3xf32>, tensor<11x2xf32>) -> (tensor<3x4x5x3xf32>, tensor<3x4x5xf32>)
  return %o, %l : tensor<3x4x5x3xf32>, tensor<3x4x5xf32>
}

// -----

// Per-head weights are read at (h mod Hq, u, t); any method hint is lowered
// exactly (the semantics are exact).
// CHECK-DAG: #[[PH:.*]] = affine_map<(d0, d1, d2, d3) -> (d0 mod 2, d1 - d2 + 3, d3)>
// CHECK-LABEL: func @per_head
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #[[PH]], {{.*}} ins(%{{.*}}, %arg1, %{{.*}} : tensor<2x4x1xf64>, tensor<2x7x1xf64>, tensor<2x4x1xf64>)
func.func @per_head(%q: tensor<2x4x2xf64>, %w: tensor<2x7x1xf64>) -> tensor<2x4x2xf64> {
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [1, 1] method toeplitz : (tensor<2x4x2xf64>, tensor<2x4x2xf64>, tensor<2x4x2xf64>, tensor<2x7x1xf64>) -> tensor<2x4x2xf64>
  return %o : tensor<2x4x2xf64>
}

// -----

// bf16 operands are computed in f32 and the output rounded once.
// CHECK-LABEL: func @bf16
// CHECK: arith.extf {{.*}} : bf16 to f32
// CHECK: math.exp {{.*}} : f32
// CHECK: arith.truncf {{.*}} : f32 to bf16
func.func @bf16(%q: tensor<1x3x2xbf16>, %w: tensor<5x1xbf16>) -> tensor<1x3x2xbf16> {
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 1] : (tensor<1x3x2xbf16>, tensor<1x3x2xbf16>, tensor<1x3x2xbf16>, tensor<5x1xbf16>) -> tensor<1x3x2xbf16>
  return %o : tensor<1x3x2xbf16>
}

// -----

func.func @dynamic(%q: tensor<1x?x2xf32>, %w: tensor<?x1xf32>) -> tensor<1x?x2xf32> {
  // expected-error @+1 {{ropeattn-lower-general-attention: dynamic shapes are not supported (the exact lowering needs static sizes)}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 1] : (tensor<1x?x2xf32>, tensor<1x?x2xf32>, tensor<1x?x2xf32>, tensor<?x1xf32>) -> tensor<1x?x2xf32>
  return %o : tensor<1x?x2xf32>
}
