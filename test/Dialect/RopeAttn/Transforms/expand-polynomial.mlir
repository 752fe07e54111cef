// RUN: rope-opt %s -ropeattn-expand-polynomial="epsilon=1e-3 max-degree=4 chunk=64" -split-input-file -verify-diagnostics | FileCheck %s

// Non-causal, D = 4, the default minimax family, ε = 1e-3, max-degree 4:
// one candidate per degree g = 1..4 (ranks C(4+g, g) = 5, 15, 35, 70), each
// fitted on the widest range [−B_g, B_g] whose proven bound meets ε, bisected
// upwards from the grid 2^(k/2) (docs/Polynomial.md §8): B = 0.0632,
// 0.2886, 0.6646, 1.1497 (checked against ε on a dense grid, and to fail ε
// when widened, by test/Unit/poly-candidate.test). The certificate
// β̂ = |s|·max‖q‖·max‖k‖ (s = 1/√4 = 0.5, times the rounding slack
// 1 + 2·(D + 2)·2^-24) is computed from the squared row norms; the switch runs
// the cheapest candidate with β̂ ≤ B_g, else the exact method.
// CHECK-DAG: #[[$MKW:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d2, d0)>
// CHECK-DAG: #[[$MJK:map[0-9]*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-LABEL: func @noncausal
// CHECK-DAG: %[[B1:.*]] = arith.constant 0.06320{{[0-9]*}} : f64
// CHECK-DAG: %[[B2:.*]] = arith.constant 0.2886{{[0-9]*}} : f64
// CHECK-DAG: %[[B3:.*]] = arith.constant 0.6646{{[0-9]*}} : f64
// CHECK-DAG: %[[B4:.*]] = arith.constant 1.1496{{[0-9]*}} : f64
// CHECK-DAG: %[[S:.*]] = arith.constant 0.50000035762786865 : f64
// CHECK: tensor.extract %{{.*}}[] : tensor<f32>
// CHECK: math.sqrt
// CHECK: %[[BETA:.*]] = arith.mulf %{{.*}}, %[[S]] : f64
// CHECK: arith.cmpf ole, %[[BETA]], %[[B4]] : f64
// CHECK: arith.cmpf ole, %[[BETA]], %[[B3]] : f64
// CHECK: arith.cmpf ole, %[[BETA]], %[[B2]] : f64
// CHECK: arith.cmpf ole, %[[BETA]], %[[B1]] : f64
// CHECK: %[[SEL:.*]] = arith.select
// CHECK: %[[R:.*]]:2 = scf.index_switch %[[SEL]] -> tensor<1x2x100x4xf32>, tensor<1x2x100xf32>
// CHECK: case 0 {
// Features are feature-major ([R, rows], `transposed`), which vectorizes.
// CHECK: ropeattn.poly_features %{{.*}} coefficients [{{.*}}] side key transposed scale(5.000000e-01) : tensor<?x4xf32> -> tensor<5x?xf32>
// CHECK: ropeattn.poly_features %{{.*}} side query transposed scale(5.000000e-01) : tensor<?x4xf32> -> tensor<5x?xf32>
// CHECK: case 1 {
// CHECK: -> tensor<15x?xf32>
// CHECK: case 2 {
// CHECK: -> tensor<35x?xf32>
// CHECK: case 3 {
// The products with the Dv + 1 = 5 value columns have those as their output
// rows (for ropeattn-vectorize-skinny-matmul): the key states [5, 70] +=
// Σ_j U(j, w)·Φ_Kᵀ(a, j) over blocks of 64 keys, then Nmᵀ [5, rows] =
// S·Φ_Qᵀ.
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c64
// CHECK: %[[PK:.*]] = ropeattn.poly_features {{.*}} side key transposed {{.*}} -> tensor<70x?xf32>
// CHECK: linalg.matmul indexing_maps = [#[[$MKW]], #[[$MJK]], #{{map[0-9]*}}] ins(%{{.*}}, %[[PK]] : tensor<?x5xf32>, tensor<70x?xf32>) outs(%{{.*}} : tensor<5x70xf32>)
// CHECK: %[[PQ:.*]] = ropeattn.poly_features {{.*}} side query transposed {{.*}} -> tensor<70x?xf32>
// CHECK: linalg.matmul ins(%{{.*}}, %[[PQ]] : tensor<5x70xf32>, tensor<70x?xf32>) outs(%{{.*}} : tensor<5x?xf32>)
// CHECK: default {
// CHECK: ropeattn.attention %{{.*}}, %{{.*}}, %{{.*}} method exact
// CHECK: return %[[R]]#0, %[[R]]#1
func.func @noncausal(%q: tensor<1x2x100x4xf32>, %k: tensor<1x1x120x4xf32>, %v: tensor<1x1x120x4xf32>) -> (tensor<1x2x100x4xf32>, tensor<1x2x100xf32>) {
  %o, %l = ropeattn.attention %q, %k, %v method polynomial : (tensor<1x2x100x4xf32>, tensor<1x1x120x4xf32>, tensor<1x1x120x4xf32>) -> (tensor<1x2x100x4xf32>, tensor<1x2x100xf32>)
  return %o, %l : tensor<1x2x100x4xf32>, tensor<1x2x100xf32>
}

// -----

// Causal: per query chunk, the prefix state of the fully visible key chunks
// (⌊(i0 + M − N + 1)/C⌋ of them) and exact exponentials for the rest.
// CHECK-LABEL: func @causal
// CHECK: case 0 {
// CHECK: scf.forall {{.*}} in (1, 2)
// CHECK: scf.for
// CHECK: scf.forall {{.*}} in (1, 2)
// CHECK: arith.divui %{{.*}}, %c64
// CHECK: math.exp
// CHECK: arith.select
func.func @causal(%q: tensor<1x100x4xf32>, %k: tensor<1x100x4xf32>) -> tensor<1x100x4xf32> {
  %o = ropeattn.attention %q, %k, %k causal method polynomial : (tensor<1x100x4xf32>, tensor<1x100x4xf32>, tensor<1x100x4xf32>) -> tensor<1x100x4xf32>
  return %o : tensor<1x100x4xf32>
}

// -----

// Declines, with the reason, and falls back to the exact method.
// CHECK-LABEL: func @declines
// CHECK: ropeattn.attention {{.*}} bias(%{{.*}}) method exact
// CHECK: ropeattn.attention {{.*}} method exact : (tensor<1x8x32768xf32>
// CHECK: ropeattn.attention %{{.*}}, %{{.*}}, %{{.*}} : (tensor<1x8x4xf32>
func.func @declines(%q: tensor<1x8x4xf32>, %b: tensor<15xf32>, %w: tensor<1x8x32768xf32>) -> (tensor<1x8x4xf32>, tensor<1x8x32768xf32>, tensor<1x8x4xf32>) {
  // expected-remark @+1 {{ropeattn-expand-polynomial: exact path: a relative bias needs the Toeplitz method (the bias does not factor through the features)}}
  %0 = ropeattn.attention %q, %q, %q bias(%b) method polynomial : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<15xf32>) -> tensor<1x8x4xf32>
  // D = 32768: already at g = 1 the rank C(32769, 1) exceeds max-rank.
  // expected-remark @+1 {{ropeattn-expand-polynomial: exact path: feature rank C(D + g, g) = 32769 for D = 32768, g = 1 exceeds max-rank = 32768}}
  %2 = ropeattn.attention %w, %w, %w method polynomial : (tensor<1x8x32768xf32>, tensor<1x8x32768xf32>, tensor<1x8x32768xf32>) -> tensor<1x8x32768xf32>
  // Not asked for: left alone.
  %4 = ropeattn.attention %q, %q, %q : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x4xf32>
  return %0, %2, %4 : tensor<1x8x4xf32>, tensor<1x8x32768xf32>, tensor<1x8x4xf32>
}

// -----

// bf16 with fused RoPE (which ropeattn-prerotate leaves fused for 16-bit
// types): the operands are extended to f32, rotated in f32 (queries at
// offset + M − N = 5 + 2), the polynomial path runs in f32 and the output is
// rounded to bf16 once; the logsumexp stays f32. The exact default keeps the
// op as it was.
// CHECK-LABEL: func @bf16_rope
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: ropeattn.rotary %{{.*}} rope <position_offset = 7> : tensor<1x10x4xf32>
// CHECK: ropeattn.rotary %{{.*}} rope <position_offset = 5> : tensor<1x12x4xf32>
// CHECK: scf.index_switch
// CHECK: case 0 {
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: default {
// CHECK: ropeattn.attention {{.*}} rope <position_offset = 5> method exact : (tensor<1x10x4xbf16>
func.func @bf16_rope(%q: tensor<1x10x4xbf16>, %k: tensor<1x12x4xbf16>) -> (tensor<1x10x4xbf16>, tensor<1x10xf32>) {
  %o, %l = ropeattn.attention %q, %k, %k rope <position_offset = 5> method polynomial : (tensor<1x10x4xbf16>, tensor<1x12x4xbf16>, tensor<1x12x4xbf16>) -> (tensor<1x10x4xbf16>, tensor<1x10xf32>)
  return %o, %l : tensor<1x10x4xbf16>, tensor<1x10xf32>
}

// -----

// The backward, causal with GQA (Hq = 2, Hk = 1): the same certificate and
// switch as the forward; per candidate the key states (forward scan), then
// the query phase per (key head, group of query chunks) -- here one chunk per
// group, (1, 2) -- looping over the group's query heads, the chunks and
// blocks of 64 rows: Φ_Q is generated once per block and read by Ẑ, by the
// query-side Jacobian (poly_features_grad after Wᵀ = KVᵀ·Gᵀ) and by the
// block's query-state term (the [Dv + 1, r] accumulator += Gsᵀ·Φ_Qᵀ), with
// the exact exponentials of the partly visible keys in between; then the
// reverse scan of the query states over the groups, and per (key head, key
// chunk) blocks of 64 keys: dv, dk through the key-side Jacobian plus the
// exact exponentials of the partly visible chunks.
// CHECK-LABEL: func @grad_causal_gqa
// CHECK: %[[R:.*]]:3 = scf.index_switch %{{.*}} -> tensor<2x100x4xf32>, tensor<1x120x4xf32>, tensor<1x120x3xf32>
// CHECK: case 0 {
// CHECK: scf.forall {{.*}} in (1, 2)
// CHECK: ropeattn.poly_features %{{.*}} side key transposed scale(5.000000e-01) : tensor<?x4xf32> -> tensor<5x?xf32>
// CHECK: %{{.*}}:4 = scf.forall {{.*}} in (1, 2) shared_outs({{.*}}) -> (tensor<2x100x4xf32>, tensor<2x100xf32>, tensor<2x100xf32>, tensor<1x3x4x5xf32>)
// CHECK: scf.for %{{.*}} = %c0 to %c2 step %c1 {{.*}} -> (tensor<2x?x4xf32>, tensor<2x?xf32>, tensor<2x?xf32>, tensor<4x5xf32>)
// CHECK: scf.for
// CHECK: scf.for {{.*}} step %c64
// CHECK: %[[PQ:.*]] = ropeattn.poly_features %{{.*}} side query transposed
// CHECK: linalg.matmul ins(%{{.*}}, %[[PQ]] : tensor<1x5xf32>, tensor<5x?xf32>)
// CHECK: ropeattn.poly_features_grad %{{.*}}, %{{.*}} coefficients [{{.*}}] side query transposed scale(5.000000e-01) : tensor<?x4xf32>, tensor<5x?xf32> -> tensor<4x?xf32>
// CHECK: math.exp
// CHECK: linalg.matmul indexing_maps = [#{{map[0-9]*}}, #{{map[0-9]*}}, #{{map[0-9]*}}] ins(%{{.*}}, %[[PQ]] : tensor<?x4xf32>, tensor<5x?xf32>) outs(%{{.*}} : tensor<4x5xf32>)
// CHECK-NOT: ropeattn.poly_features {{.*}} side query
// Reverse scan: the slots run from the last query chunk down (c = 2 − i).
// CHECK: scf.forall {{.*}} in (1)
// CHECK: arith.subi %c2
// CHECK: scf.forall {{.*}} in (1, 2)
// CHECK: arith.ceildivsi
// CHECK: scf.for {{.*}} step %c64
// CHECK: ropeattn.poly_features %{{.*}} side key transposed
// CHECK: ropeattn.poly_features_grad %{{.*}}, %{{.*}} coefficients [{{.*}}] side key transposed scale(5.000000e-01) : tensor<?x4xf32>, tensor<5x?xf32> -> tensor<4x?xf32>
// CHECK: arith.floordivsi
// CHECK: scf.for
// CHECK: math.exp
// CHECK: default {
// CHECK: ropeattn.attention_grad {{.*}} causal method exact
// CHECK: return %[[R]]#0, %[[R]]#1, %[[R]]#2
func.func @grad_causal_gqa(%q: tensor<2x100x4xf32>, %k: tensor<1x120x4xf32>, %v: tensor<1x120x3xf32>, %o: tensor<2x100x3xf32>, %do: tensor<2x100x3xf32>) -> (tensor<2x100x4xf32>, tensor<1x120x4xf32>, tensor<1x120x3xf32>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do causal method polynomial : (tensor<2x100x4xf32>, tensor<1x120x4xf32>, tensor<1x120x3xf32>, tensor<2x100x3xf32>, tensor<2x100x3xf32>) -> (tensor<2x100x4xf32>, tensor<1x120x4xf32>, tensor<1x120x3xf32>)
  return %dq, %dk, %dv : tensor<2x100x4xf32>, tensor<1x120x4xf32>, tensor<1x120x3xf32>
}

// -----

// The backward declines like the forward (here: a bias).
// CHECK-LABEL: func @grad_declines
// CHECK: ropeattn.attention_grad {{.*}} bias(%{{.*}}) method exact
func.func @grad_declines(%q: tensor<1x8x4xf32>, %b: tensor<15xf32>) -> (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<15xf32>) {
  // expected-remark @+1 {{ropeattn-expand-polynomial: exact path: a relative bias needs the Toeplitz method (the bias does not factor through the features)}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %q, %q, %q, %q bias(%b) method polynomial : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<15xf32>) -> (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<15xf32>)
  return %dq, %dk, %dv, %db : tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<15xf32>
}

// -----

// The certificate result: [β̂, g, δ_g, B(δ_g), −log(1 − δ_g)] of the case that
// ran, selected from per-candidate constants by the switch index (zeros for
// the exact default); the exact clone keeps only the other results.
// CHECK-LABEL: func @certificate
// CHECK: %[[R:.*]] = scf.index_switch %[[SEL:.*]] -> tensor<1x16x4xf32>
// CHECK: default {
// CHECK: %[[E:.*]], %{{.*}} = ropeattn.attention {{.*}} method exact : ({{.*}}) -> (tensor<1x16x4xf32>, tensor<5xf64>)
// CHECK: scf.yield %[[E]] : tensor<1x16x4xf32>
// CHECK: arith.cmpi eq, %[[SEL]], %c0
// CHECK: %[[C:.*]] = tensor.from_elements %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<5xf64>
// CHECK: return %[[R]], %[[C]]
func.func @certificate(%q: tensor<1x16x4xf32>) -> (tensor<1x16x4xf32>, tensor<5xf64>) {
  %o, %c = ropeattn.attention %q, %q, %q method polynomial : (tensor<1x16x4xf32>, tensor<1x16x4xf32>, tensor<1x16x4xf32>) -> (tensor<1x16x4xf32>, tensor<5xf64>)
  return %o, %c : tensor<1x16x4xf32>, tensor<5xf64>
}
