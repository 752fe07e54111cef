// Two functions for the CUDA AOT and runner tests.
func.func @fwd(%q: tensor<2x64x16xf16>, %k: tensor<2x64x16xf16>, %v: tensor<2x64x16xf16>) -> tensor<2x64x16xf16> {
  %o = ropeattn.attention %q, %k, %v causal rope <> : (tensor<2x64x16xf16>, tensor<2x64x16xf16>, tensor<2x64x16xf16>) -> tensor<2x64x16xf16>
  return %o : tensor<2x64x16xf16>
}

func.func @fwd_lse(%q: tensor<1x4x50x8xbf16>, %k: tensor<1x2x70x8xbf16>, %v: tensor<1x2x70x8xbf16>) -> (tensor<1x4x50x8xbf16>, tensor<1x4x50xf32>) {
  %o, %l = ropeattn.attention %q, %k, %v causal : (tensor<1x4x50x8xbf16>, tensor<1x2x70x8xbf16>, tensor<1x2x70x8xbf16>) -> (tensor<1x4x50x8xbf16>, tensor<1x4x50xf32>)
  return %o, %l : tensor<1x4x50x8xbf16>, tensor<1x4x50xf32>
}
