// RUN: rope-opt %s -split-input-file -verify-diagnostics -ropeattn-emulate-gpu-on-host | FileCheck %s

// A launch of one thread per block becomes loops over the grid (x, y) and the
// block's threads with the kernel inlined: block ids are the loop indices,
// workgroup memory a host buffer, barriers disappear; gpu.alloc/dealloc/
// memcpy become memref ops and the gpu.module goes away.

// CHECK-LABEL: func.func @host(
// CHECK-SAME:    %[[A:.*]]: memref<4x3xf32>, %[[B:.*]]: memref<4x3xf32>)
// CHECK-NOT:     gpu.
// CHECK:         %[[TMP:.*]] = memref.alloc() : memref<4x3xf32>
// CHECK:         %[[WG:.*]] = memref.alloc() : memref<2xf32>
// CHECK:         scf.for %[[X:.*]] = %{{.*}} to %{{.*}} step
// CHECK:           scf.for %[[Y:.*]] = %{{.*}} to %{{.*}} step
// CHECK:             scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step
// CHECK:               %[[V:.*]] = memref.load %[[A]][%[[X]], %[[Y]]]
// CHECK:               memref.store %[[V]], %[[WG]][%[[T]]]
// CHECK-NOT:           gpu.barrier
// CHECK:               %[[W:.*]] = memref.load %[[WG]][%[[T]]]
// CHECK:               memref.store %[[W]], %[[TMP]][%[[X]], %[[Y]]]
// CHECK:         memref.dealloc %[[WG]]
// CHECK:         memref.copy %[[TMP]], %[[B]]
// CHECK:         memref.dealloc %[[TMP]]
// CHECK-NEXT:    return
// CHECK-NOT:   gpu.module

module attributes {gpu.container_module} {
  func.func @host(%a: memref<4x3xf32>, %b: memref<4x3xf32>) {
    %c1 = arith.constant 1 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %t0 = gpu.wait async
    %tmp, %t1 = gpu.alloc async [%t0] () : memref<4x3xf32>
    %t2 = gpu.launch_func async [%t1] @k::@copy blocks in (%c4, %c3, %c1) threads in (%c1, %c1, %c1) args(%a : memref<4x3xf32>, %tmp : memref<4x3xf32>)
    %t3 = gpu.memcpy async [%t2] %b, %tmp : memref<4x3xf32>, memref<4x3xf32>
    %t4 = gpu.dealloc async [%t3] %tmp : memref<4x3xf32>
    gpu.wait [%t4]
    return
  }
  gpu.module @k {
    gpu.func @copy(%a: memref<4x3xf32>, %b: memref<4x3xf32>) workgroup(%w : memref<2xf32, #gpu.address_space<workgroup>>) kernel {
      %x = gpu.block_id x
      %y = gpu.block_id y
      %t = gpu.thread_id x
      %v = memref.load %a[%x, %y] : memref<4x3xf32>
      memref.store %v, %w[%t] : memref<2xf32, #gpu.address_space<workgroup>>
      gpu.barrier
      %u = memref.load %w[%t] : memref<2xf32, #gpu.address_space<workgroup>>
      memref.store %u, %b[%x, %y] : memref<4x3xf32>
      gpu.return
    }
  }
}

// -----

// Threads that share workgroup memory cannot run one after the other.

module attributes {gpu.container_module} {
  func.func @threads(%a: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    // expected-error @below {{ropeattn-emulate-gpu-on-host: a kernel with barriers or workgroup memory needs one thread per block, found 4}}
    gpu.launch_func @k::@f blocks in (%c1, %c1, %c1) threads in (%c4, %c1, %c1) args(%a : memref<4xf32>)
    return
  }
  gpu.module @k {
    gpu.func @f(%a: memref<4xf32>) kernel {
      gpu.barrier
      gpu.return
    }
  }
}
