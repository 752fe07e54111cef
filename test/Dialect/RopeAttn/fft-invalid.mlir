// Every verifier diagnostic of ropeattn.fft and ropeattn.toeplitz_matmul.
// RUN: rope-opt %s -split-input-file -verify-diagnostics

func.func @fft_rank(%x: tensor<2xf32>) -> tensor<2xf32> {
  // expected-error @+1 {{expected input of rank >= 2 ([B.., L, 2]), found rank 1}}
  %0 = ropeattn.fft %x : tensor<2xf32>
  return %0 : tensor<2xf32>
}

// -----

func.func @fft_pair(%x: tensor<8x3xf32>) -> tensor<8x3xf32> {
  // expected-error @+1 {{expected a trailing dimension of size 2 (real, imaginary), found 3}}
  %0 = ropeattn.fft %x : tensor<8x3xf32>
  return %0 : tensor<8x3xf32>
}

// -----

func.func @fft_pair_dynamic(%x: tensor<8x?xf32>) -> tensor<8x?xf32> {
  // expected-error @+1 {{expected a trailing dimension of size 2 (real, imaginary), found ?}}
  %0 = ropeattn.fft %x : tensor<8x?xf32>
  return %0 : tensor<8x?xf32>
}

// -----

func.func @fft_type(%x: tensor<8x2xf16>) -> tensor<8x2xf16> {
  // expected-error @+1 {{operand #0 must be ranked tensor of 32-bit float or 64-bit float values}}
  %0 = ropeattn.fft %x : tensor<8x2xf16>
  return %0 : tensor<8x2xf16>
}

// -----

func.func @toeplitz_rank(%t: tensor<1xf32>, %x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{expected input of rank >= 2 ([B.., rows, C]), found rank 1}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<1xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @toeplitz_symbol_type(%t: tensor<7xf64>, %x: tensor<4x2xf32>) -> tensor<4x2xf32> {
  // expected-error @+1 {{expected symbol element type 'f32' (the input's), found 'f64'}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<7xf64>, tensor<4x2xf32>) -> tensor<4x2xf32>
  return %0 : tensor<4x2xf32>
}

// -----

func.func @toeplitz_result_type(%t: tensor<7xf32>, %x: tensor<4x2xf32>) -> tensor<4x2xf64> {
  // expected-error @+1 {{expected result element type 'f32' (the input's), found 'f64'}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<7xf32>, tensor<4x2xf32>) -> tensor<4x2xf64>
  return %0 : tensor<4x2xf64>
}

// -----

func.func @toeplitz_result_rank(%t: tensor<7xf32>, %x: tensor<4x2xf32>) -> tensor<1x4x2xf32> {
  // expected-error @+1 {{expected result of rank 2 (the input's), found rank 3}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<7xf32>, tensor<4x2xf32>) -> tensor<1x4x2xf32>
  return %0 : tensor<1x4x2xf32>
}

// -----

func.func @toeplitz_result_batch(%t: tensor<7xf32>, %x: tensor<3x4x2xf32>) -> tensor<2x4x2xf32> {
  // expected-error @+1 {{expected result batch dimension 0 to be 3 (the input's), found 2}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<7xf32>, tensor<3x4x2xf32>) -> tensor<2x4x2xf32>
  return %0 : tensor<2x4x2xf32>
}

// -----

func.func @toeplitz_columns(%t: tensor<7xf32>, %x: tensor<4x2xf32>) -> tensor<4x3xf32> {
  // expected-error @+1 {{expected result to have 2 columns (the input's), found 3}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<7xf32>, tensor<4x2xf32>) -> tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}

// -----

func.func @toeplitz_symbol_rank(%t: tensor<1x1x7xf32>, %x: tensor<3x4x2xf32>) -> tensor<3x4x2xf32> {
  // expected-error @+1 {{expected symbol of shape [N + M - 1] or [B.., N + M - 1] (rank 1 or 2), found rank 3}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<1x1x7xf32>, tensor<3x4x2xf32>) -> tensor<3x4x2xf32>
  return %0 : tensor<3x4x2xf32>
}

// -----

func.func @toeplitz_symbol_batch(%t: tensor<2x7xf32>, %x: tensor<3x4x2xf32>) -> tensor<3x4x2xf32> {
  // expected-error @+1 {{expected symbol batch dimension 0 to be 3 (the input's), found 2}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<2x7xf32>, tensor<3x4x2xf32>) -> tensor<3x4x2xf32>
  return %0 : tensor<3x4x2xf32>
}

// -----

func.func @toeplitz_symbol_length(%t: tensor<9xf32>, %x: tensor<4x2xf32>) -> tensor<5x2xf32> {
  // N = 5 (result rows), M = 4 (input rows): 8 offsets.
  // expected-error @+1 {{expected symbol length N + M - 1 = 8 (N = 5, M = 4), found 9}}
  %0 = ropeattn.toeplitz_matmul %t, %x : (tensor<9xf32>, tensor<4x2xf32>) -> tensor<5x2xf32>
  return %0 : tensor<5x2xf32>
}

// -----

func.func @toeplitz_symbol_length_transposed(%t: tensor<8xf32>, %x: tensor<4x2xf32>) -> tensor<6x2xf32> {
  // Transposed: N = 4 (input rows), M = 6 (result rows): 9 offsets.
  // expected-error @+1 {{expected symbol length N + M - 1 = 9 (N = 4, M = 6), found 8}}
  %0 = ropeattn.toeplitz_matmul %t, %x transposed : (tensor<8xf32>, tensor<4x2xf32>) -> tensor<6x2xf32>
  return %0 : tensor<6x2xf32>
}
