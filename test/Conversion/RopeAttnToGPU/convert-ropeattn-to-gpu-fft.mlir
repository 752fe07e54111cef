// RUN: rope-opt %s -convert-ropeattn-to-gpu -canonicalize -cse | FileCheck %s
// REQUIRES: cuda-runtime
// RUN: rope-opt %s --rope-lower-to-cuda | mlir-translate --mlir-to-llvmir -o %t.ll
// RUN: FileCheck %s --check-prefix=IR < %t.ll
// RUN: %python %S/../../Runtime/Inputs/check_ciface_exports.py %ropeattn_obj_root/lib/libropeattn_cuda_runtime.so %t.ll | FileCheck %s --check-prefix=EXPORTS

// ropeattn.fft on CUDA: the chain is synchronized, the runtime's cuFFT
// wrapper (unnormalized, [B, L, 2] descriptors of any size) runs the
// transform into the result buffer, and the inverse's 1/L is a kernel.
// CHECK:       func.func private @ropeattn_cuda_fft_f32(memref<?x?x2xf32>, memref<?x?x2xf32>, i32) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @fft(
// CHECK-SAME:    %[[X:.*]]: memref<2x3x16x2xf32>, %[[Y:.*]]: memref<2x3x16x2xf32>, %[[Z:.*]]: memref<2x3x16x2xf32>)
// CHECK-DAG:     %[[FWD:.*]] = arith.constant 0 : i32
// CHECK-DAG:     %[[INV:.*]] = arith.constant 1 : i32
// CHECK:         %[[X3:.*]] = memref.collapse_shape %[[X]] {{\[\[}}0, 1], [2], [3]] : memref<2x3x16x2xf32> into memref<6x16x2xf32>
// CHECK:         %[[Y3:.*]] = memref.collapse_shape %[[Y]] {{\[\[}}0, 1], [2], [3]]
// CHECK:         %[[XC:.*]] = memref.cast %[[X3]] : memref<6x16x2xf32> to memref<?x?x2xf32>
// CHECK:         %[[YC:.*]] = memref.cast %[[Y3]] : memref<6x16x2xf32> to memref<?x?x2xf32>
// CHECK:         call @ropeattn_cuda_fft_f32(%[[XC]], %[[YC]], %[[FWD]])
// CHECK:         %[[Z3:.*]] = memref.collapse_shape %[[Z]]
// CHECK:         %[[ZC:.*]] = memref.cast %[[Z3]]
// CHECK:         call @ropeattn_cuda_fft_f32(%[[XC]], %[[ZC]], %[[INV]])
// CHECK:         gpu.launch_func {{.*}} @ropeattn_kernels::@scale_{{[0-9]+}} {{.*}} args(%[[Z3]] : memref<6x16x2xf32>)
// CHECK-LABEL: gpu.func @scale_
// CHECK:         arith.constant 6.250000e-02 : f32

// After the pipeline: the C interface of the runtime function is called.
// IR: call void @_mlir_ciface_ropeattn_cuda_fft_f32(ptr %{{.*}}, ptr %{{.*}}, i32 %{{.*}})
// IR: declare void @_mlir_ciface_ropeattn_cuda_fft_f32(ptr, ptr, i32)
// EXPORTS: exported _mlir_ciface_ropeattn_cuda_fft_f32
func.func @fft(%x: tensor<2x3x16x2xf32>) -> (tensor<2x3x16x2xf32>, tensor<2x3x16x2xf32>) {
  %y = ropeattn.fft %x : tensor<2x3x16x2xf32>
  %z = ropeattn.fft %x inverse : tensor<2x3x16x2xf32>
  return %y, %z : tensor<2x3x16x2xf32>, tensor<2x3x16x2xf32>
}
