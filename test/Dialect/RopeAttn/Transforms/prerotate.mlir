// RUN: rope-opt %s -ropeattn-prerotate -split-input-file -verify-diagnostics | FileCheck %s

// Forward: keys rotate at offset + j; queries at offset + (M - N) + i, so with
// N = 16, M = 24 the query rope gains position_offset 8 (bottom-right).
// CHECK-LABEL: func @forward
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x16x8xf32>, %[[K:.*]]: tensor<2x2x24x8xf32>, %[[V:.*]]: tensor<2x2x24x8xf32>)
// CHECK: %[[RQ:.*]] = ropeattn.rotary %[[Q]] rope <layout = interleaved, position_offset = 8> : tensor<2x4x16x8xf32>
// CHECK: %[[RK:.*]] = ropeattn.rotary %[[K]] rope <layout = interleaved> : tensor<2x2x24x8xf32>
// CHECK: ropeattn.attention %[[RQ]], %[[RK]], %[[V]] causal scale(5.000000e-01) :
// CHECK-NOT: rope
func.func @forward(%q: tensor<2x4x16x8xf32>, %k: tensor<2x2x24x8xf32>, %v: tensor<2x2x24x8xf32>) -> tensor<2x4x16x8xf32> {
  %o = ropeattn.attention %q, %k, %v causal scale(0.5) rope <layout = interleaved> : (tensor<2x4x16x8xf32>, tensor<2x2x24x8xf32>, tensor<2x2x24x8xf32>) -> tensor<2x4x16x8xf32>
  return %o : tensor<2x4x16x8xf32>
}

// -----

// The user's offset is kept and the query offset adds to it; N > M gives a
// negative shift. Everything else of the rope (base, rotary_dim) is kept.
// CHECK-LABEL: func @offsets
// CHECK: ropeattn.rotary %{{.*}} rope <base = 5.000000e+05, rotary_dim = 4, position_offset = 97> : tensor<1x12x4xf32>
// CHECK: ropeattn.rotary %{{.*}} rope <base = 5.000000e+05, rotary_dim = 4, position_offset = 100> : tensor<1x9x4xf32>
func.func @offsets(%q: tensor<1x12x4xf32>, %k: tensor<1x9x4xf32>) -> tensor<1x12x4xf32> {
  %o = ropeattn.attention %q, %k, %k rope <base = 5.0e5, rotary_dim = 4, position_offset = 100> : (tensor<1x12x4xf32>, tensor<1x9x4xf32>, tensor<1x9x4xf32>) -> tensor<1x12x4xf32>
  return %o : tensor<1x12x4xf32>
}

// -----

// Backward: the same pre-rotation, and dq, dk are rotated back (inverse) at
// the same positions: q~ = R q  =>  dq = R^T dq~.
// CHECK-LABEL: func @backward
// CHECK-SAME: (%[[Q:.*]]: tensor<4x16x8xf32>, %[[K:.*]]: tensor<4x16x8xf32>, %[[V:.*]]: tensor<4x16x8xf32>, %[[O:.*]]: tensor<4x16x8xf32>, %[[DO:.*]]: tensor<4x16x8xf32>)
// CHECK: %[[RQ:.*]] = ropeattn.rotary %[[Q]] rope <> :
// CHECK: %[[RK:.*]] = ropeattn.rotary %[[K]] rope <> :
// CHECK: %[[DQ:.*]], %[[DK:.*]], %[[DV:.*]] = ropeattn.attention_grad %[[RQ]], %[[RK]], %[[V]], %[[O]], %[[DO]] causal :
// CHECK: %[[IQ:.*]] = ropeattn.rotary %[[DQ]] inverse rope <> :
// CHECK: %[[IK:.*]] = ropeattn.rotary %[[DK]] inverse rope <> :
// CHECK: return %[[IQ]], %[[IK]], %[[DV]]
func.func @backward(%q: tensor<4x16x8xf32>, %k: tensor<4x16x8xf32>, %v: tensor<4x16x8xf32>, %o: tensor<4x16x8xf32>, %do: tensor<4x16x8xf32>) -> (tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do causal rope <> : (tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>) -> (tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>)
  return %dq, %dk, %dv : tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>
}

// -----

// No fused rope: nothing to do.
// CHECK-LABEL: func @no_rope
// CHECK-NOT: ropeattn.rotary
func.func @no_rope(%q: tensor<4x16x8xf32>) -> tensor<4x16x8xf32> {
  %o = ropeattn.attention %q, %q, %q : (tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>) -> tensor<4x16x8xf32>
  return %o : tensor<4x16x8xf32>
}

// -----

// Dynamic N: the query offset is unknown statically; left alone, with a remark.
// CHECK-LABEL: func @dynamic
// CHECK-NOT: ropeattn.rotary
// CHECK: ropeattn.attention {{.*}} rope <>
func.func @dynamic(%q: tensor<4x?x8xf32>, %k: tensor<4x16x8xf32>) -> tensor<4x?x8xf32> {
  // expected-remark @+1 {{ropeattn-prerotate: left fused RoPE in place: the query position offset M - N needs static N and M}}
  %o = ropeattn.attention %q, %k, %k rope <> : (tensor<4x?x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>) -> tensor<4x?x8xf32>
  return %o : tensor<4x?x8xf32>
}

// -----

// bf16: rotating outside the op would round q~, k~ to bf16; left alone.
// CHECK-LABEL: func @narrow
// CHECK-NOT: ropeattn.rotary
// CHECK: ropeattn.attention {{.*}} rope <>
func.func @narrow(%q: tensor<4x16x8xbf16>) -> tensor<4x16x8xbf16> {
  // expected-remark @+1 {{ropeattn-prerotate: left fused RoPE in place: rotating 'bf16' operands outside the op would round them before the logits}}
  %o = ropeattn.attention %q, %q, %q rope <> : (tensor<4x16x8xbf16>, tensor<4x16x8xbf16>, tensor<4x16x8xbf16>) -> tensor<4x16x8xbf16>
  return %o : tensor<4x16x8xbf16>
}
