func.func @f(%q: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %o = ropeattn.attention %q %q, %q : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}
