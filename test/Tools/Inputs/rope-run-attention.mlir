// ropeattn functions for rope-run's FLOP count (--dry-run) and failure tests.

// B = 2, Hq = 8, N = M = 128, D = 64, Dv = 32, causal:
// 2·8 · (2·128·128·64 + 2·128·128·32) / 2 = 25165824.
func.func @attn(%q: tensor<2x8x128x64xf32>, %k: tensor<2x2x128x64xf32>,
                %v: tensor<2x2x128x32xf32>) -> tensor<2x8x128x32xf32> {
  %o = ropeattn.attention %q, %k, %v causal rope <>
      : (tensor<2x8x128x64xf32>, tensor<2x2x128x64xf32>, tensor<2x2x128x32xf32>)
      -> tensor<2x8x128x32xf32>
  return %o : tensor<2x8x128x32xf32>
}

// Not causal, 2.5 × the forward: 2.5 · 4 · (2·16·32·8 + 2·16·32·8) = 163840,
// plus the call of @fwd, 4 · (2·16·32·8 + 2·16·32·8) = 65536: 229376.
func.func @grad(%q: tensor<4x16x8xf32>, %k: tensor<4x32x8xf32>,
                %v: tensor<4x32x8xf32>, %o: tensor<4x16x8xf32>,
                %do: tensor<4x16x8xf32>)
    -> (tensor<4x16x8xf32>, tensor<4x32x8xf32>, tensor<4x32x8xf32>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do
      : (tensor<4x16x8xf32>, tensor<4x32x8xf32>, tensor<4x32x8xf32>,
         tensor<4x16x8xf32>, tensor<4x16x8xf32>)
      -> (tensor<4x16x8xf32>, tensor<4x32x8xf32>, tensor<4x32x8xf32>)
  %o2 = func.call @fwd(%q, %k, %v)
      : (tensor<4x16x8xf32>, tensor<4x32x8xf32>, tensor<4x32x8xf32>) -> tensor<4x16x8xf32>
  return %dq, %dk, %dv : tensor<4x16x8xf32>, tensor<4x32x8xf32>, tensor<4x32x8xf32>
}

func.func private @fwd(%q: tensor<4x16x8xf32>, %k: tensor<4x32x8xf32>,
                       %v: tensor<4x32x8xf32>) -> tensor<4x16x8xf32> {
  %o = ropeattn.attention %q, %k, %v
      : (tensor<4x16x8xf32>, tensor<4x32x8xf32>, tensor<4x32x8xf32>) -> tensor<4x16x8xf32>
  return %o : tensor<4x16x8xf32>
}
