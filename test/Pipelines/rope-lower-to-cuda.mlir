// cubin generation for both target chips (ptxas of the CUDA toolkit; the chip
// and the PTX version are explicit: the default PTX 6.0 fails with CUDA 13).
// REQUIRES: ptxas
// RUN: rope-opt %s --rope-lower-to-cuda="chip=sm_80" | FileCheck %s --check-prefixes=CHECK,SM80
// RUN: rope-opt %s --rope-lower-to-cuda="chip=sm_90" | FileCheck %s --check-prefixes=CHECK,SM90
// RUN: rope-opt %s --rope-lower-to-cuda | FileCheck %s --check-prefixes=CHECK,SM90
// A fatbin (cubin + PTX) is accepted too.
// RUN: rope-opt %s --rope-lower-to-cuda="format=fatbin" | FileCheck %s --check-prefix=FATBIN
// The embedded image is an ELF cubin for the chip (e_machine 190 = EM_CUDA);
// ptxas itself reports what it built.
// RUN: rope-opt %s --rope-lower-to-cuda="format=isa" | %python %S/Inputs/extract_ptx.py > %t.ptx
// RUN: %cuda_toolkit/bin/ptxas -arch=sm_90 -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s --check-prefix=PTXAS

// Host code: the function of device buffers with its C interface and the
// original signature, one stream per call, launch, synchronize, destroy.
// CHECK:       llvm.func @fwd(
// CHECK:         %[[S:.*]] = llvm.call @mgpuStreamCreate() : () -> !llvm.ptr
// CHECK:         gpu.launch_func <%[[S]] : !llvm.ptr> @ropeattn_kernels::@rotary_0
// CHECK:         gpu.launch_func <%[[S]] : !llvm.ptr> @ropeattn_kernels::@rotary_1
// CHECK:         gpu.launch_func <%[[S]] : !llvm.ptr> @ropeattn_kernels::@attention_2
// CHECK:         llvm.call @mgpuStreamSynchronize(%[[S]])
// CHECK:         llvm.call @mgpuStreamDestroy(%[[S]])
// CHECK:       llvm.func @_mlir_ciface_fwd(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// CHECK-SAME:    ropeattn.abi = (tensor<1x2x64x16xf16>, tensor<1x2x64x16xf16>, tensor<1x2x64x16xf16>) -> tensor<1x2x64x16xf16>
// SM80:        gpu.binary @ropeattn_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">, properties = {{.*}}, bin = "\7FELF\02\01\01{{.}}{{.*}}\02\00\BE\00
// SM90:        gpu.binary @ropeattn_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, properties = {{.*}}, bin = "\7FELF\02\01\01{{.}}{{.*}}\02\00\BE\00
// CHECK-NOT:   gpu.module
// The fatbinary magic 0xBA55ED50.
// FATBIN:      gpu.binary @ropeattn_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, properties = {{.*}}, "P\EDU\BA

// The attention kernel keeps everything in registers (no spills) at D = 16.
// PTXAS:      Compiling entry function 'attention_2' for 'sm_90'
// PTXAS-NEXT: Function properties for attention_2
// PTXAS-NEXT: 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
// PTXAS-NEXT: Used {{[0-9]+}} registers, used 1 barriers, {{[0-9]+}} bytes smem
// PTXAS:      Compiling entry function 'rotary_{{[01]}}' for 'sm_90'

func.func @fwd(%q: tensor<1x2x64x16xf16>, %k: tensor<1x2x64x16xf16>, %v: tensor<1x2x64x16xf16>) -> tensor<1x2x64x16xf16> {
  %o = ropeattn.attention %q, %k, %v causal rope <> : (tensor<1x2x64x16xf16>, tensor<1x2x64x16xf16>, tensor<1x2x64x16xf16>) -> tensor<1x2x64x16xf16>
  return %o : tensor<1x2x64x16xf16>
}
