// RUN: rope-opt %s -convert-ropeattn-to-linalg="block-q=32 block-k=64" -canonicalize -cse -split-input-file -verify-diagnostics | FileCheck %s

// rotary, GPT-J layout, partial (r = 4 of 8), inverse, bf16: extended to f32
// once, angles p·θ_a in f64 with p = 3 + n and θ_a = base^(−2a/r)
// = exp(a · (−2·ln(10000)/4)), negated for the inverse, cos/sin rounded to
// f32; pairs (2a, 2a+1) are stride-2 slices; one truncation at the end.
// CHECK-LABEL: func @rotary_interleaved
// CHECK-DAG: %[[COEF:.*]] = arith.constant -4.6051701859880918 : f64
// CHECK-DAG: %[[OFF:.*]] = arith.constant 3 : i64
// CHECK: %[[X:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x16x8xbf16>)
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: %[[TAB:.*]]:2 = linalg.generic
// CHECK: arith.addi %{{.*}}, %[[OFF]] : i64
// CHECK: arith.mulf %{{.*}}, %[[COEF]] : f64
// CHECK: math.exp %{{.*}} : f64
// CHECK: %[[ANG:.*]] = arith.negf %{{.*}} : f64
// CHECK: math.cos %[[ANG]] : f64
// CHECK: math.sin %[[ANG]] : f64
// CHECK: %[[U:.*]] = tensor.extract_slice %[[X]][0, 0, 0] [2, 16, 2] [1, 1, 2]
// CHECK: %[[W:.*]] = tensor.extract_slice %[[X]][0, 0, 1] [2, 16, 2] [1, 1, 2]
// CHECK: %[[ROT:.*]]:2 = linalg.generic {{.*}} ins(%[[U]], %[[W]], %[[TAB]]#0, %[[TAB]]#1
// CHECK: %[[Y1:.*]] = tensor.insert_slice %[[ROT]]#0 into %[[X]][0, 0, 0] [2, 16, 2] [1, 1, 2]
// CHECK: %[[Y2:.*]] = tensor.insert_slice %[[ROT]]#1 into %[[Y1]][0, 0, 1] [2, 16, 2] [1, 1, 2]
// CHECK: linalg.generic {{.*}} ins(%[[Y2]] : tensor<2x16x8xf32>) outs(%{{.*}} : tensor<2x16x8xbf16>)
// CHECK: arith.truncf %{{.*}} : f32 to bf16
func.func @rotary_interleaved(%x: tensor<2x16x8xbf16>) -> tensor<2x16x8xbf16> {
  %0 = ropeattn.rotary %x inverse rope <layout = interleaved, rotary_dim = 4, position_offset = 3> : tensor<2x16x8xbf16>
  return %0 : tensor<2x16x8xbf16>
}

// -----

// Forward, batch 2, GQA (2 query heads on 1 kv head), N = 100, M = 130,
// causal.
// Batch and heads collapse to [B·H, N, D]; q is pre-scaled by 1/√16; an
// scf.forall runs over (B·Hq = 4, ⌈100/32⌉ = 4) query blocks; the kv head of
// query head bh is (bh / 2)·1 + (bh mod 2) / 2; an scf.for walks key blocks of
// 64 up to min(i0 + rows + (M − N), M) keys with the running max, sum and
// accumulator; S = Qs·Kᵀ is a matmul with transposed B; mask and row max are
// one pass; exp and row sum are one pass; acc' = α·acc + P·V.
// CHECK-LABEL: func @forward
// CHECK-DAG: %[[C30:.*]] = arith.constant 30 : index
// CHECK-DAG: %[[SCALE:.*]] = arith.constant 2.500000e-01 : f32
// CHECK: arith.mulf %{{.*}}, %[[SCALE]] : f32
// CHECK: %[[R:.*]]:2 = scf.forall (%[[BH:.*]], %[[QB:.*]]) in (4, 4) shared_outs(%[[O:.*]] = %{{.*}}, %[[L:.*]] = %{{.*}}) -> (tensor<4x100x8xf32>, tensor<4x100xf32>)
// CHECK: %[[I0:.*]] = arith.muli %[[QB]], %c32
// CHECK: arith.divui %[[BH]], %c2
// CHECK: %[[LIM:.*]] = arith.addi %{{.*}}, %[[C30]] : index
// CHECK: %[[KEND:.*]] = arith.maxsi
// CHECK: %[[LOOP:.*]]:3 = scf.for %[[J0:.*]] = %c0 to %[[KEND]] step %c64 iter_args(%[[M:.*]] = %{{.*}}, %[[SUM:.*]] = %{{.*}}, %[[ACC:.*]] = %{{.*}}) -> (tensor<?xf32>, tensor<?xf32>, tensor<?x8xf32>)
// CHECK: %[[S:.*]] = linalg.matmul indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}] ins(%{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<?x16xf32>)
// Key blocks wholly visible from the block's first row (j0 + cols ≤ i0 + 31)
// only need the row max; the others are masked (j > i + 30 → −∞) in the same
// pass as the max.
// CHECK: %[[VIS:.*]] = arith.cmpi sle
// CHECK: %[[MASKED:.*]]:2 = scf.if %[[VIS]] -> (tensor<?x?xf32>, tensor<?xf32>)
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[S]] : tensor<?x?xf32>)
// CHECK: arith.maxnumf {{.*}} fastmath<fast>
// CHECK: } else {
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} outs(%[[S]], %{{.*}} : tensor<?x?xf32>, tensor<?xf32>)
// CHECK: arith.cmpi sgt
// CHECK: arith.maxnumf {{.*}} fastmath<fast>
// CHECK: math.exp
// CHECK: %[[P:.*]]:2 = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[MASKED]]#1 : tensor<?xf32>) outs(%[[MASKED]]#0, %{{.*}} : tensor<?x?xf32>, tensor<?xf32>)
// CHECK: math.exp
// CHECK: arith.addf {{.*}} fastmath<fast>
// CHECK: linalg.matmul{{.*}} ins(%[[P]]#0, %{{.*}} : tensor<?x?xf32>, tensor<?x8xf32>)
// CHECK: scf.yield
// Finalize: O = acc/ℓ (0 when ℓ = 0), lse = m + log ℓ (−∞ when ℓ = 0).
// CHECK: arith.divf
// CHECK: math.log
// CHECK: scf.forall.in_parallel
// CHECK: tensor.parallel_insert_slice %{{.*}} into %[[O]][%[[BH]], %[[I0]], 0]
// CHECK: tensor.parallel_insert_slice %{{.*}} into %[[L]][%[[BH]], %[[I0]]]
// CHECK: tensor.expand_shape %[[R]]#0 {{\[\[}}0, 1], [2], [3]] output_shape [2, 2, 100, 8]
func.func @forward(%q: tensor<2x2x100x16xf32>, %k: tensor<2x1x130x16xf32>, %v: tensor<2x1x130x8xf32>) -> (tensor<2x2x100x8xf32>, tensor<2x2x100xf32>) {
  %o, %l = ropeattn.attention %q, %k, %v causal : (tensor<2x2x100x16xf32>, tensor<2x1x130x16xf32>, tensor<2x1x130x8xf32>) -> (tensor<2x2x100x8xf32>, tensor<2x2x100xf32>)
  return %o, %l : tensor<2x2x100x8xf32>, tensor<2x2x100xf32>
}

// -----

// Bias: the logits pass reads bias[i − j + M − 1] (per head: [h, ·]).
// CHECK-LABEL: func @bias
// CHECK-DAG: %[[MM1:.*]] = arith.constant 11 : index
// CHECK: scf.forall
// CHECK: %[[H:.*]] = arith.remui
// CHECK: linalg.generic
// CHECK: %[[D:.*]] = arith.subi
// CHECK: %[[AT:.*]] = arith.addi %[[D]], %[[MM1]] : index
// CHECK: tensor.extract %{{.*}}[%[[H]], %[[AT]]] : tensor<2x31xf32>
func.func @bias(%q: tensor<2x20x4xf32>, %k: tensor<2x12x4xf32>, %b: tensor<2x31xf32>) -> tensor<2x20x4xf32> {
  %o = ropeattn.attention %q, %k, %k bias(%b) : (tensor<2x20x4xf32>, tensor<2x12x4xf32>, tensor<2x12x4xf32>, tensor<2x31xf32>) -> tensor<2x20x4xf32>
  return %o : tensor<2x20x4xf32>
}

// -----

// Backward, GQA (4 query heads on 2 kv heads), N = 40, M = 70, causal:
// Δ = rowsum(dO∘O); without a logsumexp operand the forward kernel computes
// it first (the first scf.forall); then an scf.forall over the B·Hk = 2 kv
// heads; per key block (scf.for, step 64), per query head of the group
// (scf.for 0..G = 2) and per query block from the first row that sees the key
// block (causal: max(j0 − (M − N), 0)): P = exp(S − lse), dV += Pᵀ·dO, dP =
// dO·Vᵀ, dS = P∘(dP − Δ), dK += dSᵀ·Qs, dQ += dS·K; dq is scaled by s = 1/2 at
// the end.
// CHECK-LABEL: func @backward
// CHECK-DAG: %[[SHIFT:.*]] = arith.constant 30 : index
// CHECK-DAG: %[[HALF:.*]] = arith.constant 5.000000e-01 : f32
// CHECK: scf.forall ({{.*}}) in (4, 2)
// CHECK: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: %[[G:.*]]:3 = scf.forall (%[[U:.*]]) in (2) shared_outs({{.*}}) -> (tensor<4x40x4xf32>, tensor<2x70x4xf32>, tensor<2x70x4xf32>)
// CHECK: scf.for %[[J0:.*]] = %c0 to %c70 step %c64
// CHECK: %[[D:.*]] = arith.subi %[[J0]], %[[SHIFT]]
// CHECK: %[[START:.*]] = arith.maxsi %[[D]], %c0
// CHECK: scf.for %{{.*}} = %c0 to %c2 step %c1
// CHECK: scf.for %{{.*}} = %{{.*}} to %c40 step %c32
// CHECK: math.exp
// CHECK: linalg.matmul indexing_maps = [#[[TA:.*]], #{{.*}}, #{{.*}}] ins(%{{.*}}, %{{.*}} : tensor<?x?xf32>, tensor<?x4xf32>)
// CHECK-COUNT-2: linalg.matmul indexing_maps
// CHECK: linalg.matmul ins(
// CHECK: scf.forall.in_parallel
// CHECK: arith.mulf %{{.*}}, %[[HALF]] : f32
func.func @backward(%q: tensor<4x40x4xf32>, %k: tensor<2x70x4xf32>, %o: tensor<4x40x4xf32>) -> (tensor<4x40x4xf32>, tensor<2x70x4xf32>, tensor<2x70x4xf32>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %k, %o, %o causal : (tensor<4x40x4xf32>, tensor<2x70x4xf32>, tensor<2x70x4xf32>, tensor<4x40x4xf32>, tensor<4x40x4xf32>) -> (tensor<4x40x4xf32>, tensor<2x70x4xf32>, tensor<2x70x4xf32>)
  return %dq, %dk, %dv : tensor<4x40x4xf32>, tensor<2x70x4xf32>, tensor<2x70x4xf32>
}

// -----

// No key at all: constants (o = 0, lse = −∞), no loops.
// CHECK-LABEL: func @no_keys
// CHECK-NOT: scf.forall
// CHECK-DAG: linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<2x5x8xf32>)
// CHECK-DAG: %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK-DAG: linalg.fill ins(%[[NINF]] : f32) outs(%{{.*}} : tensor<2x5xf32>)
func.func @no_keys(%q: tensor<2x5x8xf32>, %k: tensor<1x0x8xf32>) -> (tensor<2x5x8xf32>, tensor<2x5xf32>) {
  %o, %l = ropeattn.attention %q, %k, %k : (tensor<2x5x8xf32>, tensor<1x0x8xf32>, tensor<1x0x8xf32>) -> (tensor<2x5x8xf32>, tensor<2x5xf32>)
  return %o, %l : tensor<2x5x8xf32>, tensor<2x5xf32>
}

// -----

func.func @dynamic(%q: tensor<2x?x8xf32>) -> tensor<2x?x8xf32> {
  // expected-error @+1 {{convert-ropeattn-to-linalg: cannot lower 'ropeattn.attention' with dynamic shapes yet; all sizes must be static}}
  %o = ropeattn.attention %q, %q, %q : (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>) -> tensor<2x?x8xf32>
  return %o : tensor<2x?x8xf32>
}

// -----

func.func @general(%q: tensor<2x8x4xf32>, %w: tensor<15x1xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{convert-ropeattn-to-linalg: 'ropeattn.general_attention' is not lowered by this pass: run ropeattn-lower-general-attention first (rope-lower-to-cpu does)}}
  %o = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 0] : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<15x1xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

func.func @zero_head_dim(%q: tensor<2x8x0xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{convert-ropeattn-to-linalg: cannot lower 'ropeattn.attention' with a zero head dimension (D = 0 or Dv = 0) and keys}}
  %o = ropeattn.attention %q, %q, %v : (tensor<2x8x0xf32>, tensor<2x8x0xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}
