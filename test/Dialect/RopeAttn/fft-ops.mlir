// Round-trip of ropeattn.fft and ropeattn.toeplitz_matmul: custom syntax,
// generic syntax and bytecode print back to the same custom form.
// RUN: rope-opt %s | rope-opt | FileCheck %s
// RUN: rope-opt %s --mlir-print-op-generic | rope-opt | FileCheck %s
// RUN: rope-opt %s -emit-bytecode | rope-opt | FileCheck %s

// CHECK-LABEL: func @fft
func.func @fft(%x: tensor<4x1024x2xf32>, %y: tensor<8x2xf64>)
    -> (tensor<4x1024x2xf32>, tensor<8x2xf64>) {
  // CHECK: ropeattn.fft %{{.*}} : tensor<4x1024x2xf32>
  %0 = ropeattn.fft %x : tensor<4x1024x2xf32>
  // CHECK: ropeattn.fft %{{.*}} inverse : tensor<8x2xf64>
  %1 = ropeattn.fft %y inverse : tensor<8x2xf64>
  return %0, %1 : tensor<4x1024x2xf32>, tensor<8x2xf64>
}

// CHECK-LABEL: func @fft_dynamic
func.func @fft_dynamic(%x: tensor<?x?x2xf32>) -> tensor<?x?x2xf32> {
  // CHECK: ropeattn.fft %{{.*}} : tensor<?x?x2xf32>
  %0 = ropeattn.fft %x : tensor<?x?x2xf32>
  return %0 : tensor<?x?x2xf32>
}

// CHECK-LABEL: func @toeplitz
func.func @toeplitz(%t: tensor<15xf32>, %x: tensor<6x3xf32>,
                    %tb: tensor<2x15xf64>, %xb: tensor<2x10x4xf64>)
    -> (tensor<10x3xf32>, tensor<2x6x4xf64>) {
  // N = 10, M = 6: symbol length 15.
  // CHECK: ropeattn.toeplitz_matmul %{{.*}}, %{{.*}} causal : (tensor<15xf32>, tensor<6x3xf32>) -> tensor<10x3xf32>
  %0 = ropeattn.toeplitz_matmul %t, %x causal
      : (tensor<15xf32>, tensor<6x3xf32>) -> tensor<10x3xf32>
  // Transposed: x has N = 10 rows, the result M = 6; a per-batch symbol.
  // CHECK: ropeattn.toeplitz_matmul %{{.*}}, %{{.*}} transposed causal : (tensor<2x15xf64>, tensor<2x10x4xf64>) -> tensor<2x6x4xf64>
  %1 = ropeattn.toeplitz_matmul %tb, %xb transposed causal
      : (tensor<2x15xf64>, tensor<2x10x4xf64>) -> tensor<2x6x4xf64>
  return %0, %1 : tensor<10x3xf32>, tensor<2x6x4xf64>
}
