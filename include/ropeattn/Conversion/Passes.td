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
    Option<"vectorBits", "vector-bits", "int64_t", /*default=*/"0",
           "width of the register-blocked vector loops of the transposed "
           "ropeattn.poly_features_grad contraction (0: scalar loops)">,
  ];
  let dependentDialects = [
    "::mlir::affine::AffineDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def ConvertRopeAttnToGPU : Pass<"convert-ropeattn-to-gpu", "::mlir::ModuleOp"> {
  let summary = "lowers functions of ropeattn.attention ops to gpu kernels and launches";
  let description = [{
    The CUDA path (docs/Design.md, "Decisions of the CUDA issue"). Every
    public function whose body is made of `ropeattn.attention` ops (static
    shapes, f16/bf16/f32, no bias; causal, GQA, fused RoPE and logsumexp are
    supported) is rewritten into host code on device buffers:

    * the signature becomes `(inputs..., outputs...) -> ()` on memrefs that
      hold device pointers, results written into the caller's out-parameters;
    * the body is one asynchronous chain: `gpu.wait async`, temporaries with
      `gpu.alloc`, `gpu.launch_func` of kernels in a `gpu.module
      @ropeattn_kernels`, `gpu.dealloc`, and a final `gpu.wait`;
    * a fused RoPE becomes a rotary kernel writing q̃, k̃ in acc(E) (angles in
      f64, docs/Spec.md §3), so the rotated operands are never rounded to E;
    * the attention kernel runs one thread block per (query tile of `block-q`
      rows, batch·head) and one thread per query row. Per key tile of `block-k`
      rows, the block stages K and V (converted to acc(E)) in workgroup memory,
      each thread computes its logits into a workgroup array and their maximum,
      rescales its accumulator once and accumulates `exp(ℓ − m)·v` (online
      softmax; running max, sum and the Dv accumulators live in registers as
      loop-carried values). Causal blocks stop at the last key their last row
      sees. Results are rounded to E once.

    Before:

    ```mlir
    func.func @fwd(%q: tensor<2x128x64xf16>, %k: tensor<2x128x64xf16>,
                   %v: tensor<2x128x64xf16>) -> tensor<2x128x64xf16> {
      %o = ropeattn.attention %q, %k, %v causal : (...) -> tensor<2x128x64xf16>
      return %o : tensor<2x128x64xf16>
    }
    ```

    After (sketch):

    ```mlir
    func.func @fwd(%q: memref<2x128x64xf16>, ..., %o: memref<2x128x64xf16>) {
      %t0 = gpu.wait async
      %t1 = gpu.launch_func async [%t0] @ropeattn_kernels::@attention_0
              blocks in (%c2, %c2, %c1) threads in (%c64, %c1, %c1)
              args(%q : ..., %k : ..., %v : ..., %o : ...)
      gpu.wait [%t1]
      return
    }
    ```

    Anything else in such a function (other ops, dynamic shapes, a bias,
    f64) is an error that names it.

    `method polynomial` forwards (docs/Design.md, "CUDA: the polynomial
    path") get the certificate on the device (row norms → β̂ → the cheapest
    compiled degree covering it, and the optional `tensor<5xf64>` result),
    one host read of the chosen case, and an `scf.index_switch` over one
    chain of barrier-free kernels per degree (key states per chunk of
    `poly-chunk` keys, their prefix sum, one thread per query row for
    φ_Q·S plus the exact exponentials of its partially visible chunk) and
    the exact kernels as the default case. `attention_grad` with `method
    polynomial` is lowered exactly (its semantics allow it).

    A relative bias is supported on the exact forward (not on
    `attention_grad`). `ropeattn.fft` ops (f32/f64, `[B.., L, 2]`) become a
    call of the runtime's cuFFT wrapper (`ropeattn_cuda_fft_f32/f64`, after
    synchronizing the chain) and, for the inverse, a kernel scaling by 1/L.
  }];
  let options = [
    Option<"blockQ", "block-q", "int64_t", /*default=*/"64",
           "query rows per thread block (= threads per block)">,
    Option<"blockK", "block-k", "int64_t", /*default=*/"32",
           "key rows per tile staged in shared memory">,
    // The polynomial method (`method polynomial` forward), as in
    // ropeattn-expand-polynomial.
    Option<"familyName", "family", "std::string", /*default=*/"\"minimax\"",
           "polynomial method: taylor, chebyshev or minimax">,
    Option<"epsilon", "epsilon", "double", /*default=*/"1e-3",
           "polynomial method: bound on the relative error of each weight">,
    Option<"maxDegree", "max-degree", "int64_t", /*default=*/"6",
           "polynomial method: largest degree considered">,
    Option<"maxRank", "max-rank", "int64_t", /*default=*/"32768",
           "polynomial method: largest feature rank C(D + g, g)">,
    Option<"maxStateMib", "max-state-mib", "int64_t", /*default=*/"1024",
           "polynomial method: device memory budget of the key states, MiB">,
    Option<"polyChunk", "poly-chunk", "int64_t", /*default=*/"256",
           "polynomial method: keys per state chunk">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def RopeAttnEmulateGPUOnHost : Pass<"ropeattn-emulate-gpu-on-host", "::mlir::ModuleOp"> {
  let summary = "test utility: runs convert-ropeattn-to-gpu's launches on the host";
  let description = [{
    Rewrites the asynchronous gpu host code that `convert-ropeattn-to-gpu`
    emits into plain host code so that the generated kernels can be checked
    against the fp64 reference without a GPU: `gpu.alloc`/`gpu.dealloc` become
    `memref.alloc`/`memref.dealloc`, `gpu.memcpy` a `memref.copy`, `gpu.wait`
    disappears, and each `gpu.launch_func` becomes loops over the grid (and the
    block's threads) with the kernel body inlined: `gpu.block_id` and
    `gpu.thread_id` become loop indices, workgroup memory a host buffer,
    `gpu.barrier` nothing. This is exact only when a kernel with barriers or
    workgroup memory runs one thread per block (`block-q=1`); such launches
    with more threads are an error. The cubin path is not involved: this checks
    the kernels' arithmetic, indexing and masking, not the NVVM lowering.

    Before:

    ```mlir
    %t1 = gpu.launch_func async [%t0] @ropeattn_kernels::@attention_0
            blocks in (%c4, %c2, %c1) threads in (%c1, %c1, %c1) args(...)
    ```

    After:

    ```mlir
    scf.for %x = %c0 to %c4 step %c1 {
      scf.for %y = %c0 to %c2 step %c1 {
        scf.for %t = %c0 to %c1 step %c1 { ... kernel body ... }
      }
    }
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
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
      f64, rounded once); stage t reads every 2^t-th entry. Stages whose
      contiguous run 2^t is shorter than a vector (16 f32 / 8 f64 lanes) are
      instead `scf.for` loops of `vector.transfer_read` / `vector.shuffle` /
      `vector.transfer_write` on the planes: the inputs are contiguous over
      the flat index, the twiddles one read and a shuffle, and the two
      outputs are interleaved in blocks of 2^t by shuffles. Power-of-two
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
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

#endif // ROPEATTN_CONVERSION_PASSES_TD
