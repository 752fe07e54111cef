// Round trip of xPos scaling: #ropeattn.rope's xpos_scale_base / xpos_gamma
// (an explicit γ is kept even when it is the default 0.4; floats print in
// the shortest form that round-trips) and ropeattn.rotary's side and
// transpose (docs/Spec.md §3.1, §5).
// RUN: rope-opt %s | rope-opt | FileCheck %s

// CHECK-LABEL: func @rotary_xpos
func.func @rotary_xpos(%x: tensor<2x8x16xf32>) -> (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) {
  // CHECK: ropeattn.rotary %{{.*}} side query rope <xpos_scale_base = 5.120000e+02, xpos_gamma = 4.000000e-01> : tensor<2x8x16xf32>
  %0 = ropeattn.rotary %x side query rope <xpos_scale_base = 512.0, xpos_gamma = 0.4> : tensor<2x8x16xf32>
  // CHECK: ropeattn.rotary %{{.*}} inverse side key rope <layout = interleaved, rotary_dim = 8, xpos_scale_base = 6.400000e+01, xpos_gamma = 0.69999999999999996> : tensor<2x8x16xf32>
  %1 = ropeattn.rotary %x inverse side key rope <layout = interleaved, rotary_dim = 8, xpos_scale_base = 64.0, xpos_gamma = 0.7> : tensor<2x8x16xf32>
  // CHECK: ropeattn.rotary %{{.*}} transpose side query rope <position_offset = -3, xpos_scale_base = 5.120000e+02> : tensor<2x8x16xf32>
  %2 = ropeattn.rotary %x transpose side query rope <position_offset = -3, xpos_scale_base = 512.0> : tensor<2x8x16xf32>
  return %0, %1, %2 : tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>
}

// CHECK-LABEL: func @attention_xpos
func.func @attention_xpos(%q: tensor<4x32x16xf32>, %k: tensor<2x32x16xf32>, %v: tensor<2x32x8xf32>, %o: tensor<4x32x8xf32>) -> (tensor<4x32x8xf32>, tensor<4x32x16xf32>) {
  // CHECK: ropeattn.attention %{{.*}} causal rope <xpos_scale_base = 5.120000e+02>
  %r = ropeattn.attention %q, %k, %v causal rope <xpos_scale_base = 512.0> : (tensor<4x32x16xf32>, tensor<2x32x16xf32>, tensor<2x32x8xf32>) -> tensor<4x32x8xf32>
  // CHECK: ropeattn.attention_grad {{.*}} rope <base = 5.000000e+05, xpos_scale_base = 2.560000e+02, xpos_gamma = 2.000000e+00>
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %o rope <base = 500000.0, xpos_scale_base = 256.0, xpos_gamma = 2.0> : (tensor<4x32x16xf32>, tensor<2x32x16xf32>, tensor<2x32x8xf32>, tensor<4x32x8xf32>, tensor<4x32x8xf32>) -> (tensor<4x32x16xf32>, tensor<2x32x16xf32>, tensor<2x32x8xf32>)
  return %r, %dq : tensor<4x32x8xf32>, tensor<4x32x16xf32>
}
