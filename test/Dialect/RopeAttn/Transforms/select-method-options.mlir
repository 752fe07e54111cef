// RUN: not rope-opt %s -ropeattn-select-method="family=pade" 2>&1 | FileCheck %s --check-prefix=FAMILY
// RUN: not rope-opt %s -ropeattn-select-method="poly-efficiency=0" 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not rope-opt %s -rope-lower-to-cpu="auto=fast" 2>&1 | FileCheck %s --check-prefix=AUTO
// RUN: rope-opt %s -pass-pipeline="builtin.module(rope-lower-to-cpu{auto=cost-model})" -mlir-print-ir-after=ropeattn-select-method 2>&1 | FileCheck %s --check-prefix=PIPE

// FAMILY: ropeattn-select-method: unknown family 'pade'; expected taylor, chebyshev or minimax
// RANGE: ropeattn-select-method: epsilon, poly-efficiency, toeplitz-efficiency, general-exact-efficiency, chunk, max-rank, toeplitz-max-rank, max-terms must be > 0, max-degree and toeplitz-max-degree >= 1, assumed-beta >= 0
// AUTO: for the --auto option: Cannot find option named 'fast'!
// `auto=cost-model` runs the selection in rope-lower-to-cpu.
// PIPE: IR Dump After RopeAttnSelectMethod
// PIPE: ropeattn.attention {{.*}} method polynomial
func.func @f(%q: tensor<1x65536x16xf32>) -> tensor<1x65536x16xf32> {
  %0 = ropeattn.attention %q, %q, %q causal : (tensor<1x65536x16xf32>, tensor<1x65536x16xf32>, tensor<1x65536x16xf32>) -> tensor<1x65536x16xf32>
  return %0 : tensor<1x65536x16xf32>
}
