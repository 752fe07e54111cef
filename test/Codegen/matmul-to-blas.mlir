// RUN: rope-opt %s -ropeattn-matmul-to-blas -split-input-file | FileCheck %s

// C(i, j) += A(i, k)·B(j, k): B transposed.
// CHECK-LABEL: func.func private @ropeattn_matmul_f32
// CHECK-SAME: (memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, i32, i32, i32)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-LABEL: func @trans_b
// CHECK-DAG: %[[F:.*]] = arith.constant 0 : i32
// CHECK-DAG: %[[T:.*]] = arith.constant 1 : i32
// CHECK: %[[A:.*]] = memref.cast %arg0
// CHECK: %[[B:.*]] = memref.cast %arg1
// CHECK: %[[C:.*]] = memref.cast %arg2
// CHECK: call @ropeattn_matmul_f32(%[[A]], %[[B]], %[[C]], %[[F]], %[[T]], %[[T]])
// CHECK-NOT: linalg.matmul
func.func @trans_b(%a: memref<4x8xf32>, %b: memref<5x8xf32>, %c: memref<4x5xf32>) {
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (i, k)>, affine_map<(i, j, k) -> (j, k)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%a, %b : memref<4x8xf32>, memref<5x8xf32>) outs(%c : memref<4x5xf32>)
  return
}

// -----

// Plain and A-transposed products, f64, strided subviews.
// CHECK-LABEL: func @f64_variants
// CHECK: call @ropeattn_matmul_f64(%{{.*}}, %{{.*}}, %{{.*}}, %[[Z:[a-z0-9_]+]], %[[Z]], %[[O:[a-z0-9_]+]])
// CHECK: call @ropeattn_matmul_f64(%{{.*}}, %{{.*}}, %{{.*}}, %[[O]], %[[Z]], %[[O]])
func.func @f64_variants(%a: memref<4x8xf64>, %b: memref<8x5xf64>, %c: memref<4x5xf64, strided<[10, 1], offset: 3>>, %at: memref<8x4xf64>) {
  linalg.matmul ins(%a, %b : memref<4x8xf64>, memref<8x5xf64>) outs(%c : memref<4x5xf64, strided<[10, 1], offset: 3>>)
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%at, %b : memref<8x4xf64>, memref<8x5xf64>) outs(%c : memref<4x5xf64, strided<[10, 1], offset: 3>>)
  return
}

// -----

// Left alone: tensors, f16, mixed types, broadcast maps.
// CHECK-LABEL: func @left_alone
// CHECK-COUNT-3: linalg.matmul
// CHECK-NOT: call
func.func @left_alone(%t: tensor<4x4xf32>, %h: memref<4x4xf16>, %c: memref<4x4xf32>, %v: memref<4xf32>) -> tensor<4x4xf32> {
  %r = linalg.matmul ins(%t, %t : tensor<4x4xf32>, tensor<4x4xf32>) outs(%t : tensor<4x4xf32>) -> tensor<4x4xf32>
  linalg.matmul ins(%h, %h : memref<4x4xf16>, memref<4x4xf16>) outs(%c : memref<4x4xf32>)
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%v, %c : memref<4xf32>, memref<4x4xf32>) outs(%c : memref<4x4xf32>)
  return %r : tensor<4x4xf32>
}

// -----

// A zero fill of C just before the product is folded into beta = 0; other
// fills (non-zero, or of another buffer) stay.
// CHECK-LABEL: func @fill_zero
// CHECK-NOT: linalg.fill ins(%cst
// CHECK: %[[F:.*]] = arith.constant 0 : i32
// CHECK: call @ropeattn_matmul_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[F]], %[[F]], %[[F]])
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%arg2
// CHECK: call @ropeattn_matmul_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[F]], %[[F]], %[[T:[a-z0-9_]+]])
func.func @fill_zero(%a: memref<4x8xf32>, %b: memref<8x5xf32>, %c: memref<4x5xf32>) {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  linalg.fill ins(%zero : f32) outs(%c : memref<4x5xf32>)
  linalg.matmul ins(%a, %b : memref<4x8xf32>, memref<8x5xf32>) outs(%c : memref<4x5xf32>)
  linalg.fill ins(%one : f32) outs(%c : memref<4x5xf32>)
  linalg.matmul ins(%a, %b : memref<4x8xf32>, memref<8x5xf32>) outs(%c : memref<4x5xf32>)
  return
}
