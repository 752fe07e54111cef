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

def RopeAttnVectorizeSkinnyMatmul : Pass<"ropeattn-vectorize-skinny-matmul"> {
  let summary = "register-blocked vector kernels for matmuls with a few output rows";
  let description = [{
    Rewrites `linalg.matmul` on memrefs of f32/f64 of the form

    ```
    C[i, j] += Σ_k L(i, k) · R[k, j]      i < n, n static and <= max-rows
    ```

    with L indexed (k, i) or (i, k) and C, R of unit stride along j, into
    an scf loop over column tiles of `vector-bits / bitwidth` columns: n
    vector accumulators, one vector load of R per k feeding n fused
    multiply-adds with broadcast elements of L, one (masked, for the last
    tile) read-modify-write of C per tile. The polynomial method's products
    with the Dv + 1 value columns have this shape (docs/Design.md, "Skinny
    products"): BLAS packs the long operand for a few FLOPs per element
    there, this kernel reads it once and is bound by the FMA units.

    ```mlir
    linalg.matmul indexing_maps = [affine_map<(i, j, k) -> (k, i)>,
                                   affine_map<(i, j, k) -> (k, j)>,
                                   affine_map<(i, j, k) -> (i, j)>]
        ins(%l, %r : memref<?x17xf32>, memref<?x?xf32>)
        outs(%c : memref<17x?xf32>)
    // becomes
    scf.for %j0 = %c0 to %full step %c16 {
      %acc:17 = scf.for %k = %c0 to %K step %c1 iter_args(...) {
        %a = vector.load %r[%k, %j0] : memref<?x?xf32>, vector<16xf32>
        %s = memref.load %l[%k, %c0] : memref<?x17xf32>
        %b = vector.broadcast %s : f32 to vector<16xf32>
        %f = vector.fma %a, %b, %acc0 : vector<16xf32>
        ...
      }
      // C[i, j0:j0+16] += %acc#i
    }
    scf.if %has_remainder { ... the same with vector.maskedload/store ... }
    ```

    Also handled: R read as (j, k) from [M, K] (blocks of `lanes` k, loaded
    as `lanes` rows and transposed in registers by butterfly shuffles), C
    with up to 4·max-rows rows (row blocks of at most max-rows, each its own
    loop), and the small-depth form (static K <= max-rows, any number of
    rows: per row of C, the K elements of L broadcast once, then K FMAs per
    column tile). Other matmuls are left alone (for ropeattn-matmul-to-blas
    or the loop lowering). `max-rows` = 0 disables the pass.
  }];
  let options = [
    Option<"maxRows", "max-rows", "int64_t", /*default=*/"24",
           "Largest static row count n of C rewritten (n vector accumulators "
           "must fit the register file)">,
    Option<"vectorBits", "vector-bits", "int64_t", /*default=*/"512",
           "Vector register width in bits (512: AVX-512, 256: AVX2)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

#endif // ROPEATTN_CODEGEN_PASSES_TD
