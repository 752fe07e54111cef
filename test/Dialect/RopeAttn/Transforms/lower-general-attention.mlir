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

// -----

// general_attention_grad (docs/Spec.md §9): GQA Hq = 4, Hk = 2, batch 2,
// N = 5, M = 7, causal, shared weights [11, 2], support {(0, 1), (2, 0)}.
// P is recomputed (no logsumexp): max, exp, sum, divide; dP = dO·vᵀ (kv row
// of h), Δ = Σ_j P·dP, dℓ = P ∘ (dP − Δ).
// dq̂[h, i, t] = s·Σ_j dℓ[h, i, j]·W[i − j + 6, t]·k̂[κ(h), j, t] (dims h, i, t, j):
// CHECK-DAG: #[[DQW:.*]] = affine_map<(d0, d1, d2, d3) -> (d1 - d3 + 6, d2)>
// CHECK-DAG: #[[DQK:.*]] = affine_map<(d0, d1, d2, d3) -> ((d0 floordiv 4) * 2 + (d0 mod 4) floordiv 2, d3, d2)>
// dk̂[h, j, t] = s·Σ_i dℓ[h, i, j]·W[i − j + 6, t]·q̂[h, i, t] (dims h, j, t, i):
// CHECK-DAG: #[[DKL:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3, d1)>
// CHECK-DAG: #[[DKW:.*]] = affine_map<(d0, d1, d2, d3) -> (d3 - d1 + 6, d2)>
// The support scatter Σ_{g, t: cols[t] = a} src[r·G + g, x, t] (dims r, x, a, g, t):
// CHECK-DAG: #[[SCAT:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d3, d1, d4)>
// dv[r, j, c] = Σ_{g, i} P[r, g, i, j]·dO[r, g, i, c]:
// CHECK-DAG: #[[DVP:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d3, d4, d1)>
// Shared table: dW[u, t] = Σ_h dWh[h, u, t]:
// CHECK-DAG: #[[DWSUM:.*]] = affine_map<(d0, d1, d2) -> (d2, d0, d1)>
// CHECK-LABEL: func @grad_gqa_causal
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #[[DQW]], #[[DQK]], #{{.*}}], {{.*}} outs(%{{.*}} : tensor<8x5x2xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[DKL]], #[[DKW]], {{.*}} outs(%{{.*}} : tensor<8x7x2xf32>)
// CHECK: tensor.expand_shape {{.*}} : tensor<8x5x2xf32> into tensor<8x1x5x2xf32>
// CHECK: linalg.generic {indexing_maps = [#[[SCAT]], {{.*}} ins(%{{.*}}, %{{.*}} : tensor<8x1x5x2xf32>, tensor<2xi64>) outs(%{{.*}} : tensor<8x5x4xf32>)
// CHECK: tensor.expand_shape {{.*}} : tensor<8x7x2xf32> into tensor<4x2x7x2xf32>
// CHECK: linalg.generic {indexing_maps = [#[[SCAT]], {{.*}} ins(%{{.*}}, %{{.*}} : tensor<4x2x7x2xf32>, tensor<2xi64>) outs(%{{.*}} : tensor<4x7x4xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[DVP]], {{.*}} outs(%{{.*}} : tensor<4x7x3xf32>)
// dWh[h, u, t], binned by offset (j = i + M − 1 − u), then summed over h.
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<8x11x2xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[DWSUM]], {{.*}} outs(%{{.*}} : tensor<11x2xf32>)
// CHECK-NOT: ropeattn.general_attention_grad
func.func @grad_gqa_causal(%q: tensor<2x4x5x4xf32>, %k: tensor<2x2x7x4xf32>, %v: tensor<2x2x7x3xf32>, %o: tensor<2x4x5x3xf32>, %do: tensor<2x4x5x3xf32>, %w: tensor<11x2xf32>) -> (tensor<2x4x5x4xf32>, tensor<2x2x7x4xf32>, tensor<2x2x7x3xf32>, tensor<11x2xf32>) {
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %k, %v, %o, %do weights(%w) support [0, 1, 2, 0] causal : (tensor<2x4x5x4xf32>, tensor<2x2x7x4xf32>, tensor<2x2x7x3xf32>, tensor<2x4x5x3xf32>, tensor<2x4x5x3xf32>, tensor<11x2xf32>) -> (tensor<2x4x5x4xf32>, tensor<2x2x7x4xf32>, tensor<2x2x7x3xf32>, tensor<11x2xf32>)
  return %dq, %dk, %dv, %dw : tensor<2x4x5x4xf32>, tensor<2x2x7x4xf32>, tensor<2x2x7x3xf32>, tensor<11x2xf32>
}

// -----

// With the logsumexp operand P = e^{s·L − lse} (0 where lse = −∞: no max,
// no sum); per-head weights [Hq, L, |S|]: dW summed over the batch entries of
// each head ([B, Hq, L, |S|] → [Hq, L, |S|]).
// CHECK-DAG: #[[BATCHSUM:.*]] = affine_map<(d0, d1, d2, d3) -> (d3, d0, d1, d2)>
// CHECK-LABEL: func @grad_lse_per_head
// CHECK-NOT: arith.maximumf
// CHECK: arith.subf
// CHECK-NEXT: math.exp
// CHECK: arith.cmpf ogt
// CHECK: tensor.expand_shape {{.*}} : tensor<6x7x1xf64> into tensor<3x2x7x1xf64>
// CHECK: linalg.generic {indexing_maps = [#[[BATCHSUM]], {{.*}} outs(%{{.*}} : tensor<2x7x1xf64>)
func.func @grad_lse_per_head(%q: tensor<3x2x4x2xf64>, %o: tensor<3x2x4x2xf64>, %l: tensor<3x2x4xf64>, %w: tensor<2x7x1xf64>) -> (tensor<3x2x4x2xf64>, tensor<2x7x1xf64>) {
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %q, %o, %o logsumexp(%l) weights(%w) support [1, 0] : (tensor<3x2x4x2xf64>, tensor<3x2x4x2xf64>, tensor<3x2x4x2xf64>, tensor<3x2x4x2xf64>, tensor<3x2x4x2xf64>, tensor<3x2x4xf64>, tensor<2x7x1xf64>) -> (tensor<3x2x4x2xf64>, tensor<3x2x4x2xf64>, tensor<3x2x4x2xf64>, tensor<2x7x1xf64>)
  return %dq, %dw : tensor<3x2x4x2xf64>, tensor<2x7x1xf64>
}

// -----

// f16 operands: computed in f32, each gradient rounded once.
// CHECK-LABEL: func @grad_f16
// CHECK: arith.extf {{.*}} : f16 to f32
// CHECK: math.exp {{.*}} : f32
// CHECK-COUNT-4: arith.truncf {{.*}} : f32 to f16
func.func @grad_f16(%q: tensor<1x3x2xf16>, %w: tensor<5x1xf16>) -> (tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<5x1xf16>) {
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %q, %q, %q weights(%w) support [0, 1] : (tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<5x1xf16>) -> (tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<5x1xf16>)
  return %dq, %dk, %dv, %dw : tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<1x3x2xf16>, tensor<5x1xf16>
}

// -----

func.func @grad_dynamic(%q: tensor<1x?x2xf32>, %w: tensor<?x1xf32>) -> tensor<1x?x2xf32> {
  // expected-error @+1 {{ropeattn-lower-general-attention: dynamic shapes are not supported (the exact lowering needs static sizes)}}
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %q, %q, %q weights(%w) support [0, 1] : (tensor<1x?x2xf32>, tensor<1x?x2xf32>, tensor<1x?x2xf32>, tensor<1x?x2xf32>, tensor<1x?x2xf32>, tensor<?x1xf32>) -> (tensor<1x?x2xf32>, tensor<1x?x2xf32>, tensor<1x?x2xf32>, tensor<?x1xf32>)
  return %dq : tensor<1x?x2xf32>
}
