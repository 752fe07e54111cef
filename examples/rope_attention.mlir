// Llama-style RoPE attention: batch 1, 8 query heads sharing 2 key/value heads
// (GQA), head dim 64, causal, a 128-token prefill; forward with logsumexp,
// then the backward that reuses it.
func.func @forward(%q: tensor<1x8x128x64xf32>, %k: tensor<1x2x128x64xf32>, %v: tensor<1x2x128x64xf32>)
    -> (tensor<1x8x128x64xf32>, tensor<1x8x128xf32>) {
  %o, %lse = ropeattn.attention %q, %k, %v causal rope <base = 5.0e5>
      : (tensor<1x8x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x64xf32>)
      -> (tensor<1x8x128x64xf32>, tensor<1x8x128xf32>)
  return %o, %lse : tensor<1x8x128x64xf32>, tensor<1x8x128xf32>
}

func.func @backward(%q: tensor<1x8x128x64xf32>, %k: tensor<1x2x128x64xf32>, %v: tensor<1x2x128x64xf32>,
                    %o: tensor<1x8x128x64xf32>, %do: tensor<1x8x128x64xf32>, %lse: tensor<1x8x128xf32>)
    -> (tensor<1x8x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x64xf32>) {
  %dq, %dk, %dv = ropeattn.attention_grad %q, %k, %v, %o, %do logsumexp(%lse) causal rope <base = 5.0e5>
      : (tensor<1x8x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x64xf32>,
         tensor<1x8x128x64xf32>, tensor<1x8x128x64xf32>, tensor<1x8x128xf32>)
      -> (tensor<1x8x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x64xf32>)
  return %dq, %dk, %dv : tensor<1x8x128x64xf32>, tensor<1x2x128x64xf32>, tensor<1x2x128x64xf32>
}
