// ropeattn-expand-toeplitz: circulant embedding + FFTs.
// RUN: rope-opt %s -split-input-file -verify-diagnostics -ropeattn-expand-toeplitz | FileCheck %s

// T is N × M = 6 × 3 (symbol length 8), x has C = 5 columns, causal (keep
// offsets δ ≥ N − M = 3). L = 2^⌈log2(6 + 3 − 1)⌉ = 8; the 5 real columns
// go into 3 complex ones. c[u] = a_u for u < 6, a_{u−8} for u ≥ 8 − 3 + 1,
// read at index δ + M − 1 = δ + 2.
// CHECK-LABEL: func @causal
// CHECK-SAME: (%[[T:.*]]: tensor<8xf32>, %[[X:.*]]: tensor<3x5xf32>)
// CHECK: %[[CIRC:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<8x2xf32>)
// CHECK: %[[U:.*]] = linalg.index 0
// CHECK: %[[C6:.*]] = arith.constant 6 : index
// CHECK: %[[TOP:.*]] = arith.cmpi slt, %[[U]], %[[C6]]
// CHECK: %[[C8:.*]] = arith.constant 8 : index
// CHECK: %[[WRAP:.*]] = arith.subi %[[U]], %[[C8]]
// CHECK: %[[DELTA:.*]] = arith.select %[[TOP]], %[[U]], %[[WRAP]]
// CHECK: %[[C3:.*]] = arith.constant 3 : index
// CHECK: arith.cmpi sge, %[[DELTA]], %[[C3]]
// CHECK: %[[C2:.*]] = arith.constant 2 : index
// CHECK: arith.addi %[[DELTA]], %[[C2]]
// CHECK: tensor.extract %[[T]]
// CHECK: %[[CF:.*]] = ropeattn.fft %[[CIRC]] : tensor<8x2xf32>
// Column pairs in blocks (here one block of all 3 pairs; one iteration per
// batch entry and block), the result built by insert_slice.
// CHECK: %[[Y:.*]] = scf.for %{{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (tensor<1x6x5xf32>)
// CHECK: %[[Z:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<3x8x2xf32>)
// CHECK: tensor.extract %[[X3:.*]][
// CHECK: %[[ZF:.*]] = ropeattn.fft %[[Z]] : tensor<3x8x2xf32>
// The symbol's transform is broadcast over the column pairs.
// CHECK: %[[P:.*]] = linalg.generic {{.*}} ins(%[[ZF]], %[[ZF]], %[[CF]], %[[CF]] : tensor<3x8x2xf32>, tensor<3x8x2xf32>, tensor<8x2xf32>, tensor<8x2xf32>)
// CHECK: %[[W:.*]] = ropeattn.fft %[[P]] inverse : tensor<3x8x2xf32>
// Only the C = 5 valid columns of the 6 are unpacked, straight into a slice
// of the loop-carried result that is inserted back at the same place (in
// place after bufferization: no tile buffer, no strided copy).
// CHECK: %[[DEST:.*]] = tensor.extract_slice %[[ACC]][%[[ZB:.*]], 0, %[[C0:.*]]] [1, 6, %[[WIDTH:.*]]] [1, 1, 1] : tensor<1x6x5xf32> to tensor<6x?xf32>
// CHECK: %[[TILE:.*]] = linalg.generic {{.*}} outs(%[[DEST]] : tensor<6x?xf32>)
// CHECK: arith.divui
// CHECK: arith.remui
// CHECK: tensor.extract %[[W]]
// CHECK: tensor.insert_slice %[[TILE]] into %[[ACC]][%[[ZB]], 0, %[[C0]]] [1, 6, %[[WIDTH]]] [1, 1, 1]
// CHECK: tensor.collapse_shape %[[Y]] {{\[\[}}0, 1], [2]] : tensor<1x6x5xf32> into tensor<6x5xf32>
// CHECK-NOT: ropeattn.toeplitz_matmul
func.func @causal(%t: tensor<8xf32>, %x: tensor<3x5xf32>) -> tensor<6x5xf32> {
  %y = ropeattn.toeplitz_matmul %t, %x causal : (tensor<8xf32>, tensor<3x5xf32>) -> tensor<6x5xf32>
  return %y : tensor<6x5xf32>
}

// -----

// Transposed (Tᵀ is 3 × 6: x has N = 6 rows), per-batch symbol: one
// circulant per batch entry, δ negated.
// CHECK-LABEL: func @transposed_batched
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<2x8x2xf64>)
// CHECK: arith.subi %c0
// CHECK: %[[CF:.*]] = ropeattn.fft %{{.*}} : tensor<2x8x2xf64>
// CHECK: scf.for
// CHECK: ropeattn.fft %{{.*}} : tensor<2x8x2xf64>
// Each batch entry reads its own symbol transform.
// CHECK: tensor.extract_slice %[[CF]][%{{.*}}, 0, 0] [1, 8, 2] [1, 1, 1] : tensor<2x8x2xf64> to tensor<8x2xf64>
// CHECK: ropeattn.fft %{{.*}} inverse : tensor<2x8x2xf64>
// The 4 columns (2 pairs) are unpacked into the result slice [3, ?].
// CHECK: outs(%{{.*}} : tensor<3x?xf64>)
func.func @transposed_batched(%t: tensor<2x8xf64>, %x: tensor<2x6x4xf64>) -> tensor<2x3x4xf64> {
  %y = ropeattn.toeplitz_matmul %t, %x transposed : (tensor<2x8xf64>, tensor<2x6x4xf64>) -> tensor<2x3x4xf64>
  return %y : tensor<2x3x4xf64>
}

// -----

// M = 0: an empty sum, zeros; N = 0: an empty result.
// CHECK-LABEL: func @empty
// CHECK: %[[Z:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: linalg.fill ins(%[[Z]] : f32) outs(%{{.*}} : tensor<4x3xf32>)
// CHECK: tensor.empty() : tensor<0x3xf32>
// CHECK-NOT: ropeattn.fft
func.func @empty(%t: tensor<3xf32>, %x: tensor<0x3xf32>, %t2: tensor<3xf32>, %x2: tensor<4x3xf32>)
    -> (tensor<4x3xf32>, tensor<0x3xf32>) {
  %y = ropeattn.toeplitz_matmul %t, %x : (tensor<3xf32>, tensor<0x3xf32>) -> tensor<4x3xf32>
  %y2 = ropeattn.toeplitz_matmul %t2, %x2 : (tensor<3xf32>, tensor<4x3xf32>) -> tensor<0x3xf32>
  return %y, %y2 : tensor<4x3xf32>, tensor<0x3xf32>
}

// -----

func.func @dynamic(%t: tensor<?xf32>, %x: tensor<?x3xf32>) -> tensor<4x3xf32> {
  // expected-error @+1 {{ropeattn-expand-toeplitz: expected static shapes}}
  %y = ropeattn.toeplitz_matmul %t, %x : (tensor<?xf32>, tensor<?x3xf32>) -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}
