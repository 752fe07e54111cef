// ropeattn-lower-fft: the codegen lowering (radix-2 Stockham on split planes)
// and the library lowering (FFTW through the runtime).
// RUN: rope-opt %s -ropeattn-lower-fft | FileCheck %s --check-prefix=CODEGEN
// RUN: rope-opt %s -ropeattn-lower-fft=backend=library | FileCheck %s --check-prefix=LIB

// Each shape and direction becomes one private function, called by the ops.
// CODEGEN-LABEL: func @inverse4
// CODEGEN: %[[R:.*]] = call @__ropeattn_fft_2x4_f32_inv(%arg0) : (tensor<2x4x2xf32>) -> tensor<2x4x2xf32>
// CODEGEN: return %[[R]]

// Batch dims are collapsed to one and restored; f64 calls the f64 entry.
// CODEGEN-LABEL: func @batched_f64
// CODEGEN: %[[C:.*]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2], [3]] : tensor<3x5x8x2xf64> into tensor<15x8x2xf64>
// CODEGEN: %[[Y:.*]] = call @__ropeattn_fft_15x8_f64_fwd(%[[C]])
// CODEGEN: tensor.expand_shape %[[Y]] {{\[\[}}0, 1], [2], [3]] output_shape [3, 5, 8, 2] : tensor<15x8x2xf64> into tensor<3x5x8x2xf64>

// L = 1 is the identity, forward and inverse.
// CODEGEN-LABEL: func @length_one
// CODEGEN-NEXT: return %arg0

// L = 4, inverse: twiddles e^{+2πi p/4}, p < 2 (cos: [1, 0], sin: [0, 1]).
// CODEGEN-LABEL: func private @__ropeattn_fft_2x4_f32_inv
// CODEGEN-DAG: %[[WR:.*]] = arith.constant dense<[1.000000e+00, 0.000000e+00]> : tensor<2xf32>
// CODEGEN-DAG: %[[WI:.*]] = arith.constant dense<[0.000000e+00, 1.000000e+00]> : tensor<2xf32>
// Split planes re = x[.., 0], im = x[.., 1].
// CODEGEN: %[[P:[0-9]+]]:2 = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<2x4x2xf32>, tensor<2x4x2xf32>) outs(%{{.*}}, %{{.*}} : tensor<2x4xf32>, tensor<2x4xf32>)
// Stage 0 (s = 1, m = 2): x viewed [B, 2, m, s], y [B, m, 2, s], every twiddle.
// CODEGEN: tensor.expand_shape %[[P]]#0 {{\[\[}}0], [1, 2, 3]] output_shape [2, 2, 2, 1]
// CODEGEN: tensor.extract_slice %[[WR]][0] [2] [1]
// CODEGEN: %[[S0:[0-9]+]]:2 = linalg.generic {{.*}} outs(%{{.*}}, %{{.*}} : tensor<2x2x2x1xf32>, tensor<2x2x2x1xf32>)
// CODEGEN: arith.select
// Stage 1 (s = 2, m = 1): every second twiddle; it writes into the split
// planes (dead after stage 0): ping-pong buffers, no allocation per stage.
// CODEGEN: tensor.expand_shape {{.*}} output_shape [2, 2, 1, 2]
// CODEGEN: tensor.extract_slice %[[WR]][0] [1] [2]
// CODEGEN: %[[O0:.*]] = tensor.expand_shape %[[P]]#0 {{\[\[}}0], [1, 2, 3]] output_shape [2, 1, 2, 2]
// CODEGEN: %[[O1:.*]] = tensor.expand_shape %[[P]]#1 {{\[\[}}0], [1, 2, 3]] output_shape [2, 1, 2, 2]
// CODEGEN: linalg.generic {{.*}} outs(%[[O0]], %[[O1]] : tensor<2x1x2x2xf32>, tensor<2x1x2x2xf32>)
// Interleave and scale by 1/L.
// CODEGEN: linalg.generic {{.*}} outs(%{{.*}} : tensor<2x4x2xf32>)
// CODEGEN: arith.constant 2.500000e-01 : f32
// CODEGEN-LABEL: func private @__ropeattn_fft_15x8_f64_fwd
// CODEGEN-NOT: ropeattn.fft

// LIB: func.func private @ropeattn_fft_f32(memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i32) attributes {llvm.emit_c_interface}
// LIB-LABEL: func @inverse4
// LIB: %[[IN:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<2x4x2xf32> to memref<2x4x2xf32, strided<[?, ?, ?], offset: ?>>
// LIB: %[[OUT:.*]] = memref.alloc() : memref<2x4x2xf32>
// LIB: %[[ONE:.*]] = arith.constant 1 : i32
// LIB: call @ropeattn_fft_f32(%{{.*}}, %{{.*}}, %[[ONE]])
// LIB: bufferization.to_tensor %[[OUT]] restrict writable
func.func @inverse4(%x: tensor<2x4x2xf32>) -> tensor<2x4x2xf32> {
  %y = ropeattn.fft %x inverse : tensor<2x4x2xf32>
  return %y : tensor<2x4x2xf32>
}

// LIB-LABEL: func @batched_f64
// LIB: %[[ZERO:.*]] = arith.constant 0 : i32
// LIB: call @ropeattn_fft_f64(%{{.*}}, %{{.*}}, %[[ZERO]])
func.func @batched_f64(%x: tensor<3x5x8x2xf64>) -> tensor<3x5x8x2xf64> {
  %y = ropeattn.fft %x : tensor<3x5x8x2xf64>
  return %y : tensor<3x5x8x2xf64>
}

func.func @length_one(%x: tensor<7x1x2xf32>) -> tensor<7x1x2xf32> {
  %y = ropeattn.fft %x inverse : tensor<7x1x2xf32>
  return %y : tensor<7x1x2xf32>
}

// Stages whose contiguous run s is shorter than a vector (16 f32 lanes; 8
// for f64) are vector loops over the flat index i = p·s + q: four reads,
// the twiddle of lane l is table[i + l − l mod s], and the sums and twiddled
// differences are interleaved in blocks of s by shuffles into
// y[2i, 2i + 32). L = 32: s = 1, 2, 4, 8 take this form, s = 16 the generic.
// CODEGEN-LABEL: func private @__ropeattn_fft_2x32_f32_fwd
// CODEGEN: %[[TRE:.*]] = arith.constant dense<[1.000000e+00,
// CODEGEN: bufferization.alloc_tensor() : tensor<2x32xf32>
// CODEGEN: bufferization.alloc_tensor() : tensor<2x32xf32>
// Stage 0 (s = 1): one step of 16 lanes per batch row.
// CODEGEN: scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CODEGEN: scf.for %[[I:.*]] = %{{.*}} to %[[H:.*]] step %{{.*}} iter_args
// CODEGEN: %[[IH:.*]] = arith.addi %[[I]], %[[H]]
// CODEGEN: vector.transfer_read %{{.*}}[%[[B]], %[[I]]], %{{.*}} {in_bounds = [true]} : tensor<2x32xf32>, vector<16xf32>
// CODEGEN: vector.transfer_read %{{.*}}[%[[B]], %[[IH]]]
// CODEGEN: %[[W:.*]] = vector.transfer_read %[[TRE]][%[[I]]]
// CODEGEN: vector.shuffle %[[W]], %[[W]] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
// CODEGEN: %[[O0:.*]] = arith.addi %[[I]], %[[I]]
// CODEGEN: vector.shuffle %{{.*}}, %{{.*}} [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23]
// CODEGEN: vector.transfer_write %{{.*}}, %{{.*}}[%[[B]], %[[O0]]] {in_bounds = [true]}
// CODEGEN: vector.shuffle %{{.*}}, %{{.*}} [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31]
// Stage 1 (s = 2): pairs of lanes share a twiddle; blocks of two.
// CODEGEN: vector.shuffle %{{.*}}, %{{.*}} [0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14]
// CODEGEN: vector.shuffle %{{.*}}, %{{.*}} [0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23]
// Stage 3 (s = 8).
// CODEGEN: vector.shuffle %{{.*}}, %{{.*}} [0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8]
// CODEGEN: vector.shuffle %{{.*}}, %{{.*}} [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]
// Stage 4 (s = 16, m = 1) is the generic again.
// CODEGEN: linalg.generic {{.*}} outs(%{{.*}}, %{{.*}} : tensor<2x1x2x16xf32>, tensor<2x1x2x16xf32>)
func.func @short_stages(%x: tensor<2x32x2xf32>) -> tensor<2x32x2xf32> {
  %y = ropeattn.fft %x : tensor<2x32x2xf32>
  return %y : tensor<2x32x2xf32>
}
