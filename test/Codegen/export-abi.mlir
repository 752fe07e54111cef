// RUN: rope-opt %s -ropeattn-export-abi | FileCheck %s

// Public functions get a C interface and their tensor signature recorded.
// CHECK-LABEL: func.func @public
// CHECK-SAME: (%{{.*}}: tensor<4x8xf32> {bufferization.writable = false}, %{{.*}}: tensor<8xi64> {bufferization.writable = false})
// CHECK-SAME: attributes {llvm.emit_c_interface, ropeattn.abi = (tensor<4x8xf32>, tensor<8xi64>) -> tensor<4x8xf32>}
func.func @public(%a: tensor<4x8xf32>, %p: tensor<8xi64>) -> tensor<4x8xf32> {
  return %a : tensor<4x8xf32>
}

// Private functions and declarations are left alone.
// CHECK-LABEL: func.func private @private
// CHECK-NOT: ropeattn.abi
// CHECK: return
func.func private @private(%a: tensor<4xf32>) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}

// CHECK: func.func private @external(tensor<4xf32>)
// CHECK-NOT: ropeattn.abi
func.func private @external(tensor<4xf32>)

// An existing ABI attribute (e.g. recorded before an earlier lowering) wins;
// memref arguments are not tensors and get no writability attribute.
// CHECK-LABEL: func.func @kept
// CHECK-SAME: (%{{.*}}: memref<2xf64>)
// CHECK-SAME: ropeattn.abi = (tensor<2xf64>) -> ()
func.func @kept(%m: memref<2xf64>) attributes {ropeattn.abi = (tensor<2xf64>) -> ()} {
  return
}
