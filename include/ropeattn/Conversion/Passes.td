//===- Passes.td - ropeattn conversion passes --------------*- tablegen -*-===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//

#ifndef ROPEATTN_CONVERSION_PASSES_TD
#define ROPEATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertRopeAttnToLinalg : Pass<"convert-ropeattn-to-linalg"> {
  let summary = "exact, flash-style lowering of ropeattn ops to linalg on tensors";
  let description = [{
    The oracle of the project: lowers `ropeattn.rotary`, `ropeattn.attention`
    and `ropeattn.attention_grad` (every option of docs/Spec.md: both RoPE
    layouts, partial rotary, explicit positions, causal with bottom-right
    alignment, GQA, bias, batch dimensions, logsumexp) to
    linalg/tensor/arith/math/scf on tensors, in destination-passing style.

    Attention is computed flash-style: an `scf.forall` over (batch·head,
    query block) and an `scf.for` over key blocks with an online softmax
    (running max, running sum, rescaled accumulator); the N×M logit matrix is
    never materialized, so memory is O((N + M)·D) plus one block-q × block-k
    tile per thread. Matmuls on tiles are `linalg.matmul` (with transposing
    indexing maps), which the CPU pipeline turns into BLAS calls or loops.
    The backward recomputes the probabilities from the logsumexp (computed by
    the forward kernel when not given), parallel over key/value heads so that
    dk/dv/dq accumulate without races: per key block, dv += Pᵀ dO,
    dS = P∘(dO Vᵀ − Δ), dk += dSᵀ q·s, dq += s·dS k.

    f16/bf16 operands are extended to f32 once and every intermediate (also the
    rotated q, k) stays in the accumulation type; results are rounded to the
    element type once. Angles of the rotary embedding are computed in f64.

    Before (one op):

    ```mlir
    %o = ropeattn.attention %q, %k, %v causal : (...) -> tensor<4x1024x64xf32>
    ```

    After (sketch):

    ```mlir
    %r = scf.forall (%bh, %qb) in (4, 8) shared_outs(%out = %init) -> ... {
      %acc:3 = scf.for %j = %c0 to %kend step %c256 iter_args(%m, %l, %a) {
        %s = linalg.matmul indexing_maps = [...] ins(%qt, %kt) outs(%zero)
        ...                                   // max, exp, sum, rescale
        %a2 = linalg.matmul ins(%p, %vt) outs(%a1)
        scf.yield %m2, %l2, %a2
      }
      scf.forall.in_parallel { tensor.parallel_insert_slice ... }
    }
    ```

    Ops with dynamic shapes and `ropeattn.general_attention(_grad)` are not
    lowered yet: the pass fails with an error that says so.
  }];
  let options = [
    Option<"blockQ", "block-q", "int64_t", /*default=*/"128",
           "rows of a query block">,
    Option<"blockK", "block-k", "int64_t", /*default=*/"256",
           "rows of a key block">,
  ];
  let dependentDialects = [
    "::mlir::affine::AffineDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def RopeAttnLowerFft : Pass<"ropeattn-lower-fft", "::mlir::ModuleOp"> {
  let summary = "lowers ropeattn.fft to generated code or to FFTW calls";
  let description = [{
    Two lowerings of `ropeattn.fft` (docs/Spec.md, "ropeattn.fft"), chosen by
    `backend`:

    * `codegen`: a radix-2 Stockham autosort FFT in linalg on tensors,
      O(L log L): the input is split into real and imaginary planes
      `[B, L]`, then `log2 L` stages (one `linalg.generic` each, over
      `[B, L/2^(t+1), 2, 2^t]`; the innermost loop runs over contiguous
      elements and vectorizes) ping-pong between planes, and a last generic
      interleaves (and scales by 1/L for `inverse`). The twiddle factors
      `e^{∓2πi·p/L}`, `p < L/2`, are one compile-time table (computed in
      f64, rounded once); stage t reads every 2^t-th entry. Power-of-two
      `L` only (other lengths are an error: pad where the math allows, as
      the Toeplitz embedding does, or use `backend=library`).
    * `library`: a call to `ropeattn_fft_f32/f64` of the ropeattn runtime
      (libropeattn_runtime.so), which runs FFTW (`fftw_plan_many_dft`, one
      plan per size, batch and stride, cached; planner FFTW_MEASURE unless
      `ROPEATTN_FFTW_PLANNER=estimate|measure|patient` says otherwise). Any
      `L`.

    ```mlir
    %y = ropeattn.fft %x : tensor<4x1024x2xf32>
    // backend=library becomes (sketch)
    %in = bufferization.to_buffer %x read_only : ... to memref<4x1024x2xf32, strided<...>>
    %out = memref.alloc() : memref<4x1024x2xf32>
    func.call @ropeattn_fft_f32(%in_cast, %out_cast, %c0_i32) : (...) -> ()
    %y = bufferization.to_tensor %out restrict writable : ...
    ```

    Static shapes only (the pass reports others).
  }];
  let options = [
    Option<"backend", "backend", "std::string", /*default=*/"\"codegen\"",
           "codegen (radix-2 Stockham in linalg) or library (FFTW)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // ROPEATTN_CONVERSION_PASSES_TD
