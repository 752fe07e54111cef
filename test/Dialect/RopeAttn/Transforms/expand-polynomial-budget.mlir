// The prefix-state budget: 1 MiB cannot hold the states of 65536 keys.
// RUN: rope-opt %s -ropeattn-expand-polynomial="family=taylor max-state-mib=1" -verify-diagnostics | FileCheck %s
// CHECK-LABEL: func @budget
// CHECK: method exact
func.func @budget(%q: tensor<1x65536x16xf32>) -> tensor<1x65536x16xf32> {
  // expected-remark @+1 {{ropeattn-expand-polynomial: exact path: the prefix states need}}
  %o = ropeattn.attention %q, %q, %q method polynomial : (tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>) -> tensor<1x65536x16xf32>
  return %o : tensor<1x65536x16xf32>
}
