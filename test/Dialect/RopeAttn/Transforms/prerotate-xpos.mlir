// ropeattn-prerotate with xPos scaling (docs/Spec.md §3.1): queries get
// `side query` (ζ^(+p/B)), keys `side key` (ζ^(−p/B)), both at positions
// centred on c = floor((min(0, M − N) + M − 1)/2), which the logits do not
// see (they depend on p_q − p_k only) but which keeps the factors in range;
// the user's position_offset cancels the same way and is dropped.
// RUN: rope-opt %s -ropeattn-prerotate -split-input-file | FileCheck %s

// N = 16, M = 24: keys at 0..23, queries at 8..23, c = 11: query offset
// 8 − 11 = −3, key offset −11.
// CHECK-LABEL: func @forward
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x16x8xf32>, %[[K:.*]]: tensor<2x2x24x8xf32>, %[[V:.*]]: tensor<2x2x24x8xf32>)
// CHECK: %[[RQ:.*]] = ropeattn.rotary %[[Q]] side query rope <layout = interleaved, position_offset = -3, xpos_scale_base = 5.120000e+02> : tensor<2x4x16x8xf32>
// CHECK: %[[RK:.*]] = ropeattn.rotary %[[K]] side key rope <layout = interleaved, position_offset = -11, xpos_scale_base = 5.120000e+02> : tensor<2x2x24x8xf32>
// CHECK: ropeattn.attention %[[RQ]], %[[RK]], %[[V]] causal :
// CHECK-NOT: rope
func.func @forward(%q: tensor<2x4x16x8xf32>, %k: tensor<2x2x24x8xf32>, %v: tensor<2x2x24x8xf32>) -> tensor<2x4x16x8xf32> {
  %o = ropeattn.attention %q, %k, %v causal rope <layout = interleaved, position_offset = 100, xpos_scale_base = 512.0> : (tensor<2x4x16x8xf32>, tensor<2x2x24x8xf32>, tensor<2x2x24x8xf32>) -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// N = 12 > M = 9: positions −3..8, c = 2: query offset −3 − 2 = −5, key −2.
// Backward: dq, dk through the *transposed* maps (dq = Rᵀ Z dq~, the same
// factor as the forward), not the inverse.
// CHECK-LABEL: func @backward
// CHECK: %[[RQ:.*]] = ropeattn.rotary %{{.*}} side query rope <rotary_dim = 2, position_offset = -5, xpos_scale_base = 6.400000e+01, xpos_gamma = 0.69999999999999996> :
// CHECK: %[[RK:.*]] = ropeattn.rotary %{{.*}} side key rope <rotary_dim = 2, position_offset = -2, xpos_scale_base = 6.400000e+01, xpos_gamma = 0.69999999999999996> :
// CHECK: %[[DQ:.*]], %[[DK:.*]], %[[DV:.*]] = ropeattn.attention_grad %[[RQ]], %[[RK]]
// CHECK: %[[TQ:.*]] = ropeattn.rotary %[[DQ]] transpose side query rope <rotary_dim = 2, position_offset = -5, xpos_scale_base = 6.400000e+01, xpos_gamma = 0.69999999999999996> :
// CHECK: %[[TK:.*]] = ropeattn.rotary %[[DK]] transpose side key rope <rotary_dim = 2, position_offset = -2, xpos_scale_base = 6.400000e+01, xpos_gamma = 0.69999999999999996> :
// CHECK: return %[[TQ]], %[[TK]], %[[DV]]
func.func @backward(%q: tensor<1x12x4xf64>, %k: tensor<1x9x4xf64>, %v: tensor<1x9x4xf64>, %o: tensor<1x12x4xf64>, %do: tensor<1x12x4xf64>) -> (tensor<1x12x4xf64>, tensor<1x9x4xf64>, tensor<1x9x4xf64>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do rope <rotary_dim = 2, xpos_scale_base = 64.0, xpos_gamma = 0.7> : (tensor<1x12x4xf64>, tensor<1x9x4xf64>, tensor<1x9x4xf64>, tensor<1x12x4xf64>, tensor<1x12x4xf64>) -> (tensor<1x12x4xf64>, tensor<1x9x4xf64>, tensor<1x9x4xf64>)
  return %dq, %dk, %dv : tensor<1x12x4xf64>, tensor<1x9x4xf64>, tensor<1x9x4xf64>
}
