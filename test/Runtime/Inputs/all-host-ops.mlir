// Every gpu host-side op whose lowering calls the CUDA runtime (gpu-to-llvm
// and the gpu.binary translation): streams, events (two independent chains
// joined), memory, host registration, launches (plain and cluster).
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%a: memref<16xf32>) kernel {
      gpu.return
    }
  }
  func.func @all(%host: memref<16xf32>, %h16: memref<16xf16>) {
    %c0 = arith.constant 0 : i32
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %f = arith.constant 0.0 : f32
    %h = arith.constant 0.0 : f16
    gpu.set_default_device %c0
    %cast = memref.cast %host : memref<16xf32> to memref<*xf32>
    gpu.host_register %cast : memref<*xf32>
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<16xf32>
    %t2 = gpu.memcpy async [%t1] %d, %host : memref<16xf32>, memref<16xf32>
    %t3 = gpu.memset async [%t2] %d, %f : memref<16xf32>, f32
    %d16, %t4 = gpu.alloc async [%t3] () : memref<16xf16>
    %t5 = gpu.memset async [%t4] %d16, %h : memref<16xf16>, f16
    %t6 = gpu.launch_func async [%t5] @kernels::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%d : memref<16xf32>)
    %t7 = gpu.launch_func async [%t5] @kernels::@k clusters in (%c2, %c1, %c1) blocks in (%c2, %c1, %c1) threads in (%c1, %c1, %c1) args(%d : memref<16xf32>)
    %j = gpu.wait async [%t6, %t7]
    %t8 = gpu.dealloc async [%j] %d : memref<16xf32>
    %t9 = gpu.dealloc async [%t8] %d16 : memref<16xf16>
    %u0 = gpu.wait async
    %u1 = gpu.memcpy async [%u0] %h16, %h16 : memref<16xf16>, memref<16xf16>
    gpu.wait [%t9, %u1]
    gpu.host_unregister %cast : memref<*xf32>
    %m = gpu.alloc host_shared () : memref<16xf32>
    memref.store %f, %m[%c1] : memref<16xf32>
    return
  }
}
