// The polynomial method on CUDA through the whole pipeline: cubins for sm_80
// and sm_90, the host reads the certified case once (mgpuMemcpy + stream
// synchronize) and switches between the compiled degrees and the exact
// kernels; ptxas' report for the polynomial kernels at D = 16 (no spills).
// REQUIRES: ptxas
// RUN: rope-opt %s --rope-lower-to-cuda="chip=sm_80 max-degree=4" | FileCheck %s --check-prefixes=CHECK,SM80
// RUN: rope-opt %s --rope-lower-to-cuda="chip=sm_90 max-degree=4" | FileCheck %s --check-prefixes=CHECK,SM90
// RUN: rope-opt %s --rope-lower-to-cuda="format=isa max-degree=4" | %python %S/Inputs/extract_ptx.py > %t.ptx
// RUN: %cuda_toolkit/bin/ptxas -arch=sm_90 -v %t.ptx -o %t.cubin > %t.log 2>&1
// RUN: FileCheck %s --check-prefix=PTXAS < %t.log
// RUN: FileCheck %s --check-prefix=KERNELS < %t.log

// The feature tables of degrees 1 … 4 (minimax) are host constants:
// C(16 + g, g) rows of g column indices and two rows of split weights.
// CHECK-DAG:   llvm.mlir.global private constant @ropeattn_poly_table_{{[0-9]+}}_idx({{.*}} : tensor<17x1xi32>)
// CHECK-DAG:   llvm.mlir.global private constant @ropeattn_poly_table_{{[0-9]+}}_w({{.*}} : tensor<2x17xf32>)
// CHECK-DAG:   llvm.mlir.global private constant @ropeattn_poly_table_{{[0-9]+}}_idx({{.*}} : tensor<4845x4xi32>)
// CHECK-DAG:   llvm.mlir.global private constant @ropeattn_poly_table_{{[0-9]+}}_w({{.*}} : tensor<2x4845xf32>)
// CHECK:       llvm.func @fwd(
// CHECK:         gpu.launch_func <%[[S:.*]] : !llvm.ptr> @ropeattn_kernels::@norm_partials_
// CHECK:         gpu.launch_func <%[[S]] : !llvm.ptr> @ropeattn_kernels::@poly_select_
// CHECK:         llvm.call @mgpuMemcpy(
// CHECK-NEXT:    llvm.call @mgpuStreamSynchronize(%[[S]])
// CHECK:         llvm.switch %{{.*}} : i32, ^[[EXACT:bb[0-9]+]] [
// CHECK-NEXT:      0: ^bb
// CHECK-NEXT:      1: ^bb
// CHECK-NEXT:      2: ^bb
// CHECK-NEXT:      3: ^bb
// CHECK-NEXT:    ]
// CHECK:         gpu.launch_func {{.*}}@ropeattn_kernels::@poly_states_
// CHECK:         gpu.launch_func {{.*}}@ropeattn_kernels::@poly_scan_
// CHECK:         gpu.launch_func {{.*}}@ropeattn_kernels::@poly_query_
// CHECK:       ^[[EXACT]]:
// CHECK:         gpu.launch_func {{.*}}@ropeattn_kernels::@attention_
// SM80:        gpu.binary @ropeattn_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">, properties = {{.*}}, bin = "\7FELF
// SM90:        gpu.binary @ropeattn_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, properties = {{.*}}, bin = "\7FELF
// CHECK-NOT:   gpu.module

// KERNELS-DAG:   Compiling entry function 'poly_states_{{[0-9]+}}' for 'sm_90'
// KERNELS-DAG:   Compiling entry function 'poly_scan_{{[0-9]+}}' for 'sm_90'
// KERNELS-DAG:   Compiling entry function 'poly_select_{{[0-9]+}}' for 'sm_90'
// KERNELS-DAG:   Compiling entry function 'norm_partials_{{[0-9]+}}' for 'sm_90'
// The query kernel of each degree keeps its Dv + 1 = 17 accumulators in
// registers.
// PTXAS:       Compiling entry function 'poly_query_{{[0-9]+}}' for 'sm_90'
// PTXAS-NEXT:  Function properties for poly_query_
// PTXAS-NEXT:  0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads

func.func @fwd(%q: tensor<1x2x1024x16xf16>, %k: tensor<1x2x1024x16xf16>, %v: tensor<1x2x1024x16xf16>) -> (tensor<1x2x1024x16xf16>, tensor<5xf64>) {
  %o, %c = ropeattn.attention %q, %k, %v causal rope <> method polynomial : (tensor<1x2x1024x16xf16>, tensor<1x2x1024x16xf16>, tensor<1x2x1024x16xf16>) -> (tensor<1x2x1024x16xf16>, tensor<5xf64>)
  return %o, %c : tensor<1x2x1024x16xf16>, tensor<5xf64>
}
