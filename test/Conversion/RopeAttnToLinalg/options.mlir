// Bad pass options are errors, not crashes.
// RUN: not rope-opt %s -convert-ropeattn-to-linalg="block-q=0" 2>&1 | FileCheck %s
// RUN: not rope-opt %s -convert-ropeattn-to-linalg="block-k=-4" 2>&1 | FileCheck %s
// CHECK: error: convert-ropeattn-to-linalg: block-q and block-k must be positive
func.func @f(%q: tensor<1x8x4xf32>) -> tensor<1x8x4xf32> {
  %o = ropeattn.attention %q, %q, %q : (tensor<1x8x4xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x4xf32>
  return %o : tensor<1x8x4xf32>
}
