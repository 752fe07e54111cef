// ropeattn-select-method with a bias (exact or toeplitz) and for the general
// per-offset form (exact or toeplitz): docs/Spec.md §16.4.
// RUN: rope-opt %s -ropeattn-select-method="remarks=true" -split-input-file -verify-diagnostics | FileCheck %s
// RUN: not rope-opt %s -ropeattn-select-method="toeplitz-efficiency=0" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: ropeattn-select-method: epsilon, poly-efficiency, toeplitz-efficiency, general-exact-efficiency, chunk, max-rank, toeplitz-max-rank, max-terms must be > 0

// Defaults: minimax, ε = 1e-3, assumed-beta 1: degree ranges B_1..B_4 =
// 0.0625, 0.25, 0.5, 1 (poly-approx-dump), so g = 4; e_T = 0.18.
// L' = 2^⌈log2(N + M − 1)⌉, F = 5 L' log2 L', T(c) = ⌈c/2⌉(2F + 6L') + F.
//
// Bias, N = M = 65536 causal, D = Dv = 4: r = C(8, 4) = 70, W = 5, r·W = 350;
// L' = 131072, F = 11141120, 2F + 6L' = 23068672, T(350) = 175·23068672 +
// F = 4048158720; features 131072·70·4 = 36700160; X 65536·350 = 22937600;
// contraction 2·65536·350 = 45875200; total 4153671680 / 0.18 = 2.31e10.
// Exact: 65536·65537/2·(2·8 + 10) = 5.58e10 → toeplitz.
// Bias, N = M = 4096 causal: L' = 8192, F = 532480, 2F + 6L' = 1114112,
// T(350) = 195502080; + 8192·280 + 4096·350 + 2·4096·350 = 202096640
// / 0.18 = 1.12e9; exact 4096·4097/2·26 = 2.18e8 → exact.
// CHECK-LABEL: func @bias
// CHECK: ropeattn.attention {{.*}} causal method toeplitz : (tensor<1x65536x4xf32>
// CHECK: ropeattn.attention {{.*}} causal method exact : (tensor<1x4096x4xf32>
// CHECK: ropeattn.attention {{.*}} method exact : (tensor<1x64x4xf16>
// CHECK: ropeattn.attention_grad {{.*}} method exact
func.func @bias(%q: tensor<1x65536x4xf32>, %b: tensor<131071xf32>, %q2: tensor<1x4096x4xf32>, %b2: tensor<8191xf32>, %h: tensor<1x64x4xf16>, %hb: tensor<127xf16>) -> (tensor<1x65536x4xf32>, tensor<1x4096x4xf32>, tensor<1x64x4xf16>, tensor<1x4096x4xf32>) {
  // expected-remark @+1 {{ropeattn-select-method: toeplitz: estimated 2.31e+10 flops by toeplitz at degree 4 (rank 70, β̂ ≤ 1.15, FFT length 131072) vs 5.58e+10 exact}}
  %0 = ropeattn.attention %q, %q, %q bias(%b) causal : (tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<131071xf32>) -> tensor<1x65536x4xf32>
  // expected-remark @+1 {{ropeattn-select-method: exact: estimated 1.12e+09 flops by toeplitz at degree 4 (rank 70, β̂ ≤ 1.15, FFT length 8192) vs 2.18e+08 exact}}
  %1 = ropeattn.attention %q2, %q2, %q2 bias(%b2) causal : (tensor<1x4096x4xf32>, tensor<1x4096x4xf32>, tensor<1x4096x4xf32>, tensor<8191xf32>) -> tensor<1x4096x4xf32>
  // expected-remark @+1 {{ropeattn-select-method: exact: a relative bias (toeplitz needs static f32 or f64 operands)}}
  %2 = ropeattn.attention %h, %h, %h bias(%hb) : (tensor<1x64x4xf16>, tensor<1x64x4xf16>, tensor<1x64x4xf16>, tensor<127xf16>) -> tensor<1x64x4xf16>
  // No Toeplitz backward: exact.
  // expected-remark @+1 {{ropeattn-select-method: exact: a relative bias (the polynomial features cannot carry it)}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q2, %q2, %q2, %q2, %q2 bias(%b2) causal : (tensor<1x4096x4xf32>, tensor<1x4096x4xf32>, tensor<1x4096x4xf32>, tensor<1x4096x4xf32>, tensor<1x4096x4xf32>, tensor<8191xf32>) -> (tensor<1x4096x4xf32>, tensor<1x4096x4xf32>, tensor<1x4096x4xf32>, tensor<8191xf32>)
  return %0, %1, %2, %dq : tensor<1x65536x4xf32>, tensor<1x4096x4xf32>, tensor<1x64x4xf16>, tensor<1x4096x4xf32>
}

// -----

// General form (exact lowering: e_GE = general-exact-efficiency = 0.01).
// N = M = 65536 causal, D = Dv = 4, |S| = 1: |M| = C(5, 4) = 5;
// monomials (65536 + 65536 + 131071)·5·(4 + 1) = 6553575; X 65536·5·5 =
// 1638400; products 5·T(5) = 5·(3·23068672 + 11141120) = 401735680;
// contraction 3·65536·25 = 4915200; total 414842855 / 0.18 = 2.30e9.
// Exact: 65536·65537/2·(3·1 + 10 + 2·4) / 0.01 = 4.51e12 → toeplitz.
// N = M = 64, |S| = 4, not causal: |M| = C(8, 4) = 70, L' = 128,
// F = 5·128·7 = 4480, 2F + 6L' = 9728, T(5) = 3·9728 + 4480 = 33664;
// (255·70·8 + 64·70·5 + 70·33664 + 3·64·350) / 0.18 = 2588880 / 0.18 =
// 1.44e7; exact 4096·(12 + 10 + 8) / 0.01 = 1.23e7 → exact.
// |S| = 31: g = 1 (|M| = 32) does not cover β̂ = 1 and g = 2 has
// C(33, 2) = 528 > max-terms = 512 → exact.
// CHECK-LABEL: func @general
// CHECK: ropeattn.general_attention {{.*}} causal method toeplitz
// CHECK: ropeattn.general_attention {{.*}} method exact
// CHECK: ropeattn.general_attention {{.*}} method exact
// CHECK: ropeattn.general_attention {{.*}} method toeplitz :
func.func @general(%q: tensor<1x65536x4xf32>, %w: tensor<131071x1xf32>, %q2: tensor<1x64x4xf32>, %w2: tensor<127x4xf32>, %q3: tensor<1x4x6xf32>, %w3: tensor<7x31xf32>) -> (tensor<1x65536x4xf32>, tensor<1x64x4xf32>, tensor<1x4x6xf32>, tensor<1x64x4xf32>) {
  // expected-remark @+1 {{ropeattn-select-method: toeplitz: estimated 2.30e+09 flops by toeplitz at degree 4 (|M| = C(1 + 4, 4) = 5, β̂ ≤ 1.15, FFT length 131072) vs 4.51e+12 exact}}
  %0 = ropeattn.general_attention %q, %q, %q weights(%w) support [0, 1] causal : (tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<131071x1xf32>) -> tensor<1x65536x4xf32>
  // expected-remark @+1 {{ropeattn-select-method: exact: estimated 1.44e+07 flops by toeplitz at degree 4 (|M| = C(4 + 4, 4) = 70, β̂ ≤ 1.15, FFT length 128) vs 1.23e+07 exact}}
  %1 = ropeattn.general_attention %q2, %q2, %q2 weights(%w2) support [0, 0, 1, 1, 2, 2, 3, 3] : (tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<127x4xf32>) -> tensor<1x64x4xf32>
  // expected-remark @+1 {{ropeattn-select-method: exact: no degree ≤ 4 with |M| = C(|S| + g, g) ≤ max-terms 512 covers assumed-beta 1.00 (|S| = 31)}}
  %2 = ropeattn.general_attention %q3, %q3, %q3 weights(%w3) support [0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 1, 0, 1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 2, 0, 2, 1, 2, 2, 2, 3, 2, 4, 2, 5, 3, 0, 3, 1, 3, 2, 3, 3, 3, 4, 3, 5, 4, 0, 4, 1, 4, 2, 4, 3, 4, 4, 4, 5, 5, 0] : (tensor<1x4x6xf32>, tensor<1x4x6xf32>, tensor<1x4x6xf32>, tensor<7x31xf32>) -> tensor<1x4x6xf32>
  // An explicit method is honoured (no remark), even where the model disagrees.
  %3 = ropeattn.general_attention %q2, %q2, %q2 weights(%w2) support [0, 0, 1, 1, 2, 2, 3, 3] method toeplitz : (tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<127x4xf32>) -> tensor<1x64x4xf32>
  return %0, %1, %2, %3 : tensor<1x65536x4xf32>, tensor<1x64x4xf32>, tensor<1x4x6xf32>, tensor<1x64x4xf32>
}

// -----

// general_attention_grad (docs/Spec.md §16.4, the backward formulas; same
// degree choice: g = 4). Tb = 1 (shared table), W = 5, Dv = 4.
// N = M = 65536 causal, |S| = 1, |M| = 5: the forward's 414842855 (above)
// + 2·Nq·Dv 524288 + Nq·W 327680 + 5·Nq·|M|·W 8192000 + |M|·T(5) 401735680
// + 2·M·|M|·(W + Dv) 5898240 + |M|·(2W·F + 8W·L' + F) = 5·(10·11141120 +
// 40·131072 + 11141120) = 638976000 + (65536 + 65536 + 131071)·1·5·(4 + 2)
// = 7864290; total 1478361033 / 0.18 = 8.21e9. Exact: 2147516416 visible
// pairs·(15·1 + 15 + 4·4) / 0.01 = 9.88e12 → toeplitz.
// N = M = 64, |S| = 4, not causal, |M| = 70: 2588880 + 512 + 320 + 112000 +
// 70·33664 + 2·64·70·9 + 70·(10·4480 + 40·128 + 4480) + 255·4·70·18 =
// 10232032 / 0.18 = 5.68e7; exact 4096·(60 + 15 + 16) / 0.01 = 3.73e7 →
// exact.
// CHECK-LABEL: func @general_grad
// CHECK: ropeattn.general_attention_grad {{.*}} causal method toeplitz
// CHECK: ropeattn.general_attention_grad {{.*}} method exact
// CHECK: ropeattn.general_attention_grad {{.*}} method toeplitz :
func.func @general_grad(%q: tensor<1x65536x4xf32>, %w: tensor<131071x1xf32>, %q2: tensor<1x64x4xf32>, %w2: tensor<127x4xf32>) -> (tensor<1x65536x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>) {
  // expected-remark @+1 {{ropeattn-select-method: toeplitz: estimated 8.21e+09 flops by toeplitz at degree 4 (|M| = C(1 + 4, 4) = 5, β̂ ≤ 1.15, FFT length 131072) vs 9.88e+12 exact}}
  %0:4 = ropeattn.general_attention_grad %q, %q, %q, %q, %q weights(%w) support [0, 1] causal : (tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<131071x1xf32>) -> (tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<1x65536x4xf32>, tensor<131071x1xf32>)
  // expected-remark @+1 {{ropeattn-select-method: exact: estimated 5.68e+07 flops by toeplitz at degree 4 (|M| = C(4 + 4, 4) = 70, β̂ ≤ 1.15, FFT length 128) vs 3.73e+07 exact}}
  %1:4 = ropeattn.general_attention_grad %q2, %q2, %q2, %q2, %q2 weights(%w2) support [0, 0, 1, 1, 2, 2, 3, 3] : (tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<127x4xf32>) -> (tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<127x4xf32>)
  // An explicit method is honoured (no remark).
  %2:4 = ropeattn.general_attention_grad %q2, %q2, %q2, %q2, %q2 weights(%w2) support [0, 0, 1, 1, 2, 2, 3, 3] method toeplitz : (tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<127x4xf32>) -> (tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>, tensor<127x4xf32>)
  return %0#0, %1#0, %2#0 : tensor<1x65536x4xf32>, tensor<1x64x4xf32>, tensor<1x64x4xf32>
}
