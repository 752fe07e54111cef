// The prefix-state budget: 1 MiB cannot hold the causal scan's states of
// 65536 keys (one per chunk of 256).
// RUN: rope-opt %s -ropeattn-expand-polynomial="family=taylor max-state-mib=1" -verify-diagnostics | FileCheck %s
// CHECK-LABEL: func @budget
// CHECK: method exact
func.func @budget(%q: tensor<1x65536x16xf32>) -> tensor<1x65536x16xf32> {
  // expected-remark @+1 {{ropeattn-expand-polynomial: exact path: the prefix states need}}
  %o = ropeattn.attention %q, %q, %q causal method polynomial : (tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>) -> tensor<1x65536x16xf32>
  return %o : tensor<1x65536x16xf32>
}
