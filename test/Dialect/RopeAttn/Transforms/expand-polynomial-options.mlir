// Bad pass options are errors, not crashes.
// RUN: not rope-opt %s -ropeattn-expand-polynomial="family=legendre" 2>&1 | FileCheck %s --check-prefix=FAMILY
// RUN: not rope-opt %s -ropeattn-expand-polynomial="epsilon=0" 2>&1 | FileCheck %s --check-prefix=EPS
// RUN: not rope-opt %s -ropeattn-expand-polynomial="max-degree=0" 2>&1 | FileCheck %s --check-prefix=EPS
// FAMILY: error: ropeattn-expand-polynomial: unknown family 'legendre'; expected taylor, chebyshev or minimax
// EPS: error: ropeattn-expand-polynomial: epsilon must be > 0, max-degree >= 1, chunk and max-rank > 0
func.func @f(%q: tensor<1x8x4xf32>) -> tensor<1x8x4xf32> {
  %o = ropeattn.attention %q, %q, %q method polynomial : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x4xf32>
  return %o : tensor<1x8x4xf32>
}
