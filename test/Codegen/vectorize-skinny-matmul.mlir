// RUN: rope-opt %s -ropeattn-vectorize-skinny-matmul -split-input-file | FileCheck %s
// RUN: rope-opt %s -ropeattn-vectorize-skinny-matmul="max-rows=0" -split-input-file | FileCheck %s --check-prefix=OFF
// RUN: rope-opt %s -ropeattn-vectorize-skinny-matmul="vector-bits=256 max-rows=2" -split-input-file | FileCheck %s --check-prefix=AVX2
// RUN: not rope-opt %s -ropeattn-vectorize-skinny-matmul="vector-bits=100" 2>&1 | FileCheck %s --check-prefix=BADBITS
// RUN: not rope-opt %s -ropeattn-vectorize-skinny-matmul="max-rows=-1" 2>&1 | FileCheck %s --check-prefix=BADROWS

// BADBITS: vector-bits must be a power of two >= 64, got 100
// BADROWS: max-rows must be >= 0

// C[2, M] += L(k, i)·R[k, j] (L read as [K, 2]): full tiles of 16 lanes
// with one vector load of R per k feeding two FMAs with broadcast elements
// of L, then one masked tile for M mod 16. With fewer than 4 rows, 4/n = 2
// interleaved chains over k (even k: accumulators 0, 1; odd k: 2, 3), the
// K mod 2 remainder on chain 0, then the chains summed.
// CHECK-LABEL: func @plain
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[C2:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[C16:.*]] = arith.constant 16 : index
// CHECK: %[[M:.*]] = memref.dim %arg2, %[[C1]]
// CHECK: %[[K:.*]] = memref.dim %arg1, %[[C0]]
// CHECK: %[[REM:.*]] = arith.remui %[[M]], %[[C16]]
// CHECK: %[[FULL:.*]] = arith.subi %[[M]], %[[REM]]
// CHECK: %[[HAS:.*]] = arith.cmpi ne, %[[REM]], %[[C0]]
// CHECK: scf.for %[[J:.*]] = %[[C0]] to %[[FULL]] step %[[C16]] {
// CHECK:   %[[KREM:.*]] = arith.remui %[[K]], %[[C2]]
// CHECK:   %[[KFULL:.*]] = arith.subi %[[K]], %[[KREM]]
// CHECK:   %[[ACC:.*]]:4 = scf.for %[[KK:.*]] = %[[C0]] to %[[KFULL]] step %[[C2]] iter_args(%[[A0:.*]] = %{{.*}}, %[[A1:.*]] = %{{.*}}, %[[A2:.*]] = %{{.*}}, %[[A3:.*]] = %{{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// CHECK:     %[[R:.*]] = vector.load %arg1[%[[KK]], %[[J]]] : memref<?x?xf32>, vector<16xf32>
// CHECK:     %[[L0:.*]] = memref.load %arg0[%[[KK]], %[[C0]]]
// CHECK:     %[[B0:.*]] = vector.broadcast %[[L0]] : f32 to vector<16xf32>
// CHECK:     %[[F0:.*]] = vector.fma %[[R]], %[[B0]], %[[A0]] : vector<16xf32>
// CHECK:     %[[L1:.*]] = memref.load %arg0[%[[KK]], %[[C1]]]
// CHECK:     vector.fma %[[R]], %{{.*}}, %[[A1]]
// CHECK:     %[[KO:.*]] = arith.addi %[[KK]], %[[C1]]
// CHECK:     %[[RO:.*]] = vector.load %arg1[%[[KO]], %[[J]]]
// CHECK:     vector.fma %[[RO]], %{{.*}}, %[[A2]]
// CHECK:     vector.fma %[[RO]], %{{.*}}, %[[A3]]
// CHECK:     scf.yield
// CHECK:   %[[TAIL:.*]]:4 = scf.for %{{.*}} = %[[KFULL]] to %[[K]] step %[[C1]] iter_args
// CHECK:   %[[S0:.*]] = arith.addf %[[TAIL]]#0, %[[TAIL]]#2
// CHECK:   %[[S1:.*]] = arith.addf %[[TAIL]]#1, %[[TAIL]]#3
// CHECK:   %[[OLD:.*]] = vector.load %arg2[%[[C0]], %[[J]]]
// CHECK:   %[[SUM:.*]] = arith.addf %[[OLD]], %[[S0]]
// CHECK:   vector.store %[[SUM]], %arg2[%[[C0]], %[[J]]]
// CHECK: scf.if %[[HAS]] {
// CHECK:   %[[MASK:.*]] = arith.cmpi sgt
// CHECK:   vector.maskedload %arg1[%{{.*}}, %[[FULL]]], %[[MASK]]
// CHECK:   vector.maskedstore %arg2[%{{.*}}, %[[FULL]]], %[[MASK]]
// CHECK-NOT: linalg.matmul
// OFF-LABEL: func @plain
// OFF: linalg.matmul
// AVX2-LABEL: func @plain
// AVX2: vector.fma {{.*}} : vector<8xf32>
func.func @plain(%l: memref<?x2xf32>, %r: memref<?x?xf32>, %c: memref<2x?xf32>) {
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%l, %r : memref<?x2xf32>, memref<?x?xf32>) outs(%c : memref<2x?xf32>)
  return
}

// -----

// R read as (j, k) from [M, K] (f64: 8 lanes): blocks of 8 k, each 8 rows of
// R loaded (masked past K) and transposed in registers by 3 butterfly stages
// of shuffles; L read as (i, k).
// CHECK-LABEL: func @transposed_f64
// CHECK: scf.for %{{.*}} step %c8 {
// CHECK: scf.for %{{.*}} step %c8 iter_args
// CHECK-COUNT-8: vector.maskedload %arg1
// CHECK: vector.shuffle {{.*}} [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xf64>, vector<8xf64>
// CHECK: vector.shuffle {{.*}} [4, 5, 6, 7, 12, 13, 14, 15] : vector<8xf64>, vector<8xf64>
// CHECK: vector.shuffle {{.*}} [0, 1, 8, 9, 4, 5, 12, 13] : vector<8xf64>, vector<8xf64>
// CHECK: vector.shuffle {{.*}} [0, 8, 2, 10, 4, 12, 6, 14] : vector<8xf64>, vector<8xf64>
// CHECK: arith.minsi
// CHECK: memref.load %arg0[%c0, %{{.*}}] : memref<3x?xf64>
// CHECK: vector.fma {{.*}} : vector<8xf64>
// CHECK-NOT: linalg.matmul
func.func @transposed_f64(%l: memref<3x?xf64>, %r: memref<?x?xf64>, %c: memref<3x?xf64>) {
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (i, k)>, affine_map<(i, j, k) -> (j, k)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%l, %r : memref<3x?xf64>, memref<?x?xf64>) outs(%c : memref<3x?xf64>)
  return
}

// -----

// Left alone: too many rows (97 > 4 blocks of 24), a dynamic row count, C strided along j, R
// strided along its contiguous dimension, tensors, integer types.
// CHECK-LABEL: func @untouched
// CHECK-COUNT-6: linalg.matmul
// CHECK-NOT: vector.fma
// AVX2-LABEL: func @untouched
// AVX2-COUNT-6: linalg.matmul
func.func @untouched(%l: memref<?x97xf32>, %r: memref<?x?xf32>, %c: memref<97x?xf32>,
                     %ld: memref<?x?xf32>, %cd: memref<?x?xf32>,
                     %cs: memref<2x?xf32, strided<[?, 2]>>, %l2: memref<?x2xf32>,
                     %rs: memref<?x?xf32, strided<[?, 3]>>, %c2: memref<2x?xf32>,
                     %t: tensor<?x2xf32>, %tr: tensor<?x?xf32>, %tc: tensor<2x?xf32>,
                     %li: memref<?x2xi32>, %ri: memref<?x?xi32>, %ci: memref<2x?xi32>) -> tensor<2x?xf32> {
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%l, %r : memref<?x97xf32>, memref<?x?xf32>) outs(%c : memref<97x?xf32>)
  linalg.matmul ins(%ld, %r : memref<?x?xf32>, memref<?x?xf32>) outs(%cd : memref<?x?xf32>)
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%l2, %r : memref<?x2xf32>, memref<?x?xf32>) outs(%cs : memref<2x?xf32, strided<[?, 2]>>)
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%l2, %rs : memref<?x2xf32>, memref<?x?xf32, strided<[?, 3]>>) outs(%c2 : memref<2x?xf32>)
  %o = linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%t, %tr : tensor<?x2xf32>, tensor<?x?xf32>) outs(%tc : tensor<2x?xf32>) -> tensor<2x?xf32>
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%li, %ri : memref<?x2xi32>, memref<?x?xi32>) outs(%ci : memref<2x?xi32>)
  return %o : tensor<2x?xf32>
}

// -----

// 30 rows > max-rows = 24: two row blocks of 15, each its own loop over the
// column tiles (R read once per block).
// CHECK-LABEL: func @row_blocks
// CHECK: scf.for
// CHECK: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// CHECK: memref.load %arg0[%{{.*}}, %c14] : memref<?x30xf32>
// CHECK-NOT: memref.load %arg0[%{{.*}}, %c15]
// CHECK: scf.yield
// CHECK: scf.if
// CHECK: scf.for
// CHECK: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// CHECK: memref.load %arg0[%{{.*}}, %c15] : memref<?x30xf32>
// CHECK: memref.load %arg0[%{{.*}}, %c29] : memref<?x30xf32>
func.func @row_blocks(%l: memref<?x30xf32>, %r: memref<?x?xf32>, %c: memref<30x?xf32>) {
  linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>, affine_map<(i, j, k) -> (k, j)>, affine_map<(i, j, k) -> (i, j)>]
    ins(%l, %r : memref<?x30xf32>, memref<?x?xf32>) outs(%c : memref<30x?xf32>)
  return
}
