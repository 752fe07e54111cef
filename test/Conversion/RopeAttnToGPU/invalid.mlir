// RUN: rope-opt %s -split-input-file -verify-diagnostics -convert-ropeattn-to-gpu
// RUN: not rope-opt %s -split-input-file -convert-ropeattn-to-gpu="block-q=0" 2>&1 | FileCheck %s --check-prefix=BLOCKQ
// RUN: not rope-opt %s -split-input-file -convert-ropeattn-to-gpu="block-k=0" 2>&1 | FileCheck %s --check-prefix=BLOCKK

// RUN: not rope-opt %s -split-input-file -convert-ropeattn-to-gpu="family=bogus" 2>&1 | FileCheck %s --check-prefix=FAMILY
// RUN: not rope-opt %s -split-input-file -convert-ropeattn-to-gpu="epsilon=0" 2>&1 | FileCheck %s --check-prefix=POLYOPTS
// RUN: not rope-opt %s -split-input-file -convert-ropeattn-to-gpu="poly-chunk=0" 2>&1 | FileCheck %s --check-prefix=POLYOPTS

// BLOCKQ: convert-ropeattn-to-gpu: block-q must be in [1, 1024], got 0
// FAMILY: convert-ropeattn-to-gpu: unknown polynomial family 'bogus' (expected taylor, chebyshev or minimax)
// POLYOPTS: convert-ropeattn-to-gpu: expected epsilon > 0, max-degree >= 1, max-rank >= 1, poly-chunk >= 1 and max-state-mib >= 0
// BLOCKK: convert-ropeattn-to-gpu: block-k must be >= 1, got 0

func.func @f64(%q: tensor<1x4x8xf64>) -> tensor<1x4x8xf64> {
  // expected-error @below {{convert-ropeattn-to-gpu: expected f16, bf16 or f32 operands, found 'f64'}}
  %o = ropeattn.attention %q, %q, %q : (tensor<1x4x8xf64>, tensor<1x4x8xf64>, tensor<1x4x8xf64>) -> tensor<1x4x8xf64>
  return %o : tensor<1x4x8xf64>
}

// -----

func.func @other_op(%q: tensor<1x4x8xf32>) -> tensor<1x4x8xf32> {
  // expected-error @below {{convert-ropeattn-to-gpu: only functions made of ropeattn.attention, ropeattn.attention_grad and ropeattn.fft ops are lowered to CUDA yet; found 'ropeattn.rotary'}}
  %r = ropeattn.rotary %q rope <> : tensor<1x4x8xf32>
  %o = ropeattn.attention %r, %q, %q : (tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  return %o : tensor<1x4x8xf32>
}

// -----

// expected-error @below {{convert-ropeattn-to-gpu: expected statically shaped tensor arguments, found 'tensor<1x?x8xf32>'}}
func.func @dynamic(%q: tensor<1x?x8xf32>) -> tensor<1x?x8xf32> {
  %o = ropeattn.attention %q, %q, %q : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  return %o : tensor<1x?x8xf32>
}

// -----

func.func @shared_memory(%q: tensor<1x4x512xf32>) -> tensor<1x4x512xf32> {
  // expected-error @below {{convert-ropeattn-to-gpu: the tiles need 139520 bytes of shared memory (block-q = 64, block-k = 32, D = 512, Dv = 512); at most 49152 are available}}
  %o = ropeattn.attention %q, %q, %q : (tensor<1x4x512xf32>, tensor<1x4x512xf32>, tensor<1x4x512xf32>) -> tensor<1x4x512xf32>
  return %o : tensor<1x4x512xf32>
}

// -----

func.func @grid(%q: tensor<65536x1x8xf32>) -> tensor<65536x1x8xf32> {
  // expected-error @below {{convert-ropeattn-to-gpu: batch x heads = 65536 exceeds the grid's y limit 65535}}
  %o = ropeattn.attention %q, %q, %q : (tensor<65536x1x8xf32>, tensor<65536x1x8xf32>, tensor<65536x1x8xf32>) -> tensor<65536x1x8xf32>
  return %o : tensor<65536x1x8xf32>
}

// -----

func.func @grad_bias(%q: tensor<1x4x8xf32>, %b: tensor<7xf32>) -> (tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<7xf32>) {
  // expected-error @below {{convert-ropeattn-to-gpu: attention_grad with a relative-position bias is not supported on CUDA yet}}
  %dq, %dk, %dv, %db = ropeattn.attention_grad %q, %q, %q, %q, %q bias(%b) : (tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<7xf32>) -> (tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<7xf32>)
  return %dq, %dk, %dv, %db : tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<7xf32>
}

// -----

func.func @grad_zero_head_dim(%q: tensor<1x4x0xf32>, %v: tensor<1x4x8xf32>) -> (tensor<1x4x0xf32>, tensor<1x4x0xf32>, tensor<1x4x8xf32>) {
  // expected-error @below {{convert-ropeattn-to-gpu: attention_grad with a zero head dimension is not supported on CUDA}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %v, %v, %v : (tensor<1x4x0xf32>, tensor<1x4x0xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> (tensor<1x4x0xf32>, tensor<1x4x0xf32>, tensor<1x4x8xf32>)
  return %dq, %dk, %dv : tensor<1x4x0xf32>, tensor<1x4x0xf32>, tensor<1x4x8xf32>
}

// -----

func.func @grad_shared_memory(%q: tensor<1x4x1024xf32>) -> (tensor<1x4x1024xf32>, tensor<1x4x1024xf32>, tensor<1x4x1024xf32>) {
  // expected-error @below {{convert-ropeattn-to-gpu: the tiles need 270592 bytes of shared memory (block-q = 64, block-k = 32, D = 1024, Dv = 1024); at most 49152 are available}}
  %dq, %dk, %dv = ropeattn.attention_grad %q, %q, %q, %q, %q : (tensor<1x4x1024xf32>, tensor<1x4x1024xf32>, tensor<1x4x1024xf32>, tensor<1x4x1024xf32>, tensor<1x4x1024xf32>) -> (tensor<1x4x1024xf32>, tensor<1x4x1024xf32>, tensor<1x4x1024xf32>)
  return %dq, %dk, %dv : tensor<1x4x1024xf32>, tensor<1x4x1024xf32>, tensor<1x4x1024xf32>
}

// -----

func.func @fft_rank2(%x: tensor<16x2xf32>) -> tensor<16x2xf32> {
  // expected-error @below {{convert-ropeattn-to-gpu: ropeattn.fft on CUDA expects a batch dimension ([B.., L, 2])}}
  %y = ropeattn.fft %x : tensor<16x2xf32>
  return %y : tensor<16x2xf32>
}
