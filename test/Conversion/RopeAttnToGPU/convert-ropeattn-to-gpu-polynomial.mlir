// RUN: rope-opt %s -split-input-file -convert-ropeattn-to-gpu="family=taylor max-degree=2 poly-chunk=2" -canonicalize -cse | FileCheck %s
// RUN: rope-opt %s -split-input-file -verify-diagnostics -convert-ropeattn-to-gpu="max-rank=2" | FileCheck %s --check-prefix=DECLINE

// The polynomial method's kernels (convert-ropeattn-to-gpu, `method
// polynomial`). Taylor, g = 2, s = 1/2, D = 2: p(sx) = 1 + sx + (sx)²/2 has
// the monomials of {0, 1, 2}² (2 = the constant 1) with weights
// w = c_k s^k k!/α!: [0,0]: 1/2·1/4 = 1/8, [0,1]: 2/8 = 1/4, [0,2]: 1/2,
// [1,1]: 1/8, [1,2]: 1/2, [2,2]: 1; each factor gets √w (computed by hand:
// √(1/8) = 0.353553385 in f32, √(1/2) = 0.707106769).
// CHECK:       memref.global "private" constant @[[T:ropeattn_poly_table_[0-9]+]]_idx : memref<6x2xi32> = dense<{{\[}}[0, 0], [0, 1], [0, 2], [1, 1], [1, 2], [2, 2]]>
// CHECK:       memref.global "private" constant @[[T]]_w : memref<2x6xf32> = dense<{{\[}}[0.353553385, 5.000000e-01, 0.707106769, 0.353553385, 0.707106769, 1.000000e+00], [0.353553385, 5.000000e-01, 0.707106769, 0.353553385, 0.707106769, 1.000000e+00]]>

// Host: q̂, k̂ with the constant column, the certificate on the device
// (into the caller's tensor<5xf64>), one read of the case, then the switch.
// CHECK-LABEL: func.func @poly(
// CHECK-SAME:    %[[Q:.*]]: memref<1x3x2xf32>, %[[K:.*]]: memref<1x5x2xf32>, %[[V:.*]]: memref<1x5x1xf32>, %[[O:.*]]: memref<1x3x1xf32>, %[[C:.*]]: memref<5xf64>)
// CHECK:         gpu.launch_func {{.*}} @ropeattn_kernels::@augment_{{[0-9]+}} {{.*}} args(%[[Q]] : memref<1x3x2xf32>, %[[QH:.*]] : memref<1x3x3xf32>)
// CHECK:         gpu.launch_func {{.*}} @ropeattn_kernels::@augment_{{[0-9]+}} {{.*}} args(%[[K]] : memref<1x5x2xf32>, %[[KH:.*]] : memref<1x5x3xf32>)
// CHECK:         gpu.launch_func {{.*}} @ropeattn_kernels::@norm_partials_{{[0-9]+}} {{.*}} args(%[[QH]] : memref<1x3x3xf32>, %[[KH]] : memref<1x5x3xf32>, %[[P:.*]] : memref<2x1024xf32>)
// CHECK:         %[[SEL:.*]] = gpu.launch_func {{.*}} @ropeattn_kernels::@poly_select_{{[0-9]+}} blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%[[P]] : memref<2x1024xf32>, %[[SD:.*]] : memref<1xi32>, %[[C]] : memref<5xf64>)
// CHECK:         %[[SH:.*]] = memref.alloca() : memref<1xi32>
// CHECK:         %[[CP:.*]] = gpu.memcpy async [%[[SEL]]] %[[SH]], %[[SD]]
// CHECK-NEXT:    gpu.wait [%[[CP]]]
// CHECK:         %[[S:.*]] = memref.load %[[SH]]
// CHECK:         %[[I:.*]] = arith.index_cast %[[S]] : i32 to index
// CHECK:         scf.index_switch %[[I]]
// CHECK-NEXT:    case 0 {
// CHECK:           memref.get_global @[[T]]_idx
// CHECK:           gpu.memcpy async
// CHECK:           memref.get_global @[[T]]_w
// CHECK:           gpu.memcpy async
// Key states: ⌈5/2⌉ = 3 chunks + the zero slot, 6 features, Dv + 1 = 2.
// CHECK:           %[[ST:.*]], %{{.*}} = gpu.alloc async [%{{.*}}] () : memref<1x4x6x2xf32>
// CHECK:           gpu.launch_func {{.*}} @ropeattn_kernels::@poly_states_{{[0-9]+}} {{.*}} args(%[[KH]] : memref<1x5x3xf32>, %[[V]] : memref<1x5x1xf32>, %{{.*}} : memref<6x2xi32>, %{{.*}} : memref<2x6xf32>, %[[ST]] : memref<1x4x6x2xf32>)
// CHECK:           gpu.launch_func {{.*}} @ropeattn_kernels::@poly_scan_{{[0-9]+}} {{.*}} args(%[[ST]] : memref<1x4x6x2xf32>)
// CHECK:           gpu.launch_func {{.*}} @ropeattn_kernels::@poly_query_{{[0-9]+}} {{.*}} args(%[[QH]] : memref<1x3x3xf32>, %[[KH]] : memref<1x5x3xf32>, %[[V]] : memref<1x5x1xf32>, %{{.*}} : memref<6x2xi32>, %{{.*}} : memref<2x6xf32>, %[[ST]] : memref<1x4x6x2xf32>, %[[O]] : memref<1x3x1xf32>)
// CHECK:           gpu.dealloc
// CHECK:           gpu.wait
// CHECK:           scf.yield
// Default (no degree covers β̂): the exact kernel into the same output.
// CHECK:         default {
// CHECK:           gpu.launch_func {{.*}} @ropeattn_kernels::@attention_{{[0-9]+}} {{.*}} args(%[[Q]] : memref<1x3x2xf32>, %[[K]] : memref<1x5x2xf32>, %[[V]] : memref<1x5x1xf32>, %[[O]] : memref<1x3x1xf32>)
// CHECK:           gpu.wait

// The certificate: β̂ = |s|(1 + 2(D + 2)u)·√max‖q̂‖²·√max‖k̂‖² (here
// 0.5·(1 + 8·2⁻²⁴) = 0.5000002384185791), sel = 0 iff β̂ ≤ B_2 (Taylor,
// ε = 1e-3), then [β̂, 2, δ, B(δ), −log(1 − δ)] or zeros after β̂.
// CHECK-LABEL: gpu.func @poly_select_
// CHECK-DAG:     %[[HALF:.*]] = arith.constant 0.5000002384185791 : f64
// CHECK-DAG:     %[[G:.*]] = arith.constant 2.000000e+00 : f64
// CHECK:         %[[NQ:.*]] = math.sqrt %{{.*}} : f64
// CHECK:         %[[NK:.*]] = math.sqrt %{{.*}} : f64
// CHECK:         %[[PR:.*]] = arith.mulf %[[NQ]], %[[NK]] : f64
// CHECK:         %[[BETA:.*]] = arith.mulf %[[PR]], %[[HALF]] : f64
// CHECK:         %[[OK:.*]] = arith.cmpf ole, %[[BETA]], %{{.*}} : f64
// CHECK:         %[[CASE:.*]] = arith.select %[[OK]], %c0, %c1 : index
// CHECK:         memref.store %{{.*}}, %{{.*}}[%c0] : memref<1xi32>
// CHECK:         memref.store %[[BETA]], %{{.*}}[%c0] : memref<5xf64>

// Key states: thread (α, chunk) sums φ_K,α(k̂_j)·[v_j, 1] over its chunk's keys
// j ∈ [2·chunk, min(2·chunk + 2, 5)), with φ_K,α = w[1, α]·Π_t k̂[j, idx[α, t]].
// CHECK-LABEL: gpu.func @poly_states_
// CHECK:         %[[ALPHA:.*]] = arith.remui %{{.*}}, %c6 : index
// CHECK:         %[[CH:.*]] = arith.divui %{{.*}}, %c6 : index
// CHECK:         %[[J0:.*]] = arith.muli %[[CH]], %c2 : index
// CHECK:         %[[J1:.*]] = arith.addi %[[J0]], %c2 : index
// CHECK:         %[[JE:.*]] = arith.minui %[[J1]], %c5 : index
// CHECK:         scf.for %[[J:.*]] = %[[J0]] to %[[JE]]
// CHECK:           memref.load %{{.*}}[%c1, %[[ALPHA]]] : memref<2x6xf32>
// CHECK:           math.fma
// CHECK:           arith.addf
// CHECK:         %[[SLOT:.*]] = arith.addi %[[CH]], %c1 : index
// CHECK:         memref.store %{{.*}}, %{{.*}}[%{{.*}}, %[[SLOT]], %[[ALPHA]], %c0]
// CHECK:         memref.store %{{.*}}, %{{.*}}[%{{.*}}, %[[SLOT]], %[[ALPHA]], %c1]

// Exclusive prefix sum over the chunks: slot 0 = 0, slot t += slot t − 1.
// CHECK-LABEL: gpu.func @poly_scan_
// CHECK:         memref.store %cst, %{{.*}}[%{{.*}}, %c0, %{{.*}}, %{{.*}}]
// CHECK:         scf.for %{{.*}} = %c1 to %c4

// Query rows (causal, M − N = 2): lim = i + 2; all keys visible iff
// lim ≥ 4 (t = 3 chunks), else t = ⌊(lim + 1)/2⌋ and the keys
// [2t, lim + 1) get exact exponentials e^{s⟨q̃, k̃⟩}.
// CHECK-LABEL: gpu.func @poly_query_
// CHECK:         %[[LIM:.*]] = arith.addi %[[ROW:.*]], %c2 : index
// CHECK:         %[[ALL:.*]] = arith.cmpi sge, %[[LIM]], %c4 : index
// CHECK:         %[[VIS:.*]] = arith.cmpi sge, %[[LIM]], %c0 : index
// CHECK:         %[[LP1:.*]] = arith.addi %[[ROW]], %c3 : index
// CHECK:         %[[LP:.*]] = arith.maxsi %[[LP1]], %c0 : index
// CHECK:         %[[TC:.*]] = arith.divui %[[LP]], %c2 : index
// CHECK:         %[[T:.*]] = arith.select %[[ALL]], %c3, %[[TC]] : index
// CHECK:         %[[END:.*]] = arith.select %[[ALL]], %c5, %[[LP]] : index
// CHECK:         %[[ACC:.*]]:2 = scf.for %[[A:.*]] = %c0 to %c6
// CHECK:           memref.load %{{.*}}[%c0, %[[A]]] : memref<2x6xf32>
// CHECK:           memref.load %{{.*}}[%{{.*}}, %[[T]], %[[A]], %c0] : memref<1x4x6x2xf32>
// CHECK:         %[[J0Q:.*]] = arith.muli %[[T]], %c2 : index
// CHECK:         %[[LOC:.*]]:2 = scf.for %{{.*}} = %[[J0Q]] to %[[END]] {{.*}} iter_args(%{{.*}} = %[[ACC]]#0, %{{.*}} = %[[ACC]]#1)
// CHECK:           math.exp
// CHECK:         %[[DIV:.*]] = arith.divf %[[LOC]]#0, %[[LOC]]#1 : f32
// CHECK:         arith.select %[[VIS]], %[[DIV]], %cst{{.*}} : f32

// With max-rank = 2 no degree fits (C(2 + g, g) ≥ 3): a remark, and the exact
// kernels with the exact method's certificate.
// DECLINE-LABEL: func.func @poly(
// DECLINE-NOT:     index_switch
// DECLINE:         @ropeattn_kernels::@certificate_exact_
// DECLINE:         @ropeattn_kernels::@attention_
func.func @poly(%q: tensor<1x3x2xf32>, %k: tensor<1x5x2xf32>, %v: tensor<1x5x1xf32>) -> (tensor<1x3x1xf32>, tensor<5xf64>) {
  // expected-remark @below {{convert-ropeattn-to-gpu: exact path: no degree within max-degree, max-rank and max-state-mib meets epsilon}}
  %o, %c = ropeattn.attention %q, %k, %v causal scale(5.000000e-01) method polynomial : (tensor<1x3x2xf32>, tensor<1x5x2xf32>, tensor<1x5x1xf32>) -> (tensor<1x3x1xf32>, tensor<5xf64>)
  return %o, %c : tensor<1x3x1xf32>, tensor<5xf64>
}

// -----

// An exact op's certificate on CUDA: [NaN, 0, 0, 0, 0], as on the CPU path.
// DECLINE-LABEL: func.func @exact_certificate(
// DECLINE:         gpu.launch_func {{.*}} @ropeattn_kernels::@certificate_exact_{{[0-9]+}} blocks in (%{{.*}}) threads in (%{{.*}}) args(%arg4 : memref<5xf64>)
// DECLINE:         gpu.launch_func {{.*}} @ropeattn_kernels::@attention_
// DECLINE-LABEL: gpu.func @certificate_exact_
// DECLINE:         %[[NAN:.*]] = arith.constant 0x7FF8000000000000 : f64
// DECLINE:         memref.store %[[NAN]], %arg0[%{{.*}}] : memref<5xf64>
// CHECK-LABEL: func.func @exact_certificate(
// CHECK-NOT:     index_switch
// CHECK:         @certificate_exact_
func.func @exact_certificate(%q: tensor<1x3x2xf32>, %k: tensor<1x5x2xf32>, %v: tensor<1x5x1xf32>) -> (tensor<1x3x1xf32>, tensor<5xf64>) {
  %o, %c = ropeattn.attention %q, %k, %v causal : (tensor<1x3x2xf32>, tensor<1x5x2xf32>, tensor<1x5x1xf32>) -> (tensor<1x3x1xf32>, tensor<5xf64>)
  return %o, %c : tensor<1x3x1xf32>, tensor<5xf64>
}
