// Round-trip of every ropeattn op and attribute form: custom syntax, generic
// syntax and bytecode must all print back to the same custom form.
// RUN: rope-opt %s | rope-opt | FileCheck %s
// RUN: rope-opt %s --mlir-print-op-generic | rope-opt | FileCheck %s
// RUN: rope-opt %s -emit-bytecode | rope-opt | FileCheck %s

// CHECK-LABEL: func @rotary_default
func.func @rotary_default(%x: tensor<2x8x128x64xf32>) -> tensor<2x8x128x64xf32> {
  // CHECK: ropeattn.rotary %{{.*}} : tensor<2x8x128x64xf32>
  %0 = ropeattn.rotary %x : tensor<2x8x128x64xf32>
  return %0 : tensor<2x8x128x64xf32>
}

// Defaults written out are normalized away: base 10000, half, offset 0.
// CHECK-LABEL: func @rotary_explicit_defaults
func.func @rotary_explicit_defaults(%x: tensor<128x64xf32>) -> tensor<128x64xf32> {
  // CHECK: ropeattn.rotary %{{.*}} rope <> : tensor<128x64xf32>
  %0 = ropeattn.rotary %x rope <base = 10000.0, layout = half, position_offset = 0> : tensor<128x64xf32>
  return %0 : tensor<128x64xf32>
}

// CHECK-LABEL: func @rotary_all_options
// CHECK-SAME: (%[[X:.*]]: tensor<4x128x64xbf16>, %[[P:.*]]: tensor<128xi64>)
func.func @rotary_all_options(%x: tensor<4x128x64xbf16>, %p: tensor<128xi64>) -> tensor<4x128x64xbf16> {
  // CHECK: ropeattn.rotary %[[X]] positions(%[[P]] : tensor<128xi64>) inverse
  // CHECK-SAME: rope <base = 5.000000e+05, layout = interleaved, rotary_dim = 32, position_offset = -7>
  // CHECK-SAME: : tensor<4x128x64xbf16>
  %0 = ropeattn.rotary %x positions(%p : tensor<128xi64>) inverse rope <base = 5.0e5, layout = interleaved, rotary_dim = 32, position_offset = -7> : tensor<4x128x64xbf16>
  return %0 : tensor<4x128x64xbf16>
}

// Index positions, rank 2, f16, float literal base.
// CHECK-LABEL: func @rotary_index_positions
func.func @rotary_index_positions(%x: tensor<16x8xf16>, %p: tensor<16xindex>) -> tensor<16x8xf16> {
  // CHECK: ropeattn.rotary %{{.*}} positions(%{{.*}} : tensor<16xindex>) rope <base = 1.000000e+06> : tensor<16x8xf16>
  %0 = ropeattn.rotary %x positions(%p : tensor<16xindex>) rope <base = 1.0e6> : tensor<16x8xf16>
  return %0 : tensor<16x8xf16>
}

// Dynamic sizes are accepted where static checks cannot apply.
// CHECK-LABEL: func @rotary_dynamic
func.func @rotary_dynamic(%x: tensor<?x?x?xf64>, %p: tensor<?xi64>) -> tensor<?x?x?xf64> {
  // CHECK: ropeattn.rotary %{{.*}} positions(%{{.*}} : tensor<?xi64>) rope <rotary_dim = 8> : tensor<?x?x?xf64>
  %0 = ropeattn.rotary %x positions(%p : tensor<?xi64>) rope <rotary_dim = 8> : tensor<?x?x?xf64>
  return %0 : tensor<?x?x?xf64>
}

// CHECK-LABEL: func @attention_minimal
func.func @attention_minimal(%q: tensor<8x128x64xf32>, %k: tensor<8x128x64xf32>, %v: tensor<8x128x64xf32>) -> tensor<8x128x64xf32> {
  // CHECK: ropeattn.attention %{{.*}}, %{{.*}}, %{{.*}} : (tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>) -> tensor<8x128x64xf32>
  %o = ropeattn.attention %q, %k, %v : (tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>) -> tensor<8x128x64xf32>
  return %o : tensor<8x128x64xf32>
}

// GQA (8 query heads over 2 kv heads), batch dims, N != M, Dv != D, every
// attribute, bias shared across heads, logsumexp result.
// CHECK-LABEL: func @attention_everything
func.func @attention_everything(%q: tensor<3x8x16x64xf32>, %k: tensor<3x2x24x64xf32>, %v: tensor<3x2x24x32xf32>, %b: tensor<39xf32>) -> (tensor<3x8x16x32xf32>, tensor<3x8x16xf32>) {
  // CHECK: %[[O:.*]], %[[L:.*]] = ropeattn.attention %{{.*}}, %{{.*}}, %{{.*}} bias(%{{.*}}) causal scale(1.250000e-01)
  // CHECK-SAME: rope <layout = interleaved, rotary_dim = 32> method polynomial
  // CHECK-SAME: : (tensor<3x8x16x64xf32>, tensor<3x2x24x64xf32>, tensor<3x2x24x32xf32>, tensor<39xf32>) -> (tensor<3x8x16x32xf32>, tensor<3x8x16xf32>)
  %o, %lse = ropeattn.attention %q, %k, %v bias(%b) causal scale(0.125) rope <layout = interleaved, rotary_dim = 32> method polynomial : (tensor<3x8x16x64xf32>, tensor<3x2x24x64xf32>, tensor<3x2x24x32xf32>, tensor<39xf32>) -> (tensor<3x8x16x32xf32>, tensor<3x8x16xf32>)
  return %o, %lse : tensor<3x8x16x32xf32>, tensor<3x8x16xf32>
}

// Per-head bias, MQA (one kv head), toeplitz hint.
// CHECK-LABEL: func @attention_per_head_bias
func.func @attention_per_head_bias(%q: tensor<4x32x16xf32>, %k: tensor<1x32x16xf32>, %v: tensor<1x32x16xf32>, %b: tensor<4x63xf32>) -> tensor<4x32x16xf32> {
  // CHECK: ropeattn.attention {{.*}} bias(%{{.*}}) method toeplitz : ({{.*}}, tensor<4x63xf32>) -> tensor<4x32x16xf32>
  %o = ropeattn.attention %q, %k, %v bias(%b) method toeplitz : (tensor<4x32x16xf32>, tensor<1x32x16xf32>, tensor<1x32x16xf32>, tensor<4x63xf32>) -> tensor<4x32x16xf32>
  return %o : tensor<4x32x16xf32>
}

// Half precision inputs keep their statistics in f32; f64 in f64.
// CHECK-LABEL: func @attention_lse_types
func.func @attention_lse_types(%q: tensor<2x8x8xf16>, %d: tensor<2x8x8xf64>) -> (tensor<2x8xf32>, tensor<2x8xf64>) {
  // CHECK: -> (tensor<2x8x8xf16>, tensor<2x8xf32>)
  %o, %l = ropeattn.attention %q, %q, %q method exact : (tensor<2x8x8xf16>, tensor<2x8x8xf16>, tensor<2x8x8xf16>) -> (tensor<2x8x8xf16>, tensor<2x8xf32>)
  // CHECK: -> (tensor<2x8x8xf64>, tensor<2x8xf64>)
  %o2, %l2 = ropeattn.attention %d, %d, %d : (tensor<2x8x8xf64>, tensor<2x8x8xf64>, tensor<2x8x8xf64>) -> (tensor<2x8x8xf64>, tensor<2x8xf64>)
  return %l, %l2 : tensor<2x8xf32>, tensor<2x8xf64>
}

// A zero-length key sequence is valid (every output row is 0, lse is -inf).
// CHECK-LABEL: func @attention_empty_keys
func.func @attention_empty_keys(%q: tensor<2x4x8xf32>, %k: tensor<2x0x8xf32>, %v: tensor<2x0x8xf32>) -> tensor<2x4x8xf32> {
  // CHECK: ropeattn.attention {{.*}} : (tensor<2x4x8xf32>, tensor<2x0x8xf32>, tensor<2x0x8xf32>) -> tensor<2x4x8xf32>
  %o = ropeattn.attention %q, %k, %v : (tensor<2x4x8xf32>, tensor<2x0x8xf32>, tensor<2x0x8xf32>) -> tensor<2x4x8xf32>
  return %o : tensor<2x4x8xf32>
}

// N = M = 0 with a bias: the table is empty (max(N + M - 1, 0) = 0); odd D
// is fine when rotary_dim says which dims rotate.
// CHECK-LABEL: func @attention_all_empty
func.func @attention_all_empty(%q: tensor<2x0x5xf32>, %b: tensor<0xf32>) -> tensor<2x0x5xf32> {
  // CHECK: ropeattn.attention {{.*}} bias(%{{.*}}) rope <rotary_dim = 4> : (tensor<2x0x5xf32>, tensor<2x0x5xf32>, tensor<2x0x5xf32>, tensor<0xf32>) -> tensor<2x0x5xf32>
  %o = ropeattn.attention %q, %q, %q bias(%b) rope <rotary_dim = 4> : (tensor<2x0x5xf32>, tensor<2x0x5xf32>, tensor<2x0x5xf32>, tensor<0xf32>) -> tensor<2x0x5xf32>
  return %o : tensor<2x0x5xf32>
}

// CHECK-LABEL: func @attention_dynamic
func.func @attention_dynamic(%q: tensor<?x?x?x64xf32>, %k: tensor<?x?x?x64xf32>, %v: tensor<?x?x?x?xf32>, %b: tensor<?xf32>) -> tensor<?x?x?x?xf32> {
  // CHECK: ropeattn.attention {{.*}} bias(%{{.*}}) causal rope <> : (tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x?xf32>, tensor<?xf32>) -> tensor<?x?x?x?xf32>
  %o = ropeattn.attention %q, %k, %v bias(%b) causal rope <> : (tensor<?x?x?x64xf32>, tensor<?x?x?x64xf32>, tensor<?x?x?x?xf32>, tensor<?xf32>) -> tensor<?x?x?x?xf32>
  return %o : tensor<?x?x?x?xf32>
}

// The certificate result ([β̂, g, δ, output bound, lse bound]), with and
// without logsumexp: the rank-1 f64 type at the end is the certificate.
// CHECK-LABEL: func @attention_certificate
func.func @attention_certificate(%q: tensor<2x16x8xf32>) -> (tensor<5xf64>, tensor<2x16xf32>, tensor<5xf64>) {
  // CHECK: %{{.*}}, %[[C0:.*]] = ropeattn.attention {{.*}} method polynomial : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<5xf64>)
  %o, %c = ropeattn.attention %q, %q, %q method polynomial : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<5xf64>)
  // CHECK: %{{.*}}, %[[L:.*]], %[[C1:.*]] = ropeattn.attention {{.*}} causal : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<2x16xf32>, tensor<5xf64>)
  %o2, %l, %c2 = ropeattn.attention %q, %q, %q causal : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<2x16xf32>, tensor<5xf64>)
  // CHECK: return %[[C0]], %[[L]], %[[C1]]
  return %c, %l, %c2 : tensor<5xf64>, tensor<2x16xf32>, tensor<5xf64>
}

// CHECK-LABEL: func @attention_grad_minimal
func.func @attention_grad_minimal(%q: tensor<2x16x8xf32>, %o: tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) {
  // CHECK: ropeattn.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %o, %o : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>)
  return %dq, %dk, %dv : tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>
}

// CHECK-LABEL: func @attention_grad_everything
func.func @attention_grad_everything(%q: tensor<3x8x16x64xf32>, %k: tensor<3x2x24x64xf32>, %v: tensor<3x2x24x32xf32>, %o: tensor<3x8x16x32xf32>, %do: tensor<3x8x16x32xf32>, %lse: tensor<3x8x16xf32>, %b: tensor<8x39xf32>) -> (tensor<3x8x16x64xf32>, tensor<3x2x24x64xf32>, tensor<3x2x24x32xf32>, tensor<8x39xf32>) {
  // CHECK: ropeattn.attention_grad {{.*}} logsumexp(%{{.*}}) bias(%{{.*}}) causal scale(5.000000e-01) rope <base = 5.000000e+05> method exact
  // CHECK-SAME: -> (tensor<3x8x16x64xf32>, tensor<3x2x24x64xf32>, tensor<3x2x24x32xf32>, tensor<8x39xf32>)
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %k, %v, %o, %do logsumexp(%lse) bias(%b) causal scale(0.5) rope <base = 500000.0> method exact : (tensor<3x8x16x64xf32>, tensor<3x2x24x64xf32>, tensor<3x2x24x32xf32>, tensor<3x8x16x32xf32>, tensor<3x8x16x32xf32>, tensor<3x8x16xf32>, tensor<8x39xf32>) -> (tensor<3x8x16x64xf32>, tensor<3x2x24x64xf32>, tensor<3x2x24x32xf32>, tensor<8x39xf32>)
  return %dq, %dk, %dv, %db : tensor<3x8x16x64xf32>, tensor<3x2x24x64xf32>, tensor<3x2x24x32xf32>, tensor<8x39xf32>
}

// Only the bias (no logsumexp): operand segments must still round-trip.
// CHECK-LABEL: func @attention_grad_bias_only
func.func @attention_grad_bias_only(%q: tensor<2x16x8xf32>, %b: tensor<31xf32>) -> tensor<31xf32> {
  // CHECK: ropeattn.attention_grad {{.*}} bias(%{{.*}}) :
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %q, %q, %q, %q bias(%b) : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<31xf32>) -> (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<31xf32>)
  return %db : tensor<31xf32>
}

// The general form: |S| = 2 support pairs, shared weights.
// CHECK-LABEL: func @general_attention
func.func @general_attention(%q: tensor<4x64x2xf32>, %k: tensor<4x64x2xf32>, %v: tensor<4x64x8xf32>, %w: tensor<127x2xf32>) -> tensor<4x64x8xf32> {
  // CHECK: ropeattn.general_attention %{{.*}}, %{{.*}}, %{{.*}} weights(%{{.*}}) support [0, 0, 1, 1] :
  %o = ropeattn.general_attention %q, %k, %v weights(%w) support [0, 0, 1, 1] : (tensor<4x64x2xf32>, tensor<4x64x2xf32>, tensor<4x64x8xf32>, tensor<127x2xf32>) -> tensor<4x64x8xf32>
  return %o : tensor<4x64x8xf32>
}

// Per-head weights, causal, GQA, scale, toeplitz hint, logsumexp.
// CHECK-LABEL: func @general_attention_everything
func.func @general_attention_everything(%q: tensor<2x4x16x4xf32>, %k: tensor<2x2x16x4xf32>, %v: tensor<2x2x16x8xf32>, %w: tensor<4x31x3xf32>) -> (tensor<2x4x16x8xf32>, tensor<2x4x16xf32>) {
  // CHECK: ropeattn.general_attention {{.*}} support [0, 1, 1, 0, 3, 3] causal scale(2.500000e-01) method toeplitz :
  %o, %l = ropeattn.general_attention %q, %k, %v weights(%w) support [0, 1, 1, 0, 3, 3] causal scale(0.25) method toeplitz : (tensor<2x4x16x4xf32>, tensor<2x2x16x4xf32>, tensor<2x2x16x8xf32>, tensor<4x31x3xf32>) -> (tensor<2x4x16x8xf32>, tensor<2x4x16xf32>)
  return %o, %l : tensor<2x4x16x8xf32>, tensor<2x4x16xf32>
}

// CHECK-LABEL: func @general_attention_grad
func.func @general_attention_grad(%q: tensor<4x64x2xf32>, %v: tensor<4x64x8xf32>, %lse: tensor<4x64xf32>, %w: tensor<127x2xf32>) -> tensor<127x2xf32> {
  // CHECK: ropeattn.general_attention_grad {{.*}} logsumexp(%{{.*}}) weights(%{{.*}}) support [0, 0, 1, 1] causal :
  %dq, %dk, %dv, %dw = ropeattn.general_attention_grad %q, %q, %v, %v, %v logsumexp(%lse) weights(%w) support [0, 0, 1, 1] causal : (tensor<4x64x2xf32>, tensor<4x64x2xf32>, tensor<4x64x8xf32>, tensor<4x64x8xf32>, tensor<4x64x8xf32>, tensor<4x64xf32>, tensor<127x2xf32>) -> (tensor<4x64x2xf32>, tensor<4x64x2xf32>, tensor<4x64x8xf32>, tensor<127x2xf32>)
  return %dw : tensor<127x2xf32>
}

// The attribute also stands on its own (e.g. in a discardable attribute).
// CHECK-LABEL: func @rope_attr_standalone
// CHECK-SAME: attributes {my.rope = #ropeattn.rope<layout = interleaved, position_offset = 3>}
func.func @rope_attr_standalone() attributes {my.rope = #ropeattn.rope<layout = interleaved, position_offset = 3>} {
  return
}

// ropeattn.poly_features: R = C(D + g, g) features in the accumulation type.
// CHECK-LABEL: func @poly_features_query
func.func @poly_features_query(%x: tensor<8x128x4xbf16>) -> tensor<8x128x15xf32> {
  // CHECK: ropeattn.poly_features %{{.*}} coefficients [1.000000e+00, 1.000000e+00, 5.000000e-01] side query scale(1.250000e-01) : tensor<8x128x4xbf16> -> tensor<8x128x15xf32>
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0, 0.5] side query scale(0.125) : tensor<8x128x4xbf16> -> tensor<8x128x15xf32>
  return %0 : tensor<8x128x15xf32>
}

// ropeattn.poly_features_grad: Jᵀw, plain and feature-major.
// CHECK-LABEL: func @poly_features_grad
func.func @poly_features_grad(%x: tensor<8x128x4xbf16>, %w: tensor<8x128x15xf32>, %wt: tensor<8x15x128xf32>) -> (tensor<8x128x4xf32>, tensor<8x4x128xf32>) {
  // CHECK: ropeattn.poly_features_grad %{{.*}}, %{{.*}} coefficients [1.000000e+00, 1.000000e+00, 5.000000e-01] side query scale(1.250000e-01) : tensor<8x128x4xbf16>, tensor<8x128x15xf32> -> tensor<8x128x4xf32>
  %0 = ropeattn.poly_features_grad %x, %w coefficients [1.0, 1.0, 0.5] side query scale(0.125) : tensor<8x128x4xbf16>, tensor<8x128x15xf32> -> tensor<8x128x4xf32>
  // CHECK: ropeattn.poly_features_grad %{{.*}}, %{{.*}} coefficients [1.000000e+00, 1.000000e+00, 5.000000e-01] side key transposed : tensor<8x128x4xbf16>, tensor<8x15x128xf32> -> tensor<8x4x128xf32>
  %1 = ropeattn.poly_features_grad %x, %wt coefficients [1.0, 1.0, 0.5] side key transposed : tensor<8x128x4xbf16>, tensor<8x15x128xf32> -> tensor<8x4x128xf32>
  return %0, %1 : tensor<8x128x4xf32>, tensor<8x4x128xf32>
}

// Key side, f64 stays f64, no scale, dynamic batch and N (D is static).
// CHECK-LABEL: func @poly_features_key_dynamic
func.func @poly_features_key_dynamic(%x: tensor<?x2x?x3xf64>) -> tensor<?x2x?x20xf64> {
  // CHECK: ropeattn.poly_features %{{.*}} coefficients [-1.000000e+00, 0.000000e+00, 2.500000e-01, 3.000000e+00] side key : tensor<?x2x?x3xf64> -> tensor<?x2x?x20xf64>
  %0 = ropeattn.poly_features %x coefficients [-1.0, 0.0, 0.25, 3.0] side key : tensor<?x2x?x3xf64> -> tensor<?x2x?x20xf64>
  return %0 : tensor<?x2x?x20xf64>
}

// Degree 0 (one feature) and D = 0 (only the degree-0 feature: R = 1).
// CHECK-LABEL: func @poly_features_degenerate
func.func @poly_features_degenerate(%x: tensor<5x7xf16>, %y: tensor<5x0xf32>) -> (tensor<5x1xf32>, tensor<5x1xf32>) {
  // CHECK: ropeattn.poly_features %{{.*}} coefficients [2.000000e+00] side key : tensor<5x7xf16> -> tensor<5x1xf32>
  %0 = ropeattn.poly_features %x coefficients [2.0] side key : tensor<5x7xf16> -> tensor<5x1xf32>
  // CHECK: ropeattn.poly_features %{{.*}} coefficients [1.000000e+00, 1.000000e+00, 1.000000e+00] side query scale(-2.000000e+00) : tensor<5x0xf32> -> tensor<5x1xf32>
  %1 = ropeattn.poly_features %y coefficients [1.0, 1.0, 1.0] side query scale(-2.0) : tensor<5x0xf32> -> tensor<5x1xf32>
  return %0, %1 : tensor<5x1xf32>, tensor<5x1xf32>
}

// Coefficients print exactly (shortest round-trip form), so a polynomial and
// its certified bound survive a round trip through text.
// CHECK-LABEL: func @poly_features_exact_coefficients
// CHECK: coefficients [1.000000e+00, 0.16666666666666666, 0.1000000000000001]
func.func @poly_features_exact_coefficients(%x: tensor<4x2xf32>) -> tensor<4x6xf32> {
  %p = ropeattn.poly_features %x coefficients [1.0, 0.16666666666666666, 0.1000000000000001] side key : tensor<4x2xf32> -> tensor<4x6xf32>
  return %p : tensor<4x6xf32>
}

// The feature-major layout: [B.., R, N].
// CHECK-LABEL: func @poly_features_transposed
// CHECK: ropeattn.poly_features %{{.*}} coefficients [1.000000e+00, 2.000000e+00] side query transposed : tensor<3x7x2xf32> -> tensor<3x3x7xf32>
func.func @poly_features_transposed(%x: tensor<3x7x2xf32>) -> tensor<3x3x7xf32> {
  %p = ropeattn.poly_features %x coefficients [1.0, 2.0] side query transposed : tensor<3x7x2xf32> -> tensor<3x3x7xf32>
  return %p : tensor<3x3x7xf32>
}
