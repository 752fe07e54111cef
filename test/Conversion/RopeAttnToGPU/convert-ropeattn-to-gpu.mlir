// RUN: rope-opt %s -split-input-file -convert-ropeattn-to-gpu="block-q=32 block-k=16" -canonicalize -cse | FileCheck %s
// RUN: rope-opt %s -split-input-file -convert-ropeattn-to-gpu -canonicalize -cse | FileCheck %s --check-prefix=DEFAULT

// GQA (4 query heads, 2 kv heads), causal with N = 100 > M = 90 (the first 10
// rows see no key), explicit scale, logsumexp. The signature becomes
// (inputs..., outputs...) on memrefs; batch and heads fold into one grid axis.

// CHECK-LABEL: func.func @gqa(
// CHECK-SAME:    %[[Q:.*]]: memref<2x4x100x8xf16>, %[[K:.*]]: memref<2x2x90x8xf16>, %[[V:.*]]: memref<2x2x90x4xf16>,
// CHECK-SAME:    %[[O:.*]]: memref<2x4x100x4xf16>, %[[L:.*]]: memref<2x4x100xf32>)
// CHECK-NOT:   -> 
// CHECK-DAG:     %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG:     %[[C4:.*]] = arith.constant 4 : index
// CHECK-DAG:     %[[C8:.*]] = arith.constant 8 : index
// CHECK-DAG:     %[[C32:.*]] = arith.constant 32 : index
// CHECK:         %[[T0:.*]] = gpu.wait async
// CHECK:         %[[QC:.*]] = memref.collapse_shape %[[Q]] {{\[\[}}0, 1], [2], [3]] : memref<2x4x100x8xf16> into memref<8x100x8xf16>
// CHECK:         %[[LC:.*]] = memref.collapse_shape %[[L]] {{\[\[}}0, 1], [2]] : memref<2x4x100xf32> into memref<8x100xf32>
// ceil(100 / 32) = 4 query tiles on x, batch·heads = 8 on y, 32 threads.
// CHECK:         %[[T1:.*]] = gpu.launch_func async [%[[T0]]] @ropeattn_kernels::@attention_0
// CHECK-SAME:      blocks in (%[[C4]], %[[C8]], %[[C1]]) threads in (%[[C32]], %[[C1]], %[[C1]])
// CHECK-SAME:      args(%[[QC]] : memref<8x100x8xf16>, %{{.*}} : memref<4x90x8xf16>, %{{.*}} : memref<4x90x4xf16>, %{{.*}} : memref<8x100x4xf16>, %[[LC]] : memref<8x100xf32>)
// CHECK:         gpu.wait [%[[T1]]]
// CHECK-NEXT:    return

// CHECK:       gpu.module @ropeattn_kernels
// K tile [16, D] and V tile [16, Dv] in f32, logits [32, 16 + 1] (padded
// rows: thread t reads row t, no bank conflicts).
// CHECK:         gpu.func @attention_0(%[[QA:.*]]: memref<8x100x8xf16>, %[[KA:.*]]: memref<4x90x8xf16>, %[[VA:.*]]: memref<4x90x4xf16>, %[[OA:.*]]: memref<8x100x4xf16>, %[[LA:.*]]: memref<8x100xf32>)
// The K and V tiles are 16-byte aligned for vector loads of their rows.
// CHECK-SAME:      workgroup(%[[KS:.*]] : memref<16x8xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[VS:.*]] : memref<16x4xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[SS:.*]] : memref<32x17xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME:      kernel attributes {known_block_size = array<i32: 32, 1, 1>}
// CHECK-DAG:       %[[NEGINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK-DAG:       %[[SCALE:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-DAG:       %[[TILE:.*]] = gpu.block_id  x
// CHECK-DAG:       %[[BH:.*]] = gpu.block_id  y
// CHECK-DAG:       %[[TID:.*]] = gpu.thread_id  x
// kv head = (batch·Hq + h) / G with G = 2.
// CHECK:           %[[KVH:.*]] = arith.divui %[[BH]], %c2
// CHECK:           %[[ROW0:.*]] = arith.muli %[[TILE]], %c32
// CHECK:           %[[I:.*]] = arith.addi %[[ROW0]], %[[TID]]
// CHECK:           %[[VALID:.*]] = arith.cmpi ult, %[[I]], %c100
// Rows past N load row N - 1 (and store nothing).
// CHECK:           %[[ILOAD:.*]] = arith.minui %[[I]], %c99
// q·s in registers, in f32.
// CHECK:           %[[Q0:.*]] = memref.load %[[QA]][%[[BH]], %[[ILOAD]], %c0]
// CHECK:           %[[Q0E:.*]] = arith.extf %[[Q0]] : f16 to f32
// CHECK:           arith.mulf %[[Q0E]], %[[SCALE]] : f32
// Causal: the block needs keys j <= min(row0 + 31, 99) + (M - N) = ... - 10.
// CHECK:           %[[LAST:.*]] = arith.minui %{{.*}}, %c99
// CHECK:           %[[HZ:.*]] = arith.addi %[[LAST]], %c-9
// CHECK:           %[[HZ0:.*]] = arith.maxsi %[[HZ]], %c0
// CHECK:           %[[KEND:.*]] = arith.minsi %[[HZ0]], %c90
// CHECK:           %[[NT:.*]] = arith.divui %{{.*}}, %c16
// CHECK:           %[[ROWHZ:.*]] = arith.addi %[[I]], %c-10
// Online softmax over key tiles: (max, sum, 4 accumulators).
// CHECK:           %[[RES:.*]]:6 = scf.for %{{.*}} = %c0 to %[[NT]] step %c1 iter_args(%[[M:.*]] = %[[NEGINF]], %{{.*}} = %cst{{.*}}) -> (f32, f32, f32, f32, f32, f32)
// Coalesced staging: thread t copies elements t, t + 32, ... of the tile.
// CHECK:             scf.for %[[E:.*]] = %[[TID]] to %c128 step %c32
// CHECK:               memref.load %[[KA]][%[[KVH]],
// CHECK:               memref.store %{{.*}}, %[[KS]]
// CHECK:             scf.for %{{.*}} = %[[TID]] to %c64 step %c32
// CHECK:               memref.load %[[VA]][%[[KVH]],
// CHECK:               memref.store %{{.*}}, %[[VS]]
// CHECK:             gpu.barrier
// Logits: the K row by two 16-byte vector loads, a fused multiply-add chain
// over D, masked (j < M, j <= i + M - N).
// CHECK:             %[[TMAX:.*]] = scf.for %[[J:.*]] = %c0 to %c16 step %c1 iter_args(%[[MX:.*]] = %[[NEGINF]]) -> (f32)
// CHECK:               vector.load %[[KS]][%[[J]], %c0] {alignment = 16 : i64} : memref<16x8xf32, #gpu.address_space<workgroup>>, vector<4xf32>
// CHECK:               vector.load %[[KS]][%[[J]], %c4] {alignment = 16 : i64}
// CHECK-COUNT-8:       math.fma
// CHECK:               arith.cmpi ult, %{{.*}}, %c90
// CHECK:               arith.cmpi sle, %{{.*}}, %[[ROWHZ]]
// CHECK:               %[[S:.*]] = arith.select %{{.*}}, %{{.*}}, %[[NEGINF]] : f32
// CHECK:               memref.store %[[S]], %[[SS]][%[[TID]], %[[J]]]
// CHECK:               arith.maximumf %[[MX]], %[[S]]
// New max; a row that saw no key yet shifts by 0; rescale once per tile.
// CHECK:             %[[MNEW:.*]] = arith.maximumf %[[M]], %[[TMAX]]
// CHECK:             %[[NOKEY:.*]] = arith.cmpf oeq, %[[MNEW]], %[[NEGINF]]
// CHECK:             %[[SHIFT:.*]] = arith.select %[[NOKEY]], %{{.*}}, %[[MNEW]]
// CHECK:             %[[CORR:.*]] = math.exp %{{.*}} : f32
// CHECK:             scf.for %{{.*}} = %c0 to %c16 step %c1 iter_args
// CHECK:               %[[P:.*]] = math.exp
// CHECK-COUNT-4:       math.fma %[[P]],
// CHECK:             gpu.barrier
// CHECK:             scf.yield %[[MNEW]],
// Epilogue: O = acc / l (0 for an empty row), lse = m + log l (or -inf).
// CHECK:           scf.if %[[VALID]]
// CHECK:             %[[NONEMPTY:.*]] = arith.cmpf ogt, %[[RES]]#1,
// CHECK:             arith.truncf %{{.*}} : f32 to f16
// CHECK:             memref.store %{{.*}}, %[[OA]][%[[BH]], %[[I]], %c0]
// CHECK:             math.log %[[RES]]#1
// CHECK:             arith.select %[[NONEMPTY]], %{{.*}}, %[[NEGINF]]
// CHECK:             memref.store %{{.*}}, %[[LA]][%[[BH]], %[[I]]]
// CHECK:           gpu.return

// DEFAULT-LABEL: func.func @gqa(
// DEFAULT:         gpu.launch_func {{.*}} threads in (%c64, %c1, %c1)
// DEFAULT:       gpu.func @attention_0
// DEFAULT-SAME:    memref<32x8xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<32x4xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<64x33xf32, #gpu.address_space<workgroup>>

func.func @gqa(%q: tensor<2x4x100x8xf16>, %k: tensor<2x2x90x8xf16>, %v: tensor<2x2x90x4xf16>) -> (tensor<2x4x100x4xf16>, tensor<2x4x100xf32>) {
  %o, %l = ropeattn.attention %q, %k, %v causal scale(0.5) : (tensor<2x4x100x8xf16>, tensor<2x2x90x8xf16>, tensor<2x2x90x4xf16>) -> (tensor<2x4x100x4xf16>, tensor<2x4x100xf32>)
  return %o, %l : tensor<2x4x100x4xf16>, tensor<2x4x100xf32>
}

// -----

// Fused RoPE: q and k are rotated by their own kernel into f32 temporaries
// (never rounded to bf16), queries at P + (M - N) + i = 3 + 4 + i, keys at
// P + j = 3 + j; then the attention kernel reads f32 q, k and bf16 v.

// CHECK-LABEL: func.func @rope(
// CHECK:         %[[T0:.*]] = gpu.wait async
// CHECK:         %[[QR:.*]], %[[T1:.*]] = gpu.alloc async [%[[T0]]] () : memref<3x4x8xf32>
// CHECK:         %[[T2:.*]] = gpu.launch_func async [%[[T1]]] @ropeattn_kernels::@rotary_0 blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1) args(%{{.*}} : memref<3x4x8xbf16>, %[[QR]] : memref<3x4x8xf32>)
// CHECK:         %[[KR:.*]], %[[T3:.*]] = gpu.alloc async [%[[T2]]] () : memref<3x8x8xf32>
// CHECK:         %[[T4:.*]] = gpu.launch_func async [%[[T3]]] @ropeattn_kernels::@rotary_1
// CHECK:         %[[T5:.*]] = gpu.launch_func async [%[[T4]]] @ropeattn_kernels::@attention_2 {{.*}} args(%[[QR]] : memref<3x4x8xf32>, %[[KR]] : memref<3x8x8xf32>, %{{.*}} : memref<3x8x8xbf16>, %{{.*}} : memref<3x4x8xbf16>)
// CHECK:         %[[T6:.*]] = gpu.dealloc async [%[[T5]]] %[[QR]]
// CHECK:         %[[T7:.*]] = gpu.dealloc async [%[[T6]]] %[[KR]]
// CHECK:         gpu.wait [%[[T7]]]

// Interleaved pairs (2a, 2a + 1), rotary_dim 6 of 8: theta_a = 100^(-2a/6)
// = exp(a * (-2 ln(100) / 6)) and the angle in f64; cos/sin rounded to f32.
// CHECK:       gpu.func @rotary_0(%[[X:.*]]: memref<3x4x8xbf16>, %[[Y:.*]]: memref<3x4x8xf32>) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK-DAG:     %[[COEF:.*]] = arith.constant -1.5350567286626973 : f64
// CHECK-DAG:     %[[OFF:.*]] = arith.constant 7 : i64
// CHECK:         scf.if
// CHECK:           %[[ROT:.*]] = arith.cmpi ult, %[[C:.*]], %c6 : index
// CHECK:           %[[PAIR:.*]] = arith.divui %[[C]], %c2
// CHECK:           %[[AF:.*]] = arith.sitofp %{{.*}} : i64 to f64
// CHECK:           %[[TH:.*]] = arith.mulf %[[AF]], %[[COEF]] : f64
// CHECK:           %[[THETA:.*]] = math.exp %[[TH]] : f64
// CHECK:           %[[POS:.*]] = arith.addi %{{.*}}, %[[OFF]] : i64
// CHECK:           %[[POSF:.*]] = arith.sitofp %[[POS]] : i64 to f64
// CHECK:           %[[ANGLE:.*]] = arith.mulf %[[POSF]], %[[THETA]] : f64
// CHECK:           math.cos %[[ANGLE]] : f64
// CHECK:           math.sin %[[ANGLE]] : f64
// CHECK:           memref.store %{{.*}}, %[[Y]]
// CHECK:       gpu.func @rotary_1
// CHECK:         arith.constant 3 : i64
// CHECK:       gpu.func @attention_2(%{{.*}}: memref<3x4x8xf32>, %{{.*}}: memref<3x8x8xf32>, %{{.*}}: memref<3x8x8xbf16>, %{{.*}}: memref<3x4x8xbf16>)

func.func @rope(%q: tensor<3x4x8xbf16>, %k: tensor<3x8x8xbf16>, %v: tensor<3x8x8xbf16>) -> tensor<3x4x8xbf16> {
  %o = ropeattn.attention %q, %k, %v rope <base = 100.0, layout = interleaved, rotary_dim = 6, position_offset = 3> : (tensor<3x4x8xbf16>, tensor<3x8x8xbf16>, tensor<3x8x8xbf16>) -> tensor<3x4x8xbf16>
  return %o : tensor<3x4x8xbf16>
}

// -----

// Two ops: the first result feeds the second (a device temporary), the
// second is returned twice (written once, then copied), an input is returned
// as is (copied), and an empty problem (N = 0) launches nothing.

// CHECK-LABEL: func.func @chain(
// CHECK-SAME:    %[[A:[^:]*]]: memref<1x16x8xf32>, %{{.*}}: memref<1x16x8xf32>, %{{.*}}: memref<1x0x8xf32>,
// CHECK-SAME:    %[[R0:[^:]*]]: memref<1x16x8xf32>, %[[R1:[^:]*]]: memref<1x16x8xf32>, %[[R2:[^:]*]]: memref<1x16x8xf32>, %[[R3:[^:]*]]: memref<1x0x8xf32>)
// CHECK:         %[[TMP:.*]], %{{.*}} = gpu.alloc async {{.*}} : memref<1x16x8xf32>
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@attention_0 {{.*}} args(%[[A]] : memref<1x16x8xf32>, %{{.*}}, %{{.*}}, %[[TMP]] : memref<1x16x8xf32>)
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@attention_1 {{.*}} args(%[[TMP]] : memref<1x16x8xf32>, %{{.*}}, %{{.*}}, %[[R0]] : memref<1x16x8xf32>)
// CHECK-NOT:     gpu.launch_func
// CHECK:         gpu.memcpy async {{.*}} %[[R1]], %[[R0]]
// CHECK:         gpu.memcpy async {{.*}} %[[R2]], %[[A]]
// CHECK-NOT:     gpu.memcpy
// CHECK:         gpu.dealloc async {{.*}} %[[TMP]]
// CHECK:         gpu.wait

func.func @chain(%a: tensor<1x16x8xf32>, %b: tensor<1x16x8xf32>, %e: tensor<1x0x8xf32>) -> (tensor<1x16x8xf32>, tensor<1x16x8xf32>, tensor<1x16x8xf32>, tensor<1x0x8xf32>) {
  %0 = ropeattn.attention %a, %b, %b : (tensor<1x16x8xf32>, tensor<1x16x8xf32>, tensor<1x16x8xf32>) -> tensor<1x16x8xf32>
  %1 = ropeattn.attention %0, %a, %b causal : (tensor<1x16x8xf32>, tensor<1x16x8xf32>, tensor<1x16x8xf32>) -> tensor<1x16x8xf32>
  %2 = ropeattn.attention %e, %a, %b : (tensor<1x0x8xf32>, tensor<1x16x8xf32>, tensor<1x16x8xf32>) -> tensor<1x0x8xf32>
  return %1, %1, %a, %2 : tensor<1x16x8xf32>, tensor<1x16x8xf32>, tensor<1x16x8xf32>, tensor<1x0x8xf32>
}

// -----

// Functions without ropeattn ops are left alone.

// CHECK-LABEL: func.func @plain(%{{.*}}: tensor<4xf32>) -> tensor<4xf32>
func.func @plain(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// Backward with fused RoPE, GQA, causal, no logsumexp operand: rotate q and
// k (f32), the forward kernel recomputes lse, Δ = rowsum(dO ∘ O), the dq
// kernel (one thread per query row), the inverse rotation of dq̃ into dq, the
// dk/dv kernel (one thread per key row, over the G = 2 query heads of its kv
// head), the inverse rotation of dk̃ into dk; dv is written directly.

// CHECK-LABEL: func.func @grad(
// CHECK-SAME:    %[[Q:[^:]*]]: memref<2x4x100x8xf16>, %[[K:[^:]*]]: memref<2x2x90x8xf16>, %[[V:[^:]*]]: memref<2x2x90x4xf16>, %[[O:[^:]*]]: memref<2x4x100x4xf16>, %[[DO:[^:]*]]: memref<2x4x100x4xf16>,
// CHECK-SAME:    %[[DQ:[^:]*]]: memref<2x4x100x8xf16>, %[[DK:[^:]*]]: memref<2x2x90x8xf16>, %[[DV:[^:]*]]: memref<2x2x90x4xf16>)
// CHECK-DAG:     %[[DQC:.*]] = memref.collapse_shape %[[DQ]]
// CHECK-DAG:     %[[DKC:.*]] = memref.collapse_shape %[[DK]]
// CHECK-DAG:     %[[DVC:.*]] = memref.collapse_shape %[[DV]]
// CHECK:         %[[QR:.*]], %{{.*}} = gpu.alloc async {{.*}} : memref<8x100x8xf32>
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@rotary_0
// CHECK:         %[[KR:.*]], %{{.*}} = gpu.alloc async {{.*}} : memref<4x90x8xf32>
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@rotary_1
// CHECK:         %[[LSE:.*]], %{{.*}} = gpu.alloc async {{.*}} : memref<8x100xf32>
// CHECK:         %[[OTMP:.*]], %{{.*}} = gpu.alloc async {{.*}} : memref<8x100x4xf16>
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@attention_2 {{.*}} args(%[[QR]] : {{.*}}, %[[KR]] : {{.*}}, %[[OTMP]] : memref<8x100x4xf16>, %[[LSE]] : memref<8x100xf32>)
// CHECK:         %[[DELTA:.*]], %{{.*}} = gpu.alloc async {{.*}} : memref<8x100xf32>
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@delta_3 blocks in (%c4, %c1, %c1) threads in (%c256, %c1, %c1) args({{.*}}, %[[DELTA]] : memref<8x100xf32>)
// CHECK:         %[[DQT:.*]], %{{.*}} = gpu.alloc async {{.*}} : memref<8x100x8xf32>
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@attention_grad_q_4 blocks in (%c4, %c8, %c1) threads in (%c32, %c1, %c1) args(%[[QR]] : {{.*}}, %[[KR]] : {{.*}}, %[[LSE]] : memref<8x100xf32>, %[[DELTA]] : memref<8x100xf32>, %[[DQT]] : memref<8x100x8xf32>)
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@rotary_5 {{.*}} args(%[[DQT]] : memref<8x100x8xf32>, %[[DQC]] : memref<8x100x8xf16>)
// CHECK:         %[[DKT:.*]], %{{.*}} = gpu.alloc async {{.*}} : memref<4x90x8xf32>
// ceil(90 / 32) = 3 key tiles, 4 kv heads.
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@attention_grad_kv_6 blocks in (%c3, %c4, %c1) threads in (%c32, %c1, %c1) args({{.*}}, %[[DKT]] : memref<4x90x8xf32>, %[[DVC]] : memref<4x90x4xf16>)
// CHECK:         gpu.launch_func async {{.*}} @ropeattn_kernels::@rotary_7 {{.*}} args(%[[DKT]] : memref<4x90x8xf32>, %[[DKC]] : memref<4x90x8xf16>)
// CHECK-COUNT-7: gpu.dealloc async
// CHECK:         gpu.wait

// dq: P from the logsumexp (no running max), dS = P (dP − Δ), dq += dS k.
// CHECK:       gpu.func @attention_grad_q_4(
// CHECK-SAME:    workgroup(%{{.*}} : memref<16x8xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<16x4xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
// CHECK:         %[[HASKEYS:.*]] = arith.cmpf one, %[[L:.*]], %cst
// CHECK:         scf.for
// CHECK:           gpu.barrier
// CHECK:           scf.for
// CHECK:             arith.subf %{{.*}}, %[[L]] : f32
// CHECK:             %[[P:.*]] = math.exp
// CHECK:             %[[DS:.*]] = arith.mulf %[[P]], %{{.*}} : f32
// CHECK-COUNT-8:     math.fma %[[DS]],
// CHECK:           gpu.barrier

// The inverse rotation negates the f64 angle and rounds to f16 once.
// CHECK:       gpu.func @rotary_5(%{{.*}}: memref<8x100x8xf32>, %{{.*}}: memref<8x100x8xf16>)
// CHECK:         math.exp %{{.*}} : f64
// CHECK:         %[[ANGLE:.*]] = arith.mulf %{{.*}}, %{{.*}} : f64
// CHECK:         %[[NEG:.*]] = arith.negf %[[ANGLE]] : f64
// CHECK:         math.cos %[[NEG]] : f64
// CHECK:         arith.truncf %{{.*}} : f32 to f16

// dk/dv: value rows of the block padded to Dv + 1, query tiles with their
// lse and Δ; a loop over the G query heads, then over query tiles.
// CHECK:       gpu.func @attention_grad_kv_6(
// CHECK-SAME:    workgroup(%{{.*}} : memref<32x5xf32, #gpu.address_space<workgroup>>, %{{.*}} : memref<16x8xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<16x4xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<16xf32, #gpu.address_space<workgroup>>, %{{.*}} : memref<16xf32, #gpu.address_space<workgroup>>)
// CHECK:         scf.for %{{.*}} = %c0 to %c2 step %c1
// CHECK:           scf.for
// CHECK:             gpu.barrier
// CHECK:             scf.for
// CHECK:               %[[P2:.*]] = math.exp
// CHECK:               %[[DS2:.*]] = arith.mulf %[[P2]], %{{.*}} : f32
// CHECK-COUNT-8:       math.fma %[[DS2]],
// CHECK-COUNT-4:       math.fma %[[P2]],
// CHECK:             gpu.barrier

func.func @grad(%q: tensor<2x4x100x8xf16>, %k: tensor<2x2x90x8xf16>, %v: tensor<2x2x90x4xf16>, %o: tensor<2x4x100x4xf16>, %do: tensor<2x4x100x4xf16>) -> (tensor<2x4x100x8xf16>, tensor<2x2x90x8xf16>, tensor<2x2x90x4xf16>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do causal rope <> : (tensor<2x4x100x8xf16>, tensor<2x2x90x8xf16>, tensor<2x2x90x4xf16>, tensor<2x4x100x4xf16>, tensor<2x4x100x4xf16>) -> (tensor<2x4x100x8xf16>, tensor<2x2x90x8xf16>, tensor<2x2x90x4xf16>)
  return %dq, %dk, %dv : tensor<2x4x100x8xf16>, tensor<2x2x90x8xf16>, tensor<2x2x90x4xf16>
}
