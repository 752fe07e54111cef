// The exact lowering of ropeattn.rotary with xPos (docs/Spec.md §3.1, §5):
// the factor exp(σ·p·ln(ζ_a)/B), ζ_a = (a·(2/r) + γ)·(1/(1 + γ)), is formed
// in f64 and folded into the cos/sin tables before the rounding to f32.
// σ = +1 for `side query`, −1 for `side key`; `inverse` flips it, `transpose`
// keeps it (both negate the angle).
// RUN: rope-opt %s -convert-ropeattn-to-linalg -canonicalize -cse -split-input-file | FileCheck %s

// Query side, forward: σ/B = +1/512; r = 4, γ = 0.5: 2/r = 0.5, 1/(1 + γ) = 2/3.
// CHECK-LABEL: func @query_forward
// CHECK-DAG: %[[RATE:.*]] = arith.constant 0.001953125 : f64
// CHECK-DAG: %[[HALF:.*]] = arith.constant 5.000000e-01 : f64
// CHECK-DAG: %[[INV:.*]] = arith.constant 0.66666666666666663 : f64
// CHECK: linalg.generic
// CHECK: %[[P:.*]] = arith.sitofp %{{.*}} : i64 to f64
// CHECK: %[[A:.*]] = arith.sitofp %{{.*}} : i64 to f64
// CHECK: %[[ANG:.*]] = arith.mulf %[[P]], %{{.*}} : f64
// CHECK-NOT: arith.negf
// CHECK: %[[C:.*]] = math.cos %[[ANG]] : f64
// CHECK: %[[S:.*]] = math.sin %[[ANG]] : f64
// CHECK: %[[T:.*]] = arith.mulf %[[A]], %[[HALF]] : f64
// CHECK: %[[U:.*]] = arith.addf %[[T]], %[[HALF]] : f64
// CHECK: %[[Z:.*]] = arith.mulf %[[U]], %[[INV]] : f64
// CHECK: %[[L:.*]] = math.log %[[Z]] : f64
// CHECK: %[[R:.*]] = arith.mulf %[[L]], %[[RATE]] : f64
// CHECK: %[[E:.*]] = arith.mulf %[[P]], %[[R]] : f64
// CHECK: %[[F:.*]] = math.exp %[[E]] : f64
// CHECK: %[[CF:.*]] = arith.mulf %[[C]], %[[F]] : f64
// CHECK: %[[SF:.*]] = arith.mulf %[[S]], %[[F]] : f64
// CHECK: arith.truncf %[[CF]] : f64 to f32
// CHECK: arith.truncf %[[SF]] : f64 to f32
func.func @query_forward(%x: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %0 = ropeattn.rotary %x side query rope <xpos_scale_base = 512.0, xpos_gamma = 0.5> : tensor<2x8x4xf32>
  return %0 : tensor<2x8x4xf32>
}

// -----

// Key side, inverse: the angle is negated and σ = −1 flipped back to +1/B.
// CHECK-LABEL: func @key_inverse
// CHECK-DAG: arith.constant 0.001953125 : f64
// CHECK: math.log
// CHECK: math.exp
func.func @key_inverse(%x: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %0 = ropeattn.rotary %x inverse side key rope <xpos_scale_base = 512.0, xpos_gamma = 0.5> : tensor<2x8x4xf32>
  return %0 : tensor<2x8x4xf32>
}

// -----

// Key side, transpose (the backward's map): angle negated, σ = −1 kept.
// CHECK-LABEL: func @key_transpose
// CHECK-DAG: arith.constant -0.001953125 : f64
// CHECK: arith.negf
// CHECK: math.log
// CHECK: math.exp
func.func @key_transpose(%x: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %0 = ropeattn.rotary %x transpose side key rope <xpos_scale_base = 512.0, xpos_gamma = 0.5> : tensor<2x8x4xf32>
  return %0 : tensor<2x8x4xf32>
}

// -----

// Fused xPos in the exact attention lowering (f16: not pre-rotated): both
// sides' tables carry factors, the query's with +1/B, the key's with −1/B.
// CHECK-LABEL: func @fused_attention
// CHECK-DAG: arith.constant 1.562500e-02 : f64
// CHECK-DAG: arith.constant -1.562500e-02 : f64
func.func @fused_attention(%q: tensor<2x16x4xf16>, %k: tensor<2x16x4xf16>, %v: tensor<2x16x4xf16>) -> tensor<2x16x4xf16> {
  %o = ropeattn.attention %q, %k, %v causal rope <xpos_scale_base = 64.0> : (tensor<2x16x4xf16>, tensor<2x16x4xf16>, tensor<2x16x4xf16>) -> tensor<2x16x4xf16>
  return %o : tensor<2x16x4xf16>
}
