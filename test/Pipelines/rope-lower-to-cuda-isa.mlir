// The device code as PTX (LLVM's NVPTX backend, no ptxas needed; libdevice
// comes from the CUDA toolkit): the chip, PTX version, workgroup (shared)
// tiles, barriers and the math.
// REQUIRES: cuda-runtime
// RUN: rope-opt %s --rope-lower-to-cuda="format=isa chip=sm_80 block-q=32 block-k=16" | %python %S/Inputs/extract_ptx.py | FileCheck %s

// CHECK:     .version 8.0
// CHECK:     .target sm_80
// CHECK:     .address_size 64
// CHECK:     .visible .entry attention_0(
// K tile 16x8 f32, V tile 16x4 f32, logits 32x17 f32.
// CHECK-DAG: .shared .align 16 .b8 __wg_attention_0_0[512];
// CHECK-DAG: .shared .align 16 .b8 __wg_attention_0_1[256];
// CHECK-DAG: .shared .align 4 .b8 __wg_attention_0_2[2176];
// CHECK:     bar.sync 0;
// Rows of the K tile (D = 8) are read with 16-byte shared loads (broadcast:
// every thread reads the same key), feeding the logits' FMA chains.
// CHECK:     ld.shared.v4.b32
// CHECK:     fma.rn.f32
// CHECK:     ex2.approx.ftz.f32
// CHECK:     ld.shared.v4.b32
// CHECK:     bar.sync 0;
// The logsumexp (libdevice logf, inlined) and the f16 results.
// CHECK:     cvt.rn.f16.f32
// CHECK:     ret;

func.func @fwd(%q: tensor<2x100x8xf16>, %k: tensor<2x90x8xf16>, %v: tensor<2x90x4xf16>) -> (tensor<2x100x4xf16>, tensor<2x100xf32>) {
  %o, %l = ropeattn.attention %q, %k, %v causal : (tensor<2x100x8xf16>, tensor<2x90x8xf16>, tensor<2x90x4xf16>) -> (tensor<2x100x4xf16>, tensor<2x100xf32>)
  return %o, %l : tensor<2x100x4xf16>, tensor<2x100xf32>
}
