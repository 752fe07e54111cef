// Folds and canonicalization patterns of the ropeattn dialect.
// RUN: rope-opt %s -canonicalize -split-input-file | FileCheck %s

// rotary_dim = 0 rotates nothing: the op folds to its input.
// CHECK-LABEL: func @rotary_zero_dim
// CHECK-SAME: (%[[X:.*]]: tensor<4x16x8xf32>
// CHECK-NOT: ropeattn.rotary
// CHECK: return %[[X]]
func.func @rotary_zero_dim(%x: tensor<4x16x8xf32>) -> tensor<4x16x8xf32> {
  %0 = ropeattn.rotary %x rope <rotary_dim = 0, base = 5.0e5> : tensor<4x16x8xf32>
  return %0 : tensor<4x16x8xf32>
}

// -----

// A head dimension of 0 with the default rotary_dim (= D) also rotates nothing.
// CHECK-LABEL: func @rotary_empty_head
// CHECK-NOT: ropeattn.rotary
func.func @rotary_empty_head(%x: tensor<4x16x0xf32>) -> tensor<4x16x0xf32> {
  %0 = ropeattn.rotary %x : tensor<4x16x0xf32>
  return %0 : tensor<4x16x0xf32>
}

// -----

// Any rotated dimension keeps the op, positions operand included.
// CHECK-LABEL: func @rotary_kept
// CHECK: ropeattn.rotary %{{.*}} rope <rotary_dim = 2>
// CHECK: ropeattn.rotary %{{.*}} positions
func.func @rotary_kept(%x: tensor<4x16x8xf32>, %p: tensor<16xi64>) -> (tensor<4x16x8xf32>, tensor<4x16x8xf32>) {
  %0 = ropeattn.rotary %x rope <rotary_dim = 2> : tensor<4x16x8xf32>
  %1 = ropeattn.rotary %x positions(%p : tensor<16xi64>) : tensor<4x16x8xf32>
  return %0, %1 : tensor<4x16x8xf32>, tensor<4x16x8xf32>
}

// -----

// Dynamic head dimension, default rotary_dim: unknown, so no fold.
// CHECK-LABEL: func @rotary_dynamic_kept
// CHECK: ropeattn.rotary
func.func @rotary_dynamic_kept(%x: tensor<4x16x?xf32>) -> tensor<4x16x?xf32> {
  %0 = ropeattn.rotary %x : tensor<4x16x?xf32>
  return %0 : tensor<4x16x?xf32>
}

// -----

// A fused RoPE that rotates nothing is dropped; so is an explicit `auto`.
// CHECK-LABEL: func @attention_identity_rope
// CHECK: ropeattn.attention %{{.*}}, %{{.*}}, %{{.*}} causal :
func.func @attention_identity_rope(%q: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %o = ropeattn.attention %q, %q, %q causal rope <rotary_dim = 0> method auto : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// CHECK-LABEL: func @attention_rope_kept
// CHECK: ropeattn.attention {{.*}} rope <> method exact :
func.func @attention_rope_kept(%q: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %o = ropeattn.attention %q, %q, %q rope <> method exact : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// CHECK-LABEL: func @attention_grad_identity_rope
// CHECK: ropeattn.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} :
func.func @attention_grad_identity_rope(%q: tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q rope <rotary_dim = 0> method auto : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>)
  return %dq, %dk, %dv : tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>
}

// -----

// The ops are pure: unused results disappear.
// CHECK-LABEL: func @dead_attention
// CHECK-NEXT: return
func.func @dead_attention(%q: tensor<2x8x4xf32>) {
  %o = ropeattn.attention %q, %q, %q : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %r = ropeattn.rotary %q : tensor<2x8x4xf32>
  return
}

// -----

// poly_features: scale(1.0) is the default and is dropped; other scales stay.
// CHECK-LABEL: func @poly_features_unit_scale
// CHECK: ropeattn.poly_features %{{.*}} coefficients [1.000000e+00, 1.000000e+00] side key : tensor<4x3xf32>
// CHECK: ropeattn.poly_features %{{.*}} coefficients [1.000000e+00, 1.000000e+00] side query scale(-1.000000e+00) : tensor<4x3xf32>
func.func @poly_features_unit_scale(%x: tensor<4x3xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side key scale(1.0) : tensor<4x3xf32> -> tensor<4x4xf32>
  %1 = ropeattn.poly_features %x coefficients [1.0, 1.0] side query scale(-1.0) : tensor<4x3xf32> -> tensor<4x4xf32>
  return %0, %1 : tensor<4x4xf32>, tensor<4x4xf32>
}
