// RUN: rope-opt %s -convert-ropeattn-to-linalg -split-input-file -verify-diagnostics | FileCheck %s
// RUN: rope-opt %s -convert-ropeattn-to-linalg=vector-bits=512 -split-input-file -verify-diagnostics | FileCheck %s --check-prefix=VEC
// RUN: not rope-opt %s -convert-ropeattn-to-linalg=vector-bits=48 -split-input-file 2>&1 | FileCheck %s --check-prefix=BADBITS
// BADBITS: error: convert-ropeattn-to-linalg: vector-bits must be 0 or a power of two >= 64, got 48

// ropeattn.poly_features, D = 3, g = 2, s = 0.5, c = [1, -1, 0.5], query
// side, f16 input: R = C(5, 2) = 10 features in graded-lex order
// (), (0), (1), (2), (0,0), (0,1), (0,2), (1,1), (1,2), (2,2); the tuples
// are two i8 index columns padded with D = 3; weights w = c_k·s^k·k!/Πα_j!
// = 1, −0.5 ×3, 0.125, 0.25, 0.25, 0.125, 0.25, 0.125 become
// sign(w)·sqrt(|w|) in f32. The input is extended to f32 into [.., N, D + 1]
// whose last column is 1.0; one generic multiplies the weight by the two
// selected entries.
// CHECK-DAG: #[[FEAT:.*]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func @query_f16
// CHECK-DAG: %[[W:.*]] = arith.constant dense<[1.000000e+00, -0.707106769, -0.707106769, -0.707106769, 0.353553385, 5.000000e-01, 5.000000e-01, 0.353553385, 5.000000e-01, 0.353553385]> : tensor<10xf32>
// CHECK-DAG: %[[C0:.*]] = arith.constant dense<[3, 0, 1, 2, 0, 0, 0, 1, 1, 2]> : tensor<10xi8>
// CHECK-DAG: %[[C1:.*]] = arith.constant dense<[3, 3, 3, 3, 0, 1, 2, 1, 2, 2]> : tensor<10xi8>
// CHECK-DAG: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK: %[[E:.*]] = tensor.empty() : tensor<2x7x4xf32>
// CHECK: %[[F:.*]] = linalg.fill ins(%[[ONE]] : f32) outs(%[[E]] : tensor<2x7x4xf32>)
// CHECK: %[[S:.*]] = tensor.extract_slice %[[F]][0, 0, 0] [2, 7, 3] [1, 1, 1]
// CHECK: %[[X:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x7x3xf16>) outs(%[[S]] : tensor<2x7x3xf32>)
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK: %[[XH:.*]] = tensor.insert_slice %[[X]] into %[[F]][0, 0, 0] [2, 7, 3] [1, 1, 1]
// CHECK: %[[OUT:.*]] = tensor.empty() : tensor<2x7x10xf32>
// CHECK: %[[PHI:.*]] = linalg.generic {indexing_maps = [#[[FEAT]], #[[FEAT]], #[[FEAT]], #[[ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[C0]], %[[C1]], %[[W]] : tensor<10xi8>, tensor<10xi8>, tensor<10xf32>) outs(%[[OUT]] : tensor<2x7x10xf32>)
// CHECK: ^bb0(%[[I0:.*]]: i8, %[[I1:.*]]: i8, %[[WA:.*]]: f32, %{{.*}}: f32):
// CHECK: %[[B:.*]] = linalg.index 0 : index
// CHECK: %[[N:.*]] = linalg.index 1 : index
// CHECK: %[[A0:.*]] = arith.index_castui %[[I0]] : i8 to index
// CHECK: %[[X0:.*]] = tensor.extract %[[XH]][%[[B]], %[[N]], %[[A0]]] : tensor<2x7x4xf32>
// CHECK: %[[P0:.*]] = arith.mulf %[[WA]], %[[X0]] : f32
// CHECK: %[[A1:.*]] = arith.index_castui %[[I1]] : i8 to index
// CHECK: %[[X1:.*]] = tensor.extract %[[XH]][%[[B]], %[[N]], %[[A1]]] : tensor<2x7x4xf32>
// CHECK: %[[P1:.*]] = arith.mulf %[[P0]], %[[X1]] : f32
// CHECK: linalg.yield %[[P1]] : f32
// CHECK: return %[[PHI]] : tensor<2x7x10xf32>
func.func @query_f16(%x: tensor<2x7x3xf16>) -> tensor<2x7x10xf32> {
  %0 = ropeattn.poly_features %x coefficients [1.0, -1.0, 0.5] side query scale(0.5) : tensor<2x7x3xf16> -> tensor<2x7x10xf32>
  return %0 : tensor<2x7x10xf32>
}

// -----

// Key side: sqrt(|w|), no sign; f64 stays f64 (the slice is a plain copy);
// D = 2, g = 3: R = C(5, 3) = 10, three index columns padded with 2.
// Dynamic batch and N come from the input.
// CHECK-LABEL: func @key_f64_dynamic
// CHECK-DAG: arith.constant dense<[1.000000e+00, 1.000000e+00, 1.000000e+00, 1.000000e+00, 1.4142135623730951, 1.000000e+00, 1.000000e+00, 1.7320508075688772, 1.7320508075688772, 1.000000e+00]> : tensor<10xf64>
// CHECK-DAG: arith.constant dense<[2, 0, 1, 0, 0, 1, 0, 0, 0, 1]> : tensor<10xi8>
// CHECK-DAG: arith.constant dense<[2, 2, 2, 0, 1, 1, 0, 0, 1, 1]> : tensor<10xi8>
// CHECK-DAG: arith.constant dense<[2, 2, 2, 2, 2, 2, 0, 1, 1, 1]> : tensor<10xi8>
// CHECK: %[[D0:.*]] = tensor.dim %arg0, %{{.*}} : tensor<?x?x2xf64>
// CHECK: %[[D1:.*]] = tensor.dim %arg0, %{{.*}} : tensor<?x?x2xf64>
// CHECK: tensor.empty(%[[D0]], %[[D1]]) : tensor<?x?x3xf64>
// CHECK-NOT: arith.extf
// CHECK: tensor.empty(%[[D0]], %[[D1]]) : tensor<?x?x10xf64>
// CHECK: linalg.generic
// CHECK-COUNT-3: tensor.extract
// CHECK: -> tensor<?x?x10xf64>
func.func @key_f64_dynamic(%x: tensor<?x?x2xf64>) -> tensor<?x?x10xf64> {
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0, 1.0, 1.0] side key : tensor<?x?x2xf64> -> tensor<?x?x10xf64>
  return %0 : tensor<?x?x10xf64>
}

// -----

// g = 0: one feature, the constant sign(c_0)·sqrt(|c_0|) (query side); the
// input is not read.
// CHECK-LABEL: func @degree_zero
// CHECK: %[[W:.*]] = arith.constant dense<-2.000000e+00> : tensor<1xf32>
// CHECK-NOT: tensor.extract
// CHECK: linalg.generic {{.*}} ins(%[[W]] : tensor<1xf32>) outs(%{{.*}} : tensor<3x5x1xf32>)
// CHECK-NEXT: ^bb0(%[[IN:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT: linalg.yield %[[IN]] : f32
func.func @degree_zero(%x: tensor<3x5x4xbf16>) -> tensor<3x5x1xf32> {
  %0 = ropeattn.poly_features %x coefficients [-4.0] side query : tensor<3x5x4xbf16> -> tensor<3x5x1xf32>
  return %0 : tensor<3x5x1xf32>
}

// -----

// A static result size where the input's is dynamic: the work is done at
// the static size and cast back to the result type.
// CHECK-LABEL: func @refined_result
// CHECK: tensor.cast %arg0 : tensor<?x3xf32> to tensor<6x3xf32>
// CHECK: } -> tensor<6x4xf32>
// CHECK-NOT: tensor.cast
// CHECK: return
func.func @refined_result(%x: tensor<?x3xf32>) -> tensor<6x4xf32> {
  %0 = ropeattn.poly_features %x coefficients [0.0, 1.0] side key : tensor<?x3xf32> -> tensor<6x4xf32>
  return %0 : tensor<6x4xf32>
}

// -----

// D = 300 needs 16-bit index columns.
// CHECK-LABEL: func @wide_index
// CHECK: tensor<301xi16>
func.func @wide_index(%x: tensor<4x300xf32>) -> tensor<4x301xf32> {
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0] side key : tensor<4x300xf32> -> tensor<4x301xf32>
  return %0 : tensor<4x301xf32>
}

// -----

// Tables beyond 2^26 entries are not built at compile time (the pass then
// also reports the op as not lowered).
func.func @too_large(%x: tensor<1x200xf32>) -> tensor<1x2872408791xf32> {
  // expected-error @+2 {{'ropeattn.poly_features' op cannot be lowered: expected at most 67108864 feature-table entries R·(g + 1), found R = 2872408791, g = 5}}
  // expected-error @+1 {{convert-ropeattn-to-linalg: cannot lower 'ropeattn.poly_features'}}
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0, 1.0, 1.0, 1.0, 1.0] side key : tensor<1x200xf32> -> tensor<1x2872408791xf32>
  return %0 : tensor<1x2872408791xf32>
}

// -----

// Feature-major layout: x̂ᵀ [B.., D + 1, N] is built by a transposing generic,
// and the feature generic iterates (z, a, n) with rows innermost.
// CHECK-LABEL: func @transposed
// CHECK: linalg.generic {indexing_maps = [#[[T:.*]], #{{.*}}], {{.*}} ins(%arg0 : tensor<7x3xf32>) outs(%{{.*}} : tensor<3x7xf32>)
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<10x7xf32>)
// CHECK: tensor.extract %{{.*}}[%{{.*}}, %{{.*}}] : tensor<4x7xf32>
func.func @transposed(%x: tensor<7x3xf32>) -> tensor<10x7xf32> {
  %0 = ropeattn.poly_features %x coefficients [1.0, 1.0, 0.5] side key transposed : tensor<7x3xf32> -> tensor<10x7xf32>
  return %0 : tensor<10x7xf32>
}

// -----

// Jᵀw: the monomials of degree ≤ g − 1 (R' = C(3 + 1, 1) = 4, feature-major),
// then one contraction over them, β outermost and rows innermost, gathering w
// through the constant table G [R', D] of the features β + e_j (indices
// < R = 10).
// CHECK-LABEL: func @grad_transposed
// CHECK-DAG: %[[G:.*]] = arith.constant dense<{{\[}}[1, 2, 3], [4, 5, 6], [5, 7, 8], [6, 8, 9]]> : tensor<4x3xi8>
// CHECK: %[[M:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<4x7xf32>)
// CHECK: linalg.generic {{.*}}iterator_types = ["reduction", "parallel", "parallel"]{{.*}} ins(%[[M]], %[[G]], %{{.*}} : tensor<4x7xf32>, tensor<4x3xi8>, tensor<4x3xf32>) outs(%{{.*}} : tensor<3x7xf32>)
// CHECK: tensor.extract %arg1[%{{.*}}, %{{.*}}] : tensor<10x7xf32>
// With vector-bits = 512 (16 f32 lanes): one tile of rows (7 < 16, masked by
// out-of-bounds transfers), three accumulators (D = 3) carried through the
// loop over the R' = 4 monomials, one FMA per (β, j) on a gathered row of w.
// VEC-LABEL: func @grad_transposed
// VEC-DAG: %[[G:.*]] = arith.constant dense<{{\[}}[1, 2, 3], [4, 5, 6], [5, 7, 8], [6, 8, 9]]> : tensor<4x3xi8>
// VEC-DAG: %[[C4:.*]] = arith.constant 4 : index
// VEC: %[[M:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<4x7xf32>)
// VEC: %[[ACC:.*]]:3 = scf.for %[[B:.*]] = %{{.*}} to %[[C4]] step %{{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>)
// VEC: %[[MB:.*]] = vector.transfer_read %[[M]][%[[B]], %{{.*}}], %{{.*}} : tensor<4x7xf32>, vector<16xf32>
// VEC: tensor.extract %[[G]][%[[B]], %{{.*}}] : tensor<4x3xi8>
// VEC: %[[MC:.*]] = arith.mulf %[[MB]], %{{.*}} : vector<16xf32>
// VEC: %[[W:.*]] = vector.transfer_read %arg1[%{{.*}}, %{{.*}}], %{{.*}} : tensor<10x7xf32>, vector<16xf32>
// VEC: vector.fma %[[W]], %[[MC]], %{{.*}} : vector<16xf32>
// VEC-COUNT-2: vector.fma
// VEC: scf.yield
// VEC-COUNT-3: vector.transfer_write %[[ACC]]#{{[0-2]}}, %{{.*}} : vector<16xf32>, tensor<3x7xf32>
// VEC-NOT: linalg.generic
// VEC: return
func.func @grad_transposed(%x: tensor<7x3xf32>, %w: tensor<10x7xf32>) -> tensor<3x7xf32> {
  %0 = ropeattn.poly_features_grad %x, %w coefficients [1.0, 1.0, 0.5] side key transposed : tensor<7x3xf32>, tensor<10x7xf32> -> tensor<3x7xf32>
  return %0 : tensor<3x7xf32>
}

// -----

// Degree 0: the derivative of a constant map is zero.
// CHECK-LABEL: func @grad_degree_zero
// CHECK: %[[Z:.*]] = linalg.fill
// CHECK-NEXT: return %[[Z]]
func.func @grad_degree_zero(%x: tensor<2x5x3xf64>, %w: tensor<2x5x1xf64>) -> tensor<2x5x3xf64> {
  %0 = ropeattn.poly_features_grad %x, %w coefficients [2.0] side query : tensor<2x5x3xf64>, tensor<2x5x1xf64> -> tensor<2x5x3xf64>
  return %0 : tensor<2x5x3xf64>
}
