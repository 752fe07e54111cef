// ropeattn-lower-fft: what it does not lower, and bad options.
// RUN: rope-opt %s -split-input-file -verify-diagnostics -ropeattn-lower-fft="backend=codegen" -o /dev/null
// RUN: not rope-opt %s -split-input-file -ropeattn-lower-fft=backend=cufft 2>&1 | FileCheck %s --check-prefix=BADOPT

// BADOPT: error: ropeattn-lower-fft: expected backend 'codegen' or 'library', found 'cufft'


func.func @not_power_of_two(%x: tensor<12x2xf32>) -> tensor<12x2xf32> {
  // expected-error @+1 {{ropeattn-lower-fft: backend=codegen expects a power-of-two length L <= 16777216, found L = 12 (use backend=library, or pad where the math allows)}}
  %y = ropeattn.fft %x : tensor<12x2xf32>
  return %y : tensor<12x2xf32>
}

// -----

func.func @dynamic(%x: tensor<?x2xf32>) -> tensor<?x2xf32> {
  // expected-error @+1 {{ropeattn-lower-fft: expected static shapes, found 'tensor<?x2xf32>'}}
  %y = ropeattn.fft %x : tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
