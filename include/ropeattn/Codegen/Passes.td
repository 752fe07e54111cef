//===- Passes.td - ropeattn code generation passes ---------*- tablegen -*-===//
//
// Part of the ropeattn project. Passes of the CPU/GPU pipelines that are not
// specific to the ropeattn dialect.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_CODEGEN_PASSES_TD
#define ROPEATTN_CODEGEN_PASSES_TD

include "mlir/Pass/PassBase.td"

def RopeAttnExportABI : Pass<"ropeattn-export-abi", "::mlir::ModuleOp"> {
  let summary = "records each public function's tensor signature for runners";
  let description = [{
    Marks every public `func.func` with `llvm.emit_c_interface` (so that
    `_mlir_ciface_<name>` exists after lowering), records its original
    signature as `ropeattn.abi = <function type>`, and marks its tensor
    arguments `bufferization.writable = false`: a caller's inputs are never
    modified (bufferization copies instead of updating them in place). The attribute survives the
    lowering to the LLVM dialect, so `rope-run` can execute already-lowered IR:
    after `rope-lower-to-cpu`, `_mlir_ciface_<name>` takes pointers to ranked
    memref descriptors, the inputs first and then one out-parameter per result.

    ```mlir
    func.func @f(%a: tensor<4xf32>) -> tensor<4xf32>
    // becomes
    func.func @f(%a: tensor<4xf32> {bufferization.writable = false})
        -> tensor<4xf32>
        attributes {llvm.emit_c_interface,
                    ropeattn.abi = (tensor<4xf32>) -> tensor<4xf32>}
    ```

    Private functions and declarations are left alone.
  }];
}

def RopeAttnApproximateMath : Pass<"ropeattn-approximate-math"> {
  let summary = "replaces f32 math.exp (and friends) with vectorizable polynomials";
  let description = [{
    `math.exp` on f32 otherwise lowers to a scalar libm call, which stops
    LLVM's loop vectorizer. This pass applies MLIR's polynomial approximations
    (exp, log, expm1, log1p, tanh on f32 and vectors of f32), whose error is a
    few ulp — within the accuracy contract of docs/Spec.md. f64 math is left
    to libm.

    ```mlir
    %y = math.exp %x : f32
    // becomes a Cody–Waite range reduction + polynomial + exponent bit shift
    // (arith ops only).
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::math::MathDialect"];
}

def RopeAttnMatmulToBlas : Pass<"ropeattn-matmul-to-blas", "::mlir::ModuleOp"> {
  let summary = "turns f32/f64 linalg.matmul on memrefs into BLAS calls";
  let description = [{
    Rewrites every `linalg.matmul` on 2-D memrefs of f32 or f64 whose
    indexing maps are C(i, j) += A(i, k)·B(k, j) with A and/or B transposed
    into a call to the ropeattn runtime (`libropeattn_runtime.so`), which
    forwards rows with unit stride to OpenBLAS `cblas_sgemm`/`cblas_dgemm`
    and other layouts to a plain loop. The product accumulates into C
    (beta = 1) unless the op right before it fills C with zero: that fill is
    dropped and beta = 0.

    ```mlir
    linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (i, k)>,
                                   affine_map<(i, j, k) -> (j, k)>,
                                   affine_map<(i, j, k) -> (i, j)>]
        ins(%a, %b : memref<?x64xf32, strided<[64, 1], offset: ?>>, ...)
        outs(%c : memref<?x?xf32>)
    // becomes
    %ca = memref.cast %a : ... to memref<?x?xf32, strided<[?, ?], offset: ?>>
    ...
    func.call @ropeattn_matmul_f32(%ca, %cb, %cc, %false, %true, %true)
    //                                  transA, transB, accumulate
    ```

    Why a library call: measured in bench/results (see docs/Design.md), the
    loops that linalg-to-loops + LLVM produce run a tile matmul far below
    OpenBLAS on this machine. Other matmuls (other types, batched, mixed
    precision) are left to the loop lowering.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif // ROPEATTN_CODEGEN_PASSES_TD
