// RUN: rope-opt %s -ropeattn-select-method="remarks=true" -split-input-file -verify-diagnostics | FileCheck %s
// RUN: rope-opt %s -ropeattn-select-method -split-input-file | FileCheck %s --check-prefix=QUIET

// The estimates, recomputed by hand (D = Dv = 16, minimax, ε = 1e-3: the
// least degree covering β̂ = 1 is g = 4, r = C(20, 4) = 4845, w = Dv + 1 = 17;
// its fitted range is B_4 = 1.1497, test/Unit/poly-candidate.test):
//  * N = M = 65536 causal: exact = N(N + 1)/2 · (2·32 + 10) = 1.589e11;
//    polynomial = [2N·r·4 (features) + 2·2N·r·17 (states, queries)
//    + N·256·74 (partial chunks)] / 0.8 = 3.17e10 → polynomial.
//  * N = M = 1024: exact = 1024²·74 = 7.76e7; polynomial =
//    (2048·4845·4 + 2·2·1024·4845·17)/0.8 = 4.71e8 → exact.
// CHECK-LABEL: func @select
// CHECK: ropeattn.attention {{.*}} causal method polynomial : (tensor<1x65536x16xf32>
// CHECK: ropeattn.attention {{.*}} method exact : (tensor<1x1024x16xf32>
// CHECK: ropeattn.attention {{.*}} bias({{.*}}) method exact
// CHECK: ropeattn.attention {{.*}} method exact : (tensor<1x1024x16xbf16>
// CHECK: ropeattn.attention {{.*}} causal rope <> method polynomial : (tensor<1x65536x16xbf16>
// An explicit method is honoured, even where the model disagrees.
// CHECK: ropeattn.attention {{.*}} method exact : (tensor<1x65536x16xf32>
// CHECK: ropeattn.attention_grad {{.*}} method polynomial
// QUIET: causal method polynomial
func.func @select(%q: tensor<1x65536x16xf32>, %q2: tensor<1x1024x16xf32>, %b: tensor<2047xf32>, %h: tensor<1x1024x16xbf16>, %hb: tensor<1x65536x16xbf16>) -> (tensor<1x65536x16xf32>, tensor<1x1024x16xf32>, tensor<1x1024x16xf32>, tensor<1x1024x16xbf16>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>) {
  // expected-remark @+1 {{ropeattn-select-method: polynomial: estimated 3.17e+10 flops at degree 4 (rank 4845, β̂ ≤ 1.15) vs 1.59e+11 exact}}
  %0 = ropeattn.attention %q, %q, %q causal : (tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>) -> tensor<1x65536x16xf32>
  // expected-remark @+1 {{ropeattn-select-method: exact: estimated 4.71e+08 flops at degree 4 (rank 4845, β̂ ≤ 1.15) vs 7.76e+07 exact}}
  %1 = ropeattn.attention %q2, %q2, %q2 : (tensor<1x1024x16xf32>, tensor<1x1024x16xf32>, tensor<1x1024x16xf32>) -> tensor<1x1024x16xf32>
  // With a bias the choice is exact or toeplitz (select-method-toeplitz.mlir):
  // at D = 16 the degree covering β̂ = 1 (g = 4) has rank C(20, 4) = 4845 >
  // toeplitz-max-rank = 1024.
  // expected-remark @+1 {{ropeattn-select-method: exact: a relative bias; no degree ≤ 4 within toeplitz-max-rank 1024 covers assumed-beta 1.00}}
  %2 = ropeattn.attention %q2, %q2, %q2 bias(%b) : (tensor<1x1024x16xf32>, tensor<1x1024x16xf32>, tensor<1x1024x16xf32>, tensor<2047xf32>) -> tensor<1x1024x16xf32>
  // expected-remark @+1 {{ropeattn-select-method: exact: estimated 4.71e+08 flops at degree 4 (rank 4845, β̂ ≤ 1.15) vs 7.76e+07 exact}}
  %3 = ropeattn.attention %h, %h, %h : (tensor<1x1024x16xbf16>, tensor<1x1024x16xbf16>, tensor<1x1024x16xbf16>) -> tensor<1x1024x16xbf16>
  // bf16 with fused RoPE: the polynomial path computes in f32.
  // expected-remark @+1 {{ropeattn-select-method: polynomial}}
  %5 = ropeattn.attention %hb, %hb, %hb causal rope <> : (tensor<1x65536x16xbf16>, tensor<1x65536x16xbf16>, tensor<1x65536x16xbf16>) -> tensor<1x65536x16xbf16>
  %4 = ropeattn.attention %q, %q, %q method exact : (tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>) -> tensor<1x65536x16xf32>
  // expected-remark @+1 {{ropeattn-select-method: polynomial}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q causal : (tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>) -> (tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>)
  return %0, %1, %2, %3, %4, %dq : tensor<1x65536x16xf32>, tensor<1x1024x16xf32>, tensor<1x1024x16xf32>, tensor<1x1024x16xbf16>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>
}

// -----

// A logit bound no degree covers: exact. At D = 64 already g = 3 exceeds the
// default max-rank (C(67, 3) = 47905 > 32768), and g ≤ 2 covers only
// β̂ ≤ 0.289 at ε = 1e-3.
// CHECK-LABEL: func @uncovered
// CHECK: method exact
func.func @uncovered(%q: tensor<1x65536x64xf32>) -> tensor<1x65536x64xf32> {
  // expected-remark @+1 {{ropeattn-select-method: exact: no degree ≤ 6 within max-rank 32768 covers assumed-beta 1 at epsilon 0.001}}
  %0 = ropeattn.attention %q, %q, %q : (tensor<1x65536x64xf32>, tensor<1x65536x64xf32>, tensor<1x65536x64xf32>) -> tensor<1x65536x64xf32>
  return %0 : tensor<1x65536x64xf32>
}
