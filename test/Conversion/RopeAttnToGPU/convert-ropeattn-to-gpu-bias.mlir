// RUN: rope-opt %s -convert-ropeattn-to-gpu="block-q=32 block-k=16" -canonicalize -cse | FileCheck %s

// Relative bias on the exact CUDA forward (docs/Spec.md §5): per query head
// h = (batch·head) mod Hq, ℓ_ij = s⟨q̃_i, k̃_j⟩ + bias[h, i − j + M − 1]
// (M = 6: offset 5), added in f32 before the mask; indices clamped for
// padded rows (i ≤ N − 1 = 3) and keys (j ≤ M − 1 = 5), which are masked.
// CHECK-LABEL: func.func @bias(
// CHECK-SAME:    %{{.*}}: memref<3x4x8xf16>, %{{.*}}: memref<1x6x8xf16>, %{{.*}}: memref<1x6x8xf16>, %[[B:.*]]: memref<3x9xf16>, %[[O:.*]]: memref<3x4x8xf16>)
// CHECK:         gpu.launch_func {{.*}} @ropeattn_kernels::@attention_0 {{.*}} args({{.*}}, %[[O]] : memref<3x4x8xf16>, %[[B]] : memref<3x9xf16>)
// CHECK-LABEL: gpu.func @attention_0(
// CHECK-SAME:    %[[KB:[a-z0-9]+]]: memref<3x9xf16>) workgroup(
// CHECK:         %[[BH:.*]] = gpu.block_id  y
// CHECK:         %[[I:.*]] = arith.addi %{{.*}}, %thread_id_x : index
// CHECK:         %[[IL:.*]] = arith.minui %[[I]], %c3 : index
// CHECK:         math.fma
// CHECK:         %[[IN:.*]] = arith.cmpi ult, %[[J:[a-z0-9_]+]], %c6 : index
// CHECK-NEXT:    %[[JC:.*]] = arith.minui %[[J]], %c5 : index
// CHECK-NEXT:    %[[IP:.*]] = arith.addi %[[IL]], %c5 : index
// CHECK-NEXT:    %[[D:.*]] = arith.subi %[[IP]], %[[JC]] : index
// CHECK-NEXT:    %[[H:.*]] = arith.remui %[[BH]], %c3 : index
// CHECK-NEXT:    %[[BV:.*]] = memref.load %[[KB]][%[[H]], %[[D]]] : memref<3x9xf16>
// CHECK-NEXT:    %[[BF:.*]] = arith.extf %[[BV]] : f16 to f32
// CHECK-NEXT:    %[[L:.*]] = arith.addf %{{.*}}, %[[BF]] : f32
// CHECK-NEXT:    %[[C:.*]] = arith.cmpi sle, %[[J]], %{{.*}} : index
// CHECK-NEXT:    %[[VIS:.*]] = arith.andi %[[IN]], %[[C]] : i1
// CHECK-NEXT:    arith.select %[[VIS]], %[[L]], %cst{{.*}} : f32
func.func @bias(%q: tensor<3x4x8xf16>, %k: tensor<1x6x8xf16>, %v: tensor<1x6x8xf16>, %b: tensor<3x9xf16>) -> tensor<3x4x8xf16> {
  %o = ropeattn.attention %q, %k, %v bias(%b) causal : (tensor<3x4x8xf16>, tensor<1x6x8xf16>, tensor<1x6x8xf16>, tensor<3x9xf16>) -> tensor<3x4x8xf16>
  return %o : tensor<3x4x8xf16>
}
